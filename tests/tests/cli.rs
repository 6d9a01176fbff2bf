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
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn native_mode_on_a_driver_without_xdp_says_how_to_fall_back() {
    // Loopback has no native XDP support.
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["run", "--iface", "lo", "--attach", "native"]);
    assert!(!ok);
    assert!(
        stderr.contains("lo: the driver refused native XDP"),
        "{stderr}"
    );
    assert!(stderr.contains("--attach tc"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn the_bridge_device_itself_is_refused_with_a_pointer_to_its_ports() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["run", "--iface", "br0"]);
    assert!(!ok);
    assert!(
        stderr.contains("br0 is a bridge: snoop on its ports instead"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn show_without_a_running_daemon_says_what_is_missing() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let (ok, stderr) = run_in(&lab, &["show"]);
    assert!(!ok);
    assert!(stderr.contains("no pinned map"), "{stderr}");
}

#[test]
fn maps_pinned_by_an_incompatible_version_are_refused_and_kept() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("old");
    std::fs::create_dir_all(&pin_dir).unwrap();
    let old_map = pin_dir.join("MEMBERSHIP");
    let created = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&old_map)
        .args([
            "type",
            "hash",
            "key",
            "12",
            "value",
            "24",
            "entries",
            "16",
            "name",
            "MEMBERSHIP",
        ])
        .status()
        .unwrap();
    assert!(created.success());
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("pinned by an incompatible version"),
        "{stderr}"
    );
    assert!(stderr.contains("igmp-snoop detach"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        old_map.exists(),
        "the old table was removed without being asked"
    );
    let _ = std::fs::remove_file(&old_map);
    let _ = std::fs::remove_dir(&pin_dir);
}

/// `igmp-snoop stats | head -1`: the reader goes away, the command ends by
/// SIGPIPE as `ls` would, with no panic. The pipe's read end is closed
/// before the command starts, so every run writes into a closed pipe.
#[test]
fn a_view_piped_into_a_reader_that_stops_ends_quietly() {
    use std::os::unix::process::ExitStatusExt as _;

    let snooped = igmp_tests::snooped::Snooped::new(2, &[]);
    for view in [&["stats"][..], &["show", "--json"], &["routers"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = snooped
            .lab
            .command_in_switch(&daemon_binary())
            .args(view)
            .arg("--pin-dir")
            .arg(&snooped.pin_dir)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{view:?}: {stderr}");
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGPIPE),
            "{view:?}: {stderr}"
        );
    }
}
