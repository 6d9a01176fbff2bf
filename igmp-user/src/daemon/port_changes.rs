//! Ports that vanish, come back or stop forwarding.

use super::*;

impl Daemon {
    /// An interface changed: ports that vanished lose their entries, ports
    /// that came back are attached again, blocked ports are flushed.
    pub(super) fn on_link(&mut self, note: &LinkNote) {
        debug!(
            ifindex = note.ifindex,
            removed = note.removed,
            stp_state = ?note.stp_state,
            "link note"
        );
        crate::interfaces::forget_interface_names();
        let Some(port_set) = self.port_set.as_mut() else {
            return;
        };
        let mut changes = port_set.resync(&mut self.tables);
        if let Some(state) = note.stp_state.filter(|_| !note.removed) {
            changes.extend(port_set.stp_state(note.ifindex, state, &mut self.tables));
        }
        let ports_changed = !changes.is_empty();
        for change in changes {
            info!("{change}");
            match change {
                PortChange::Gone { name, ifindex } | PortChange::Blocked { name, ifindex } => {
                    self.flush_port(ifindex);
                    self.publish(MonitorEvent::new(MonitorKind::PortDown, name));
                }
                PortChange::Back { name, .. } | PortChange::Unblocked { name, .. } => {
                    self.publish(MonitorEvent::new(MonitorKind::PortUp, name));
                }
            }
        }
        self.refresh_port_lists();
        if ports_changed {
            // Router ports went or came back with their ports.
            self.refresh_all_groups();
        }
    }

    /// Removes every entry of port `ifindex`, as the bridge does for a port
    /// that is deleted or stops forwarding.
    pub(super) fn flush_port(&mut self, ifindex: u32) {
        let groups: HashSet<MembershipKey> = self
            .tables
            .membership
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .collect();
        for key in &groups {
            self.tables.remove_membership(key);
            self.group_queries.forget(key);
            self.unregister_if_unwanted(*key);
        }
        self.remove_sources_of(&groups);
        let routers: Vec<RouterKey> = self
            .tables
            .routers
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .collect();
        for key in routers {
            let _ = self.tables.routers.remove(&key);
        }
        let _ = self.tables.counters.remove(&ifindex);
    }
}
