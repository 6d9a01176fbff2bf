//! igmp-snoop's packet path, in two hooks over one parser and one table:
//! XDP on ports whose driver hands over raw frames (NICs), the tc ingress
//! classifier on ports whose frames already are skbs (veth, tap).
//!
//! The packet path reads top to bottom: [`frame`] gives bounds-checked access,
//! [`l2`] and [`ip`] peel the headers, [`igmp`] and [`v3`] classify the message
//! and update the tables in [`maps`], counting every outcome in [`stats`];
//! [`data`] decides where multicast data goes. Each decision is a
//! [`verdict::Verdict`], which [`xdp`] and [`tc`] carry out.
//!
//! IPv6 takes the same path over MLD's tables ([`family`]), in programs of
//! its own reached by tail calls, each with a stack of its own: the IPv4
//! program hands an IPv6 frame to `igmp_snoop6` ([`ip6`] walks its
//! extension headers, [`mld`] validates MLD, [`data`] forwards the rest),
//! which hands a valid MLD message to `igmp_mld` or `igmp_mld_report` to
//! learn from.
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
mod family;
mod frame;
mod headers;
mod igmp;
mod ip;
mod ip6;
mod l2;
mod limits;
mod maps;
mod membership;
mod mld;
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

use aya_ebpf::bindings::TC_ACT_UNSPEC;

use crate::{
    frame::{Frame, Hook, Tc, Xdp},
    maps::{MLD_TC, MLD_XDP},
    stats::PortStats,
    verdict::{Destinations, Verdict},
};

#[xdp]
pub fn igmp_snoop(ctx: XdpContext) -> u32 {
    let ingress = ctx.ingress_ifindex() as u32;
    xdp_verdict(&ctx, snoop::<Xdp>(&ctx, ingress))
}

/// Carries out `verdict` in XDP: a tail call, or `xdp::action`.
#[inline(always)]
fn xdp_verdict(ctx: &XdpContext, verdict: Verdict) -> u32 {
    if let Some(slot) = verdict.tail_call() {
        // SAFETY: `ctx` is this program's own context.
        unsafe { MLD_XDP.tail_call(ctx, slot) };
        // Back here only if the slot is empty (a loader that did not fill
        // it): the kernel decides, as before MLD snooping.
        return xdp_action::XDP_PASS;
    }
    xdp::action(verdict)
}

/// The same path as `igmp_snoop`, for ports whose frames arrive as skbs.
#[classifier]
pub fn igmp_snoop_tc(ctx: TcContext) -> i32 {
    // At ingress the skb's device is the port it came in on.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    Tc::make_readable(&ctx, HEADERS_LEN);
    let verdict = snoop::<Tc>(&ctx, ingress);
    tc_verdict::<[u8; 4]>(&ctx, ingress, verdict)
}

/// Carries out `verdict` on a frame of family `A` in tc: a tail call, or `tc::action`.
#[inline(always)]
fn tc_verdict<A: tc::Walked>(ctx: &TcContext, ingress: u32, verdict: Verdict) -> i32 {
    if let Some(slot) = verdict.tail_call() {
        // SAFETY: as in `xdp_verdict`.
        unsafe { MLD_TC.tail_call(ctx, slot) };
        return TC_ACT_UNSPEC;
    }
    tc::action::<A>(ctx, ingress, verdict)
}

/// IPv6, reached by a tail call from `igmp_snoop`: a program of its own so
/// that MLD's 16-octet addresses and keys get a stack of their own. Called,
/// the IPv6 path's frames would sit on top of the IPv4 path's, which with
/// the IGMPv3 walk's already fill the 512 bytes the verifier allows.
#[xdp]
pub fn igmp_snoop6(ctx: XdpContext) -> u32 {
    let ingress = ctx.ingress_ifindex() as u32;
    xdp_verdict(&ctx, snoop6::<Xdp>(&ctx, ingress))
}

/// IPv6 for `igmp_snoop_tc`, as `igmp_snoop6` is for `igmp_snoop`.
#[classifier]
pub fn igmp_snoop6_tc(ctx: TcContext) -> i32 {
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    Tc::make_readable(&ctx, HEADERS_LEN);
    let verdict = snoop6::<Tc>(&ctx, ingress);
    tc_verdict::<[u8; 16]>(&ctx, ingress, verdict)
}

/// Learns from a valid MLDv1 report, Done or query (`mld::learn`), reached
/// by a tail call from `igmp_snoop6` with a stack of its own, as its frames
/// and the validation's would not fit on one. A report or Done then goes
/// to router ports once an MLD querier is known, everything else to the
/// kernel.
#[xdp]
pub fn igmp_mld(ctx: XdpContext) -> u32 {
    let learned = mld::learn::<Xdp>(&ctx, false);
    xdp::action(mld::verdict(learned, ctx.ingress_ifindex() as u32))
}

#[classifier]
pub fn igmp_mld_tc(ctx: TcContext) -> i32 {
    let learned = mld::learn::<Tc>(&ctx, false);
    mld_tc_verdict(&ctx, learned)
}

/// Learns from a valid MLDv2 report, as `igmp_mld` from other MLD messages.
#[xdp]
pub fn igmp_mld_report(ctx: XdpContext) -> u32 {
    let learned = mld::learn::<Xdp>(&ctx, true);
    xdp::action(mld::verdict(learned, ctx.ingress_ifindex() as u32))
}

#[classifier]
pub fn igmp_mld_report_tc(ctx: TcContext) -> i32 {
    let learned = mld::learn::<Tc>(&ctx, true);
    mld_tc_verdict(&ctx, learned)
}

/// Carries out in tc where a message `learned` from goes: a report bound
/// for router ports on to `igmp_mld_forward_tc` (a tail call, as tc's
/// forwarding frames would not fit on this program's stack beside
/// learning's), the rest to the kernel.
#[inline(always)]
fn mld_tc_verdict(ctx: &TcContext, learned: mld::Learned) -> i32 {
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    // `mld::verdict` forwards or passes; a report over the rate limit was
    // dropped before the tail call that brought it here.
    if let Verdict::Forward(_) = mld::verdict(learned, ingress) {
        // SAFETY: as in `xdp_verdict`.
        unsafe { MLD_TC.tail_call(ctx, verdict::tail::MLD_FORWARD) };
    }
    TC_ACT_UNSPEC
}

/// A learned MLD report or Done to every router port (and every port that
/// floods reports), reached by a tail call from the learning programs.
#[classifier]
pub fn igmp_mld_forward_tc(ctx: TcContext) -> i32 {
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    tc::action::<[u8; 16]>(&ctx, ingress, Verdict::Forward(Destinations::Every))
}

/// Every header the packet path reads in place: Ethernet, two VLAN tags, the
/// longest IPv4 header and an IGMP header (longer than IPv6's header, a
/// Hop-by-Hop header of 8 octets and the ICMPv6 type).
const HEADERS_LEN: u32 = 14 + 2 * 4 + 60 + 8;
/// An IGMP message is read whole; none is longer than an Ethernet MTU.
const IGMP_FRAME_MAX: u32 = 14 + 2 * 4 + checksum::MAX_SPAN as u32;

/// Learns from the frame that came in on port `ingress` and decides where it goes.
#[inline(always)]
fn snoop<H: Hook>(ctx: &H::Context, ingress: u32) -> Verdict {
    let frame = Frame::<H>::new(ctx);
    let l2 = match l2::parse(&frame) {
        Ok(Some(l2)) if l2.network == l2::Network::Ipv4 => l2,
        Ok(Some(_)) => return Verdict::Ipv6,
        // Not IP at all.
        Ok(None) => return Verdict::Pass,
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

/// The IPv6 half of `snoop`: MLD learns, other multicast is forwarded.
#[inline(always)]
fn snoop6<H: Hook>(ctx: &H::Context, ingress: u32) -> Verdict {
    let frame = Frame::<H>::new6(ctx);
    let l2 = match l2::parse(&frame) {
        Ok(Some(l2)) if l2.network == l2::Network::Ipv6 => l2,
        Ok(_) => return Verdict::Pass,
        Err(l2::TooManyTags) => {
            PortStats::for_port(ingress).reject(DropReason::TooManyVlanTags);
            return Verdict::Pass;
        }
    };
    match ipv6_headers::<H>(ctx, ingress, &l2) {
        // Read afresh: to the verifier, a call that may pull data voids
        // every packet pointer its caller holds.
        Verdict::Data => data::forward6(&frame.made_readable(ctx), ingress, &l2),
        verdict => verdict,
    }
}

/// What IPv6's headers make of a frame: MLD and PIM hellos go on to be
/// learned from, a chain that cannot be walked to the kernel, and the rest
/// is data (`Verdict::Data`). A function of its own (a BPF-to-BPF call): its
/// locals are gone by the time tc forwards, whose frames and its walk's
/// callback's sit on top of the program's.
#[inline(never)]
fn ipv6_headers<H: Hook>(ctx: &H::Context, ingress: u32, l2: &l2::L2) -> Verdict {
    let frame = Frame::<H>::new6(ctx);
    let upper = match ip6::upper_layer(&frame, l2.l3_offset) {
        Ok(upper) => upper,
        Err(reason) => {
            PortStats::for_port(ingress).reject(reason);
            return Verdict::Pass;
        }
    };
    match upper.protocol {
        ip6::ICMPV6 => {
            // The type alone, through the load helper: a frame cut after it
            // is still MLD, and counted (an in-place one-byte read has a
            // bounds check LLVM turns into a compare the verifier cannot use).
            let Some(kind) = frame::load::<H, u8>(frame.ctx(), upper.offset) else {
                return Verdict::Data;
            };
            if !mld::is_mld(kind) {
                return Verdict::Data;
            }
            let Some(l2) = l2.in_bridge_vlan(ingress) else {
                return Verdict::Pass;
            };
            H::make_readable(ctx, IGMP_FRAME_MAX);
            mld::validate(&frame.made_readable(ctx), ingress, &l2, &upper)
        }
        mld::PIM => match l2.in_bridge_vlan(ingress) {
            Some(l2) => mld::pim_hello(&frame, ingress, &l2, &upper),
            None => Verdict::Pass,
        },
        _ => Verdict::Data,
    }
}

/// The benchmark's baseline: an XDP program that only passes. Never attached;
/// `cargo xtask bench` subtracts its cost from the real program's.
#[xdp]
pub fn igmp_snoop_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmark's yardsticks for what a report pays before any of its own
/// code: one clock read, and one hash lookup by each key size a report
/// looks up by (a port's options and counters by ifindex, 4 octets; a
/// membership, 12). Never attached; `cargo xtask bench` times them as it
/// times the baseline. The lookups miss (the frame is not read for a key):
/// a hit costs a key compare more.
#[xdp]
pub fn igmp_snoop_probe_clock(_ctx: XdpContext) -> u32 {
    let _ = events::now();
    xdp_action::XDP_PASS
}

#[xdp]
pub fn igmp_snoop_probe_lookup4(ctx: XdpContext) -> u32 {
    let _ = maps::PORTS.get_ptr(ctx.ingress_ifindex() as u32);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn igmp_snoop_probe_lookup12(ctx: XdpContext) -> u32 {
    let key = igmp_common::MembershipKey {
        ifindex: ctx.ingress_ifindex() as u32,
        vlan: 0,
        inner_vlan: 0,
        group: [0; 4],
    };
    let _ = maps::MEMBERSHIP.get_ptr(key);
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
