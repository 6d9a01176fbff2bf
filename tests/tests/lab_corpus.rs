//! The malformed-frame corpus (`igmp_tests::corpus`) on the wire of a lab,
//! into the daemon's program in either hook: the tables stay byte for byte
//! the same, every frame is counted under the reason it was built to break,
//! and the daemon keeps running.
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon. The corpus through BPF_PROG_TEST_RUN is xdp_corpus.rs.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use igmp_common::{Counter, DropReason};
use igmp_lab::{ip, run, run_output};
use igmp_tests::{
    corpus::{malformed_corpus, outcome_name, tally, Expected},
    harness::table_snapshot,
    snooped::Snooped,
};
use rstest::rstest;

const MEMBER_GROUP: Ipv4Addr = Ipv4Addr::new(239, 88, 0, 1);

/// `igmp-snoop stats --json` for one port: drop reasons and the
/// not-snooped counters by outcome name, and the IGMP frames seen.
fn wire_counters(snooped: &Snooped, port: &str) -> (BTreeMap<String, u64>, u64) {
    let output = snooped.cli(&["stats", "--json"]);
    assert!(
        output.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let Some(block) = json["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["port"] == port)
    else {
        return (BTreeMap::new(), 0);
    };
    let mut counts = BTreeMap::new();
    for reason in DropReason::ALL {
        let value = block["drops"][reason.name()].as_u64().unwrap();
        counts.insert(outcome_name(Expected::Drop(reason)), value);
    }
    for counter in [Counter::LinkLocalReport, Counter::OtherIgmpType] {
        let value = block["messages"][counter.name()].as_u64().unwrap();
        counts.insert(outcome_name(Expected::Counted(counter)), value);
    }
    let igmp = block["messages"][Counter::IgmpFrames.name()]
        .as_u64()
        .unwrap();
    (counts, igmp)
}

fn difference(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, value)| (name.clone(), value - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, delta)| *delta != 0)
        .collect()
}

#[rstest]
fn the_corpus_on_the_wire_changes_no_table_and_the_daemon_keeps_running(
    #[values("generic", "tc")] attach: &str,
) {
    // The corpus goes out back to back: the report rate limit would (rightly)
    // drop most of it before its own reason is counted.
    let mut snooped = Snooped::new(2, &["--report-rate", "0", "--attach", attach]);
    let (switch, injector, member_ns) = (
        snooped.lab.switch.clone(),
        snooped.lab.hosts[0].netns.clone(),
        snooped.lab.hosts[1].netns.clone(),
    );
    // The corpus's oversize frames need room on both ends of h1's wire.
    ip(&injector, "link set eth0 mtu 3000").unwrap();
    ip(&switch, "link set p1 mtu 3000").unwrap();
    // Isolated ports forward nothing to each other: the member's kernel never
    // sees (and answers) the corpus's queries, which would refresh its entry.
    for port in ["p1", "p2"] {
        run(&[
            "bridge", "-n", &switch, "link", "set", "dev", port, "isolated", "on",
        ])
        .unwrap();
    }
    // The member's unsolicited reports all go out within 50 ms of the join.
    let sysctl = "net.ipv4.conf.eth0.igmpv3_unsolicited_report_interval=50";
    run(&["ip", "netns", "exec", &member_ns, "sysctl", "-qw", sysctl]).unwrap();
    let _member = snooped.lab.join(1, MEMBER_GROUP).unwrap();
    let pairs = [(snooped.port(1), MEMBER_GROUP)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let tables_before = table_snapshot(&snooped.tables());
    let (counts_before, igmp_before) = wire_counters(&snooped, "p1");

    let corpus = malformed_corpus();
    let frames: Vec<Vec<u8>> = corpus.iter().map(|case| case.frame.clone()).collect();
    let refused = snooped.lab.inject_all(0, &frames).unwrap();
    assert_eq!(refused, 0, "the kernel refused to send {refused} frames");

    let mut expected = tally(&corpus);
    let not_igmp = expected
        .remove(&outcome_name(Expected::NotIgmp))
        .unwrap_or(0);
    let vlan = expected
        .get(&outcome_name(Expected::Drop(DropReason::TooManyVlanTags)))
        .copied()
        .unwrap_or(0);
    let counted: u64 = expected.values().sum();
    let mut seen = BTreeMap::new();
    let all_counted = igmp_lab::wait_for(Duration::from_secs(30), || {
        seen = difference(&counts_before, &wire_counters(&snooped, "p1").0);
        seen.values().sum::<u64>() >= counted
    });
    let drops = |link: &str, ns: &str| {
        run_output(&["ip", "-n", ns, "-s", "link", "show", link]).unwrap_or_default()
    };
    assert!(
        all_counted,
        "{} of {counted} frames counted\nseen: {seen:?}\nexpected: {expected:?}\np1: {}\nh1 eth0: {}",
        seen.values().sum::<u64>(),
        drops("p1", &switch),
        drops("eth0", &injector)
    );
    assert_eq!(seen, expected, "counted by reason, against the corpus");
    let (_, igmp_after) = wire_counters(&snooped, "p1");
    assert_eq!(
        igmp_after - igmp_before,
        corpus.len() as u64 - not_igmp - vlan,
        "IGMP frames seen"
    );

    assert!(
        table_snapshot(&snooped.tables()) == tables_before,
        "the corpus changed the tables: {:?}",
        snooped.pairs()
    );
    assert!(!snooped.lab.daemon_exited(), "{}", snooped.lab.daemon_log());
    let show = snooped.cli(&["show"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        String::from_utf8_lossy(&show.stdout).contains(&MEMBER_GROUP.to_string()),
        "{}",
        String::from_utf8_lossy(&show.stdout)
    );
}
