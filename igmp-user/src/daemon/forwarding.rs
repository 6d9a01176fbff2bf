//! The forwarding component: it owns what the fast path reads from the
//! daemon: which groups are registered and where their data goes
//! (`GROUPS`, with the destination sets of `destinations.rs`), which groups
//! the host itself listens to, and the policy for the rest (`SETTINGS`).
//! It reads no other component's maps: the loop hands it each group's
//! member ports and the router ports (`Routes`).
//!
//! There is one per family. `SETTINGS` is the switch's, not a family's:
//! only IPv4's writes it (`publish_policy`, `set_vlan_bridges`); the loop
//! never calls those on IPv6's. The fast path floods unregistered IPv6
//! groups and passes MLD reports to the kernel whatever the policy.

use std::collections::{BTreeSet, HashMap};

use aya::programs::ProgramFd;
use igmp_common::{group_flags, Address, GroupEntry, GroupKey, MembershipKey};
use tracing::{debug, warn};

use super::{destinations::DestinationSets, Routes};
use crate::{
    options::UnregisteredPolicy,
    tables::{FastPathPolicy, ForwardingMaps},
};

/// One per address family: `A` is the family's address bytes.
pub(super) struct Forwarding<A: HostGroups> {
    maps: ForwardingMaps<A>,
    /// The devmaps of the groups' destination ports.
    destinations: DestinationSets<A>,
    /// The egress filter every destination set's entries carry; none
    /// before the ports are attached (then every group broadcasts).
    egress: Option<ProgramFd>,
    unregistered: UnregisteredPolicy,
    /// Whether some port has its own report or unregistered-group policy.
    port_overrides: bool,
    /// Some port is in a VLAN-filtering bridge.
    vlan_bridges: bool,
    /// The hook tags each copy as its port's VLAN says (tc).
    tags_per_port: bool,
    /// Groups the host itself listens to (flagged in `GROUPS`).
    local_groups: BTreeSet<A>,
}

/// The groups the host itself joined, as each family's kernel lists them.
pub(super) trait HostGroups: Address {
    /// Groups joined on interfaces other than `ports` and loopback.
    fn host_groups(ports: &[String]) -> BTreeSet<Self>;
}

impl HostGroups for [u8; 4] {
    fn host_groups(ports: &[String]) -> BTreeSet<Self> {
        local_groups(ports)
    }
}

impl HostGroups for [u8; 16] {
    fn host_groups(ports: &[String]) -> BTreeSet<Self> {
        let Ok(table) = std::fs::read_to_string("/proc/net/igmp6") else {
            return BTreeSet::new();
        };
        parse_proc_net_igmp6(&table, ports)
    }
}

impl<A: HostGroups> Forwarding<A> {
    pub(super) fn new(maps: ForwardingMaps<A>) -> Self {
        Self {
            maps,
            destinations: DestinationSets::default(),
            egress: None,
            unregistered: UnregisteredPolicy::default(),
            port_overrides: false,
            vlan_bridges: false,
            tags_per_port: false,
            local_groups: BTreeSet::new(),
        }
    }

    /// Says whether some port is in a VLAN-filtering bridge, and whether the
    /// hook tags each copy as its port's VLAN says (tc does, XDP does not:
    /// there the fast path is off and learning goes on).
    pub(super) fn set_vlan_bridges(&mut self, present: bool, tags_per_port: bool) {
        if present && !tags_per_port {
            warn!(
                "a port's bridge filters VLANs and XDP cannot tag each copy as its port's VLAN \
                 says: forwarding is left to the kernel (the bridge's own per-VLAN snooping), \
                 snooping goes on; the tc classifier (--attach tc or auto) forwards there"
            );
        }
        self.vlan_bridges = present;
        self.tags_per_port = tags_per_port;
        // Now, not with the first policy: until the program reads it, it
        // learns untagged joins on a VLAN-filtering port in VLAN 0, not the
        // port's PVID. The policy waits for the querier state (a restart
        // must not flood), this need not.
        if let Err(error) = self.maps.write_vlan_bridges(present) {
            warn!("{error:#}");
        }
    }

    pub(super) fn set_unregistered(&mut self, policy: UnregisteredPolicy) {
        self.unregistered = policy;
    }

    /// The ports' egress filter, and whether some port overrides a policy.
    pub(super) fn set_ports(&mut self, egress: Option<ProgramFd>, port_overrides: bool) {
        self.egress = egress;
        self.port_overrides = port_overrides;
    }

    /// Resolves the policy against the querier state, as the bridge does
    /// (`br_multicast_querier_exists`), and writes it where XDP reads it.
    /// Called again whenever that state changes: a querier elected, ours
    /// started, the other one fallen silent.
    pub(super) fn publish_policy(&mut self, querier_known: bool, mld_querier_known: bool) {
        let written = self.maps.write_forwarding(FastPathPolicy {
            unregistered: self.unregistered.resolved(querier_known).into(),
            unregistered6: self.unregistered.resolved(mld_querier_known).into(),
            reports_to_routers: querier_known,
            reports_to_routers6: mld_querier_known,
            port_overrides: self.port_overrides,
            fast_path_off: self.vlan_bridges && !self.tags_per_port,
            vlan_bridges: self.vlan_bridges,
        });
        if let Err(error) = written {
            warn!("{error:#}");
        }
    }

    /// Rewrites `GROUPS` for the groups `members` counts (at start: the table
    /// may have grown while no daemon ran); hands back every group, whose
    /// destinations the caller then works out.
    /// Entries are overwritten in place and only then the unwanted removed:
    /// a group with members never leaves the fast path, even for an instant.
    /// They are first written with no destinations (broadcast, always
    /// right), which voids a previous daemon's sets.
    pub(super) fn rebuild(&mut self, members: &[MembershipKey<A>]) -> Vec<GroupKey<A>> {
        let mut wanted: HashMap<GroupKey<A>, u32> = HashMap::new();
        for key in members {
            *wanted.entry(key.group_key()).or_default() += 1;
        }
        for (group, ports) in &wanted {
            let entry = GroupEntry {
                ports: *ports,
                ..GroupEntry::default()
            };
            if let Err(error) = self.maps.groups.insert(*group, entry, 0) {
                warn!("GROUPS full? {error}");
            }
        }
        let unwanted: Vec<GroupKey<A>> = self
            .groups()
            .into_iter()
            .filter(|group| !wanted.contains_key(group))
            .collect();
        for group in unwanted {
            let _ = self.maps.groups.remove(&group);
        }
        self.destinations.clear();
        self.local_groups.clear();
        self.groups()
    }

    /// Every group with an entry.
    pub(super) fn groups(&self) -> Vec<GroupKey<A>> {
        self.maps.groups.keys().filter_map(Result::ok).collect()
    }

    /// Writes the group's entry from its member ports, whether each takes
    /// every source, and `routes`, or removes it when no port and not the
    /// host wants the group.
    pub(super) fn refresh_group(
        &mut self,
        group: GroupKey<A>,
        members: &[u32],
        every_source: bool,
        routes: &Routes,
    ) {
        let mut entry = self.maps.groups.get(&group, 0).unwrap_or_default();
        if members.is_empty() && entry.flags & group_flags::LOCAL_LISTENER == 0 {
            let _ = self.maps.groups.remove(&group);
            self.assign_destination_set(group, &[]);
            return;
        }
        let destinations = routes.destinations(&group, members);
        entry.ports = members.len() as u32;
        entry.router_epoch = routes.epoch;
        entry.sole_port = match destinations[..] {
            [only] => only,
            _ => 0,
        };
        entry.dest_set = self.assign_destination_set(group, &destinations);
        // Router ports take every source; member ports as `every_source` says.
        if every_source {
            entry.flags |= group_flags::EVERY_SOURCE;
        } else {
            entry.flags &= !group_flags::EVERY_SOURCE;
        }
        if let Err(error) = self.maps.groups.insert(group, entry, 0) {
            warn!("GROUPS full? {error}");
        }
    }

    fn assign_destination_set(&mut self, group: GroupKey<A>, ports: &[u32]) -> u32 {
        self.destinations
            .assign(&mut self.maps, self.egress.as_ref(), group, ports)
    }

    /// Logs how many destination sets are in use, after a refresh of every group.
    pub(super) fn log_destination_sets(&self) {
        debug!(in_use = self.destinations.len(), "destination sets");
    }

    /// Marks the groups the host itself joined (on any interface that is not
    /// one of `ports`, the bridge device included): their frames go through
    /// the kernel so that local delivery never breaks. Hands back the groups
    /// the host left, whose entries the caller works out again.
    pub(super) fn refresh_local_listeners(&mut self, ports: &[String]) -> Vec<GroupKey<A>> {
        let now = A::host_groups(ports);
        for group in now.difference(&self.local_groups) {
            let key = GroupKey::untagged(*group);
            let mut entry = self.maps.groups.get(&key, 0).unwrap_or_default();
            entry.flags |= group_flags::LOCAL_LISTENER;
            let _ = self.maps.groups.insert(key, entry, 0);
        }
        let mut left = Vec::new();
        for group in self.local_groups.difference(&now) {
            let key = GroupKey::untagged(*group);
            if let Ok(mut entry) = self.maps.groups.get(&key, 0) {
                entry.flags &= !group_flags::LOCAL_LISTENER;
                let _ = self.maps.groups.insert(key, entry, 0);
                left.push(key);
            }
        }
        self.local_groups = now;
        left
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

/// `/proc/net/igmp6` has one line per (device, group): ifindex, device,
/// the group as 32 hex digits in network order, users, flags, timer.
/// Left out, as the program never snoops them: ff02::1 (joined by every
/// interface, always flooded) and interface- or reserved-scope groups
/// (scope 0 or 1, RFC 4291 §2.7). Other link-scope groups stay: the host's
/// own solicited-node group must reach it for neighbour discovery.
fn parse_proc_net_igmp6(table: &str, ports: &[String]) -> BTreeSet<[u8; 16]> {
    const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut groups = BTreeSet::new();
    for line in table.lines() {
        let mut columns = line.split_whitespace();
        let (Some(_ifindex), Some(device), Some(hex)) =
            (columns.next(), columns.next(), columns.next())
        else {
            continue;
        };
        if device == "lo" || ports.iter().any(|port| port == device) {
            continue;
        }
        let Some(group) = hex_address(hex) else {
            continue;
        };
        let scope = group[1] & 0x0f;
        if group[0] == 0xff && scope > 1 && group != ALL_NODES {
            groups.insert(group);
        }
    }
    groups
}

/// 32 hex digits as 16 bytes.
fn hex_address(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut address = [0; 16];
    for (index, byte) in address.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(address)
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

    /// As a bridge host's /proc/net/igmp6 reads (Linux 6.x).
    const TABLE6: &str = "\
1    lo              ff020000000000000000000000000001     1 0000000C 0
1    lo              ff010000000000000000000000000001     1 00000008 0
4    br0             ff0200000000000000000001ff3b1507     1 00000004 0
4    br0             ff0e0000000000000000000000001234     1 00000004 0
4    br0             ff020000000000000000000000000001     1 0000000C 0
4    br0             ff010000000000000000000000000001     1 00000008 0
4    br0             ff020000000000000000000000000002     1 00000004 0
5    p1              ff0e0000000000000000000000000042     1 00000004 0
";

    #[test]
    fn igmp6_groups_joined_on_the_bridge_are_local_and_all_nodes_and_interface_scope_not() {
        let groups = parse_proc_net_igmp6(TABLE6, &["p1".into()]);
        let shown: Vec<String> = groups
            .into_iter()
            .map(|group| std::net::Ipv6Addr::from(group).to_string())
            .collect();
        assert_eq!(shown, ["ff02::2", "ff02::1:ff3b:1507", "ff0e::1234"]);
    }

    #[test]
    fn igmp6_lines_that_are_not_one_group_are_skipped() {
        let table =
            "4 br0 ff0e00000000000000000000000012\n4 br0 zz0e0000000000000000000000001234 1\n\n";
        assert!(parse_proc_net_igmp6(table, &[]).is_empty());
    }
}
