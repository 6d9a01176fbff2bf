//! Shared helpers of igmp-snoop's tests and benchmarks: frame builders, the
//! BPF_PROG_TEST_RUN harness and the lab of network namespaces.

pub mod corpus;
pub mod frames;
pub mod harness;
pub mod snooped;

use std::path::PathBuf;

/// The `igmp-snoop` binary the lab tests drive: `$IGMP_SNOOP_BIN`, or the one
/// built next to the test executable (`cargo xtask test` builds it first).
pub fn daemon_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("IGMP_SNOOP_BIN") {
        return PathBuf::from(path);
    }
    let test_exe = std::env::current_exe().expect("current exe");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("igmp-snoop");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p igmp-user` (`cargo xtask test` does)",
        binary.display()
    );
    binary
}
