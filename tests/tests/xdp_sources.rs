//! BPF_PROG_TEST_RUN: the IGMPv3 source tables of one port (RFC 3376 §6.4)
//! as the program keeps them, reports from several hosts merged as the
//! port's state, and what group-and-source queries tell user space
//! (§6.6.1). Every frame arrives on the same port, as from hosts behind a hub.
//!
//! A source of mode INCLUDE is in the requested list (INCLUDE's A,
//! EXCLUDE's X), one of mode EXCLUDE in EXCLUDE's Y; `listed` says whether
//! an EXCLUDE record since deleted it.
//!
//! TestRun tier (`Harness`, no namespaces).

use std::net::Ipv4Addr;

use igmp_common::{
    filter_mode, query_flags, source_flags, Counter, Event, EventKind, MAX_V3_SOURCES_PER_RECORD,
};
use igmp_tests::{frames::*, harness::Harness};

const H1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const H2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 8);
const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const S1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const S2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const S3: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

const IN: u8 = filter_mode::INCLUDE;
const EX: u8 = filter_mode::EXCLUDE;
const PENDING: u8 = source_flags::LEAVE_PENDING;

/// One record from `host`. A millisecond apart: `SourceEntry::named` keeps
/// 66 µs steps, and reports within one step count as naming each other's sources.
fn report(harness: &Harness, host: Ipv4Addr, kind: u8, sources: &[Ipv4Addr]) {
    std::thread::sleep(std::time::Duration::from_millis(1));
    harness.run(&v3_report_frame(host, &[Record::new(kind, GROUP, sources)]));
}

/// The group's mode, and each source still in its lists: (source, mode, flags).
fn state(harness: &Harness) -> (u8, Vec<Listed>) {
    let memberships = harness.memberships();
    let (_, group) = memberships
        .iter()
        .find(|(key, _)| key.group == GROUP.octets())
        .expect("the group's entry");
    let listed = harness
        .sources()
        .iter()
        .filter(|(_, entry)| entry.listed(group.filter_mode, group.last_report_ns))
        .map(|(key, entry)| (Ipv4Addr::from(key.source), entry.mode, entry.flags))
        .collect();
    (group.filter_mode, listed)
}

/// A report: (host, record type, sources).
type Report = (Ipv4Addr, u8, &'static [Ipv4Addr]);
/// A listed source: (source, mode, flags).
type Listed = (Ipv4Addr, u8, u8);

/// Each case: the reports in order, then the port's mode and listed
/// sources (RFC 3376 §6.4.1 and §6.4.2 tables).
#[rustfmt::skip]
const CASES: &[(&str, &[Report], u8, &[Listed])] = &[
    ("EXCLUDE(X,Y)+BLOCK(A) → EXCLUDE(X+(A-X-Y),Y): a source not listed enters X and is asked about",
     &[(H1, CHANGE_TO_EXCLUDE, &[]), (H1, BLOCK_OLD_SOURCES, &[S1])],
     EX, &[(S1, IN, PENDING)]),
    ("EXCLUDE(X,Y)+BLOCK(A): a source in Y stays there, not asked about",
     &[(H1, CHANGE_TO_EXCLUDE, &[S1]), (H1, BLOCK_OLD_SOURCES, &[S1])],
     EX, &[(S1, EX, 0)]),
    ("INCLUDE(A)+BLOCK(B) → INCLUDE(A): only A*B is asked about",
     &[(H1, MODE_IS_INCLUDE, &[S1]), (H1, BLOCK_OLD_SOURCES, &[S1, S2])],
     IN, &[(S1, IN, PENDING)]),
    ("EXCLUDE(X,Y)+IS_IN(A) → EXCLUDE(X+A,Y-A): one host's IS_IN takes the source out of Y",
     &[(H1, MODE_IS_EXCLUDE, &[S1]), (H2, MODE_IS_INCLUDE, &[S1])],
     EX, &[(S1, IN, 0)]),
    ("a source one host asks for never enters Y: the other host's IS_EX naming it leaves it in X",
     &[(H1, MODE_IS_EXCLUDE, &[S1]), (H2, MODE_IS_INCLUDE, &[S1]), (H1, MODE_IS_EXCLUDE, &[S1])],
     EX, &[(S1, IN, 0)]),
    ("INCLUDE(A)+IS_EX(B) → EXCLUDE(A*B,B-A): A-B deleted, A*B asked for, B-A excluded",
     &[(H1, MODE_IS_INCLUDE, &[S1, S2]), (H2, MODE_IS_EXCLUDE, &[S2, S3])],
     EX, &[(S2, IN, 0), (S3, EX, 0)]),
    ("EXCLUDE(X,Y)+IS_EX(A) → EXCLUDE(A-Y,Y*A): a source new to the lists is asked for (A-X-Y=GMI)",
     &[(H1, MODE_IS_EXCLUDE, &[]), (H2, MODE_IS_EXCLUDE, &[S1])],
     EX, &[(S1, IN, 0)]),
    ("EXCLUDE(X,Y)+IS_EX(A): Y-A deleted, Y*A kept",
     &[(H1, CHANGE_TO_EXCLUDE, &[S1, S2]), (H1, MODE_IS_EXCLUDE, &[S2])],
     EX, &[(S2, EX, 0)]),
];

#[test]
fn a_ports_source_lists_merge_its_hosts_reports_as_rfc_3376_tables_say() {
    let mut failures = Vec::new();
    for (description, reports, mode, expected) in CASES {
        let harness = Harness::new();
        for (host, kind, sources) in *reports {
            report(&harness, *host, *kind, sources);
        }
        let (got_mode, mut got) = state(&harness);
        got.sort();
        if (got_mode, got.as_slice()) != (*mode, *expected) {
            failures.push(format!(
                "{description}: mode {got_mode}, {got:?}; expected mode {mode}, {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_v2_report_in_exclude_mode_deletes_the_source_lists() {
    let harness = Harness::new();
    report(&harness, H1, CHANGE_TO_EXCLUDE, &[S1]);
    std::thread::sleep(std::time::Duration::from_millis(1));
    harness.run(&v2_report(H2, GROUP));
    assert_eq!(
        state(&harness),
        (EX, vec![]),
        "EXCLUDE {{}}: every source wanted"
    );
}

fn query(harness: &Harness, message: Vec<u8>) {
    harness.run(&frame(&[], &Ipv4::igmp(QUERIER, GROUP, message)));
}

/// The query events queued since the last call (the first query also makes a router port).
fn query_events(harness: &Harness) -> Vec<Event> {
    let queries = [EventKind::QuerySeen, EventKind::QuerySourceSeen].map(|kind| kind as u32);
    harness
        .events()
        .into_iter()
        .filter(|event| queries.contains(&event.kind))
        .collect()
}

#[test]
fn a_group_and_source_query_names_its_sources_to_user_space() {
    let harness = Harness::new();
    query(&harness, v3_query(GROUP, 10, 2, 125, &[S1, S2]));
    let events = query_events(&harness);
    let kinds: Vec<_> = events
        .iter()
        .map(|event| {
            (
                EventKind::from_u32(event.kind),
                Ipv4Addr::from(event.address),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Some(EventKind::QuerySeen), QUERIER),
            (Some(EventKind::QuerySourceSeen), S1),
            (Some(EventKind::QuerySourceSeen), S2),
        ]
    );
    assert_eq!(
        events[0].flags,
        query_flags::SOURCES,
        "lowers no group timer"
    );
    assert!(events[1..]
        .iter()
        .all(|event| event.group == GROUP.octets() && event.max_resp_code == 10));
}

#[test]
fn a_query_with_the_s_flag_lowers_nothing() {
    let harness = Harness::new();
    query(&harness, suppressed(v3_query(GROUP, 10, 2, 125, &[S1])));
    query(&harness, suppressed(v3_query(GROUP, 10, 2, 125, &[])));
    let events = query_events(&harness);
    let flags: Vec<_> = events
        .iter()
        .map(|event| (event.kind, event.flags))
        .collect();
    let seen = EventKind::QuerySeen as u32;
    assert_eq!(
        flags,
        [
            (seen, query_flags::SUPPRESS | query_flags::SOURCES),
            (seen, query_flags::SUPPRESS)
        ]
    );
}

#[test]
fn a_group_query_lists_no_sources_and_sources_past_the_bound_are_counted() {
    let harness = Harness::new();
    query(&harness, v3_query(GROUP, 10, 2, 125, &[]));
    let many: Vec<Ipv4Addr> = (1..=MAX_V3_SOURCES_PER_RECORD as u8 + 2)
        .map(|n| Ipv4Addr::new(192, 0, 2, n))
        .collect();
    query(&harness, v3_query(GROUP, 10, 2, 125, &many));
    let events = query_events(&harness);
    assert_eq!(events[0].flags, 0, "group-specific: the group's timer");
    assert_eq!(
        events[1].flags,
        query_flags::SOURCES | query_flags::SOURCES_CUT
    );
    assert_eq!(events.len(), 2 + MAX_V3_SOURCES_PER_RECORD);
    assert_eq!(harness.count(Counter::SourcesCut), 2);
}
