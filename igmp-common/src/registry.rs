//! Every pinned map, declared once: its name, the key and value sizes this
//! build pins it with, who writes it, and what kind of data it holds, which
//! decides what a start does when it finds the map pinned by a build with
//! another layout. The loader checks pinned maps against this list; the
//! README's map table and the bpftool test name the same maps.

use core::mem::size_of;

use crate::{
    map_names, DataCounters, GroupEntry, GroupKey, HostEntry, HostKey, Membership, MembershipKey,
    PortCounters, PortList, PortSettings, PortVlan, PortVlanKey, RouterKey, RouterPort, Settings,
    SourceEntry, SourceKey,
};

/// What a pinned map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// The table: kept across restarts and upgrades. A layout this build
    /// cannot read is refused, in one line, rather than lost.
    State,
    /// Worked out again by the daemon at every start (from the state, the
    /// ports and the settings): another layout is recreated.
    Derived,
    /// Counters: another layout is recreated, the counts restart at 0; a
    /// start is never refused for them.
    Statistics,
}

/// Who writes a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Program,
    Daemon,
    Both,
}

pub struct MapSpec {
    pub name: &'static str,
    /// Key and value sizes, or `None` where the kernel defines the value
    /// (a devmap's, a ring buffer's).
    pub layout: Option<(usize, usize)>,
    pub kind: MapKind,
    pub writer: Writer,
}

const fn spec(
    name: &'static str,
    key: usize,
    value: usize,
    kind: MapKind,
    writer: Writer,
) -> MapSpec {
    MapSpec {
        name,
        layout: Some((key, value)),
        kind,
        writer,
    }
}

const U32: usize = size_of::<u32>();
const U64: usize = size_of::<u64>();

/// The version of the state maps' layouts this build pins
/// (`map_names::LAYOUT_VERSION`). Raise it whenever a state map's key or
/// value changes, with the old layout and a migration step in
/// `igmp-user/src/layout.rs`. 0 is what builds before the version was
/// pinned left: their state layouts are version 1's.
pub const TABLE_LAYOUT: u32 = 1;

/// MLD's address bytes, for the sizes of its tables.
type Ipv6 = [u8; 16];

pub const MAPS: [MapSpec; 31] = {
    use MapKind::{Derived, State, Statistics};
    use Writer::{Both, Daemon, Program};
    [
        spec(map_names::LAYOUT_VERSION, U32, U32, State, Daemon),
        spec(
            map_names::MEMBERSHIP,
            size_of::<MembershipKey>(),
            size_of::<Membership>(),
            State,
            Both,
        ),
        spec(
            map_names::SOURCES,
            size_of::<SourceKey>(),
            size_of::<SourceEntry>(),
            State,
            Both,
        ),
        spec(
            map_names::ROUTER_PORTS,
            size_of::<RouterKey>(),
            size_of::<RouterPort>(),
            State,
            Both,
        ),
        spec(
            map_names::HOSTS,
            size_of::<HostKey>(),
            size_of::<HostEntry>(),
            State,
            Both,
        ),
        spec(
            map_names::V1_HOSTS,
            size_of::<MembershipKey>(),
            U64,
            State,
            Both,
        ),
        spec(
            map_names::MEMBERSHIP6,
            size_of::<MembershipKey<Ipv6>>(),
            size_of::<Membership<Ipv6>>(),
            State,
            Both,
        ),
        spec(
            map_names::SOURCES6,
            size_of::<SourceKey<Ipv6>>(),
            size_of::<SourceEntry>(),
            State,
            Both,
        ),
        spec(
            map_names::ROUTER_PORTS6,
            size_of::<RouterKey>(),
            size_of::<RouterPort<Ipv6>>(),
            State,
            Both,
        ),
        spec(
            map_names::HOSTS6,
            size_of::<HostKey<Ipv6>>(),
            size_of::<HostEntry>(),
            State,
            Both,
        ),
        spec(
            map_names::V1_HOSTS6,
            size_of::<MembershipKey<Ipv6>>(),
            U64,
            State,
            Both,
        ),
        spec(map_names::ROUTER_EPOCH6, U32, U32, State, Program),
        spec(
            map_names::GROUPS6,
            size_of::<GroupKey<Ipv6>>(),
            size_of::<GroupEntry>(),
            Derived,
            Both,
        ),
        // Values are program fds.
        spec(map_names::MLD_XDP, U32, U32, Derived, Daemon),
        spec(map_names::MLD_TC, U32, U32, Derived, Daemon),
        MapSpec {
            name: map_names::EVENTS6,
            layout: None,
            kind: Derived,
            writer: Program,
        },
        spec(map_names::GROUPS_ADDED, U32, U64, State, Program),
        spec(map_names::GROUPS_REMOVED, U32, U64, State, Daemon),
        spec(map_names::REPORT_RATE, U32, U64, State, Program),
        spec(map_names::ROUTER_EPOCH, U32, U32, State, Program),
        spec(
            map_names::GROUPS,
            size_of::<GroupKey>(),
            size_of::<GroupEntry>(),
            Derived,
            Both,
        ),
        // Values are inner map fds.
        spec(map_names::DEST_SETS, U32, U32, Derived, Daemon),
        spec(
            map_names::SET_PORT_LISTS,
            U32,
            size_of::<PortList>(),
            Derived,
            Daemon,
        ),
        spec(map_names::PORT_LIST, U32, U32, Derived, Daemon),
        spec(
            map_names::PORT_VLANS,
            size_of::<PortVlanKey>(),
            size_of::<PortVlan>(),
            Derived,
            Daemon,
        ),
        spec(
            map_names::PORTS,
            U32,
            size_of::<PortSettings>(),
            Derived,
            Daemon,
        ),
        spec(
            map_names::SETTINGS,
            U32,
            size_of::<Settings>(),
            Derived,
            Daemon,
        ),
        MapSpec {
            name: map_names::EGRESS_PORTS,
            layout: None,
            kind: Derived,
            writer: Daemon,
        },
        MapSpec {
            name: map_names::EVENTS,
            layout: None,
            kind: Derived,
            writer: Program,
        },
        spec(
            map_names::COUNTERS,
            U32,
            size_of::<PortCounters>(),
            Statistics,
            Program,
        ),
        spec(
            map_names::DATA_COUNTERS,
            U32,
            size_of::<DataCounters>(),
            Statistics,
            Program,
        ),
    ]
};
