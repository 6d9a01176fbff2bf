//! The snooping querier against real hosts and a real competing querier (a
//! Linux bridge with `mcast_querier 1`): elected alone, yields to a lower
//! address, takes over again when that querier falls silent.

use std::{net::Ipv4Addr, time::Duration};

use igmp_lab::run_output;
use igmp_tests::snooped::Snooped;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 3);
/// Queries every second, answered within half a second; other querier
/// present interval 2 × 1 s + 0.25 s.
const FAST_QUERIER: [&str; 7] = [
    "--querier",
    "--querier-address",
    "10.0.0.250",
    "--query-interval",
    "1",
    "--query-response-interval",
    "0.5",
];

/// The IGMP version host `index`'s kernel runs in after the queries it heard.
fn host_querier_mode(snooped: &Snooped, index: usize) -> String {
    let host = &snooped.lab.hosts[index];
    let table = run_output(&["ip", "netns", "exec", &host.netns, "cat", "/proc/net/igmp"]).unwrap();
    table
        .lines()
        .find(|line| line.contains(&host.interface))
        .and_then(|line| line.split_whitespace().last().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn alone_our_querier_queries_every_port_and_members_refresh() {
    let snooped = Snooped::new(2, &FAST_QUERIER);
    let _member = snooped.lab.join(0, GROUP).unwrap();
    snooped.wait_until("the join", Duration::from_secs(5), || {
        snooped.pairs().len() == 1
    });
    let first_report = snooped.tables().memberships()[0].1.last_report_ns;
    // v3 hosts that hear our v2 queries fall back to v2 (RFC 3376 §7.2.1): proof they heard them.
    for host in 0..2 {
        snooped.wait_until("a v2 query on every host", Duration::from_secs(5), || {
            host_querier_mode(&snooped, host) == "V2"
        });
    }
    // And members answer: the entry is refreshed by their reports.
    snooped.wait_until("a refresh by a report", Duration::from_secs(5), || {
        snooped.tables().memberships()[0].1.last_report_ns > first_report
    });
    assert!(snooped
        .lab
        .daemon_log()
        .contains("querier: this switch queries, from 10.0.0.250"));
}

#[test]
fn a_lower_address_querier_wins_and_we_take_over_when_it_falls_silent() {
    let snooped = Snooped::new(3, &FAST_QUERIER);
    let log = || snooped.lab.daemon_log();
    snooped.wait_until("our querier", Duration::from_secs(5), || {
        log().contains("this switch queries")
    });
    // h3 runs a Linux bridge querier from 10.0.0.3, lower than our 10.0.0.250.
    snooped.lab.start_bridge_querier(2, 2, 100).unwrap();
    snooped.wait_until("yielding", Duration::from_secs(5), || {
        log().contains("querier: 10.0.0.3 is the querier")
    });
    snooped.lab.stop_bridge_querier(2).unwrap();
    snooped.wait_until("taking over again", Duration::from_secs(8), || {
        log().matches("this switch queries").count() == 2
    });
}

/// (IP source, IP destination, IGMP group) of every IGMP query in `frames`.
fn queries(frames: &[Vec<u8>]) -> Vec<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> {
    frames
        .iter()
        .filter(|frame| frame.len() >= 46 && frame[12..14] == [0x08, 0x00] && frame[23] == 2)
        .filter_map(|frame| {
            let header_len = usize::from(frame[14] & 0x0f) * 4;
            let igmp = frame.get(14 + header_len..)?;
            (igmp.first() == Some(&0x11)).then(|| {
                let address = |at: &[u8]| Ipv4Addr::new(at[0], at[1], at[2], at[3]);
                (
                    address(&frame[26..30]),
                    address(&frame[30..34]),
                    address(&igmp[4..8]),
                )
            })
        })
        .collect()
}

#[test]
fn as_querier_a_leave_is_followed_by_lmqc_group_queries_on_its_port() {
    // General queries every 30 s: any query in the window below is a group query.
    let args = [
        "--querier",
        "--querier-address",
        "10.0.0.250",
        "--query-interval",
        "30",
    ];
    let snooped = Snooped::new(2, &args);
    snooped.lab.force_igmp_version(0, 2).unwrap();
    let leaver = snooped.lab.join(0, GROUP).unwrap();
    snooped.wait_until("the join", Duration::from_secs(5), || {
        snooped.pairs().len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let (on_p1, on_p2) = (
        snooped.lab.capture(0).unwrap(),
        snooped.lab.capture(1).unwrap(),
    );
    drop(leaver);
    let seen = queries(&on_p1.frames_for(Duration::from_millis(2500)));
    let group_query = (Ipv4Addr::new(10, 0, 0, 250), GROUP, GROUP);
    assert_eq!(
        seen,
        vec![group_query, group_query],
        "LMQC = 2 group queries to the group itself"
    );
    assert!(
        queries(&on_p2.frames_for(Duration::from_millis(100))).is_empty(),
        "only the leaver's port is asked"
    );
    snooped.wait_until("the leaver removed", Duration::from_secs(3), || {
        snooped.pairs().is_empty()
    });
}

#[test]
fn as_v3_querier_a_blocked_source_is_asked_about_by_source() {
    let args = [
        "--querier",
        "--querier-version",
        "3",
        "--querier-address",
        "10.0.0.250",
        "--query-interval",
        "30",
    ];
    let snooped = Snooped::new(1, &args);
    let (s1, s2) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let first = snooped.lab.join_source(0, GROUP, s1).unwrap();
    let _second = snooped.lab.join_source(0, GROUP, s2).unwrap();
    snooped.wait_until("two sources", Duration::from_secs(5), || {
        snooped.tables().source_entries().len() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let capture = snooped.lab.capture(0).unwrap();
    drop(first);
    let frames = capture.frames_for(Duration::from_millis(1500));
    let asked_about_s1 = frames.iter().any(|frame| {
        let query = frame.len() >= 54 && frame[23] == 2 && frame[38] == 0x11;
        query
            && frame[42..46] == GROUP.octets()
            && frame[48..50] == [0, 1]
            && frame[50..54] == s1.octets()
    });
    assert!(
        asked_about_s1,
        "no group-and-source query for {s1} in {} frames",
        frames.len()
    );
}
