//! igmp-snoop's XDP program.
//!
//! The packet path reads top to bottom: [`frame`] gives bounds-checked access,
//! [`l2`] and [`ip`] peel the headers, [`igmp`] and [`v3`] classify the message
//! and update the tables in [`maps`], counting every outcome in [`stats`].
//! Every frame leaves with XDP_PASS: the kernel still delivers and floods what
//! this program only learns from.
#![no_std]
#![no_main]
// Atomic fetch-and-add on map values: core::sync::atomic has no RMW on this target.
#![feature(core_intrinsics)]
// Inline asm on the BPF target, for the verifier-visible masks (`verifier`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

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
mod v3;
mod verifier;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use igmp_common::DropReason;
use network_types::ip::IpProto;

use crate::{frame::Frame, stats::PortStats};

#[xdp]
pub fn igmp_snoop(ctx: XdpContext) -> u32 {
    let frame = Frame::new(&ctx);
    let ifindex = ctx.ingress_ifindex() as u32;
    let l2 = match l2::parse(&frame) {
        Ok(Some(l2)) => l2,
        Ok(None) => return xdp_action::XDP_PASS,
        // Rare, and worth a counter whatever the payload.
        Err(l2::TooManyTags) => {
            PortStats::for_port(ifindex).reject(DropReason::TooManyVlanTags);
            return xdp_action::XDP_PASS;
        }
    };
    match ip::protocol(&frame, l2.l3_offset) {
        Some(protocol) if protocol == IpProto::Igmp as u8 => {
            igmp::handle(&ctx, &frame, ifindex, &l2)
        }
        Some(pim::PROTOCOL) => {
            pim::handle(&frame, ifindex, &l2);
            xdp_action::XDP_PASS
        }
        Some(_) => data::forward(&frame, ifindex, &l2),
        None => xdp_action::XDP_PASS,
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
