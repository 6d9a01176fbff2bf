//! PIM hellos (RFC 7761 §4.9.2): multicast routers that do not query still
//! announce themselves with hellos to ALL-PIM-ROUTERS, and their ports must
//! receive the multicast they may route (RFC 4541 §2.1.1).

use igmp_common::Counter;
use network_types::ip::Ipv4Hdr;

use crate::{
    addr::ALL_PIM_ROUTERS,
    events::now,
    frame::{Frame, Hook},
    l2::L2,
    maps::port_settings,
    membership::{self, Heard, Origin},
    stats::PortStats,
};

pub const PROTOCOL: u8 = 103;
/// PIM version 2 (high nibble), message type 0: Hello.
const V2_HELLO: u8 = 0x20;

pub fn handle<H: Hook>(frame: &Frame<H>, ifindex: u32, l2: &L2) {
    let Some(ip) = frame.header::<Ipv4Hdr>(l2.l3_offset) else {
        return;
    };
    if ip.dst_addr != ALL_PIM_ROUTERS {
        return;
    }
    let header_len = usize::from(ip.vihl & 0x0f) * 4;
    let Some(kind) = frame.header::<[u8; 4]>(l2.l3_offset + header_len) else {
        return;
    };
    if kind[0] != V2_HELLO {
        return;
    }
    let settings = port_settings(ifindex);
    if settings.blocked != 0 {
        return;
    }
    let stats = PortStats::for_port(ifindex);
    stats.count(Counter::PimHello);
    let origin = Origin::new(ifindex, l2, ip.src_addr, stats, &settings, now());
    membership::router_seen(&origin, Heard::PimHello);
}
