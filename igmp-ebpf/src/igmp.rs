//! IGMP classification: one function per message type (RFC 2236 §2, RFC 3376 §4).

use aya_log_ebpf::debug;
use igmp_common::{igmp_version, query_flags, Counter, DropReason, MAX_V3_SOURCES_PER_RECORD};

use crate::{
    addr::{is_link_local, is_multicast, ALL_HOSTS, ALL_ROUTERS, ALL_V3_ROUTERS},
    checksum, data,
    events::now,
    frame::{Frame, Hook},
    headers::{IgmpHeader, V3QueryTail},
    ip::{self, IgmpPacket},
    l2::L2,
    limits,
    maps::port_settings,
    membership::{self, GroupReport, Heard, QueryInfo},
    stats::PortStats,
    v3,
    verdict::Verdict,
};

const MEMBERSHIP_QUERY: u8 = 0x11;
const V1_REPORT: u8 = 0x12;
const V2_REPORT: u8 = 0x16;
const V2_LEAVE: u8 = 0x17;
const V3_REPORT: u8 = 0x22;

/// IGMP's messages come from, and are about, IPv4 addresses.
type Origin = membership::Origin<[u8; 4]>;

const V3_QUERY_MIN_LEN: usize = 12;
/// Suppress Router-Side Processing, in the S/QRV octet (RFC 3376 §4.1.5).
const S_FLAG: u8 = 0x08;

/// Learns from an IGMP frame and says where it goes: valid reports and
/// leaves may go to router ports only (`data::report`); everything else,
/// queries and rejected frames included, to the kernel.
pub fn handle<H: Hook>(ctx: &H::Context, frame: &Frame<H>, ifindex: u32, l2: &L2) -> Verdict {
    let stats = PortStats::for_port(ifindex);
    stats.count(Counter::IgmpFrames);
    match classify(ctx, frame, ifindex, l2, &stats) {
        Ok(Message::Report) => data::report::<[u8; 4]>(ifindex),
        Ok(Message::Other) => Verdict::Pass,
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

/// What kind of valid message a frame held.
enum Message {
    /// A membership report or a leave: meant for routers (RFC 4541 §2.1.1).
    Report,
    /// A query or another IGMP type: for every host.
    Other,
}

#[inline(always)]
fn classify<H: Hook>(
    ctx: &H::Context,
    frame: &Frame<H>,
    ifindex: u32,
    l2: &L2,
    stats: &PortStats,
) -> Result<Message, DropReason> {
    let settings = port_settings(ifindex);
    if settings.blocked != 0 {
        return Err(DropReason::PortBlocked);
    }
    let packet = ip::igmp_packet(frame, l2.l3_offset)?;
    let header: &IgmpHeader = frame.header(packet.offset).ok_or(DropReason::Truncated)?;
    let kind = header.kind;
    if !matches!(
        kind,
        MEMBERSHIP_QUERY | V1_REPORT | V2_REPORT | V2_LEAVE | V3_REPORT
    ) {
        stats.count(Counter::OtherIgmpType);
        return Ok(Message::Other);
    }
    // Before the checksum and any table work: a flood pays only this far.
    if kind != MEMBERSHIP_QUERY && !limits::report_allowed(ifindex, &settings) {
        return Err(DropReason::RateLimited);
    }
    if packet.len > checksum::MAX_SPAN {
        return Err(DropReason::BadIgmpLength);
    }
    // A v3 report's record walk reads the copy the checksum is summed from.
    // Two calls rather than one taking `Kept`: with the choice in a
    // register, igmp_snoop_tc's frame grows by 48 bytes, past 6.1's limit
    // beside tc's forwarding frames.
    let valid = if kind == V3_REPORT {
        checksum::is_valid_kept(frame, packet.offset, packet.len)
    } else {
        checksum::is_valid(frame, packet.offset, packet.len)
    };
    if !valid {
        return Err(DropReason::BadIgmpChecksum);
    }
    let source = packet.source.to_ne_bytes();
    // Read once the message proved valid, so that a malformed one never pays for it.
    let origin = Origin::new(ifindex, l2, source, *stats, &settings, now());
    match kind {
        MEMBERSHIP_QUERY => query(ctx, frame, &packet, header, &origin).map(|()| Message::Other),
        V1_REPORT => report(&packet, header, &origin, igmp_version::V1).map(|()| Message::Report),
        V2_REPORT => report(&packet, header, &origin, igmp_version::V2).map(|()| Message::Report),
        V2_LEAVE => leave(&packet, header, &origin).map(|()| Message::Report),
        _ => v3_report(&packet, header, &origin).map(|()| Message::Report),
    }
}

/// v3 reports, sent to all v3-capable routers (RFC 3376 §4.2.14).
#[inline(always)]
fn v3_report(packet: &IgmpPacket, header: &IgmpHeader, origin: &Origin) -> Result<(), DropReason> {
    if packet.destination != ALL_V3_ROUTERS {
        return Err(DropReason::BadDestination);
    }
    v3::report(packet.len, header.v3_records(), *origin)
}

#[inline(always)]
fn group_of(header: &IgmpHeader) -> Result<[u8; 4], DropReason> {
    if !is_multicast(header.group) {
        return Err(DropReason::NotMulticastGroup);
    }
    Ok(header.group)
}

/// v1 and v2 membership reports, sent to the group itself (RFC 2236 §9).
#[inline(always)]
fn report(
    packet: &IgmpPacket,
    header: &IgmpHeader,
    origin: &Origin,
    version: u8,
) -> Result<(), DropReason> {
    let group = group_of(header)?;
    if packet.destination != u32::from_ne_bytes(group) {
        return Err(DropReason::BadDestination);
    }
    origin.stats.count(if version == igmp_version::V1 {
        Counter::V1Report
    } else {
        Counter::V2Report
    });
    if is_link_local(group) {
        origin.stats.count(Counter::LinkLocalReport);
        return Ok(());
    }
    let report = GroupReport {
        group,
        version,
        record_type: 0,
    };
    membership::report_exclude(origin, &report);
    if version == igmp_version::V1 {
        membership::v1_host_seen(origin, group);
    }
    Ok(())
}

/// v2 leave, sent to all-routers (RFC 2236 §9); older hosts send it to the
/// group, which the Linux bridge also accepts.
#[inline(always)]
fn leave(packet: &IgmpPacket, header: &IgmpHeader, origin: &Origin) -> Result<(), DropReason> {
    let group = group_of(header)?;
    if packet.destination != ALL_ROUTERS && packet.destination != u32::from_ne_bytes(group) {
        return Err(DropReason::BadDestination);
    }
    origin.stats.count(Counter::V2Leave);
    if is_link_local(group) {
        origin.stats.count(Counter::LinkLocalReport);
        return Ok(());
    }
    let report = GroupReport {
        group,
        version: igmp_version::V2,
        record_type: 0,
    };
    membership::leave(origin, &report);
    Ok(())
}

/// Membership queries. The version is told by length and Max Resp Code
/// (RFC 3376 §7.1): 8 octets and code 0 is v1, 8 octets otherwise v2, 12 or
/// more v3; 9 to 11 octets are ignored.
#[inline(always)]
fn query<H: Hook>(
    ctx: &H::Context,
    frame: &Frame<H>,
    packet: &IgmpPacket,
    header: &IgmpHeader,
    origin: &Origin,
) -> Result<(), DropReason> {
    let mut info = QueryInfo {
        group: header.group,
        version: igmp_version::V2,
        robustness: 0,
        qqic: 0,
        max_resp_code: header.max_resp_code,
        flags: 0,
    };
    let mut sources = 0;
    if packet.len == ip::IGMP_MIN_LEN {
        if header.max_resp_code == 0 {
            info.version = igmp_version::V1;
        }
    } else if packet.len < V3_QUERY_MIN_LEN {
        return Err(DropReason::BadIgmpLength);
    } else {
        let tail: &V3QueryTail = frame
            .header(packet.offset + ip::IGMP_MIN_LEN)
            .ok_or(DropReason::Truncated)?;
        sources = usize::from(u16::from_be_bytes(tail.sources));
        if V3_QUERY_MIN_LEN + sources * 4 > packet.len {
            return Err(DropReason::BadIgmpLength);
        }
        info.version = igmp_version::V3;
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
    check_query_destination(packet, header.group)?;
    origin.stats.count(match info.version {
        igmp_version::V1 => Counter::V1Query,
        igmp_version::V2 => Counter::V2Query,
        _ => Counter::V3Query,
    });
    if origin.sender == [0; 4] {
        // A proxy query (RFC 4541 §2.1.1): no router behind it.
        origin.stats.count(Counter::ProxyQuery);
    } else {
        if membership::router_seen(origin, Heard::Query(&info)) {
            debug!(
                ctx,
                "router port {} learned from querier {:i}",
                origin.ifindex,
                u32::from_be_bytes(origin.sender)
            );
        }
    }
    membership::query_seen(origin, &info);
    // A general query lists no sources (RFC 3376 §4.1.8); a listed source
    // matters only for the timers it lowers, which the S flag forbids.
    if sources > 0 && header.group != [0; 4] && info.flags & query_flags::SUPPRESS == 0 {
        if sources > MAX_V3_SOURCES_PER_RECORD {
            origin.stats.add(
                Counter::SourcesCut,
                (sources - MAX_V3_SOURCES_PER_RECORD) as u64,
            );
        }
        let first = packet.offset + V3_QUERY_MIN_LEN;
        let walked = sources.min(MAX_V3_SOURCES_PER_RECORD) as u32;
        v3::query_sources(frame, first, walked, &info, origin);
    }
    Ok(())
}

/// General queries go to all-hosts (RFC 3376 §4.1.12). Group-specific ones
/// go to their group, or to all-hosts as the Linux bridge sends them.
#[inline(always)]
fn check_query_destination(packet: &IgmpPacket, group: [u8; 4]) -> Result<(), DropReason> {
    if group == [0; 4] {
        return if packet.destination == ALL_HOSTS {
            Ok(())
        } else {
            Err(DropReason::BadDestination)
        };
    }
    if !is_multicast(group) {
        return Err(DropReason::NotMulticastGroup);
    }
    if packet.destination != u32::from_ne_bytes(group) && packet.destination != ALL_HOSTS {
        return Err(DropReason::BadDestination);
    }
    Ok(())
}
