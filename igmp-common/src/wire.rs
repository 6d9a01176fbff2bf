//! Map keys, map values and ring-buffer events.
//!
//! Every type that holds an address is generic over the address family's
//! bytes (`A: Address`, see `family.rs`), with IPv4 (`[u8; 4]`) as the
//! default: `MembershipKey` is IPv4's, `MembershipKey<[u8; 16]>` IPv6's.

use crate::{filter_mode, Address};

/// Key of the membership map: one entry per (port, VLAN, group).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipKey<A: Address = [u8; 4]> {
    /// Ingress port (the interface the report arrived on).
    pub ifindex: u32,
    /// Outer VLAN id (802.1Q, or the 802.1ad service tag); 0 when untagged.
    pub vlan: u16,
    /// Inner VLAN id of a double-tagged frame; 0 otherwise.
    pub inner_vlan: u16,
    /// Group address (RFC 2236 §2.4 / RFC 3376 §4.2.8 "Multicast Address").
    pub group: A,
}

/// Value of the membership map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Membership<A: Address = [u8; 4]> {
    /// CLOCK_MONOTONIC time of the last report that kept this group alive.
    pub last_report_ns: u64,
    /// CLOCK_MONOTONIC time the entry was created.
    pub created_ns: u64,
    /// CLOCK_MONOTONIC time of the last leave seen after `last_report_ns` (0: none).
    pub leave_ns: u64,
    /// Source address of the last report (RFC 4541 §2.1.1 host tracking).
    pub last_reporter: A,
    /// Lowest IGMP version heard for the group on this port (RFC 3376 §7.3.2 compatibility).
    pub version: u8,
    /// `filter_mode::INCLUDE` or `filter_mode::EXCLUDE` (RFC 3376 §6.2.1); v1/v2 are EXCLUDE {}.
    pub filter_mode: u8,
    /// `membership_flags::*`.
    pub flags: u16,
    /// What keeps an IPv6 entry free of implicit padding; nothing for IPv4.
    pub _pad: A::Pad,
}

/// Key of the source map: one entry per (port, VLAN, group, source) named in a v3 record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey<A: Address = [u8; 4]> {
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    pub group: A,
    /// Source address (RFC 3376 §4.2.12 "Source Address [i]").
    pub source: A,
}

/// Value of the source map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceEntry {
    /// CLOCK_MONOTONIC time of the last record naming this source.
    pub last_report_ns: u64,
    /// CLOCK_MONOTONIC time of the last BLOCK naming this source after `last_report_ns`.
    pub leave_ns: u64,
    /// `filter_mode::INCLUDE`: traffic from the source is wanted;
    /// `filter_mode::EXCLUDE`: the port's hosts asked not to receive it.
    pub mode: u8,
    /// `source_flags::*`.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// [`SourceEntry::stamp`] of the last record that named the source, of
    /// any type. In EXCLUDE mode an IS_EX or TO_EX record deletes every
    /// source it does not name (RFC 3376 §6.4: "Delete (X-A), Delete
    /// (Y-A)"); neither side can walk a group's sources per record, so a
    /// source last named before the group's last EXCLUDE record counts as
    /// deleted wherever it is read ([`SourceEntry::listed`]).
    pub named: u32,
}

impl SourceEntry {
    /// A CLOCK_MONOTONIC time in units of 2^16 ns (66 µs), as `named`
    /// keeps it: 32 bits wrap after 78 hours and `listed` compares within
    /// half of that, far more than a source outlives its last naming.
    #[inline(always)]
    pub fn stamp(ns: u64) -> u32 {
        (ns >> 16) as u32
    }

    /// Whether the source is still in its group's lists (RFC 3376 §6.4):
    /// in EXCLUDE mode, only if it was named at or after `excluded_ns`, the
    /// group's last EXCLUDE record (`Membership::last_report_ns`). Within
    /// the same stamp it counts as named: the error keeps a source.
    #[inline(always)]
    pub fn listed(&self, group_mode: u8, excluded_ns: u64) -> bool {
        group_mode != filter_mode::EXCLUDE
            || self.named.wrapping_sub(Self::stamp(excluded_ns)) as i32 >= 0
    }
}

/// Key of `PORT_VLANS`: a VLAN a port of a VLAN-filtering bridge is a member of.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortVlanKey {
    pub ifindex: u32,
    pub vlan: u16,
    pub _pad: u16,
}

impl PortVlanKey {
    #[inline(always)]
    pub fn new(ifindex: u32, vlan: u16) -> Self {
        Self {
            ifindex,
            vlan,
            _pad: 0,
        }
    }
}

/// Value of `PORT_VLANS`: how the VLAN's frames leave the port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortVlan {
    /// `port_vlan_flags::*`.
    pub flags: u8,
    pub _pad: [u8; 3],
}

/// Bits of [`PortVlan::flags`].
pub mod port_vlan_flags {
    /// The VLAN leaves the port untagged (`bridge vlan add ... untagged`).
    pub const UNTAGGED: u8 = 1 << 0;
}

/// Key of the router-port map: one entry per (port, VLAN) a query arrived on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterKey {
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
}

/// Value of the router-port map: what the last query (or PIM hello) on the port said.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterPort<A: Address = [u8; 4]> {
    /// CLOCK_MONOTONIC time of the last query or PIM hello.
    pub last_query_ns: u64,
    /// IP source of the last query: the querier (RFC 3376 §6.6.2); or of the last PIM hello.
    pub querier: A,
    /// Query version told apart by length and Max Resp Code (RFC 3376 §7.1); 0 for PIM only.
    pub version: u8,
    /// QRV, the querier's robustness variable (RFC 3376 §4.1.6); 0 before v3.
    pub robustness: u8,
    /// QQIC, the querier's query interval code (RFC 3376 §4.1.7); 0 before v3.
    pub qqic: u8,
    /// Max Resp Code of the last query (RFC 3376 §4.1.1; tenths of a second for v2).
    pub max_resp_code: u8,
    /// `router_flags::*`.
    pub flags: u8,
    pub _pad: [u8; 7],
    /// What keeps an IPv6 entry free of implicit padding; nothing for IPv4.
    pub _family_pad: A::Pad,
}

/// Bits of [`RouterPort::flags`].
pub mod router_flags {
    /// Configured by the operator (`--router-port` / `router = "permanent"`): never expires.
    pub const PERMANENT: u8 = 1 << 0;
    /// A PIM hello was heard on the port (RFC 4541 §2.1.1: multicast routers also speak PIM).
    pub const PIM: u8 = 1 << 1;
}

/// Per-port settings written by user space into the `PORTS` map (ifindex key).
/// The XDP program treats a port absent from the map as router mode `AUTO`
/// without host tracking, the bridge's defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSettings {
    /// `router_mode::*`, as the bridge's `multicast_router` port option.
    pub router_mode: u8,
    /// Non-zero: fast leave with explicit host tracking (reporters kept in `HOSTS`).
    pub fast_leave: u8,
    /// Non-zero while the bridge does not forward on the port (STP blocking,
    /// listening or disabled): nothing is learned from it, as on the bridge.
    pub blocked: u8,
    /// Non-zero: IGMP reports and leaves are sent out of this port too, not
    /// only out of router ports (`flood-reports`).
    pub flood_reports: u8,
    /// This port's policy for unregistered groups (`unregistered::*`), or
    /// `unregistered::FOLLOW_GLOBAL`.
    pub unregistered: u8,
    /// Non-zero: the port is in a VLAN-filtering bridge. Its frames belong
    /// to the bridge's VLANs (untagged ones to its PVID), only those the port
    /// is a member of (`PORT_VLANS`); the tc classifier tags each copy as
    /// the destination's VLAN egress says.
    pub vlan_filtering: u8,
    pub _pad: [u8; 2],
    /// Most groups the port may hold (0: no limit). A report for one more is
    /// refused; existing entries are never evicted.
    pub max_groups: u32,
    /// Reports and leaves accepted per second on the port (0: no limit);
    /// the excess is counted and dropped.
    pub report_rate: u32,
    /// How many reports may arrive back to back before the rate applies.
    pub report_burst: u32,
    /// The bridge VLAN untagged (and priority-tagged) frames belong to: the
    /// port's PVID on a VLAN-filtering bridge, 0 elsewhere. Learning keys
    /// them by it, as the bridge's own per-VLAN snooping does.
    pub pvid: u16,
    pub _reserved: u16,
}

impl Default for PortSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PortSettings {
    /// The bridge's defaults: a router port when queried, no fast leave, the
    /// global policies, no limits (the daemon writes its limits for every port).
    pub const DEFAULT: Self = {
        Self {
            router_mode: router_mode::AUTO,
            fast_leave: 0,
            blocked: 0,
            flood_reports: 0,
            unregistered: unregistered::FOLLOW_GLOBAL,
            vlan_filtering: 0,
            _pad: [0; 2],
            max_groups: 0,
            report_rate: 0,
            report_burst: 0,
            pvid: 0,
            _reserved: 0,
        }
    };
}

/// Values of [`PortSettings::router_mode`] (the bridge's multicast_router 0/1/2).
pub mod router_mode {
    /// Never a router port, whatever is heard on it.
    pub const OFF: u8 = 0;
    /// A router port while queries or PIM hellos are heard on it.
    pub const AUTO: u8 = 1;
    /// Always a router port.
    pub const PERMANENT: u8 = 2;
}

/// A [`router_mode`] code as user space matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterMode {
    Off,
    Auto,
    Permanent,
    /// A code this build does not know.
    Other(u8),
}

impl From<u8> for RouterMode {
    fn from(code: u8) -> Self {
        match code {
            router_mode::OFF => Self::Off,
            router_mode::AUTO => Self::Auto,
            router_mode::PERMANENT => Self::Permanent,
            other => Self::Other(other),
        }
    }
}

impl From<RouterMode> for u8 {
    fn from(mode: RouterMode) -> Self {
        match mode {
            RouterMode::Off => router_mode::OFF,
            RouterMode::Auto => router_mode::AUTO,
            RouterMode::Permanent => router_mode::PERMANENT,
            RouterMode::Other(code) => code,
        }
    }
}

impl RouterMode {
    /// As the configuration's `router` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Auto => "auto",
            Self::Permanent => "permanent",
            Self::Other(_) => "unknown",
        }
    }
}

/// Key of the host map: one reporter of a group on a fast-leave port (RFC 4541 §2.1.1, host tracking).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey<A: Address = [u8; 4]> {
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    pub group: A,
    /// The reporting host's IP address.
    pub host: A,
}

/// Value of the host map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// CLOCK_MONOTONIC time of the host's last report for the group.
    pub last_report_ns: u64,
}

/// What an [`Event`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A (port, VLAN, group) entry was created.
    NewMembership = 1,
    /// A leave for the group arrived (v2 leave, v3 TO_IN{}, or TO_IN in EXCLUDE mode).
    LeaveSeen = 2,
    /// A query arrived; `address` is the querier, `version` the query version.
    QuerySeen = 3,
    /// A (port, VLAN) became a router port.
    NewRouterPort = 4,
    /// A v3 source entry was created.
    NewSource = 5,
    /// A BLOCK_OLD_SOURCES named a source of the group; `address` is that source.
    SourceLeaveSeen = 6,
    /// A group-and-source-specific query (its `QuerySeen` came first) named
    /// `address` as a source of `group` (RFC 3376 §6.6.1).
    QuerySourceSeen = 7,
}

impl EventKind {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::NewMembership,
            2 => Self::LeaveSeen,
            3 => Self::QuerySeen,
            4 => Self::NewRouterPort,
            5 => Self::NewSource,
            6 => Self::SourceLeaveSeen,
            7 => Self::QuerySourceSeen,
            _ => return None,
        })
    }
}

/// A record in the events ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event<A: Address = [u8; 4]> {
    /// CLOCK_MONOTONIC time of the packet.
    pub timestamp_ns: u64,
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    /// Group the event is about (unspecified for general queries and router ports).
    pub group: A,
    /// IP source of the packet (reporter or querier), or the source named by a v3 record.
    pub address: A,
    /// IGMP version of the message.
    pub version: u8,
    /// v3 group record type (RFC 3376 §4.2.12), 0 otherwise.
    pub record_type: u8,
    /// Max Resp Code of a query (`QuerySeen`, `QuerySourceSeen`), 0 otherwise.
    pub max_resp_code: u8,
    /// `query_flags::*` of a `QuerySeen`, 0 otherwise.
    pub flags: u8,
}

/// Bits of [`Event::flags`] on a `QuerySeen`.
pub mod query_flags {
    /// The S flag (Suppress Router-Side Processing, RFC 3376 §4.1.5): the
    /// query lowers no timer.
    pub const SUPPRESS: u8 = 1 << 0;
    /// The query lists sources: a group-and-source-specific query, whose
    /// sources follow as `QuerySourceSeen` events; it lowers their timers
    /// only, never the group's (RFC 3376 §6.6.1).
    pub const SOURCES: u8 = 1 << 1;
    /// The listed sources went past the walk bound
    /// (`MAX_V3_SOURCES_PER_RECORD`): those past it keep their timers.
    pub const SOURCES_CUT: u8 = 1 << 2;
}

/// The ports of one destination set (`map_names::SET_PORT_LISTS`), 0 after the last.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortList {
    pub ports: [u32; crate::capacity::SET_PORTS as usize],
}

impl Default for PortList {
    fn default() -> Self {
        Self {
            ports: [0; crate::capacity::SET_PORTS as usize],
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for PortList {}
    // Generic over the family: `layout_of` below checks that both
    // families' layouts have no implicit padding.
    unsafe impl<A: Address> aya::Pod for MembershipKey<A> {}
    unsafe impl<A: Address> aya::Pod for Membership<A> {}
    unsafe impl<A: Address> aya::Pod for SourceKey<A> {}
    unsafe impl aya::Pod for SourceEntry {}
    unsafe impl aya::Pod for RouterKey {}
    unsafe impl aya::Pod for PortVlanKey {}
    unsafe impl aya::Pod for PortVlan {}
    unsafe impl<A: Address> aya::Pod for RouterPort<A> {}
    unsafe impl<A: Address> aya::Pod for GroupKey<A> {}
    unsafe impl aya::Pod for GroupEntry {}
    unsafe impl aya::Pod for PortSettings {}
    unsafe impl<A: Address> aya::Pod for HostKey<A> {}
    unsafe impl aya::Pod for HostEntry {}
    unsafe impl<A: Address> aya::Pod for Event<A> {}
}

/// Layout checks: a change here breaks the pinned maps of a running daemon.
const _: () = {
    assert!(core::mem::size_of::<MembershipKey>() == 12);
    assert!(core::mem::size_of::<Membership>() == 32);
    assert!(core::mem::size_of::<SourceKey>() == 16);
    assert!(core::mem::size_of::<SourceEntry>() == 24);
    assert!(core::mem::size_of::<RouterKey>() == 8);
    assert!(core::mem::size_of::<PortVlanKey>() == 8);
    assert!(core::mem::size_of::<PortVlan>() == 4);
    assert!(core::mem::size_of::<RouterPort>() == 24);
    assert!(core::mem::size_of::<PortSettings>() == 24);
    assert!(core::mem::size_of::<GroupKey>() == 8);
    assert!(core::mem::size_of::<GroupEntry>() == 20);
    assert!(core::mem::size_of::<Settings>() == 24);
    assert!(core::mem::size_of::<HostKey>() == 16);
    assert!(core::mem::size_of::<HostEntry>() == 8);
    assert!(core::mem::size_of::<Event>() == 32);
};

/// The IPv6 layouts: each size is the sum of its fields, so no byte of an
/// entry is implicit padding (what `aya::Pod` above relies on).
const _: () = {
    type V6 = [u8; 16];
    assert!(core::mem::size_of::<MembershipKey<V6>>() == 4 + 2 + 2 + 16);
    assert!(core::mem::size_of::<Membership<V6>>() == 3 * 8 + 16 + 1 + 1 + 2 + 4);
    assert!(core::mem::size_of::<SourceKey<V6>>() == 4 + 2 + 2 + 16 + 16);
    assert!(core::mem::size_of::<RouterPort<V6>>() == 8 + 16 + 5 + 7 + 4);
    assert!(core::mem::size_of::<GroupKey<V6>>() == 2 + 2 + 16);
    assert!(core::mem::size_of::<HostKey<V6>>() == 4 + 2 + 2 + 16 + 16);
    assert!(core::mem::size_of::<Event<V6>>() == 8 + 4 + 4 + 2 + 2 + 16 + 16 + 4);
};

/// The daemon's settings, in the single entry of the `SETTINGS` array map, so
/// that the CLI (and later the XDP program) see the timers in force.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Group membership interval (RFC 3376 §8.4), milliseconds.
    pub group_membership_interval_ms: u32,
    /// Last member query time, LMQC × LMQI (RFC 3376 §8.14), milliseconds.
    pub last_member_query_time_ms: u32,
    /// How long a router port lives after its last query, milliseconds.
    pub router_timeout_ms: u32,
    /// Non-zero once a daemon has written the entry. (A `u32` in builds
    /// before `vlan_bridges`: 1 there reads as 1 here, and 0 after it.)
    pub written: u8,
    /// Non-zero when some port is in a VLAN-filtering bridge: only then does
    /// the program ask a frame's port for its bridge VLAN (`PORTS`), a hash
    /// lookup other switches are spared.
    pub vlan_bridges: u8,
    /// `unregistered` for IPv6 groups, resolved against MLD's querier (its
    /// `auto` picks `ROUTERS` once an MLD querier is known). 0 (`FLOOD`) in
    /// builds before MLD. Link-scope IPv6 groups are flooded whatever it says.
    pub unregistered6: u8,
    /// `reports_to_routers` for MLD's reports and Done, set once an MLD
    /// querier is known. 0 (flooded) in builds before it.
    pub reports_to_routers6: u8,
    /// What happens to multicast data for a group no port joined: `unregistered::*`,
    /// already resolved by the daemon (its `auto` picks `ROUTERS` once a querier is known).
    pub unregistered: u8,
    /// Non-zero: IGMP reports and leaves go to router ports only (RFC 4541
    /// §2.1.1), which the bridge does once a querier is known; zero: flooded.
    pub reports_to_routers: u8,
    /// Non-zero when some port overrides the report or unregistered policy:
    /// such frames then go through the egress filter, which applies them.
    pub port_overrides: u8,
    /// Non-zero: data and reports are left to the kernel (a VLAN-filtering
    /// bridge, whose VLAN tagging a redirect would bypass). Learning goes on.
    pub fast_path_off: u8,
    /// Most groups on all ports together (0: no limit), below the table's
    /// capacity so that one port cannot fill it for the others.
    pub max_groups: u32,
}

/// Values of [`Settings::unregistered`].
pub mod unregistered {
    /// Pass to the kernel: the bridge floods it.
    pub const FLOOD: u8 = 0;
    /// Forward to the router ports only.
    pub const ROUTERS: u8 = 1;
    pub const DROP: u8 = 2;
    /// In [`PortSettings::unregistered`]: no override, the global policy applies.
    pub const FOLLOW_GLOBAL: u8 = 0xff;
}

/// An [`unregistered`] code as user space matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unregistered {
    Flood,
    Routers,
    Drop,
    /// A port's: the global policy applies.
    FollowGlobal,
    /// A code this build does not know.
    Other(u8),
}

impl From<u8> for Unregistered {
    fn from(code: u8) -> Self {
        match code {
            unregistered::FLOOD => Self::Flood,
            unregistered::ROUTERS => Self::Routers,
            unregistered::DROP => Self::Drop,
            unregistered::FOLLOW_GLOBAL => Self::FollowGlobal,
            other => Self::Other(other),
        }
    }
}

impl From<Unregistered> for u8 {
    fn from(policy: Unregistered) -> Self {
        match policy {
            Unregistered::Flood => unregistered::FLOOD,
            Unregistered::Routers => unregistered::ROUTERS,
            Unregistered::Drop => unregistered::DROP,
            Unregistered::FollowGlobal => unregistered::FOLLOW_GLOBAL,
            Unregistered::Other(code) => code,
        }
    }
}

impl Unregistered {
    /// As the flag and the configuration spell it (`auto`: follow the global policy).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Flood => "flood",
            Self::Routers => "routers",
            Self::Drop => "drop",
            Self::FollowGlobal => "auto",
            Self::Other(_) => "unknown",
        }
    }
}

/// Key of the `GROUPS` map: a group some port of the VLAN joined.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey<A: Address = [u8; 4]> {
    pub vlan: u16,
    pub inner_vlan: u16,
    pub group: A,
}

/// Value of the `GROUPS` map, written by the daemon.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupEntry {
    /// `group_flags::*`.
    pub flags: u32,
    /// Member ports, for the record (the egress decision reads MEMBERSHIP).
    pub ports: u32,
    /// The only port the group's data can go to (one member port, and no
    /// router port but that one), or 0. With one, the fast path redirects
    /// there alone instead of broadcasting to every port for the egress
    /// filter to drop all copies but one. The XDP program clears it when it
    /// adds another member port.
    pub sole_port: u32,
    /// `ROUTER_EPOCH` when `sole_port` and `dest_set` were worked out: a
    /// router port learned since then is a destination too, so the fast path
    /// broadcasts again.
    pub router_epoch: u32,
    /// With several destination ports, 1 + the `DEST_SETS` slot holding a
    /// devmap of exactly them, or 0: the broadcast then copies the frame for
    /// those ports only. Cleared by the XDP program with `sole_port`.
    pub dest_set: u32,
}

/// Bits of [`GroupEntry::flags`].
pub mod group_flags {
    /// The host itself (the bridge device) listens: frames go through the
    /// kernel so that local delivery never breaks.
    pub const LOCAL_LISTENER: u32 = 1 << 0;
    /// Every destination port takes every source's data: no member port
    /// has a source list (each is in EXCLUDE mode without one). tc then
    /// sends to the destinations without asking each port's tables again
    /// (`egress::port_wants`). Set by the daemon with the destinations;
    /// cleared by the program when it adds a member port or a source.
    pub const EVERY_SOURCE: u32 = 1 << 1;
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Settings {}

// Keys know their relatives: the daemon and the views derive one from the
// other through these, never field by field.

impl<A: Address> MembershipKey<A> {
    /// The group this membership is of, switch-wide (the `GROUPS` key).
    pub const fn group_key(&self) -> GroupKey<A> {
        GroupKey {
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
        }
    }
}

impl<A: Address> GroupKey<A> {
    /// Group `group` outside any VLAN.
    pub const fn untagged(group: A) -> Self {
        Self {
            vlan: 0,
            inner_vlan: 0,
            group,
        }
    }

    /// This group's membership on port `ifindex`.
    pub const fn on_port(&self, ifindex: u32) -> MembershipKey<A> {
        MembershipKey {
            ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
        }
    }
}

impl<A: Address> SourceKey<A> {
    /// The membership this source belongs to.
    pub const fn membership(&self) -> MembershipKey<A> {
        MembershipKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
        }
    }
}

impl<A: Address> HostKey<A> {
    /// The membership this host reports for.
    pub const fn membership(&self) -> MembershipKey<A> {
        MembershipKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
        }
    }
}

impl<A: Address> Event<A> {
    /// The membership the event is about.
    pub const fn membership_key(&self) -> MembershipKey<A> {
        MembershipKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
        }
    }

    /// The source the event names (`address`), in its membership.
    pub const fn source_key(&self) -> SourceKey<A> {
        SourceKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: self.group,
            source: self.address,
        }
    }

    /// The router port the event is about (its port and VLANs).
    pub const fn router_key(&self) -> RouterKey {
        RouterKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
        }
    }
}

#[cfg(test)]
mod typed_codes {
    use super::*;
    use crate::{filter_mode, FilterMode};

    #[test]
    fn every_code_goes_to_its_enum_and_back_and_an_unknown_one_stays_itself() {
        for code in 0..=u8::MAX {
            assert_eq!(u8::from(FilterMode::from(code)), code);
            assert_eq!(u8::from(RouterMode::from(code)), code);
            assert_eq!(u8::from(Unregistered::from(code)), code);
        }
        assert_eq!(FilterMode::from(filter_mode::INCLUDE), FilterMode::Include);
        assert_eq!(FilterMode::from(7), FilterMode::Other(7));
        assert_eq!(RouterMode::from(router_mode::PERMANENT).name(), "permanent");
        assert_eq!(RouterMode::from(9), RouterMode::Other(9));
        assert_eq!(
            Unregistered::from(unregistered::FOLLOW_GLOBAL),
            Unregistered::FollowGlobal
        );
        assert_eq!(Unregistered::from(3).name(), "unknown");
    }
}
