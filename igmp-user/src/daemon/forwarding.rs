//! What the fast path reads from the daemon: which groups are registered
//! (`GROUPS`), which the host itself listens to, and the policy for the rest.

use std::collections::{BTreeSet, HashMap};

use igmp_common::{group_flags, unregistered, GroupEntry, GroupKey};

use super::*;

impl Daemon {
    /// Turns the fast path off (learning goes on): on a VLAN-filtering bridge.
    pub fn with_fast_path(mut self, on: bool) -> Self {
        if !on {
            warn!(
                "a port's bridge filters VLANs: forwarding is left to the kernel (the bridge's own \
                 per-VLAN snooping), snooping goes on"
            );
        }
        self.fast_path_off = !on;
        self.publish_forwarding();
        self
    }

    /// Sets the policy for unregistered groups and publishes it.
    pub fn with_unregistered(mut self, policy: UnregisteredPolicy) -> Self {
        self.unregistered = policy;
        self.publish_forwarding();
        self
    }

    /// Resolves the policy against the querier state, as the bridge does
    /// (`br_multicast_querier_exists`), and writes it where XDP reads it.
    /// Called again whenever that state changes: a querier elected, ours
    /// started, the other one fallen silent.
    pub(super) fn publish_forwarding(&mut self) {
        let querier_known = self.querier.current().is_some();
        let policy = match self.unregistered {
            UnregisteredPolicy::Auto if querier_known => unregistered::ROUTERS,
            UnregisteredPolicy::Auto | UnregisteredPolicy::Flood => unregistered::FLOOD,
            UnregisteredPolicy::Routers => unregistered::ROUTERS,
            UnregisteredPolicy::Drop => unregistered::DROP,
        };
        let overrides = self.port_set.as_ref().is_some_and(PortSet::has_overrides);
        let written =
            self.tables
                .write_forwarding(policy, querier_known, overrides, self.fast_path_off);
        if let Err(error) = written {
            warn!("{error:#}");
        }
    }

    /// Rebuilds `GROUPS` from the membership table (at start: the table may
    /// have grown while no daemon ran).
    /// Entries are overwritten in place and only then the unwanted removed:
    /// a group with members never leaves the fast path, even for an instant.
    /// They are first written with no destinations (broadcast, always
    /// right), which voids a previous daemon's sets; then worked out anew.
    pub(super) fn rebuild_groups(&mut self) {
        let mut wanted: HashMap<GroupKey, u32> = HashMap::new();
        for (key, _) in self.tables.memberships() {
            *wanted.entry(key.group_key()).or_default() += 1;
        }
        for (group, ports) in &wanted {
            let entry = GroupEntry {
                ports: *ports,
                ..GroupEntry::default()
            };
            if let Err(error) = self.tables.groups.insert(*group, entry, 0) {
                warn!("GROUPS full? {error}");
            }
        }
        let unwanted: Vec<GroupKey> = self
            .tables
            .groups
            .keys()
            .filter_map(Result::ok)
            .filter(|group| !wanted.contains_key(group))
            .collect();
        for group in unwanted {
            let _ = self.tables.groups.remove(&group);
        }
        self.destinations.clear();
        self.refresh_all_groups();
        self.local_groups.clear();
        self.refresh_local_listeners();
    }

    /// A port joined: data for the group is forwarded in XDP from now on.
    pub(super) fn register_group(&mut self, key: MembershipKey) {
        let routes = self.routes();
        self.refresh_group(key.group_key(), &routes);
    }

    /// A member is gone: the group stays registered while another port (or
    /// the host itself) still wants it.
    pub(super) fn unregister_if_unwanted(&mut self, key: MembershipKey) {
        let routes = self.routes();
        self.refresh_group(key.group_key(), &routes);
    }

    /// Writes the group's entry from the membership table and `routes`, or
    /// removes it when no port and not the host wants the group.
    fn refresh_group(&mut self, group: GroupKey, routes: &Routes) {
        let members: Vec<u32> = self
            .ports
            .iter()
            .copied()
            .filter(|&ifindex| {
                self.tables
                    .membership
                    .get(&group.on_port(ifindex), 0)
                    .is_ok()
            })
            .collect();
        let mut entry = self.tables.groups.get(&group, 0).unwrap_or_default();
        if members.is_empty() && entry.flags & group_flags::LOCAL_LISTENER == 0 {
            let _ = self.tables.groups.remove(&group);
            self.assign_destination_set(group, &[]);
            return;
        }
        let destinations = routes.destinations(&members);
        entry.ports = members.len() as u32;
        entry.router_epoch = routes.epoch;
        entry.sole_port = match destinations[..] {
            [only] => only,
            _ => 0,
        };
        entry.dest_set = self.assign_destination_set(group, &destinations);
        if let Err(error) = self.tables.groups.insert(group, entry, 0) {
            warn!("GROUPS full? {error}");
        }
    }

    fn assign_destination_set(&mut self, group: GroupKey, ports: &[u32]) -> u32 {
        let egress = self
            .port_set
            .as_ref()
            .and_then(|port_set| port_set.egress_filter().ok());
        self.destinations
            .assign(&mut self.tables, egress, group, ports)
    }

    /// Works out every group's destinations again: a router port came, went,
    /// or the daemon wrote one (the XDP program's epoch counts only its own).
    pub(super) fn refresh_all_groups(&mut self) {
        let routes = self.routes();
        let groups: Vec<GroupKey> = self.tables.groups.keys().filter_map(Result::ok).collect();
        for group in groups {
            self.refresh_group(group, &routes);
        }
        debug!(in_use = self.destinations.len(), "destination sets");
    }

    /// The router ports and the epoch they stand for. The epoch is read
    /// first: a router port learned meanwhile makes the entries written from
    /// this stale, never wrong.
    fn routes(&self) -> Routes {
        let epoch = self.tables.router_epoch.get(&0, 0).unwrap_or_default();
        let mut router_ports: Vec<u32> = self
            .tables
            .routers
            .keys()
            .filter_map(Result::ok)
            .map(|key| key.ifindex)
            .collect();
        router_ports.sort_unstable();
        router_ports.dedup();
        Routes {
            epoch,
            router_ports,
        }
    }

    /// Marks the groups the host itself joined (on any interface that is not
    /// a snooped port, the bridge device included): their frames go through
    /// the kernel so that local delivery never breaks.
    pub(super) fn refresh_local_listeners(&mut self) {
        let port_names: Vec<String> = self
            .ports
            .iter()
            .map(|&ifindex| interface_name(ifindex))
            .collect();
        let now: BTreeSet<[u8; 4]> = local_groups(&port_names);
        for group in now.difference(&self.local_groups.clone()) {
            let key = GroupKey {
                vlan: 0,
                inner_vlan: 0,
                group: *group,
            };
            let mut entry = self.tables.groups.get(&key, 0).unwrap_or_default();
            entry.flags |= group_flags::LOCAL_LISTENER;
            let _ = self.tables.groups.insert(key, entry, 0);
        }
        for group in self.local_groups.clone().difference(&now) {
            let key = GroupKey {
                vlan: 0,
                inner_vlan: 0,
                group: *group,
            };
            if let Ok(mut entry) = self.tables.groups.get(&key, 0) {
                entry.flags &= !group_flags::LOCAL_LISTENER;
                let _ = self.tables.groups.insert(key, entry, 0);
                self.unregister_if_unwanted(MembershipKey {
                    ifindex: 0,
                    vlan: 0,
                    inner_vlan: 0,
                    group: *group,
                });
            }
        }
        self.local_groups = now;
    }
}

/// Groups joined on interfaces other than `ports` and loopback, from
/// `/proc/net/igmp` (this network namespace's).
fn local_groups(ports: &[String]) -> BTreeSet<[u8; 4]> {
    let Ok(table) = std::fs::read_to_string("/proc/net/igmp") else {
        return BTreeSet::new();
    };
    parse_proc_net_igmp(&table, ports)
}

/// `/proc/net/igmp` lists each device (`<idx>\t<name> : ...`), then its
/// groups as tab-indented hex words in host byte order.
fn parse_proc_net_igmp(table: &str, ports: &[String]) -> BTreeSet<[u8; 4]> {
    let mut groups = BTreeSet::new();
    let mut device_is_local = false;
    for line in table.lines().skip(1) {
        if !line.starts_with('\t') {
            let name = line.split_whitespace().nth(1).unwrap_or("");
            device_is_local = name != "lo" && !ports.iter().any(|port| port == name);
            continue;
        }
        let Some(word) = line
            .split_whitespace()
            .next()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        let group = word.to_ne_bytes();
        // All-hosts is joined by every interface and is link-local anyway.
        if device_is_local && !(group[0] == 224 && group[1] == 0 && group[2] == 0) {
            groups.insert(group);
        }
    }
    groups
}

/// Where every group's data goes besides its members: the router ports.
struct Routes {
    /// `ROUTER_EPOCH`, read before the router ports.
    epoch: u32,
    router_ports: Vec<u32>,
}

impl Routes {
    /// The ports a group with `members` sends to, sorted, each once.
    fn destinations(&self, members: &[u32]) -> Vec<u32> {
        let mut ports: Vec<u32> = members.iter().chain(&self.router_ports).copied().collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
2\tbr0       :     2      V3\n\t\t\t\t030201EF     1 0:00000000\t\t0\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
3\tp1        :     1      V3\n\t\t\t\t090909EF     1 0:00000000\t\t0\n";

    #[test]
    fn groups_joined_on_the_bridge_are_local_and_on_ports_or_loopback_not() {
        let groups = parse_proc_net_igmp(TABLE, &["p1".into()]);
        assert_eq!(groups.into_iter().collect::<Vec<_>>(), vec![[239, 1, 2, 3]]);
    }
}
