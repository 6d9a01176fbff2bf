//! Our MLD querier (`--querier` switches on both families) against real
//! kernel hosts and a real competing querier (a Linux bridge with
//! `mcast_querier 1` in a host): alone it queries every port from the
//! bridge's link-local address and hosts answer with MLDv2 reports; it
//! yields to a lower link-local address (RFC 3810 §7.6.2), and takes over
//! again when that querier falls silent, in MLDv1 if the other one spoke
//! MLDv1 (RFC 3810 §8.3.1). Asked for MLDv1 (`--mld-querier-version 1`,
//! for routers that speak only MLDv1) it queries in MLDv1 and hosts answer
//! in kind.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, bridges, the
//! daemon.

use std::{net::Ipv6Addr, time::Duration};

use igmp_lab::{ip, run_output, wait_for, BridgeSnooping, Lab};
use igmp_tests::snooped::Snooped;

/// Queries every second (startup ones a quarter apart), answered within
/// half a second; other querier present interval 2 × 1 s + 0.25 s.
const FAST_QUERIER: [&str; 5] = [
    "--querier",
    "--query-interval",
    "1",
    "--query-response-interval",
    "0.5",
];
/// The competing querier's bridge address: its link-local is
/// fe80::ff:fe00:1, below any the kernel derives from a random MAC (whose
/// first octet, the local bit flipped, is not 0 but by a 1-in-64 chance).
const LOW_MAC: &str = "02:00:00:00:00:01";
const LOW_LINK_LOCAL: &str = "fe80::ff:fe00:1";

const MLD_QUERY: u8 = 130;
const MLDV1_REPORT: u8 = 131;
const MLDV2_REPORT: u8 = 143;

/// The link-local address of `device` in `netns` once duplicate address
/// detection is over (not `tentative`), waiting up to 5 s for it.
fn link_local(netns: &str, device: &str) -> Ipv6Addr {
    let mut found = None;
    let settled = wait_for(Duration::from_secs(5), || {
        let shown = run_output(&[
            "ip", "-n", netns, "-6", "addr", "show", "dev", device, "scope", "link",
        ])
        .unwrap_or_default();
        found = shown
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("inet6 fe80") && !line.contains("tentative"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|address| address.split('/').next())
            .and_then(|address| address.parse().ok());
        found.is_some()
    });
    assert!(
        settled,
        "{netns}: no settled link-local address on {device}"
    );
    found.unwrap()
}

/// An MLD message in `frame` as the kernel and igmp-snoop send it
/// (untagged, a Hop-by-Hop header first): (IPv6 source, destination, the
/// ICMPv6 message).
fn mld(frame: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, &[u8])> {
    let address = |at: usize| {
        Some(Ipv6Addr::from(
            <[u8; 16]>::try_from(frame.get(at..at + 16)?).ok()?,
        ))
    };
    let ipv6 = frame.get(12..14)? == [0x86, 0xdd];
    let hop_by_hop_then_icmpv6 = frame.get(20) == Some(&0) && frame.get(54) == Some(&58);
    if !ipv6 || !hop_by_hop_then_icmpv6 {
        return None;
    }
    let hop_by_hop_len = (usize::from(*frame.get(55)?) + 1) * 8;
    Some((
        address(22)?,
        address(38)?,
        frame.get(54 + hop_by_hop_len..)?,
    ))
}

/// Whether `frame` is a general MLD query from `source` of `octets` octets
/// (28: MLDv2, 24: MLDv1).
fn general_query_from(frame: &[u8], source: Ipv6Addr, octets: usize) -> bool {
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    mld(frame).is_some_and(|(from, to, message)| {
        from == source
            && to == all_nodes
            && message.first() == Some(&MLD_QUERY)
            && message.len() == octets
            && message[8..24] == [0; 16]
    })
}

#[test]
fn alone_our_mld_querier_queries_every_port_from_the_bridge_and_hosts_answer() {
    let snooped = Snooped::new(2, &FAST_QUERIER);
    let lab = &snooped.lab;
    // The bridge queries from its own address, so do we.
    let ours = link_local(&lab.switch, "br0");
    let hosts: Vec<Ipv6Addr> = lab
        .hosts
        .iter()
        .map(|host| link_local(&host.netns, &host.interface))
        .collect();
    let captures: Vec<_> = (0..2).map(|host| lab.capture(host).unwrap()).collect();
    for (host, capture) in captures.iter().enumerate() {
        assert!(
            capture.wait_for(Duration::from_secs(3), |frame| general_query_from(
                frame, ours, 28
            )),
            "no MLDv2 general query from {ours} on h{}\n{}",
            host + 1,
            lab.daemon_log()
        );
    }
    // The host's kernel answers it (its solicited-node group at least),
    // within the query response interval.
    let answered = captures[0].wait_for(Duration::from_secs(2), |frame| {
        mld(frame).is_some_and(|(from, _, message)| {
            from == hosts[0] && message.first() == Some(&MLDV2_REPORT)
        })
    });
    assert!(answered, "h1 sent no MLDv2 report after our query");
    let log = lab.daemon_log();
    assert!(
        log.contains(&format!(
            "mld querier: this switch is the MLD querier, from {ours}"
        )),
        "{log}"
    );
}

#[test]
fn asked_for_mldv1_our_querier_queries_in_mldv1_and_hosts_answer_in_kind() {
    let mut args = FAST_QUERIER.to_vec();
    args.extend(["--mld-querier-version", "1"]);
    let snooped = Snooped::new(1, &args);
    let lab = &snooped.lab;
    let ours = link_local(&lab.switch, "br0");
    let host = link_local(&lab.hosts[0].netns, &lab.hosts[0].interface);
    let capture = lab.capture(0).unwrap();
    // An MLDv1 query is 24 octets, an MLDv2 one 28 at least (RFC 3810 §8.1).
    assert!(
        capture.wait_for(Duration::from_secs(3), |frame| general_query_from(
            frame, ours, 24
        )),
        "no MLDv1 general query from {ours}\n{}",
        lab.daemon_log()
    );
    // A host that hears an MLDv1 query reports in MLDv1 (RFC 3810 §8.2.1).
    let answered = capture.wait_for(Duration::from_secs(2), |frame| {
        mld(frame).is_some_and(|(from, _, message)| {
            from == host && message.first() == Some(&MLDV1_REPORT)
        })
    });
    assert!(answered, "h1 sent no MLDv1 report after our query");
}

/// Makes host `index` a real MLD querier: a Linux bridge in its namespace
/// with `mcast_querier 1`, MLD `version`, querying every second from its
/// link-local address, fe80::ff:fe00:1.
fn start_bridge_mld_querier(lab: &Lab, index: usize, version: u8) {
    let host = &lab.hosts[index];
    let (ns, eth) = (&host.netns, &host.interface);
    ip(
        ns,
        &format!(
            "link add brq address {LOW_MAC} type bridge mcast_snooping 1 mcast_querier 1 \
             mcast_mld_version {version} mcast_query_interval 100 \
             mcast_startup_query_interval 100"
        ),
    )
    .unwrap();
    ip(ns, &format!("link set {eth} master brq")).unwrap();
    ip(ns, "link set brq up").unwrap();
    assert_eq!(
        link_local(ns, "brq"),
        LOW_LINK_LOCAL.parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn a_lower_link_local_querier_wins_and_we_take_over_in_its_mld_version_when_it_falls_silent() {
    let snooped = Snooped::on(Lab::new(3, BridgeSnooping::Off).unwrap(), &FAST_QUERIER);
    let lab = &snooped.lab;
    let log = || lab.daemon_log();
    snooped.wait_until("our MLD querier", Duration::from_secs(5), || {
        log().contains("this switch is the MLD querier")
    });
    let ours = link_local(&lab.switch, "br0");
    // h3 runs a Linux bridge MLDv1 querier from fe80::ff:fe00:1, lower than ours.
    start_bridge_mld_querier(lab, 2, 1);
    snooped.wait_until("yielding", Duration::from_secs(8), || {
        log().contains(&format!("mld querier: {LOW_LINK_LOCAL} is the MLD querier"))
    });
    // While it is the querier we query nothing (br0's own kernel answers
    // its queries with reports from the same address: those are not ours).
    let h1 = lab.capture(0).unwrap();
    let ours_while_yielded = h1
        .frames_for(Duration::from_millis(1500))
        .iter()
        .filter(|frame| {
            mld(frame).is_some_and(|(from, _, message)| {
                from == ours && message.first() == Some(&MLD_QUERY)
            })
        })
        .count();
    assert_eq!(
        ours_while_yielded, 0,
        "we queried while another querier was elected"
    );

    ip(
        &lab.hosts[2].netns,
        "link set brq type bridge mcast_querier 0",
    )
    .unwrap();
    snooped.wait_until("taking over again", Duration::from_secs(8), || {
        log().matches("this switch is the MLD querier").count() == 2
    });
    assert!(log().contains(&format!("mld querier: {LOW_LINK_LOCAL} fell silent")));
    // The MLDv1 querier was heard within the older version querier present
    // timeout: our queries are MLDv1 (24 octets).
    assert!(
        h1.wait_for(Duration::from_secs(3), |frame| general_query_from(
            frame, ours, 24
        )),
        "no MLDv1 general query from {ours} after the take-over\n{}",
        log()
    );
}

/// RFC 3810 §7.4.2: as querier, a Done (here an MLDv1 host's) is followed
/// by last listener query count (robustness, 2) address-specific queries,
/// the last listener query interval (1 s) apart, to the address itself,
/// on the port it came from only.
#[test]
fn as_querier_a_done_is_followed_by_llqc_address_specific_queries_on_its_port() {
    // General queries every 30 s: any query in the window below is an address-specific one.
    let args = ["--querier", "--query-interval", "30"];
    let snooped = Snooped::new(2, &args);
    let lab = &snooped.lab;
    let ours = link_local(&lab.switch, "br0");
    let host = lab.hosts[0].clone();
    link_local(&host.netns, &host.interface);
    let key = format!("net.ipv6.conf.{}.force_mld_version=1", host.interface);
    igmp_lab::run(&["ip", "netns", "exec", &host.netns, "sysctl", "-qw", &key]).unwrap();
    let group: Ipv6Addr = "ff0e::3:3".parse().unwrap();
    let interface = host.interface.clone();
    let listener = igmp_lab::in_netns(&host.netns, move || {
        let name = std::ffi::CString::new(interface)?;
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let socket = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
        socket.join_multicast_v6(&group, ifindex)?;
        Ok(socket)
    })
    .unwrap();
    snooped.wait_until("the join", Duration::from_secs(5), || {
        snooped.tables().ipv6.as_ref().is_some_and(|ipv6| {
            ipv6.learned
                .memberships()
                .iter()
                .any(|(key, _)| key.group == group.octets())
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let (on_h1, on_h2) = (lab.capture(0).unwrap(), lab.capture(1).unwrap());
    drop(listener);
    let asked = |frames: Vec<Vec<u8>>| {
        frames
            .iter()
            .filter_map(|frame| mld(frame))
            .filter(|(from, to, message)| {
                *from == ours && message.first() == Some(&MLD_QUERY) && *to == group
            })
            .map(|(_, _, message)| Ipv6Addr::from(<[u8; 16]>::try_from(&message[8..24]).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        asked(on_h1.frames_for(Duration::from_millis(2500))),
        vec![group, group],
        "LLQC = 2 address-specific queries to the address itself\n{}",
        lab.daemon_log()
    );
    assert!(
        asked(on_h2.frames_for(Duration::from_millis(100))).is_empty(),
        "only the port of the Done is asked"
    );
}
