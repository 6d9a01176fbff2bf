use igmp_common::Counter;
use igmp_tests::{
    frames::*,
    harness::{Harness, TestHook},
};
use std::net::Ipv6Addr;
#[test]
fn debug_v2() {
    let h = Harness::on(TestHook::Xdp);
    let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 1, 2);
    let f = mld_v2_report_frame(Ipv6Addr::UNSPECIFIED, &[MldRecord::new(4, group, &[])]);
    println!("verdict {}", h.run(&f));
    for c in [
        Counter::MldFrames,
        Counter::MldV2Report,
        Counter::MldV2Record,
        Counter::GroupCreated,
        Counter::LinkLocalReport,
    ] {
        println!("{c:?} {}", h.count(c));
    }
    println!("drops {:?}", h.nonzero_drops());
    let f = mld_v1_report("fe80::7".parse().unwrap(), group);
    println!("verdict {}", h.run(&f));
    for c in [
        Counter::MldFrames,
        Counter::MldV1Report,
        Counter::GroupCreated,
    ] {
        println!("{c:?} {}", h.count(c));
    }
    println!(
        "drops {:?} m6 {:?}",
        h.nonzero_drops(),
        h.memberships6().len()
    );
}
