//! MLD classification: one function per message type (RFC 2710 §3, RFC 3810
//! §5), learning into MLD's tables through the same `membership` and `v3`
//! code as IGMP.

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use igmp_common::{mld_version, query_flags, Counter, DropReason, MAX_V3_SOURCES_PER_RECORD};
use network_types::ip::Ipv6Hdr;

use crate::{
    addr::{
        is_link_local_unicast6, is_multicast6, is_never_snooped6, ALL_MLDV2_ROUTERS, ALL_NODES,
        ALL_PIM_ROUTERS6, ALL_ROUTERS6,
    },
    checksum::{self, Kept},
    data,
    events::now,
    frame::{Frame, Hook},
    headers::{MldHeader, MldQueryTail},
    ip6::{self, MldPacket, UpperLayer},
    l2::L2,
    limits,
    maps::port_settings,
    membership::{self, GroupReport, Heard, QueryInfo},
    stats::PortStats,
    v3,
    verdict::Verdict,
};

/// MLD's messages come from, and are about, IPv6 addresses.
type Origin = membership::Origin<[u8; 16]>;

const QUERY: u8 = 130;
const V1_REPORT: u8 = 131;
const DONE: u8 = 132;
const V2_REPORT: u8 = 143;
/// Not an MLD type: `MldMessage::kind` of a PIM hello (no ICMPv6 type is 0).
const PIM_HELLO: u8 = 0;

/// MLDv1 messages, and the part of an MLDv2 query they share (RFC 2710 §3).
const V1_LEN: usize = 24;
/// An MLDv2 query without sources (RFC 3810 §5.1).
const V2_QUERY_MIN_LEN: usize = 28;
/// An MLDv2 report without records (RFC 3810 §5.2).
const V2_REPORT_MIN_LEN: usize = 8;
/// Suppress Router-Side Processing, in the S/QRV octet (RFC 3810 §5.1.7).
const S_FLAG: u8 = 0x08;

/// Whether ICMPv6 type `kind` is an MLD message.
#[inline(always)]
pub fn is_mld(kind: u8) -> bool {
    matches!(kind, QUERY | V1_REPORT | DONE | V2_REPORT)
}

/// Whether ICMPv6 type `kind` is a report or a Done: meant for routers.
#[inline(always)]
pub fn is_signalling(kind: u8) -> bool {
    matches!(kind, V1_REPORT | DONE | V2_REPORT)
}

/// A valid MLD message, as `validate` leaves it for the program that
/// learns from it (`learn`), reached by a tail call: this CPU's
/// `MLD_MESSAGE` entry, as a tail call carries nothing else over.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MldMessage {
    pub sender: [u8; 16],
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    /// Offset and length of the ICMPv6 message.
    pub offset: u32,
    pub len: u32,
    pub kind: u8,
    pub router_mode: u8,
    pub fast_leave: u8,
    _pad: u8,
    pub max_groups: u32,
    /// When the message arrived (`Origin::now`).
    pub now: u64,
}

#[btf_map]
static MLD_MESSAGE: PerCpuArray<MldMessage, 1> = PerCpuArray::new();

/// Which program learns from a message of type `kind`: MLDv2 reports, whose
/// record walk needs a stack of its own, or the others.
#[inline(always)]
fn learner(kind: u8) -> Verdict {
    if kind == V2_REPORT {
        Verdict::LearnMldReport
    } else {
        Verdict::LearnMld
    }
}

/// Checks an MLD frame whose chain leads to ICMPv6 at `upper.offset` and
/// says where it goes: on to the program that learns from it (`Verdict::
/// LearnMld`, `LearnMldReport`) when valid, which then says where it goes;
/// to the kernel otherwise. Reports over the port's rate limit are
/// dropped, as IGMP's are. A function of its own (a BPF-to-BPF call): its
/// locals are gone by the time tc forwards.
#[inline(never)]
pub fn validate<H: Hook>(frame: &Frame<H>, ifindex: u32, l2: &L2, upper: &UpperLayer) -> Verdict {
    let stats = PortStats::for_port(ifindex);
    stats.count(Counter::MldFrames);
    match check::<H>(frame, ifindex, l2, upper) {
        Ok(learner) => learner,
        Err(reason) => {
            stats.reject(reason);
            if reason == DropReason::RateLimited {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
    }
}

/// Validates the whole message as RFC 3810 and RFC 2710 ask of every
/// message type, writes it to `MLD_MESSAGE`, and names the learner.
#[inline(always)]
fn check<H: Hook>(
    frame: &Frame<H>,
    ifindex: u32,
    l2: &L2,
    upper: &UpperLayer,
) -> Result<Verdict, DropReason> {
    let settings = port_settings(ifindex);
    if settings.blocked != 0 {
        return Err(DropReason::PortBlocked);
    }
    if upper.fragment {
        return Err(DropReason::IpFragment);
    }
    let packet = ip6::mld_packet(frame, l2.l3_offset, upper)?;
    let [kind, _] = frame
        .read::<[u8; 2]>(packet.offset)
        .ok_or(DropReason::Truncated)?;
    if !upper.router_alert {
        return Err(DropReason::NoRouterAlert);
    }
    if packet.ip.hop_limit != 1 {
        return Err(DropReason::BadHopLimit);
    }
    check_source(&packet, kind)?;
    // Before the checksum and any table work: a flood pays only this far.
    if kind != QUERY && !limits::report_allowed(ifindex, &settings) {
        return Err(DropReason::RateLimited);
    }
    if packet.len > checksum::MAX_SPAN || packet.len < min_len(kind) {
        return Err(DropReason::BadMldLength);
    }
    // A report's record walk reads the copy the checksum is summed from.
    let kept = if kind == V2_REPORT {
        Kept::Copy
    } else {
        Kept::No
    };
    if !checksum::is_valid_icmpv6(frame, l2.l3_offset, packet.offset, packet.len, kept) {
        return Err(DropReason::BadIcmpv6Checksum);
    }
    if kind == V2_REPORT {
        // Its records are checked by the walk, whole, before it applies any.
        if packet.ip.dst_addr != ALL_MLDV2_ROUTERS {
            return Err(DropReason::BadDestination);
        }
    } else {
        let header: &MldHeader = frame.header(packet.offset).ok_or(DropReason::Truncated)?;
        match kind {
            QUERY => check_query(frame, &packet, header)?,
            V1_REPORT => check_report(&packet, header, &header.group)?,
            _ => check_report(&packet, header, &ALL_ROUTERS6)?,
        }
    }
    // Read once the message proved valid, so that a malformed one never pays for it.
    let now = now();
    // Index 0 of a one-entry array is always there; the check is the verifier's.
    let message = MLD_MESSAGE.get_ptr_mut(0).ok_or(DropReason::Truncated)?;
    // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
    unsafe {
        *message = MldMessage {
            sender: packet.ip.src_addr,
            ifindex,
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            offset: packet.offset as u32,
            len: packet.len as u32,
            kind,
            router_mode: settings.router_mode,
            fast_leave: settings.fast_leave,
            _pad: 0,
            max_groups: settings.max_groups,
            now,
        };
    }
    Ok(learner(kind))
}

/// What `learn` made of a message: where it goes follows from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A report or Done, learned from: meant for routers (`data::report`).
    Report,
    /// A query or PIM hello, or a message that taught nothing: for the kernel.
    Other,
}

/// Learns from the message `validate` left in `MLD_MESSAGE`: run by the
/// programs it tail-calls. `v2_report` says which of them this is.
#[inline(always)]
pub fn learn<H: Hook>(ctx: &H::Context, v2_report: bool) -> Learned {
    let frame = Frame::<H>::new(ctx);
    let Some(message) = MLD_MESSAGE.get_ptr(0) else {
        return Learned::Other;
    };
    // SAFETY: this CPU's entry, written by `validate` just before the tail call.
    let message = unsafe { &*message };
    let stats = PortStats::for_port(message.ifindex);
    let origin = Origin {
        ifindex: message.ifindex,
        vlan: message.vlan,
        inner_vlan: message.inner_vlan,
        sender: message.sender,
        stats,
        router_mode: message.router_mode,
        fast_leave: message.fast_leave,
        max_groups: message.max_groups,
        now: message.now,
    };
    let offset = message.offset as usize;
    let len = message.len as usize;
    let result = if v2_report {
        v2_report_at(&frame, offset, len, &origin)
    } else {
        other_at(&frame, message.kind, offset, len, &origin)
    };
    match result {
        Ok(()) if is_signalling(message.kind) => Learned::Report,
        Ok(()) => Learned::Other,
        Err(reason) => {
            stats.reject(reason);
            Learned::Other
        }
    }
}

/// Where a message `learn` made `learned` of, from port `ingress`, goes: a
/// report or Done to router ports only once an MLD querier is known
/// (`data::report`), as IGMP's; everything else to the kernel.
#[inline(always)]
pub fn verdict(learned: Learned, ingress: u32) -> Verdict {
    match learned {
        Learned::Report => data::report::<[u8; 16]>(ingress),
        Learned::Other => Verdict::Pass,
    }
}

/// MLDv1 reports, Done and queries, with the 24 octets they all have.
#[inline(always)]
fn other_at<H: Hook>(
    frame: &Frame<H>,
    kind: u8,
    offset: usize,
    len: usize,
    origin: &Origin,
) -> Result<(), DropReason> {
    if kind == PIM_HELLO {
        origin.stats.count(Counter::PimHello);
        membership::router_seen(origin, Heard::PimHello);
        return Ok(());
    }
    let header: &MldHeader = frame.header(offset).ok_or(DropReason::Truncated)?;
    match kind {
        QUERY => query(frame, offset, len, header, origin),
        V1_REPORT => v1_report(header, origin),
        _ => done(header, origin),
    }
}

/// A PIM hello (RFC 7761 §4.9.2) to ff02::d, all PIM routers: the port
/// leads to a multicast router that may not query, and must receive the
/// IPv6 multicast it may route, as IGMP's `pim` does for IPv4. Learned by
/// `igmp_mld`, as MLD messages are; the hello goes on to the kernel.
#[inline(never)]
pub fn pim_hello<H: Hook>(frame: &Frame<H>, ifindex: u32, l2: &L2, upper: &UpperLayer) -> Verdict {
    let Some(ip) = frame.header::<Ipv6Hdr>(l2.l3_offset) else {
        return Verdict::Pass;
    };
    let is_hello = frame
        .read::<[u8; 2]>(upper.offset)
        .is_some_and(|[kind, _]| kind == PIM_V2_HELLO);
    if ip.dst_addr != ALL_PIM_ROUTERS6 || !is_hello {
        return Verdict::Pass;
    }
    let settings = port_settings(ifindex);
    if settings.blocked != 0 {
        return Verdict::Pass;
    }
    let Some(message) = MLD_MESSAGE.get_ptr_mut(0) else {
        return Verdict::Pass;
    };
    let now = now();
    // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
    unsafe {
        *message = MldMessage {
            sender: ip.src_addr,
            ifindex,
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            offset: upper.offset as u32,
            len: 0,
            kind: PIM_HELLO,
            router_mode: settings.router_mode,
            fast_leave: settings.fast_leave,
            _pad: 0,
            max_groups: settings.max_groups,
            now,
        };
    }
    Verdict::LearnMld
}

/// PIM's protocol number, as IPv6's Next Header.
pub const PIM: u8 = 103;
/// PIM version 2 (high nibble), message type 0: Hello.
const PIM_V2_HELLO: u8 = 0x20;

/// A report or Done: about a multicast address, sent to it or to `also`
/// (RFC 2710 §3.6: reports to the address; §3.7: Done to all routers,
/// or to the address as some hosts send it, which the bridge accepts).
#[inline(always)]
fn check_report(
    packet: &MldPacket<'_>,
    header: &MldHeader,
    also: &[u8; 16],
) -> Result<(), DropReason> {
    if !is_multicast6(&header.group) {
        return Err(DropReason::NotMulticastGroup);
    }
    if packet.ip.dst_addr != header.group && packet.ip.dst_addr != *also {
        return Err(DropReason::BadDestination);
    }
    Ok(())
}

/// A query: 24 octets (MLDv1) or 28 and its sources (MLDv2), anything else
/// invalid (RFC 3810 §8.1), sent where its kind goes.
#[inline(always)]
fn check_query<H: Hook>(
    frame: &Frame<H>,
    packet: &MldPacket<'_>,
    header: &MldHeader,
) -> Result<(), DropReason> {
    if packet.len != V1_LEN {
        if packet.len < V2_QUERY_MIN_LEN {
            return Err(DropReason::BadMldLength);
        }
        let tail: &MldQueryTail = frame
            .header(packet.offset + V1_LEN)
            .ok_or(DropReason::Truncated)?;
        let sources = usize::from(u16::from_be_bytes(tail.sources));
        if V2_QUERY_MIN_LEN + sources * 16 > packet.len {
            return Err(DropReason::BadMldLength);
        }
    }
    check_query_destination(packet, &header.group)
}

/// Queries come from a link-local address (RFC 3810 §5.1.14); reports and
/// Done from one too, or from :: while the host has none yet (§5.2.13).
#[inline(always)]
fn check_source(packet: &MldPacket<'_>, kind: u8) -> Result<(), DropReason> {
    let link_local = is_link_local_unicast6(&packet.ip.src_addr);
    let allowed = link_local || (kind != QUERY && packet.ip.src_addr == [0; 16]);
    if allowed {
        Ok(())
    } else {
        Err(DropReason::NotLinkLocalSource)
    }
}

/// The shortest message of type `kind`.
#[inline(always)]
fn min_len(kind: u8) -> usize {
    if kind == V2_REPORT {
        V2_REPORT_MIN_LEN
    } else {
        V1_LEN
    }
}

/// MLDv1 reports (RFC 2710 §3.6).
#[inline(always)]
fn v1_report(header: &MldHeader, origin: &Origin) -> Result<(), DropReason> {
    origin.stats.count(Counter::MldV1Report);
    let group = header.group;
    if is_never_snooped6(&group) {
        origin.stats.count(Counter::LinkLocalReport);
        return Ok(());
    }
    let report = GroupReport {
        group,
        version: mld_version::V1,
        record_type: 0,
    };
    membership::report_exclude(origin, &report);
    membership::v1_host_seen(origin, group);
    Ok(())
}

/// Done (RFC 2710 §3.7).
#[inline(always)]
fn done(header: &MldHeader, origin: &Origin) -> Result<(), DropReason> {
    origin.stats.count(Counter::MldDone);
    let group = header.group;
    if is_never_snooped6(&group) {
        origin.stats.count(Counter::LinkLocalReport);
        return Ok(());
    }
    let report = GroupReport {
        group,
        version: mld_version::V1,
        record_type: 0,
    };
    membership::leave(origin, &report);
    Ok(())
}

/// MLDv2 reports (RFC 3810 §5.2): the records, walked.
#[inline(always)]
fn v2_report_at<H: Hook>(
    frame: &Frame<H>,
    offset: usize,
    len: usize,
    origin: &Origin,
) -> Result<(), DropReason> {
    let [_, _, _, _, _, _, high, low] =
        frame.read::<[u8; 8]>(offset).ok_or(DropReason::Truncated)?;
    let records = usize::from(u16::from_be_bytes([high, low]));
    // `validate` summed the message from a copy (`Kept::Copy`), which the
    // walk reads.
    v3::report(len, records, *origin)
}

/// Queries, checked by `check_query`: the version is told by length (RFC
/// 3810 §8.1).
#[inline(always)]
fn query<H: Hook>(
    frame: &Frame<H>,
    offset: usize,
    len: usize,
    header: &MldHeader,
    origin: &Origin,
) -> Result<(), DropReason> {
    let mut info = QueryInfo {
        group: header.group,
        version: mld_version::V1,
        robustness: 0,
        qqic: 0,
        max_resp_code: max_resp_code(header.max_response()),
        flags: 0,
    };
    let mut sources = 0;
    if len != V1_LEN {
        let tail: &MldQueryTail = frame.header(offset + V1_LEN).ok_or(DropReason::Truncated)?;
        sources = usize::from(u16::from_be_bytes(tail.sources));
        info.version = mld_version::V2;
        info.robustness = tail.s_qrv & 0x07;
        info.qqic = tail.qqic;
        if tail.s_qrv & S_FLAG != 0 {
            info.flags |= query_flags::SUPPRESS;
        }
        if sources > 0 {
            info.flags |= query_flags::SOURCES;
        }
        if sources > MAX_V3_SOURCES_PER_RECORD {
            info.flags |= query_flags::SOURCES_CUT;
        }
    }
    origin.stats.count(if info.version == mld_version::V1 {
        Counter::MldV1Query
    } else {
        Counter::MldV2Query
    });
    membership::router_seen(origin, Heard::Query(&info));
    membership::query_seen(origin, &info);
    // A general query lists no sources (RFC 3810 §5.1.10); a listed source
    // matters only for the timers it lowers, which the S flag forbids.
    if sources > 0 && header.group != [0; 16] && info.flags & query_flags::SUPPRESS == 0 {
        if sources > MAX_V3_SOURCES_PER_RECORD {
            origin.stats.add(
                Counter::SourcesCut,
                (sources - MAX_V3_SOURCES_PER_RECORD) as u64,
            );
        }
        let first = offset + V2_QUERY_MIN_LEN;
        let walked = sources.min(MAX_V3_SOURCES_PER_RECORD) as u32;
        v3::query_sources(frame, first, walked, &info, origin);
    }
    Ok(())
}

/// General queries go to ff02::1 (RFC 3810 §5.1.15); address-specific ones
/// to their address, or to ff02::1 as some queriers send them.
#[inline(always)]
fn check_query_destination(packet: &MldPacket<'_>, group: &[u8; 16]) -> Result<(), DropReason> {
    if *group == [0; 16] {
        return if packet.ip.dst_addr == ALL_NODES {
            Ok(())
        } else {
            Err(DropReason::BadDestination)
        };
    }
    if !is_multicast6(group) {
        return Err(DropReason::NotMulticastGroup);
    }
    if packet.ip.dst_addr != *group && packet.ip.dst_addr != ALL_NODES {
        return Err(DropReason::BadDestination);
    }
    Ok(())
}

/// MLD's Maximum Response Code (milliseconds, floating point from 32768 on:
/// RFC 3810 §5.1.3) as IGMPv3's Max Resp Code (tenths of a second, floating
/// point from 128 on: RFC 3376 §4.1.1), the one unit the daemon's timers and
/// the events carry.
#[inline(always)]
fn max_resp_code(code: u16) -> u8 {
    let millis = if code < 0x8000 {
        u32::from(code)
    } else {
        let mantissa = u32::from(code & 0x0fff);
        let exponent = u32::from((code >> 12) & 0x07);
        (mantissa | 0x1000) << (exponent + 3)
    };
    let tenths = millis / 100;
    if tenths < 128 {
        return tenths as u8;
    }
    // The largest exponent IGMP's code has is 7: (0x1f) << 10 tenths at most.
    let mut exponent = 0u32;
    while exponent < 7 && tenths >> (exponent + 3) > 0x1f {
        exponent += 1;
    }
    let mantissa = ((tenths >> (exponent + 3)).min(0x1f) & 0x0f) as u8;
    0x80 | ((exponent as u8) << 4) | mantissa
}
