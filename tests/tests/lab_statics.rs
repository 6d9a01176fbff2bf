//! Static groups and operator changes to the table (`igmp-snoop mdb add|del|
//! flush`, the configuration's `static-groups`), through the running daemon,
//! with real hosts, queries and datagrams.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use igmp_common::membership_flags;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary, frames::datagrams, harness::memberships6_in, one_error_line, snooped::Snooped,
};

const G: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 6);
const OTHER: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 7);
const G6: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x66);
const N: usize = 20;

/// Datagrams to `group` from h1 seen on host `host`'s wire.
fn delivered(snooped: &Snooped, host: usize, group: Ipv4Addr) -> usize {
    let capture = snooped.lab.capture(host).unwrap();
    snooped.lab.send(0, group, N, 64).unwrap();
    let frames = capture.frames_for(Duration::from_millis(300));
    datagrams(&frames, snooped.lab.hosts[0].address, group)
}

fn static_flag(snooped: &Snooped, host: usize, group: Ipv4Addr) -> Option<bool> {
    let port = snooped.port(host);
    snooped
        .tables()
        .memberships()
        .into_iter()
        .find(|(key, _)| key.ifindex == port && key.group == group.octets())
        .map(|(_, entry)| entry.flags & membership_flags::STATIC != 0)
}

/// Whether host `host`'s port is a static member of IPv6 `group`.
fn static_flag6(snooped: &Snooped, host: usize, group: Ipv6Addr) -> Option<bool> {
    let port = snooped.port(host);
    memberships6_in(&snooped.pin_dir)
        .into_iter()
        .find(|(key, _)| key.ifindex == port && key.group == group.octets())
        .map(|(_, entry)| entry.flags & membership_flags::STATIC != 0)
}

#[test]
fn a_static_group_reaches_a_port_whose_host_never_reports_until_it_is_deleted() {
    // A real querier on h4: with a querier known, unregistered groups go to
    // router ports only, so h2 gets G only through a membership of p2; and
    // its group-specific queries after a leave lower the port's timer.
    let snooped = Snooped::new(4, &[]);
    snooped.lab.start_bridge_querier(3, 2, 1000).unwrap();
    snooped.wait_until("h4 a router port", Duration::from_secs(5), || {
        !snooped.tables().router_ports().is_empty()
    });
    assert_eq!(delivered(&snooped, 1, G), 0, "unregistered, before");
    let added = snooped.cli(&["mdb", "add", "--port", "p2", "--grp", "239.6.6.6"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&added.stdout).trim(),
        "static: port p2 vid 0 group 239.6.6.6"
    );
    assert_eq!(static_flag(&snooped, 1, G), Some(true));
    assert_eq!(delivered(&snooped, 1, G), N, "the static member");
    assert_eq!(delivered(&snooped, 2, G), 0, "a port without it");
    let shown: serde_json::Value =
        serde_json::from_slice(&snooped.cli(&["show", "--json"]).stdout).unwrap();
    let row = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["port"] == "p2" && row["grp"] == "239.6.6.6")
        .unwrap();
    assert_eq!(row["state"], "permanent");
    // p2's count holds its learned entries of both families (its host's own
    // IPv6 groups, solicited-node and the like, count as the bridge's do),
    // not the static one. Read until two reads agree: the host may join
    // between them.
    let p2 = snooped.lab.port_ifindex("p2").unwrap();
    let counted_and_learned = || {
        let tables = snooped.tables();
        let learned = tables
            .memberships()
            .iter()
            .filter(|(key, entry)| {
                key.ifindex == p2 && entry.flags & membership_flags::UNCOUNTED == 0
            })
            .count()
            + tables
                .memberships6()
                .iter()
                .filter(|(key, _)| key.ifindex == p2)
                .count();
        let counted = tables
            .groups_in_use()
            .into_iter()
            .find(|(ifindex, _)| *ifindex == p2)
            .map_or(0, |(_, n)| n);
        (counted, learned as u64)
    };
    assert!(
        igmp_lab::wait_for(Duration::from_secs(3), || {
            let (counted, learned) = counted_and_learned();
            counted == learned
        }),
        "a static group is not counted under the limits: {:?}",
        counted_and_learned()
    );

    // A host on the port joins and leaves; the querier's group-specific
    // queries go unanswered (LMQC 2 × 1 s), which would remove a learned one.
    snooped.lab.force_igmp_version(1, 2).unwrap();
    let member = snooped.lab.join(1, G).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(member);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        static_flag(&snooped, 1, G),
        Some(true),
        "{}",
        snooped.lab.daemon_log()
    );
    assert_eq!(
        delivered(&snooped, 1, G),
        N,
        "after a leave and its queries"
    );

    let deleted = snooped.cli(&["mdb", "del", "--port", "p2", "--grp", "239.6.6.6"]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(static_flag(&snooped, 1, G), None);
    assert_eq!(delivered(&snooped, 1, G), 0, "deleted");

    let again = one_error_line(&snooped.cli(&["mdb", "del", "--port", "p2", "--grp", "239.6.6.6"]));
    assert!(again.contains("no such membership"), "{again}");
}

#[rstest::rstest]
#[case::not_a_snooped_port(&["--port", "br0", "--grp", "239.6.6.6"], "br0: not a port this daemon snoops")]
#[case::link_local(&["--port", "p1", "--grp", "224.0.0.5"], "224.0.0.5: not a group to snoop")]
#[case::unicast(&["--port", "p1", "--grp", "10.0.0.1"], "10.0.0.1: not a group to snoop")]
fn a_static_group_the_daemon_cannot_take_is_refused_in_one_line(
    #[case] args: &[&str],
    #[case] expected: &str,
) {
    let snooped = Snooped::new(1, &[]);
    let mut command = vec!["mdb", "add"];
    command.extend(args);
    let line = one_error_line(&snooped.cli(&command));
    assert!(line.contains(expected), "{line}");
    assert!(snooped.tables().memberships().is_empty());
}

#[test]
fn without_a_daemon_mdb_says_there_is_none() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["mdb", "flush", "--pin-dir", "/sys/fs/bpf/igmp-snoop-nobody"])
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains("no daemon to ask"), "{line}");
}

#[test]
fn flush_removes_one_ports_memberships_or_all() {
    let snooped = Snooped::new(3, &[]);
    let _h1 = snooped.lab.join(0, G).unwrap();
    let _h3 = snooped.lab.join(2, OTHER).unwrap();
    let both = [(snooped.port(0), G), (snooped.port(2), OTHER)]
        .into_iter()
        .collect();
    snooped.wait_for_pairs(&both, Duration::from_secs(5));
    // A joining IGMPv3 host sends its report again within its unsolicited
    // report interval (1 s by default): one that came after the flush would
    // bring the membership back, as it should.
    std::thread::sleep(Duration::from_millis(1500));

    // The hosts' own MLD reports (solicited-node groups) come when they
    // will, so only the IGMP count is known here.
    let flushed = snooped.cli(&["mdb", "flush", "--port", "p1"]);
    let line = String::from_utf8_lossy(&flushed.stdout).trim().to_string();
    assert!(
        line.starts_with("flushed 1 IGMP and ") && line.ends_with(" MLD memberships of port p1"),
        "{line}"
    );
    assert_eq!(
        snooped.pairs(),
        [(snooped.port(2), OTHER)].into_iter().collect()
    );
    let flushed = snooped.cli(&["mdb", "flush"]);
    let line = String::from_utf8_lossy(&flushed.stdout).trim().to_string();
    assert!(
        line.starts_with("flushed 1 IGMP and ") && line.ends_with(" MLD memberships"),
        "{line}"
    );
    assert!(snooped.pairs().is_empty());
}

#[test]
fn the_configurations_static_groups_are_installed_at_start_and_kept_across_a_restart() {
    let config =
        std::env::temp_dir().join(format!("igmp-snoop-static-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[ports.p2]\nstatic-groups = [\"239.6.6.6\", \"ff0e::66\"]\n",
    )
    .unwrap();
    let mut snooped = Snooped::new(2, &["--config", config.to_str().unwrap()]);
    let installed =
        || static_flag(&snooped, 1, G) == Some(true) && static_flag6(&snooped, 1, G6) == Some(true);
    assert!(
        wait_for(Duration::from_secs(5), installed),
        "{}",
        snooped.lab.daemon_log()
    );

    // A restart without the file keeps the table, the static entry with it.
    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    let _ = std::fs::remove_file(&config);
    snooped
        .lab
        .start_daemon(&daemon_binary(), &snooped.pin_dir.clone(), &[])
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (static_flag(&snooped, 1, G), static_flag6(&snooped, 1, G6)),
        (Some(true), Some(true)),
        "{}",
        snooped.lab.daemon_log()
    );
    assert_eq!(delivered(&snooped, 1, G), N);
}

#[test]
fn fast_leave_does_not_remove_a_static_group() {
    let snooped = Snooped::new(2, &["--fast-leave", "p2"]);
    let added = snooped.cli(&["mdb", "add", "--port", "p2", "--grp", "239.6.6.6"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let member = snooped.lab.join(1, G).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(member);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        static_flag(&snooped, 1, G),
        Some(true),
        "{}",
        snooped.lab.daemon_log()
    );
}

/// An IPv6 static group goes through the same request path into MLD's
/// table (`MEMBERSHIP6`, `GROUPS6`), `show` lists it after the IPv4 ones,
/// and ff02::1, always flooded, is refused in one line. (The program's MLD
/// parser is not needed: the daemon writes the entry.)
#[test]
fn an_ipv6_static_group_is_kept_in_mlds_table_and_shown_after_ipv4() {
    let snooped = Snooped::new(2, &[]);
    for (group, expected) in [
        ("239.6.6.6", "static: port p2 vid 0 group 239.6.6.6"),
        ("ff0e::66", "static: port p2 vid 0 group ff0e::66"),
    ] {
        let added = snooped.cli(&["mdb", "add", "--port", "p2", "--grp", group]);
        assert_eq!(
            String::from_utf8_lossy(&added.stdout).trim(),
            expected,
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    let tables = snooped.tables();
    let ipv6 = tables.ipv6.as_ref().expect("MLD's maps pinned");
    let group: std::net::Ipv6Addr = "ff0e::66".parse().unwrap();
    // Beside the hosts' own (solicited-node) groups, learned when they come.
    let entries: Vec<_> = ipv6
        .learned
        .memberships()
        .into_iter()
        .filter(|(key, _)| key.group == group.octets())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_ne!(entries[0].1.flags & membership_flags::STATIC, 0);
    // Beside the groups the switch's own interfaces joined (local listeners).
    let forwarded: Vec<_> = ipv6
        .forwarding
        .groups
        .keys()
        .filter_map(Result::ok)
        .collect();
    assert!(
        forwarded.contains(&entries[0].0.group_key()),
        "no GROUPS6 entry: {forwarded:?}"
    );
    let shown: serde_json::Value =
        serde_json::from_slice(&snooped.cli(&["show", "--json"]).stdout).unwrap();
    let groups: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["grp"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["239.6.6.6", "ff0e::66"]);

    let refused = snooped.cli(&["mdb", "add", "--port", "p2", "--grp", "ff02::1"]);
    let line = one_error_line(&refused);
    assert!(line.contains("ff02::1: not a group to snoop"), "{line}");
    let deleted = snooped.cli(&["mdb", "del", "--port", "p2", "--grp", "ff0e::66"]);
    assert!(deleted.status.success());
    assert!(snooped.tables().memberships6().is_empty());
}
