//! What the learning and forwarding code needs to know of an address family
//! (`igmp_common::Address`): its tables, its predicates and how its
//! messages are counted. IGMP is `[u8; 4]`, MLD `[u8; 16]`; `membership`,
//! `v3` (which walks IGMPv3 and MLDv2 reports, one layout over two address
//! sizes), `data` and `egress` are written once over `A: Family`.

use aya_ebpf::btf_maps::{Array, HashMap, RingBuf};
use igmp_common::{
    capacity, igmp_version, mld_version, Address, Counter, Event, GroupEntry, GroupKey, HostEntry,
    HostKey, Membership, MembershipKey, RouterKey, RouterPort, Settings, SourceEntry, SourceKey,
};

use network_types::ip::IpProto;

use crate::{
    addr,
    maps::{
        EVENTS, EVENTS6, GROUPS, GROUPS6, HOSTS, HOSTS6, MEMBERSHIP, MEMBERSHIP6, ROUTER_EPOCH,
        ROUTER_EPOCH6, ROUTER_PORTS, ROUTER_PORTS6, SOURCES, SOURCES6, V1_HOSTS, V1_HOSTS6,
    },
    verdict::MLD_SIGNALLING,
};

pub type MembershipMap<A> =
    HashMap<MembershipKey<A>, Membership<A>, { capacity::MEMBERSHIP as usize }>;
pub type SourceMap<A> = HashMap<SourceKey<A>, SourceEntry, { capacity::SOURCES as usize }>;
pub type HostMap<A> = HashMap<HostKey<A>, HostEntry, { capacity::HOSTS as usize }>;
pub type V1HostMap<A> = HashMap<MembershipKey<A>, u64, { capacity::V1_HOSTS as usize }>;
pub type RouterMap<A> = HashMap<RouterKey, RouterPort<A>, { capacity::ROUTER_PORTS as usize }>;
pub type GroupMap<A> = HashMap<GroupKey<A>, GroupEntry, { capacity::GROUPS as usize }>;
pub type EventRing<A> = RingBuf<Event<A>, { capacity::EVENTS_BYTES as usize }>;

pub trait Family: Address {
    /// The version a source-filtering report (IGMPv3, MLDv2) is stored with.
    const FILTERING_VERSION: u8;
    /// Records walked in a source-filtering report.
    const RECORD_COUNTER: Counter;
    /// Source-filtering reports.
    const REPORT_COUNTER: Counter;
    /// `Headers::protocol` of the family's reports and leaves, which go to
    /// router ports (IGMP; `verdict::MLD_SIGNALLING`).
    const SIGNALLING: u8;

    fn membership() -> &'static MembershipMap<Self>;
    fn sources() -> &'static SourceMap<Self>;
    fn hosts() -> &'static HostMap<Self>;
    fn v1_hosts() -> &'static V1HostMap<Self>;
    fn router_ports() -> &'static RouterMap<Self>;
    fn groups() -> &'static GroupMap<Self>;
    fn router_epoch() -> &'static Array<u32, 1>;
    fn events() -> &'static EventRing<Self>;

    /// The switch's policy for this family's unregistered groups (`SETTINGS`).
    fn unregistered(settings: &Settings) -> u8;
    /// Whether this family's reports and leaves go to router ports only
    /// (`SETTINGS`): once its querier is known.
    fn reports_to_routers(settings: &Settings) -> bool;
    /// A multicast address (224.0.0.0/4, ff00::/8).
    fn is_multicast(self) -> bool;
    /// A group the switch never snoops and always floods: 224.0.0.0/24
    /// (RFC 4541 §2.1.2); ff02::1, for which no MLD message is ever sent,
    /// and the interface- and reserved-scope groups, which never leave a
    /// node (RFC 4541 §3, RFC 4291 §2.7).
    fn is_never_snooped(self) -> bool;
}

impl Family for [u8; 4] {
    const FILTERING_VERSION: u8 = igmp_version::V3;
    const RECORD_COUNTER: Counter = Counter::V3Record;
    const REPORT_COUNTER: Counter = Counter::V3Report;
    const SIGNALLING: u8 = IpProto::Igmp as u8;

    #[inline(always)]
    fn membership() -> &'static MembershipMap<Self> {
        &MEMBERSHIP
    }
    #[inline(always)]
    fn sources() -> &'static SourceMap<Self> {
        &SOURCES
    }
    #[inline(always)]
    fn hosts() -> &'static HostMap<Self> {
        &HOSTS
    }
    #[inline(always)]
    fn v1_hosts() -> &'static V1HostMap<Self> {
        &V1_HOSTS
    }
    #[inline(always)]
    fn router_ports() -> &'static RouterMap<Self> {
        &ROUTER_PORTS
    }
    #[inline(always)]
    fn groups() -> &'static GroupMap<Self> {
        &GROUPS
    }
    #[inline(always)]
    fn router_epoch() -> &'static Array<u32, 1> {
        &ROUTER_EPOCH
    }
    #[inline(always)]
    fn events() -> &'static EventRing<Self> {
        &EVENTS
    }
    #[inline(always)]
    fn unregistered(settings: &Settings) -> u8 {
        settings.unregistered
    }
    #[inline(always)]
    fn reports_to_routers(settings: &Settings) -> bool {
        settings.reports_to_routers != 0
    }
    #[inline(always)]
    fn is_multicast(self) -> bool {
        addr::is_multicast(self)
    }
    #[inline(always)]
    fn is_never_snooped(self) -> bool {
        addr::is_link_local(self)
    }
}

impl Family for [u8; 16] {
    const FILTERING_VERSION: u8 = mld_version::V2;
    const RECORD_COUNTER: Counter = Counter::MldV2Record;
    const REPORT_COUNTER: Counter = Counter::MldV2Report;
    const SIGNALLING: u8 = MLD_SIGNALLING;

    #[inline(always)]
    fn membership() -> &'static MembershipMap<Self> {
        &MEMBERSHIP6
    }
    #[inline(always)]
    fn sources() -> &'static SourceMap<Self> {
        &SOURCES6
    }
    #[inline(always)]
    fn hosts() -> &'static HostMap<Self> {
        &HOSTS6
    }
    #[inline(always)]
    fn v1_hosts() -> &'static V1HostMap<Self> {
        &V1_HOSTS6
    }
    #[inline(always)]
    fn router_ports() -> &'static RouterMap<Self> {
        &ROUTER_PORTS6
    }
    #[inline(always)]
    fn groups() -> &'static GroupMap<Self> {
        &GROUPS6
    }
    #[inline(always)]
    fn router_epoch() -> &'static Array<u32, 1> {
        &ROUTER_EPOCH6
    }
    #[inline(always)]
    fn events() -> &'static EventRing<Self> {
        &EVENTS6
    }
    #[inline(always)]
    fn unregistered(settings: &Settings) -> u8 {
        settings.unregistered6
    }
    #[inline(always)]
    fn reports_to_routers(settings: &Settings) -> bool {
        settings.reports_to_routers6 != 0
    }
    #[inline(always)]
    fn is_multicast(self) -> bool {
        addr::is_multicast6(&self)
    }
    #[inline(always)]
    fn is_never_snooped(self) -> bool {
        addr::is_never_snooped6(&self)
    }
}
