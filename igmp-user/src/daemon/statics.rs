//! What the operator asks of the table (`igmp-snoop mdb`, the
//! configuration's `static-groups`): static memberships, deleted entries,
//! flushes. A static membership is EXCLUDE {} (every source) with
//! `membership_flags::STATIC`: expiry keeps it, and neither a leave, a
//! group-specific query nor fast leave removes it, as the bridge's
//! `permanent` entries. One the daemon made itself is not counted under the
//! group limits, which are against report floods.

use super::*;
use crate::{
    control::{Reply, Request},
    options::is_snooped_group,
};

impl Daemon {
    /// A request from the control socket.
    pub(super) fn on_request(&mut self, request: Request) -> Reply {
        let result = match request {
            Request::Add { port, group, vid } => self.add_static(&port, group, vid),
            Request::Del { port, group, vid } => self.delete_membership(&port, group, vid),
            Request::Flush { port } => self.flush_memberships(port.as_deref()),
        };
        match result {
            Ok(message) => {
                info!("{message}");
                Reply::done(message)
            }
            Err(error) => Reply::refused(format!("{error:#}")),
        }
    }

    /// Installs the configuration's static groups; one that cannot be is
    /// logged, and the others still go in.
    pub(super) fn install_static_groups(&mut self) {
        for (port, group) in std::mem::take(&mut self.static_groups) {
            match self.add_static(&port, group, 0) {
                Ok(message) => info!("{message} (configuration)"),
                Err(error) => warn!("static group {group} on {port}: {error:#}"),
            }
        }
    }

    /// The ifindex of `port`, which must be one this daemon snoops.
    fn snooped_port(&self, port: &str) -> Result<u32> {
        crate::interfaces::interface_index(port)
            .ok()
            .filter(|ifindex| self.ports.contains(ifindex))
            .with_context(|| format!("{port}: not a port this daemon snoops"))
    }

    /// The membership of `port` (a snooped one) in `group` on VLAN `vid`.
    fn request_key(&self, port: &str, group: Ipv4Addr, vid: u16) -> Result<MembershipKey> {
        Ok(MembershipKey {
            ifindex: self.snooped_port(port)?,
            vlan: vid,
            inner_vlan: 0,
            group: group.octets(),
        })
    }

    pub(super) fn add_static(&mut self, port: &str, group: Ipv4Addr, vid: u16) -> Result<String> {
        let key = self.request_key(port, group, vid)?;
        if !is_snooped_group(group) {
            anyhow::bail!(
                "{group}: not a group to snoop (a multicast address outside 224.0.0.0/24, which is always flooded)"
            );
        }
        let now = monotonic_ns();
        let entry = match self.tables.membership.get(&key, 0) {
            // A learned membership becomes static; its hosts' sources stay.
            Ok(mut learned) => {
                learned.flags |= membership_flags::STATIC;
                learned.flags &= !membership_flags::LEAVE_PENDING;
                learned.leave_ns = 0;
                learned
            }
            Err(_) => Membership {
                last_report_ns: now,
                created_ns: now,
                leave_ns: 0,
                last_reporter: [0; 4],
                version: igmp_version::V2,
                filter_mode: filter_mode::EXCLUDE,
                flags: membership_flags::STATIC | membership_flags::UNCOUNTED,
            },
        };
        self.tables
            .membership
            .insert(key, entry, 0)
            .with_context(|| format!("writing the static membership of {port} in {group}"))?;
        self.group_queries.forget(&key);
        self.register_group(key);
        let mut event = MonitorEvent::new(MonitorKind::Static, port.to_string());
        event.vid = Some(vid);
        event.grp = Some(group);
        self.publish(event);
        Ok(format!("static: port {port} vid {vid} group {group}"))
    }

    fn delete_membership(&mut self, port: &str, group: Ipv4Addr, vid: u16) -> Result<String> {
        let key = self.request_key(port, group, vid)?;
        if !self.remove_on_request(key) {
            anyhow::bail!("port {port} vid {vid} group {group}: no such membership");
        }
        Ok(format!("deleted: port {port} vid {vid} group {group}"))
    }

    fn flush_memberships(&mut self, port: Option<&str>) -> Result<String> {
        let only = port.map(|port| self.snooped_port(port)).transpose()?;
        let keys: Vec<MembershipKey> = self
            .tables
            .membership
            .keys()
            .filter_map(Result::ok)
            .filter(|key| only.is_none_or(|ifindex| key.ifindex == ifindex))
            .collect();
        let removed = keys
            .into_iter()
            .filter(|key| self.remove_on_request(*key))
            .count();
        Ok(match port {
            Some(port) => format!("flushed {removed} memberships of port {port}"),
            None => format!("flushed {removed} memberships"),
        })
    }

    /// Removes a membership, its sources and hosts, as an expiry would.
    fn remove_on_request(&mut self, key: MembershipKey) -> bool {
        if !self.tables.remove_membership(&key) {
            return false;
        }
        self.group_queries.forget(&key);
        self.unregister_if_unwanted(key);
        self.announce_expiry(key, Reason::Deleted);
        self.remove_sources_of(&HashSet::from([key]));
        true
    }
}
