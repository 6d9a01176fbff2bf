//! Leaves with another querier on the LAN: the switch follows that querier's
//! group-specific queries (RFC 4541 §2.1.1), like the Linux bridge.
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use igmp_lab::wait_for;
use igmp_tests::snooped::Snooped;
use igmp_user::tables::Tables;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 8, 8, 8);

#[test]
fn v2_leave_with_a_querier_removes_the_leaver_after_its_group_queries_and_keeps_the_others() {
    let snooped = Snooped::new(3, &[]);
    let (lab, pin_dir) = (&snooped.lab, &snooped.pin_dir);
    let tables = || Tables::open(pin_dir).unwrap();
    // A real querier (a Linux bridge on h3), general queries every 10 s.
    lab.start_bridge_querier(2, 2, 1000).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !tables()
        .router_ports()
        .is_empty()));

    lab.force_igmp_version(0, 2).unwrap();
    // v2 hosts suppress their reports when they hear another's, and only the
    // last reporter sends a leave (RFC 2236 §6): the leaver joins last.
    let _stayer = lab.join(1, GROUP).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let leaver = lab.join(0, GROUP).unwrap();
    let ports =
        |t: &Tables| -> BTreeSet<u32> { t.memberships().iter().map(|(k, _)| k.ifindex).collect() };
    let (p1, p2) = (
        lab.port_ifindex("p1").unwrap(),
        lab.port_ifindex("p2").unwrap(),
    );
    assert!(wait_for(Duration::from_secs(5), || ports(&tables())
        == [p1, p2].into()));

    drop(leaver);
    // The leave alone changes nothing: the querier's queries decide.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        ports(&tables()).contains(&p1),
        "removed on the leave alone\n{}",
        lab.daemon_log()
    );
    // Its group-specific queries go unanswered on p1 (LMQC 2 × 1 s); h2 answers them.
    let gone = wait_for(Duration::from_secs(5), || ports(&tables()) == [p2].into());
    assert!(gone, "{:?}\n{}", ports(&tables()), lab.daemon_log());
}
