//! Per-port options as the XDP program applies them (BPF_PROG_TEST_RUN):
//! router ports learned from PIM hellos and queries, or kept permanent, or
//! none with router mode off; the reporting hosts fast leave tracks.
//!
//! TestRun tier (`Harness`, no namespaces); the same options with the daemon
//! and kernel hosts are in lab_ports.rs.

use std::net::Ipv4Addr;

use igmp_common::{router_flags, router_mode, Counter, PortSettings, RouterKey, RouterPort};
use igmp_tests::{
    frames::*,
    harness::{Harness, TEST_RUN_IFINDEX},
};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 4, 4, 4);
const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn set_port(harness: &mut Harness, router_mode: u8, fast_leave: bool) {
    let settings = PortSettings {
        router_mode,
        fast_leave: u8::from(fast_leave),
        ..PortSettings::default()
    };
    harness.set_port(settings);
}

fn general_query() -> Vec<u8> {
    frame(
        &[],
        &Ipv4::igmp(
            QUERIER,
            ALL_HOSTS,
            igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
        ),
    )
}

fn pim_hello(source: Ipv4Addr) -> Vec<u8> {
    let ip = Ipv4 {
        source,
        destination: Ipv4Addr::new(224, 0, 0, 13),
        ttl: 1,
        protocol: 103,
        options: Vec::new(),
        fragment: 0,
        payload: vec![0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105],
    };
    frame(&[], &ip)
}

#[test]
fn pim_hello_makes_a_router_port() {
    let harness = Harness::new();
    harness.run(&pim_hello(Ipv4Addr::new(10, 0, 0, 254)));
    let routers = harness.routers();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0].1.flags, router_flags::PIM);
    assert_eq!(routers[0].1.querier, [10, 0, 0, 254]);
    assert_eq!(harness.count(Counter::PimHello), 1);
}

#[test]
fn router_mode_off_learns_no_router_port() {
    let mut harness = Harness::new();
    set_port(&mut harness, router_mode::OFF, false);
    harness.run(&general_query());
    harness.run(&pim_hello(QUERIER));
    assert!(harness.routers().is_empty());
    assert_eq!(
        harness.count(Counter::V2Query),
        1,
        "the query is still counted"
    );
}

#[test]
fn a_query_on_a_permanent_router_port_keeps_it_permanent() {
    let mut harness = Harness::new();
    let key = RouterKey {
        ifindex: TEST_RUN_IFINDEX,
        vlan: 0,
        inner_vlan: 0,
    };
    let permanent = RouterPort {
        flags: router_flags::PERMANENT,
        ..RouterPort::default()
    };
    harness
        .tables
        .learned
        .routers
        .insert(key, permanent, 0)
        .unwrap();
    harness.run(&general_query());
    let router = harness.routers()[0].1;
    assert_eq!(router.flags, router_flags::PERMANENT);
    assert_eq!((router.querier, router.version), (QUERIER.octets(), 2));
}

#[test]
fn fast_leave_ports_track_each_reporting_host() {
    let mut harness = Harness::new();
    set_port(&mut harness, router_mode::AUTO, true);
    harness.run(&v2_report(Ipv4Addr::new(10, 0, 0, 7), GROUP));
    harness.run(&v3_report_frame(
        Ipv4Addr::new(10, 0, 0, 8),
        &[Record::new(CHANGE_TO_EXCLUDE, GROUP, &[])],
    ));
    let hosts = |h: &Harness| -> Vec<[u8; 4]> {
        h.tables
            .learned
            .hosts
            .keys()
            .filter_map(Result::ok)
            .map(|key| key.host)
            .collect()
    };
    let mut seen = hosts(&harness);
    seen.sort();
    assert_eq!(seen, vec![[10, 0, 0, 7], [10, 0, 0, 8]]);
    let leave = Ipv4::igmp(
        Ipv4Addr::new(10, 0, 0, 7),
        ALL_ROUTERS,
        igmp_message(V2_LEAVE, 0, GROUP),
    );
    harness.run(&frame(&[], &leave));
    assert_eq!(hosts(&harness), vec![[10, 0, 0, 8]]);
}

#[test]
fn ports_without_fast_leave_track_no_hosts() {
    let harness = Harness::new();
    harness.run(&v2_report(Ipv4Addr::new(10, 0, 0, 7), GROUP));
    assert_eq!(harness.tables.learned.hosts.keys().count(), 0);
}
