//! The querier's part of the loop: sending what the election decides and
//! telling the monitors and the metrics who queries.

use tracing::{info, warn};

use super::*;
use crate::querier::{
    general_query, group_and_source_query, group_query, interface_mac, QuerierAction,
};

impl Daemon {
    /// Sets how this switch queries; with `--querier` it starts querying now.
    pub fn with_querier(
        mut self,
        settings: QuerierSettings,
        status: SharedStatus,
    ) -> anyhow::Result<Self> {
        if settings.enabled {
            let sender = QuerySender::new().context("opening a raw socket to send queries")?;
            self.query_sender = Some(sender);
        }
        self.querier = Querier::new(
            settings.enabled,
            settings.address,
            self.timers.clone(),
            monotonic_ns(),
        );
        self.query_settings = settings;
        self.status = status;
        self.update_status();
        Ok(self)
    }

    /// Carries out whatever the querier has due now.
    pub(super) fn run_querier(&mut self) {
        for action in self.querier.poll(monotonic_ns()) {
            self.act(action);
        }
    }

    pub(super) fn act(&mut self, action: QuerierAction) {
        match action {
            QuerierAction::SendGeneralQuery => {
                for ifindex in self.ports.clone() {
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
                let mut event = MonitorEvent::new("querier", "*".into());
                event.address = Some(address);
                self.publish(event);
            }
            QuerierAction::OtherQuerierElected(address) => {
                info!("querier: {address} is the querier");
                let mut event = MonitorEvent::new("querier", "*".into());
                event.address = Some(address);
                self.publish(event);
            }
            QuerierAction::OtherQuerierSilent(address) => {
                info!("querier: {address} fell silent");
                let mut event = MonitorEvent::new("querier-expire", "*".into());
                event.address = Some(address);
                self.publish(event);
            }
        }
        self.update_status();
    }

    fn query_source(&self) -> Ipv4Addr {
        self.query_settings.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn send_general_query(&self, ifindex: u32) {
        let (version, source) = (self.query_settings.version, self.query_source());
        self.send_frame(ifindex, |mac| {
            general_query(version, source, mac, &self.timers)
        });
    }

    /// A group-specific query, or a group-and-source-specific one when a
    /// source is named and we speak IGMPv3 (a v2 querier asks about the group).
    fn send_group_query(&self, ifindex: u32, group: Ipv4Addr, listed: Option<Ipv4Addr>) {
        let (version, source) = (self.query_settings.version, self.query_source());
        self.send_frame(ifindex, |mac| match listed {
            Some(listed) if version == QueryVersion::V3 => {
                group_and_source_query(source, mac, group, &[listed], &self.timers)
            }
            _ => group_query(version, source, mac, group, &self.timers),
        });
    }

    fn send_frame(&self, ifindex: u32, build: impl FnOnce([u8; 6]) -> Vec<u8>) {
        let Some(sender) = &self.query_sender else {
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

    /// Tells the metrics, and the fast path (whose policies follow whether a querier is known).
    fn update_status(&mut self) {
        {
            let mut status = self.status.lock().expect("status lock");
            status.is_querier = self.querier.is_querier();
            status.querier = self.querier.current();
        }
        self.publish_forwarding();
    }
}
