//! The daemon's life cycle: the program stays attached and the table pinned
//! across a crash; a restart takes both over; SIGTERM or `detach` removes them.

use std::{collections::BTreeMap, net::Ipv4Addr, path::Path, time::Duration};

use igmp_lab::{run_output, wait_for, BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir};
use igmp_user::tables::Tables;

const G1: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 1);
const G2: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 2);

fn xdp_attached(lab: &Lab, port: &str) -> bool {
    run_output(&["ip", "-n", &lab.switch, "link", "show", port])
        .is_ok_and(|out| out.contains("xdp"))
}

/// (ifindex, group) → created_ns: what a restart must not change.
fn table(pin_dir: &Path) -> BTreeMap<(u32, Ipv4Addr), u64> {
    Tables::open(pin_dir)
        .map(|tables| {
            tables
                .memberships()
                .into_iter()
                .map(|(key, entry)| ((key.ifindex, Ipv4Addr::from(key.group)), entry.created_ns))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_keeps_forwarding_state_and_a_restart_adopts_it() {
    let mut lab = Lab::new(3, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("life");
    let args = ["--last-member-interval", "0.2"];
    lab.start_daemon(&daemon_binary(), &pin_dir, &args).unwrap();
    let h1 = lab.join(0, G1).unwrap();
    let _h2 = lab.join(1, G2).unwrap();
    assert!(wait_for(Duration::from_secs(5), || table(&pin_dir).len() == 2));
    let before = table(&pin_dir);

    lab.stop_daemon(libc::SIGKILL).unwrap();
    assert!(xdp_attached(&lab, "p1"), "SIGKILL detached the program");
    // With no daemon at all, the XDP program still learns.
    let _h3 = lab.join(2, G2).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || table(&pin_dir).len() == 3),
        "{:?}",
        table(&pin_dir)
    );

    lab.start_daemon(&daemon_binary(), &pin_dir, &args).unwrap();
    let log = lab.daemon_log();
    assert!(log.contains("took over the XDP link of p1"), "{log}");
    assert!(log.contains("adopting 3 groups"), "{log}");
    let after = table(&pin_dir);
    for (entry, created) in &before {
        assert_eq!(
            after.get(entry),
            Some(created),
            "{entry:?} changed across the restart"
        );
    }
    // The restarted daemon runs the timers: a leave still removes the member.
    drop(h1);
    assert!(
        wait_for(Duration::from_secs(5), || table(&pin_dir).len() == 2),
        "{}",
        lab.daemon_log()
    );

    lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(
        !xdp_attached(&lab, "p1"),
        "SIGTERM left the program attached"
    );
    let _ = igmp_user::loader::remove_pins(&pin_dir);
}

#[test]
fn keep_attached_survives_sigterm_and_detach_removes_everything() {
    let mut lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("keep");
    lab.start_daemon(&daemon_binary(), &pin_dir, &["--keep-attached"])
        .unwrap();
    lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(xdp_attached(&lab, "p1"));
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["detach", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !xdp_attached(&lab, "p1"),
        "detach left the program attached"
    );
    assert!(!pin_dir.exists());
}
