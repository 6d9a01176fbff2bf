//! The querier component: the election (`querier::Querier`), sending what
//! it decides out of its own raw socket, and telling the monitors and the
//! metrics who queries. At start it takes over the querier a previous daemon
//! knew, from the router ports it left pinned, so that the policies that
//! follow "a querier is known" survive a restart. It owns no map: the loop
//! tells the forwarding component when whether a querier is known may have
//! changed.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use igmp_common::{RouterKey, RouterPort};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{
    interfaces::interface_name,
    metrics::SharedStatus,
    monitor::{MonitorEvent, MonitorKind},
    querier::{
        general_query, group_and_source_query, group_query, interface_mac, Querier, QuerierAction,
        QuerierSettings, QuerySender, QueryVersion,
    },
    timers::{monotonic_ns, Timers},
};

pub(super) struct Querying {
    /// The querier election, and our queries when we win it.
    querier: Querier,
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
            querier: Querier::new(false, None, timers.clone(), monotonic_ns()),
            settings: QuerierSettings {
                enabled: false,
                version: QueryVersion::V2,
                address: None,
            },
            sender: None,
            timers,
            status: SharedStatus::default(),
            monitor,
        }
    }

    /// Sets how this switch queries; with `--querier` it starts querying now.
    pub(super) fn configure(
        &mut self,
        settings: QuerierSettings,
        status: SharedStatus,
    ) -> Result<()> {
        if settings.enabled {
            let sender = QuerySender::new().context("opening a raw socket to send queries")?;
            self.sender = Some(sender);
        }
        self.querier = Querier::new(
            settings.enabled,
            settings.address,
            self.timers.clone(),
            monotonic_ns(),
        );
        self.settings = settings;
        self.status = status;
        Ok(())
    }

    /// Elects again the queriers heard on the router ports before this start
    /// (`ROUTER_PORTS` keeps each one's address and when it last queried), as
    /// if their queries had just come: the querier stays known until its own
    /// other querier present interval runs out, as it would have without the
    /// restart. A querier heard on a port with router mode off left no entry,
    /// and is known again from its next query.
    pub(super) fn adopt(&mut self, routers: &[(RouterKey, RouterPort)], ports: &[u32]) {
        let now = monotonic_ns();
        for (address, heard) in queriers_heard(routers, ports) {
            if let Some(QuerierAction::OtherQuerierElected(elected)) =
                self.querier.adopt(address, heard, now)
            {
                let ago = Duration::from_nanos(now.saturating_sub(heard));
                info!(
                    querier = %elected,
                    heard_ago = ?ago,
                    "querier: {elected} is the querier, heard before this start"
                );
            }
        }
        self.update_status();
    }

    /// Whether a querier is known (this switch or another): the forwarding
    /// policies follow it.
    pub(super) fn querier_known(&self) -> bool {
        self.querier.current().is_some()
    }

    /// The other querier on the LAN, if one is present at `now`.
    pub(super) fn other_querier(&self, now: u64) -> Option<Ipv4Addr> {
        self.querier.other_querier(now)
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.querier.next_deadline()
    }

    /// A query heard on the wire; returns whether the election changed.
    pub(super) fn query_seen(&mut self, source: Ipv4Addr, now: u64, ports: &[u32]) -> bool {
        match self.querier.on_query(source, now) {
            Some(action) => {
                self.act(action, ports);
                true
            }
            None => false,
        }
    }

    /// A leave this switch, as querier, asks the port about.
    pub(super) fn leave_seen(&mut self, port: u32, group: Ipv4Addr, now: u64) {
        self.querier.on_leave(port, group, now);
    }

    /// A source leave this switch, as querier, asks the port about.
    pub(super) fn source_leave_seen(
        &mut self,
        port: u32,
        group: Ipv4Addr,
        source: Ipv4Addr,
        now: u64,
    ) {
        self.querier.on_source_leave(port, group, source, now);
    }

    /// Carries out whatever the querier has due now; returns whether it did anything.
    pub(super) fn poll(&mut self, ports: &[u32]) -> bool {
        let actions = self.querier.poll(monotonic_ns());
        let acted = !actions.is_empty();
        for action in actions {
            self.act(action, ports);
        }
        acted
    }

    fn act(&mut self, action: QuerierAction, ports: &[u32]) {
        match action {
            QuerierAction::SendGeneralQuery => {
                for &ifindex in ports {
                    self.send_general_query(ifindex);
                }
            }
            QuerierAction::SendGroupQuery {
                port,
                group,
                source,
            } => self.send_group_query(port, group, source),
            QuerierAction::BecameQuerier => {
                let address = self.query_source();
                info!("querier: this switch queries, from {address}");
                let mut event = MonitorEvent::new(MonitorKind::Querier, "*".into());
                event.address = Some(address.into());
                let _ = self.monitor.send(event);
            }
            QuerierAction::OtherQuerierElected(address) => {
                info!("querier: {address} is the querier");
                let mut event = MonitorEvent::new(MonitorKind::Querier, "*".into());
                event.address = Some(address.into());
                let _ = self.monitor.send(event);
            }
            QuerierAction::OtherQuerierSilent(address) => {
                info!("querier: {address} fell silent");
                let mut event = MonitorEvent::new(MonitorKind::QuerierExpire, "*".into());
                event.address = Some(address.into());
                let _ = self.monitor.send(event);
            }
        }
        self.update_status();
    }

    fn query_source(&self) -> Ipv4Addr {
        self.settings.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn send_general_query(&self, ifindex: u32) {
        let (version, source) = (self.settings.version, self.query_source());
        self.send_frame(ifindex, |mac| {
            general_query(version, source, mac, &self.timers)
        });
    }

    /// A group-specific query, or a group-and-source-specific one when a
    /// source is named and we speak IGMPv3 (a v2 querier asks about the group).
    fn send_group_query(&self, ifindex: u32, group: Ipv4Addr, listed: Option<Ipv4Addr>) {
        let (version, source) = (self.settings.version, self.query_source());
        self.send_frame(ifindex, |mac| match listed {
            Some(listed) if version == QueryVersion::V3 => {
                group_and_source_query(source, mac, group, &[listed], &self.timers)
            }
            _ => group_query(version, source, mac, group, &self.timers),
        });
    }

    fn send_frame(&self, ifindex: u32, build: impl FnOnce([u8; 6]) -> Vec<u8>) {
        let Some(sender) = &self.sender else {
            return;
        };
        let mac = match interface_mac(ifindex) {
            Ok(mac) => mac,
            Err(error) => return warn!("querier: {}: {error}", interface_name(ifindex)),
        };
        if let Err(error) = sender.send(ifindex, &build(mac)) {
            warn!("querier: sending on {}: {error}", interface_name(ifindex));
        }
    }

    /// Tells the metrics who queries.
    fn update_status(&mut self) {
        let mut status = self.status.lock().expect("status lock");
        status.is_querier = self.querier.is_querier();
        status.querier = self.querier.current();
    }
}

/// The queriers the router ports among `ports` heard, as (address, when it
/// last queried), oldest first so that electing them in turn ends as the
/// live election did. Entries made only by PIM hellos or by the operator
/// name no querier (version 0), nor do queries from 0.0.0.0. A PIM hello
/// after a query refreshes the entry's time too (the map keeps one time):
/// a router that both queries and speaks PIM is kept until one interval
/// after its last hello rather than its last query, never forgotten early.
fn queriers_heard(routers: &[(RouterKey, RouterPort)], ports: &[u32]) -> Vec<(Ipv4Addr, u64)> {
    let mut heard: Vec<(Ipv4Addr, u64)> = routers
        .iter()
        .filter(|(key, _)| ports.contains(&key.ifindex))
        .filter(|(_, entry)| entry.version != 0 && entry.querier != [0; 4])
        .map(|(_, entry)| (Ipv4Addr::from(entry.querier), entry.last_query_ns))
        .collect();
    heard.sort_by_key(|&(_, at)| at);
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
                (Ipv4Addr::new(10, 0, 0, 4), 10),
                (Ipv4Addr::new(10, 0, 0, 3), 20)
            ]
        );
    }
}
