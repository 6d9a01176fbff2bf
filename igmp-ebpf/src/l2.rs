//! Ethernet with up to two VLAN tags (802.1ad S-tag + 802.1Q C-tag, or
//! 802.1Q + 802.1Q), and which network layer follows: IPv4, or IPv6 (which
//! `main.rs` hands on to the IPv6 program).

use network_types::{eth::EthHdr, vlan::VlanHdr};

use igmp_common::DataCounter;

use crate::{
    data::count,
    frame::{Frame, Hook},
    maps::bridge_vlan,
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// The network layer a frame carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Ipv4,
    Ipv6,
}

impl Network {
    #[inline(always)]
    fn of(ether_type: u16) -> Option<Self> {
        match ether_type {
            ETH_P_IP => Some(Self::Ipv4),
            ETH_P_IPV6 => Some(Self::Ipv6),
            _ => None,
        }
    }
}

/// Where the IP header starts, which IP, and which VLAN the frame belongs to.
#[derive(Clone, Copy)]
pub struct L2 {
    pub vlan: u16,
    pub inner_vlan: u16,
    pub l3_offset: usize,
    pub network: Network,
    /// `vlan` is a VLAN-filtering bridge's ([`L2::in_bridge_vlan`]).
    pub vlan_filtering: bool,
}

impl L2 {
    /// The frame moved into the VLAN a VLAN-filtering bridge puts it in on
    /// port `ingress` (the port's PVID when untagged), as the bridge's own
    /// per-VLAN snooping keys it; as it is on any other port. `None`,
    /// counted, for a VLAN the port is not a member of: the bridge drops
    /// such a frame on its way in, so nothing is learned from it and it is
    /// left to the bridge.
    #[inline(always)]
    pub fn in_bridge_vlan(mut self, ingress: u32) -> Option<Self> {
        if let Some(bridge) = bridge_vlan(ingress, self.vlan) {
            if !bridge.member {
                count(DataCounter::OutsidePortVlans);
                return None;
            }
            self.vlan = bridge.vlan;
            self.vlan_filtering = true;
        }
        Some(self)
    }
}

/// A third tag: more than this switch keeps membership for.
pub struct TooManyTags;

/// Parses the Ethernet header and its tags, the outermost first: one the
/// kernel took out of the frame ([`Frame::offloaded_vlan`]), then those in
/// it. `Ok(None)` for anything that is not IP.
#[inline(always)]
pub fn parse<H: Hook>(frame: &Frame<H>) -> Result<Option<L2>, TooManyTags> {
    let Some(ether_type) = frame.be16(12) else {
        return Ok(None);
    };
    let mut l2 = L2 {
        vlan: 0,
        inner_vlan: 0,
        l3_offset: EthHdr::LEN,
        network: Network::Ipv4,
        vlan_filtering: false,
    };
    let offloaded = frame.offloaded_vlan;
    if let Some(vid) = offloaded {
        l2.vlan = vid;
    }
    if let Some(network) = Network::of(ether_type) {
        l2.network = network;
        return Ok(Some(l2));
    }
    if !is_vlan(ether_type) {
        return Ok(None);
    }
    let Some((vid, ether_type)) = tag(frame, EthHdr::LEN) else {
        return Ok(None);
    };
    l2.l3_offset += VlanHdr::LEN;
    if offloaded.is_some() {
        // The tag in the frame is the second one.
        if is_vlan(ether_type) {
            return Err(TooManyTags);
        }
        l2.inner_vlan = vid;
        return Ok(with_network(l2, ether_type));
    }
    l2.vlan = vid;
    if is_vlan(ether_type) {
        let Some((inner, inner_type)) = tag(frame, EthHdr::LEN + VlanHdr::LEN) else {
            return Ok(None);
        };
        if is_vlan(inner_type) {
            return Err(TooManyTags);
        }
        l2.inner_vlan = inner;
        l2.l3_offset += VlanHdr::LEN;
        return Ok(with_network(l2, inner_type));
    }
    Ok(with_network(l2, ether_type))
}

/// `l2` carrying the network layer `ether_type` names, if IP.
#[inline(always)]
fn with_network(mut l2: L2, ether_type: u16) -> Option<L2> {
    l2.network = Network::of(ether_type)?;
    Some(l2)
}

#[inline(always)]
fn is_vlan(ether_type: u16) -> bool {
    ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD
}

/// The VLAN id of the tag at `offset` and the EtherType that follows it.
#[inline(always)]
fn tag<H: Hook>(frame: &Frame<H>, offset: usize) -> Option<(u16, u16)> {
    let tci = frame.be16(offset)?;
    let ether_type = frame.be16(offset + 2)?;
    Some((tci & 0x0fff, ether_type))
}
