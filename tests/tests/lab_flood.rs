//! A spoofed report flood in a lab: one host sends reports for ever new
//! groups from ever new addresses as fast as it can for 30 s, while a real
//! member receives a stream. The limits hold, the member loses nothing, the
//! daemon answers and does not grow.
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use igmp_common::{limits, Counter, DropReason};
use igmp_tests::{frames::v2_report, process::rss_kib, snooped::Snooped};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const MEMBER: usize = 0;
const SENDER: usize = 1;
const FLOODER: usize = 2;
const FLOOD: Duration = Duration::from_secs(30);
const BATCH: usize = 100;

/// Report number `n` of the flood: a new group, from a new spoofed host.
fn spoofed_report(n: u64) -> Vec<u8> {
    let [_, a, b, c] = (n as u32).to_be_bytes();
    let host = Ipv4Addr::new(10, 0, 1 + a % 200, b);
    v2_report(host, Ipv4Addr::new(239, 100 + a % 100, b, c))
}

#[test]
fn a_spoofed_report_flood_costs_a_real_member_nothing() {
    let snooped = Snooped::new(3, &[]);
    let lab = &snooped.lab;
    let member = lab.join(MEMBER, GROUP).unwrap();
    let member_port = snooped.port(MEMBER);
    snooped.wait_until("the member's join", Duration::from_secs(5), || {
        snooped.pairs().contains(&(member_port, GROUP))
    });
    // The stream reaches the member before the flood.
    lab.send(SENDER, GROUP, BATCH, 200).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(member.drain(), BATCH, "the stream before the flood");
    let pid = lab.daemon_pid().expect("daemon running");
    let rss_before = rss_kib(pid).unwrap();

    let (mut sent, mut received, mut slowest_show) = (0, 0, Duration::ZERO);
    let flooded = std::thread::scope(|scope| {
        let flood = scope.spawn(|| lab.flood(FLOODER, FLOOD, spoofed_report).unwrap());
        let end = Instant::now() + FLOOD;
        while Instant::now() < end {
            lab.send(SENDER, GROUP, BATCH, 200).unwrap();
            sent += BATCH;
            let asked = Instant::now();
            let show = snooped.cli(&["show", "--json"]);
            slowest_show = slowest_show.max(asked.elapsed());
            assert!(show.status.success(), "show failed during the flood");
            std::thread::sleep(Duration::from_millis(300));
            received += member.drain();
        }
        flood.join().unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    received += member.drain();

    assert!(flooded > 100_000, "the flood sent only {flooded} frames");
    assert_eq!(received, sent, "the member lost frames during the flood");
    assert!(
        slowest_show < Duration::from_secs(1),
        "`igmp-snoop show` took {slowest_show:?}"
    );
    let flooder_port = snooped.port(FLOODER);
    assert!(snooped.memberships_on(flooder_port) <= limits::MAX_GROUPS_PER_PORT as usize);
    assert!(snooped.pairs().contains(&(member_port, GROUP)));
    let tables = snooped.tables();
    let (_, counters) = tables
        .port_counters()
        .into_iter()
        .find(|(ifindex, _)| *ifindex == flooder_port)
        .expect("counters of the flooding port");
    let refused = counters.drops[DropReason::RateLimited as usize];
    assert!(
        refused > flooded / 2,
        "only {refused} of {flooded} reports rate limited"
    );
    assert!(counters.messages[Counter::GroupLimit as usize] > 0);
    let growth = rss_kib(pid).unwrap().saturating_sub(rss_before);
    assert!(
        growth < 16 * 1024,
        "the daemon grew by {growth} KiB during the flood"
    );
    assert!(!snooped.lab.daemon_log().contains("panicked"));
}
