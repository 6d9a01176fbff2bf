//! IGMPv1 hosts beside newer ones (RFC 2236 §4, RFC 3376 §7.3.2): while a
//! v1 host is present on a port, v2 leaves for its group there are
//! ignored, and a group-specific query's short deadline does not apply to
//! the port, since a v1 host answers any query as a general one, within 10 s.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{net::Ipv4Addr, thread::sleep, time::Duration};

use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{frames::*, snooped::Snooped};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);
/// A v1 member no kernel stands behind: it answers no query.
const SILENT_V1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 21);
const N: usize = 100;

fn v2_leave(host: Ipv4Addr) -> Vec<u8> {
    frame(
        &[],
        &Ipv4::igmp(host, ALL_ROUTERS, igmp_message(V2_LEAVE, 0, GROUP)),
    )
}

/// Behind one port (a hub) a v1 host and a v2 host join; the v2 host
/// leaves. Without a querier the switch would give the port the last
/// member query time and remove it, and with `--unregistered drop` the v1
/// host would get nothing; the leave is ignored and it gets every datagram.
#[test]
fn a_v2_leave_is_ignored_while_a_v1_host_is_behind_the_port() {
    let mut lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let behind = lab.add_hub(2).unwrap();
    let (v1_host, v2_host) = (behind[0], behind[1]);
    lab.force_igmp_version(v1_host, 1).unwrap();
    lab.force_igmp_version(v2_host, 2).unwrap();
    let snooped = Snooped::on(lab, &["--unregistered", "drop"]);
    let lab = &snooped.lab;
    let hub_port = snooped.port(v1_host);
    let v1_member = lab.join(v1_host, GROUP).unwrap();
    let v2_member = lab.join(v2_host, GROUP).unwrap();
    snooped.wait_until("the hub port's join", Duration::from_secs(5), || {
        snooped.memberships_on(hub_port) == 1
    });
    snooped.wait_until("the v1 report", Duration::from_secs(15), || {
        snooped.lab.daemon_log().contains("version=1")
            || snooped.tables().learned.v1_hosts.keys().next().is_some()
    });
    drop(v2_member);
    // The kernel leaves only if it reported last (RFC 2236 §6): a leave for sure.
    lab.inject(v2_host, &v2_leave(lab.hosts[v2_host].address))
        .unwrap();
    // Past the last member query time (2 s).
    sleep(Duration::from_millis(3000));
    assert_eq!(
        snooped.memberships_on(hub_port),
        1,
        "the v2 leave removed the v1 host's group\n{}",
        lab.daemon_log()
    );
    lab.send(0, GROUP, N, 64).unwrap();
    sleep(Duration::from_millis(200));
    assert_eq!(v1_member.drain(), N, "the v1 host's datagrams");
}

/// A v1 member on p2 that answers nothing and another querier (h3) asking
/// about the group: the v1 host may take 10 s to answer, so the query's
/// 2 s deadline does not apply and the member stays. On p1 a v2 member
/// that answers nothing goes at that deadline.
#[test]
fn a_group_specific_query_does_not_cut_short_a_port_with_a_v1_host() {
    let snooped = Snooped::new(3, &[]);
    let lab = &snooped.lab;
    let v1_report = frame(
        &[],
        &Ipv4::igmp(SILENT_V1, GROUP, igmp_message(V1_REPORT, 0, GROUP)),
    );
    lab.inject(1, &v1_report).unwrap();
    let v2_silent = Ipv4Addr::new(10, 0, 0, 22);
    lab.inject(0, &v2_report(v2_silent, GROUP)).unwrap();
    let (p1, p2) = (snooped.port(0), snooped.port(1));
    snooped.wait_until("both members", Duration::from_secs(5), || {
        snooped.memberships_on(p1) == 1 && snooped.memberships_on(p2) == 1
    });
    let query = Ipv4::igmp(lab.hosts[2].address, GROUP, igmp_message(QUERY, 10, GROUP));
    lab.inject(2, &frame(&[], &query)).unwrap();
    snooped.wait_until(
        "the silent v2 member gone at the query's deadline",
        Duration::from_secs(4),
        || snooped.memberships_on(p1) == 0,
    );
    sleep(Duration::from_millis(500));
    assert_eq!(
        snooped.memberships_on(p2),
        1,
        "the v1 member went at the group query's deadline\n{}",
        lab.daemon_log()
    );
}
