//! The snooping querier against real hosts and a real competing querier (a
//! Linux bridge with `mcast_querier 1`): elected alone, yields to a lower
//! address, takes over again when that querier falls silent. And what a
//! querier elsewhere on the LAN does to forwarding under `--unregistered
//! auto`: router ports only while it is present, flooded again once its
//! other querier present interval runs out, as on the bridge, and kept
//! across a restart of the daemon until then.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, bridges, the
//! daemon.

use std::{
    net::Ipv4Addr,
    thread::sleep,
    time::{Duration, Instant},
};

use igmp_lab::{ip, run_output, BridgeSnooping, Lab};
use igmp_tests::{
    frames::{self, datagrams, is_report_for, Ipv4},
    snooped::Snooped,
};

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

const N: usize = 20;
/// A group nobody joins, sent to by h1.
const UNREGISTERED: Ipv4Addr = Ipv4Addr::new(239, 3, 3, 40);
/// h3, the other querier's host; its port becomes a router port.
const QUERIER_HOST: usize = 2;

/// One general query from h3's address, as a querier on the LAN sends it
/// (IGMPv3, answered within 0.5 s): h3's port becomes a router port and h3
/// the querier, until its other querier present interval runs out.
/// Returns a time no later than the switch heard it.
fn query_from_h3(lab: &Lab) -> Instant {
    let query = frames::v3_query(Ipv4Addr::UNSPECIFIED, 5, 2, 2, &[]);
    let ip = Ipv4::igmp(lab.hosts[QUERIER_HOST].address, frames::ALL_HOSTS, query);
    let sent = Instant::now();
    lab.inject(QUERIER_HOST, &frames::frame(&[], &ip)).unwrap();
    sent
}

/// What reaches the wires while h1 joins a group and sends to an unregistered one.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Datagrams to the unregistered group on h2's wire (neither member nor router).
    unregistered_on_h2: usize,
    /// Whether h1's reports for `joined` reached h2's wire.
    reports_on_h2: bool,
    /// Datagrams to the unregistered group on h3's wire (the router port).
    unregistered_on_h3: usize,
}

/// The other querier is present: reports and unregistered data go to its port only.
const ROUTERS_ONLY: Seen = Seen {
    unregistered_on_h2: 0,
    reports_on_h2: false,
    unregistered_on_h3: N,
};
/// No querier is known: both are flooded.
const FLOODED: Seen = Seen {
    unregistered_on_h2: N,
    reports_on_h2: true,
    unregistered_on_h3: N,
};

/// h1 joins `joined` (its kernel sends the report at once) and sends N
/// datagrams to the unregistered group; h2 and h3 count what reaches them.
fn measure(lab: &Lab, joined: Ipv4Addr) -> Seen {
    let (on_h2, on_h3) = (lab.capture(1).unwrap(), lab.capture(QUERIER_HOST).unwrap());
    let _member = lab.join(0, joined).unwrap();
    lab.send(0, UNREGISTERED, N, 64).unwrap();
    sleep(Duration::from_millis(300));
    let (h2_frames, h3_frames) = (
        on_h2.frames_for(Duration::from_millis(100)),
        on_h3.frames_for(Duration::from_millis(100)),
    );
    let h1 = lab.hosts[0].address;
    Seen {
        unregistered_on_h2: datagrams(&h2_frames, h1, UNREGISTERED),
        reports_on_h2: h2_frames
            .iter()
            .any(|frame| is_report_for(frame, h1, joined)),
        unregistered_on_h3: datagrams(&h3_frames, h1, UNREGISTERED),
    }
}

/// Sleeps until `at`, if it is still to come.
fn sleep_until(at: Instant) {
    sleep(at.saturating_duration_since(Instant::now()));
}

/// Other querier present interval of both switches below: 2 × 2 s + 1 s / 2.
const OTHER_QUERIER_PRESENT: Duration = Duration::from_millis(4500);
/// Queries every 2 s, answered within 1 s: the other querier present
/// interval is 4.5 s (RFC 3376 §8.5). No `--querier`: this switch never queries.
const SHORT_OTHER_QUERIER: [&str; 4] = ["--query-interval", "2", "--query-response-interval", "1"];

/// (while the querier is present, once its interval ran out)
fn querier_present_then_silent(lab: &Lab) -> (Seen, Seen) {
    let queried = query_from_h3(lab);
    // The bridge counts a querier only once the query's Max Resp Time (0.5 s) passed.
    sleep(Duration::from_secs(1));
    let present = measure(lab, Ipv4Addr::new(239, 3, 3, 41));
    sleep_until(queried + OTHER_QUERIER_PRESENT + Duration::from_millis(1500));
    (present, measure(lab, Ipv4Addr::new(239, 3, 3, 42)))
}

/// RFC 3376 §6.6 / RFC 2236 §3: a querier that falls silent is forgotten
/// after the other querier present interval. The bridge
/// (`br_multicast_querier_exists`) then floods reports and unregistered
/// data again; so must `--unregistered auto`, with no querier of our own.
#[test]
fn when_the_other_querier_falls_silent_reports_and_unregistered_data_flood_again_as_on_the_bridge()
{
    let reference = Lab::new(3, BridgeSnooping::On).unwrap();
    // The bridge's other querier present interval, in centiseconds: 4.5 s.
    ip(
        &reference.switch,
        "link set br0 type bridge mcast_querier_interval 450",
    )
    .unwrap();
    let bridge = querier_present_then_silent(&reference);
    drop(reference);

    let snooped = Snooped::new(3, &SHORT_OTHER_QUERIER);
    let ours = querier_present_then_silent(&snooped.lab);

    // The bridge floods IGMPv3 reports whether or not it knows a querier
    // (`br_multicast_ipv4_rcv` sends only v1/v2 reports to router ports),
    // where RFC 4541 §2.1.1 has them go to router ports: it is the reference
    // for data only, and igmp-snoop is held to the RFC for reports.
    let data = |(present, silent): &(Seen, Seen)| {
        [present, silent].map(|seen| (seen.unregistered_on_h2, seen.unregistered_on_h3))
    };
    assert_eq!(
        data(&bridge),
        data(&(ROUTERS_ONLY, FLOODED)),
        "the reference bridge: {bridge:?}"
    );
    let log = snooped.lab.daemon_log();
    assert_eq!(ours, (ROUTERS_ONLY, FLOODED), "igmp-snoop\n{log}");
    assert!(log.contains("querier: 10.0.0.3 fell silent"), "{log}");
}

/// A restarted daemon keeps the querier its predecessor knew, as it keeps
/// the table: reports and unregistered data keep going to the router ports
/// only, and flood again when that querier's own interval runs out, not
/// at the restart and not at its next query.
#[test]
fn a_restart_keeps_the_other_querier_until_its_interval_runs_out() {
    // 2 × 3 s + 1 s / 2: long enough to restart within, short enough to wait out.
    let args = ["--query-interval", "3", "--query-response-interval", "1"];
    let other_querier_present = Duration::from_millis(6500);
    let mut snooped = Snooped::new(3, &args);
    let queried = query_from_h3(&snooped.lab);
    snooped.wait_until("the other querier", Duration::from_secs(3), || {
        snooped
            .lab
            .daemon_log()
            .contains("querier: 10.0.0.3 is the querier")
    });

    snooped.lab.stop_daemon(libc::SIGKILL).unwrap();
    snooped
        .lab
        .start_daemon(&igmp_tests::daemon_binary(), &snooped.pin_dir, &args)
        .unwrap();
    let restarted = queried.elapsed();
    let after_restart = measure(&snooped.lab, Ipv4Addr::new(239, 3, 3, 43));
    assert!(
        queried.elapsed() < other_querier_present,
        "the restart took too long to tell: {restarted:?}"
    );
    assert_eq!(
        after_restart,
        ROUTERS_ONLY,
        "after the restart\n{}",
        snooped.lab.daemon_log()
    );

    snooped.wait_until("the querier forgotten", Duration::from_secs(10), || {
        snooped
            .lab
            .daemon_log()
            .contains("querier: 10.0.0.3 fell silent")
    });
    assert!(
        queried.elapsed() >= other_querier_present,
        "forgotten after {:?}",
        queried.elapsed()
    );
    assert_eq!(
        measure(&snooped.lab, Ipv4Addr::new(239, 3, 3, 44)),
        FLOODED,
        "once its interval ran out\n{}",
        snooped.lab.daemon_log()
    );
}
