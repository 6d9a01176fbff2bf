//! Bad usage gets one clear error line and a non-zero exit.
//!
//! Lab tier (`Lab`, `Snooped`): every command runs in a lab's switch namespace.

use std::{net::Ipv4Addr, process::Stdio, time::Duration};

use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir, pin_map, snooped::Snooped};

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

/// A stopped daemon's table stays pinned and can still be read, but the
/// views say no daemon keeps it (exit status 3), `monitor` says the daemon
/// stopped, and the daemon's lock and monitor socket are gone.
#[test]
fn views_of_a_stopped_daemon_say_so_and_it_leaves_no_runtime_files() {
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 3);
    let mut snooped = Snooped::new(1, &[]);
    let _member = snooped.lab.join(0, GROUP).unwrap();
    let pairs = [(snooped.port(0), GROUP)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    let lock = igmp_user::monitor::socket_path(&snooped.pin_dir).with_extension("lock");
    let socket = igmp_user::monitor::socket_path(&snooped.pin_dir);
    assert!(lock.exists() && socket.exists());

    let show = snooped.cli(&["show"]);
    assert_eq!(show.status.code(), Some(0));
    assert!(
        show.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&snooped.cli(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["daemon"]["running"], true);
    let pid = snooped.lab.daemon_pid().unwrap().to_string();
    assert_eq!(stats["daemon"]["pid"], pid.as_str());

    let monitor = snooped
        .lab
        .command_in_switch(&daemon_binary())
        .arg("monitor")
        .arg("--pin-dir")
        .arg(&snooped.pin_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    let line = igmp_tests::one_error_line(&monitor.wait_with_output().unwrap());
    assert!(line.contains("stopped"), "{line}");

    for view in [&["show"][..], &["routers"], &["stats", "--json"]] {
        let output = snooped.cli(view);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{view:?}: {stderr}");
        assert!(
            stderr.starts_with("igmp-snoop: no daemon runs on"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let show = String::from_utf8_lossy(&snooped.cli(&["show"]).stdout).to_string();
    assert!(
        show.contains(&GROUP.to_string()),
        "the rows are still shown: {show}"
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&snooped.cli(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["daemon"]["running"], false);
    assert!(!lock.exists(), "{} left behind", lock.display());
    assert!(!socket.exists(), "{} left behind", socket.display());
}

/// The pin directory is given once: by `IGMP_SNOOP_PIN_DIR`, or by the
/// configuration file `run` uses; `--pin-dir` wins over both.
#[test]
fn every_command_finds_the_pins_by_the_variable_or_the_config_file() {
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 4);
    let snooped = Snooped::new(1, &[]);
    let _member = snooped.lab.join(0, GROUP).unwrap();
    let pairs = [(snooped.port(0), GROUP)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    let config = std::env::temp_dir().join(format!("igmp-snoop-pins-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!("pin-dir = {:?}\n", snooped.pin_dir.display().to_string()),
    )
    .unwrap();
    let igmp_snoop = || snooped.lab.command_in_switch(&daemon_binary());
    let by_variable = igmp_snoop()
        .env("IGMP_SNOOP_PIN_DIR", &snooped.pin_dir)
        .arg("show")
        .output()
        .unwrap();
    let by_file = igmp_snoop()
        .args(["show", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&config);
    for output in [by_variable, by_file] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&GROUP.to_string()), "{stdout}");
    }
    let flag_wins = igmp_snoop()
        .env("IGMP_SNOOP_PIN_DIR", &snooped.pin_dir)
        .args(["show", "--pin-dir", "/sys/fs/bpf/igmp-snoop-nowhere"])
        .output()
        .unwrap();
    let line = igmp_tests::one_error_line(&flag_wins);
    assert!(line.contains("/sys/fs/bpf/igmp-snoop-nowhere/"), "{line}");
    let run = igmp_snoop()
        .env("IGMP_SNOOP_PIN_DIR", "/sys/fs/bpf/igmp-snoop-elsewhere")
        .args(["run", "--check-config", "-i", "p1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("pin-dir = \"/sys/fs/bpf/igmp-snoop-elsewhere\""),
        "{stdout}"
    );
}

#[test]
fn maps_pinned_by_an_incompatible_version_are_refused_and_kept() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("old");
    std::fs::create_dir_all(&pin_dir).unwrap();
    let old_map = pin_dir.join("MEMBERSHIP");
    pin_map(&old_map, "hash", 12, 24, 16);
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

/// An upgrade whose counters or derived maps changed layout starts anyway:
/// they are made anew (the counts restart at 0, the daemon fills the rest),
/// where a changed state map is refused (above).
#[test]
fn counters_and_derived_maps_of_another_layout_are_made_anew() {
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 6);
    let mut lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("older");
    std::fs::create_dir_all(&pin_dir).unwrap();
    // COUNTERS as builds before the headroom pinned it (22 + 17 counters),
    // GROUPS with a value of another size.
    pin_map(&pin_dir.join("COUNTERS"), "percpu_hash", 4, 312, 16);
    pin_map(&pin_dir.join("GROUPS"), "hash", 8, 99, 16);
    lab.start_daemon(&daemon_binary(), &pin_dir, &[]).unwrap();
    let _member = lab.join(0, GROUP).unwrap();
    let tables = || igmp_user::tables::Tables::open(&pin_dir);
    let joined = igmp_lab::wait_for(Duration::from_secs(5), || {
        tables().is_ok_and(|tables| tables.memberships().len() == 1)
    });
    let log = lab.daemon_log();
    assert!(joined, "{log}");
    for name in ["COUNTERS", "GROUPS"] {
        assert!(
            log.contains(&format!("map=\"{name}\"")) && log.contains("made anew"),
            "{name}: {log}"
        );
    }
    let counters = aya::maps::MapInfo::from_pin(pin_dir.join("COUNTERS")).unwrap();
    assert_eq!(counters.value_size(), 640);
    assert!(
        !tables().unwrap().port_counters().is_empty(),
        "counting again"
    );
    lab.stop_daemon(libc::SIGTERM).unwrap();
    let _ = igmp_user::loader::remove_pins(&pin_dir);
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

/// `show --json --bridge` nests as `bridge -j mdb show` does: the rows under
/// `mdb`, each bridge's router ports under `router`.
#[test]
fn show_in_the_bridges_shape_nests_rows_and_router_ports() {
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 5);
    let snooped = Snooped::new(2, &["--router-port", "p2"]);
    let _member = snooped.lab.join(0, GROUP).unwrap();
    let pairs = [(snooped.port(0), GROUP)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    let output = snooped.cli(&["show", "--json", "--bridge"]);
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let bridge = &shown[0];
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{shown}");
    let row = &bridge["mdb"][0];
    for key in ["dev", "port", "grp", "state", "flags"] {
        assert!(!row[key].is_null(), "{key} missing: {row}");
    }
    assert_eq!(row["dev"], "br0");
    assert_eq!(row["grp"], GROUP.to_string().as_str());
    assert_eq!(bridge["router"]["br0"][0]["port"], "p2");
    assert_eq!(bridge["router"]["br0"][0]["type"], "permanent");
    let refused = snooped.cli(&["show", "--bridge"]);
    let line = igmp_tests::one_error_line(&refused);
    assert!(line.contains("--json"), "{line}");
}
