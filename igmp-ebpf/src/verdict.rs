//! What the packet path decides for a frame; each hook carries it out its
//! own way (`xdp.rs` through devmaps, `tc.rs` through skb redirects).

use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    family::Family,
    frame::{Frame, Hook},
    ip6, l2, mld,
};

pub enum Verdict {
    /// To the kernel: it delivers, floods or routes.
    Pass,
    /// Nowhere.
    Drop,
    /// To the ports that want it, each port's wishes judged by `egress::port_wants`.
    Forward(Destinations),
    /// An IPv6 frame: the IPv6 program (`igmp_snoop6`) decides, reached by a
    /// tail call (`tail::IPV6`). The tail calls are variants without a
    /// payload: a variant's payload is a register the other variants leave
    /// unset, which the verifier refuses to see read where paths merge.
    Ipv6,
    /// A valid MLDv1 report, Done, query or PIM hello: `igmp_mld` learns
    /// from it (`tail::MLD_MESSAGE`).
    LearnMld,
    /// A valid MLDv2 report: `igmp_mld_report` learns from it
    /// (`tail::MLD_V2_REPORT`).
    LearnMldReport,
    /// IPv6 multicast data, for `data::forward6` to decide: what the
    /// parse of IPv6's headers hands back; it never reaches a hook.
    Data,
}

impl Verdict {
    /// The program array slot the verdict hands the frame on to, if any.
    #[inline(always)]
    pub fn tail_call(&self) -> Option<u32> {
        match self {
            Self::Ipv6 => Some(tail::IPV6),
            Self::LearnMld => Some(tail::MLD_MESSAGE),
            Self::LearnMldReport => Some(tail::MLD_V2_REPORT),
            _ => None,
        }
    }
}

/// The slots of the program arrays: the programs a verdict hands a frame on to.
pub mod tail {
    /// IPv6 (`igmp_snoop6`): MLD's path, and IPv6 multicast's forwarding.
    pub const IPV6: u32 = 0;
    /// Learning from a valid MLDv1 report, Done, query or PIM hello (`igmp_mld`).
    pub const MLD_MESSAGE: u32 = 1;
    /// Learning from a valid MLDv2 report (`igmp_mld_report`).
    pub const MLD_V2_REPORT: u32 = 2;
    /// tc only: a learned MLD report or Done to router ports
    /// (`igmp_mld_forward_tc`). XDP's learning programs redirect it
    /// themselves; tc's forwarding frames would not fit on their stacks,
    /// beside learning's MLD keys.
    pub const MLD_FORWARD: u32 = 3;
    /// Slots in each array.
    pub const SLOTS: usize = 4;
}

/// Where a forwarded frame goes, as far as the packet path knows.
#[derive(Clone, Copy)]
pub enum Destinations {
    /// One port.
    Port(u32, EverySource),
    /// The ports of a `DEST_SETS` slot.
    Set(u32, EverySource),
    /// Every port but the one the frame came in on.
    Every,
}

/// Whether each of a group's destinations takes every source's data
/// (`group_flags::EVERY_SOURCE`): tc then sends to them without asking
/// each port's tables again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EverySource {
    /// Each port is asked (`egress::port_wants`).
    Unknown,
    /// The daemon found no member port with a source list.
    Taken,
}

/// What a port's wishes depend on: VLAN, protocol, source and group.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Headers<A: Family> {
    pub vlan: u16,
    pub inner_vlan: u16,
    pub source: A,
    pub group: A,
    /// IPv4's protocol; IPv6's first Next Header, or `MLD_SIGNALLING`.
    pub protocol: u8,
}

/// `Headers::protocol` of an MLD report or Done (a Hop-by-Hop header, then
/// ICMPv6 of those types), the reports a port's report rule judges: 255 is
/// reserved, never an upper layer on the wire (IANA's protocol numbers).
pub const MLD_SIGNALLING: u8 = 255;

impl Headers<[u8; 4]> {
    /// The headers of an IPv4 frame, or `None` for any other.
    #[inline(always)]
    pub fn read<H: Hook>(frame: &Frame<H>) -> Option<Self> {
        let Ok(Some(l2)) = l2::parse(frame) else {
            return None;
        };
        if l2.network != l2::Network::Ipv4 {
            return None;
        }
        let ip = frame.header::<Ipv4Hdr>(l2.l3_offset)?;
        Some(Self {
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            source: ip.src_addr,
            group: ip.dst_addr,
            protocol: ip.proto,
        })
    }
}

impl Headers<[u8; 16]> {
    /// The headers of an IPv6 frame, or `None` for any other.
    #[inline(always)]
    pub fn read<H: Hook>(frame: &Frame<H>) -> Option<Self> {
        let Ok(Some(l2)) = l2::parse(frame) else {
            return None;
        };
        if l2.network != l2::Network::Ipv6 {
            return None;
        }
        let ip = frame.header::<Ipv6Hdr>(l2.l3_offset)?;
        let after_ip = l2.l3_offset + Ipv6Hdr::LEN;
        let protocol = if ip.next_hdr == ip6::HOP_BY_HOP && is_mld_signalling(frame, after_ip) {
            MLD_SIGNALLING
        } else {
            ip.next_hdr
        };
        Some(Self {
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            source: ip.src_addr,
            group: ip.dst_addr,
            protocol,
        })
    }
}

/// Whether the Hop-by-Hop header at `offset` leads straight to an MLD
/// report or Done, as every one is sent (RFC 3810 §5, RFC 2710 §3: a Router
/// Alert in Hop-by-Hop, then ICMPv6). The packet path checked the message
/// before it forwarded it; this only tells it from data.
#[inline(always)]
fn is_mld_signalling<H: Hook>(frame: &Frame<H>, offset: usize) -> bool {
    let Some([next, len]) = frame.read::<[u8; 2]>(offset) else {
        return false;
    };
    if next != ip6::ICMPV6 {
        return false;
    }
    let message = offset + (usize::from(len) + 1) * 8;
    frame
        .read::<[u8; 2]>(message)
        .is_some_and(|[kind, _]| mld::is_signalling(kind))
}

/// A family whose frames' headers the hooks read.
pub trait Readable: Family {
    fn read_headers<H: Hook>(frame: &Frame<H>) -> Option<Headers<Self>>;
}

impl Readable for [u8; 4] {
    #[inline(always)]
    fn read_headers<H: Hook>(frame: &Frame<H>) -> Option<Headers<Self>> {
        Headers::<Self>::read(frame)
    }
}

impl Readable for [u8; 16] {
    #[inline(always)]
    fn read_headers<H: Hook>(frame: &Frame<H>) -> Option<Headers<Self>> {
        Headers::<Self>::read(frame)
    }
}
