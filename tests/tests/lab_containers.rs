//! Container ports: a bridge of veths to network namespaces whose every
//! setting is the kernel's default (GRO off, checksum offload on), as a
//! container runtime leaves them. Delivery is counted where users see it:
//! datagrams at real sockets and at iperf2, a client this project did not write.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use igmp_common::DataCounter;
use igmp_lab::{run_output, wait_for, Lab};
use igmp_tests::snooped::Snooped;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 5);
const N: usize = 200;

/// `UdpInCsumErrors` of a host's kernel: non-zero when a datagram arrived
/// with the partial checksum its sender's stack left to offload.
fn udp_checksum_errors(lab: &Lab, host: usize) -> u64 {
    let snmp = run_output(&[
        "ip",
        "netns",
        "exec",
        &lab.hosts[host].netns,
        "cat",
        "/proc/net/snmp",
    ])
    .expect("reading /proc/net/snmp");
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp: "));
    let (names, values) = (
        udp.next().expect("Udp header"),
        udp.next().expect("Udp values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "InCsumErrors")
        .and_then(|(_, value)| value.parse().ok())
        .expect("InCsumErrors")
}

#[test]
fn registered_multicast_reaches_every_member_socket_with_default_veth_settings() {
    let snooped = Snooped::new(4, &[]);
    let lab = &snooped.lab;
    let members = [lab.join(1, GROUP).unwrap(), lab.join(2, GROUP).unwrap()];
    let outsider = lab.join(3, Ipv4Addr::new(239, 5, 5, 6)).unwrap();
    snooped.wait_until(
        "both members are registered",
        Duration::from_secs(5),
        || {
            snooped.memberships_on(snooped.port(1)) == 1
                && snooped.memberships_on(snooped.port(2)) == 1
        },
    );
    lab.send(0, GROUP, N, 512).unwrap();
    for (index, member) in members.iter().enumerate() {
        assert_eq!(member.drain(), N, "member h{}", index + 2);
    }
    assert_eq!(outsider.drain(), 0, "a host of another group");
    for host in 1..=3 {
        assert_eq!(udp_checksum_errors(lab, host), 0, "h{}", host + 1);
    }
    let counters = snooped.tables().data_counters().frames;
    assert!(
        counters[DataCounter::Forwarded as usize] >= N as u64,
        "the fast path forwarded them: {counters:?}"
    );
    let log = lab.daemon_log();
    assert!(
        log.contains("attach mode") && log.contains("mode=\"tc\"") && log.contains("p1 (veth)"),
        "the start log says which mode and why:\n{log}"
    );
    let stats = snooped.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let hooks: Vec<(&str, &str)> = stats["attached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|port| {
            (
                port["port"].as_str().unwrap(),
                port["hook"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hooks,
        [("p1", "tc"), ("p2", "tc"), ("p3", "tc"), ("p4", "tc")],
        "stats says which hook each port runs"
    );
}

/// iperf2's own multicast server in a member: its closing report counts the
/// datagrams it received against those the client sent.
struct IperfServer {
    child: Child,
}

impl IperfServer {
    fn start(lab: &Lab, host: usize) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.hosts[host].netns])
            .args(["iperf", "-s", "-u", "-B", &GROUP.to_string(), "-i", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf (Debian package iperf, installed by cargo xtask setup)");
        Self { child }
    }

    /// The server's report: (lost, total) datagrams.
    fn report(self) -> (u64, u64) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let output = self.child.wait_with_output().expect("iperf output");
        let text = String::from_utf8_lossy(&output.stdout);
        // e.g. "[  1] 0.00-2.00 sec  5.00 MBytes  21.0 Mbits/sec  0.010 ms    0/ 3567 (0%)"
        text.lines()
            .rev()
            .find_map(|line| {
                let (_, tail) = line.rsplit_once("ms")?;
                let (lost, rest) = tail.split_once('/')?;
                let total = rest.split_whitespace().next()?;
                Some((lost.trim().parse().ok()?, total.parse().ok()?))
            })
            .unwrap_or_else(|| panic!("no iperf report in:\n{text}"))
    }
}

#[test]
fn iperf2_multicast_between_containers_loses_nothing() {
    let snooped = Snooped::new(3, &[]);
    let lab = &snooped.lab;
    let server = IperfServer::start(lab, 1);
    assert!(
        wait_for(Duration::from_secs(5), || snooped
            .memberships_on(snooped.port(1))
            == 1),
        "iperf's join was not learned"
    );
    let client = Command::new("ip")
        .args(["netns", "exec", &lab.hosts[0].netns])
        .args([
            "iperf",
            "-c",
            &GROUP.to_string(),
            "-u",
            "-T",
            "1",
            "-t",
            "2",
            "-b",
            "10M",
        ])
        .output()
        .expect("iperf client");
    assert!(client.status.success(), "{client:?}");
    sleep(Duration::from_millis(500));
    let (lost, total) = server.report();
    assert!(total > 1000, "iperf counted {total} datagrams");
    assert_eq!(lost, 0, "iperf lost {lost} of {total}");
    assert_eq!(udp_checksum_errors(lab, 1), 0);
    let counters = snooped.tables().data_counters().frames;
    assert!(
        counters[DataCounter::Forwarded as usize] >= total,
        "the fast path forwarded them: {counters:?}"
    );
}

/// VLAN devices inside the containers, at their defaults: the kernel keeps
/// each tag in skb metadata, so the classifier sees the frame untagged and
/// reads the tag where the kernel put it. Joins are learned per VLAN, and
/// each VLAN's data reaches that VLAN's members only, still tagged (issue
/// 13, defect 4). Ignored on a kernel without 8021q (the host's); the guest
/// kernels run it (`cargo xtask test --kernel`). Generic XDP, which sees the
/// frame before the kernel reads the tag but after the sending veth took it
/// out, fails it: every join is learned untagged.
#[test]
#[ignore = "needs 8021q: the guest kernels run it"]
fn tagged_multicast_keeps_its_vlan_from_sender_to_members() {
    let mut snooped = Snooped::new(3, &[]);
    snooped.assert_vlans_kept_apart(GROUP, N);
}
