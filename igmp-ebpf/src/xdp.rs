//! Verdicts carried out in XDP: forwarded frames are redirected into the
//! devmaps, whose egress program (`egress::filter`) drops the copies a port
//! does not want.

use aya_ebpf::bindings::{xdp_action, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS};
use igmp_common::DataCounter;

use crate::{
    data::count,
    maps::{DEST_SETS, EGRESS_PORTS},
    verdict::{Destinations, Verdict},
};

#[inline(always)]
pub fn action(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Pass
        | Verdict::Ipv6
        | Verdict::LearnMld
        | Verdict::LearnMldReport
        | Verdict::Data => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        // The devmap runs each entry's egress program whatever the group.
        Verdict::Forward(Destinations::Port(port, _)) => to_port(port),
        Verdict::Forward(Destinations::Set(slot, _)) => to_set(slot),
        Verdict::Forward(Destinations::Every) => to_every_port(),
    }
}

/// A port no longer in the devmap leaves the frame to the kernel.
#[inline(always)]
fn to_port(port: u32) -> u32 {
    EGRESS_PORTS
        .redirect(port, u64::from(xdp_action::XDP_PASS))
        .unwrap_or(xdp_action::XDP_PASS)
}

/// Broadcasts into the group's destination set: copies for its ports only.
/// An empty slot falls back to every port.
#[inline(always)]
fn to_set(slot: u32) -> u32 {
    let Some(set) = DEST_SETS.get(slot) else {
        return to_every_port();
    };
    count(DataCounter::ForwardedToSet);
    let flags = u64::from(BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    set.redirect(0, flags).unwrap_or(xdp_action::XDP_PASS)
}

/// Broadcasts to every port but the one the frame came in on.
#[inline(always)]
fn to_every_port() -> u32 {
    let flags = u64::from(BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    EGRESS_PORTS
        .redirect(0, flags)
        .unwrap_or(xdp_action::XDP_PASS)
}
