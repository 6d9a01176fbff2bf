//! Verdicts carried out in the tc ingress classifier, on ports whose frames
//! arrive as skbs (veth, tap): a frame for one port is redirected to it, a
//! frame for several is cloned to each port that wants it but the last,
//! which gets the frame itself. The skb keeps its checksum state, so a
//! datagram whose checksum the sender's stack left to offload is completed
//! on its way out, as the bridge would have it.
//!
//! What the classifier lets pass it returns as `TC_ACT_UNSPEC`: the next
//! filter on the port, and then the kernel, see the frame as if no program
//! were there.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC},
    btf_maps::PerCpuArray,
    helpers::{bpf_clone_redirect, bpf_loop, bpf_redirect},
    macros::btf_map,
    programs::TcContext,
    EbpfContext,
};
use igmp_common::{capacity, DataCounter, PortList};

use crate::{
    data::count,
    egress::port_wants,
    frame::{Frame, Tc},
    maps::{port_settings, PORT_LIST, SET_PORT_LISTS},
    verdict::{Destinations, Headers, Verdict},
};

#[inline(always)]
pub fn action(ctx: &TcContext, ingress: u32, verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Pass => TC_ACT_UNSPEC,
        Verdict::Drop => TC_ACT_SHOT,
        Verdict::Forward(Destinations::Port(port)) => forward(ctx, ingress, port, EVERY_PORT),
        Verdict::Forward(Destinations::Set(slot)) => forward(ctx, ingress, 0, slot),
        Verdict::Forward(Destinations::Every) => forward(ctx, ingress, 0, EVERY_PORT),
    }
}

/// `forward`'s `slot` for every port: past the last slot.
const EVERY_PORT: u32 = capacity::DEST_SETS;

/// To `port` if not 0, else to the ports of destination set `slot`, or to
/// every port (`EVERY_PORT`), each that wants the frame.
///
/// A function of its own (a BPF-to-BPF call), reading the headers afresh:
/// its state then sits in a stack frame of its own, not in the main
/// program's, whose frame plus the IGMPv3 walk's is near 6.1's 512-byte
/// limit. Its arguments are plain integers: the verifier refuses a call
/// whose callee reads an argument register the caller left unset, as an
/// enum's unused payload is.
#[inline(never)]
fn forward(ctx: &TcContext, ingress: u32, port: u32, slot: u32) -> i32 {
    let Some(headers) = Headers::read(&Frame::<Tc>::new(ctx)) else {
        return TC_ACT_UNSPEC;
    };
    if port != 0 {
        return to_port(port, &headers);
    }
    // Index 0 of a one-entry array is always there; the check is the verifier's.
    let Some(last) = TC_LAST.get_ptr_mut(0) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
    unsafe { *last = 0 };
    let mut walk = Walk {
        skb: ctx.as_ptr(),
        set: core::ptr::null(),
        ingress,
        last,
        headers,
    };
    // A set's list starts with a port (it has two or more); an empty slot
    // falls back to every port, as XDP's broadcast does.
    let (list, count) = match SET_PORT_LISTS.get_ptr(slot) {
        Some(set) if unsafe { (*set).ports[0] } != 0 => {
            count(DataCounter::ForwardedToSet);
            (set, capacity::SET_PORTS)
        }
        _ => (core::ptr::null(), capacity::PORTS),
    };
    walk.set = list;
    unsafe {
        bpf_loop(
            count,
            clone_to_port as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    match unsafe { *last } {
        // Nobody wants it.
        0 => TC_ACT_SHOT,
        last => redirect(last),
    }
}

/// The skb itself to `port`, no copy made.
#[inline(always)]
fn to_port(port: u32, headers: &Headers) -> i32 {
    if !port_wants(port, &port_settings(port), headers) {
        count(DataCounter::EgressFiltered);
        return TC_ACT_SHOT;
    }
    redirect(port)
}

#[inline(always)]
fn redirect(port: u32) -> i32 {
    match unsafe { bpf_redirect(port, 0) } as i32 {
        redirected if redirected == TC_ACT_REDIRECT => redirected,
        // A port that went away: the kernel still knows where the frame goes.
        _ => TC_ACT_UNSPEC,
    }
}

/// What the walk over a port list needs, on the stack.
#[repr(C)]
struct Walk {
    skb: *mut c_void,
    /// The destination set's ports, or null for `PORT_LIST`.
    set: *const PortList,
    ingress: u32,
    /// This CPU's `TC_LAST` entry.
    last: *mut u32,
    headers: Headers,
}

/// The last port the walk found to want the frame, not sent to yet (0:
/// none): it gets the frame itself once the walk ends, so that N ports cost
/// N - 1 clones (each clone also copies the frame's head, as the helper
/// unclones the original for direct writes). Kept in a map, not on the
/// stack: verifiers before 6.8 check a `bpf_loop` callback once, with the
/// state it is first entered with, and would drop as dead the branch that
/// clones to a port found in an earlier iteration.
#[btf_map]
static TC_LAST: PerCpuArray<u32, 1> = PerCpuArray::new();

/// `bpf_loop` callback: the `index`th port of the list, if it wants the
/// frame, becomes `last`, and the one before it gets a copy. A port of 0
/// ends the list.
extern "C" fn clone_to_port(index: u64, walk: *mut Walk) -> i64 {
    const CONTINUE: i64 = 0;
    const STOP: i64 = 1;
    let walk = unsafe { &*walk };
    let port = if walk.set.is_null() {
        PORT_LIST.get(index as u32).copied().unwrap_or(0)
    } else {
        let ports = unsafe { &(*walk.set).ports };
        ports.get(index as usize).copied().unwrap_or(0)
    };
    if port == 0 {
        return STOP;
    }
    if port == walk.ingress {
        return CONTINUE;
    }
    if !port_wants(port, &port_settings(port), &walk.headers) {
        count(DataCounter::EgressFiltered);
        return CONTINUE;
    }
    let last = unsafe { &mut *walk.last };
    if *last != 0 && unsafe { bpf_clone_redirect(walk.skb.cast(), *last, 0) } < 0 {
        count(DataCounter::CloneFailed);
    }
    *last = port;
    CONTINUE
}
