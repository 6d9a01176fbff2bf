//! Router ports: learned from the queries of a real querier (a Linux bridge
//! with `mcast_querier 1`), expired when it falls silent.
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{net::Ipv4Addr, time::Duration};

use igmp_lab::wait_for;
use igmp_tests::snooped::Snooped;
use igmp_user::tables::Tables;

#[test]
fn a_querying_bridge_makes_a_router_port_that_expires_when_it_stops() {
    let snooped = Snooped::new(3, &["--router-timeout", "2"]);
    let pin_dir = snooped.pin_dir.clone();
    let lab = &snooped.lab;
    lab.start_bridge_querier(2, 3, 50).unwrap();
    let routers = || {
        Tables::open(&pin_dir)
            .map(|t| t.router_ports())
            .unwrap_or_default()
    };
    assert!(
        wait_for(Duration::from_secs(5), || !routers().is_empty()),
        "{}",
        lab.daemon_log()
    );
    let (key, router) = routers()[0];
    assert_eq!(key.ifindex, lab.port_ifindex("p3").unwrap());
    assert_eq!(Ipv4Addr::from(router.querier), Ipv4Addr::new(10, 0, 0, 3));
    assert_eq!(router.version, 3);
    assert_eq!(router.robustness, 2);
    assert_eq!(
        routers().len(),
        1,
        "only the querier's port is a router port"
    );

    lab.stop_bridge_querier(2).unwrap();
    assert!(
        wait_for(Duration::from_secs(6), || routers().is_empty()),
        "{}",
        lab.daemon_log()
    );
    // The daemon removes the entry, then logs it: wait for the line.
    assert!(
        wait_for(Duration::from_secs(2), || lab
            .daemon_log()
            .contains("router port expired port=\"p3\"")),
        "{}",
        lab.daemon_log()
    );
}
