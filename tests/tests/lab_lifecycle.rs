//! The daemon's life cycle: the program stays attached and the table pinned
//! across a crash; a restart takes both over; SIGTERM or `detach` removes
//! them; ports that vanish, come back or stop forwarding are followed.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use igmp_lab::{ip, run_output, Lab};
use igmp_tests::snooped::{program_attached, Snooped};
use rstest::rstest;

const G1: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 1);
const G2: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 2);
const SECONDS_5: Duration = Duration::from_secs(5);

/// (ifindex, group) → created_ns: what a restart must not change.
fn created(snooped: &Snooped) -> BTreeMap<(u32, Ipv4Addr), u64> {
    snooped
        .tables()
        .memberships()
        .into_iter()
        .map(|(key, entry)| ((key.ifindex, Ipv4Addr::from(key.group)), entry.created_ns))
        .collect()
}

#[test]
fn sigkill_keeps_forwarding_state_and_a_restart_adopts_it() {
    let args = ["--last-member-interval", "0.2"];
    let mut snooped = Snooped::new(3, &args);
    let h1 = snooped.lab.join(0, G1).unwrap();
    let _h2 = snooped.lab.join(1, G2).unwrap();
    snooped.wait_until("two joins", SECONDS_5, || snooped.pairs().len() == 2);
    let before = created(&snooped);

    snooped.lab.stop_daemon(libc::SIGKILL).unwrap();
    assert!(
        program_attached(&snooped.lab, "p1"),
        "SIGKILL detached the program"
    );
    // With no daemon at all, the program still learns.
    let _h3 = snooped.lab.join(2, G2).unwrap();
    snooped.wait_until("a join with no daemon", SECONDS_5, || {
        snooped.pairs().len() == 3
    });

    snooped
        .lab
        .start_daemon(&igmp_tests::daemon_binary(), &snooped.pin_dir, &args)
        .unwrap();
    let log = snooped.lab.daemon_log();
    assert!(
        log.contains("took over the attachment of p1 left by a previous daemon"),
        "{log}"
    );
    assert!(log.contains("adopting the table groups=3"), "{log}");
    let after = created(&snooped);
    for (entry, time) in &before {
        assert_eq!(
            after.get(entry),
            Some(time),
            "{entry:?} changed across the restart"
        );
    }
    // The restarted daemon runs the timers: a leave still removes the member.
    drop(h1);
    snooped.wait_until("the leave", SECONDS_5, || snooped.pairs().len() == 2);

    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(
        !program_attached(&snooped.lab, "p1"),
        "SIGTERM left the program attached"
    );
}

/// Whether `port` has an XDP program on its link (and not only the tc classifier).
fn xdp_on_link(snooped: &Snooped, port: &str) -> bool {
    run_output(&["ip", "-n", &snooped.lab.switch, "link", "show", port])
        .is_ok_and(|out| out.contains("xdp"))
}

/// A restart that picks the other hook (XDP before, tc now) moves every port
/// over: the old hook is gone, so no frame is forwarded twice, and the table
/// stays.
#[test]
fn a_restart_in_the_other_hook_moves_every_port_and_keeps_the_table() {
    let mut snooped = Snooped::new(2, &["--attach", "generic"]);
    let member = snooped.lab.join(1, G1).unwrap();
    snooped.wait_until("the join", SECONDS_5, || snooped.pairs().len() == 1);
    assert!(xdp_on_link(&snooped, "p1"));

    snooped.lab.stop_daemon(libc::SIGKILL).unwrap();
    snooped
        .lab
        .start_daemon(
            &igmp_tests::daemon_binary(),
            &snooped.pin_dir,
            &["--attach", "tc"],
        )
        .unwrap();
    let log = snooped.lab.daemon_log();
    assert!(log.contains("adopting the table groups=1"), "{log}");
    for port in ["p1", "p2"] {
        assert!(!xdp_on_link(&snooped, port), "{port} kept its XDP program");
        assert!(
            program_attached(&snooped.lab, port),
            "{port} has no program"
        );
    }
    snooped.lab.send(0, G1, 20, 64).unwrap();
    assert_eq!(member.drain(), 20, "each datagram once");

    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(!program_attached(&snooped.lab, "p1"));
}

/// A group first joined while no daemon runs forwards from its first
/// report: the program registers it itself (issue 13, defect 5). With a
/// querier known, an unregistered group would reach router ports only, so
/// the member would get nothing; a bystander's wire still gets nothing. A
/// daemon started later takes the group over.
#[test]
fn a_group_first_joined_with_no_daemon_is_forwarded_from_its_first_report() {
    const G3: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 3);
    let args = ["--querier"];
    let mut snooped = Snooped::new(3, &args);
    snooped.wait_until("our querier", SECONDS_5, || {
        snooped.lab.daemon_log().contains("this switch queries")
    });
    snooped.lab.stop_daemon(libc::SIGKILL).unwrap();
    let member = snooped.lab.join(1, G3).unwrap();
    snooped.wait_until("the join with no daemon", SECONDS_5, || {
        snooped.pairs().len() == 1
    });
    let datagrams_of_g3 = |frames: Vec<Vec<u8>>| {
        frames
            .iter()
            .filter(|frame| frame.len() >= 34 && frame[23] == 17 && frame[30..34] == G3.octets())
            .count()
    };
    let bystander = snooped.lab.capture(2).unwrap();
    snooped.lab.send(0, G3, 20, 64).unwrap();
    assert_eq!(member.drain(), 20, "the member, with no daemon");
    assert_eq!(
        datagrams_of_g3(bystander.frames_for(Duration::from_millis(100))),
        0,
        "the bystander's wire"
    );

    snooped
        .lab
        .start_daemon(&igmp_tests::daemon_binary(), &snooped.pin_dir, &args)
        .unwrap();
    snooped.lab.send(0, G3, 20, 64).unwrap();
    assert_eq!(member.drain(), 20, "the member, once the daemon is back");
    assert_eq!(
        datagrams_of_g3(bystander.frames_for(Duration::from_millis(100))),
        0
    );
}

/// A run with fewer ports than the one before it takes the program off the
/// ports it dropped, and says so; they learn nothing more.
#[rstest]
fn a_restart_with_fewer_ports_detaches_the_dropped_ones(#[values("generic", "tc")] attach: &str) {
    let args = ["--keep-attached", "--attach", attach];
    let mut snooped = Snooped::new(3, &args);
    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(program_attached(&snooped.lab, "p3"));
    snooped
        .lab
        .start_daemon_on(
            &igmp_tests::daemon_binary(),
            &snooped.pin_dir,
            &["p1", "p2"],
            &["--attach", attach],
        )
        .unwrap();
    let log = snooped.lab.daemon_log();
    assert!(
        log.contains("detached from p3: attached by a previous daemon, no longer a port"),
        "{log}"
    );
    assert!(!program_attached(&snooped.lab, "p3"), "p3 kept the program");
    assert!(program_attached(&snooped.lab, "p1"));
    let _member = snooped.lab.join(2, G1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        snooped.memberships_on(snooped.port(2)),
        0,
        "p3 still learns"
    );
}

/// A stop signal at any moment of the start (Ctrl-C, SIGTERM, the terminal
/// closing) leaves no port attached: before the program is attached nothing
/// is, a start cut short undoes its attachments and the pins it made, and a
/// started daemon detaches as it stops (keeping the table, as SIGTERM does).
#[test]
fn a_stop_signal_at_any_moment_of_the_start_leaves_no_port_attached() {
    let lab = Lab::new(2, igmp_lab::BridgeSnooping::Off).unwrap();
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let mut windows = 0;
    // A start takes tens of milliseconds here, seconds in an emulated guest.
    let delays = (0..60).step_by(3).chain([80, 120, 200, 400, 800, 1500]);
    for delay_ms in delays {
        for signal in signals {
            let pin_dir = igmp_tests::harness::unique_pin_dir("signal");
            let log =
                std::env::temp_dir().join(format!("igmp-snoop-signal-{}.log", std::process::id()));
            let file = std::fs::File::create(&log).unwrap();
            let mut daemon = lab
                .command_in_switch(&igmp_tests::daemon_binary())
                .args(["run", "--iface", "p1", "--iface", "p2", "--pin-dir"])
                .arg(&pin_dir)
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            // SAFETY: signalling our own child.
            unsafe { libc::kill(daemon.id() as i32, signal) };
            wait_with_timeout(&mut daemon, Duration::from_secs(30));
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            for port in ["p1", "p2"] {
                assert!(
                    !program_attached(&lab, port),
                    "signal {signal} after {delay_ms} ms left {port} attached:\n{output}"
                );
            }
            let started = output.contains("adopting");
            if output.contains("while starting") {
                windows += 1;
            }
            // A started daemon keeps its table on a stop signal; a start cut short does not.
            if !started {
                assert!(
                    !pin_dir.join("MEMBERSHIP").exists(),
                    "signal {signal} after {delay_ms} ms left the pins:\n{output}"
                );
            }
            let _ = std::fs::remove_dir_all(&pin_dir);
            let _ = igmp_lab::run(&["rm", "-rf", &pin_dir.to_string_lossy()]);
        }
    }
    assert!(
        windows > 0,
        "no signal arrived during a start: the test saw none of its windows"
    );
}

/// Waits for `child` to exit, killing it after `timeout`.
fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("the daemon did not stop within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keep_attached_survives_sigterm_and_detach_removes_everything() {
    let mut snooped = Snooped::new(1, &["--keep-attached"]);
    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    assert!(program_attached(&snooped.lab, "p1"));
    let output = snooped.cli(&["detach"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !program_attached(&snooped.lab, "p1"),
        "detach left the program attached"
    );
    assert!(!snooped.pin_dir.exists());
}

#[test]
fn a_port_deleted_and_created_again_is_flushed_then_snooped_again() {
    let snooped = Snooped::new(2, &[]);
    let old_p1 = snooped.port(0);
    let member = snooped.lab.join(0, G1).unwrap();
    let _other = snooped.lab.join(1, G1).unwrap();
    snooped.wait_until("joins", SECONDS_5, || snooped.pairs().len() == 2);
    drop(member);

    let (sw, h1) = (
        snooped.lab.switch.clone(),
        snooped.lab.hosts[0].netns.clone(),
    );
    ip(&sw, "link del p1").unwrap();
    snooped.wait_until("p1 flushed", SECONDS_5, || {
        snooped.memberships_on(old_p1) == 0
    });
    assert_eq!(snooped.pairs().len(), 1, "the other port's entry stays");

    // The same port name comes back (a new veth to h1): the daemon attaches again.
    ip(
        &sw,
        &format!("link add p1 type veth peer name eth0 netns {h1}"),
    )
    .unwrap();
    ip(&sw, "link set p1 master br0").unwrap();
    ip(&sw, "link set p1 up").unwrap();
    ip(&h1, "addr add 10.0.0.1/24 dev eth0").unwrap();
    ip(&h1, "link set eth0 up").unwrap();
    let new_p1 = snooped.port(0);
    snooped.wait_until("p1 attached again", SECONDS_5, || {
        program_attached(&snooped.lab, "p1")
    });
    let _again = snooped.lab.join(0, G2).unwrap();
    snooped.wait_until("a join on the new p1", SECONDS_5, || {
        snooped.memberships_on(new_p1) == 1
    });
    // The operator reads what happened in words, not in debug structs.
    let log = snooped.lab.daemon_log();
    assert!(
        log.contains(&format!("port p1 (ifindex {old_p1}) gone")),
        "{log}"
    );
    assert!(log.contains("port p1 (ifindex "), "{log}");
    assert!(!log.contains("Gone {") && !log.contains("Back {"), "{log}");
}

#[test]
fn a_port_that_stops_forwarding_is_flushed_and_learns_nothing_until_it_forwards() {
    let snooped = Snooped::new(2, &[]);
    let p1 = snooped.port(0);
    let _member = snooped.lab.join(0, G1).unwrap();
    snooped.wait_until("the join", SECONDS_5, || snooped.memberships_on(p1) == 1);

    // Kernel STP: a port that comes up goes through LISTENING and LEARNING,
    // forwarding only after two forward delays (2 s each, the minimum).
    let sw = snooped.lab.switch.clone();
    ip(
        &sw,
        "link set br0 type bridge forward_delay 200 stp_state 1",
    )
    .unwrap();
    ip(&sw, "link set p1 down").unwrap();
    ip(&sw, "link set p1 up").unwrap();
    snooped.wait_until("p1 flushed", SECONDS_5, || snooped.memberships_on(p1) == 0);
    let _while_listening = snooped.lab.join(0, G2).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        snooped.memberships_on(p1),
        0,
        "learned on a port that does not forward"
    );

    let forwarding = || {
        run_output(&["bridge", "-n", &sw, "link", "show", "dev", "p1"])
            .is_ok_and(|out| out.contains("state forwarding"))
    };
    snooped.wait_until("STP forwarding", Duration::from_secs(8), forwarding);
    let _join = snooped.lab.join(0, Ipv4Addr::new(239, 5, 5, 9)).unwrap();
    snooped.wait_until("a join after forwarding", SECONDS_5, || {
        snooped.memberships_on(p1) == 1
    });
    let log = snooped.lab.daemon_log();
    assert!(log.contains("blocked by the bridge (STP)"), "{log}");
}
