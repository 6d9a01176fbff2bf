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
    helpers::{bpf_clone_redirect, bpf_loop, bpf_redirect, bpf_skb_vlan_pop, bpf_skb_vlan_push},
    macros::btf_map,
    programs::TcContext,
};
use igmp_common::{capacity, port_vlan_flags, DataCounter, PortList};

use crate::{
    data::count,
    egress::port_wants,
    family::Family,
    frame::{Frame, Tc},
    maps::{bridge_vlan, port_settings, port_vlan, PORT_LIST, SET_PORT_LISTS},
    verdict::{Destinations, EverySource::Taken, Headers, Readable, Verdict},
};

/// Carries out `verdict` on a frame of family `A`.
#[inline(always)]
pub fn action<A: Walked>(ctx: &TcContext, ingress: u32, verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Pass
        | Verdict::Ipv6
        | Verdict::LearnMld
        | Verdict::LearnMldReport
        | Verdict::Data => TC_ACT_UNSPEC,
        Verdict::Drop => TC_ACT_SHOT,
        Verdict::Forward(Destinations::Port(port, every_source)) => forward::<A>(
            ctx,
            ingress,
            port,
            EVERY_PORT,
            u32::from(every_source == Taken),
        ),
        Verdict::Forward(Destinations::Set(slot, every_source)) => {
            forward::<A>(ctx, ingress, 0, slot, u32::from(every_source == Taken))
        }
        Verdict::Forward(Destinations::Every) => forward::<A>(ctx, ingress, 0, EVERY_PORT, 0),
    }
}

/// `forward`'s `slot` for every port: past the last slot.
const EVERY_PORT: u32 = capacity::DEST_SETS;

/// 802.1Q, the tag a VLAN-filtering bridge puts on (its default
/// `vlan_protocol`).
const ETH_P_8021Q: u16 = 0x8100;
/// The priority and drop-eligible bits of a tag, kept when it is put back.
const TCI_PRIORITY: u16 = 0xf000;

/// To `port` if not 0, else to the ports of destination set `slot`, or to
/// every port (`EVERY_PORT`), each that wants the frame. On a VLAN-filtering
/// bridge only ports of the frame's VLAN want it, and each copy leaves
/// tagged or untagged as that port's VLAN says (the bridge's egress rule).
/// With `every_source` non-zero the daemon found that every port of the
/// set takes every source (`group_flags::EVERY_SOURCE`): no port's tables
/// are asked again, only its VLANs.
///
/// A function of its own (a BPF-to-BPF call), reading the headers afresh
/// into this CPU's `TC_WALK`: its locals then sit in a stack frame of their
/// own, not in the main program's, whose frame plus the IGMPv3 walk's is
/// near 6.1's 512-byte limit. Its arguments are plain integers: the
/// verifier refuses a call whose callee reads an argument register the
/// caller left unset, as an enum's unused payload is.
#[inline(never)]
fn forward<A: Walked>(
    ctx: &TcContext,
    ingress: u32,
    port: u32,
    slot: u32,
    every_source: u32,
) -> i32 {
    // Index 0 of a one-entry array is always there; the check is the verifier's.
    let Some(state) = A::walk_state() else {
        return TC_ACT_UNSPEC;
    };
    let Some(headers) = A::read_headers(&Frame::<Tc>::new(ctx)) else {
        return TC_ACT_UNSPEC;
    };
    let skb = ctx.skb.skb;
    let (tagged, tci) = unsafe { ((*skb).vlan_present, (*skb).vlan_tci as u16) };
    // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
    let state = unsafe { &mut *state };
    *state = WalkState {
        headers,
        ingress,
        tagged: u8::from(tagged != 0),
        tci: tci & TCI_PRIORITY,
        every_source: u8::from(every_source != 0),
        ..WalkState::default()
    };
    if let Some(bridge) = bridge_vlan(ingress, state.headers.vlan) {
        state.headers.vlan = bridge.vlan;
        state.vlan_filtering = 1;
    }
    state.tci |= state.headers.vlan;
    let mut walk = Walk {
        skb: skb.cast(),
        set: core::ptr::null(),
        state,
    };
    if port != 0 {
        return to_port(&mut walk, port);
    }
    // A set's list starts with a port (it has two or more); an empty slot
    // falls back to every port, as XDP's broadcast does.
    let (list, length) = match SET_PORT_LISTS.get_ptr(slot) {
        Some(set) if unsafe { (*set).ports[0] } != 0 => {
            count(DataCounter::ForwardedToSet);
            (set, capacity::SET_PORTS)
        }
        _ => (core::ptr::null(), capacity::PORTS),
    };
    walk.set = list;
    unsafe {
        bpf_loop(
            length,
            clone_to_port::<A> as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    let (last, untagged) = {
        let state = walk.state();
        (state.last, state.last_untagged != 0)
    };
    match last {
        // Nobody wants it.
        0 => TC_ACT_SHOT,
        port if walk.tag_for(untagged) => redirect(port),
        _ => {
            count(DataCounter::CloneFailed);
            TC_ACT_SHOT
        }
    }
}

/// The skb itself to `port`, no copy made.
#[inline(always)]
fn to_port<A: Walked>(walk: &mut Walk<A>, port: u32) -> i32 {
    let Some(untagged) = walk.wanted_by(port) else {
        count(DataCounter::EgressFiltered);
        return TC_ACT_SHOT;
    };
    if !walk.tag_for(untagged) {
        count(DataCounter::CloneFailed);
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

/// What the walk over a port list needs, on the stack: the rest is in
/// this CPU's [`WalkState`].
#[repr(C)]
struct Walk<A: Walked> {
    skb: *mut c_void,
    /// The destination set's ports, or null for `PORT_LIST`.
    set: *const PortList,
    state: *mut WalkState<A>,
}

/// A forwarded frame's walk over its ports. Kept in a map, not on the
/// stack: verifiers before 6.8 check a `bpf_loop` callback once, with the
/// state it is first entered with, and would drop as dead the branch that
/// clones to a port found in an earlier iteration; and the main program's
/// frame plus this function's is near 6.1's 512-byte limit.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct WalkState<A: Family> {
    headers: Headers<A>,
    ingress: u32,
    /// The last port the walk found to want the frame, not sent to yet (0:
    /// none): it gets the frame itself once the walk ends, so that N ports
    /// cost N - 1 clones (each clone also copies the frame's head, as the
    /// helper unclones the original for direct writes).
    last: u32,
    /// Non-zero: the copy for `last` leaves untagged.
    last_untagged: u8,
    /// Non-zero: the ingress port is in a VLAN-filtering bridge, and
    /// `headers.vlan` is the bridge's VLAN.
    vlan_filtering: u8,
    /// Non-zero while the skb carries a tag (in its metadata, where the
    /// kernel keeps the outer tag of a received frame).
    tagged: u8,
    /// The tag a copy leaves with: the VLAN, and the priority it came with.
    tci: u16,
    /// Non-zero: every destination takes every source; only VLANs are asked.
    every_source: u8,
}

#[btf_map]
static TC_WALK: PerCpuArray<WalkState<[u8; 4]>, 1> = PerCpuArray::new();

#[btf_map]
static TC_WALK6: PerCpuArray<WalkState<[u8; 16]>, 1> = PerCpuArray::new();

/// A family whose frames tc forwards: where its walk's state lives.
pub trait Walked: Readable {
    fn walk_state() -> Option<*mut WalkState<Self>>;
}

impl Walked for [u8; 4] {
    #[inline(always)]
    fn walk_state() -> Option<*mut WalkState<Self>> {
        TC_WALK.get_ptr_mut(0)
    }
}

impl Walked for [u8; 16] {
    #[inline(always)]
    fn walk_state() -> Option<*mut WalkState<Self>> {
        TC_WALK6.get_ptr_mut(0)
    }
}

impl<A: Walked> Walk<A> {
    #[inline(always)]
    fn state(&self) -> &WalkState<A> {
        // SAFETY: this CPU's TC_WALK entry, which only this frame's walk uses.
        unsafe { &*self.state }
    }

    #[inline(always)]
    fn state_mut(&mut self) -> &mut WalkState<A> {
        // SAFETY: as `state`.
        unsafe { &mut *self.state }
    }

    /// Whether `port` wants the frame: `None` if not, else whether its copy
    /// leaves untagged (on a VLAN-filtering bridge only; elsewhere a copy
    /// leaves as the frame came, and this is `false`).
    #[inline(always)]
    fn wanted_by(&self, port: u32) -> Option<bool> {
        let state = self.state();
        let mut untagged = false;
        if state.vlan_filtering != 0 {
            // Not a member of the VLAN: the bridge would not send it there.
            let vlan = port_vlan(port, state.headers.vlan)?;
            untagged = vlan.flags & port_vlan_flags::UNTAGGED != 0;
        }
        if state.every_source != 0 {
            return Some(untagged);
        }
        port_wants(port, &port_settings(port), &state.headers).then_some(untagged)
    }

    /// Puts the tag on or takes it off the skb, as a copy leaving untagged
    /// (or not) needs, on a VLAN-filtering bridge; false if the kernel could
    /// not (no memory), and the copy must not go.
    #[inline(always)]
    fn tag_for(&mut self, untagged: bool) -> bool {
        let skb = self.skb.cast();
        let state = self.state_mut();
        if state.vlan_filtering == 0 || untagged == (state.tagged == 0) {
            return true;
        }
        let done = if untagged {
            unsafe { bpf_skb_vlan_pop(skb) }
        } else {
            unsafe { bpf_skb_vlan_push(skb, ETH_P_8021Q.to_be(), state.tci) }
        };
        if done != 0 {
            return false;
        }
        state.tagged = u8::from(!untagged);
        true
    }
}

/// `bpf_loop` callback: the `index`th port of the list, if it wants the
/// frame, becomes `last`, and the one before it gets a copy. A port of 0
/// ends the list.
extern "C" fn clone_to_port<A: Walked>(index: u64, walk: *mut Walk<A>) -> i64 {
    const CONTINUE: i64 = 0;
    const STOP: i64 = 1;
    let walk = unsafe { &mut *walk };
    let port = if walk.set.is_null() {
        PORT_LIST.get(index as u32).copied().unwrap_or(0)
    } else {
        let ports = unsafe { &(*walk.set).ports };
        ports.get(index as usize).copied().unwrap_or(0)
    };
    if port == 0 {
        return STOP;
    }
    if port == walk.state().ingress {
        return CONTINUE;
    }
    let Some(untagged) = walk.wanted_by(port) else {
        count(DataCounter::EgressFiltered);
        return CONTINUE;
    };
    let (last, last_untagged) = {
        let state = walk.state();
        (state.last, state.last_untagged != 0)
    };
    if last != 0 {
        let copied = walk.tag_for(last_untagged)
            && unsafe { bpf_clone_redirect(walk.skb.cast(), last, 0) } >= 0;
        if !copied {
            count(DataCounter::CloneFailed);
        }
    }
    let state = walk.state_mut();
    state.last = port;
    state.last_untagged = u8::from(untagged);
    CONTINUE
}
