//! Destination sets: one devmap per distinct set of ports that groups' data
//! goes to (members and router ports), shared by every group going there
//! (`GroupEntry::dest_set`). A broadcast into a set copies the frame for its
//! ports only, where a broadcast into `EGRESS_PORTS` copies it for every port
//! and lets the egress filter drop the copies nobody wants. Each entry still
//! carries the egress filter, which keeps the last word (IGMPv3 sources, STP).
//!
//! Only the daemon writes `DEST_SETS`, and beside it `SET_PORT_LISTS`, the
//! same sets as lists for the tc classifier; the program voids a group's
//! set when it adds a member port, and all of them when it learns a router port.
//!
//! Writing a slot is slow: the kernel waits for an RCU grace period on every
//! update of a map of maps (milliseconds on a VM). So a set nobody uses any
//! more keeps its slot, ready for the next group going to the same ports,
//! and a slot is rewritten only when no unused one is left; as groups lose
//! and gain members the same few sets come back again and again.
//!
//! Both families' groups name slots of the one `DEST_SETS`, and each
//! family's forwarding component has its own `DestinationSets`: each takes
//! its slots from a range of its own (`slots_of`), so neither ever rewrites
//! a slot the other's groups name. Why ranges and not one allocator shared
//! by both: the components stay apart (no state handed between them in the
//! loop), and a set two families share would need users counted across
//! both. What it costs: a family past its range broadcasts (`dest_set` 0,
//! always right) while the other's slots may sit free; IPv4 keeps three
//! quarters, its table's layout and its bench figures as they were.

use std::{
    collections::{HashMap, VecDeque},
    ops::Range,
};

use anyhow::{Context as _, Result};
use aya::{
    maps::{DevMapHash, Map, MapData},
    programs::ProgramFd,
};
use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH;
use igmp_common::{capacity, Address, Family, GroupKey, PortList};
use tracing::warn;

use crate::tables::ForwardingMaps;

/// A slot of `DEST_SETS` in use.
#[derive(Debug)]
struct Slot {
    index: u32,
    /// Groups whose entry names the slot.
    users: u32,
}

#[derive(Debug)]
pub(super) struct DestinationSets<A: Address> {
    by_ports: HashMap<Vec<u32>, Slot>,
    ports_of: HashMap<u32, Vec<u32>>,
    /// Each group's `dest_set` as last given. Kept here, not read back from
    /// `GROUPS`: the XDP program may have zeroed it there since.
    of_group: HashMap<GroupKey<A>, u32>,
    /// Slots never written, the lowest last.
    free: Vec<u32>,
    /// Slots whose set lost its last user, oldest first; a slot here may
    /// have been taken up again since (then its set has users).
    unused: VecDeque<u32>,
}

/// The slots of `DEST_SETS` (indexes, not `dest_set` values, which are
/// one more) a family's groups may name: IPv4 the first three quarters,
/// IPv6 the last.
pub(super) fn slots_of(family: Family) -> Range<u32> {
    let ipv6_from = capacity::DEST_SETS / 4 * 3;
    match family {
        Family::Ipv4 => 0..ipv6_from,
        Family::Ipv6 => ipv6_from..capacity::DEST_SETS,
    }
}

impl<A: Address> Default for DestinationSets<A> {
    fn default() -> Self {
        Self {
            by_ports: HashMap::new(),
            ports_of: HashMap::new(),
            of_group: HashMap::new(),
            free: slots_of(A::FAMILY).rev().collect(),
            unused: VecDeque::new(),
        }
    }
}

impl<A: Address> DestinationSets<A> {
    /// The `dest_set` for `group` sending to `ports` (sorted; a set only for
    /// two or more), which the caller writes at once: the group's previous
    /// slot is free for reuse from the next call on. 0 means broadcast to
    /// every port: one port or none, no egress filter to hand, no slot left.
    pub(super) fn assign(
        &mut self,
        maps: &mut ForwardingMaps<A>,
        egress: Option<&ProgramFd>,
        group: GroupKey<A>,
        ports: &[u32],
    ) -> u32 {
        let set = match egress {
            Some(egress) if ports.len() > 1 => {
                self.acquire(maps, egress, ports).unwrap_or_else(|error| {
                    warn!("{error:#}");
                    0
                })
            }
            _ => 0,
        };
        let previous = if set == 0 {
            self.of_group.remove(&group)
        } else {
            self.of_group.insert(group, set)
        };
        self.release(previous.unwrap_or(0));
        set
    }

    /// The `GroupEntry::dest_set` value for `ports` (sorted, at least two),
    /// one more user of it; 0 (broadcast to every port) when the set is too
    /// large or every slot is taken.
    fn acquire(
        &mut self,
        maps: &mut ForwardingMaps<A>,
        egress: &ProgramFd,
        ports: &[u32],
    ) -> Result<u32> {
        if ports.len() > capacity::SET_PORTS as usize {
            return Ok(0);
        }
        if let Some(slot) = self.by_ports.get_mut(ports) {
            slot.users += 1;
            return Ok(slot.index + 1);
        }
        let Some(index) = self.free.pop().or_else(|| self.reclaim()) else {
            return Ok(0);
        };
        if let Err(error) = write_set(maps, egress, index, ports) {
            self.free.push(index);
            return Err(error);
        }
        self.by_ports
            .insert(ports.to_vec(), Slot { index, users: 1 });
        self.ports_of.insert(index, ports.to_vec());
        Ok(index + 1)
    }

    /// The oldest slot whose set nobody uses, forgotten so it can be rewritten.
    fn reclaim(&mut self) -> Option<u32> {
        while let Some(index) = self.unused.pop_front() {
            let Some(ports) = self.ports_of.get(&index) else {
                continue;
            };
            if self.by_ports.get(ports).is_some_and(|slot| slot.users == 0) {
                let ports = self.ports_of.remove(&index).unwrap_or_default();
                self.by_ports.remove(&ports);
                return Some(index);
            }
        }
        None
    }

    /// One user less of `dest_set` (a `GroupEntry` value; 0 is none). A set
    /// without users keeps its slot until `reclaim` needs it.
    fn release(&mut self, dest_set: u32) {
        let Some(index) = dest_set.checked_sub(1) else {
            return;
        };
        let Some(ports) = self.ports_of.get(&index) else {
            return;
        };
        let Some(slot) = self.by_ports.get_mut(ports) else {
            return;
        };
        slot.users -= 1;
        if slot.users == 0 {
            self.unused.push_back(index);
        }
    }

    /// Forgets every set: at start, the slots of a previous daemon are free
    /// once the caller voided the entries naming them.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Slots holding a set.
    pub(super) fn len(&self) -> usize {
        self.by_ports.len()
    }
}

/// Makes a devmap of `ports`, each behind the egress filter, and puts it in slot `index`.
fn write_set<A: Address>(
    maps: &mut ForwardingMaps<A>,
    egress: &ProgramFd,
    index: u32,
    ports: &[u32],
) -> Result<()> {
    // Key: ifindex; value: ifindex and program fd (`bpf_devmap_val`).
    let definition = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_DEVMAP_HASH as u32,
        4,
        8,
        capacity::SET_PORTS,
        0,
    );
    let data = MapData::create(definition, "igmp_dest_set", None)
        .context("creating a destination set devmap")?;
    let mut set = DevMapHash::try_from(Map::DevMapHash(data))?;
    for &port in ports {
        set.insert(port, port, Some(egress), 0)
            .with_context(|| format!("adding ifindex {port} to a destination set"))?;
    }
    let mut list = PortList::default();
    list.ports[..ports.len()].copy_from_slice(ports);
    maps.set_port_lists
        .set(index, list, 0)
        .with_context(|| format!("SET_PORT_LISTS slot {index}"))?;
    maps.dest_sets
        .set(index, &set, 0)
        .with_context(|| format!("DEST_SETS slot {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_slots_cover_dest_sets_and_never_overlap() {
        let (ipv4, ipv6) = (slots_of(Family::Ipv4), slots_of(Family::Ipv6));
        assert_eq!((ipv4.start, ipv4.end), (0, 3072));
        assert_eq!((ipv6.start, ipv6.end), (3072, capacity::DEST_SETS));
        assert_eq!(ipv4.end, ipv6.start);
    }

    #[test]
    fn each_family_takes_its_lowest_free_slot_first() {
        let ipv4 = DestinationSets::<[u8; 4]>::default();
        let ipv6 = DestinationSets::<[u8; 16]>::default();
        assert_eq!(ipv4.free.last(), Some(&0));
        assert_eq!(ipv6.free.last(), Some(&3072));
        assert_eq!(ipv6.free.first(), Some(&(capacity::DEST_SETS - 1)));
        assert_eq!(
            ipv4.free.len() + ipv6.free.len(),
            capacity::DEST_SETS as usize
        );
    }
}
