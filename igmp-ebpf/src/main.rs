//! igmp-snoop's packet path, in two hooks over one parser and one table:
//! XDP on ports whose driver hands over raw frames (NICs), the tc ingress
//! classifier on ports whose frames already are skbs (veth, tap).
//!
//! The packet path reads top to bottom: [`frame`] gives bounds-checked access,
//! [`l2`] and [`ip`] peel the headers, [`igmp`] and [`v3`] classify the message
//! and update the tables in [`maps`], counting every outcome in [`stats`];
//! [`data`] decides where multicast data goes. Each decision is a
//! [`verdict::Verdict`], which [`xdp`] and [`tc`] carry out.
#![no_std]
#![no_main]
// Atomic fetch-and-add on map values: core::sync::atomic has no RMW on this target.
#![feature(core_intrinsics)]
// Inline asm on the BPF target, for the verifier-visible masks (`verifier`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod addr;
mod checksum;
mod data;
mod egress;
mod events;
mod frame;
mod headers;
mod igmp;
mod ip;
mod l2;
mod limits;
mod maps;
mod membership;
mod pim;
mod stats;
mod tc;
mod v3;
mod verdict;
mod verifier;
mod xdp;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use igmp_common::DropReason;
use network_types::ip::IpProto;

use crate::{
    frame::{Frame, Hook, Tc, Xdp},
    stats::PortStats,
    verdict::Verdict,
};

#[xdp]
pub fn igmp_snoop(ctx: XdpContext) -> u32 {
    let ingress = ctx.ingress_ifindex() as u32;
    xdp::action(snoop::<Xdp>(&ctx, ingress))
}

/// The same path as `igmp_snoop`, for ports whose frames arrive as skbs.
#[classifier]
pub fn igmp_snoop_tc(ctx: TcContext) -> i32 {
    // At ingress the skb's device is the port it came in on.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    Tc::make_readable(&ctx, HEADERS_LEN);
    tc::action(&ctx, ingress, snoop::<Tc>(&ctx, ingress))
}

/// Every header the packet path reads in place: Ethernet, two VLAN tags, the
/// longest IPv4 header and an IGMP header.
const HEADERS_LEN: u32 = 14 + 2 * 4 + 60 + 8;
/// An IGMP message is read whole; none is longer than an Ethernet MTU.
const IGMP_FRAME_MAX: u32 = 14 + 2 * 4 + checksum::MAX_SPAN as u32;

/// Learns from the frame that came in on port `ingress` and decides where it goes.
#[inline(always)]
fn snoop<H: Hook>(ctx: &H::Context, ingress: u32) -> Verdict {
    let frame = Frame::<H>::new(ctx);
    let l2 = match l2::parse(&frame) {
        Ok(Some(l2)) if l2.network == l2::Network::Ipv4 => l2,
        // IPv6 (MLD snooping is not built yet: the kernel's path decides) and not IP at all.
        Ok(_) => return Verdict::Pass,
        // Rare, and worth a counter whatever the payload.
        Err(l2::TooManyTags) => {
            PortStats::for_port(ingress).reject(DropReason::TooManyVlanTags);
            return Verdict::Pass;
        }
    };
    match ip::protocol(&frame, l2.l3_offset) {
        Some(protocol) if protocol == IpProto::Igmp as u8 => {
            let Some(l2) = l2.in_bridge_vlan(ingress) else {
                return Verdict::Pass;
            };
            H::make_readable(ctx, IGMP_FRAME_MAX);
            igmp::handle(ctx, &Frame::<H>::new(ctx), ingress, &l2)
        }
        Some(pim::PROTOCOL) => {
            if let Some(l2) = l2.in_bridge_vlan(ingress) {
                pim::handle(&frame, ingress, &l2);
            }
            Verdict::Pass
        }
        Some(_) => data::forward(&frame, ingress, &l2),
        None => Verdict::Pass,
    }
}

/// The benchmark's baseline: an XDP program that only passes. Never attached;
/// `cargo xtask bench` subtracts its cost from the real program's.
#[xdp]
pub fn igmp_snoop_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Run by the devmap on each copy of a forwarded frame, as it leaves a port.
#[xdp(map = "devmap")]
pub fn igmp_snoop_egress(ctx: XdpContext) -> u32 {
    egress::filter(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
