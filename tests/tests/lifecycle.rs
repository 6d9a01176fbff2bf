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

fn memberships_on(pin_dir: &Path, ifindex: u32) -> usize {
    Tables::open(pin_dir)
        .map(|t| {
            t.memberships()
                .iter()
                .filter(|(key, _)| key.ifindex == ifindex)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_port_deleted_and_created_again_is_flushed_then_snooped_again() {
    let mut lab = Lab::new(2, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("recreate");
    lab.start_daemon(&daemon_binary(), &pin_dir, &[]).unwrap();
    let old_p1 = lab.port_ifindex("p1").unwrap();
    let member = lab.join(0, G1).unwrap();
    let _other = lab.join(1, G1).unwrap();
    assert!(wait_for(Duration::from_secs(5), || memberships_on(
        &pin_dir, old_p1
    ) == 1));
    drop(member);

    run_output(&["ip", "-n", &lab.switch, "link", "del", "p1"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || memberships_on(&pin_dir, old_p1)
            == 0),
        "{}",
        lab.daemon_log()
    );
    assert_eq!(table(&pin_dir).len(), 1, "the other port's entry stays");

    // The same port name comes back (a new veth to h1): the daemon attaches again.
    let (sw, h1) = (lab.switch.clone(), lab.hosts[0].netns.clone());
    run_output(&[
        "ip", "-n", &sw, "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", &h1,
    ])
    .unwrap();
    for args in [
        vec!["ip", "-n", &sw, "link", "set", "p1", "master", "br0"],
        vec!["ip", "-n", &sw, "link", "set", "p1", "up"],
        vec!["ip", "-n", &h1, "addr", "add", "10.0.0.1/24", "dev", "eth0"],
        vec!["ip", "-n", &h1, "link", "set", "eth0", "up"],
    ] {
        run_output(&args).unwrap();
    }
    let new_p1 = lab.port_ifindex("p1").unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || xdp_attached(&lab, "p1")),
        "{}",
        lab.daemon_log()
    );
    let _again = lab.join(0, G2).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || memberships_on(&pin_dir, new_p1)
            == 1),
        "{}",
        lab.daemon_log()
    );
    lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(!xdp_attached(&lab, "p1"));
    let _ = igmp_user::loader::remove_pins(&pin_dir);
}

#[test]
fn a_port_that_stops_forwarding_is_flushed_and_learns_nothing_until_it_forwards() {
    let mut lab = Lab::new(2, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("stp");
    lab.start_daemon(&daemon_binary(), &pin_dir, &[]).unwrap();
    let p1 = lab.port_ifindex("p1").unwrap();
    let _member = lab.join(0, G1).unwrap();
    assert!(wait_for(Duration::from_secs(5), || memberships_on(
        &pin_dir, p1
    ) == 1));

    // Kernel STP: a port that comes up goes through LISTENING and LEARNING,
    // forwarding only after two forward delays (2 s each, the minimum).
    let sw = lab.switch.clone();
    run_output(&[
        "ip",
        "-n",
        &sw,
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "forward_delay",
        "200",
        "stp_state",
        "1",
    ])
    .unwrap();
    run_output(&["ip", "-n", &sw, "link", "set", "p1", "down"]).unwrap();
    run_output(&["ip", "-n", &sw, "link", "set", "p1", "up"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || memberships_on(&pin_dir, p1) == 0),
        "{}",
        lab.daemon_log()
    );
    let _while_listening = lab.join(0, G2).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        memberships_on(&pin_dir, p1),
        0,
        "learned on a port that does not forward"
    );

    let forwarding = || {
        run_output(&["bridge", "-n", &sw, "link", "show", "dev", "p1"])
            .is_ok_and(|out| out.contains("state forwarding"))
    };
    assert!(wait_for(Duration::from_secs(8), forwarding));
    let _join = lab.join(0, Ipv4Addr::new(239, 5, 5, 9)).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || memberships_on(&pin_dir, p1) == 1),
        "{}",
        lab.daemon_log()
    );
    assert!(lab.daemon_log().contains("Blocked"), "{}", lab.daemon_log());
    lab.stop_daemon(libc::SIGTERM).unwrap();
    let _ = igmp_user::loader::remove_pins(&pin_dir);
}
