//! The pinned maps, opened by path and grouped by the component that writes
//! them (ARCHITECTURE.md, "Who writes each map"): the daemon hands each group
//! to its owner, and every CLI command that reads the table uses the same
//! handles, so what `show` prints is what the packet programs see.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use aya::maps::{
    Array, ArrayOfMaps, DevMapHash, HashMap, Map, MapData, PerCpuArray, PerCpuHashMap, RingBuf,
};
use igmp_common::{
    map_names, membership_flags, Address, DataCounters, GroupEntry, GroupKey, HostEntry, HostKey,
    Membership, MembershipKey, PortCounters, PortList, PortSettings, PortVlan, PortVlanKey,
    RouterKey, RouterPort, Settings, SourceEntry, SourceKey,
};

use crate::timers::Timers;

pub struct Tables {
    pub learned: LearnedMaps,
    pub forwarding: ForwardingMaps,
    /// MLD's maps, `None` under the pins of a build from before MLD (a new
    /// command against an older daemon's table).
    pub ipv6: Option<FamilyMaps<Ipv6>>,
    pub ports: PortMaps,
    pub statistics: StatisticsMaps,
}

/// MLD's address bytes.
pub type Ipv6 = [u8; 16];

/// One family's learned and forwarding maps (IPv6's: IPv4's are `Tables`'
/// own fields, as they were before there were two).
pub struct FamilyMaps<A: Address> {
    pub learned: LearnedMaps<A>,
    pub forwarding: ForwardingMaps<A>,
}

/// What the programs learn from the wire and the daemon ages: the daemon's
/// membership component owns these.
/// One set per address family (`igmp_common::Address`): IPv4's today.
pub struct LearnedMaps<A: Address = [u8; 4]> {
    pub membership: HashMap<MapData, MembershipKey<A>, Membership<A>>,
    pub sources: HashMap<MapData, SourceKey<A>, SourceEntry>,
    pub routers: HashMap<MapData, RouterKey, RouterPort<A>>,
    pub hosts: HashMap<MapData, HostKey<A>, HostEntry>,
    /// When each membership last heard an IGMPv1 report (MLDv1 for IPv6); read only here.
    pub v1_hosts: HashMap<MapData, MembershipKey<A>, u64>,
    /// Router ports the XDP program learned; read only here.
    pub router_epoch: Array<MapData, u32>,
    /// Entries the XDP program made, per port (0: all), both families
    /// together (one map: the limits count both); read only here.
    pub groups_added: HashMap<MapData, u32, u64>,
    /// Entries removed, per port (0: all), both families together; only
    /// the daemon writes it. Each family's `LearnedMaps` adds its own
    /// removals with a read-modify-write (`publish_removed`) from the
    /// daemon's one thread, so the two never interleave; the start's
    /// reconcile counts both families' tables (`Tables::reconcile_group_counts`).
    pub groups_removed: HashMap<MapData, u32, u64>,
    /// Removals counted but not yet added to `groups_removed`: a sweep of
    /// many expiries writes each port's count once (`publish_removed`).
    removed_pending: std::collections::BTreeMap<u32, u64>,
}

/// What the fast path does with what it does not forward to members, as the
/// forwarding component resolves it (the switch-wide part of `SETTINGS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathPolicy {
    /// Unregistered groups' data: `unregistered::*`, already resolved
    /// against the querier state.
    pub unregistered: u8,
    /// The same for IPv6 groups, resolved against MLD's querier state.
    pub unregistered6: u8,
    /// IGMP reports and leaves go to router ports only (once a querier is known).
    pub reports_to_routers: bool,
    /// MLD reports and Done go to router ports only (once an MLD querier is known).
    pub reports_to_routers6: bool,
    /// Some port has its own report or unregistered policy.
    pub port_overrides: bool,
    /// Data and reports are left to the kernel; learning goes on (a
    /// VLAN-filtering bridge with the program in XDP).
    pub fast_path_off: bool,
    /// Some port is in a VLAN-filtering bridge.
    pub vlan_bridges: bool,
}

impl FastPathPolicy {
    /// The policy `settings` holds.
    pub fn of(settings: &Settings) -> Self {
        Self {
            unregistered: settings.unregistered,
            unregistered6: settings.unregistered6,
            reports_to_routers: settings.reports_to_routers != 0,
            reports_to_routers6: settings.reports_to_routers6 != 0,
            port_overrides: settings.port_overrides != 0,
            fast_path_off: settings.fast_path_off != 0,
            vlan_bridges: settings.vlan_bridges != 0,
        }
    }
}

/// What the fast path forwards by, worked out by the daemon's forwarding
/// component, and the switch-wide settings written at start.
pub struct ForwardingMaps<A: Address = [u8; 4]> {
    pub groups: HashMap<MapData, GroupKey<A>, GroupEntry>,
    /// Devmaps of destination ports, shared by groups; only the daemon writes it.
    pub dest_sets: ArrayOfMaps<MapData, DevMapHash<MapData>>,
    /// The same sets as port lists, for tc; only the daemon writes it.
    pub set_port_lists: Array<MapData, PortList>,
    pub settings: Array<MapData, Settings>,
}

/// The snooped ports as the programs see them: written by `ports.rs`.
pub struct PortMaps {
    pub ports: HashMap<MapData, u32, PortSettings>,
    pub egress_ports: DevMapHash<MapData>,
    /// Every snooped port, for tc; only the daemon writes it.
    pub port_list: Array<MapData, u32>,
    /// The VLANs of ports in VLAN-filtering bridges; only the daemon writes it.
    pub port_vlans: HashMap<MapData, PortVlanKey, PortVlan>,
}

/// Counters the programs keep; user space only reads them (and drops a
/// vanished port's).
pub struct StatisticsMaps {
    pub counters: PerCpuHashMap<MapData, u32, PortCounters>,
    pub data_counters: PerCpuArray<MapData, DataCounters>,
}

/// The key of the whole-switch counts in `groups_added` / `groups_removed`.
pub const ALL_PORTS: u32 = 0;

/// The names of one family's maps under the pin directory.
struct FamilyNames {
    membership: &'static str,
    sources: &'static str,
    routers: &'static str,
    hosts: &'static str,
    v1_hosts: &'static str,
    router_epoch: &'static str,
    groups: &'static str,
}

const IPV4_NAMES: FamilyNames = FamilyNames {
    membership: map_names::MEMBERSHIP,
    sources: map_names::SOURCES,
    routers: map_names::ROUTER_PORTS,
    hosts: map_names::HOSTS,
    v1_hosts: map_names::V1_HOSTS,
    router_epoch: map_names::ROUTER_EPOCH,
    groups: map_names::GROUPS,
};

const IPV6_NAMES: FamilyNames = FamilyNames {
    membership: map_names::MEMBERSHIP6,
    sources: map_names::SOURCES6,
    routers: map_names::ROUTER_PORTS6,
    hosts: map_names::HOSTS6,
    v1_hosts: map_names::V1_HOSTS6,
    router_epoch: map_names::ROUTER_EPOCH6,
    groups: map_names::GROUPS6,
};

impl<A: Address> FamilyMaps<A> {
    fn open(pin_dir: &Path, names: &FamilyNames) -> Result<Self> {
        Ok(Self {
            learned: LearnedMaps {
                membership: open(pin_dir, names.membership)?,
                sources: open(pin_dir, names.sources)?,
                routers: open(pin_dir, names.routers)?,
                hosts: open(pin_dir, names.hosts)?,
                v1_hosts: open(pin_dir, names.v1_hosts)?,
                router_epoch: open(pin_dir, names.router_epoch)?,
                groups_added: open(pin_dir, map_names::GROUPS_ADDED)?,
                groups_removed: open(pin_dir, map_names::GROUPS_REMOVED)?,
                removed_pending: Default::default(),
            },
            forwarding: ForwardingMaps {
                groups: open(pin_dir, names.groups)?,
                dest_sets: open(pin_dir, map_names::DEST_SETS)?,
                set_port_lists: open(pin_dir, map_names::SET_PORT_LISTS)?,
                settings: open(pin_dir, map_names::SETTINGS)?,
            },
        })
    }
}

impl Tables {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        let FamilyMaps {
            learned,
            forwarding,
        } = FamilyMaps::open(pin_dir, &IPV4_NAMES)?;
        // A table pinned before MLD: IPv4 alone, as that build had it.
        let ipv6 = if pin_dir.join(map_names::MEMBERSHIP6).exists() {
            Some(FamilyMaps::open(pin_dir, &IPV6_NAMES)?)
        } else {
            None
        };
        Ok(Self {
            learned,
            forwarding,
            ipv6,
            ports: PortMaps {
                ports: open(pin_dir, map_names::PORTS)?,
                egress_ports: open(pin_dir, map_names::EGRESS_PORTS)?,
                port_list: open(pin_dir, map_names::PORT_LIST)?,
                port_vlans: open(pin_dir, map_names::PORT_VLANS)?,
            },
            statistics: StatisticsMaps {
                counters: open(pin_dir, map_names::COUNTERS)?,
                data_counters: open(pin_dir, map_names::DATA_COUNTERS)?,
            },
        })
    }

    /// Every membership entry, sorted by (port, VLAN, group).
    pub fn memberships(&self) -> Vec<(MembershipKey, Membership)> {
        self.learned.memberships()
    }

    pub fn source_entries(&self) -> Vec<(SourceKey, SourceEntry)> {
        self.learned.source_entries()
    }

    pub fn router_ports(&self) -> Vec<(RouterKey, RouterPort)> {
        self.learned.router_ports()
    }

    /// Every IPv6 membership entry, sorted by (port, VLAN, group); none
    /// under the pins of a build from before MLD.
    pub fn memberships6(&self) -> Vec<(MembershipKey<Ipv6>, Membership<Ipv6>)> {
        self.ipv6
            .as_ref()
            .map(|ipv6| ipv6.learned.memberships())
            .unwrap_or_default()
    }

    pub fn source_entries6(&self) -> Vec<(SourceKey<Ipv6>, SourceEntry)> {
        self.ipv6
            .as_ref()
            .map(|ipv6| ipv6.learned.source_entries())
            .unwrap_or_default()
    }

    pub fn router_ports6(&self) -> Vec<(RouterKey, RouterPort<Ipv6>)> {
        self.ipv6
            .as_ref()
            .map(|ipv6| ipv6.learned.router_ports())
            .unwrap_or_default()
    }

    /// Sets the removed counts so that added - removed is what the table
    /// holds, both families together (the limits count both): a daemon
    /// killed between a removal and its count would otherwise leave a port
    /// short of places for good. Run at start-up.
    pub fn reconcile_group_counts(&mut self) -> Result<()> {
        let mut held = self.learned.held_counts();
        if let Some(ipv6) = &self.ipv6 {
            for (ifindex, count) in ipv6.learned.held_counts() {
                *held.entry(ifindex).or_default() += count;
            }
        }
        let learned = &mut self.learned;
        let added: Vec<(u32, u64)> = learned.groups_added.iter().filter_map(Result::ok).collect();
        for (ifindex, added) in added {
            let holds = held.get(&ifindex).copied().unwrap_or(0);
            learned
                .groups_removed
                .insert(ifindex, added.saturating_sub(holds), 0)
                .context("writing the GROUPS_REMOVED map")?;
        }
        Ok(())
    }

    /// The timers the running daemon published, or the RFC defaults.
    pub fn settings(&self) -> Settings {
        self.forwarding.settings()
    }

    /// Per-port counters summed over CPUs.
    pub fn port_counters(&self) -> Vec<(u32, PortCounters)> {
        self.statistics.port_counters()
    }

    /// Data-path counters summed over CPUs.
    pub fn data_counters(&self) -> DataCounters {
        self.statistics.data_totals()
    }

    /// Groups each port holds against its limit, as the XDP program counts
    /// them (added - removed), by ifindex; 0 is the whole switch.
    pub fn groups_in_use(&self) -> Vec<(u32, u64)> {
        let learned = &self.learned;
        let mut rows: Vec<_> = learned
            .groups_added
            .iter()
            .filter_map(Result::ok)
            .map(|(ifindex, added)| {
                let removed = learned.groups_removed.get(&ifindex, 0).unwrap_or(0);
                (ifindex, added.saturating_sub(removed))
            })
            .collect();
        rows.sort_unstable();
        rows
    }
}

impl<A: Address> LearnedMaps<A> {
    /// Every membership entry, sorted by (port, VLAN, group).
    pub fn memberships(&self) -> Vec<(MembershipKey<A>, Membership<A>)> {
        sorted(&self.membership)
    }

    pub fn source_entries(&self) -> Vec<(SourceKey<A>, SourceEntry)> {
        sorted(&self.sources)
    }

    pub fn router_ports(&self) -> Vec<(RouterKey, RouterPort<A>)> {
        sorted(&self.routers)
    }

    /// Removes a membership entry and counts it as removed; the place it
    /// held under the group limits is given back by `publish_removed`.
    pub fn remove_membership(&mut self, key: &MembershipKey<A>) -> bool {
        let uncounted = self
            .membership
            .get(key, 0)
            .is_ok_and(|entry| entry.flags & membership_flags::UNCOUNTED != 0);
        if self.membership.remove(key).is_err() {
            return false;
        }
        // The v1 host present timer goes with the entry it belongs to.
        let _ = self.v1_hosts.remove(key);
        if uncounted {
            return true;
        }
        for counted in [key.ifindex, ALL_PORTS] {
            *self.removed_pending.entry(counted).or_default() += 1;
        }
        true
    }

    /// Adds the removals counted since the last call to `groups_removed`,
    /// where the XDP program sees them.
    pub fn publish_removed(&mut self) {
        for (counted, removed) in std::mem::take(&mut self.removed_pending) {
            let before = self.groups_removed.get(&counted, 0).unwrap_or(0);
            let _ = self.groups_removed.insert(counted, before + removed, 0);
        }
    }

    /// The entries this family's table holds against the group limits,
    /// per port and (`ALL_PORTS`) for the whole switch.
    fn held_counts(&self) -> std::collections::HashMap<u32, u64> {
        let mut held: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let counted = self
            .membership
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, entry)| entry.flags & membership_flags::UNCOUNTED == 0);
        for (key, _) in counted {
            *held.entry(key.ifindex).or_default() += 1;
            *held.entry(ALL_PORTS).or_default() += 1;
        }
        held
    }
}

impl<A: Address> ForwardingMaps<A> {
    /// Publishes the timers in force for the CLI's countdowns, and the
    /// switch-wide group limit for the XDP program.
    pub fn write_settings(&mut self, timers: &Timers, max_groups: u32) -> Result<()> {
        let settings = Settings {
            group_membership_interval_ms: millis(timers.group_membership_interval()),
            last_member_query_time_ms: millis(timers.last_member_query_time()),
            router_timeout_ms: millis(timers.router_timeout),
            written: 1,
            max_groups,
            ..self.settings()
        };
        self.settings
            .set(0, settings, 0)
            .context("writing the SETTINGS map")
    }

    /// Says whether some port is in a VLAN-filtering bridge, the rest of
    /// `SETTINGS` as it is.
    pub fn write_vlan_bridges(&mut self, present: bool) -> Result<()> {
        let settings = Settings {
            vlan_bridges: u8::from(present),
            ..self.settings()
        };
        self.settings
            .set(0, settings, 0)
            .context("writing the SETTINGS map")
    }

    /// Publishes what the fast path does (`FastPathPolicy`).
    pub fn write_forwarding(&mut self, policy: FastPathPolicy) -> Result<()> {
        let settings = Settings {
            unregistered: policy.unregistered,
            unregistered6: policy.unregistered6,
            reports_to_routers: u8::from(policy.reports_to_routers),
            reports_to_routers6: u8::from(policy.reports_to_routers6),
            port_overrides: u8::from(policy.port_overrides),
            fast_path_off: u8::from(policy.fast_path_off),
            vlan_bridges: u8::from(policy.vlan_bridges),
            ..self.settings()
        };
        self.settings
            .set(0, settings, 0)
            .context("writing the SETTINGS map")
    }

    /// The timers the running daemon published, or the RFC defaults.
    pub fn settings(&self) -> Settings {
        let stored = self.settings.get(&0, 0).unwrap_or_default();
        if stored.written != 0 {
            return stored;
        }
        // No daemon published its timers yet: the RFC defaults, and whatever
        // forwarding policy is stored.
        let defaults = Timers::default();
        Settings {
            group_membership_interval_ms: millis(defaults.group_membership_interval()),
            last_member_query_time_ms: millis(defaults.last_member_query_time()),
            router_timeout_ms: millis(defaults.router_timeout),
            ..stored
        }
    }
}

impl PortMaps {
    /// Makes `PORT_VLANS` hold `vlans` for port `ifindex` (VLAN, and how it
    /// leaves the port), and nothing else for it. New entries go in before
    /// old ones go, so a VLAN the port keeps never looks absent.
    pub fn write_port_vlans(&mut self, ifindex: u32, vlans: &[(u16, PortVlan)]) -> Result<()> {
        for (vlan, entry) in vlans {
            self.port_vlans
                .insert(PortVlanKey::new(ifindex, *vlan), entry, 0)
                .with_context(|| format!("ifindex {ifindex}: writing VLAN {vlan} to PORT_VLANS"))?;
        }
        let stale: Vec<PortVlanKey> = self
            .port_vlans
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .filter(|key| !vlans.iter().any(|(vlan, _)| *vlan == key.vlan))
            .collect();
        for key in stale {
            let _ = self.port_vlans.remove(&key);
        }
        Ok(())
    }

    /// Empties `PORT_VLANS` of every port but `ports`.
    pub fn keep_port_vlans_of(&mut self, ports: &[u32]) {
        let stale: Vec<PortVlanKey> = self
            .port_vlans
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !ports.contains(&key.ifindex))
            .collect();
        for key in stale {
            let _ = self.port_vlans.remove(&key);
        }
    }

    /// Makes `PORT_LIST` hold `ports` from index 0 on, 0 after the last.
    pub fn write_port_list(&mut self, ports: &[u32]) -> Result<()> {
        let capacity = self.port_list.len();
        if ports.len() >= capacity as usize {
            anyhow::bail!("{} ports: PORT_LIST holds {}", ports.len(), capacity - 1);
        }
        // The end marker first: a reader meanwhile sees a shorter list, never a stale port past the end.
        self.port_list.set(ports.len() as u32, 0, 0)?;
        for (index, port) in ports.iter().enumerate().rev() {
            self.port_list.set(index as u32, port, 0)?;
        }
        Ok(())
    }
}

impl StatisticsMaps {
    /// Data-path counters summed over CPUs.
    pub fn data_totals(&self) -> DataCounters {
        let mut total = DataCounters::default();
        if let Ok(per_cpu) = self.data_counters.get(&0, 0) {
            for block in per_cpu.iter() {
                for (sum, value) in total.frames.iter_mut().zip(block.frames) {
                    *sum += value;
                }
            }
        }
        total
    }

    /// Per-port counters summed over CPUs.
    pub fn port_counters(&self) -> Vec<(u32, PortCounters)> {
        let mut rows: Vec<_> = self
            .counters
            .iter()
            .filter_map(Result::ok)
            .map(|(ifindex, per_cpu)| (ifindex, sum_counters(per_cpu.iter())))
            .collect();
        rows.sort_by_key(|(ifindex, _)| *ifindex);
        rows
    }
}

/// Every entry of a hash map, sorted by key.
fn sorted<K, V>(map: &HashMap<MapData, K, V>) -> Vec<(K, V)>
where
    K: aya::Pod + Ord,
    V: aya::Pod,
{
    let mut rows: Vec<_> = map.iter().filter_map(Result::ok).collect();
    rows.sort_by_key(|(key, _)| *key);
    rows
}

/// The events ring buffer (one reader: the daemon).
pub fn open_events(pin_dir: &Path) -> Result<RingBuf<MapData>> {
    open(pin_dir, map_names::EVENTS)
}

/// MLD's events ring buffer (one reader: the daemon).
pub fn open_events6(pin_dir: &Path) -> Result<RingBuf<MapData>> {
    open(pin_dir, map_names::EVENTS6)
}

fn open<T>(pin_dir: &Path, name: &str) -> Result<T>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path: PathBuf = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| {
        let why = match std::fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                "permission denied (the pins are root's: run as root)".to_string()
            }
            Ok(_) => "cannot open this pinned map".to_string(),
            Err(_) => format!(
                "no pinned map (is `igmp-snoop run` running with --pin-dir {}?)",
                pin_dir.display()
            ),
        };
        format!("{}: {why}", path.display())
    })?;
    let map =
        Map::from_map_data(data).with_context(|| format!("{}: unusable map", path.display()))?;
    T::try_from(map)
        .with_context(|| format!("{}: not the map this version expects", path.display()))
}

fn sum_counters<'a>(per_cpu: impl Iterator<Item = &'a PortCounters>) -> PortCounters {
    let mut total = PortCounters::default();
    for block in per_cpu {
        for (sum, value) in total.messages.iter_mut().zip(block.messages) {
            *sum += value;
        }
        for (sum, value) in total.drops.iter_mut().zip(block.drops) {
            *sum += value;
        }
    }
    total
}

fn millis(duration: std::time::Duration) -> u32 {
    duration.as_millis().min(u128::from(u32::MAX)) as u32
}
