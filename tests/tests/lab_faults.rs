//! Faults around a running or starting daemon: no bpffs to pin in, a ring
//! buffer that overflows while the daemon is stopped, and a SIGKILL while
//! multicast flows, or a stop with --keep-attached. (SIGKILL with adoption of
//! the table, interfaces deleted under the daemon and incompatible pins are
//! in lab_lifecycle.rs and lab_cli.rs.)
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{
    net::{Ipv4Addr, UdpSocket},
    process::Command,
    time::Duration,
};

use igmp_common::{Counter, DataCounter};
use igmp_lab::{in_netns, BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary, frames,
    harness::unique_pin_dir,
    one_error_line, pin_map,
    replace::{pin_layout_0, pinned_layout, stream_across},
    snooped::{program_attached, Snooped},
};

fn assert_names_bpffs(line: &str) {
    assert!(line.contains("not on a bpf filesystem"), "{line}");
    assert!(line.contains("mount -t bpf bpf /sys/fs/bpf"), "{line}");
}

#[test]
fn a_pin_dir_outside_bpffs_is_refused_with_the_mount_command() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = std::env::temp_dir().join(format!("igmp-snoop-pins-{}", std::process::id()));
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    assert_names_bpffs(&one_error_line(&output));
    assert!(!pin_dir.exists(), "created {}", pin_dir.display());
    assert!(!program_attached(&lab, "p1"));
}

/// A table a newer build pinned (its layout version above this build's)
/// is refused in one line, before any port changes: this build cannot know
/// what its maps mean.
#[test]
fn a_table_of_a_newer_layout_is_refused_in_one_line() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("newer");
    std::fs::create_dir_all(&pin_dir).unwrap();
    let version = pin_dir.join("LAYOUT_VERSION");
    pin_map(&version, "array", 4, 4, 1);
    let written = Command::new("bpftool")
        .args(["map", "update", "pinned"])
        .arg(&version)
        .args(["key", "0", "0", "0", "0", "value", "99", "0", "0", "0"])
        .status()
        .unwrap();
    assert!(written.success());
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(
        line.contains("pinned by a newer igmp-snoop") && line.contains("table layout 99"),
        "{line}"
    );
    assert!(line.contains("igmp-snoop detach --pin-dir"), "{line}");
    assert!(!program_attached(&lab, "p1"));
    let _ = igmp_user::loader::remove_pins(&pin_dir);
}

#[test]
fn bpffs_not_mounted_is_refused_with_the_mount_command() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("nobpffs");
    // A private mount namespace without bpffs at /sys/fs/bpf: the machine's stays mounted.
    let script = format!(
        "umount /sys/fs/bpf && exec nsenter --net=/run/netns/{} {} run --iface p1 --pin-dir {}",
        lab.switch,
        daemon_binary().display(),
        pin_dir.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_names_bpffs(&one_error_line(&output));
    assert!(!pin_dir.exists());
    assert!(!program_attached(&lab, "p1"));
}

/// `event_lost` on a port, from `igmp-snoop stats --json`.
fn events_lost(snooped: &Snooped, port: &str) -> u64 {
    let output = snooped.cli(&["stats", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["port"] == port)
        .map_or(0, |block| {
            block["messages"][Counter::EventLost.name()]
                .as_u64()
                .unwrap()
        })
}

#[test]
fn a_full_ring_buffer_is_counted_and_the_daemon_catches_up_from_the_table() {
    // Group membership interval 7 s: long enough to look, short enough to see expiry.
    let args = [
        "--robustness",
        "1",
        "--query-interval",
        "6",
        "--query-response-interval",
        "1",
        // The burst is the point here, not the limits against it.
        "--max-groups-per-port",
        "0",
        "--report-rate",
        "0",
    ];
    let snooped = Snooped::new(1, &args);
    let pid = snooped.lab.daemon_pid().unwrap() as i32;
    // More joins than the 256 KiB ring buffer holds events (40 bytes each).
    let groups: Vec<Ipv4Addr> = (0..8000u32)
        .map(|n| Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 50, 0, 0)) + n))
        .collect();
    let reports: Vec<Vec<u8>> = groups
        .iter()
        .map(|group| frames::v2_report(snooped.lab.hosts[0].address, *group))
        .collect();

    // SAFETY: plain kill(2) on the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(snooped.lab.inject_all(0, &reports).unwrap(), 0);
    let in_table = snooped.pairs().len();
    let lost = events_lost(&snooped, "p1");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };

    assert_eq!(in_table, groups.len(), "the XDP program learned every join");
    assert!(lost > 0, "no event counted as lost");
    // The daemon reads the table for what the lost events said: every group
    // gets a fast-path entry and, unrefreshed, expires.
    snooped.wait_until("every group registered", Duration::from_secs(10), || {
        snooped.tables().forwarding.groups.keys().count() == groups.len()
    });
    snooped.wait_until("every group expired", Duration::from_secs(20), || {
        snooped.pairs().is_empty()
    });
    assert!(
        snooped.lab.daemon_log().contains("events lost"),
        "{}",
        snooped.lab.daemon_log()
    );
}

const STREAM: Ipv4Addr = Ipv4Addr::new(239, 60, 0, 1);
/// Datagrams sent once the new daemon runs (half a second of stream).
const AFTER_RESTART: usize = 1000;

/// What the new daemon finds pinned.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    /// What the stopped daemon left.
    Left,
    /// A table of layout 0, as builds before the layout version left it: no
    /// `LAYOUT_VERSION`, and `COUNTERS` without headroom (22 + 17 counters).
    Layout0,
}

/// A stream at a real socket loses nothing while the daemon goes away and a
/// new one takes the table and the attachments over: killed (the program
/// stays), or stopped with `--keep-attached` (as an upgrade with
/// `keep-attached = true` does), and so upgraded from a table of layout 0
/// (migrated, its counters made anew, its program swapped in through the
/// pinned links); or stopped without it, when the bridge (its own snooping
/// off) floods the stream until the new daemon attaches. The hosts keep
/// veth's defaults: the classifier
/// (`--attach auto` on veth) hands the skb on with its checksum state, so
/// no offload needs turning off.
#[rstest::rstest]
#[case::sigkill(libc::SIGKILL, &[], Table::Left)]
#[case::sigterm_keep_attached(libc::SIGTERM, &["--keep-attached"], Table::Left)]
#[case::upgrade_from_layout_0(libc::SIGTERM, &["--keep-attached"], Table::Layout0)]
#[case::sigterm_detached(libc::SIGTERM, &[], Table::Left)]
fn multicast_keeps_flowing_through_the_fast_path_while_the_daemon_is_replaced(
    #[case] signal: i32,
    #[case] args: &[&str],
    #[case] table: Table,
) {
    let mut snooped = Snooped::new(2, args);
    let member = snooped.lab.join(1, STREAM).unwrap();
    let pairs = [(snooped.port(1), STREAM)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    let forwarded_before = snooped.tables().data_counters().frames[DataCounter::Forwarded as usize];
    let sender = snooped.lab.hosts[0].clone();
    let socket = in_netns(&sender.netns, || {
        let socket = UdpSocket::bind((sender.address, 0))?;
        socket.set_multicast_ttl_v4(8)?;
        Ok(socket)
    })
    .unwrap();
    let (sent, received) = stream_across(&socket, STREAM, &member, AFTER_RESTART, || {
        snooped.lab.stop_daemon(signal).unwrap();
        if table == Table::Layout0 {
            pin_layout_0(&snooped.pin_dir);
        }
        std::thread::sleep(Duration::from_millis(500));
        snooped
            .lab
            .start_daemon(&daemon_binary(), &snooped.pin_dir, args)
            .unwrap();
    });
    assert_eq!(
        received, sent,
        "datagrams lost while the daemon was replaced"
    );
    let forwarded = snooped.tables().data_counters().frames[DataCounter::Forwarded as usize];
    // Detached, the fast path saw only what came after the new start.
    let attached_throughout = signal == libc::SIGKILL || args.contains(&"--keep-attached");
    let floor = if attached_throughout {
        sent as u64 / 2
    } else {
        AFTER_RESTART as u64 / 2
    };
    assert!(
        forwarded - forwarded_before >= floor,
        "the stream did not go through the fast path: {} of {sent}",
        forwarded - forwarded_before
    );
    let log = snooped.lab.daemon_log();
    assert!(log.contains("adopting the table groups=1"), "{log}");
    if table == Table::Layout0 {
        assert!(
            log.contains("table layout migrated") && log.contains("from=0 to=1"),
            "{log}"
        );
        assert!(
            log.contains("map=\"COUNTERS\"") && log.contains("made anew"),
            "{log}"
        );
    }
    assert_eq!(pinned_layout(&snooped.pin_dir), 1, "LAYOUT_VERSION");
}
