//! The limits against report floods, in the XDP program (BPF_PROG_TEST_RUN):
//! group limits per port and for the switch, and the per-port report rate.
//!
//! TestRun tier (`Harness`, no namespaces).

use std::net::Ipv4Addr;

use igmp_common::{Counter, DropReason, PortSettings, Settings};
use igmp_tests::{
    frames::*,
    harness::{Harness, TEST_RUN_IFINDEX, XDP_PASS},
};

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const XDP_DROP: u32 = 1;

fn group(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(239, 3, 0, n)
}

fn limited_to(max_groups: u32) -> PortSettings {
    PortSettings {
        max_groups,
        ..PortSettings::default()
    }
}

fn rate_limited(report_rate: u32, report_burst: u32) -> PortSettings {
    PortSettings {
        report_rate,
        report_burst,
        ..PortSettings::default()
    }
}

fn held_groups(harness: &Harness) -> Vec<Ipv4Addr> {
    harness
        .memberships()
        .iter()
        .map(|(key, _)| Ipv4Addr::from(key.group))
        .collect()
}

#[test]
fn a_port_at_its_limit_refuses_new_groups_and_keeps_the_old_ones() {
    let mut harness = Harness::new();
    harness.set_port(limited_to(3));
    for n in 1..=5 {
        assert_eq!(harness.run(&v2_report(HOST, group(n))), XDP_PASS);
    }
    assert_eq!(held_groups(&harness), [group(1), group(2), group(3)]);
    assert_eq!(harness.count(Counter::GroupLimit), 2);
    // Members already in keep refreshing: nothing is evicted.
    harness.run(&v2_report(HOST, group(1)));
    assert_eq!(harness.count(Counter::GroupRefreshed), 1);
    // A v3 report is held to the same limit, record by record.
    let records: Vec<Record> = (6..=8)
        .map(|n| Record::new(CHANGE_TO_EXCLUDE, group(n), &[]))
        .collect();
    harness.run(&v3_report_frame(HOST, &records));
    assert_eq!(held_groups(&harness).len(), 3);
    assert_eq!(harness.count(Counter::GroupLimit), 5);
    assert_eq!(harness.in_use(TEST_RUN_IFINDEX), 3);
}

#[test]
fn a_removed_group_gives_its_place_back() {
    let mut harness = Harness::new();
    harness.set_port(limited_to(2));
    for n in 1..=3 {
        harness.run(&v2_report(HOST, group(n)));
    }
    assert_eq!(held_groups(&harness), [group(1), group(2)]);
    let (first, _) = harness.memberships()[0];
    assert!(harness.tables.learned.remove_membership(&first));
    harness.tables.learned.publish_removed();
    harness.run(&v2_report(HOST, group(3)));
    assert_eq!(held_groups(&harness), [group(2), group(3)]);
    assert_eq!(harness.in_use(TEST_RUN_IFINDEX), 2);
    assert_eq!(harness.in_use(0), 2);
}

#[test]
fn the_switch_limit_holds_whatever_the_port_allows() {
    let mut harness = Harness::new();
    harness.set_port(limited_to(0));
    let settings = Settings {
        max_groups: 2,
        ..harness.tables.settings()
    };
    harness
        .tables
        .forwarding
        .settings
        .set(0, settings, 0)
        .unwrap();
    for n in 1..=4 {
        harness.run(&v2_report(HOST, group(n)));
    }
    assert_eq!(held_groups(&harness).len(), 2);
    assert_eq!(harness.count(Counter::GroupLimit), 2);
}

#[test]
fn without_limits_every_group_is_taken() {
    let mut harness = Harness::new();
    harness.set_port(limited_to(0));
    for n in 1..=50 {
        harness.run(&v2_report(HOST, group(n)));
    }
    assert_eq!(held_groups(&harness).len(), 50);
    assert_eq!(harness.count(Counter::GroupLimit), 0);
}

#[test]
fn reports_past_the_burst_are_counted_and_dropped() {
    let mut harness = Harness::new();
    // One report a second: in a test run of microseconds, only the burst passes.
    harness.set_port(rate_limited(1, 5));
    let actions: Vec<u32> = (1..=20)
        .map(|n| harness.run(&v2_report(HOST, group(n))))
        .collect();
    assert_eq!(actions[..5], [XDP_PASS; 5]);
    assert_eq!(actions[5..], [XDP_DROP; 15]);
    assert_eq!(harness.drops(DropReason::RateLimited), 15);
    assert_eq!(held_groups(&harness).len(), 5);
}

#[test]
fn the_rate_limit_spares_queries_and_data() {
    let mut harness = Harness::new();
    harness.set_port(rate_limited(1, 1));
    harness.run(&v2_report(HOST, group(1)));
    let query = Ipv4::igmp(
        HOST,
        ALL_HOSTS,
        igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
    );
    for _ in 0..10 {
        assert_eq!(harness.run(&frame(&[], &query)), XDP_PASS);
    }
    assert_eq!(harness.count(Counter::V2Query), 10);
    assert_ne!(
        harness.run(&udp_data(&[], HOST, group(1), 64)),
        XDP_DROP,
        "data is not a report"
    );
    assert_eq!(harness.drops(DropReason::RateLimited), 0);
}

#[test]
fn the_rate_refills_with_time() {
    let mut harness = Harness::new();
    // 1000 a second: a token every millisecond.
    harness.set_port(rate_limited(1000, 1));
    assert_eq!(harness.run(&v2_report(HOST, group(1))), XDP_PASS);
    assert_eq!(harness.run(&v2_report(HOST, group(1))), XDP_DROP);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(harness.run(&v2_report(HOST, group(1))), XDP_PASS);
}
