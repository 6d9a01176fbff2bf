//! The maps, declared as BTF maps so that bpftool prints their fields by name.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{
        Array, ArrayOfMaps, DevMapHash, HashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf,
    },
    macros::btf_map,
};
use igmp_common::{
    capacity, DataCounters, Event, GroupEntry, GroupKey, HostEntry, HostKey, Membership,
    MembershipKey, PortCounters, PortList, PortSettings, PortVlan, PortVlanKey, RouterKey,
    RouterPort, Settings, SourceEntry, SourceKey,
};

#[btf_map]
pub static MEMBERSHIP: HashMap<MembershipKey, Membership, { capacity::MEMBERSHIP as usize }> =
    HashMap::new();

/// IGMPv3 sources, one entry per (port, VLAN, group, source): a flat hash keeps
/// every lookup O(1) and lets bpftool show each source, where a per-group
/// array of sources would cap the list and copy it on each change.
#[btf_map]
pub static SOURCES: HashMap<SourceKey, SourceEntry, { capacity::SOURCES as usize }> =
    HashMap::new();

/// Reporters of each group on fast-leave ports (explicit host tracking).
#[btf_map]
pub static HOSTS: HashMap<HostKey, HostEntry, { capacity::HOSTS as usize }> = HashMap::new();

/// When each (port, VLAN, group) last heard an IGMPv1 report (RFC 3376
/// §7.3.2 older version host present): user space ignores v2 leaves and
/// lowers no timer on group-specific queries while it is recent.
#[btf_map]
pub static V1_HOSTS: HashMap<MembershipKey, u64, { capacity::V1_HOSTS as usize }> = HashMap::new();

/// Written by user space: per-port options, keyed by ifindex.
#[btf_map]
pub static PORTS: HashMap<u32, PortSettings, { capacity::PORTS as usize }> = HashMap::new();

#[btf_map]
pub static ROUTER_PORTS: HashMap<RouterKey, RouterPort, { capacity::ROUTER_PORTS as usize }> =
    HashMap::new();

/// Keyed by ifindex.
#[btf_map]
pub static COUNTERS: PerCpuHashMap<u32, PortCounters, { capacity::COUNTERS as usize }> =
    PerCpuHashMap::new();

/// Groups with at least one member port, per VLAN; written by the daemon.
#[btf_map]
pub static GROUPS: HashMap<GroupKey, GroupEntry, { capacity::GROUPS as usize }> = HashMap::new();

/// Every snooped port, each with the egress filter program; frames to
/// forward are broadcast into it and the filter keeps the ports that want them.
#[btf_map]
pub static EGRESS_PORTS: DevMapHash<{ capacity::PORTS as usize }> = DevMapHash::new();

/// Membership entries made, per port and (ifindex 0) in all; see `limits`.
#[btf_map]
pub static GROUPS_ADDED: HashMap<u32, u64, { capacity::PORTS as usize + 1 }> = HashMap::new();

/// Membership entries the daemon removed, per port and (ifindex 0) in all.
#[btf_map]
pub static GROUPS_REMOVED: HashMap<u32, u64, { capacity::PORTS as usize + 1 }> = HashMap::new();

/// Per port: when the report rate limiter next has a token (see `limits`).
#[btf_map]
pub static REPORT_RATE: HashMap<u32, u64, { capacity::PORTS as usize }> = HashMap::new();

#[btf_map]
pub static DATA_COUNTERS: PerCpuArray<DataCounters, 1> = PerCpuArray::new();

/// Destination sets, written by the daemon; see `GroupEntry::dest_set`.
#[btf_map]
pub static DEST_SETS: ArrayOfMaps<
    DevMapHash<{ capacity::SET_PORTS as usize }>,
    { capacity::DEST_SETS as usize },
> = ArrayOfMaps::new();

/// `DEST_SETS` as port lists, for tc; see `map_names::SET_PORT_LISTS`.
#[btf_map]
pub static SET_PORT_LISTS: Array<PortList, { capacity::DEST_SETS as usize }> = Array::new();

/// Every snooped port, for tc; see `map_names::PORT_LIST`.
#[btf_map]
pub static PORT_LIST: Array<u32, { capacity::PORTS as usize }> = Array::new();

/// The VLANs of ports in VLAN-filtering bridges; see `map_names::PORT_VLANS`.
/// Not preallocated: most switches have a few, a trunk of every VLAN 4094.
#[btf_map]
pub static PORT_VLANS: HashMap<
    PortVlanKey,
    PortVlan,
    { capacity::PORT_VLANS as usize },
    { BPF_F_NO_PREALLOC as usize },
> = HashMap::new();

/// How VLAN `vlan` leaves port `port`, `None` when the port is not a member
/// of it (the bridge would not send it there, nor take it in from there).
#[inline(always)]
pub fn port_vlan(port: u32, vlan: u16) -> Option<PortVlan> {
    PORT_VLANS
        .get_ptr(PortVlanKey::new(port, vlan))
        .map(|entry| unsafe { *entry })
}

/// A VLAN-filtering bridge's VLAN for a frame that came in on a port of it.
pub struct BridgeVlan {
    /// The frame's tag, or the port's PVID for an untagged (or
    /// priority-tagged) frame.
    pub vlan: u16,
    /// Whether the port is a member of it. The bridge drops a frame of any
    /// other VLAN on its way in (and an untagged one on a port without PVID).
    pub member: bool,
}

/// The bridge VLAN of a frame tagged `tag` (0: untagged) on port `ingress`,
/// `None` when the port is not in a VLAN-filtering bridge (the tag is then
/// the VLAN, as the bridge's own snooping keys it without VLAN filtering).
#[inline(always)]
pub fn bridge_vlan(ingress: u32, tag: u16) -> Option<BridgeVlan> {
    let pvid = vlan_bridge_pvid(ingress)?;
    let vlan = if tag == 0 { pvid } else { tag };
    Some(BridgeVlan {
        vlan,
        member: vlan != 0
            && PORT_VLANS
                .get_ptr(PortVlanKey::new(ingress, vlan))
                .is_some(),
    })
}

/// Whether port `ingress` is in a VLAN-filtering bridge.
#[inline(always)]
pub fn in_vlan_bridge(ingress: u32) -> bool {
    vlan_bridge_pvid(ingress).is_some()
}

/// The PVID of port `ingress` (0: none) if it is in a VLAN-filtering bridge.
#[inline(always)]
fn vlan_bridge_pvid(ingress: u32) -> Option<u16> {
    // An array lookup spares switches without such a bridge the hash lookup.
    let switch = SETTINGS.get_ptr(0)?;
    if unsafe { (*switch).vlan_bridges } == 0 {
        return None;
    }
    let port = PORTS.get_ptr(ingress)?;
    let (filtering, pvid) = unsafe { ((*port).vlan_filtering, (*port).pvid) };
    (filtering != 0).then_some(pvid)
}

/// Router ports learned so far; see `map_names::ROUTER_EPOCH`.
#[btf_map]
pub static ROUTER_EPOCH: Array<u32, 1> = Array::new();

#[btf_map]
pub static EVENTS: RingBuf<Event, { capacity::EVENTS_BYTES as usize }> = RingBuf::new();

/// MLD's tables (`map_names::MEMBERSHIP6` and the rest), the IPv6 twins
/// of the ones above: the same types over 16-byte addresses.
type Ipv6 = [u8; 16];

#[btf_map]
pub static MEMBERSHIP6: HashMap<
    MembershipKey<Ipv6>,
    Membership<Ipv6>,
    { capacity::MEMBERSHIP as usize },
> = HashMap::new();

#[btf_map]
pub static SOURCES6: HashMap<SourceKey<Ipv6>, SourceEntry, { capacity::SOURCES as usize }> =
    HashMap::new();

#[btf_map]
pub static HOSTS6: HashMap<HostKey<Ipv6>, HostEntry, { capacity::HOSTS as usize }> = HashMap::new();

#[btf_map]
pub static V1_HOSTS6: HashMap<MembershipKey<Ipv6>, u64, { capacity::V1_HOSTS as usize }> =
    HashMap::new();

#[btf_map]
pub static ROUTER_PORTS6: HashMap<
    RouterKey,
    RouterPort<Ipv6>,
    { capacity::ROUTER_PORTS as usize },
> = HashMap::new();

#[btf_map]
pub static GROUPS6: HashMap<GroupKey<Ipv6>, GroupEntry, { capacity::GROUPS as usize }> =
    HashMap::new();

#[btf_map]
pub static ROUTER_EPOCH6: Array<u32, 1> = Array::new();

#[btf_map]
pub static EVENTS6: RingBuf<Event<Ipv6>, { capacity::EVENTS_BYTES as usize }> = RingBuf::new();

/// The IPv6 and MLD programs of each hook, reached by tail calls
/// (`verdict::tail` names the slots); the loader fills them.
#[btf_map]
pub static MLD_XDP: ProgramArray<{ crate::verdict::tail::SLOTS }> = ProgramArray::new();

#[btf_map]
pub static MLD_TC: ProgramArray<{ crate::verdict::tail::SLOTS }> = ProgramArray::new();

/// `bpf_map_update_elem` flags.
pub const BPF_NOEXIST: u64 = 1;
/// `-EEXIST`: another CPU created the entry between our lookup and insert.
pub const EEXIST: i32 = -17;

/// Written by user space: the timers in force (see `igmp_common::Settings`).
#[btf_map]
pub static SETTINGS: Array<Settings, 1> = Array::new();

/// The defaults, kept in writable data rather than as constants: the
/// verifier then sees unknown values on both paths of `port_settings`, and
/// the paths after it merge instead of being walked once per path.
static mut UNCONFIGURED_PORT: PortSettings = PortSettings::DEFAULT;

/// The options of port `ifindex`; a port user space did not configure gets
/// the bridge's defaults (router port when queried, no fast leave, no limits).
#[inline(always)]
pub fn port_settings(ifindex: u32) -> PortSettings {
    match PORTS.get_ptr(ifindex) {
        Some(settings) => unsafe { *settings },
        // SAFETY: nothing writes the static; volatile keeps LLVM from folding it.
        None => unsafe { core::ptr::read_volatile(&raw const UNCONFIGURED_PORT) },
    }
}
