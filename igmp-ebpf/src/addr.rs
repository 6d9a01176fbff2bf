//! IPv4 address predicates and the well-known groups, named once: the
//! parsers (`igmp`, `v3`, `pim`) and the forwarding decision (`data`) read
//! them here. A leaf: it imports nothing of this crate.

/// All systems on this subnet: general queries go here (RFC 2236 §2).
pub const ALL_HOSTS: u32 = u32::from_ne_bytes([224, 0, 0, 1]);
/// All routers on this subnet: IGMPv2 leaves go here (RFC 2236 §3).
pub const ALL_ROUTERS: u32 = u32::from_ne_bytes([224, 0, 0, 2]);
/// Where IGMPv3 reports go (RFC 3376 §4.2.14).
pub const ALL_V3_ROUTERS: u32 = u32::from_ne_bytes([224, 0, 0, 22]);
/// Where PIM hellos go (RFC 7761 §4.9.2).
pub const ALL_PIM_ROUTERS: [u8; 4] = [224, 0, 0, 13];

/// 224.0.0.0/4.
#[inline(always)]
pub fn is_multicast(address: [u8; 4]) -> bool {
    address[0] & 0xf0 == 0xe0
}

/// 224.0.0.0/24: always flooded, never snooped (RFC 4541 §2.1.2).
#[inline(always)]
pub fn is_link_local(group: [u8; 4]) -> bool {
    group[0] == 224 && group[1] == 0 && group[2] == 0
}
