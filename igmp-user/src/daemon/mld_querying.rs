//! The MLD querier component: one election per querier election (a VLAN of
//! a VLAN-filtering bridge, or the untagged LAN: `QueryPorts::election_of`),
//! the lowest IPv6 address winning (RFC 3810 §7.6.2, `querier::Querier`
//! shared with IGMP); with `--querier`, our general queries (MLDv2 unless
//! an MLDv1 querier was heard, RFC 3810 §8.3.1) and, after a Done or a
//! BLOCK while we are querier, the last listener queries (§7.4.2, count and
//! interval as IGMP's). Without `--querier` it only follows the queriers
//! heard: a Done is left to another querier's address-specific queries while
//! one is present (§7.6.2, §9.5). Our queries come from a link-local
//! address (`querier::mld_query_source`). It owns no map and never writes
//! `SETTINGS` (the forwarding policy follows IGMP's querier this round):
//! it tells the metrics and the monitors who queries.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
};

use anyhow::{Context as _, Result};
use igmp_common::{mld_version, RouterKey, RouterPort};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::querying::{QueryPort, QueryPorts};
use crate::{
    interfaces::interface_name,
    metrics::SharedStatus,
    monitor::{MonitorEvent, MonitorKind},
    querier::{
        interface_mac, mld_address_query, mld_general_query, mld_query_source, tagged, MldVersion,
        Querier, QuerierAction, QuerySender,
    },
    timers::{monotonic_ns, nanos, Timers},
};

/// One LAN's election, with what MLD adds to IGMP's.
struct MldElection {
    querier: Querier<Ipv6Addr>,
    /// Our address in this election, the source of our queries.
    address: Option<Ipv6Addr>,
    /// Until when an MLDv1 querier counts as present: our queries are MLDv1
    /// until then (RFC 3810 §8.3.1; the timeout as §9.12's).
    v1_querier_until: u64,
    /// The version the operator asked for (`--mld-querier-version`).
    configured: MldVersion,
}

impl MldElection {
    fn version(&self, now: u64) -> MldVersion {
        if now < self.v1_querier_until {
            MldVersion::V1
        } else {
            self.configured
        }
    }
}

pub(super) struct MldQuerying {
    elections: BTreeMap<u16, MldElection>,
    enabled: bool,
    version: MldVersion,
    /// Each port's bridge, by name: our source address is the bridge's.
    bridges: BTreeMap<String, String>,
    sender: Option<QuerySender>,
    timers: Timers,
    status: SharedStatus,
    monitor: broadcast::Sender<MonitorEvent>,
}

impl MldQuerying {
    /// A switch that does not query MLD and has heard no querier yet.
    pub(super) fn new(timers: Timers, monitor: broadcast::Sender<MonitorEvent>) -> Self {
        Self {
            elections: BTreeMap::new(),
            enabled: false,
            version: MldVersion::V2,
            bridges: BTreeMap::new(),
            sender: None,
            timers,
            status: SharedStatus::default(),
            monitor,
        }
    }

    /// Whether this switch queries (`--querier`: both families), in which
    /// MLD version, and the bridge of each port (port name to bridge name).
    pub(super) fn configure(
        &mut self,
        enabled: bool,
        version: MldVersion,
        bridges: BTreeMap<String, String>,
        status: SharedStatus,
    ) -> Result<()> {
        if enabled {
            let sender = QuerySender::new().context("opening a raw socket to send MLD queries")?;
            self.sender = Some(sender);
        }
        self.elections.clear();
        self.enabled = enabled;
        self.version = version;
        self.bridges = bridges;
        self.status = status;
        Ok(())
    }

    /// Holds an election for each VLAN of `ports` and none other. Our
    /// address in a new one is that of its first port's bridge (or port).
    fn follow(&mut self, ports: &QueryPorts) {
        self.elections.retain(|vlan, _| ports.0.contains_key(vlan));
        for (&vlan, members) in &ports.0 {
            if self.elections.contains_key(&vlan) {
                continue;
            }
            let address = members
                .first()
                .and_then(|port| self.source_of(port.ifindex));
            if self.enabled {
                info!(vid = vlan, address = ?address, family = "ipv6", "mld querier: our address");
            }
            let querier = Querier::new(self.enabled, address, self.timers.clone(), monotonic_ns());
            self.elections.insert(
                vlan,
                MldElection {
                    querier,
                    address,
                    v1_querier_until: 0,
                    configured: self.version,
                },
            );
        }
    }

    fn source_of(&self, ifindex: u32) -> Option<Ipv6Addr> {
        let port = interface_name(ifindex);
        let bridge = self.bridges.get(&port).map(String::as_str);
        mld_query_source(&port, bridge, interface_mac(ifindex).ok())
    }

    /// Elects again the queriers `ROUTER_PORTS6` says were heard before this
    /// start, as `Querying::adopt` does for IGMP's, oldest first.
    pub(super) fn adopt(
        &mut self,
        routers: &[(RouterKey, RouterPort<[u8; 16]>)],
        ports: &QueryPorts,
    ) {
        self.follow(ports);
        let snooped = ports.ifindexes();
        let mut heard: Vec<(u16, Ipv6Addr, u64)> = routers
            .iter()
            .filter(|(key, _)| snooped.contains(&key.ifindex))
            .filter(|(_, entry)| entry.version != 0 && entry.querier != [0; 16])
            .map(|(key, entry)| (key.vlan, Ipv6Addr::from(entry.querier), entry.last_query_ns))
            .collect();
        heard.sort_by_key(|&(_, _, at)| at);
        let now = monotonic_ns();
        for (vlan, address, at) in heard {
            let vlan = ports.election_of(vlan);
            let Some(election) = self.elections.get_mut(&vlan) else {
                continue;
            };
            if let Some(QuerierAction::OtherQuerierElected(elected)) =
                election.querier.adopt(address, at, now)
            {
                info!(querier = %elected, vid = vlan, family = "ipv6", "mld querier: heard before this start");
            }
        }
        self.update_status();
    }

    /// Whether some VLAN has an MLD querier, this switch or another.
    pub(super) fn querier_known(&self) -> bool {
        self.elections
            .values()
            .any(|election| election.querier.current().is_some())
    }

    /// The other MLD querier of `vlan`'s LAN, if one is present at `now`.
    pub(super) fn other_querier(
        &self,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) -> Option<Ipv6Addr> {
        self.elections
            .get(&ports.election_of(vlan))?
            .querier
            .other_querier(now)
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.elections
            .values()
            .filter_map(|election| election.querier.next_deadline())
            .min()
    }

    /// An MLD query of `version` (`mld_version::*`) from `source` heard in
    /// `vlan`. A v1 query, from whichever querier, has our queries in v1
    /// while it may still be heard (RFC 3810 §8.3.1).
    pub(super) fn query_seen(
        &mut self,
        source: Ipv6Addr,
        version: u8,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) {
        self.follow(ports);
        let vlan = ports.election_of(vlan);
        let older_version_present = nanos(self.timers.group_membership_interval());
        let Some(election) = self.elections.get_mut(&vlan) else {
            return;
        };
        if version == mld_version::V1 && !source.is_unspecified() {
            if election.version(now) == MldVersion::V2 && self.enabled {
                info!(vid = vlan, querier = %source, family = "ipv6", "mld querier: an MLDv1 querier is present, querying in MLDv1");
            }
            election.v1_querier_until = now + older_version_present;
        }
        if let Some(action) = election.querier.on_query(source, now) {
            self.act(vlan, action, ports);
        }
    }

    /// A Done (or TO_IN {}) on `port` in `vlan` this switch, as querier,
    /// asks the port about with last listener queries.
    pub(super) fn leave_seen(
        &mut self,
        port: u32,
        vlan: u16,
        group: Ipv6Addr,
        now: u64,
        ports: &QueryPorts,
    ) {
        if let Some(election) = self.elections.get_mut(&ports.election_of(vlan)) {
            election.querier.on_leave(port, group, now);
        }
    }

    /// A BLOCK of `source` this switch, as querier, asks the port about
    /// (MLDv2: a multicast address and source specific query, §7.4.2).
    pub(super) fn source_leave_seen(
        &mut self,
        port: u32,
        vlan: u16,
        group: Ipv6Addr,
        source: Ipv6Addr,
        now: u64,
        ports: &QueryPorts,
    ) {
        if let Some(election) = self.elections.get_mut(&ports.election_of(vlan)) {
            election.querier.on_source_leave(port, group, source, now);
        }
    }

    /// Carries out whatever the elections have due now.
    pub(super) fn poll(&mut self, ports: &QueryPorts) {
        self.follow(ports);
        let now = monotonic_ns();
        let due: Vec<(u16, QuerierAction<Ipv6Addr>)> = self
            .elections
            .iter_mut()
            .flat_map(|(&vlan, election)| {
                election
                    .querier
                    .poll(now)
                    .into_iter()
                    .map(move |action| (vlan, action))
            })
            .collect();
        for (vlan, action) in due {
            self.act(vlan, action, ports);
        }
    }

    fn act(&mut self, vlan: u16, action: QuerierAction<Ipv6Addr>, ports: &QueryPorts) {
        match action {
            QuerierAction::SendGeneralQuery => {
                for port in ports.0.get(&vlan).into_iter().flatten() {
                    self.send(vlan, *port, None, None);
                }
            }
            QuerierAction::SendGroupQuery {
                port,
                group,
                source,
            } => {
                if let Some(port) = ports.port(vlan, port) {
                    self.send(vlan, port, Some(group), source);
                }
            }
            QuerierAction::BecameQuerier => {
                let address = self
                    .elections
                    .get(&vlan)
                    .and_then(|election| election.address);
                let address = address.unwrap_or(Ipv6Addr::UNSPECIFIED);
                info!(
                    vid = vlan,
                    family = "ipv6",
                    "mld querier: this switch is the MLD querier, from {address}"
                );
                self.announce(MonitorKind::Querier, address);
            }
            QuerierAction::OtherQuerierElected(address) => {
                info!(
                    vid = vlan,
                    family = "ipv6",
                    "mld querier: {address} is the MLD querier"
                );
                self.announce(MonitorKind::Querier, address);
            }
            QuerierAction::OtherQuerierSilent(address) => {
                info!(
                    vid = vlan,
                    family = "ipv6",
                    "mld querier: {address} fell silent"
                );
                self.announce(MonitorKind::QuerierExpire, address);
            }
        }
        self.update_status();
    }

    fn announce(&self, kind: MonitorKind, address: Ipv6Addr) {
        let mut event = MonitorEvent::new(kind, "*".into());
        event.address = Some(IpAddr::V6(address));
        let _ = self.monitor.send(event);
    }

    /// A general query (`group` none) or an address-specific one, from our
    /// address in `vlan`'s election, in the version it speaks now, on
    /// `port`, tagged where the VLAN leaves it tagged.
    fn send(&self, vlan: u16, port: QueryPort, group: Option<Ipv6Addr>, listed: Option<Ipv6Addr>) {
        let Some(sender) = &self.sender else {
            return;
        };
        let Some(election) = self.elections.get(&vlan) else {
            return;
        };
        let ifindex = port.ifindex;
        let Some(source) = election.address else {
            return warn!(port = %interface_name(ifindex), "mld querier: no link-local address to query from");
        };
        let mac = match interface_mac(ifindex) {
            Ok(mac) => mac,
            Err(error) => return warn!("mld querier: {}: {error}", interface_name(ifindex)),
        };
        let version = election.version(monotonic_ns());
        let mut frame = match group {
            None => mld_general_query(version, source, mac, &self.timers),
            Some(group) => {
                let sources: Vec<Ipv6Addr> = listed.into_iter().collect();
                mld_address_query(version, source, mac, group, &sources, &self.timers)
            }
        };
        if port.tagged {
            frame = tagged(&frame, vlan);
        }
        if let Err(error) = sender.send(ifindex, &frame) {
            warn!(
                "mld querier: sending on {}: {error}",
                interface_name(ifindex)
            );
        }
    }

    /// Tells the metrics who queries MLD: this switch if it does in any
    /// VLAN, and the querier of the first VLAN with one.
    fn update_status(&mut self) {
        let mut status = self.status.lock().expect("status lock");
        status.mld_is_querier = self
            .elections
            .values()
            .any(|election| election.querier.is_querier());
        status.mld_querier = self
            .elections
            .values()
            .find_map(|election| election.querier.current());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn untagged(ifindexes: &[u32]) -> QueryPorts {
        let ports = ifindexes
            .iter()
            .map(|&ifindex| QueryPort {
                ifindex,
                tagged: false,
            })
            .collect();
        QueryPorts([(0, ports)].into())
    }

    fn component(enabled: bool) -> MldQuerying {
        let (monitor, _) = broadcast::channel(16);
        let mut querying = MldQuerying::new(Timers::default(), monitor);
        // No sender: nothing leaves, the decisions are the same.
        querying.enabled = enabled;
        querying
    }

    #[test]
    fn without_our_querier_a_querier_heard_counts_for_the_other_querier_present_interval() {
        let ports = untagged(&[1]);
        let mut querying = component(false);
        assert_eq!(querying.other_querier(0, SECOND, &ports), None);
        let querier: Ipv6Addr = "fe80::1".parse().unwrap();
        querying.query_seen(querier, mld_version::V2, 0, SECOND, &ports);
        assert_eq!(querying.other_querier(0, 2 * SECOND, &ports), Some(querier));
        // 255 s by default (RFC 3810 §9.5).
        assert_eq!(
            querying.other_querier(0, 255 * SECOND, &ports),
            Some(querier)
        );
        assert_eq!(querying.other_querier(0, 256 * SECOND, &ports), None);
    }

    #[test]
    fn a_proxy_query_from_the_unspecified_address_names_no_querier() {
        let ports = untagged(&[1]);
        let mut querying = component(false);
        querying.query_seen(Ipv6Addr::UNSPECIFIED, mld_version::V1, 0, SECOND, &ports);
        assert_eq!(querying.other_querier(0, SECOND, &ports), None);
        assert_eq!(querying.elections[&0].version(SECOND), MldVersion::V2);
    }

    #[test]
    fn an_mldv1_query_has_us_query_in_v1_until_it_falls_silent() {
        let ports = untagged(&[1]);
        let mut querying = component(true);
        querying.query_seen(
            "fe80::1".parse().unwrap(),
            mld_version::V1,
            0,
            SECOND,
            &ports,
        );
        let election = &querying.elections[&0];
        assert_eq!(election.version(2 * SECOND), MldVersion::V1);
        // RFC 3810 §9.12: robustness × query interval + query response interval.
        assert_eq!(election.version(260 * SECOND), MldVersion::V1);
        assert_eq!(election.version(261 * SECOND), MldVersion::V2);
    }

    #[test]
    fn asked_for_mldv1_we_query_in_v1_whatever_we_hear() {
        let ports = untagged(&[1]);
        let mut querying = component(true);
        querying.version = MldVersion::V1;
        querying.query_seen(
            "fe80::1".parse().unwrap(),
            mld_version::V2,
            0,
            SECOND,
            &ports,
        );
        assert_eq!(querying.elections[&0].version(300 * SECOND), MldVersion::V1);
    }

    #[test]
    fn each_vlan_of_a_vlan_filtering_bridge_holds_its_own_election() {
        let port = |ifindex| QueryPort {
            ifindex,
            tagged: true,
        };
        let ports = QueryPorts([(10, vec![port(1)]), (20, vec![port(1)])].into());
        let mut querying = component(false);
        let querier: Ipv6Addr = "fe80::1".parse().unwrap();
        querying.query_seen(querier, mld_version::V2, 10, SECOND, &ports);
        assert_eq!(querying.other_querier(10, SECOND, &ports), Some(querier));
        assert_eq!(querying.other_querier(20, SECOND, &ports), None);
    }
}
