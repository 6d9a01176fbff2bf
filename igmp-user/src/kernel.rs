//! What the running kernel must offer the programs, probed before any port
//! is touched. Owns the list of required BPF features and the one line that
//! names the first one missing; loads and attaches nothing of the project's.
//!
//! Each feature is probed the way libbpf does (a minimal program or map the
//! kernel accepts or refuses), never read from the version string: distribution
//! kernels backport features and configurations switch them off.

use anyhow::{bail, Result};
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper},
};

/// The oldest kernel that has every feature below. CI tests 6.1, 6.12 and
/// the build machine's kernel; older ones are untested.
pub const MINIMUM_KERNEL: &str = "5.18";

/// One kernel feature the programs use, with the first kernel that has it.
pub struct Feature {
    /// What the operator reads: the helper, map or program type.
    pub name: &'static str,
    /// The first mainline kernel with it.
    pub since: &'static str,
    /// What it is used for.
    pub used_for: &'static str,
    probe: fn() -> bool,
}

/// Every feature the programs need, oldest first.
pub const REQUIRED: &[Feature] = &[
    Feature {
        name: "XDP programs",
        since: "4.8",
        used_for: "learning and forwarding on each port",
        probe: || is_program_supported(ProgramType::Xdp).unwrap_or(false),
    },
    Feature {
        name: "BPF ring buffer",
        since: "5.8",
        used_for: "membership events for the daemon",
        probe: || is_map_supported(MapType::RingBuf).unwrap_or(false),
    },
    Feature {
        name: "devmap programs (bpf_devmap_val)",
        since: "5.8",
        used_for: "the egress filter on each copy of a forwarded frame",
        probe: || is_map_supported(MapType::DevMapHash).unwrap_or(false),
    },
    Feature {
        name: "bpf_loop",
        since: "5.17",
        used_for: "walking IGMPv3 records",
        probe: || helper(BpfHelper::BPF_FUNC_loop),
    },
    Feature {
        // BPF_F_BROADCAST (5.15) cannot be probed on its own; every kernel
        // with this helper has it.
        name: "bpf_xdp_load_bytes",
        since: "5.18",
        used_for: "reading IGMPv3 records and checksums (and implies BPF_F_BROADCAST, 5.15)",
        probe: || helper(BpfHelper::BPF_FUNC_xdp_load_bytes),
    },
];

fn helper(helper: BpfHelper) -> bool {
    is_helper_supported(ProgramType::Xdp, helper).unwrap_or(false)
}

/// Refuses, in one line, a kernel that lacks a feature the programs need.
pub fn check() -> Result<()> {
    check_features(REQUIRED)
}

fn check_features(features: &[Feature]) -> Result<()> {
    if let Some(missing) = features.iter().find(|feature| !(feature.probe)()) {
        bail!("{}", refusal(missing));
    }
    Ok(())
}

fn refusal(missing: &Feature) -> String {
    format!(
        "this kernel lacks {} ({}), which Linux {} added: igmp-snoop needs Linux {} or newer",
        missing.name, missing.used_for, missing.since, MINIMUM_KERNEL
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_missing_feature_is_named_with_its_kernel_in_one_line() {
        let features = [
            Feature {
                name: "present",
                since: "4.0",
                used_for: "nothing",
                probe: || true,
            },
            Feature {
                name: "bpf_loop",
                since: "5.17",
                used_for: "walking IGMPv3 records",
                probe: || false,
            },
            Feature {
                name: "also missing",
                since: "9.9",
                used_for: "nothing",
                probe: || false,
            },
        ];
        let error = check_features(&features).unwrap_err().to_string();
        assert_eq!(
            error,
            "this kernel lacks bpf_loop (walking IGMPv3 records), which Linux 5.17 added: \
             igmp-snoop needs Linux 5.18 or newer"
        );
    }

    /// Run on every kernel of the matrix (the host and each guest): the
    /// probes themselves, against the real kernel.
    #[test]
    fn this_kernel_has_every_feature_the_programs_need() {
        check().expect("the kernels igmp-snoop is tested on have every feature");
    }

    #[test]
    fn the_minimum_kernel_is_the_newest_feature() {
        let newest = REQUIRED.last().expect("features").since;
        assert_eq!(newest, MINIMUM_KERNEL);
    }
}
