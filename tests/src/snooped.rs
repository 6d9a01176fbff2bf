//! A lab with igmp-snoop running on every port: the fixture of the lab tests.
//! The daemon is stopped and its pins removed on drop.

use std::{collections::BTreeSet, net::Ipv4Addr, path::PathBuf, time::Duration};

use igmp_common::DataCounter;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_user::tables::Tables;

use crate::{daemon_binary, harness::unique_pin_dir};

pub struct Snooped {
    pub lab: Lab,
    pub pin_dir: PathBuf,
}

impl Snooped {
    /// `hosts` hosts on a bridge with its own snooping off, igmp-snoop started with `daemon_args`.
    pub fn new(hosts: usize, daemon_args: &[&str]) -> Self {
        Self::on(
            Lab::new(hosts, BridgeSnooping::Off).expect("lab"),
            daemon_args,
        )
    }

    /// igmp-snoop started on an existing lab (set up by the caller first).
    pub fn on(mut lab: Lab, daemon_args: &[&str]) -> Self {
        let pin_dir = unique_pin_dir("lab");
        lab.start_daemon(&daemon_binary(), &pin_dir, daemon_args)
            .expect("daemon");
        Self { lab, pin_dir }
    }

    pub fn tables(&self) -> Tables {
        Tables::open(&self.pin_dir).expect("pinned maps")
    }

    /// The ifindex of host `host`'s port.
    pub fn port(&self, host: usize) -> u32 {
        self.lab
            .port_ifindex(&self.lab.hosts[host].port)
            .expect("port ifindex")
    }

    /// The (port ifindex, group) pairs in the membership map.
    pub fn pairs(&self) -> BTreeSet<(u32, Ipv4Addr)> {
        Tables::open(&self.pin_dir)
            .map(|tables| {
                tables
                    .memberships()
                    .iter()
                    .map(|(key, _)| (key.ifindex, Ipv4Addr::from(key.group)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of entries on port `ifindex`.
    pub fn memberships_on(&self, ifindex: u32) -> usize {
        self.pairs()
            .iter()
            .filter(|(port, _)| *port == ifindex)
            .count()
    }

    /// Waits until the table holds exactly `expected`, failing with the daemon's log.
    pub fn wait_for_pairs(&self, expected: &BTreeSet<(u32, Ipv4Addr)>, timeout: Duration) {
        let reached = wait_for(timeout, || &self.pairs() == expected);
        assert!(
            reached,
            "table {:?}, expected {:?}\n{}",
            self.pairs(),
            expected,
            self.lab.daemon_log()
        );
    }

    /// Waits for `condition`, failing with `what` and the daemon's log.
    pub fn wait_until(&self, what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
        assert!(
            wait_for(timeout, condition),
            "{what}\n{}",
            self.lab.daemon_log()
        );
    }

    /// Runs an igmp-snoop command (with this lab's --pin-dir) in the switch namespace.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.lab
            .command_in_switch(&daemon_binary())
            .args(args)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .output()
            .expect("running igmp-snoop")
    }
}

impl Snooped {
    /// Hosts 1–3 (at least) with VLAN devices: host 1 sends `group` tagged
    /// 10 and then 20, host 2 is a member in VLAN 10 and untagged, host 3 in
    /// VLAN 20. Checks that joins are learned per VLAN and each VLAN's `count`
    /// datagrams reach that VLAN's members only, still tagged (the untagged
    /// member gets none), through the fast path. Needs 8021q.
    pub fn assert_vlans_kept_apart(&mut self, group: Ipv4Addr, count: usize) {
        let mut vlan = |host: usize, vid: u16| self.lab.add_vlan(host, vid).unwrap();
        let (sender_10, sender_20) = (vlan(0, 10), vlan(0, 20));
        let (h2_10, h3_20) = (vlan(1, 10), vlan(2, 20));
        let lab = &self.lab;
        let on_10 = lab.join(h2_10, group).unwrap();
        let on_20 = lab.join(h3_20, group).unwrap();
        // The same group untagged, on the hosts' own interfaces: no tag may be lost.
        let untagged = lab.join(1, group).unwrap();
        self.wait_until("the joins, per VLAN", Duration::from_secs(5), || {
            let mut learned: Vec<(u32, u16)> = self
                .tables()
                .memberships()
                .iter()
                .map(|(key, _)| (key.ifindex, key.vlan))
                .collect();
            learned.sort();
            learned == [(self.port(1), 0), (self.port(1), 10), (self.port(2), 20)]
        });
        lab.send(sender_10, group, count, 256).unwrap();
        assert_eq!(on_10.drain(), count, "VLAN 10's member");
        assert_eq!(on_20.drain(), 0, "VLAN 20's member, from VLAN 10");
        assert_eq!(untagged.drain(), 0, "the untagged member, from VLAN 10");
        lab.send(sender_20, group, count, 256).unwrap();
        assert_eq!(on_20.drain(), count, "VLAN 20's member");
        assert_eq!(on_10.drain(), 0, "VLAN 10's member, from VLAN 20");
        let counters = self.tables().data_counters().frames;
        assert!(
            counters[DataCounter::Forwarded as usize] >= 2 * count as u64,
            "the fast path forwarded them: {counters:?}"
        );
    }
}

impl Drop for Snooped {
    fn drop(&mut self) {
        let _ = self.lab.stop_daemon(libc::SIGTERM);
        let _ = igmp_user::loader::remove_pins(&self.pin_dir);
    }
}

/// Whether igmp-snoop's program is on `port` of `lab`'s switch, in either
/// hook: an XDP program on the link, or the tc classifier among its ingress filters.
pub fn program_attached(lab: &Lab, port: &str) -> bool {
    let xdp = igmp_lab::run_output(&["ip", "-n", &lab.switch, "link", "show", port])
        .is_ok_and(|out| out.contains("xdp"));
    let tc = igmp_lab::run_output(&[
        "tc",
        "-n",
        &lab.switch,
        "filter",
        "show",
        "dev",
        port,
        "ingress",
    ])
    .is_ok_and(|out| out.contains(igmp_user::loader::TC_PROGRAM));
    xdp || tc
}
