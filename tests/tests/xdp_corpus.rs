//! The malformed-frame corpus (`igmp_tests::corpus`), tens of thousands of
//! generated frames, through BPF_PROG_TEST_RUN in both hooks: the tables
//! stay byte for byte the same, every frame is passed, and every frame is
//! counted under the reason it was built to break.
//!
//! The MLD corpus (`mld_corpus`) goes through the same way, against both
//! families' tables.
//!
//! TestRun tier (`Harness`, no namespaces); the corpus on a lab's wire is
//! lab_corpus.rs.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use igmp_common::{Counter, DropReason, PortCounters, PortSettings};
use igmp_tests::{
    corpus::{malformed_corpus, mld_corpus, outcome_name, tally, Case, Expected},
    frames::*,
    harness::{table_snapshot, table_snapshot_v6, Harness, TestHook, XDP_PASS},
};
use rstest::rstest;

const SEED_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const SEEDED: Ipv4Addr = Ipv4Addr::new(239, 77, 1, 1);
const SEEDED_V3: Ipv4Addr = Ipv4Addr::new(239, 77, 1, 2);
const S1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Counters that only a frame the program accepted may move.
const LEARNING: [Counter; 11] = [
    Counter::GroupCreated,
    Counter::GroupRefreshed,
    Counter::SourceCreated,
    Counter::SourceRefreshed,
    Counter::TableFull,
    Counter::V1Query,
    Counter::V2Query,
    Counter::V3Query,
    Counter::ProxyQuery,
    Counter::MldV1Query,
    Counter::MldV2Query,
];

/// What the counters say happened between two readings: the one drop
/// reason or message counter the frame moved, in the corpus's words.
fn observed(before: &PortCounters, after: &PortCounters) -> String {
    let drops: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|reason| after.drops[*reason as usize] != before.drops[*reason as usize])
        .collect();
    let moved =
        |counter: Counter| after.messages[counter as usize] - before.messages[counter as usize];
    let igmp = moved(Counter::IgmpFrames);
    match drops.as_slice() {
        [reason] if igmp == u64::from(*reason != DropReason::TooManyVlanTags) => {
            outcome_name(Expected::Drop(*reason))
        }
        [] if igmp == 0 => outcome_name(Expected::NotIgmp),
        [] if moved(Counter::LinkLocalReport) == 1 => {
            outcome_name(Expected::Counted(Counter::LinkLocalReport))
        }
        [] if moved(Counter::OtherIgmpType) == 1 => {
            outcome_name(Expected::Counted(Counter::OtherIgmpType))
        }
        _ => format!("unclear: drops {drops:?}, igmp_frames +{igmp}"),
    }
}

/// A harness whose tables hold a group, a source, a router port and a host.
fn seeded_harness(hook: TestHook) -> Harness {
    let mut harness = Harness::on(hook);
    // Fast leave on the test-run port, so that reports fill HOSTS too.
    let fast_leave = PortSettings {
        fast_leave: 1,
        ..PortSettings::default()
    };
    harness.set_port(fast_leave);
    harness.run(&v2_report(SEED_HOST, SEEDED));
    let include = Record::new(MODE_IS_INCLUDE, SEEDED_V3, &[S1]);
    harness.run(&v3_report_frame(SEED_HOST, &[include]));
    let query = igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED);
    harness.run(&frame(
        &[],
        &Ipv4::igmp(Ipv4Addr::new(10, 0, 0, 1), ALL_HOSTS, query),
    ));
    for (map, entries) in table_snapshot(&harness.tables) {
        assert!(!entries.is_empty(), "seeding left {map} empty");
    }
    harness
}

/// What the counters say an MLD frame did: as `observed`, with MLD frames
/// counted instead of IGMP ones. A frame with a third VLAN tag, one cut
/// inside its headers and one whose extension headers run past the walk's
/// bound are not seen as MLD: the type is never reached.
fn observed_mld(before: &PortCounters, after: &PortCounters) -> String {
    let drops: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|reason| after.drops[*reason as usize] != before.drops[*reason as usize])
        .collect();
    let moved =
        |counter: Counter| after.messages[counter as usize] - before.messages[counter as usize];
    let (mld, igmp) = (moved(Counter::MldFrames), moved(Counter::IgmpFrames));
    let as_mld = |reason: DropReason| match reason {
        DropReason::TooManyVlanTags => mld == 0,
        // The type is not reached: the walk stops before it.
        DropReason::Truncated | DropReason::ExtHeadersTooLong => mld == 0,
        _ => mld == 1,
    };
    match drops.as_slice() {
        _ if igmp != 0 => format!("unclear: igmp_frames +{igmp} from an MLD frame"),
        [reason] if as_mld(*reason) => outcome_name(Expected::Drop(*reason)),
        [] if mld == 0 => outcome_name(Expected::NotIgmp),
        [] if moved(Counter::LinkLocalReport) == 1 && mld == 1 => {
            outcome_name(Expected::Counted(Counter::LinkLocalReport))
        }
        _ => format!("unclear: drops {drops:?}, mld_frames +{mld}"),
    }
}

/// Runs every case, one at a time, and returns the cases whose action or
/// counted outcome differs from what they expect.
fn run_cases(harness: &Harness, cases: &[Case]) -> Vec<String> {
    run_cases_with(harness, cases, observed)
}

fn run_cases_with(
    harness: &Harness,
    cases: &[Case],
    observed: fn(&PortCounters, &PortCounters) -> String,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut before = harness.counters();
    for case in cases {
        let action = harness.try_run(&case.frame, 1);
        let after = harness.counters();
        let seen = observed(&before, &after);
        let expected = outcome_name(case.expected);
        if !matches!(action, Ok(XDP_PASS)) || seen != expected {
            wrong.push(format!(
                "{}: {action:?}, {seen} (expected {expected})",
                case.name
            ));
        }
        before = after;
    }
    wrong
}

#[rstest]
fn every_malformed_frame_is_passed_counted_by_reason_and_changes_no_table(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = seeded_harness(hook);
    let tables_before = table_snapshot(&harness.tables);
    let counters_before = harness.counters();
    let (corpus, not_taken): (Vec<Case>, Vec<Case>) = malformed_corpus()
        .into_iter()
        .partition(|case| harness.test_run_takes(&case.frame));
    assert!(corpus.len() >= 10_000);
    // Only frames whose IPv4 header is cut short, and only for tc: the wire
    // test in lab_corpus.rs sends them through a real port.
    assert!(
        not_taken.len() * 100 < corpus.len(),
        "{} frames not taken, {} taken",
        not_taken.len(),
        corpus.len()
    );
    for case in &not_taken {
        assert!(harness.try_run(&case.frame, 1).is_err(), "{}", case.name);
    }

    let wrong = run_cases(&harness, &corpus);
    assert!(
        wrong.is_empty(),
        "{} of {} frames were not passed or counted as expected, e.g.:\n{}",
        wrong.len(),
        corpus.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
    assert!(
        table_snapshot(&harness.tables) == tables_before,
        "the corpus changed the tables"
    );
    // The per-reason totals, read once over the whole run.
    let after = harness.counters();
    let mut expected = tally(&corpus);
    expected.remove(&outcome_name(Expected::NotIgmp));
    assert_eq!(reason_deltas(&counters_before, &after), expected);
    for counter in LEARNING {
        let moved = after.messages[counter as usize] - counters_before.messages[counter as usize];
        assert_eq!(moved, 0, "{} moved", counter.name());
    }
}

/// Drop reasons and the not-snooped counters, by outcome name, that moved.
fn reason_deltas(before: &PortCounters, after: &PortCounters) -> BTreeMap<String, u64> {
    let mut deltas = BTreeMap::new();
    for reason in DropReason::ALL {
        let delta = after.drops[reason as usize] - before.drops[reason as usize];
        if delta != 0 {
            deltas.insert(outcome_name(Expected::Drop(reason)), delta);
        }
    }
    for counter in [Counter::LinkLocalReport, Counter::OtherIgmpType] {
        let delta = after.messages[counter as usize] - before.messages[counter as usize];
        if delta != 0 {
            deltas.insert(outcome_name(Expected::Counted(counter)), delta);
        }
    }
    deltas
}

/// The IGMP seeds and their MLD twins: an MLDv1 member, an MLDv2 INCLUDE
/// source, a router port from an MLD query, a fast-leave host. Groups the
/// corpus never names: its frames that are not MLD go to unregistered
/// groups, which are passed.
fn seeded_harness_of_both_families(hook: TestHook) -> Harness {
    let harness = seeded_harness(hook);
    let host = link_local(50);
    let seeded = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0x50, 1);
    let seeded_v2 = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0x50, 2);
    let source = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    harness.run(&mld_v1_report(host, seeded));
    let include = MldRecord::new(MODE_IS_INCLUDE, seeded_v2, &[source]);
    harness.run(&mld_v2_report_frame(host, &[include]));
    harness.run(&mld_query_frame(
        link_local(1),
        ALL_NODES,
        MldQuery::general().encode(),
    ));
    for (map, entries) in table_snapshot_v6(harness.pin_dir()) {
        assert!(!entries.is_empty(), "seeding left {map} empty");
    }
    harness
}

#[rstest]
fn every_malformed_mld_frame_is_passed_counted_by_reason_and_changes_no_table(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = seeded_harness_of_both_families(hook);
    let tables_before = (
        table_snapshot(&harness.tables),
        table_snapshot_v6(harness.pin_dir()),
    );
    let counters_before = harness.counters();
    // tc's test run refuses a frame cut inside its IPv6 header; XDP's
    // takes every one, so each case runs in one hook at least.
    let corpus: Vec<_> = mld_corpus()
        .into_iter()
        .filter(|case| harness.test_run_takes(&case.frame))
        .collect();
    if hook == TestHook::Xdp {
        assert_eq!(corpus.len(), mld_corpus().len());
    }

    let wrong = run_cases_with(&harness, &corpus, observed_mld);
    assert!(
        wrong.is_empty(),
        "{} of {} frames were not passed or counted as expected, e.g.:\n{}",
        wrong.len(),
        corpus.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
    assert!(
        (
            table_snapshot(&harness.tables),
            table_snapshot_v6(harness.pin_dir())
        ) == tables_before,
        "the corpus changed the tables"
    );
    let after = harness.counters();
    let mut expected = tally(&corpus);
    expected.remove(&outcome_name(Expected::NotIgmp));
    assert_eq!(reason_deltas(&counters_before, &after), expected);
    for counter in LEARNING {
        let moved = after.messages[counter as usize] - counters_before.messages[counter as usize];
        assert_eq!(moved, 0, "{} moved", counter.name());
    }
}
