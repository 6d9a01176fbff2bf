//! The data path's decision per frame (BPF_PROG_TEST_RUN): redirect registered
//! groups, pass what the kernel must see, apply the unregistered policy.
//!
//! TestRun tier (`Harness`, no namespaces).

use std::net::Ipv4Addr;

use igmp_common::{
    filter_mode, group_flags, unregistered, DataCounter, GroupEntry, GroupKey, Membership, Settings,
};
use igmp_tests::{
    frames::*,
    harness::{Harness, TestHook, TEST_RUN_IFINDEX, XDP_DROP, XDP_PASS, XDP_REDIRECT},
};
use igmp_user::tables::FastPathPolicy;
use rstest::rstest;

const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 6);

/// What the devmap knows a port other than the test-run one by (it leads to lo).
const OTHER_PORT: u32 = 7;

fn group_key(vlan: u16) -> GroupKey {
    GroupKey {
        vlan,
        inner_vlan: 0,
        group: GROUP.octets(),
    }
}

fn write_entry(harness: &mut Harness, vlan: u16, entry: GroupEntry) {
    harness
        .tables
        .forwarding
        .groups
        .insert(group_key(vlan), entry, 0)
        .unwrap();
}

fn register(harness: &mut Harness, vlan: u16, flags: u32) {
    let entry = GroupEntry {
        flags,
        ports: 2,
        ..GroupEntry::default()
    };
    write_entry(harness, vlan, entry);
}

/// Registers the group with `port` as its only destination, worked out at router epoch 0.
fn register_sole_port(harness: &mut Harness, port: u32) {
    let entry = GroupEntry {
        ports: 1,
        sole_port: port,
        ..GroupEntry::default()
    };
    write_entry(harness, 0, entry);
    harness
        .tables
        .ports
        .egress_ports
        .insert(OTHER_PORT, TEST_RUN_IFINDEX, None, 0)
        .unwrap();
}

/// Registers the group with two ports behind `DEST_SETS` slot `slot`, left empty here.
fn register_dest_set(harness: &mut Harness, slot: u32) {
    let entry = GroupEntry {
        ports: 2,
        dest_set: slot + 1,
        ..GroupEntry::default()
    };
    write_entry(harness, 0, entry);
}

/// Registers the group in `vlan` with `port` as its only destination, a
/// member there (EXCLUDE {}), as the daemon would from a join.
fn register_member_port(harness: &mut Harness, vlan: u16, port: u32) {
    let entry = GroupEntry {
        ports: 1,
        sole_port: port,
        ..GroupEntry::default()
    };
    write_entry(harness, vlan, entry);
    let member = Membership {
        filter_mode: filter_mode::EXCLUDE,
        ..Membership::default()
    };
    harness
        .tables
        .learned
        .membership
        .insert(group_key(vlan).on_port(port), member, 0)
        .unwrap();
}

fn entry_now(harness: &Harness) -> GroupEntry {
    harness
        .tables
        .forwarding
        .groups
        .get(&group_key(0), 0)
        .unwrap()
}

fn set_policy(harness: &mut Harness, policy: u8, reports_to_routers: bool) {
    harness
        .tables
        .forwarding
        .write_forwarding(FastPathPolicy {
            unregistered: policy,
            reports_to_routers,
            ..FastPathPolicy::of(&harness.tables.settings())
        })
        .unwrap();
    let settings: Settings = harness.tables.settings();
    assert_eq!(settings.unregistered, policy);
}

fn data_count(harness: &Harness, counter: DataCounter) -> u64 {
    harness.tables.data_counters().frames[counter as usize]
}

#[test]
fn a_registered_group_is_redirected() {
    let mut harness = Harness::new();
    register(&mut harness, 0, 0);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
}

#[test]
fn a_group_with_one_destination_is_redirected_to_it_alone() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, OTHER_PORT);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
    assert_eq!(data_count(&harness, DataCounter::ForwardedSolePort), 1);
}

#[test]
fn data_from_the_only_member_port_goes_nowhere() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, TEST_RUN_IFINDEX);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_DROP);
    assert_eq!(data_count(&harness, DataCounter::ForwardedSolePort), 0);
}

#[test]
fn a_sole_port_gone_from_the_devmap_leaves_the_frame_to_the_kernel() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, OTHER_PORT + 1);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_PASS);
}

#[test]
fn a_router_port_learned_since_brings_the_broadcast_back() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, OTHER_PORT);
    let query = frame(
        &[],
        &Ipv4::igmp(
            Ipv4Addr::new(10, 0, 0, 254),
            ALL_HOSTS,
            igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
        ),
    );
    harness.run(&query);
    assert_eq!(harness.tables.learned.router_epoch.get(&0, 0).unwrap(), 1);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(
        data_count(&harness, DataCounter::ForwardedSolePort),
        0,
        "broadcast, not to the sole port"
    );
    // Refreshing the known router port changes nothing more.
    harness.run(&query);
    assert_eq!(harness.tables.learned.router_epoch.get(&0, 0).unwrap(), 1);
}

#[test]
fn a_second_member_port_clears_the_sole_port_at_once() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, OTHER_PORT);
    harness.run(&v2_report(SENDER, GROUP));
    assert_eq!(entry_now(&harness).sole_port, 0);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::ForwardedSolePort), 0);
}

#[test]
fn a_report_from_the_sole_port_keeps_it() {
    let mut harness = Harness::new();
    register_sole_port(&mut harness, TEST_RUN_IFINDEX);
    harness.run(&v2_report(SENDER, GROUP));
    assert_eq!(entry_now(&harness).sole_port, TEST_RUN_IFINDEX);
}

#[test]
fn a_destination_set_slot_left_empty_falls_back_to_every_port() {
    let mut harness = Harness::new();
    register_dest_set(&mut harness, 4);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(data_count(&harness, DataCounter::ForwardedToSet), 0);
}

#[test]
fn a_new_member_port_voids_the_destination_set() {
    let mut harness = Harness::new();
    register_dest_set(&mut harness, 4);
    harness.run(&v2_report(SENDER, GROUP));
    assert_eq!(entry_now(&harness).dest_set, 0);
}

#[test]
fn registration_is_per_vlan() {
    let mut harness = Harness::new();
    register(&mut harness, 10, 0);
    assert_eq!(
        harness.run(&udp_data(&[(TPID_8021Q, 10)], SENDER, GROUP, 100)),
        XDP_REDIRECT
    );
    assert_eq!(
        harness.run(&udp_data(&[(TPID_8021Q, 20)], SENDER, GROUP, 100)),
        XDP_PASS
    );
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_PASS);
}

#[test]
fn a_group_the_host_listens_to_goes_through_the_kernel() {
    let mut harness = Harness::new();
    register(&mut harness, 0, group_flags::LOCAL_LISTENER);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::LocalListener), 1);
}

#[test]
fn link_local_and_unicast_pass() {
    let harness = Harness::new();
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, Ipv4Addr::new(224, 0, 0, 251), 100)),
        XDP_PASS
    );
    assert_eq!(data_count(&harness, DataCounter::LinkLocal), 1);
    let unicast = udp_data(&[], SENDER, Ipv4Addr::new(10, 0, 0, 2), 100);
    assert_eq!(harness.run(&unicast), XDP_PASS);
    assert_eq!(
        harness.tables.data_counters().frames.iter().sum::<u64>(),
        1,
        "unicast is not counted"
    );
}

#[rstest]
#[case::flood(unregistered::FLOOD, XDP_PASS, DataCounter::UnregisteredFlooded)]
#[case::routers(
    unregistered::ROUTERS,
    XDP_REDIRECT,
    DataCounter::UnregisteredToRouters
)]
#[case::drop(unregistered::DROP, XDP_DROP, DataCounter::UnregisteredDropped)]
fn unregistered_groups_follow_the_policy(
    #[case] policy: u8,
    #[case] action: u32,
    #[case] counter: DataCounter,
) {
    let mut harness = Harness::new();
    set_policy(&mut harness, policy, false);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), action);
    assert_eq!(data_count(&harness, counter), 1);
}

#[test]
fn reports_go_to_router_ports_once_a_querier_is_known_and_queries_are_flooded() {
    let mut harness = Harness::new();
    let report = v2_report(SENDER, GROUP);
    let query = frame(
        &[],
        &Ipv4::igmp(
            SENDER,
            ALL_HOSTS,
            igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
        ),
    );
    assert_eq!(harness.run(&report), XDP_PASS, "no querier known: flooded");
    set_policy(&mut harness, unregistered::FLOOD, true);
    assert_eq!(harness.run(&report), XDP_REDIRECT);
    assert_eq!(harness.run(&query), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::ReportsToRouters), 1);
    assert_eq!(
        harness.memberships().len(),
        1,
        "the report was still learned"
    );
}

#[test]
fn a_malformed_report_is_never_redirected() {
    let mut harness = Harness::new();
    set_policy(&mut harness, unregistered::FLOOD, true);
    let mut bad = v2_report(SENDER, GROUP);
    bad[14 + 24 + 2] ^= 0xff;
    assert_eq!(harness.run(&bad), XDP_PASS);
}

#[test]
fn with_the_fast_path_off_data_and_reports_go_to_the_kernel_and_learning_goes_on() {
    // What the daemon sets on a VLAN-filtering bridge.
    let mut harness = Harness::new();
    register(&mut harness, 0, 0);
    harness
        .tables
        .forwarding
        .write_forwarding(FastPathPolicy {
            unregistered: unregistered::DROP,
            reports_to_routers: true,
            fast_path_off: true,
            vlan_bridges: true,
            ..FastPathPolicy::default()
        })
        .unwrap();
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_PASS);
    assert_eq!(
        harness.run(&udp_data(&[], SENDER, Ipv4Addr::new(239, 9, 9, 9), 100)),
        XDP_PASS
    );
    assert_eq!(harness.run(&v2_report(SENDER, GROUP)), XDP_PASS);
    assert_eq!(harness.memberships().len(), 1);
}

/// On a VLAN-filtering bridge (the tc classifier's case; the daemon turns the
/// fast path off for XDP there) a frame belongs to the bridge's VLAN: an
/// untagged one to its port's PVID. A registered group is forwarded in it;
/// unregistered groups and reports are the bridge's own per-VLAN snooping's;
/// a frame of a VLAN the port is not in is the bridge's to drop.
#[test]
fn on_a_vlan_filtering_bridge_frames_are_forwarded_in_the_bridge_vlan() {
    let mut harness = Harness::on(TestHook::Tc);
    harness.set_port_in_vlan_bridge(10, &[(10, true), (20, false)]);
    harness.set_port_vlans(OTHER_PORT, &[(10, false), (20, false)]);
    register_member_port(&mut harness, 10, OTHER_PORT);
    set_policy(&mut harness, unregistered::DROP, true);
    let untagged = udp_data(&[], SENDER, GROUP, 100);
    assert_eq!(harness.run(&untagged), XDP_REDIRECT, "untagged: PVID 10");
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);

    let in_20 = udp_data(&[(TPID_8021Q, 20)], SENDER, GROUP, 100);
    assert_eq!(harness.run(&in_20), XDP_PASS, "unregistered in VLAN 20");
    assert_eq!(harness.run(&v2_report(SENDER, GROUP)), XDP_PASS, "a report");
    assert_eq!(data_count(&harness, DataCounter::ToBridgeSnooping), 2);
    assert_eq!(data_count(&harness, DataCounter::UnregisteredDropped), 0);
    assert_eq!(data_count(&harness, DataCounter::ReportsToRouters), 0);

    let in_30 = udp_data(&[(TPID_8021Q, 30)], SENDER, GROUP, 100);
    assert_eq!(harness.run(&in_30), XDP_PASS, "VLAN 30: not the port's");
    assert_eq!(data_count(&harness, DataCounter::OutsidePortVlans), 1);
    assert_eq!(data_count(&harness, DataCounter::Forwarded), 1);
}

/// The member port, once the bridge takes VLAN 10 off it, gets no copy.
#[test]
fn on_a_vlan_filtering_bridge_a_port_outside_the_vlan_gets_no_copy() {
    let mut harness = Harness::on(TestHook::Tc);
    harness.set_port_in_vlan_bridge(10, &[(10, true)]);
    harness.set_port_vlans(OTHER_PORT, &[(20, false)]);
    register_member_port(&mut harness, 10, OTHER_PORT);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_DROP);
    assert_eq!(data_count(&harness, DataCounter::EgressFiltered), 1);
}

/// A group the host listens to goes through the kernel in every VLAN: the
/// daemon marks the host's groups untagged.
#[test]
fn on_a_vlan_filtering_bridge_a_group_the_host_listens_to_goes_through_the_kernel() {
    let mut harness = Harness::on(TestHook::Tc);
    harness.set_port_in_vlan_bridge(10, &[(10, true)]);
    register(&mut harness, 10, 0);
    register(&mut harness, 0, group_flags::LOCAL_LISTENER);
    assert_eq!(harness.run(&udp_data(&[], SENDER, GROUP, 100)), XDP_PASS);
    assert_eq!(data_count(&harness, DataCounter::LocalListener), 1);
}

/// The member port's own tables, where `EVERY_SOURCE` is not set, decide:
/// here its INCLUDE {} entry keeps the sender's data off it. With the flag
/// the daemon vouches that every destination takes every source, and tc
/// sends to the port without asking them.
#[rstest]
fn tc_asks_a_ports_tables_unless_every_destination_takes_every_source(
    #[values(false, true)] every_source: bool,
) {
    let mut harness = Harness::on(TestHook::Tc);
    register_member_port(&mut harness, 0, OTHER_PORT);
    let key = group_key(0).on_port(OTHER_PORT);
    let include_nothing = Membership {
        filter_mode: filter_mode::INCLUDE,
        ..Membership::default()
    };
    let learned = &mut harness.tables.learned.membership;
    learned.insert(key, include_nothing, 0).unwrap();
    if every_source {
        let entry = GroupEntry {
            flags: group_flags::EVERY_SOURCE,
            ..entry_now(&harness)
        };
        write_entry(&mut harness, 0, entry);
    }
    let verdict = harness.run(&udp_data(&[], SENDER, GROUP, 100));
    let filtered = data_count(&harness, DataCounter::EgressFiltered);
    if every_source {
        assert_eq!((verdict, filtered), (XDP_REDIRECT, 0));
    } else {
        assert_eq!((verdict, filtered), (XDP_DROP, 1));
    }
}

/// A new member port, or a source listed on a member port, may keep
/// sources out: the program takes `EVERY_SOURCE` off at once, before the
/// daemon hears of it.
#[rstest]
fn a_new_member_port_or_a_new_source_takes_every_source_off(
    #[values(TestHook::Xdp, TestHook::Tc)] hook: TestHook,
) {
    let mut harness = Harness::on(hook);
    let every_source = GroupEntry {
        flags: group_flags::EVERY_SOURCE,
        ports: 1,
        sole_port: OTHER_PORT,
        ..GroupEntry::default()
    };
    write_entry(&mut harness, 0, every_source);
    harness.run(&v2_report(SENDER, GROUP));
    assert_eq!(entry_now(&harness).flags & group_flags::EVERY_SOURCE, 0);

    // The test-run port is a member now; the daemon puts the flag back.
    write_entry(&mut harness, 0, every_source);
    let excluding = Record::new(CHANGE_TO_EXCLUDE, GROUP, &[Ipv4Addr::new(192, 0, 2, 9)]);
    harness.run(&v3_report_frame(SENDER, &[excluding]));
    assert_eq!(entry_now(&harness).flags & group_flags::EVERY_SOURCE, 0);

    // A refresh that lists no source leaves it on.
    write_entry(&mut harness, 0, every_source);
    harness.run(&v2_report(SENDER, GROUP));
    assert_eq!(
        entry_now(&harness).flags & group_flags::EVERY_SOURCE,
        group_flags::EVERY_SOURCE
    );
}
