//! Named counters, kept per port and per CPU in the `COUNTERS` map.

/// Messages and table operations counted on each port.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every IPv4 frame carrying protocol 2 (IGMP), valid or not.
    IgmpFrames = 0,
    V1Report = 1,
    V2Report = 2,
    V2Leave = 3,
    V3Report = 4,
    V1Query = 5,
    V2Query = 6,
    V3Query = 7,
    /// Group records walked in v3 reports.
    V3Record = 8,
    /// Reports for groups never snooped: 224.0.0.0/24 (RFC 4541 §2.1.2);
    /// for MLD ff02::1 and the interface- and reserved-scope groups (RFC 4541
    /// §3, RFC 3810 §6). Valid, always flooded, never entered in the table.
    LinkLocalReport = 9,
    /// Queries with source 0.0.0.0 (proxy queries): counted, but do not make a router port.
    ProxyQuery = 10,
    GroupCreated = 11,
    GroupRefreshed = 12,
    SourceCreated = 13,
    SourceRefreshed = 14,
    /// Unknown IGMP types (RFC 3376 §4: ignored, passed on).
    OtherIgmpType = 15,
    /// Records past `MAX_V3_RECORDS` in one report (not walked).
    RecordsCut = 16,
    /// Sources past `MAX_V3_SOURCES_PER_RECORD` in one record, or in one
    /// group-and-source query (not walked).
    SourcesCut = 17,
    /// The membership or source map refused an insert (full): the report changed nothing.
    TableFull = 18,
    /// The events ring buffer was full; user space finds the change in the map instead.
    EventLost = 19,
    /// PIM hellos (to 224.0.0.13): the port leads to a multicast router.
    PimHello = 20,
    /// A report for a new group past the port's or the switch's group limit:
    /// no entry made, existing entries untouched.
    GroupLimit = 21,
    /// Every IPv6 frame whose ICMPv6 message is of an MLD type (130, 131,
    /// 132, 143), valid or not.
    MldFrames = 22,
    MldV1Report = 23,
    MldV2Report = 24,
    /// MLDv1 Done (RFC 2710 §3.7).
    MldDone = 25,
    /// Queries of 24 octets (RFC 2710 §3.6).
    MldV1Query = 26,
    /// Queries of 28 octets or more (RFC 3810 §5.1).
    MldV2Query = 27,
    /// Multicast address records walked in MLDv2 reports.
    MldV2Record = 28,
}

/// Why a frame was passed over without touching the table. Every such frame
/// is still handed to the kernel untouched (XDP_PASS), except reports over
/// the port's rate limit, which are dropped.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The frame ends inside a header it announces.
    Truncated = 0,
    /// More VLAN tags than the two of 802.1ad + 802.1Q.
    TooManyVlanTags = 1,
    /// IP version is not 4 or IHL is below 5.
    BadIpHeader = 2,
    /// IP total length disagrees with the frame or the header length.
    BadIpLength = 3,
    BadIpChecksum = 4,
    /// IGMP in an IP fragment (a known evasion: RFC 3376 messages are never fragmented).
    IpFragment = 5,
    /// IP TTL is not 1 (RFC 2236 §2, RFC 3376 §4).
    BadTtl = 6,
    BadIgmpChecksum = 7,
    /// IGMP length disagrees with the message type (RFC 3376 §7.1) or is not a whole number of words.
    BadIgmpLength = 8,
    /// The group field is not in 224.0.0.0/4.
    NotMulticastGroup = 9,
    /// The IP destination is not the one the message type is sent to.
    BadDestination = 10,
    /// A v3 record header lies past the end of the message.
    RecordPastEnd = 11,
    /// A v3 record's sources lie past the end of the message.
    SourcesPastEnd = 12,
    /// A v3 record's auxiliary data lies past the end of the message.
    AuxPastEnd = 13,
    /// A v3 record type outside 1..=6 (RFC 3376 §4.2.12): the record is skipped.
    UnknownRecordType = 14,
    /// The bridge does not forward on the port (STP): nothing is learned from it.
    PortBlocked = 15,
    /// A report or leave over the port's report rate limit: dropped (XDP_DROP).
    RateLimited = 16,
    /// IP version is not 6, or the payload length runs past the frame.
    BadIpv6Header = 17,
    /// An MLD message not behind a Hop-by-Hop header with a Router Alert
    /// option (RFC 3810 §5, RFC 2711).
    NoRouterAlert = 18,
    /// More IPv6 extension headers before the ICMPv6 header than the walk's
    /// bound (RFC 8200 §4.1 sets no limit; the frame is passed unseen).
    ExtHeadersTooLong = 19,
    /// Hop Limit is not 1 (RFC 3810 §5, RFC 2710 §3).
    BadHopLimit = 20,
    /// An MLD query whose source is not link-local, or a report whose
    /// source is neither link-local nor :: (RFC 3810 §5.1.14, §5.2.13).
    NotLinkLocalSource = 21,
    /// The ICMPv6 checksum over the pseudo-header and message is wrong (RFC 4443 §2.3).
    BadIcmpv6Checksum = 22,
    /// MLD length disagrees with the message type (RFC 3810 §8.1).
    BadMldLength = 23,
}

/// Counters in use in [`PortCounters::messages`].
pub const COUNTER_SLOTS: usize = 29;
/// Drop reasons in use in [`PortCounters::drops`].
pub const DROP_SLOTS: usize = 24;
/// Room for counters and drop reasons: the arrays are sized by these, not by
/// what is in use, so that a new counter or drop reason changes no pinned
/// layout and an upgrade keeps the map. Counters are append-only.
pub const COUNTER_CAPACITY: usize = 48;
pub const DROP_CAPACITY: usize = 32;
const _: () = assert!(COUNTER_SLOTS <= COUNTER_CAPACITY);
const _: () = assert!(DROP_SLOTS <= DROP_CAPACITY);

/// Value of the per-CPU `COUNTERS` map, keyed by ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCounters {
    /// Indexed by [`Counter`]; the slots past [`COUNTER_SLOTS`] stay 0.
    pub messages: [u64; COUNTER_CAPACITY],
    /// Indexed by [`DropReason`]; the slots past [`DROP_SLOTS`] stay 0.
    pub drops: [u64; DROP_CAPACITY],
}

/// The layout every version since counters got headroom pins.
const _: () = assert!(core::mem::size_of::<PortCounters>() == 640);

impl Default for PortCounters {
    fn default() -> Self {
        Self::ZERO
    }
}

impl PortCounters {
    pub const ZERO: Self = Self {
        messages: [0; COUNTER_CAPACITY],
        drops: [0; DROP_CAPACITY],
    };
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PortCounters {}

impl Counter {
    pub const ALL: [Counter; COUNTER_SLOTS] = [
        Self::IgmpFrames,
        Self::V1Report,
        Self::V2Report,
        Self::V2Leave,
        Self::V3Report,
        Self::V1Query,
        Self::V2Query,
        Self::V3Query,
        Self::V3Record,
        Self::LinkLocalReport,
        Self::ProxyQuery,
        Self::GroupCreated,
        Self::GroupRefreshed,
        Self::SourceCreated,
        Self::SourceRefreshed,
        Self::OtherIgmpType,
        Self::RecordsCut,
        Self::SourcesCut,
        Self::TableFull,
        Self::EventLost,
        Self::PimHello,
        Self::GroupLimit,
        Self::MldFrames,
        Self::MldV1Report,
        Self::MldV2Report,
        Self::MldDone,
        Self::MldV1Query,
        Self::MldV2Query,
        Self::MldV2Record,
    ];

    /// The name user space prints (snake case, stable: used as JSON keys and metric labels).
    pub const fn name(self) -> &'static str {
        match self {
            Self::IgmpFrames => "igmp_frames",
            Self::V1Report => "v1_report",
            Self::V2Report => "v2_report",
            Self::V2Leave => "v2_leave",
            Self::V3Report => "v3_report",
            Self::V1Query => "v1_query",
            Self::V2Query => "v2_query",
            Self::V3Query => "v3_query",
            Self::V3Record => "v3_record",
            Self::LinkLocalReport => "link_local_report",
            Self::ProxyQuery => "proxy_query",
            Self::GroupCreated => "group_created",
            Self::GroupRefreshed => "group_refreshed",
            Self::SourceCreated => "source_created",
            Self::SourceRefreshed => "source_refreshed",
            Self::OtherIgmpType => "other_igmp_type",
            Self::RecordsCut => "records_cut",
            Self::SourcesCut => "sources_cut",
            Self::TableFull => "table_full",
            Self::EventLost => "event_lost",
            Self::PimHello => "pim_hello",
            Self::GroupLimit => "group_limit",
            Self::MldFrames => "mld_frames",
            Self::MldV1Report => "mld_v1_report",
            Self::MldV2Report => "mld_v2_report",
            Self::MldDone => "mld_done",
            Self::MldV1Query => "mld_v1_query",
            Self::MldV2Query => "mld_v2_query",
            Self::MldV2Record => "mld_v2_record",
        }
    }
}

impl DropReason {
    pub const ALL: [DropReason; DROP_SLOTS] = [
        Self::Truncated,
        Self::TooManyVlanTags,
        Self::BadIpHeader,
        Self::BadIpLength,
        Self::BadIpChecksum,
        Self::IpFragment,
        Self::BadTtl,
        Self::BadIgmpChecksum,
        Self::BadIgmpLength,
        Self::NotMulticastGroup,
        Self::BadDestination,
        Self::RecordPastEnd,
        Self::SourcesPastEnd,
        Self::AuxPastEnd,
        Self::UnknownRecordType,
        Self::PortBlocked,
        Self::RateLimited,
        Self::BadIpv6Header,
        Self::NoRouterAlert,
        Self::ExtHeadersTooLong,
        Self::BadHopLimit,
        Self::NotLinkLocalSource,
        Self::BadIcmpv6Checksum,
        Self::BadMldLength,
    ];

    /// The name user space prints (snake case, stable).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::TooManyVlanTags => "too_many_vlan_tags",
            Self::BadIpHeader => "bad_ip_header",
            Self::BadIpLength => "bad_ip_length",
            Self::BadIpChecksum => "bad_ip_checksum",
            Self::IpFragment => "ip_fragment",
            Self::BadTtl => "bad_ttl",
            Self::BadIgmpChecksum => "bad_igmp_checksum",
            Self::BadIgmpLength => "bad_igmp_length",
            Self::NotMulticastGroup => "not_multicast_group",
            Self::BadDestination => "bad_destination",
            Self::RecordPastEnd => "record_past_end",
            Self::SourcesPastEnd => "sources_past_end",
            Self::AuxPastEnd => "aux_past_end",
            Self::UnknownRecordType => "unknown_record_type",
            Self::PortBlocked => "port_blocked",
            Self::RateLimited => "rate_limited",
            Self::BadIpv6Header => "bad_ipv6_header",
            Self::NoRouterAlert => "no_router_alert",
            Self::ExtHeadersTooLong => "ext_headers_too_long",
            Self::BadHopLimit => "bad_hop_limit",
            Self::NotLinkLocalSource => "not_link_local_source",
            Self::BadIcmpv6Checksum => "bad_icmpv6_checksum",
            Self::BadMldLength => "bad_mld_length",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < COUNTER_SLOTS {
        assert!(Counter::ALL[i] as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < DROP_SLOTS {
        assert!(DropReason::ALL[i] as usize == i);
        i += 1;
    }
};

/// What the fast path did with multicast data frames (all ports, per CPU).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCounter {
    /// Registered group: redirected to its member and router ports in XDP.
    Forwarded = 0,
    /// The host itself listens: passed to the kernel.
    LocalListener = 1,
    /// 224.0.0.0/24, ff02::1 and IPv6 groups of scope 0 and 1: passed to
    /// the kernel, which floods them.
    LinkLocal = 2,
    /// Unregistered group, flooded by the kernel.
    UnregisteredFlooded = 3,
    /// Unregistered group, forwarded to router ports only.
    UnregisteredToRouters = 4,
    /// Unregistered group, dropped by policy.
    UnregisteredDropped = 5,
    /// IGMP reports and leaves sent to router ports only.
    ReportsToRouters = 6,
    /// Copies not sent to a port by the egress filter (not a member, blocked).
    EgressFiltered = 7,
    /// Of the forwarded frames, those redirected to the group's only port
    /// rather than broadcast.
    ForwardedSolePort = 8,
    /// Of the forwarded frames, those broadcast into the group's destination
    /// set rather than to every port.
    ForwardedToSet = 9,
    /// Copies the tc classifier could not make (`bpf_clone_redirect`
    /// failed: no memory, the port went away): that port missed the frame.
    CloneFailed = 10,
    /// A frame in a VLAN its port is not a member of, on a VLAN-filtering
    /// bridge: left to the bridge, whose ingress filter drops it.
    OutsidePortVlans = 11,
    /// On a VLAN-filtering bridge, an unregistered group's data or a report:
    /// left to the bridge's own per-VLAN snooping, as the README's recipe
    /// for such bridges keeps it on.
    ToBridgeSnooping = 12,
}

/// Decisions in use in [`DataCounters::frames`].
pub const DATA_COUNTER_SLOTS: usize = 13;
/// Room for decisions (see [`COUNTER_CAPACITY`]).
pub const DATA_COUNTER_CAPACITY: usize = 32;
const _: () = assert!(DATA_COUNTER_SLOTS <= DATA_COUNTER_CAPACITY);

/// Value of the per-CPU `DATA_COUNTERS` array (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataCounters {
    /// Indexed by [`DataCounter`]; the slots past [`DATA_COUNTER_SLOTS`] stay 0.
    pub frames: [u64; DATA_COUNTER_CAPACITY],
}

const _: () = assert!(core::mem::size_of::<DataCounters>() == 256);

impl Default for DataCounters {
    fn default() -> Self {
        Self {
            frames: [0; DATA_COUNTER_CAPACITY],
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for DataCounters {}

impl DataCounter {
    pub const ALL: [DataCounter; DATA_COUNTER_SLOTS] = [
        Self::Forwarded,
        Self::LocalListener,
        Self::LinkLocal,
        Self::UnregisteredFlooded,
        Self::UnregisteredToRouters,
        Self::UnregisteredDropped,
        Self::ReportsToRouters,
        Self::EgressFiltered,
        Self::ForwardedSolePort,
        Self::ForwardedToSet,
        Self::CloneFailed,
        Self::OutsidePortVlans,
        Self::ToBridgeSnooping,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::LocalListener => "local_listener",
            Self::LinkLocal => "link_local",
            Self::UnregisteredFlooded => "unregistered_flooded",
            Self::UnregisteredToRouters => "unregistered_to_routers",
            Self::UnregisteredDropped => "unregistered_dropped",
            Self::ReportsToRouters => "reports_to_routers",
            Self::EgressFiltered => "egress_filtered",
            Self::ForwardedSolePort => "forwarded_sole_port",
            Self::ForwardedToSet => "forwarded_to_set",
            Self::CloneFailed => "clone_failed",
            Self::OutsidePortVlans => "outside_port_vlans",
            Self::ToBridgeSnooping => "to_bridge_snooping",
        }
    }
}
