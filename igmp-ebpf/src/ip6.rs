//! The IPv6 header and its extension-header chain (RFC 8200 §4), read as
//! far as MLD needs: where the upper-layer header starts, and whether a
//! Hop-by-Hop header with a Router Alert came first (RFC 3810 §5, RFC 2711).

use igmp_common::{DropReason, MAX_HOP_BY_HOP_OPTIONS, MAX_IPV6_EXT_HEADERS};
use network_types::ip::Ipv6Hdr;

use crate::frame::{Frame, Hook};

pub const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;
pub const ICMPV6: u8 = 58;

/// Option types inside a Hop-by-Hop header (RFC 8200 §4.2, RFC 2711).
const PAD1: u8 = 0;
const ROUTER_ALERT: u8 = 5;
/// The Router Alert's value for MLD messages (RFC 2711 §2.1).
const ROUTER_ALERT_MLD: [u8; 2] = [0, 0];

/// Where the chain leads.
pub struct UpperLayer {
    /// The upper-layer protocol (Next Header of the last extension header).
    pub protocol: u8,
    /// Offset of its header in the frame.
    pub offset: usize,
    /// The first header was Hop-by-Hop with an MLD Router Alert.
    pub router_alert: bool,
    /// A Fragment header was in the chain.
    pub fragment: bool,
}

/// Walks the extension headers of the IPv6 packet at `l3_offset`. `Err`
/// when the chain is longer than the walk's bound or runs past the frame.
#[inline(always)]
pub fn upper_layer<H: Hook>(frame: &Frame<H>, l3_offset: usize) -> Result<UpperLayer, DropReason> {
    let ip: &Ipv6Hdr = frame.header(l3_offset).ok_or(DropReason::Truncated)?;
    let mut upper = UpperLayer {
        protocol: ip.next_hdr,
        offset: l3_offset + Ipv6Hdr::LEN,
        router_alert: false,
        fragment: false,
    };
    if upper.protocol == HOP_BY_HOP {
        upper.router_alert = has_mld_router_alert(frame, upper.offset);
    }
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match upper.protocol {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                let [_, units] = frame
                    .read::<[u8; 2]>(upper.offset)
                    .ok_or(DropReason::Truncated)?;
                (usize::from(units) + 1) * 8
            }
            AUTHENTICATION => {
                let [_, words] = frame
                    .read::<[u8; 2]>(upper.offset)
                    .ok_or(DropReason::Truncated)?;
                (usize::from(words) + 2) * 4
            }
            FRAGMENT => {
                upper.fragment = true;
                8
            }
            _ => return Ok(upper),
        };
        let [next, _] = frame
            .read::<[u8; 2]>(upper.offset)
            .ok_or(DropReason::Truncated)?;
        upper.protocol = next;
        upper.offset += len;
        // The header ends inside the frame, or it was cut short.
        if !frame.holds(upper.offset) {
            return Err(DropReason::Truncated);
        }
    }
    match upper.protocol {
        HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | AUTHENTICATION | FRAGMENT => {
            Err(DropReason::ExtHeadersTooLong)
        }
        _ => Ok(upper),
    }
}

/// Whether the Hop-by-Hop header at `at` carries a Router Alert for MLD
/// among its first options.
#[inline(always)]
fn has_mld_router_alert<H: Hook>(frame: &Frame<H>, at: usize) -> bool {
    let Some([_, units]) = frame.read::<[u8; 2]>(at) else {
        return false;
    };
    let end = at + (usize::from(units) + 1) * 8;
    let mut option = at + 2;
    for _ in 0..MAX_HOP_BY_HOP_OPTIONS {
        if option + 2 > end {
            return false;
        }
        let Some([kind, len]) = frame.read::<[u8; 2]>(option) else {
            return false;
        };
        if kind == PAD1 {
            option += 1;
            continue;
        }
        if kind == ROUTER_ALERT && len == 2 {
            return frame.read::<[u8; 2]>(option + 2) == Some(ROUTER_ALERT_MLD);
        }
        option += 2 + usize::from(len);
    }
    false
}

/// What the IPv6 header says about the MLD message it carries. The
/// addresses stay in the frame (`ip`): copies of 16-octet arrays become 16
/// registers, spilled to the stack a byte per slot.
pub struct MldPacket<'a> {
    pub ip: &'a Ipv6Hdr,
    /// Offset of the ICMPv6 header in the frame.
    pub offset: usize,
    /// Length of the ICMPv6 message (the payload less the extension headers).
    pub len: usize,
}

/// Checks the IPv6 header at `l3_offset` of a frame whose chain leads to
/// ICMPv6 at `upper.offset`, and locates the message.
#[inline(always)]
pub fn mld_packet<'a, H: Hook>(
    frame: &'a Frame<H>,
    l3_offset: usize,
    upper: &UpperLayer,
) -> Result<MldPacket<'a>, DropReason> {
    let ip: &Ipv6Hdr = frame.header(l3_offset).ok_or(DropReason::Truncated)?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::BadIpv6Header);
    }
    let payload = usize::from(u16::from_be_bytes(ip.payload_len));
    let end = l3_offset + Ipv6Hdr::LEN + payload;
    // Ethernet padding may follow the packet; a packet longer than the frame
    // may not, nor one whose extension headers run past its own length
    // (a payload of 0 is a jumbogram's, which MLD never is).
    if !frame.holds(end) || upper.offset >= end {
        return Err(DropReason::BadIpv6Header);
    }
    Ok(MldPacket {
        ip,
        offset: upper.offset,
        len: end - upper.offset,
    })
}
