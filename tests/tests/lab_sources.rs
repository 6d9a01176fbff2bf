//! IGMPv3 source filters with kernel hosts (RFC 3376 §6.4, §6.6): what a
//! group-and-source query lowers, what a BLOCK of an unlisted source does,
//! and a port whose hosts (behind a hub) ask for different things.
//! Datagrams are counted at the members' sockets or on their wires.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{net::Ipv4Addr, thread::sleep, time::Duration};

use igmp_common::filter_mode;
use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{frames::*, snooped::Snooped};

const G_SSM: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 2);
const G_ASM: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 3);
/// A source nobody sends from: only its table entries matter.
const S2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A member no kernel stands behind: injected reports, and no answer to any query.
const SILENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
const N: usize = 100;

/// (port, group, source) of every source entry.
fn source_rows(snooped: &Snooped) -> Vec<(u32, Ipv4Addr, Ipv4Addr)> {
    let mut rows: Vec<_> = snooped
        .tables()
        .source_entries()
        .iter()
        .map(|(key, _)| (key.ifindex, key.group.into(), key.source.into()))
        .collect();
    rows.sort();
    rows
}

/// A query from host `index`, a querier the switch does not run.
fn inject_query(lab: &Lab, index: usize, group: Ipv4Addr, message: Vec<u8>) {
    let ip = Ipv4::igmp(lab.hosts[index].address, group, message);
    lab.inject(index, &frame(&[], &ip)).unwrap();
}

/// h1 sends (S1); h2 joins (S1, G) and h3 (S1, G) and (S2, G); a host with
/// no kernel behind it on h2's wire also asks for S2. h4 is another
/// querier. Its Q(G, {S2}) goes unanswered: S2 leaves both ports after
/// LMQC × 1 s, S1 and the group stay, and S1 still reaches both members.
#[test]
fn a_group_and_source_query_lowers_the_timers_of_its_sources_only() {
    let snooped = Snooped::new(4, &[]);
    let lab = &snooped.lab;
    let s1 = lab.hosts[0].address;
    let h2 = lab.join_source(1, G_SSM, s1).unwrap();
    let h3 = lab.join_source(2, G_SSM, s1).unwrap();
    let h3_s2 = lab.join_source(2, G_SSM, S2).unwrap();
    let silent = v3_report_frame(SILENT, &[Record::new(ALLOW_NEW_SOURCES, G_SSM, &[S2])]);
    lab.inject(1, &silent).unwrap();
    let (p2, p3) = (snooped.port(1), snooped.port(2));
    let all = vec![
        (p2, G_SSM, s1),
        (p2, G_SSM, S2),
        (p3, G_SSM, s1),
        (p3, G_SSM, S2),
    ];
    snooped.wait_until("both ports' sources", Duration::from_secs(5), || {
        source_rows(&snooped) == all
    });
    // h3 drops S2 (a BLOCK); the querier asks who still wants S2, 1 s to answer.
    drop(h3_s2);
    sleep(Duration::from_millis(300));
    inject_query(lab, 3, G_SSM, v3_query(G_SSM, 10, 2, 125, &[S2]));
    sleep(Duration::from_millis(3000));
    assert_eq!(
        source_rows(&snooped),
        vec![(p2, G_SSM, s1), (p3, G_SSM, s1)],
        "S2 left both ports, S1 stayed\n{}",
        lab.daemon_log()
    );
    assert_eq!(snooped.memberships_on(p2), 1, "{}", lab.daemon_log());
    assert_eq!(snooped.memberships_on(p3), 1, "{}", lab.daemon_log());
    lab.send(0, G_SSM, N, 64).unwrap();
    sleep(Duration::from_millis(200));
    assert_eq!((h2.drain(), h3.drain()), (N, N), "S1 reaches both members");
}

/// A member that never answers (injected, no kernel behind it) and
/// another querier's group-specific queries: with the S flag the timer
/// stays (RFC 3376 §4.1.5); without it the member goes after LMQC × 1 s.
#[test]
fn a_query_with_the_s_flag_lowers_no_timer() {
    let snooped = Snooped::new(2, &[]);
    let lab = &snooped.lab;
    let join = v3_report_frame(SILENT, &[Record::new(CHANGE_TO_EXCLUDE, G_ASM, &[])]);
    lab.inject(0, &join).unwrap();
    let p1 = snooped.port(0);
    snooped.wait_until("the silent member", Duration::from_secs(5), || {
        snooped.memberships_on(p1) == 1
    });
    inject_query(lab, 1, G_ASM, suppressed(v3_query(G_ASM, 10, 2, 125, &[])));
    sleep(Duration::from_millis(3000));
    assert_eq!(
        snooped.memberships_on(p1),
        1,
        "an S-flag query lowered the timer\n{}",
        lab.daemon_log()
    );
    inject_query(lab, 1, G_ASM, v3_query(G_ASM, 10, 2, 125, &[]));
    snooped.wait_until(
        "the unanswered group query removes the member",
        Duration::from_secs(4),
        || snooped.memberships_on(p1) == 0,
    );
}

/// Whether `frame` is a v3 group-and-source query for (`group`, {`source`}).
fn asks_about(frame: &[u8], group: Ipv4Addr, source: Ipv4Addr) -> bool {
    frame.len() >= 54
        && frame[12..14] == [0x08, 0x00]
        && frame[23] == 2
        && frame[38] == 0x11
        && frame[42..46] == group.octets()
        && frame[48..50] == [0, 1]
        && frame[50..54] == source.octets()
}

/// h2 and h3 join G from every source; h2 then blocks S1 (h1), a source no
/// table lists yet: as querier the switch asks Q(G, {S1}) on h2's port,
/// nobody there asks for S1, and after LMQC × LMQI S1 no longer reaches
/// h2's wire. h3 keeps getting it.
#[test]
fn as_v3_querier_a_block_of_an_unlisted_source_is_queried_and_then_filtered() {
    let args = [
        "--querier",
        "--querier-version",
        "3",
        "--querier-address",
        "10.0.0.250",
        "--query-interval",
        "30",
    ];
    let snooped = Snooped::new(3, &args);
    let lab = &snooped.lab;
    let s1 = lab.hosts[0].address;
    let h2 = lab.join(1, G_ASM).unwrap();
    let h3 = lab.join(2, G_ASM).unwrap();
    snooped.wait_until("both joins", Duration::from_secs(5), || {
        snooped.pairs().len() == 2
    });
    sleep(Duration::from_millis(500));
    let on_h2 = lab.capture(1).unwrap();
    h2.block(s1).unwrap();
    let frames = on_h2.frames_for(Duration::from_millis(1500));
    assert!(
        frames.iter().any(|frame| asks_about(frame, G_ASM, s1)),
        "no Q(G, {{S1}}) on h2's port in {} frames\n{}",
        frames.len(),
        lab.daemon_log()
    );
    // LMQC × LMQI = 2 s after the BLOCK, of which 1.5 s went by.
    sleep(Duration::from_millis(1500));
    let on_h2 = lab.capture(1).unwrap();
    lab.send(0, G_ASM, N, 64).unwrap();
    sleep(Duration::from_millis(200));
    let reached_h2 = datagrams(&on_h2.frames_for(Duration::from_millis(100)), s1, G_ASM);
    assert_eq!(
        reached_h2,
        0,
        "S1 still reaches h2's wire\n{}",
        lab.daemon_log()
    );
    assert_eq!(h3.drain(), N, "S1 still reaches h3");
}

/// Behind one port (a hub), h2 asks for S1 only (INCLUDE {S1}) and h3 for
/// everything but S1 (EXCLUDE {S1}); the switch queries every second, so
/// both report again and again. The port's state is the merge (RFC 3376
/// §6.4.1: EXCLUDE(X,Y)+IS_IN(A) → EXCLUDE(X+A,Y-A)): S1 is asked for and
/// never excluded, so every datagram from S1 reaches h2, whoever reported
/// last.
#[test]
fn behind_one_port_a_source_one_host_asks_for_is_never_excluded() {
    let mut lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let behind = lab.add_hub(2).unwrap();
    let args = [
        "--querier",
        "--querier-version",
        "3",
        "--querier-address",
        "10.0.0.250",
        "--query-interval",
        "1",
        "--query-response-interval",
        "0.5",
    ];
    let snooped = Snooped::on(lab, &args);
    let lab = &snooped.lab;
    let s1 = lab.hosts[0].address;
    let excluder = lab.join_excluding(behind[1], G_ASM, s1).unwrap();
    let includer = lab.join_source(behind[0], G_ASM, s1).unwrap();
    // S1 asked for (A or X), and the group registered by the daemon: until
    // then the switch, querier itself, sends the group to router ports only.
    let ready = || {
        let tables = snooped.tables();
        let asked = tables
            .source_entries()
            .iter()
            .any(|(_, entry)| entry.mode == filter_mode::INCLUDE);
        asked && tables.forwarding.groups.keys().next().is_some()
    };
    snooped.wait_until(
        "S1 asked for, the group registered",
        Duration::from_secs(5),
        ready,
    );
    // Five query rounds, a burst from S1 in each.
    for _ in 0..5 {
        lab.send(0, G_ASM, N, 64).unwrap();
        sleep(Duration::from_millis(1000));
    }
    assert_eq!(
        includer.drain(),
        5 * N,
        "S1 to the host asking for it\n{}",
        lab.daemon_log()
    );
    assert_eq!(excluder.drain(), 0, "its own kernel filters S1");
}

/// Behind one port, h2 wants every source (EXCLUDE {}) and h3 all but S1
/// (EXCLUDE {S1}). h2's reports name no source, which deletes S1 from the
/// port's lists (EXCLUDE(X,Y)+IS_EX({}) → EXCLUDE({},{})), and h3's put it
/// back in X only (A-X-Y=GMI): S1 never enters Y, and reaches h2 in every
/// query round.
#[test]
fn behind_one_port_a_host_excluding_a_source_leaves_it_to_one_that_wants_all() {
    let mut lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let behind = lab.add_hub(2).unwrap();
    let args = [
        "--querier",
        "--querier-version",
        "3",
        "--querier-address",
        "10.0.0.250",
        "--query-interval",
        "1",
        "--query-response-interval",
        "0.5",
    ];
    let snooped = Snooped::on(lab, &args);
    let lab = &snooped.lab;
    let s1 = lab.hosts[0].address;
    let excluder = lab.join_excluding(behind[1], G_ASM, s1).unwrap();
    let all = lab.join(behind[0], G_ASM).unwrap();
    snooped.wait_until("the group registered", Duration::from_secs(5), || {
        snooped.tables().forwarding.groups.keys().next().is_some()
    });
    // Both hosts' state-change reports go at once; a query round to be sure.
    sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        lab.send(0, G_ASM, N, 64).unwrap();
        sleep(Duration::from_millis(1000));
    }
    assert_eq!(
        all.drain(),
        5 * N,
        "S1 to the host wanting every source\n{}",
        lab.daemon_log()
    );
    assert_eq!(excluder.drain(), 0, "its own kernel filters S1");
}
