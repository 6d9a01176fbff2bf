//! Bad usage gets one clear error line and a non-zero exit.

use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir};

fn run_in(lab: &Lab, args: &[&str]) -> (bool, String) {
    let pin_dir = unique_pin_dir("cli");
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(args)
        .arg("--pin-dir")
        .arg(&pin_dir)
        .output()
        .unwrap();
    let _ = igmp_user::loader::remove_pins(&pin_dir);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unknown_interface_is_named_in_the_error() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["run", "--iface", "eth9"]);
    assert!(!ok);
    assert!(stderr.contains("eth9: no such interface"), "{stderr}");
}

#[test]
fn native_mode_on_a_driver_without_xdp_says_how_to_fall_back() {
    // The bridge device has no native XDP support.
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["run", "--iface", "br0"]);
    assert!(!ok);
    assert!(
        stderr.contains("br0: the driver refused native XDP"),
        "{stderr}"
    );
    assert!(stderr.contains("--xdp-mode generic"), "{stderr}");
}

#[test]
fn show_without_a_running_daemon_says_what_is_missing() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["show"]);
    assert!(!ok);
    assert!(stderr.contains("no pinned map"), "{stderr}");
}
