//! BPF_PROG_TEST_RUN on crafted frames: every parse branch, every malformed case.
//! Each case checks the XDP action, the table, and the counter that moved.
//!
//! TestRun tier (`Harness`, no namespaces): each case runs in both hooks,
//! the XDP program and the tc classifier, which share the parser.

use std::net::Ipv4Addr;

use igmp_common::{
    filter_mode, membership_flags, source_flags, Counter, DataCounter, DropReason, MAX_V3_RECORDS,
    MAX_V3_SOURCES_PER_RECORD,
};
use igmp_tests::{
    frames::*,
    harness::{Harness, TestHook, TEST_RUN_IFINDEX, XDP_PASS},
};
use igmp_user::timers::monotonic_ns;
use rstest::rstest;

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const GROUP_B: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);
const S1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const S2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn groups(harness: &Harness) -> Vec<(u16, u16, Ipv4Addr)> {
    harness
        .memberships()
        .iter()
        .map(|(key, _)| (key.vlan, key.inner_vlan, Ipv4Addr::from(key.group)))
        .collect()
}

fn sources(harness: &Harness) -> Vec<(Ipv4Addr, Ipv4Addr, u8, u8)> {
    harness
        .sources()
        .iter()
        .map(|(key, entry)| {
            (
                Ipv4Addr::from(key.group),
                Ipv4Addr::from(key.source),
                entry.mode,
                entry.flags,
            )
        })
        .collect()
}

fn v3(records: &[Record]) -> Vec<u8> {
    v3_report_frame(HOST, records)
}

#[rstest]
fn v2_report_creates_an_exclude_entry_with_a_fresh_timestamp(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let before = monotonic_ns();
    assert_eq!(harness.run(&v2_report(HOST, GROUP)), XDP_PASS);
    let entries = harness.memberships();
    assert_eq!(entries.len(), 1);
    let (key, entry) = entries[0];
    assert_eq!(
        (key.ifindex, key.vlan, key.group),
        (TEST_RUN_IFINDEX, 0, GROUP.octets())
    );
    assert!(entry.last_report_ns >= before && entry.last_report_ns <= monotonic_ns());
    assert_eq!(entry.created_ns, entry.last_report_ns);
    assert_eq!(
        (entry.version, entry.filter_mode, entry.flags),
        (2, filter_mode::EXCLUDE, 0)
    );
    assert_eq!(entry.last_reporter, HOST.octets());
    assert_eq!(harness.count(Counter::V2Report), 1);
    assert_eq!(harness.count(Counter::GroupCreated), 1);
    assert_eq!(harness.count(Counter::IgmpFrames), 1);
    assert!(harness.nonzero_drops().is_empty());
}

#[rstest]
fn v1_report_records_version_1(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V1_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame(&[], &ip)), XDP_PASS);
    assert_eq!(harness.memberships()[0].1.version, 1);
    assert_eq!(harness.count(Counter::V1Report), 1);
}

#[rstest]
fn only_v1_reports_start_the_v1_host_present_timer(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let v1 = Ipv4::igmp(HOST, GROUP, igmp_message(V1_REPORT, 0, GROUP));
    let before = monotonic_ns();
    harness.run(&frame(&[], &v1));
    harness.run(&v2_report(HOST, GROUP_B));
    let timers: Vec<_> = harness
        .tables
        .learned
        .v1_hosts
        .iter()
        .filter_map(Result::ok)
        .map(|(key, last)| (Ipv4Addr::from(key.group), last >= before))
        .collect();
    assert_eq!(timers, [(GROUP, true)], "v2 reports leave it alone");
    // A later v1 report restarts it in place.
    let first = harness
        .tables
        .learned
        .v1_hosts
        .iter()
        .next()
        .unwrap()
        .unwrap()
        .1;
    harness.run(&frame(&[], &v1));
    let second = harness
        .tables
        .learned
        .v1_hosts
        .iter()
        .next()
        .unwrap()
        .unwrap()
        .1;
    assert!(second > first);
}

#[rstest]
fn second_report_refreshes_in_place(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&v2_report(HOST, GROUP));
    let first = harness.memberships()[0].1;
    harness.run(&v2_report(Ipv4Addr::new(10, 0, 0, 8), GROUP));
    let second = harness.memberships()[0].1;
    assert_eq!(harness.memberships().len(), 1);
    assert!(second.last_report_ns > first.last_report_ns);
    assert_eq!(second.created_ns, first.created_ns);
    assert_eq!(second.last_reporter, [10, 0, 0, 8]);
    assert_eq!(harness.count(Counter::GroupRefreshed), 1);
}

#[rstest]
#[case::to_all_routers(ALL_ROUTERS)]
#[case::to_the_group(GROUP)]
fn v2_leave_marks_the_entry_leaving(
    #[case] destination: Ipv4Addr,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v2_report(HOST, GROUP));
    let leave = Ipv4::igmp(HOST, destination, igmp_message(V2_LEAVE, 0, GROUP));
    assert_eq!(harness.run(&frame(&[], &leave)), XDP_PASS);
    let entry = harness.memberships()[0].1;
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
    assert!(entry.leave_ns >= entry.last_report_ns);
    assert_eq!(harness.count(Counter::V2Leave), 1);
    // A report after the leave cancels it.
    harness.run(&v2_report(HOST, GROUP));
    let entry = harness.memberships()[0].1;
    assert_eq!((entry.flags, entry.leave_ns), (0, 0));
}

#[rstest]
fn leave_for_an_unknown_group_creates_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let leave = Ipv4::igmp(HOST, ALL_ROUTERS, igmp_message(V2_LEAVE, 0, GROUP));
    harness.run(&frame(&[], &leave));
    assert!(harness.memberships().is_empty());
    assert_eq!(harness.count(Counter::V2Leave), 1);
}

#[rstest]
#[case::mode_is_exclude(MODE_IS_EXCLUDE)]
#[case::change_to_exclude(CHANGE_TO_EXCLUDE)]
fn v3_exclude_records_join_and_list_excluded_sources(
    #[case] kind: u8,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[Record::new(kind, GROUP, &[S1])]));
    let entry = harness.memberships()[0].1;
    assert_eq!(
        (entry.version, entry.filter_mode),
        (3, filter_mode::EXCLUDE)
    );
    assert_eq!(
        sources(&harness),
        vec![(GROUP, S1, filter_mode::EXCLUDE, 0)]
    );
    assert_eq!(harness.count(Counter::V3Report), 1);
    assert_eq!(harness.count(Counter::V3Record), 1);
    assert_eq!(harness.count(Counter::SourceCreated), 1);
}

#[rstest]
#[case::mode_is_include(MODE_IS_INCLUDE)]
#[case::allow_new_sources(ALLOW_NEW_SOURCES)]
#[case::change_to_include(CHANGE_TO_INCLUDE)]
fn v3_include_records_join_with_their_sources(
    #[case] kind: u8,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[Record::new(kind, GROUP, &[S1, S2])]));
    let entry = harness.memberships()[0].1;
    assert_eq!((entry.filter_mode, entry.flags), (filter_mode::INCLUDE, 0));
    assert_eq!(
        sources(&harness),
        vec![
            (GROUP, S1, filter_mode::INCLUDE, 0),
            (GROUP, S2, filter_mode::INCLUDE, 0)
        ]
    );
}

#[rstest]
fn v3_is_include_of_nothing_changes_nothing(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[
        Record::new(MODE_IS_INCLUDE, GROUP, &[]),
        Record::new(ALLOW_NEW_SOURCES, GROUP_B, &[]),
    ]));
    assert!(harness.memberships().is_empty());
    assert_eq!(harness.count(Counter::V3Record), 2);
}

#[rstest]
fn v3_change_to_include_nothing_is_a_leave(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[Record::new(CHANGE_TO_EXCLUDE, GROUP, &[])]));
    harness.run(&v3(&[Record::new(CHANGE_TO_INCLUDE, GROUP, &[])]));
    let entry = harness.memberships()[0].1;
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
}

#[rstest]
fn v3_change_to_include_from_exclude_queries_the_rest(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[Record::new(CHANGE_TO_EXCLUDE, GROUP, &[])]));
    harness.run(&v3(&[Record::new(CHANGE_TO_INCLUDE, GROUP, &[S1])]));
    let entry = harness.memberships()[0].1;
    assert_eq!(
        entry.filter_mode,
        filter_mode::EXCLUDE,
        "mode changes when the timer says, not on the record"
    );
    assert_eq!(
        entry.flags & membership_flags::LEAVE_PENDING,
        membership_flags::LEAVE_PENDING
    );
    assert_eq!(
        sources(&harness),
        vec![(GROUP, S1, filter_mode::INCLUDE, 0)]
    );
}

#[rstest]
fn v3_block_marks_known_sources_leaving_and_ignores_unknown_ones(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v3(&[Record::new(MODE_IS_INCLUDE, GROUP, &[S1])]));
    harness.run(&v3(&[Record::new(BLOCK_OLD_SOURCES, GROUP, &[S1, S2])]));
    assert_eq!(
        sources(&harness),
        vec![(GROUP, S1, filter_mode::INCLUDE, source_flags::LEAVE_PENDING)]
    );
}

#[rstest]
fn v3_report_with_many_records_and_aux_data(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let mut with_aux = Record::new(MODE_IS_EXCLUDE, GROUP, &[]);
    with_aux.aux_words = 2;
    let groups_in: Vec<Ipv4Addr> = (1..=5).map(|n| Ipv4Addr::new(239, 0, 1, n)).collect();
    let mut records = vec![with_aux];
    records.extend(
        groups_in
            .iter()
            .map(|g| Record::new(CHANGE_TO_EXCLUDE, *g, &[])),
    );
    harness.run(&v3(&records));
    assert_eq!(groups(&harness).len(), 6);
    assert_eq!(harness.count(Counter::V3Record), 6);
}

#[rstest]
fn v3_records_past_the_bound_are_counted_as_cut(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let records: Vec<Record> = (0..MAX_V3_RECORDS + 8)
        .map(|n| Record::new(CHANGE_TO_EXCLUDE, Ipv4Addr::new(239, 3, 0, n as u8), &[]))
        .collect();
    harness.run(&v3(&records));
    assert_eq!(harness.memberships().len(), MAX_V3_RECORDS);
    assert_eq!(harness.count(Counter::RecordsCut), 8);
}

#[rstest]
fn v3_sources_past_the_bound_are_cut_and_the_group_flagged(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let many: Vec<Ipv4Addr> = (0..MAX_V3_SOURCES_PER_RECORD + 4)
        .map(|n| Ipv4Addr::new(192, 0, 2, n as u8 + 1))
        .collect();
    harness.run(&v3(&[Record::new(MODE_IS_INCLUDE, GROUP, &many)]));
    assert_eq!(harness.sources().len(), MAX_V3_SOURCES_PER_RECORD);
    assert_eq!(harness.count(Counter::SourcesCut), 4);
    let flags = harness.memberships()[0].1.flags;
    assert_eq!(
        flags & membership_flags::SOURCES_TRUNCATED,
        membership_flags::SOURCES_TRUNCATED
    );
}

#[rstest]
#[case::untagged(&[], 0, 0)]
#[case::dot1q(&[(TPID_8021Q, 10)], 10, 0)]
#[case::dot1q_with_priority(&[(TPID_8021Q, 0xa000 | 42)], 42, 0)]
#[case::qinq(&[(TPID_8021AD, 100), (TPID_8021Q, 10)], 100, 10)]
#[case::double_dot1q(&[(TPID_8021Q, 7), (TPID_8021Q, 8)], 7, 8)]
fn membership_is_kept_per_vlan(
    #[case] tags: &[(u16, u16)],
    #[case] vlan: u16,
    #[case] inner: u16,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame(tags, &ip)), XDP_PASS);
    assert_eq!(groups(&harness), vec![(vlan, inner, GROUP)]);
}

/// On a VLAN-filtering bridge the daemon writes each port's PVID: untagged
/// and priority-tagged reports are learned in it, as the bridge's own
/// per-VLAN snooping does; a tagged one keeps its tag.
#[rstest]
#[case::untagged(&[], 10)]
#[case::priority_tagged(&[(TPID_8021Q, 0xa000)], 10)]
#[case::tagged(&[(TPID_8021Q, 20)], 20)]
fn untagged_reports_are_learned_in_the_ports_pvid(
    #[case] tags: &[(u16, u16)],
    #[case] vlan: u16,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let mut harness = Harness::on(hook);
    harness.set_port_in_vlan_bridge(10, &[(10, true), (20, false)]);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame(tags, &ip)), XDP_PASS);
    assert_eq!(groups(&harness), vec![(vlan, 0, GROUP)]);
}

/// A VLAN-filtering bridge drops what comes in on a port in a VLAN the port
/// is not a member of, and an untagged frame on a port without PVID: such a
/// report is not learned, only counted, and left to the bridge.
#[rstest]
#[case::tagged_outside_its_vlans(10, &[(TPID_8021Q, 30)])]
#[case::untagged_without_pvid(0, &[])]
fn a_report_in_a_vlan_its_port_is_not_in_is_not_learned(
    #[case] pvid: u16,
    #[case] tags: &[(u16, u16)],
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let mut harness = Harness::on(hook);
    harness.set_port_in_vlan_bridge(pvid, &[(10, true), (20, false)]);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame(tags, &ip)), XDP_PASS);
    assert!(harness.memberships().is_empty());
    assert_eq!(
        harness.tables.data_counters().frames[DataCounter::OutsidePortVlans as usize],
        1
    );
}

/// Without VLAN filtering the tag is the VLAN, whatever PORT_VLANS says.
#[rstest]
fn without_vlan_filtering_a_tagged_report_is_learned_in_its_tag(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let mut harness = Harness::on(hook);
    harness.set_port_vlans(TEST_RUN_IFINDEX, &[(10, true)]);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    assert_eq!(harness.run(&frame(&[(TPID_8021Q, 30)], &ip)), XDP_PASS);
    assert_eq!(harness.run(&frame(&[], &ip)), XDP_PASS);
    assert_eq!(groups(&harness), vec![(0, 0, GROUP), (30, 0, GROUP)]);
}

#[rstest]
fn a_third_vlan_tag_is_counted_and_passed(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    let tags = [(TPID_8021AD, 1), (TPID_8021Q, 2), (TPID_8021Q, 3)];
    assert_eq!(harness.run(&frame(&tags, &ip)), XDP_PASS);
    assert!(harness.memberships().is_empty());
    assert_eq!(
        harness.nonzero_drops(),
        vec![(DropReason::TooManyVlanTags.name(), 1)]
    );
}

#[rstest]
#[case::no_options(vec![])]
#[case::router_alert(ROUTER_ALERT.to_vec())]
#[case::forty_bytes_of_options([ROUTER_ALERT.to_vec(), vec![1; 36]].concat())]
fn ip_options_of_any_length_are_skipped(
    #[case] options: Vec<u8>,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mut ip = Ipv4::igmp(
        HOST,
        ALL_V3_ROUTERS,
        v3_report(&[Record::new(MODE_IS_EXCLUDE, GROUP, &[])]),
    );
    ip.options = options;
    assert_eq!(harness.run(&frame(&[], &ip)), XDP_PASS);
    assert_eq!(groups(&harness), vec![(0, 0, GROUP)]);
}

#[rstest]
#[case::v1_general(
    igmp_message(QUERY, 0, Ipv4Addr::UNSPECIFIED),
    ALL_HOSTS,
    1,
    Counter::V1Query
)]
#[case::v2_general(
    igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
    ALL_HOSTS,
    2,
    Counter::V2Query
)]
#[case::v2_group_specific(igmp_message(QUERY, 10, GROUP), GROUP, 2, Counter::V2Query)]
#[case::v2_group_specific_to_all_hosts_as_the_bridge_sends(
    igmp_message(QUERY, 10, GROUP),
    ALL_HOSTS,
    2,
    Counter::V2Query
)]
#[case::v3_general(v3_query(Ipv4Addr::UNSPECIFIED, 100, 2, 125, &[]), ALL_HOSTS, 3, Counter::V3Query)]
#[case::v3_group_and_source(v3_query(GROUP, 10, 2, 125, &[S1]), GROUP, 3, Counter::V3Query)]
fn queries_make_a_router_port(
    #[case] message: Vec<u8>,
    #[case] destination: Ipv4Addr,
    #[case] version: u8,
    #[case] counter: Counter,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let querier = Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(
        harness.run(&frame(&[], &Ipv4::igmp(querier, destination, message))),
        XDP_PASS
    );
    let routers = harness.routers();
    assert_eq!(routers.len(), 1);
    let (key, router) = routers[0];
    assert_eq!(
        (key.ifindex, router.querier, router.version),
        (TEST_RUN_IFINDEX, querier.octets(), version)
    );
    if version == 3 {
        assert_eq!((router.robustness, router.qqic), (2, 125));
    }
    assert_eq!(harness.count(counter), 1);
    assert!(harness.memberships().is_empty(), "a query joins nothing");
}

#[rstest]
fn proxy_query_from_0_0_0_0_makes_no_router_port(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let query = Ipv4::igmp(
        Ipv4Addr::UNSPECIFIED,
        ALL_HOSTS,
        igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
    );
    harness.run(&frame(&[], &query));
    assert!(harness.routers().is_empty());
    assert_eq!(harness.count(Counter::ProxyQuery), 1);
    assert_eq!(harness.count(Counter::V2Query), 1);
}

#[rstest]
fn link_local_reports_never_create_entries(#[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook) {
    let harness = Harness::on(hook);
    let mdns = Ipv4Addr::new(224, 0, 0, 251);
    harness.run(&v2_report(HOST, mdns));
    harness.run(&v3(&[
        Record::new(CHANGE_TO_EXCLUDE, mdns, &[]),
        Record::new(CHANGE_TO_EXCLUDE, GROUP, &[]),
    ]));
    assert_eq!(groups(&harness), vec![(0, 0, GROUP)]);
    assert_eq!(harness.count(Counter::LinkLocalReport), 2);
    assert!(harness.nonzero_drops().is_empty());
}

#[rstest]
#[case::unicast_tcp(ethernet([2, 0, 0, 0, 0, 9], &[], 0x0800, &Ipv4 { protocol: 6, destination: Ipv4Addr::new(10, 0, 0, 9), ..Ipv4::igmp(HOST, GROUP, vec![0; 20]) }.encode()))]
#[case::multicast_udp(udp_data(&[], HOST, GROUP, 64))]
#[case::tagged_multicast_udp(udp_data(&[(TPID_8021Q, 5)], HOST, GROUP, 64))]
#[case::arp(ethernet([0xff; 6], &[], 0x0806, &[0; 28]))]
#[case::tag_cut_off(ethernet([0xff; 6], &[], 0x8100, &[]))]
#[case::ip_header_cut_off(ethernet([0xff; 6], &[], 0x0800, &[0x46, 0, 0]))]
fn frames_without_igmp_pass_untouched_and_uncounted(
    #[case] frame: Vec<u8>,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    if !harness.test_run_takes(&frame) {
        assert!(harness.try_run(&frame, 1).is_err(), "the kernel took it");
        return;
    }
    assert_eq!(harness.run(&frame), XDP_PASS);
    assert!(harness.memberships().is_empty());
    assert_eq!(harness.count(Counter::IgmpFrames), 0);
}

#[rstest]
fn unknown_igmp_types_are_counted_and_ignored(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let mtrace = Ipv4::igmp(HOST, GROUP, igmp_message(0x1f, 0, GROUP));
    assert_eq!(harness.run(&frame(&[], &mtrace)), XDP_PASS);
    assert_eq!(harness.count(Counter::OtherIgmpType), 1);
    assert!(harness.memberships().is_empty() && harness.nonzero_drops().is_empty());
}

/// A v2 report whose IP header or message is broken in one way.
fn broken_v2(edit: impl FnOnce(&mut Ipv4)) -> Vec<u8> {
    let mut ip = Ipv4::igmp(HOST, GROUP, igmp_message(V2_REPORT, 0, GROUP));
    edit(&mut ip);
    frame(&[], &ip)
}

fn v3_to(destination: Ipv4Addr) -> Vec<u8> {
    frame(
        &[],
        &Ipv4::igmp(
            HOST,
            destination,
            v3_report(&[Record::new(MODE_IS_EXCLUDE, GROUP, &[])]),
        ),
    )
}

fn corrupt(mut frame: Vec<u8>, at: usize) -> Vec<u8> {
    frame[at] ^= 0x40;
    frame
}

/// Sets the IP total length field (IHL 6: header at 14..38).
fn with_total_length(mut frame: Vec<u8>, total: u16) -> Vec<u8> {
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&frame[14..38]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[rstest]
#[case::bad_igmp_checksum(corrupt(v2_report(HOST, GROUP), 14 + 24 + 2), DropReason::BadIgmpChecksum)]
#[case::bad_ip_checksum(corrupt(v2_report(HOST, GROUP), 14 + 10), DropReason::BadIpChecksum)]
#[case::ttl_2(broken_v2(|ip| ip.ttl = 2), DropReason::BadTtl)]
#[case::ttl_64(broken_v2(|ip| ip.ttl = 64), DropReason::BadTtl)]
#[case::more_fragments(broken_v2(|ip| ip.fragment = 0x2000), DropReason::IpFragment)]
#[case::fragment_offset(broken_v2(|ip| ip.fragment = 0x0010), DropReason::IpFragment)]
#[case::ihl_below_5(corrupt(v2_report(HOST, GROUP), 14), DropReason::BadIpHeader)]
#[case::total_length_past_frame(
    with_total_length(v2_report(HOST, GROUP), 200),
    DropReason::Truncated
)]
#[case::total_length_below_igmp(
    with_total_length(v2_report(HOST, GROUP), 30),
    DropReason::BadIpLength
)]
#[case::group_not_multicast(broken_v2(|ip| { ip.destination = Ipv4Addr::new(10, 1, 1, 1); ip.payload = igmp_message(V2_REPORT, 0, Ipv4Addr::new(10, 1, 1, 1)) }), DropReason::NotMulticastGroup)]
#[case::report_to_other_group(broken_v2(|ip| ip.destination = GROUP_B), DropReason::BadDestination)]
#[case::report_to_all_hosts(broken_v2(|ip| ip.destination = ALL_HOSTS), DropReason::BadDestination)]
#[case::leave_to_all_hosts(broken_v2(|ip| { ip.destination = ALL_HOSTS; ip.payload = igmp_message(V2_LEAVE, 0, GROUP) }), DropReason::BadDestination)]
#[case::v3_report_to_all_hosts(v3_to(ALL_HOSTS), DropReason::BadDestination)]
#[case::v3_report_to_unicast(v3_to(Ipv4Addr::new(10, 0, 0, 1)), DropReason::BadDestination)]
#[case::group_query_to_another_group(frame(&[], &Ipv4::igmp(HOST, GROUP_B, igmp_message(QUERY, 10, GROUP))), DropReason::BadDestination)]
#[case::general_query_to_group(frame(&[], &Ipv4::igmp(HOST, GROUP, igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED))), DropReason::BadDestination)]
#[case::query_of_10_bytes(frame(&[], &Ipv4::igmp(HOST, ALL_HOSTS, seal_igmp([igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED), vec![0, 0]].concat()))), DropReason::BadIgmpLength)]
#[case::v3_query_sources_past_end(frame(&[], &Ipv4::igmp(HOST, GROUP, { let mut q = v3_query(GROUP, 10, 2, 125, &[S1]); q[11] = 5; seal_igmp(q) })), DropReason::BadIgmpLength)]
#[case::record_count_past_end(frame(&[], &Ipv4::igmp(HOST, ALL_V3_ROUTERS, v3_report_claiming(&[Record::new(MODE_IS_EXCLUDE, GROUP, &[])], 3))), DropReason::RecordPastEnd)]
#[case::source_count_past_end(frame(&[], &Ipv4::igmp(HOST, ALL_V3_ROUTERS, { let mut r = v3_report(&[Record::new(MODE_IS_INCLUDE, GROUP, &[S1])]); r[11] = 9; seal_igmp(r) })), DropReason::SourcesPastEnd)]
#[case::aux_past_end(frame(&[], &Ipv4::igmp(HOST, ALL_V3_ROUTERS, { let mut r = v3_report(&[Record::new(MODE_IS_INCLUDE, GROUP, &[S1])]); r[9] = 4; seal_igmp(r) })), DropReason::AuxPastEnd)]
#[case::unknown_record_type(v3(&[Record::new(7, GROUP, &[])]), DropReason::UnknownRecordType)]
#[case::record_group_not_multicast(v3(&[Record::new(MODE_IS_EXCLUDE, GROUP, &[]), Record::new(MODE_IS_EXCLUDE, Ipv4Addr::new(10, 1, 1, 1), &[])]), DropReason::NotMulticastGroup)]
fn malformed_frames_are_counted_passed_and_change_nothing(
    #[case] frame: Vec<u8>,
    #[case] reason: DropReason,
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    harness.run(&v2_report(HOST, GROUP_B));
    let table_before = harness.memberships();
    assert_eq!(harness.run(&frame), XDP_PASS);
    assert_eq!(harness.memberships(), table_before, "the table changed");
    assert!(harness.sources().is_empty() && harness.routers().is_empty());
    assert_eq!(harness.nonzero_drops(), vec![(reason.name(), 1)]);
}

/// A v3 report with sources and aux data, to cut everywhere.
fn rich_v3_message() -> Vec<u8> {
    let mut aux = Record::new(MODE_IS_INCLUDE, GROUP, &[S1, S2]);
    aux.aux_words = 1;
    v3_report(&[aux, Record::new(CHANGE_TO_EXCLUDE, GROUP_B, &[S1])])
}

#[rstest]
fn a_v3_frame_truncated_at_every_offset_changes_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let whole = frame(&[], &Ipv4::igmp(HOST, ALL_V3_ROUTERS, rich_v3_message()));
    // From the IP protocol field on, the frame says IGMP and ends short of it.
    let protocol_field_end = 14 + 10;
    let mut truncated_seen = 0;
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
    for cut in 14..whole.len() {
        if !harness.test_run_takes(&whole[..cut]) {
            assert!(harness.try_run(&whole[..cut], 1).is_err(), "cut at {cut}");
            continue;
        }
        assert_eq!(harness.run(&whole[..cut]), XDP_PASS, "cut at {cut}");
        assert!(
            harness.memberships().is_empty(),
            "cut at {cut} changed the table"
        );
        if cut >= protocol_field_end {
            truncated_seen += 1;
        }
        assert_eq!(
            harness.drops(DropReason::Truncated),
            truncated_seen,
            "cut at {cut}"
        );
    }
    assert_eq!(
        harness.nonzero_drops(),
        vec![(DropReason::Truncated.name(), truncated_seen)]
    );
}

#[rstest]
fn a_v3_message_cut_short_with_consistent_ip_length_changes_nothing(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let harness = Harness::on(hook);
    let message = rich_v3_message();
    let mut rejected = 0;
    for cut in 8..message.len() {
        let short = seal_igmp(message[..cut].to_vec());
        assert_eq!(
            harness.run(&frame(&[], &Ipv4::igmp(HOST, ALL_V3_ROUTERS, short))),
            XDP_PASS
        );
        assert!(
            harness.memberships().is_empty(),
            "cut at {cut} changed the table"
        );
        rejected += 1;
        let length_reasons = [
            DropReason::RecordPastEnd,
            DropReason::SourcesPastEnd,
            DropReason::AuxPastEnd,
        ];
        let counted: u64 = length_reasons
            .iter()
            .map(|reason| harness.drops(*reason))
            .sum();
        assert_eq!(
            counted,
            rejected,
            "cut at {cut}: {:?}",
            harness.nonzero_drops()
        );
    }
}
