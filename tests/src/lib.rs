//! Shared helpers of igmp-snoop's tests and benchmarks: frame builders, the
//! BPF_PROG_TEST_RUN harness and the lab of network namespaces.

pub mod corpus;
pub mod frames;
pub mod harness;
pub mod process;
pub mod replace;
pub mod service;
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

/// The one line a refused `igmp-snoop` command printed: it must have failed,
/// and said so in exactly one line on stderr (no log line, no usage dump).
pub fn one_error_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("igmp-snoop: "), "{stderr}");
    stderr.trim_end().to_string()
}

/// Pins a map made with `bpftool map create` at `path`, as a build with
/// another layout (or another version) would have left it: `kind` is
/// bpftool's type name (`hash`, `percpu_hash`, `array`).
pub fn pin_map(path: &std::path::Path, kind: &str, key: u32, value: u32, entries: u32) {
    let name = path.file_name().expect("a map name").to_string_lossy();
    let (key, value, entries) = (key.to_string(), value.to_string(), entries.to_string());
    let created = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args([
            "type", kind, "key", &key, "value", &value, "entries", &entries, "name", &name,
        ])
        .status()
        .expect("running bpftool");
    assert!(created.success(), "bpftool map create {}", path.display());
}
