//! The IPv4 header of an IGMP message, checked as RFC 2236 §2 and RFC 3376 §4 ask.

use igmp_common::DropReason;
use network_types::ip::Ipv4Hdr;

use crate::{
    checksum,
    frame::{Frame, Hook},
};

const IP_MF: u16 = 0x2000;
const IP_OFFSET_MASK: u16 = 0x1fff;
/// The smallest IGMP message (v1/v2, RFC 2236 §2).
pub const IGMP_MIN_LEN: usize = 8;

/// Where the protocol number sits in an IPv4 header.
const PROTOCOL_OFFSET: usize = 9;

/// The IP protocol number of the IPv4 header at `l3_offset`. Only that byte
/// has to be there: a header cut after it still says IGMP, and the IGMP path
/// then counts it as truncated instead of letting it pass unseen.
#[inline(always)]
pub fn protocol<H: Hook>(frame: &Frame<H>, l3_offset: usize) -> Option<u8> {
    frame.read::<u8>(l3_offset + PROTOCOL_OFFSET)
}

/// What the IP header says about the IGMP message it carries.
pub struct IgmpPacket {
    /// IP source, network order in a native `u32` (one register, one compare).
    pub source: u32,
    pub destination: u32,
    /// Offset of the IGMP header in the frame.
    pub offset: usize,
    /// Length of the IGMP message (IP total length less the IP header).
    pub len: usize,
}

/// Checks the IPv4 header at `l3_offset` and locates the IGMP message.
#[inline(always)]
pub fn igmp_packet<H: Hook>(frame: &Frame<H>, l3_offset: usize) -> Result<IgmpPacket, DropReason> {
    let ip: &Ipv4Hdr = frame.header(l3_offset).ok_or(DropReason::Truncated)?;
    let header_len = usize::from(ip.vihl & 0x0f) * 4;
    if ip.vihl >> 4 != 4 || header_len < Ipv4Hdr::LEN {
        return Err(DropReason::BadIpHeader);
    }
    let total_len = usize::from(u16::from_be_bytes(ip.tot_len));
    if total_len < header_len + IGMP_MIN_LEN {
        return Err(DropReason::BadIpLength);
    }
    // Ethernet padding may follow the datagram; a datagram longer than the frame may not.
    if !frame.holds(l3_offset + total_len) {
        return Err(DropReason::Truncated);
    }
    let frags = u16::from_be_bytes(ip.frags);
    if frags & (IP_MF | IP_OFFSET_MASK) != 0 {
        return Err(DropReason::IpFragment);
    }
    if ip.ttl != 1 {
        return Err(DropReason::BadTtl);
    }
    if !checksum::is_valid(frame, l3_offset, header_len) {
        return Err(DropReason::BadIpChecksum);
    }
    Ok(IgmpPacket {
        source: u32::from_ne_bytes(ip.src_addr),
        destination: u32::from_ne_bytes(ip.dst_addr),
        offset: l3_offset + header_len,
        len: total_len - header_len,
    })
}
