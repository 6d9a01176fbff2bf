//! MLD (IPv6) through BPF_PROG_TEST_RUN: every branch of the MLD parser,
//! what each message type writes into the IPv6 tables (MEMBERSHIP6,
//! SOURCES6, ROUTER_PORTS6, HOSTS6, V1_HOSTS6), each drop reason with its own
//! crafted frame, and the data path's verdict for IPv6 multicast.
//!
//! Learning mirrors IGMP's (xdp_parse.rs, xdp_sources.rs): MLDv1 (RFC 2710)
//! as IGMPv2, MLDv2 (RFC 3810) as IGMPv3, queries from a link-local source
//! make router ports.
//!
//! TestRun tier (`Harness`, no namespaces): each parse case runs in both
//! hooks, the XDP program and the tc classifier, which share the parser.

use std::net::Ipv6Addr;

use igmp_common::{
    filter_mode, membership_flags, query_flags, source_flags, unregistered, Counter, DataCounter,
    DropReason, EventKind, GroupEntry, GroupKey, PortSettings, MAX_V3_RECORDS,
    MAX_V3_SOURCES_PER_RECORD,
};
use igmp_tests::{
    frames::*,
    harness::{Harness, TestHook, TEST_RUN_IFINDEX, V6, XDP_DROP, XDP_PASS, XDP_REDIRECT},
};
use igmp_user::{tables::FastPathPolicy, timers::monotonic_ns};
use rstest::rstest;

const HOST: Ipv6Addr = link_local(7);
const HOST_B: Ipv6Addr = link_local(8);
const QUERIER: Ipv6Addr = link_local(1);
/// ff0e::1:2: a global-scope group.
const GROUP: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 1, 2);
/// ff05::9:9: a site-scope group.
const GROUP_B: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 9, 9);
const S1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const S2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const S3: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// A global unicast address: no source MLD may come from.
const GLOBAL_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

const IN: u8 = filter_mode::INCLUDE;
const EX: u8 = filter_mode::EXCLUDE;
const PENDING: u8 = source_flags::LEAVE_PENDING;

/// (VLAN, inner VLAN, group) of every MEMBERSHIP6 entry.
fn groups(harness: &Harness) -> Vec<(u16, u16, Ipv6Addr)> {
    harness
        .memberships6()
        .iter()
        .map(|(key, _)| (key.vlan, key.inner_vlan, Ipv6Addr::from(key.group)))
        .collect()
}

/// (group, source, mode, flags) of every SOURCES6 entry.
fn sources(harness: &Harness) -> Vec<(Ipv6Addr, Ipv6Addr, u8, u8)> {
    harness
        .sources6()
        .iter()
        .map(|(key, entry)| {
            (
                Ipv6Addr::from(key.group),
                Ipv6Addr::from(key.source),
                entry.mode,
                entry.flags,
            )
        })
        .collect()
}

fn v2(records: &[MldRecord]) -> Vec<u8> {
    mld_v2_report_frame(HOST, records)
}

fn v2_from(host: Ipv6Addr, records: &[MldRecord]) -> Vec<u8> {
    mld_v2_report_frame(host, records)
}

fn general_query_v2() -> Vec<u8> {
    mld_query_frame(QUERIER, ALL_NODES, MldQuery::general().encode())
}

/// Nothing learned into IGMP's tables from an MLD frame.
fn assert_ipv4_tables_untouched(harness: &Harness) {
    assert!(
        harness.memberships().is_empty(),
        "MEMBERSHIP (IPv4) changed"
    );
    assert!(harness.sources().is_empty(), "SOURCES (IPv4) changed");
    assert!(harness.routers().is_empty(), "ROUTER_PORTS (IPv4) changed");
    assert_eq!(harness.count(Counter::IgmpFrames), 0);
}

// ---- MLDv1 ----------------------------------------------------------------

#[rstest]
fn mldv1_report_creates_an_exclude_entry_of_version_1(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let before = monotonic_ns();
    assert_eq!(harness.run(&mld_v1_report(HOST, GROUP)), XDP_PASS);
    let entries = harness.memberships6();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (key, entry) = entries[0];
    assert_eq!(
        (key.ifindex, key.vlan, key.inner_vlan, key.group),
        (TEST_RUN_IFINDEX, 0, 0, GROUP.octets())
    );
    assert!(entry.last_report_ns >= before && entry.last_report_ns <= monotonic_ns());
    assert_eq!(entry.created_ns, entry.last_report_ns);
    assert_eq!((entry.version, entry.filter_mode, entry.flags), (1, EX, 0));
    assert_eq!(entry.last_reporter, HOST.octets());
    assert_eq!(harness.count(Counter::MldFrames), 1);
    assert_eq!(harness.count(Counter::MldV1Report), 1);
    assert_eq!(harness.count(Counter::GroupCreated), 1);
    assert!(
        harness.nonzero_drops().is_empty(),
        "{:?}",
        harness.nonzero_drops()
    );
    assert_ipv4_tables_untouched(&harness);
    let created: Vec<_> = harness
        .events6()
        .iter()
        .filter(|event| event.kind == EventKind::NewMembership as u32)
        .map(|event| (Ipv6Addr::from(event.group), Ipv6Addr::from(event.address)))
        .collect();
    assert_eq!(created, [(GROUP, HOST)], "EVENTS6 tells user space");
}

#[rstest]
fn only_mldv1_reports_stamp_v1_hosts6(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let before = monotonic_ns();
    harness.run(&mld_v1_report(HOST, GROUP));
    harness.run(&v2(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP_B, &[])]));
    let stamped: Vec<_> = harness
        .v1_hosts6()
        .iter()
        .map(|(key, last)| (Ipv6Addr::from(key.group), *last >= before))
        .collect();
    assert_eq!(stamped, [(GROUP, true)], "MLDv2 reports leave it alone");
    let first = harness.v1_hosts6()[0].1;
    harness.run(&mld_v1_report(HOST_B, GROUP));
    let second = harness.v1_hosts6()[0].1;
    assert!(second > first, "a later MLDv1 report restarts it in place");
    assert_eq!(harness.v1_hosts6().len(), 1);
}

#[rstest]
fn a_second_report_refreshes_in_place(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&mld_v1_report(HOST, GROUP));
    let first = harness.memberships6()[0].1;
    harness.run(&mld_v1_report(HOST_B, GROUP));
    let second = harness.memberships6()[0].1;
    assert_eq!(harness.memberships6().len(), 1);
    assert!(second.last_report_ns > first.last_report_ns);
    assert_eq!(second.created_ns, first.created_ns);
    assert_eq!(second.last_reporter, HOST_B.octets());
    assert_eq!(harness.count(Counter::GroupRefreshed), 1);
}

#[rstest]
#[case::to_all_routers(ALL_ROUTERS_V6)]
#[case::to_the_group(GROUP)]
fn done_marks_the_entry_leaving(
    #[case] destination: Ipv6Addr,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&mld_v1_report(HOST, GROUP));
    harness.events6();
    let done = Ipv6::mld(HOST, destination, mld_v1(MLD_DONE, 0, GROUP));
    assert_eq!(harness.run(&frame_v6(&[], &done)), XDP_PASS);
    let entry = harness.memberships6()[0].1;
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
    assert!(entry.leave_ns >= entry.last_report_ns);
    assert_eq!(harness.count(Counter::MldDone), 1);
    let leaves: Vec<_> = harness
        .events6()
        .iter()
        .filter(|event| event.kind == EventKind::LeaveSeen as u32)
        .map(|event| (Ipv6Addr::from(event.group), event.ifindex))
        .collect();
    assert_eq!(leaves, [(GROUP, TEST_RUN_IFINDEX)]);
    // A report after the Done cancels it.
    harness.run(&mld_v1_report(HOST, GROUP));
    let entry = harness.memberships6()[0].1;
    assert_eq!((entry.flags, entry.leave_ns), (0, 0));
}

#[rstest]
fn done_for_an_unknown_group_creates_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    assert_eq!(harness.run(&mld_done(HOST, GROUP)), XDP_PASS);
    assert!(harness.memberships6().is_empty());
    assert_eq!(harness.count(Counter::MldDone), 1);
    assert!(harness.nonzero_drops().is_empty());
}

/// A report sent while its host's address is still tentative (DAD) comes
/// from :: (RFC 3810 §5.2.13): valid, and learned.
#[rstest]
fn a_report_from_the_unspecified_address_is_learned(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let from_nowhere = v2_from(
        Ipv6Addr::UNSPECIFIED,
        &[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])],
    );
    assert_eq!(harness.run(&from_nowhere), XDP_PASS);
    assert_eq!(groups(&harness), [(0, 0, GROUP)]);
    assert_eq!(harness.memberships6()[0].1.last_reporter, [0; 16]);
    assert!(harness.nonzero_drops().is_empty());
}

// ---- MLDv2 records --------------------------------------------------------

#[rstest]
#[case::mode_is_exclude(MODE_IS_EXCLUDE)]
#[case::change_to_exclude(CHANGE_TO_EXCLUDE)]
fn v2_exclude_records_join_and_list_excluded_sources(
    #[case] kind: u8,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    assert_eq!(
        harness.run(&v2(&[MldRecord::new(kind, GROUP, &[S1])])),
        XDP_PASS
    );
    let entry = harness.memberships6()[0].1;
    assert_eq!((entry.version, entry.filter_mode), (2, EX));
    assert_eq!(sources(&harness), [(GROUP, S1, EX, 0)]);
    assert_eq!(harness.count(Counter::MldV2Report), 1);
    assert_eq!(harness.count(Counter::MldV2Record), 1);
    assert_eq!(harness.count(Counter::SourceCreated), 1);
    assert_ipv4_tables_untouched(&harness);
}

#[rstest]
#[case::mode_is_include(MODE_IS_INCLUDE)]
#[case::allow_new_sources(ALLOW_NEW_SOURCES)]
#[case::change_to_include(CHANGE_TO_INCLUDE)]
fn v2_include_records_join_with_their_sources(
    #[case] kind: u8,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v2(&[MldRecord::new(kind, GROUP, &[S1, S2])]));
    let entry = harness.memberships6()[0].1;
    assert_eq!((entry.version, entry.filter_mode, entry.flags), (2, IN, 0));
    assert_eq!(sources(&harness), [(GROUP, S1, IN, 0), (GROUP, S2, IN, 0)]);
    assert_eq!(harness.count(Counter::SourceCreated), 2);
}

#[rstest]
fn v2_include_of_nothing_changes_nothing(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&v2(&[
        MldRecord::new(MODE_IS_INCLUDE, GROUP, &[]),
        MldRecord::new(ALLOW_NEW_SOURCES, GROUP_B, &[]),
    ]));
    assert!(harness.memberships6().is_empty());
    assert_eq!(harness.count(Counter::MldV2Record), 2);
    assert!(harness.nonzero_drops().is_empty());
}

#[rstest]
fn v2_change_to_include_nothing_is_a_leave(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&v2(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])]));
    harness.events6();
    harness.run(&v2(&[MldRecord::new(CHANGE_TO_INCLUDE, GROUP, &[])]));
    let entry = harness.memberships6()[0].1;
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
    assert!(harness
        .events6()
        .iter()
        .any(|event| event.kind == EventKind::LeaveSeen as u32));
}

#[rstest]
fn v2_change_to_include_from_exclude_queries_the_rest(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v2(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])]));
    harness.run(&v2(&[MldRecord::new(CHANGE_TO_INCLUDE, GROUP, &[S1])]));
    let entry = harness.memberships6()[0].1;
    assert_eq!(entry.filter_mode, EX, "mode changes when the timer says");
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
    assert_eq!(sources(&harness), [(GROUP, S1, IN, 0)]);
}

#[rstest]
fn v2_block_marks_known_sources_leaving_and_ignores_unknown_ones(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v2(&[MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1])]));
    harness.run(&v2(&[MldRecord::new(BLOCK_OLD_SOURCES, GROUP, &[S1, S2])]));
    assert_eq!(sources(&harness), [(GROUP, S1, IN, PENDING)]);
}

#[rstest]
fn v2_report_with_many_records_and_aux_data(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let mut with_aux = MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[]);
    with_aux.aux_words = 2;
    let mut records = vec![with_aux];
    records.extend((1..=5).map(|n| {
        MldRecord::new(
            CHANGE_TO_EXCLUDE,
            Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 3, n),
            &[],
        )
    }));
    assert_eq!(harness.run(&v2(&records)), XDP_PASS);
    assert_eq!(groups(&harness).len(), 6);
    assert_eq!(harness.count(Counter::MldV2Record), 6);
    assert!(harness.nonzero_drops().is_empty());
}

#[rstest]
fn v2_records_past_the_bound_are_counted_as_cut(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let records: Vec<MldRecord> = (0..MAX_V3_RECORDS + 8)
        .map(|n| {
            MldRecord::new(
                CHANGE_TO_EXCLUDE,
                Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 4, n as u16),
                &[],
            )
        })
        .collect();
    assert_eq!(harness.run(&v2(&records)), XDP_PASS);
    assert_eq!(harness.memberships6().len(), MAX_V3_RECORDS);
    assert_eq!(harness.count(Counter::MldV2Record), MAX_V3_RECORDS as u64);
    assert_eq!(harness.count(Counter::RecordsCut), 8);
}

#[rstest]
fn v2_sources_past_the_bound_are_cut_and_the_group_flagged(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let many: Vec<Ipv6Addr> = (0..MAX_V3_SOURCES_PER_RECORD + 4)
        .map(|n| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 5, n as u16 + 1))
        .collect();
    harness.run(&v2(&[MldRecord::new(MODE_IS_INCLUDE, GROUP, &many)]));
    assert_eq!(harness.sources6().len(), MAX_V3_SOURCES_PER_RECORD);
    assert_eq!(harness.count(Counter::SourcesCut), 4);
    let flags = harness.memberships6()[0].1.flags;
    assert_eq!(
        flags & membership_flags::SOURCES_TRUNCATED,
        membership_flags::SOURCES_TRUNCATED
    );
}

/// One record from `host`. A millisecond apart: `SourceEntry::named` keeps
/// 66 µs steps, and reports within one step count as naming each other's sources.
fn report(harness: &Harness, host: Ipv6Addr, kind: u8, sources: &[Ipv6Addr]) {
    std::thread::sleep(std::time::Duration::from_millis(1));
    harness.run(&v2_from(host, &[MldRecord::new(kind, GROUP, sources)]));
}

/// The group's mode, and each source still in its lists: (source, mode, flags).
fn state(harness: &Harness) -> (u8, Vec<Listed>) {
    let memberships = harness.memberships6();
    let (_, group) = memberships
        .iter()
        .find(|(key, _)| key.group == GROUP.octets())
        .expect("the group's entry");
    let mut listed: Vec<Listed> = harness
        .sources6()
        .iter()
        .filter(|(_, entry)| entry.listed(group.filter_mode, group.last_report_ns))
        .map(|(key, entry)| (Ipv6Addr::from(key.source), entry.mode, entry.flags))
        .collect();
    listed.sort();
    (group.filter_mode, listed)
}

/// A report: (host, record type, sources).
type Report = (Ipv6Addr, u8, &'static [Ipv6Addr]);
/// A listed source: (source, mode, flags).
type Listed = (Ipv6Addr, u8, u8);

/// Each case: the reports in order, then the port's mode and listed
/// sources (RFC 3810 §7.4.1 and §7.4.2 tables, IGMPv3's in xdp_sources.rs).
#[rustfmt::skip]
const SOURCE_CASES: &[(&str, &[Report], u8, &[Listed])] = &[
    ("EXCLUDE(X,Y)+BLOCK(A) → EXCLUDE(X+(A-X-Y),Y): a source not listed enters X and is asked about",
     &[(HOST, CHANGE_TO_EXCLUDE, &[]), (HOST, BLOCK_OLD_SOURCES, &[S1])],
     EX, &[(S1, IN, PENDING)]),
    ("EXCLUDE(X,Y)+BLOCK(A): a source in Y stays there, not asked about",
     &[(HOST, CHANGE_TO_EXCLUDE, &[S1]), (HOST, BLOCK_OLD_SOURCES, &[S1])],
     EX, &[(S1, EX, 0)]),
    ("INCLUDE(A)+BLOCK(B) → INCLUDE(A): only A*B is asked about",
     &[(HOST, MODE_IS_INCLUDE, &[S1]), (HOST, BLOCK_OLD_SOURCES, &[S1, S2])],
     IN, &[(S1, IN, PENDING)]),
    ("INCLUDE(A)+ALLOW(B) → INCLUDE(A+B)",
     &[(HOST, MODE_IS_INCLUDE, &[S1]), (HOST_B, ALLOW_NEW_SOURCES, &[S2])],
     IN, &[(S1, IN, 0), (S2, IN, 0)]),
    ("EXCLUDE(X,Y)+IS_IN(A) → EXCLUDE(X+A,Y-A): one host's IS_IN takes the source out of Y",
     &[(HOST, MODE_IS_EXCLUDE, &[S1]), (HOST_B, MODE_IS_INCLUDE, &[S1])],
     EX, &[(S1, IN, 0)]),
    ("INCLUDE(A)+IS_EX(B) → EXCLUDE(A*B,B-A): A-B deleted, A*B asked for, B-A excluded",
     &[(HOST, MODE_IS_INCLUDE, &[S1, S2]), (HOST_B, MODE_IS_EXCLUDE, &[S2, S3])],
     EX, &[(S2, IN, 0), (S3, EX, 0)]),
    ("EXCLUDE(X,Y)+IS_EX(A) → EXCLUDE(A-Y,Y*A): a source new to the lists is asked for",
     &[(HOST, MODE_IS_EXCLUDE, &[]), (HOST_B, MODE_IS_EXCLUDE, &[S1])],
     EX, &[(S1, IN, 0)]),
    ("EXCLUDE(X,Y)+IS_EX(A): Y-A deleted, Y*A kept",
     &[(HOST, CHANGE_TO_EXCLUDE, &[S1, S2]), (HOST, MODE_IS_EXCLUDE, &[S2])],
     EX, &[(S2, EX, 0)]),
    ("EXCLUDE(X,Y)+TO_IN(A): A asked for, the group asked about",
     &[(HOST, CHANGE_TO_EXCLUDE, &[S1]), (HOST, CHANGE_TO_INCLUDE, &[S2])],
     EX, &[(S1, EX, 0), (S2, IN, 0)]),
];

#[test]
fn a_ports_mld_source_lists_merge_its_hosts_reports_as_rfc_3810_tables_say() {
    let mut failures = Vec::new();
    for (description, reports, mode, expected) in SOURCE_CASES {
        let harness = Harness::new();
        for (host, kind, sources) in *reports {
            report(&harness, *host, *kind, sources);
        }
        let (got_mode, got) = state(&harness);
        if (got_mode, got.as_slice()) != (*mode, *expected) {
            failures.push(format!(
                "{description}: mode {got_mode}, {got:?}; expected mode {mode}, {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn an_mldv1_report_in_exclude_mode_deletes_the_source_lists() {
    let harness = Harness::new();
    report(&harness, HOST, CHANGE_TO_EXCLUDE, &[S1]);
    std::thread::sleep(std::time::Duration::from_millis(1));
    harness.run(&mld_v1_report(HOST_B, GROUP));
    assert_eq!(
        state(&harness),
        (EX, vec![]),
        "EXCLUDE {{}}: every source wanted"
    );
    assert_eq!(
        harness.memberships6()[0].1.version,
        1,
        "the lowest version heard"
    );
}

// ---- VLANs and groups never snooped ----------------------------------------

#[rstest]
#[case::untagged(&[], 0, 0)]
#[case::dot1q(&[(TPID_8021Q, 10)], 10, 0)]
#[case::dot1q_with_priority(&[(TPID_8021Q, 0xa000 | 42)], 42, 0)]
#[case::qinq(&[(TPID_8021AD, 100), (TPID_8021Q, 10)], 100, 10)]
fn mld_membership_is_kept_per_vlan(
    #[case] tags: &[(u16, u16)],
    #[case] vlan: u16,
    #[case] inner: u16,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let ip = Ipv6::mld(HOST, GROUP, mld_v1(MLD_V1_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame_v6(tags, &ip)), XDP_PASS);
    let ip = Ipv6::mld(
        HOST,
        ALL_MLDV2_ROUTERS,
        mld_v2_report(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP_B, &[])]),
    );
    assert_eq!(harness.run(&frame_v6(tags, &ip)), XDP_PASS);
    let mut expected = vec![(vlan, inner, GROUP), (vlan, inner, GROUP_B)];
    expected.sort();
    let mut got = groups(&harness);
    got.sort();
    assert_eq!(got, expected);
}

#[rstest]
fn a_third_vlan_tag_is_counted_and_passed(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let ip = Ipv6::mld(HOST, GROUP, mld_v1(MLD_V1_REPORT, 0, GROUP));
    let tags = [(TPID_8021AD, 1), (TPID_8021Q, 2), (TPID_8021Q, 3)];
    assert_eq!(harness.run(&frame_v6(&tags, &ip)), XDP_PASS);
    assert!(harness.memberships6().is_empty());
    assert_eq!(
        harness.nonzero_drops(),
        [(DropReason::TooManyVlanTags.name(), 1)]
    );
}

/// ff02::1 and the interface-local and reserved scopes (RFC 4541 §3, RFC
/// 3810 §6): valid, counted, never learned; a real group beside them is.
#[rstest]
#[case::all_nodes(ALL_NODES)]
#[case::interface_local(Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 1, 2))]
#[case::reserved_scope_0(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 1, 2))]
#[case::transient_interface_local(Ipv6Addr::new(0xff31, 0, 0, 0, 0, 0, 0, 8))]
fn reports_for_groups_never_snooped_are_counted_and_not_learned(
    #[case] never: Ipv6Addr,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    assert_eq!(harness.run(&mld_v1_report(HOST, never)), XDP_PASS);
    assert_eq!(
        harness.run(&v2(&[
            MldRecord::new(CHANGE_TO_EXCLUDE, never, &[]),
            MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[]),
        ])),
        XDP_PASS
    );
    assert_eq!(groups(&harness), [(0, 0, GROUP)]);
    assert_eq!(harness.count(Counter::LinkLocalReport), 2);
    assert!(
        harness.nonzero_drops().is_empty(),
        "{:?}",
        harness.nonzero_drops()
    );
    assert!(harness.v1_hosts6().is_empty());
}

/// Link-scope groups other than ff02::1 are snooped like any other group:
/// solicited-node (neighbour discovery), mDNS, DHCPv6 servers and relays.
#[rstest]
#[case::solicited_node(solicited_node(GLOBAL_HOST))]
#[case::mdns(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb))]
#[case::dhcpv6_agents(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2))]
fn link_scope_groups_are_learned(
    #[case] group: Ipv6Addr,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    assert_eq!(harness.run(&mld_v1_report(HOST, group)), XDP_PASS);
    let records = [MldRecord::new(CHANGE_TO_EXCLUDE, group, &[])];
    assert_eq!(harness.run(&v2_from(HOST_B, &records)), XDP_PASS);
    assert_eq!(groups(&harness), [(0, 0, group)]);
    assert_eq!(harness.count(Counter::LinkLocalReport), 0);
    assert_eq!(harness.count(Counter::GroupCreated), 1);
}

// ---- Queries and router ports ---------------------------------------------

#[rstest]
#[case::v1_general(
    mld_v1(MLD_QUERY, 10_000, Ipv6Addr::UNSPECIFIED),
    ALL_NODES,
    1,
    Counter::MldV1Query
)]
#[case::v1_group_specific(mld_v1(MLD_QUERY, 1_000, GROUP), GROUP, 1, Counter::MldV1Query)]
#[case::v2_general(MldQuery::general().encode(), ALL_NODES, 2, Counter::MldV2Query)]
#[case::v2_group_specific(MldQuery::of(GROUP, &[]).encode(), GROUP, 2, Counter::MldV2Query)]
#[case::v2_group_specific_to_all_nodes(MldQuery::of(GROUP, &[]).encode(), ALL_NODES, 2, Counter::MldV2Query)]
#[case::v2_group_and_source(MldQuery::of(GROUP, &[S1, S2]).encode(), GROUP, 2, Counter::MldV2Query)]
fn queries_from_a_link_local_source_make_a_router_port(
    #[case] message: Vec<u8>,
    #[case] destination: Ipv6Addr,
    #[case] version: u8,
    #[case] counter: Counter,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    assert_eq!(
        harness.run(&mld_query_frame(QUERIER, destination, message)),
        XDP_PASS
    );
    let routers = harness.routers6();
    assert_eq!(routers.len(), 1, "{routers:?}");
    let (key, router) = routers[0];
    assert_eq!(
        (key.ifindex, key.vlan, router.querier, router.version),
        (TEST_RUN_IFINDEX, 0, QUERIER.octets(), version)
    );
    if version == 2 {
        assert_eq!((router.robustness, router.qqic), (2, 125));
    }
    assert_eq!(harness.count(counter), 1);
    assert!(harness.memberships6().is_empty(), "a query joins nothing");
    assert!(harness.routers().is_empty(), "not an IPv4 router port");
    assert!(
        harness.nonzero_drops().is_empty(),
        "{:?}",
        harness.nonzero_drops()
    );
    assert_eq!(harness.router_epoch6(), 1);
}

#[rstest]
#[case::global(S1)]
#[case::unspecified(Ipv6Addr::UNSPECIFIED)]
#[case::unique_local(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))]
fn a_query_from_a_source_not_link_local_makes_no_router_port(
    #[case] source: Ipv6Addr,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let query = mld_query_frame(source, ALL_NODES, MldQuery::general().encode());
    assert_eq!(harness.run(&query), XDP_PASS);
    assert!(harness.routers6().is_empty());
    assert_eq!(
        harness.nonzero_drops(),
        [(DropReason::NotLinkLocalSource.name(), 1)]
    );
}

fn query_events(harness: &Harness) -> Vec<igmp_common::Event<V6>> {
    let queries = [EventKind::QuerySeen, EventKind::QuerySourceSeen].map(|kind| kind as u32);
    harness
        .events6()
        .into_iter()
        .filter(|event| queries.contains(&event.kind))
        .collect()
}

#[test]
fn a_group_and_source_query_names_its_sources_to_user_space() {
    let harness = Harness::new();
    let query = MldQuery {
        max_resp_code: 1_000,
        ..MldQuery::of(GROUP, &[S1, S2])
    };
    harness.run(&mld_query_frame(QUERIER, GROUP, query.encode()));
    let events = query_events(&harness);
    let kinds: Vec<_> = events
        .iter()
        .map(|event| {
            (
                EventKind::from_u32(event.kind),
                Ipv6Addr::from(event.address),
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
    assert_eq!(events[0].flags, query_flags::SOURCES);
    assert!(events
        .iter()
        .all(|event| event.group == GROUP.octets() && event.version == 2));
}

#[test]
fn a_query_with_the_s_flag_is_flagged_suppressed() {
    let harness = Harness::new();
    let query = MldQuery {
        suppress: true,
        ..MldQuery::of(GROUP, &[])
    };
    harness.run(&mld_query_frame(QUERIER, GROUP, query.encode()));
    harness.run(&mld_query_frame(
        QUERIER,
        GROUP,
        MldQuery::of(GROUP, &[]).encode(),
    ));
    let flags: Vec<_> = query_events(&harness)
        .iter()
        .map(|event| event.flags)
        .collect();
    assert_eq!(flags, [query_flags::SUPPRESS, 0]);
}

#[test]
fn query_sources_past_the_bound_are_counted() {
    let harness = Harness::new();
    let many: Vec<Ipv6Addr> = (1..=MAX_V3_SOURCES_PER_RECORD as u16 + 2)
        .map(|n| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 6, n))
        .collect();
    harness.run(&mld_query_frame(
        QUERIER,
        GROUP,
        MldQuery::of(GROUP, &many).encode(),
    ));
    let events = query_events(&harness);
    assert_eq!(
        events[0].flags,
        query_flags::SOURCES | query_flags::SOURCES_CUT
    );
    assert_eq!(events.len(), 1 + MAX_V3_SOURCES_PER_RECORD);
    assert_eq!(harness.count(Counter::SourcesCut), 2);
}

// ---- Extension headers ------------------------------------------------------

/// Destination Options after the Hop-by-Hop header, up to the walk's bound
/// of four headers before ICMPv6, are walked (RFC 8200 §4.1 order).
#[rstest]
#[case::hop_by_hop_only(0)]
#[case::and_one_destination_options(1)]
#[case::four_headers_in_all(3)]
fn extension_headers_within_the_bound_are_walked(
    #[case] more: usize,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mut ip = Ipv6::mld(HOST, GROUP, mld_v1(MLD_V1_REPORT, 0, GROUP));
    ip.headers.extend(std::iter::repeat_n(
        ExtHeader::DestinationOptions(vec![1, 4, 0, 0, 0, 0]),
        more,
    ));
    assert_eq!(harness.run(&frame_v6(&[], &ip)), XDP_PASS);
    assert_eq!(groups(&harness), [(0, 0, GROUP)]);
    assert!(
        harness.nonzero_drops().is_empty(),
        "{:?}",
        harness.nonzero_drops()
    );
}

/// Router Alert among other Hop-by-Hop options, wherever it sits.
#[rstest]
fn router_alert_after_other_options_is_found(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mut ip = Ipv6::mld(HOST, GROUP, mld_v1(MLD_V1_REPORT, 0, GROUP));
    // Pad1, PadN of 3, then Router Alert: one 16-octet header.
    let options = [vec![0, 1, 3, 0, 0, 0], ROUTER_ALERT_MLD.to_vec()].concat();
    ip.headers = vec![ExtHeader::HopByHop(options)];
    assert_eq!(harness.run(&frame_v6(&[], &ip)), XDP_PASS);
    assert_eq!(groups(&harness), [(0, 0, GROUP)]);
}

/// Octets past the fields a message type has are summed in the checksum and
/// otherwise ignored (RFC 3810 §5.1.12, §5.2.11): the message is valid.
#[rstest]
fn additional_data_after_a_query_or_a_report_is_ignored(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mut query = MldQuery::general().encode();
    query.extend_from_slice(&[0xa5; 8]);
    assert_eq!(
        harness.run(&mld_query_frame(QUERIER, ALL_NODES, query)),
        XDP_PASS
    );
    let mut report = mld_v2_report(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])]);
    report.extend_from_slice(&[0xa5; 12]);
    let report = frame_v6(&[], &Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, report));
    assert_eq!(harness.run(&report), XDP_PASS);
    assert_eq!(harness.routers6().len(), 1);
    assert_eq!(groups(&harness), [(0, 0, GROUP)]);
    assert!(
        harness.nonzero_drops().is_empty(),
        "{:?}",
        harness.nonzero_drops()
    );
}

// ---- Every drop reason ------------------------------------------------------

/// An MLDv1 report for GROUP whose packet is broken in one way.
fn broken_v1(edit: impl FnOnce(&mut Ipv6)) -> Vec<u8> {
    let mut ip = Ipv6::mld(HOST, GROUP, mld_v1(MLD_V1_REPORT, 0, GROUP));
    edit(&mut ip);
    frame_v6(&[], &ip)
}

/// An MLDv2 report (one IS_EX {} record for GROUP) broken in one way.
fn broken_v2(edit: impl FnOnce(&mut Ipv6)) -> Vec<u8> {
    let records = [MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[])];
    let mut ip = Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, mld_v2_report(&records));
    edit(&mut ip);
    frame_v6(&[], &ip)
}

/// A general MLDv2 query broken in one way.
fn broken_query(edit: impl FnOnce(&mut Ipv6)) -> Vec<u8> {
    let mut ip = Ipv6::mld(QUERIER, ALL_NODES, MldQuery::general().encode());
    edit(&mut ip);
    frame_v6(&[], &ip)
}

fn v2_message(edit: impl FnOnce(&mut Vec<u8>), records: &[MldRecord]) -> Vec<u8> {
    let mut message = mld_v2_report(records);
    edit(&mut message);
    frame_v6(&[], &Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, message))
}

fn destination_options() -> ExtHeader {
    ExtHeader::DestinationOptions(vec![1, 4, 0, 0, 0, 0])
}

fn flip(mut frame: Vec<u8>, at: usize) -> Vec<u8> {
    frame[at] ^= 0x40;
    frame
}

/// Where the ICMPv6 message of an untagged MLD frame starts (8-octet Hop-by-Hop).
const ICMPV6_AT: usize = 14 + 40 + 8;

#[rstest]
#[case::ip_version_4(broken_v1(|ip| ip.version = 4), DropReason::BadIpv6Header)]
#[case::ip_version_7(broken_v1(|ip| ip.version = 7), DropReason::BadIpv6Header)]
#[case::payload_length_past_the_frame(broken_v1(|ip| ip.payload_length = Some(32 + 8)), DropReason::BadIpv6Header)]
#[case::payload_length_far_past_the_frame(broken_v1(|ip| ip.payload_length = Some(0xffff)), DropReason::BadIpv6Header)]
#[case::no_hop_by_hop(broken_v1(|ip| ip.headers.clear()), DropReason::NoRouterAlert)]
#[case::hop_by_hop_without_router_alert(broken_v1(|ip| ip.headers = vec![ExtHeader::hop_by_hop_without_router_alert()]), DropReason::NoRouterAlert)]
#[case::router_alert_of_another_value(broken_v1(|ip| ip.headers = vec![ExtHeader::HopByHop(vec![5, 2, 0, 1])]), DropReason::NoRouterAlert)]
#[case::router_alert_in_destination_options(broken_v1(|ip| ip.headers = vec![ExtHeader::DestinationOptions(ROUTER_ALERT_MLD.to_vec())]), DropReason::NoRouterAlert)]
#[case::v2_report_without_router_alert(broken_v2(|ip| ip.headers.clear()), DropReason::NoRouterAlert)]
#[case::query_without_router_alert(broken_query(|ip| ip.headers.clear()), DropReason::NoRouterAlert)]
#[case::five_extension_headers(broken_v1(|ip| ip.headers.extend(std::iter::repeat_n(destination_options(), 4))), DropReason::ExtHeadersTooLong)]
#[case::eight_extension_headers(broken_v1(|ip| ip.headers.extend(std::iter::repeat_n(destination_options(), 7))), DropReason::ExtHeadersTooLong)]
#[case::hop_limit_0(broken_v1(|ip| ip.hop_limit = 0), DropReason::BadHopLimit)]
#[case::hop_limit_2(broken_v1(|ip| ip.hop_limit = 2), DropReason::BadHopLimit)]
#[case::hop_limit_255(broken_v1(|ip| ip.hop_limit = 255), DropReason::BadHopLimit)]
#[case::v2_report_hop_limit_64(broken_v2(|ip| ip.hop_limit = 64), DropReason::BadHopLimit)]
#[case::query_hop_limit_2(broken_query(|ip| ip.hop_limit = 2), DropReason::BadHopLimit)]
#[case::v1_report_from_a_global_address(broken_v1(|ip| ip.source = GLOBAL_HOST), DropReason::NotLinkLocalSource)]
#[case::v2_report_from_a_global_address(broken_v2(|ip| ip.source = GLOBAL_HOST), DropReason::NotLinkLocalSource)]
#[case::done_from_a_global_address(frame_v6(&[], &Ipv6::mld(GLOBAL_HOST, ALL_ROUTERS_V6, mld_v1(MLD_DONE, 0, GROUP))), DropReason::NotLinkLocalSource)]
#[case::query_from_a_global_address(broken_query(|ip| ip.source = S1), DropReason::NotLinkLocalSource)]
#[case::query_from_unspecified(broken_query(|ip| ip.source = Ipv6Addr::UNSPECIFIED), DropReason::NotLinkLocalSource)]
#[case::report_from_a_multicast_address(broken_v1(|ip| ip.source = GROUP_B), DropReason::NotLinkLocalSource)]
#[case::bad_icmpv6_checksum(flip(mld_v1_report(HOST, GROUP), ICMPV6_AT + 2), DropReason::BadIcmpv6Checksum)]
#[case::a_flipped_group_bit(flip(mld_v1_report(HOST, GROUP), ICMPV6_AT + 23), DropReason::BadIcmpv6Checksum)]
#[case::checksum_without_the_pseudo_header(broken_v1(|ip| { ip.seal = false; let sum = checksum(&ip.payload); ip.payload[2..4].copy_from_slice(&sum.to_be_bytes()) }), DropReason::BadIcmpv6Checksum)]
#[case::checksum_over_another_source(broken_v1(|ip| { ip.seal = false; ip.payload = seal_icmpv6(HOST_B, GROUP, ip.payload.clone()) }), DropReason::BadIcmpv6Checksum)]
#[case::v2_report_bad_checksum(flip(mld_v2_report_frame(HOST, &[MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[])]), ICMPV6_AT + 3), DropReason::BadIcmpv6Checksum)]
#[case::v1_report_of_20_octets(broken_v1(|ip| ip.payload.truncate(20)), DropReason::BadMldLength)]
#[case::done_of_8_octets(frame_v6(&[], &Ipv6::mld(HOST, ALL_ROUTERS_V6, mld_v1(MLD_DONE, 0, GROUP)[..8].to_vec())), DropReason::BadMldLength)]
#[case::query_of_25_octets(broken_query(|ip| ip.payload = [mld_v1(MLD_QUERY, 10_000, Ipv6Addr::UNSPECIFIED), vec![0]].concat()), DropReason::BadMldLength)]
#[case::query_of_27_octets(broken_query(|ip| ip.payload = [mld_v1(MLD_QUERY, 10_000, Ipv6Addr::UNSPECIFIED), vec![0; 3]].concat()), DropReason::BadMldLength)]
#[case::query_of_20_octets(broken_query(|ip| ip.payload.truncate(20)), DropReason::BadMldLength)]
#[case::v2_query_sources_past_end(frame_v6(&[], &Ipv6::mld(QUERIER, GROUP, { let mut q = MldQuery::of(GROUP, &[S1]).encode(); q[27] = 5; q })), DropReason::BadMldLength)]
#[case::v2_query_with_a_partial_source(frame_v6(&[], &Ipv6::mld(QUERIER, GROUP, MldQuery::of(GROUP, &[S1]).encode()[..28 + 8].to_vec())), DropReason::BadMldLength)]
#[case::v2_report_of_6_octets(broken_v2(|ip| ip.payload.truncate(6)), DropReason::BadMldLength)]
#[case::v1_report_to_another_group(broken_v1(|ip| ip.destination = GROUP_B), DropReason::BadDestination)]
#[case::v1_report_to_all_nodes(broken_v1(|ip| ip.destination = ALL_NODES), DropReason::BadDestination)]
#[case::v1_report_to_unicast(broken_v1(|ip| ip.destination = link_local(1)), DropReason::BadDestination)]
#[case::done_to_all_nodes(frame_v6(&[], &Ipv6::mld(HOST, ALL_NODES, mld_v1(MLD_DONE, 0, GROUP))), DropReason::BadDestination)]
#[case::v2_report_to_all_nodes(broken_v2(|ip| ip.destination = ALL_NODES), DropReason::BadDestination)]
#[case::v2_report_to_all_routers(broken_v2(|ip| ip.destination = ALL_ROUTERS_V6), DropReason::BadDestination)]
#[case::v2_report_to_the_group(broken_v2(|ip| ip.destination = GROUP), DropReason::BadDestination)]
#[case::v2_report_to_unicast(broken_v2(|ip| ip.destination = link_local(1)), DropReason::BadDestination)]
#[case::general_query_to_a_group(broken_query(|ip| ip.destination = GROUP), DropReason::BadDestination)]
#[case::general_query_to_all_routers(broken_query(|ip| ip.destination = ALL_ROUTERS_V6), DropReason::BadDestination)]
#[case::group_query_to_another_group(frame_v6(&[], &Ipv6::mld(QUERIER, GROUP_B, MldQuery::of(GROUP, &[]).encode())), DropReason::BadDestination)]
#[case::v1_group_query_to_another_group(frame_v6(&[], &Ipv6::mld(QUERIER, GROUP_B, mld_v1(MLD_QUERY, 1_000, GROUP))), DropReason::BadDestination)]
#[case::v1_report_for_a_unicast_group(frame_v6(&[], &Ipv6::mld(HOST, S1, mld_v1(MLD_V1_REPORT, 0, S1))), DropReason::NotMulticastGroup)]
#[case::done_for_a_unicast_group(frame_v6(&[], &Ipv6::mld(HOST, ALL_ROUTERS_V6, mld_v1(MLD_DONE, 0, S1))), DropReason::NotMulticastGroup)]
#[case::query_for_a_unicast_group(frame_v6(&[], &Ipv6::mld(QUERIER, ALL_NODES, MldQuery::of(S1, &[]).encode())), DropReason::NotMulticastGroup)]
#[case::second_record_not_multicast(v2(&[MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[]), MldRecord::new(MODE_IS_EXCLUDE, S1, &[])]), DropReason::NotMulticastGroup)]
#[case::fragment_before_icmpv6(broken_v1(|ip| ip.headers.push(ExtHeader::Fragment { offset: 0, more: true })), DropReason::IpFragment)]
#[case::atomic_fragment(broken_v1(|ip| ip.headers.push(ExtHeader::Fragment { offset: 0, more: false })), DropReason::IpFragment)]
#[case::record_count_past_end(v2_message(|m| m[7] = 3, &[MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[])]), DropReason::RecordPastEnd)]
#[case::source_count_past_end(v2_message(|m| m[11] = 9, &[MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1])]), DropReason::SourcesPastEnd)]
#[case::aux_past_end(v2_message(|m| m[9] = 4, &[MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1])]), DropReason::AuxPastEnd)]
#[case::unknown_record_type(v2(&[MldRecord::new(7, GROUP, &[])]), DropReason::UnknownRecordType)]
#[case::record_type_0(v2(&[MldRecord::new(0, GROUP, &[])]), DropReason::UnknownRecordType)]
fn malformed_mld_is_counted_passed_and_changes_nothing(
    #[case] frame: Vec<u8>,
    #[case] reason: DropReason,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&mld_v1_report(HOST, GROUP_B));
    let table_before = harness.memberships6();
    assert_eq!(table_before.len(), 1, "the seed report was not learned");
    assert_eq!(harness.run(&frame), XDP_PASS);
    assert_eq!(harness.memberships6(), table_before, "the table changed");
    assert!(harness.sources6().is_empty() && harness.routers6().is_empty());
    assert_eq!(harness.nonzero_drops(), [(reason.name(), 1)]);
    assert_ipv4_tables_untouched(&harness);
}

/// Every frame whose ICMPv6 type is an MLD one counts as an MLD frame,
/// valid or not; other ICMPv6 (neighbour discovery, echo) does not.
#[rstest]
fn every_mld_type_counts_as_an_mld_frame_valid_or_not(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mld = [
        mld_v1_report(HOST, GROUP),
        mld_done(HOST, GROUP),
        general_query_v2(),
        v2(&[MldRecord::new(MODE_IS_EXCLUDE, GROUP, &[])]),
        broken_v1(|ip| ip.hop_limit = 9),
        flip(mld_v1_report(HOST, GROUP), ICMPV6_AT + 2),
        broken_v1(|ip| ip.headers.clear()),
    ];
    for frame in &mld {
        assert_eq!(harness.run(frame), XDP_PASS);
    }
    assert_eq!(harness.count(Counter::MldFrames), mld.len() as u64);
    // Neighbour solicitation (135) and an echo request (128), to a group.
    let target = solicited_node(GLOBAL_HOST);
    for kind in [135u8, 128] {
        let mut ip = Ipv6::mld(HOST, target, vec![kind, 0, 0, 0, 0, 0, 0, 0]);
        ip.headers.clear();
        ip.hop_limit = 255;
        assert_eq!(harness.run(&frame_v6(&[], &ip)), XDP_PASS);
    }
    assert_eq!(harness.count(Counter::MldFrames), mld.len() as u64);
    assert_eq!(harness.count(Counter::IgmpFrames), 0);
}

/// An MLDv2 report with sources and aux data, to cut everywhere.
fn rich_v2_message() -> Vec<u8> {
    let mut aux = MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1, S2]);
    aux.aux_words = 1;
    mld_v2_report(&[aux, MldRecord::new(CHANGE_TO_EXCLUDE, GROUP_B, &[S1])])
}

/// The frame cut at every offset, its Payload Length left as it was. Cut
/// inside its IPv6 header or its Hop-by-Hop header, the frame ends inside a
/// header it announces: `Truncated`. Cut anywhere after the ICMPv6 type, its
/// Payload Length runs past the frame: `BadIpv6Header`, and an MLD frame.
/// Cut right before the type, nothing says MLD: passed, uncounted. Nothing
/// learned, always passed.
#[rstest]
fn an_mld_frame_cut_at_every_offset_changes_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let whole = frame_v6(&[], &Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, rich_v2_message()));
    let mut wrong = Vec::new();
    for cut in 14..whole.len() {
        if !harness.test_run_takes(&whole[..cut]) {
            assert!(harness.try_run(&whole[..cut], 1).is_err(), "cut at {cut}");
            continue;
        }
        let before = harness.counters();
        assert_eq!(harness.run(&whole[..cut]), XDP_PASS, "cut at {cut}");
        assert!(
            harness.memberships6().is_empty(),
            "cut at {cut} changed the table"
        );
        let after = harness.counters();
        let moved: Vec<&str> = DropReason::ALL
            .iter()
            .filter(|reason| after.drops[**reason as usize] != before.drops[**reason as usize])
            .map(|reason| reason.name())
            .collect();
        let mld = after.messages[Counter::MldFrames as usize]
            - before.messages[Counter::MldFrames as usize];
        let expected: (Vec<&str>, u64) = match cut {
            _ if cut < ICMPV6_AT => (vec![DropReason::Truncated.name()], 0),
            ICMPV6_AT => (vec![], 0),
            _ => (vec![DropReason::BadIpv6Header.name()], 1),
        };
        if (moved.clone(), mld) != expected {
            wrong.push(format!(
                "cut at {cut}: drops {moved:?}, mld_frames +{mld}; expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The message cut short with a Payload Length that tells the truth: each
/// cut is counted under the length rule it breaks.
#[rstest]
fn an_mldv2_report_cut_short_with_a_consistent_length_changes_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let message = rich_v2_message();
    let reasons = [
        DropReason::BadMldLength,
        DropReason::RecordPastEnd,
        DropReason::SourcesPastEnd,
        DropReason::AuxPastEnd,
    ];
    for (rejected, cut) in (4..message.len()).enumerate() {
        let short = message[..cut].to_vec();
        let frame = frame_v6(&[], &Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, short));
        assert_eq!(harness.run(&frame), XDP_PASS);
        assert!(
            harness.memberships6().is_empty(),
            "cut at {cut} changed the table"
        );
        let counted: u64 = reasons.iter().map(|reason| harness.drops(*reason)).sum();
        assert_eq!(
            counted,
            rejected as u64 + 1,
            "cut at {cut}: {:?}",
            harness.nonzero_drops()
        );
    }
}

// ---- Ports, limits and the rate limiter ------------------------------------

#[test]
fn fast_leave_ports_track_each_reporting_host_in_hosts6() {
    let mut harness = Harness::new();
    harness.set_port(PortSettings {
        fast_leave: 1,
        ..PortSettings::default()
    });
    harness.run(&mld_v1_report(HOST, GROUP));
    harness.run(&v2_from(
        HOST_B,
        &[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])],
    ));
    let hosts = |harness: &Harness| -> Vec<(Ipv6Addr, Ipv6Addr)> {
        harness
            .hosts6()
            .iter()
            .map(|(key, _)| (Ipv6Addr::from(key.group), Ipv6Addr::from(key.host)))
            .collect()
    };
    assert_eq!(hosts(&harness), [(GROUP, HOST), (GROUP, HOST_B)]);
    harness.run(&mld_done(HOST, GROUP));
    assert_eq!(
        hosts(&harness),
        [(GROUP, HOST_B)],
        "HOST's Done removed it alone"
    );
    assert!(
        harness.tables.learned.hosts.keys().next().is_none(),
        "HOSTS (IPv4) untouched"
    );
}

#[test]
fn ports_without_fast_leave_track_no_hosts6() {
    let harness = Harness::new();
    harness.run(&mld_v1_report(HOST, GROUP));
    assert_eq!(harness.memberships6().len(), 1);
    assert!(harness.hosts6().is_empty());
}

#[rstest]
fn nothing_is_learned_from_a_blocked_port(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let mut harness = Harness::on(hook);
    harness.set_port(PortSettings {
        blocked: 1,
        ..PortSettings::default()
    });
    assert_eq!(harness.run(&mld_v1_report(HOST, GROUP)), XDP_PASS);
    assert_eq!(harness.run(&general_query_v2()), XDP_PASS);
    assert!(harness.memberships6().is_empty() && harness.routers6().is_empty());
    assert_eq!(harness.drops(DropReason::PortBlocked), 2);
}

/// IGMP and MLD reports draw on one bucket per port: the burst is shared.
#[test]
fn the_report_rate_limit_is_shared_with_igmp() {
    let mut harness = Harness::new();
    // One report a second: in a test run of microseconds, only the burst passes.
    harness.set_port(PortSettings {
        report_rate: 1,
        report_burst: 5,
        ..PortSettings::default()
    });
    let v4_group = |n: u8| std::net::Ipv4Addr::new(239, 3, 0, n);
    let v4_host = std::net::Ipv4Addr::new(10, 0, 0, 7);
    let igmp: Vec<u32> = (1..=3)
        .map(|n| harness.run(&v2_report(v4_host, v4_group(n))))
        .collect();
    let mld: Vec<u32> = (1..=6)
        .map(|n| {
            let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 7, n);
            harness.run(&mld_v1_report(HOST, group))
        })
        .collect();
    assert_eq!(igmp, [XDP_PASS; 3]);
    assert_eq!(
        mld,
        [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP, XDP_DROP]
    );
    assert_eq!(harness.drops(DropReason::RateLimited), 4);
    assert_eq!(harness.memberships6().len(), 2);
    // Dones draw on it too; queries do not.
    assert_eq!(harness.run(&mld_done(HOST, GROUP)), XDP_DROP);
    assert_eq!(harness.run(&general_query_v2()), XDP_PASS);
    assert_eq!(harness.routers6().len(), 1);
}

#[test]
fn a_ports_group_limit_counts_both_families() {
    let mut harness = Harness::new();
    harness.set_port(PortSettings {
        max_groups: 3,
        ..PortSettings::default()
    });
    harness.run(&v2_report(
        std::net::Ipv4Addr::new(10, 0, 0, 7),
        std::net::Ipv4Addr::new(239, 3, 0, 1),
    ));
    for n in 1..=4 {
        let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 8, n);
        assert_eq!(harness.run(&mld_v1_report(HOST, group)), XDP_PASS);
    }
    assert_eq!(harness.memberships6().len(), 2);
    assert_eq!(harness.count(Counter::GroupLimit), 2);
    assert_eq!(harness.in_use(TEST_RUN_IFINDEX), 3);
    // Members already in keep refreshing.
    harness.run(&mld_v1_report(
        HOST_B,
        Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 8, 1),
    ));
    assert_eq!(harness.count(Counter::GroupRefreshed), 1);
}

// ---- Data ----------------------------------------------------------------

const SENDER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);

fn data_count(harness: &Harness, counter: DataCounter) -> u64 {
    harness.tables.data_counters().frames[counter as usize]
}

fn register(harness: &Harness, vlan: u16, group: Ipv6Addr) {
    let key: GroupKey<V6> = GroupKey {
        vlan,
        inner_vlan: 0,
        group: group.octets(),
    };
    harness.register6(
        key,
        GroupEntry {
            ports: 2,
            ..GroupEntry::default()
        },
    );
}

#[test]
fn a_registered_ipv6_group_is_redirected() {
    let harness = Harness::new();
    register(&harness, 0, GROUP);
    assert_eq!(
        harness.run(&udp_data_v6(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
}

#[test]
fn ipv6_registration_is_per_vlan_and_per_family() {
    let harness = Harness::new();
    register(&harness, 10, GROUP);
    assert_eq!(
        harness.run(&udp_data_v6(&[(TPID_8021Q, 10)], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(
        harness.run(&udp_data_v6(&[(TPID_8021Q, 20)], SENDER, GROUP, 100)),
        XDP_PASS
    );
    assert_eq!(
        harness.run(&udp_data_v6(&[], SENDER, GROUP_B, 100)),
        XDP_PASS
    );
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
}

/// A registered solicited-node group is snooped like any other: neighbour
/// solicitations to it go to its members (its target's port), as on the bridge.
#[test]
fn a_registered_solicited_node_group_is_redirected() {
    let harness = Harness::new();
    let target = solicited_node(GLOBAL_HOST);
    register(&harness, 0, target);
    let mut solicitation = Ipv6::mld(SENDER, target, vec![135, 0, 0, 0, 0, 0, 0, 0]);
    solicitation.headers.clear();
    solicitation.hop_limit = 255;
    solicitation
        .payload
        .extend_from_slice(&GLOBAL_HOST.octets());
    assert_eq!(harness.run(&frame_v6(&[], &solicitation)), XDP_REDIRECT);
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
    assert_eq!(harness.count(Counter::MldFrames), 0);
}

#[rstest]
#[case::all_nodes(ALL_NODES)]
#[case::interface_local(Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 1))]
#[case::reserved_scope_0(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 5))]
fn all_nodes_and_scopes_0_and_1_are_passed_to_the_kernel(#[case] group: Ipv6Addr) {
    let harness = Harness::new();
    // Even registered (a report never registers them; a bug might).
    register(&harness, 0, group);
    assert_eq!(harness.run(&udp_data_v6(&[], SENDER, group, 100)), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::LinkLocal), 1);
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 0);
}

/// Each family follows its own resolved policy (`auto` resolves per
/// querier): an unregistered global IPv6 group follows `unregistered6`, an
/// IPv4 group `unregistered`, set here to the opposite extremes.
#[rstest]
#[case::flood(unregistered::FLOOD, XDP_PASS, DataCounter::UnregisteredFlooded)]
#[case::routers(
    unregistered::ROUTERS,
    XDP_REDIRECT,
    DataCounter::UnregisteredToRouters
)]
#[case::drop(unregistered::DROP, XDP_DROP, DataCounter::UnregisteredDropped)]
fn unregistered_ipv6_groups_follow_their_own_policy(
    #[case] policy: u8,
    #[case] action: u32,
    #[case] counter: DataCounter,
) {
    let mut harness = Harness::new();
    let ipv4_policy = if policy == unregistered::DROP {
        unregistered::FLOOD
    } else {
        unregistered::DROP
    };
    harness
        .tables
        .forwarding
        .write_forwarding(FastPathPolicy {
            unregistered: ipv4_policy,
            unregistered6: policy,
            ..FastPathPolicy::of(&harness.tables.settings())
        })
        .unwrap();
    assert_eq!(harness.run(&udp_data_v6(&[], SENDER, GROUP, 100)), action);
    assert_eq!(data_count(&harness, counter), 1);
    let v4 = udp_data(
        &[],
        std::net::Ipv4Addr::new(10, 0, 0, 1),
        std::net::Ipv4Addr::new(239, 6, 6, 6),
        100,
    );
    let ipv4_action = if ipv4_policy == unregistered::DROP {
        XDP_DROP
    } else {
        XDP_PASS
    };
    assert_eq!(harness.run(&v4), ipv4_action);
}

/// Whatever the policy, an unregistered link-scope group (here a
/// solicited-node group) is flooded: neighbour discovery must not hang on a
/// report the switch missed.
#[rstest]
#[case::routers(unregistered::ROUTERS)]
#[case::drop(unregistered::DROP)]
fn unregistered_link_scope_groups_are_flooded_whatever_the_policy(#[case] policy: u8) {
    let mut harness = Harness::new();
    harness
        .tables
        .forwarding
        .write_forwarding(FastPathPolicy {
            unregistered: policy,
            unregistered6: policy,
            ..FastPathPolicy::of(&harness.tables.settings())
        })
        .unwrap();
    let solicited = solicited_node(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42));
    assert_eq!(
        harness.run(&udp_data_v6(&[], SENDER, solicited, 100)),
        XDP_PASS
    );
    assert_eq!(data_count(&harness, DataCounter::UnregisteredFlooded), 1);
}

#[test]
fn unregistered_ipv6_groups_are_flooded_by_default() {
    let harness = Harness::new();
    assert_eq!(harness.run(&udp_data_v6(&[], SENDER, GROUP, 100)), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::UnregisteredFlooded), 1);
}

#[test]
fn unicast_ipv6_passes_uncounted() {
    let harness = Harness::new();
    let unicast = udp_data_v6(&[], SENDER, S1, 100);
    assert_eq!(harness.run(&unicast), XDP_PASS);
    let mut ping = Ipv6::mld(SENDER, S1, vec![128, 0, 0, 0, 0, 1, 0, 1]);
    ping.headers.clear();
    ping.hop_limit = 64;
    assert_eq!(harness.run(&frame_v6(&[], &ping)), XDP_PASS);
    assert_eq!(
        harness.tables.data_counters().frames.iter().sum::<u64>(),
        0,
        "unicast is not counted"
    );
    assert_eq!(harness.count(Counter::MldFrames), 0);
    assert!(harness.nonzero_drops().is_empty());
}

/// A query makes a router port and bumps ROUTER_EPOCH6, so that a group's
/// sole port no longer holds and data is broadcast again.
#[test]
fn an_ipv6_router_port_learned_since_brings_the_broadcast_back() {
    let harness = Harness::new();
    const OTHER_PORT: u32 = 7;
    let key: GroupKey<V6> = GroupKey::untagged(GROUP.octets());
    harness.register6(
        key,
        GroupEntry {
            ports: 1,
            sole_port: OTHER_PORT,
            ..GroupEntry::default()
        },
    );
    let mut tables = igmp_user::tables::Tables::open(harness.pin_dir()).unwrap();
    tables
        .ports
        .egress_ports
        .insert(OTHER_PORT, TEST_RUN_IFINDEX, None, 0)
        .unwrap();
    assert_eq!(
        harness.run(&udp_data_v6(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::ForwardedSolePort), 1);
    harness.run(&general_query_v2());
    assert_eq!(harness.router_epoch6(), 1);
    assert_eq!(
        harness.run(&udp_data_v6(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(
        data_count(&harness, DataCounter::ForwardedSolePort),
        1,
        "broadcast, not to the sole port"
    );
}

/// Sets which families' reports go to router ports only.
fn set_reports_to_routers(harness: &mut Harness, igmp: bool, mld: bool) {
    harness
        .tables
        .forwarding
        .write_forwarding(FastPathPolicy {
            reports_to_routers: igmp,
            reports_to_routers6: mld,
            ..FastPathPolicy::of(&harness.tables.settings())
        })
        .unwrap();
}

/// MLD reports and Done go to router ports once an MLD querier is known
/// (RFC 4541 §3): a broadcast whose copies the egress filter keeps to
/// router ports; before, and for queries always, the kernel. IGMP's
/// querier does not decide for MLD.
#[test]
fn mld_reports_and_done_go_to_router_ports_once_an_mld_querier_is_known() {
    let mut harness = Harness::new();
    let reports = [
        mld_v1_report(HOST, GROUP),
        v2(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])]),
        mld_done(HOST, GROUP),
    ];
    for report in &reports {
        assert_eq!(harness.run(report), XDP_PASS, "no querier known: flooded");
    }
    set_reports_to_routers(&mut harness, true, false);
    assert_eq!(harness.run(&reports[0]), XDP_PASS, "an IGMP querier only");
    assert_eq!(data_count(&harness, DataCounter::ReportsToRouters), 0);

    set_reports_to_routers(&mut harness, false, true);
    for report in &reports {
        assert_eq!(harness.run(report), XDP_REDIRECT);
    }
    assert_eq!(harness.run(&general_query_v2()), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::ReportsToRouters), 3);
    assert_eq!(harness.count(Counter::MldV1Report), 3, "still learned from");
    assert_eq!(harness.count(Counter::MldV2Record), 2);
}

#[test]
fn a_malformed_mld_report_is_never_redirected() {
    let mut harness = Harness::new();
    set_reports_to_routers(&mut harness, true, true);
    let bad = flip(mld_v1_report(HOST, GROUP), ICMPV6_AT + 2);
    assert_eq!(harness.run(&bad), XDP_PASS);
    assert!(harness.memberships6().is_empty());
}

#[test]
fn ipv4_and_ipv6_tables_stay_apart() {
    let harness = Harness::new();
    harness.run(&v2_report(
        std::net::Ipv4Addr::new(10, 0, 0, 7),
        std::net::Ipv4Addr::new(239, 1, 2, 3),
    ));
    harness.run(&mld_v1_report(HOST, GROUP));
    assert_eq!(harness.memberships().len(), 1);
    assert_eq!(harness.memberships6().len(), 1);
    assert_eq!(harness.count(Counter::IgmpFrames), 1);
    assert_eq!(harness.count(Counter::MldFrames), 1);
    assert!(harness
        .events()
        .iter()
        .all(|event| event.group == [239, 1, 2, 3]));
    assert!(harness
        .events6()
        .iter()
        .all(|event| event.group == GROUP.octets()));
}

/// A PIMv6 hello (to ff02::d, all PIM routers, RFC 7761 §4.9.2) from a
/// router that may never query: its port becomes an MLD router port, as a
/// PIM hello to 224.0.0.13 makes an IGMP one; other PIM messages and hellos
/// elsewhere make none. Every one goes on to the kernel.
#[rstest]
#[case::hello_to_all_pim_routers(0x20, ALL_PIM_ROUTERS_V6, true)]
#[case::register_to_all_pim_routers(0x21, ALL_PIM_ROUTERS_V6, false)]
#[case::hello_to_all_nodes(0x20, ALL_NODES, false)]
fn pimv6_hellos_make_router_ports(
    #[case] kind: u8,
    #[case] destination: Ipv6Addr,
    #[case] router: bool,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    const PIM: u8 = 103;
    let harness = Harness::on(hook);
    let hello = Ipv6 {
        version: 6,
        source: QUERIER,
        destination,
        hop_limit: 1,
        headers: vec![],
        protocol: PIM,
        payload: vec![kind, 0, 0, 0, 0, 1, 0, 2, 0, 105],
        payload_length: None,
        seal: false,
    };
    assert_eq!(harness.run(&frame_v6(&[], &hello)), XDP_PASS);
    let routers = harness.routers6();
    assert_eq!(routers.len(), usize::from(router), "{routers:?}");
    assert_eq!(harness.count(Counter::PimHello), u64::from(router));
    if router {
        assert_eq!(routers[0].1.querier, QUERIER.octets());
    }
    assert!(harness.routers().is_empty(), "not an IPv4 router port");
    assert!(harness.nonzero_drops().is_empty());
}
