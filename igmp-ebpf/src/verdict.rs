//! What the packet path decides for a frame; each hook carries it out its
//! own way (`xdp.rs` through devmaps, `tc.rs` through skb redirects).

use network_types::ip::Ipv4Hdr;

use crate::{
    frame::{Frame, Hook},
    l2::{self, L2},
};

pub enum Verdict {
    /// To the kernel: it delivers, floods or routes.
    Pass,
    /// Nowhere.
    Drop,
    /// To the ports that want it, each port's wishes judged by `egress::port_wants`.
    Forward(Destinations),
}

/// Where a forwarded frame goes, as far as the packet path knows.
#[derive(Clone, Copy)]
pub enum Destinations {
    /// One port.
    Port(u32),
    /// The ports of a `DEST_SETS` slot.
    Set(u32),
    /// Every port but the one the frame came in on.
    Every,
}

/// What a port's wishes depend on: VLAN, protocol, source and group.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Headers {
    pub vlan: u16,
    pub inner_vlan: u16,
    pub source: [u8; 4],
    pub group: [u8; 4],
    pub protocol: u8,
}

impl Headers {
    #[inline(always)]
    pub fn new(l2: &L2, ip: &Ipv4Hdr) -> Self {
        Self {
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            source: ip.src_addr,
            group: ip.dst_addr,
            protocol: ip.proto,
        }
    }

    /// The headers of an IPv4 frame, or `None` for any other.
    #[inline(always)]
    pub fn read<H: Hook>(frame: &Frame<H>) -> Option<Self> {
        let Ok(Some(l2)) = l2::parse(frame) else {
            return None;
        };
        if l2.network != l2::Network::Ipv4 {
            return None;
        }
        Some(Self::new(&l2, frame.header::<Ipv4Hdr>(l2.l3_offset)?))
    }
}
