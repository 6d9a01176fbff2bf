//! The tc classifier's own part of forwarding, through BPF_PROG_TEST_RUN in a
//! lab's switch: what it redirects, and the copies its walk over a port list
//! puts on real wires, counted at the hosts. Learning and the forwarding
//! decision are the XDP program's too: `xdp_parse.rs` and `xdp_corpus.rs` run
//! them in both hooks.
//!
//! Lab tier: each test runs frames through a `Harness` inside a `Lab`'s switch
//! and counts the clones at its hosts' namespaces (no daemon), so none of
//! them is a TestRun test alone.

use std::{net::Ipv4Addr, time::Duration};

use igmp_common::{
    filter_mode, DataCounter, GroupEntry, GroupKey, Membership, MembershipKey, PortList,
};
use igmp_lab::{in_netns, BridgeSnooping, Capture, Lab};
use igmp_tests::{
    frames::udp_data,
    harness::{Harness, TestHook, XDP_DROP, XDP_REDIRECT},
};

const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 6, 6, 7);
const FRAMES: usize = 5;
const SLOT: u32 = 3;

/// A switch of three ports to three hosts, the classifier loaded on its own
/// maps there, every port in `PORT_LIST`. Frames run in arrive on the
/// switch's loopback, a port of none of them.
struct Switch {
    lab: Lab,
    harness: Harness,
    ports: Vec<u32>,
}

impl Switch {
    fn new() -> Self {
        let lab = Lab::new(3, BridgeSnooping::Off).unwrap();
        let mut harness = Harness::on(TestHook::Tc);
        let ports: Vec<u32> = lab
            .hosts
            .iter()
            .map(|host| lab.port_ifindex(&host.port).unwrap())
            .collect();
        harness.tables.ports.write_port_list(&ports).unwrap();
        Self {
            lab,
            harness,
            ports,
        }
    }

    /// Port `index` joined the group, from every source.
    fn member(&mut self, index: usize) {
        let key = MembershipKey {
            ifindex: self.ports[index],
            vlan: 0,
            inner_vlan: 0,
            group: GROUP.octets(),
        };
        let entry = Membership {
            version: 2,
            filter_mode: filter_mode::EXCLUDE,
            ..Membership::default()
        };
        self.harness
            .tables
            .learned
            .membership
            .insert(key, entry, 0)
            .unwrap();
    }

    fn register(&mut self, entry: GroupEntry) {
        let key = GroupKey {
            vlan: 0,
            inner_vlan: 0,
            group: GROUP.octets(),
        };
        self.harness
            .tables
            .forwarding
            .groups
            .insert(key, entry, 0)
            .unwrap();
    }

    /// Slot `SLOT` of `SET_PORT_LISTS` lists the ports of `indexes`.
    fn set_list(&mut self, indexes: &[usize]) {
        let mut list = PortList::default();
        for (at, index) in indexes.iter().enumerate() {
            list.ports[at] = self.ports[*index];
        }
        self.harness
            .tables
            .forwarding
            .set_port_lists
            .set(SLOT, list, 0)
            .unwrap();
    }

    /// Runs `FRAMES` datagrams to the group through the classifier; returns
    /// its answers (as XDP actions) and the datagrams each host received.
    fn send(&self) -> (Vec<u32>, Vec<usize>) {
        let captures: Vec<Capture> = (0..3).map(|host| self.lab.capture(host).unwrap()).collect();
        let frame = udp_data(&[], SENDER, GROUP, 100);
        let answers = in_netns(&self.lab.switch, || {
            Ok((0..FRAMES).map(|_| self.harness.run(&frame)).collect())
        })
        .unwrap();
        let received = captures
            .iter()
            .map(|capture| {
                capture
                    .frames_for(Duration::from_millis(200))
                    .iter()
                    .filter(|frame| frame.len() >= 34 && frame[30..34] == GROUP.octets())
                    .count()
            })
            .collect();
        (answers, received)
    }

    fn data_count(&self, counter: DataCounter) -> u64 {
        self.harness.tables.data_counters().frames[counter as usize]
    }
}

#[test]
fn a_group_without_worked_out_destinations_is_cloned_to_each_member_port_only() {
    let mut switch = Switch::new();
    switch.member(0);
    switch.member(1);
    switch.register(GroupEntry {
        ports: 2,
        ..GroupEntry::default()
    });
    let (answers, received) = switch.send();
    // A copy to h1's port, the frame itself to h2's, the last member in
    // `PORT_LIST`: BPF_PROG_TEST_RUN returns the redirect without doing it,
    // so only the copies reach a wire here (the lab tests see both).
    assert_eq!(answers, vec![XDP_REDIRECT; FRAMES]);
    assert_eq!(received, vec![FRAMES, 0, 0]);
    assert_eq!(
        switch.data_count(DataCounter::EgressFiltered),
        FRAMES as u64,
        "h3's port, asked and refused once per frame"
    );
}

#[test]
fn a_destination_set_is_walked_as_its_list() {
    let mut switch = Switch::new();
    switch.member(0);
    switch.member(1);
    // A list that names h1's port alone: only its ports are asked.
    switch.set_list(&[0]);
    switch.register(GroupEntry {
        ports: 2,
        dest_set: SLOT + 1,
        ..GroupEntry::default()
    });
    let (answers, received) = switch.send();
    // The list's one port gets the frame itself, so no copy reaches a wire;
    // a walk of `PORT_LIST` would have copied it to h1's port for h2's.
    assert_eq!(answers, vec![XDP_REDIRECT; FRAMES]);
    assert_eq!(received, vec![0, 0, 0]);
    assert_eq!(
        switch.data_count(DataCounter::ForwardedToSet),
        FRAMES as u64
    );
}

#[test]
fn an_empty_destination_set_falls_back_to_every_port() {
    let mut switch = Switch::new();
    switch.member(0);
    switch.member(2);
    switch.register(GroupEntry {
        ports: 2,
        dest_set: SLOT + 1,
        ..GroupEntry::default()
    });
    let (answers, received) = switch.send();
    // Every port asked: a copy to h1's, the frame itself to h3's.
    assert_eq!(answers, vec![XDP_REDIRECT; FRAMES]);
    assert_eq!(received, vec![FRAMES, 0, 0]);
    assert_eq!(switch.data_count(DataCounter::ForwardedToSet), 0);
}

#[test]
fn a_sole_port_gets_the_frame_itself_only_if_it_wants_it() {
    let mut switch = Switch::new();
    switch.member(0);
    switch.register(GroupEntry {
        ports: 1,
        sole_port: switch.ports[0],
        ..GroupEntry::default()
    });
    let (answers, _) = switch.send();
    assert_eq!(answers, vec![XDP_REDIRECT; FRAMES]);
    assert_eq!(switch.data_count(DataCounter::EgressFiltered), 0);

    // A sole port whose membership is gone (the daemon has not caught up).
    switch.register(GroupEntry {
        ports: 1,
        sole_port: switch.ports[2],
        ..GroupEntry::default()
    });
    let (answers, received) = switch.send();
    assert_eq!(answers, vec![XDP_DROP; FRAMES]);
    assert_eq!(received, vec![0, 0, 0]);
    assert_eq!(
        switch.data_count(DataCounter::EgressFiltered),
        FRAMES as u64
    );
}
