//! The querier's part of the loop: sending what the election decides and
//! telling the monitors and the metrics who queries.

use log::{info, warn};

use super::*;
use crate::querier::{general_query, group_query, interface_mac, QuerierAction};

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
                    self.send_query(ifindex, None);
                }
            }
            QuerierAction::SendGroupQuery { port, group } => self.send_query(port, Some(group)),
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
        }
        self.update_status();
    }

    fn query_source(&self) -> Ipv4Addr {
        self.query_settings.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// A general query (`group` None) or a group-specific one, out of port `ifindex`.
    fn send_query(&self, ifindex: u32, group: Option<Ipv4Addr>) {
        let Some(sender) = &self.query_sender else {
            return;
        };
        let mac = match interface_mac(ifindex) {
            Ok(mac) => mac,
            Err(error) => return warn!("querier: {}: {error}", interface_name(ifindex)),
        };
        let (version, source) = (self.query_settings.version, self.query_source());
        let frame = match group {
            None => general_query(version, source, mac, &self.timers),
            Some(group) => group_query(version, source, mac, group, &self.timers),
        };
        if let Err(error) = sender.send(ifindex, &frame) {
            warn!("querier: sending on {}: {error}", interface_name(ifindex));
        }
    }

    fn update_status(&self) {
        let mut status = self.status.lock().expect("status lock");
        status.is_querier = self.querier.is_querier();
        status.querier = self.querier.current();
    }
}
