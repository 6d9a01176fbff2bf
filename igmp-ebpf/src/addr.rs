//! Address predicates and the well-known groups of both families, named once: the
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

/// ff02::1, all nodes: never reported, always flooded (RFC 4541 §3).
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// ff02::2, all routers: MLDv1 Done goes here (RFC 2710 §3.7).
pub const ALL_ROUTERS6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// ff02::16, all MLDv2-capable routers: MLDv2 reports go here (RFC 3810 §5.2.14).
pub const ALL_MLDV2_ROUTERS: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];

/// ff02::d, all PIM routers: where PIM hellos go (RFC 7761 §4.9.2).
pub const ALL_PIM_ROUTERS6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d];

/// ff00::/8.
#[inline(always)]
pub fn is_multicast6(address: &[u8; 16]) -> bool {
    address[0] == 0xff
}

/// ff02::1 and groups of scope 0 (reserved) and 1 (interface-local): never
/// snooped, always flooded.
#[inline(always)]
pub fn is_never_snooped6(group: &[u8; 16]) -> bool {
    group[1] & 0x0f <= 1 || *group == ALL_NODES
}

/// ff02::/16 and the other link-scope groups (scope 2, RFC 4291 §2.7).
#[inline(always)]
pub fn is_link_scope6(group: &[u8; 16]) -> bool {
    group[1] & 0x0f == 2
}

/// fe80::/10, where MLD queries (and reports, or ::) come from (RFC 3810 §5).
#[inline(always)]
pub fn is_link_local_unicast6(address: &[u8; 16]) -> bool {
    address[0] == 0xfe && address[1] & 0xc0 == 0x80
}
