//! Real kernel IGMP clients in network namespaces, on a Linux bridge whose
//! own snooping is off, with igmp-snoop attached to its ports.
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use igmp_common::filter_mode;
use igmp_lab::wait_for;
use igmp_tests::snooped::Snooped;
use igmp_user::{tables::Tables, timers::monotonic_ns};

const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);
const G3: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 3);
const S1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);

#[test]
fn kernel_clients_of_every_version_fill_the_table_with_exactly_their_joins() {
    let snooped = Snooped::new(4, &[]);
    let lab = &snooped.lab;
    lab.force_igmp_version(0, 1).unwrap();
    lab.force_igmp_version(1, 2).unwrap();
    let joined_at = monotonic_ns();
    let _v1 = lab.join(0, G1).unwrap();
    let _v2 = lab.join(1, G2).unwrap();
    let _v3 = lab.join(2, G2).unwrap();
    let _v3_second = lab.join(2, G3).unwrap();
    // Host 4 joins nothing and must appear nowhere.
    let expected: BTreeSet<_> = [
        (snooped.port(0), G1),
        (snooped.port(1), G2),
        (snooped.port(2), G2),
        (snooped.port(2), G3),
    ]
    .into();
    snooped.wait_for_pairs(&expected, Duration::from_secs(5));
    for (key, entry) in snooped.tables().memberships() {
        let version = match key.ifindex {
            port if port == snooped.port(0) => 1,
            port if port == snooped.port(1) => 2,
            _ => 3,
        };
        assert_eq!(entry.version, version, "{key:?}");
        assert_eq!(entry.filter_mode, filter_mode::EXCLUDE);
        assert!(
            entry.last_report_ns >= joined_at,
            "stale timestamp in {entry:?}"
        );
        assert!(monotonic_ns() - entry.last_report_ns < 5_000_000_000);
    }
}

#[test]
fn v2_and_v3_leaves_remove_only_the_leaver_after_the_last_member_query_time() {
    let snooped = Snooped::new(3, &["--last-member-interval", "0.2"]);
    let lab = &snooped.lab;
    lab.force_igmp_version(0, 2).unwrap();
    let v2 = lab.join(0, G1).unwrap();
    let v3 = lab.join(1, G1).unwrap();
    let _stays = lab.join(2, G1).unwrap();
    let all: BTreeSet<_> = (0..3).map(|host| (snooped.port(host), G1)).collect();
    snooped.wait_for_pairs(&all, Duration::from_secs(5));

    drop(v2);
    let without_v2: BTreeSet<_> = [(snooped.port(1), G1), (snooped.port(2), G1)].into();
    snooped.wait_for_pairs(&without_v2, Duration::from_secs(3));

    drop(v3);
    let only_last: BTreeSet<_> = [(snooped.port(2), G1)].into();
    snooped.wait_for_pairs(&only_last, Duration::from_secs(3));
}

#[test]
fn v1_members_expire_after_the_group_membership_interval() {
    // GMI = 2 × 1.25 s + 0.5 s = 3 s.
    let snooped = Snooped::new(
        2,
        &[
            "--query-interval",
            "1.25",
            "--query-response-interval",
            "0.5",
        ],
    );
    let lab = &snooped.lab;
    lab.force_igmp_version(0, 1).unwrap();
    let v1 = lab.join(0, G1).unwrap();
    let _v2 = lab.join(1, G2).unwrap();
    let both: BTreeSet<_> = [(snooped.port(0), G1), (snooped.port(1), G2)].into();
    snooped.wait_for_pairs(&both, Duration::from_secs(5));
    // v1 has no leave message: the socket closes silently and the entry times out.
    drop(v1);
    let expired = wait_for(Duration::from_secs(20), || snooped.pairs().is_empty());
    assert!(expired, "{:?}\n{}", snooped.pairs(), lab.daemon_log());
    assert!(lab.daemon_log().contains("reason=\"timeout\""));
}

#[test]
fn v3_source_specific_join_records_an_include_source() {
    let snooped = Snooped::new(2, &[]);
    let _member = snooped.lab.join_source(0, G3, S1).unwrap();
    snooped.wait_for_pairs(&[(snooped.port(0), G3)].into(), Duration::from_secs(5));
    let tables = snooped.tables();
    let (_, entry) = tables.memberships()[0];
    assert_eq!(entry.filter_mode, filter_mode::INCLUDE);
    let sources: Vec<_> = tables
        .source_entries()
        .iter()
        .map(|(key, entry)| (Ipv4Addr::from(key.source), entry.mode))
        .collect();
    assert_eq!(sources, vec![(S1, filter_mode::INCLUDE)]);
}

#[test]
fn cli_show_json_reports_the_lab_table_with_bridge_keys() {
    let snooped = Snooped::new(2, &[]);
    let _member = snooped.lab.join(1, G2).unwrap();
    snooped.wait_for_pairs(&[(snooped.port(1), G2)].into(), Duration::from_secs(5));
    let output = snooped.cli(&["show", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["port"], "p2", "{rows}");
    assert_eq!(rows[0]["grp"], "239.1.1.2");
    assert_eq!(rows[0]["state"], "temp");
    let timer: f64 = rows[0]["timer"].as_str().unwrap().parse().unwrap();
    assert!(timer > 250.0 && timer <= 260.0, "{timer}");
}

/// (source, mode) of every source entry of `group`.
fn source_modes(tables: &Tables, group: Ipv4Addr) -> Vec<(Ipv4Addr, u8)> {
    tables
        .source_entries()
        .iter()
        .filter(|(key, _)| Ipv4Addr::from(key.group) == group)
        .map(|(key, entry)| (Ipv4Addr::from(key.source), entry.mode))
        .collect()
}

#[test]
fn v3_include_and_exclude_changes_follow_the_host_filter() {
    const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 98);
    let snooped = Snooped::new(1, &["--last-member-interval", "0.2"]);
    let lab = &snooped.lab;
    let mode = || {
        snooped
            .tables()
            .memberships()
            .first()
            .map(|(_, entry)| entry.filter_mode)
    };
    let sources = || source_modes(&snooped.tables(), G3);
    let include = filter_mode::INCLUDE;

    // INCLUDE {S1}, then ALLOW {S2}.
    let s1 = lab.join_source(0, G3, S1).unwrap();
    let _s2 = lab.join_source(0, G3, S2).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || sources()
            == vec![(S2, include), (S1, include)]),
        "{:?}",
        sources()
    );
    assert_eq!(mode(), Some(include));

    // BLOCK {S1}: S1 goes after the last member query time, S2 stays.
    drop(s1);
    assert!(
        wait_for(Duration::from_secs(5), || sources() == vec![(S2, include)]),
        "{:?}",
        sources()
    );

    // An any-source member on the same host: TO_EX {}.
    let any_source = lab.join(0, G3).unwrap();
    assert!(wait_for(Duration::from_secs(5), || mode()
        == Some(filter_mode::EXCLUDE)));

    // It leaves: TO_IN {S2}. After the last member query time the group is INCLUDE {S2}.
    drop(any_source);
    let back_to_include = wait_for(Duration::from_secs(5), || mode() == Some(include));
    assert!(back_to_include, "{:?}\n{}", mode(), lab.daemon_log());
    assert_eq!(sources(), vec![(S2, include)]);
}

#[test]
fn reports_refresh_an_entry_and_without_them_it_expires_after_the_gmi() {
    // GMI = 2 × 1.25 s + 0.5 s = 3 s.
    let snooped = Snooped::new(
        1,
        &[
            "--query-interval",
            "1.25",
            "--query-response-interval",
            "0.5",
        ],
    );
    let host = Ipv4Addr::new(10, 0, 0, 60);
    let report = igmp_tests::frames::v2_report(host, G2);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        snooped.lab.inject(0, &report).unwrap();
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(
            snooped.pairs().len(),
            1,
            "expired while refreshed\n{}",
            snooped.lab.daemon_log()
        );
    }
    let silent = std::time::Instant::now();
    assert!(wait_for(Duration::from_secs(6), || snooped
        .pairs()
        .is_empty()));
    let lived = silent.elapsed();
    assert!(
        lived >= Duration::from_millis(2000),
        "expired {lived:?} after the last report, before the GMI"
    );
}
