//! The IGMP querier component (MLD's is `mld_querying`, on the same
//! `QueryPorts`): the election (`querier::Querier`), sending what
//! it decides out of its own raw socket, and telling the monitors and the
//! metrics who queries. At start it takes over the querier a previous daemon
//! knew, from the router ports it left pinned, so that the policies that
//! follow "a querier is known" survive a restart. It owns no map: the loop
//! tells the forwarding component when whether a querier is known may have
//! changed.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use igmp_common::{RouterKey, RouterPort};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{
    interfaces::interface_name,
    metrics::SharedStatus,
    monitor::{MonitorEvent, MonitorKind},
    querier::{
        general_query, group_and_source_query, group_query, interface_mac, tagged, MldVersion,
        Querier, QuerierAction, QuerierSettings, QuerySender, QueryVersion,
    },
    timers::{monotonic_ns, Timers},
};

/// Where queries go, per VLAN: VLAN 0 (untagged) holds every port off
/// VLAN-filtering bridges; on such a bridge each VLAN holds its member
/// ports, each with whether the VLAN leaves it tagged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct QueryPorts(pub BTreeMap<u16, Vec<QueryPort>>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct QueryPort {
    pub ifindex: u32,
    /// The port's copies of the VLAN carry its tag.
    pub tagged: bool,
}

impl QueryPorts {
    /// Every port, once each.
    pub(super) fn ifindexes(&self) -> Vec<u32> {
        let mut ports: Vec<u32> = self.0.values().flatten().map(|port| port.ifindex).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The election a query or leave heard in `vlan` belongs to: the
    /// VLAN's own where queries go per VLAN, the untagged one elsewhere
    /// (off VLAN-filtering bridges a tag does not make a LAN of its own).
    pub(super) fn election_of(&self, vlan: u16) -> u16 {
        if self.0.contains_key(&vlan) {
            vlan
        } else {
            0
        }
    }

    pub(super) fn port(&self, vlan: u16, ifindex: u32) -> Option<QueryPort> {
        self.0
            .get(&vlan)?
            .iter()
            .find(|port| port.ifindex == ifindex)
            .copied()
    }
}

pub(super) struct Querying {
    /// One querier election per VLAN of `QueryPorts`, and our queries in
    /// it when we win it: a VLAN-filtering bridge's VLANs are LANs of their
    /// own, each with its querier, as the bridge's `mcast_vlan_snooping`.
    elections: BTreeMap<u16, Querier>,
    settings: QuerierSettings,
    sender: Option<QuerySender>,
    timers: Timers,
    status: SharedStatus,
    monitor: broadcast::Sender<MonitorEvent>,
}

impl Querying {
    /// A switch that does not query and has heard no querier yet.
    pub(super) fn new(timers: Timers, monitor: broadcast::Sender<MonitorEvent>) -> Self {
        Self {
            elections: BTreeMap::new(),
            settings: QuerierSettings {
                enabled: false,
                version: QueryVersion::V2,
                mld_version: MldVersion::V2,
                address: None,
            },
            sender: None,
            timers,
            status: SharedStatus::default(),
            monitor,
        }
    }

    /// Sets how this switch queries; with `--querier` it starts querying
    /// in each VLAN as soon as it knows the ports (`follow`).
    pub(super) fn configure(
        &mut self,
        settings: QuerierSettings,
        status: SharedStatus,
    ) -> Result<()> {
        if settings.enabled {
            let sender = QuerySender::new().context("opening a raw socket to send queries")?;
            self.sender = Some(sender);
        }
        self.elections.clear();
        self.settings = settings;
        self.status = status;
        Ok(())
    }

    /// Holds an election for each VLAN of `ports` and none other: a VLAN
    /// new to the ports starts one (our startup queries, with `--querier`).
    fn follow(&mut self, ports: &QueryPorts) {
        self.elections.retain(|vlan, _| ports.0.contains_key(vlan));
        for &vlan in ports.0.keys() {
            self.elections.entry(vlan).or_insert_with(|| {
                Querier::new(
                    self.settings.enabled,
                    self.settings.address,
                    self.timers.clone(),
                    monotonic_ns(),
                )
            });
        }
    }

    /// Elects again the queriers heard on the router ports before this start
    /// (`ROUTER_PORTS` keeps each one's address and when it last queried), as
    /// if their queries had just come: the querier stays known until its own
    /// other querier present interval runs out, as it would have without the
    /// restart. A querier heard on a port with router mode off left no entry,
    /// and is known again from its next query.
    pub(super) fn adopt(&mut self, routers: &[(RouterKey, RouterPort)], ports: &QueryPorts) {
        self.follow(ports);
        let now = monotonic_ns();
        for (vlan, address, heard) in queriers_heard(routers, &ports.ifindexes()) {
            let vlan = ports.election_of(vlan);
            let Some(election) = self.elections.get_mut(&vlan) else {
                continue;
            };
            if let Some(QuerierAction::OtherQuerierElected(elected)) =
                election.adopt(address, heard, now)
            {
                let ago = Duration::from_nanos(now.saturating_sub(heard));
                info!(
                    querier = %elected,
                    vid = vlan,
                    heard_ago = ?ago,
                    "querier: {elected} is the querier, heard before this start"
                );
            }
        }
        self.update_status();
    }

    /// Whether a querier is known (this switch or another), in any VLAN:
    /// the forwarding policies follow it (off VLAN-filtering bridges there
    /// is one election; on them the bridge's snooping applies the policies).
    pub(super) fn querier_known(&self) -> bool {
        self.elections
            .values()
            .any(|election| election.current().is_some())
    }

    /// The other querier of `vlan`'s LAN, if one is present at `now`.
    pub(super) fn other_querier(
        &self,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) -> Option<Ipv4Addr> {
        self.elections
            .get(&ports.election_of(vlan))?
            .other_querier(now)
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.elections
            .values()
            .filter_map(Querier::next_deadline)
            .min()
    }

    /// A query heard on the wire in `vlan`; returns whether the election changed.
    pub(super) fn query_seen(
        &mut self,
        source: Ipv4Addr,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) -> bool {
        self.follow(ports);
        let vlan = ports.election_of(vlan);
        let Some(action) = self
            .elections
            .get_mut(&vlan)
            .and_then(|election| election.on_query(source, now))
        else {
            return false;
        };
        self.act(vlan, action, ports);
        true
    }

    /// A leave in `vlan` this switch, as querier, asks the port about.
    pub(super) fn leave_seen(
        &mut self,
        port: u32,
        vlan: u16,
        group: Ipv4Addr,
        now: u64,
        ports: &QueryPorts,
    ) {
        if let Some(election) = self.elections.get_mut(&ports.election_of(vlan)) {
            election.on_leave(port, group, now);
        }
    }

    /// A source leave in `vlan` this switch, as querier, asks the port about.
    pub(super) fn source_leave_seen(
        &mut self,
        port: u32,
        vlan: u16,
        group: Ipv4Addr,
        source: Ipv4Addr,
        now: u64,
        ports: &QueryPorts,
    ) {
        if let Some(election) = self.elections.get_mut(&ports.election_of(vlan)) {
            election.on_source_leave(port, group, source, now);
        }
    }

    /// Carries out whatever the elections have due now; returns whether
    /// anything was done.
    pub(super) fn poll(&mut self, ports: &QueryPorts) -> bool {
        self.follow(ports);
        let now = monotonic_ns();
        let due: Vec<(u16, QuerierAction)> = self
            .elections
            .iter_mut()
            .flat_map(|(&vlan, election)| {
                election
                    .poll(now)
                    .into_iter()
                    .map(move |action| (vlan, action))
            })
            .collect();
        let acted = !due.is_empty();
        for (vlan, action) in due {
            self.act(vlan, action, ports);
        }
        acted
    }

    fn act(&mut self, vlan: u16, action: QuerierAction, ports: &QueryPorts) {
        match action {
            QuerierAction::SendGeneralQuery => {
                for port in ports.0.get(&vlan).into_iter().flatten() {
                    self.send_general_query(vlan, *port);
                }
            }
            QuerierAction::SendGroupQuery {
                port,
                group,
                source,
            } => {
                if let Some(port) = ports.port(vlan, port) {
                    self.send_group_query(vlan, port, group, source);
                }
            }
            QuerierAction::BecameQuerier => {
                let address = self.query_source();
                info!(vid = vlan, "querier: this switch queries, from {address}");
                self.announce(MonitorKind::Querier, address);
            }
            QuerierAction::OtherQuerierElected(address) => {
                info!(vid = vlan, "querier: {address} is the querier");
                self.announce(MonitorKind::Querier, address);
            }
            QuerierAction::OtherQuerierSilent(address) => {
                info!(vid = vlan, "querier: {address} fell silent");
                self.announce(MonitorKind::QuerierExpire, address);
            }
        }
        self.update_status();
    }

    fn announce(&self, kind: MonitorKind, address: Ipv4Addr) {
        let mut event = MonitorEvent::new(kind, "*".into());
        event.address = Some(address.into());
        let _ = self.monitor.send(event);
    }

    fn query_source(&self) -> Ipv4Addr {
        self.settings.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn send_general_query(&self, vlan: u16, port: QueryPort) {
        let (version, source) = (self.settings.version, self.query_source());
        self.send_frame(vlan, port, |mac| {
            general_query(version, source, mac, &self.timers)
        });
    }

    /// A group-specific query, or a group-and-source-specific one when a
    /// source is named and we speak IGMPv3 (a v2 querier asks about the group).
    fn send_group_query(
        &self,
        vlan: u16,
        port: QueryPort,
        group: Ipv4Addr,
        listed: Option<Ipv4Addr>,
    ) {
        let (version, source) = (self.settings.version, self.query_source());
        self.send_frame(vlan, port, |mac| match listed {
            Some(listed) if version == QueryVersion::V3 => {
                group_and_source_query(source, mac, group, &[listed], &self.timers)
            }
            _ => group_query(version, source, mac, group, &self.timers),
        });
    }

    /// Sends the frame `build` makes on `port`, tagged with `vlan` where
    /// the VLAN leaves the port tagged.
    fn send_frame(&self, vlan: u16, port: QueryPort, build: impl FnOnce([u8; 6]) -> Vec<u8>) {
        let Some(sender) = &self.sender else {
            return;
        };
        let ifindex = port.ifindex;
        let mac = match interface_mac(ifindex) {
            Ok(mac) => mac,
            Err(error) => return warn!("querier: {}: {error}", interface_name(ifindex)),
        };
        let mut frame = build(mac);
        if port.tagged {
            frame = tagged(&frame, vlan);
        }
        if let Err(error) = sender.send(ifindex, &frame) {
            warn!("querier: sending on {}: {error}", interface_name(ifindex));
        }
    }

    /// Tells the metrics who queries: this switch if it does in any VLAN,
    /// and the querier of the first VLAN with one.
    fn update_status(&mut self) {
        let mut status = self.status.lock().expect("status lock");
        status.is_querier = self.elections.values().any(Querier::is_querier);
        status.querier = self.elections.values().find_map(Querier::current);
    }
}

/// The queriers the router ports among `ports` heard, as (VLAN, address,
/// when it last queried), oldest first so that electing them in turn ends as
/// the live election did. Entries made only by PIM hellos or by the operator
/// name no querier (version 0), nor do queries from 0.0.0.0. A PIM hello
/// after a query refreshes the entry's time too (the map keeps one time):
/// a router that both queries and speaks PIM is kept until one interval
/// after its last hello rather than its last query, never forgotten early.
fn queriers_heard(routers: &[(RouterKey, RouterPort)], ports: &[u32]) -> Vec<(u16, Ipv4Addr, u64)> {
    let mut heard: Vec<(u16, Ipv4Addr, u64)> = routers
        .iter()
        .filter(|(key, _)| ports.contains(&key.ifindex))
        .filter(|(_, entry)| entry.version != 0 && entry.querier != [0; 4])
        .map(|(key, entry)| (key.vlan, Ipv4Addr::from(entry.querier), entry.last_query_ns))
        .collect();
    heard.sort_by_key(|&(_, _, at)| at);
    heard
}

#[cfg(test)]
mod tests {
    use igmp_common::router_flags;

    use super::*;

    fn entry(
        ifindex: u32,
        querier: [u8; 4],
        version: u8,
        at: u64,
        flags: u8,
    ) -> (RouterKey, RouterPort) {
        let key = RouterKey {
            ifindex,
            vlan: 0,
            inner_vlan: 0,
        };
        let value = RouterPort {
            last_query_ns: at,
            querier,
            version,
            flags,
            ..RouterPort::default()
        };
        (key, value)
    }

    #[test]
    fn only_router_ports_made_by_a_query_name_a_querier_oldest_first() {
        let routers = [
            entry(3, [10, 0, 0, 3], 3, 20, 0),
            entry(4, [10, 0, 0, 4], 2, 10, 0),
            entry(5, [10, 0, 0, 5], 0, 30, router_flags::PIM),
            entry(6, [0; 4], 0, 0, router_flags::PERMANENT),
            // A port no longer snooped.
            entry(7, [10, 0, 0, 1], 3, 40, 0),
        ];
        assert_eq!(
            queriers_heard(&routers, &[3, 4, 5, 6]),
            vec![
                (0, Ipv4Addr::new(10, 0, 0, 4), 10),
                (0, Ipv4Addr::new(10, 0, 0, 3), 20)
            ]
        );
    }
}
