//! Types shared by the XDP program and user space.
//!
//! Every type that crosses the kernel/user boundary lives here: map keys and
//! values, event records and the named counters. All are `#[repr(C)]` with
//! explicit padding so that both sides, and bpftool through BTF, agree on the
//! layout. Addresses are kept as bytes in network order (`[u8; 4]`, and
//! `[u8; 16]` for IPv6: `family.rs` says why the families keep parallel
//! tables) so that `bpftool map dump` prints them as bytes.
#![no_std]

mod counters;
mod family;
pub mod registry;
mod wire;

pub use counters::{
    Counter, DataCounter, DataCounters, DropReason, PortCounters, COUNTER_CAPACITY, COUNTER_SLOTS,
    DATA_COUNTER_CAPACITY, DATA_COUNTER_SLOTS, DROP_CAPACITY, DROP_SLOTS,
};
pub use family::{Address, Family};
pub use wire::*;

/// Names of the maps as they appear in the object file and under the pin directory.
pub mod map_names {
    pub const MEMBERSHIP: &str = "MEMBERSHIP";
    pub const SOURCES: &str = "SOURCES";
    pub const ROUTER_PORTS: &str = "ROUTER_PORTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const EVENTS: &str = "EVENTS";
    pub const SETTINGS: &str = "SETTINGS";
    pub const PORTS: &str = "PORTS";
    pub const HOSTS: &str = "HOSTS";
    pub const GROUPS: &str = "GROUPS";
    pub const EGRESS_PORTS: &str = "EGRESS_PORTS";
    pub const DATA_COUNTERS: &str = "DATA_COUNTERS";
    /// Per port (ifindex 0: the whole switch), membership entries the XDP
    /// program made; only the program writes it.
    pub const GROUPS_ADDED: &str = "GROUPS_ADDED";
    /// Per port (ifindex 0: the whole switch), entries the daemon removed;
    /// only the daemon writes it. In use = added - removed: each counter has
    /// one writer, so neither side loses the other's updates.
    pub const GROUPS_REMOVED: &str = "GROUPS_REMOVED";
    /// Per port, the report rate limiter's state.
    pub const REPORT_RATE: &str = "REPORT_RATE";
    /// Router ports the XDP program learned so far (one count, only it
    /// writes): a `GroupEntry`'s `sole_port` and `dest_set` hold only while
    /// it stays what it was when the daemon wrote them.
    pub const ROUTER_EPOCH: &str = "ROUTER_EPOCH";
    /// Devmaps of the destination ports groups share (`GroupEntry::dest_set`).
    pub const DEST_SETS: &str = "DEST_SETS";
    /// Per (port, VLAN, group), when the last IGMPv1 report arrived: the
    /// start of RFC 3376 §7.3.2's older version host present timer (GMI);
    /// only the program writes it, the daemon removes it with the group.
    pub const V1_HOSTS: &str = "V1_HOSTS";
    /// The same sets as port lists, slot for slot, for the tc classifier,
    /// which cannot broadcast into a devmap; only the daemon writes it.
    pub const SET_PORT_LISTS: &str = "SET_PORT_LISTS";
    /// Every snooped port's ifindex from index 0 on, 0 after the last: the
    /// ports the tc classifier asks when a frame may go anywhere.
    pub const PORT_LIST: &str = "PORT_LIST";
    /// The version of the table's layout (`registry::TABLE_LAYOUT`), one
    /// `u32`: made and written by the daemon, not by the program's object.
    pub const LAYOUT_VERSION: &str = "LAYOUT_VERSION";
    /// Per (port, VLAN) of a VLAN-filtering bridge, the port's membership
    /// and how the VLAN leaves it, as the bridge's VLAN table says; only the
    /// daemon writes it.
    pub const PORT_VLANS: &str = "PORT_VLANS";

    /// MLD's tables, one beside each of IGMP's learned and forwarding
    /// tables, keyed by 16-byte addresses (`family.rs`). The ports, the
    /// settings, the counters, the destination sets and the limits' counts
    /// are shared by both families.
    pub const MEMBERSHIP6: &str = "MEMBERSHIP6";
    pub const SOURCES6: &str = "SOURCES6";
    pub const ROUTER_PORTS6: &str = "ROUTER_PORTS6";
    pub const HOSTS6: &str = "HOSTS6";
    /// Per (port, VLAN, group), when the last MLDv1 report arrived (RFC 3810
    /// §8.3.2's Older Version Host Present timer).
    pub const V1_HOSTS6: &str = "V1_HOSTS6";
    pub const GROUPS6: &str = "GROUPS6";
    pub const ROUTER_EPOCH6: &str = "ROUTER_EPOCH6";
    pub const EVENTS6: &str = "EVENTS6";
    /// The IPv6 and MLD programs of each hook, which the IPv4 programs
    /// reach by tail calls; only the daemon writes them. Pinned, as the
    /// kernel empties a program array once no file refers to it: IPv6 goes
    /// on being snooped while no daemon runs.
    pub const MLD_XDP: &str = "MLD_XDP";
    pub const MLD_TC: &str = "MLD_TC";

    pub const ALL: [&str; 31] = [
        LAYOUT_VERSION,
        PORT_VLANS,
        SET_PORT_LISTS,
        PORT_LIST,
        ROUTER_EPOCH,
        DEST_SETS,
        GROUPS_ADDED,
        GROUPS_REMOVED,
        REPORT_RATE,
        GROUPS,
        EGRESS_PORTS,
        DATA_COUNTERS,
        MEMBERSHIP,
        SOURCES,
        ROUTER_PORTS,
        COUNTERS,
        EVENTS,
        SETTINGS,
        PORTS,
        HOSTS,
        V1_HOSTS,
        MEMBERSHIP6,
        SOURCES6,
        ROUTER_PORTS6,
        HOSTS6,
        V1_HOSTS6,
        GROUPS6,
        ROUTER_EPOCH6,
        EVENTS6,
        MLD_XDP,
        MLD_TC,
    ];
}

/// Default capacities of the maps; user space may override them at load time.
pub mod capacity {
    pub const MEMBERSHIP: u32 = 65_536;
    pub const SOURCES: u32 = 65_536;
    pub const ROUTER_PORTS: u32 = 1_024;
    pub const PORTS: u32 = 1_024;
    /// (port, VLAN) pairs of VLAN-filtering bridges: 16 trunks of every VLAN.
    pub const PORT_VLANS: u32 = 65_536;
    pub const HOSTS: u32 = 65_536;
    pub const V1_HOSTS: u32 = 65_536;
    pub const GROUPS: u32 = 65_536;
    /// One counter block per port.
    pub const COUNTERS: u32 = 1_024;
    /// Distinct destination sets; groups past them are broadcast.
    pub const DEST_SETS: u32 = 4_096;
    /// Ports in one destination set; a larger set is broadcast.
    pub const SET_PORTS: u32 = 64;
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub const EVENTS_BYTES: u32 = 256 * 1024;
}

/// Default limits against report floods (RFC 4541 §3 leaves them to the
/// implementation; these sit well above what real ports see).
pub mod limits {
    /// Groups one port may hold (the Linux bridge's `mcast_max_groups` is
    /// off by default; OVS evicts at 2048 for the whole switch).
    pub const MAX_GROUPS_PER_PORT: u32 = 1_024;
    /// Reports and leaves per second and port: a port with a thousand hosts
    /// answering a general query over the 10 s response interval sends ~100.
    pub const REPORT_RATE: u32 = 1_000;
    pub const REPORT_BURST: u32 = 1_000;
}

/// Bounds of the IGMPv3 report walk. The verifier needs constant loop bounds;
/// what lies past them is counted (`DropReason::RecordsCut`, `SourcesCut`)
/// and the group is marked [`membership_flags::SOURCES_TRUNCATED`] so that
/// forwarding errs towards delivering rather than dropping.
pub const MAX_V3_RECORDS: usize = 32;
pub const MAX_V3_SOURCES_PER_RECORD: usize = 16;
/// IPv6 extension headers walked before the upper-layer header; a longer
/// chain is counted (`DropReason::ExtHeadersTooLong`) and passed unseen.
pub const MAX_IPV6_EXT_HEADERS: usize = 4;
/// Options read in a Hop-by-Hop header while looking for the Router Alert.
pub const MAX_HOP_BY_HOP_OPTIONS: usize = 4;

/// Filter modes of a group on a port (RFC 3376 §6.2.1).
pub mod filter_mode {
    pub const INCLUDE: u8 = 1;
    pub const EXCLUDE: u8 = 2;
}

/// A [`filter_mode`] code as user space matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    Include,
    Exclude,
    /// A code this build does not know (a newer program's).
    Other(u8),
}

impl From<u8> for FilterMode {
    fn from(code: u8) -> Self {
        match code {
            filter_mode::INCLUDE => Self::Include,
            filter_mode::EXCLUDE => Self::Exclude,
            other => Self::Other(other),
        }
    }
}

impl From<FilterMode> for u8 {
    fn from(mode: FilterMode) -> Self {
        match mode {
            FilterMode::Include => filter_mode::INCLUDE,
            FilterMode::Exclude => filter_mode::EXCLUDE,
            FilterMode::Other(code) => code,
        }
    }
}

impl FilterMode {
    /// As `bridge mdb show` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Include => "include",
            Self::Exclude => "exclude",
            Self::Other(_) => "unknown",
        }
    }
}

/// Bits of [`Membership::flags`].
pub mod membership_flags {
    /// A leave (v2 leave, v3 TO_IN{} or TO_IN in EXCLUDE mode) arrived after the
    /// last report; user space decides when the member goes (RFC 4541 §2.1.1).
    pub const LEAVE_PENDING: u16 = 1 << 0;
    /// A v3 record had more sources than the walk bound: the source list is incomplete.
    pub const SOURCES_TRUNCATED: u16 = 1 << 1;
    /// Set by user space for entries it installed itself (static groups).
    pub const STATIC: u16 = 1 << 2;
    /// Installed by user space, not by a report: not counted under the group
    /// limits (which are against report floods), so its removal is not either.
    pub const UNCOUNTED: u16 = 1 << 3;
}

/// Bits of [`SourceEntry::flags`].
pub mod source_flags {
    /// A BLOCK_OLD_SOURCES (or TO_IN without this source) named it after its last report.
    pub const LEAVE_PENDING: u8 = 1 << 0;
}

/// IGMP protocol versions as kept in the tables.
pub mod igmp_version {
    pub const V1: u8 = 1;
    pub const V2: u8 = 2;
    pub const V3: u8 = 3;
}

/// MLD versions as MLD's tables store them (`Membership::version`,
/// `RouterPort::version`, `Event::version`).
pub mod mld_version {
    /// RFC 2710: reports and Done, no sources (IGMPv2's counterpart).
    pub const V1: u8 = 1;
    /// RFC 3810 / RFC 9777: source filtering (IGMPv3's counterpart).
    pub const V2: u8 = 2;
}
