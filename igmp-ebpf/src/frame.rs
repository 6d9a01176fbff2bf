//! Bounds-checked access to the frame: the one place that does pointer arithmetic.
//!
//! The same parser and tables serve two hooks ([`Hook`]): XDP, on ports whose
//! driver hands over raw frames, and the tc ingress classifier, on ports where
//! frames already are skbs (veth, tap). Only how the frame is reached differs.

use core::{ffi::c_void, marker::PhantomData};

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md},
    helpers::{bpf_skb_load_bytes, bpf_skb_pull_data, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
    EbpfContext,
};

use crate::verifier::masked;

/// Offsets past this are refused before any pointer is formed (no frame is
/// larger: 9 KiB jumbo frames fit). A length read from the frame is also
/// masked with it (`verifier::masked`), as verifiers before 6.8 lose its
/// bounds: a power of two less one.
const MAX_OFFSET: usize = 0x3fff;

/// A program type the packet path runs in: how its context reaches the frame.
pub trait Hook {
    type Context: EbpfContext;
    /// The first byte of the frame.
    fn data(ctx: &Self::Context) -> usize;
    /// The end of the frame, read afresh through the raw context.
    ///
    /// # Safety
    /// `ctx` is this hook's context pointer.
    unsafe fn data_end(ctx: *const c_void) -> usize;
    /// Copies `len` bytes at `offset` into `to`; 0 on success.
    ///
    /// # Safety
    /// `ctx` is this hook's context pointer and `to` holds `len` bytes.
    unsafe fn load_bytes(ctx: *mut c_void, offset: u32, to: *mut c_void, len: u32) -> i64;
    /// The VLAN id of the frame's outermost tag when the kernel took the tag
    /// out of the frame into metadata, as its receive path does before tc.
    fn offloaded_vlan(ctx: &Self::Context) -> Option<u16>;
    /// The same, its payload defined when `None` too. A `None` built the
    /// usual way leaves the payload register unset; where LLVM copies it to
    /// the stack (the IPv6 programs) the verifier refuses the read. Not used
    /// everywhere: in tc's IPv4 forwarding the defined payload costs a stack
    /// slot its chain of frames does not have on 6.1.
    fn offloaded_vlan_defined(ctx: &Self::Context) -> Option<u16>;
    /// Makes the first `len` bytes of the frame (all of it, when shorter)
    /// readable in place, as [`Frame::get`] reads. Frames made before are void.
    fn make_readable(ctx: &Self::Context, len: u32);
}

/// XDP: native on NICs, generic where asked for.
pub enum Xdp {}

impl Hook for Xdp {
    type Context = XdpContext;

    #[inline(always)]
    fn data(ctx: &XdpContext) -> usize {
        ctx.data()
    }

    #[inline(always)]
    unsafe fn data_end(ctx: *const c_void) -> usize {
        unsafe { core::ptr::read_volatile(&(*ctx.cast::<xdp_md>()).data_end) as usize }
    }

    #[inline(always)]
    unsafe fn load_bytes(ctx: *mut c_void, offset: u32, to: *mut c_void, len: u32) -> i64 {
        unsafe { bpf_xdp_load_bytes(ctx.cast(), offset, to, len) }
    }

    /// Generic XDP runs before the kernel takes the tag out; a driver that
    /// offloads it keeps it where this program does not look yet.
    #[inline(always)]
    fn offloaded_vlan(_ctx: &XdpContext) -> Option<u16> {
        None
    }

    #[inline(always)]
    // `false.then_some(0)`, as clippy would have it, is the `None` whose
    // payload LLVM leaves unset: the point of this function.
    #[allow(clippy::some_filter)]
    fn offloaded_vlan_defined(_ctx: &XdpContext) -> Option<u16> {
        Some(0).filter(|_| false)
    }

    /// An XDP frame is one buffer already.
    #[inline(always)]
    fn make_readable(_ctx: &XdpContext, _len: u32) {}
}

/// The tc ingress classifier (clsact), on ports whose frames arrive as skbs.
pub enum Tc {}

impl Hook for Tc {
    type Context = TcContext;

    #[inline(always)]
    fn data(ctx: &TcContext) -> usize {
        ctx.data()
    }

    #[inline(always)]
    unsafe fn data_end(ctx: *const c_void) -> usize {
        unsafe { core::ptr::read_volatile(&(*ctx.cast::<__sk_buff>()).data_end) as usize }
    }

    #[inline(always)]
    unsafe fn load_bytes(ctx: *mut c_void, offset: u32, to: *mut c_void, len: u32) -> i64 {
        unsafe { bpf_skb_load_bytes(ctx.cast_const(), offset, to, len) }
    }

    #[inline(always)]
    fn offloaded_vlan(ctx: &TcContext) -> Option<u16> {
        let skb = ctx.skb.skb;
        let present = unsafe { (*skb).vlan_present };
        (present != 0).then(|| unsafe { (*skb).vlan_tci } as u16 & 0x0fff)
    }

    #[inline(always)]
    // `then_some`, as clippy would have it, leaves `None`'s payload unset.
    #[allow(clippy::some_filter)]
    fn offloaded_vlan_defined(ctx: &TcContext) -> Option<u16> {
        let skb = ctx.skb.skb;
        let present = unsafe { (*skb).vlan_present };
        // `filter` keeps the read value as the payload of either variant.
        Some(unsafe { (*skb).vlan_tci } as u16 & 0x0fff).filter(|_| present != 0)
    }

    /// An skb may hold its frame partly in pages (a packet socket's ring
    /// sends all but the link-layer header that way): those bytes are pulled
    /// into the linear part, a copy only when they are not there yet.
    #[inline(always)]
    fn make_readable(ctx: &TcContext, len: u32) {
        let skb = ctx.skb.skb;
        let len = len.min(unsafe { (*skb).len });
        let readable = ctx.data_end() - ctx.data();
        if readable < len as usize {
            unsafe { bpf_skb_pull_data(skb.cast(), len) };
        }
    }
}

pub struct Frame<H: Hook> {
    start: usize,
    ctx: *mut c_void,
    /// See [`Hook::offloaded_vlan`].
    pub offloaded_vlan: Option<u16>,
    hook: PhantomData<H>,
}

impl<H: Hook> Frame<H> {
    #[inline(always)]
    pub fn new(ctx: &H::Context) -> Self {
        Self {
            start: H::data(ctx),
            ctx: ctx.as_ptr(),
            offloaded_vlan: H::offloaded_vlan(ctx),
            hook: PhantomData,
        }
    }

    /// The end of the frame, read afresh for every check. With a plain load,
    /// LLVM proves later checks redundant from earlier ones through lengths
    /// the verifier cannot follow (a variable IP total length, say), drops
    /// them, and the verifier then rejects the access.
    #[inline(always)]
    fn end(&self) -> usize {
        unsafe { H::data_end(self.ctx) }
    }

    /// `Frame::new` for the IPv6 programs (`Hook::offloaded_vlan_defined`).
    #[inline(always)]
    pub fn new6(ctx: &H::Context) -> Self {
        Self {
            start: H::data(ctx),
            ctx: ctx.as_ptr(),
            offloaded_vlan: H::offloaded_vlan_defined(ctx),
            hook: PhantomData,
        }
    }

    /// The frame again after `Hook::make_readable` (or a call that may have
    /// made it), its tag as `self` read it.
    #[inline(always)]
    pub fn made_readable(&self, ctx: &H::Context) -> Self {
        Self {
            start: H::data(ctx),
            ctx: ctx.as_ptr(),
            offloaded_vlan: self.offloaded_vlan,
            hook: PhantomData,
        }
    }

    /// A pointer to a `T` at `offset`, or `None` when the frame ends before it
    /// does (for an skb: before its linear part does).
    #[inline(always)]
    fn get<T>(&self, offset: usize) -> Option<*const T> {
        if offset > MAX_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + core::mem::size_of::<T>() > self.end() {
            return None;
        }
        Some(at as *const T)
    }

    /// The header `T` at `offset`, in place, or `None` when the frame ends
    /// before it does: what parsers read, so that only this file
    /// dereferences a packet pointer. A reference, not a copy: a copy of a
    /// header passed on by reference would take stack, and the tc program's
    /// two frames already come close to the verifier's 512 bytes.
    #[inline(always)]
    pub fn header<T: Header>(&self, offset: usize) -> Option<&T> {
        let at = self.get::<T>(offset)?;
        // SAFETY: `get` checked that the frame holds a whole `T` at `at`, and
        // a header is bytes only (`Header`): any alignment and value will do.
        // The reference lives no longer than this `Frame`, made void only by
        // `make_readable`, which takes the context, never a frame.
        Some(unsafe { &*at })
    }

    /// A copy of the bytes at `offset`, or `None` when the frame ends before them.
    #[inline(always)]
    pub fn read<T: Header + Copy>(&self, offset: usize) -> Option<T> {
        self.header::<T>(offset).copied()
    }

    /// Whether the frame holds at least `len` bytes.
    #[inline(always)]
    pub fn holds(&self, len: usize) -> bool {
        len <= MAX_OFFSET && self.start + masked(len, MAX_OFFSET) <= self.end()
    }

    /// Reads a big-endian `u16` at `offset`.
    #[inline(always)]
    pub fn be16(&self, offset: usize) -> Option<u16> {
        let bytes = self.get::<[u8; 2]>(offset)?;
        Some(u16::from_be_bytes(unsafe { *bytes }))
    }

    /// The raw context, for code that reads through helpers (loop callbacks).
    #[inline(always)]
    pub fn ctx(&self) -> *mut c_void {
        self.ctx
    }
}

/// Copies a `T` from `offset` in the frame of `ctx` through the hook's load
/// helper. Used where no packet pointer can be carried, as in `bpf_loop` callbacks.
#[inline(always)]
pub fn load<H: Hook, T: Copy>(ctx: *mut c_void, offset: usize) -> Option<T> {
    if offset > MAX_OFFSET {
        return None;
    }
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let size = core::mem::size_of::<T>() as u32;
    let loaded = unsafe { H::load_bytes(ctx, offset as u32, value.as_mut_ptr().cast(), size) };
    // SAFETY: on success the helper wrote all `size` bytes of `value`.
    (loaded == 0).then(|| unsafe { value.assume_init() })
}

/// What may be read in place from a frame: bytes and structs of bytes, with
/// no alignment beyond 1 and no invalid value.
///
/// # Safety
/// Implement it only for types of alignment 1 whose every bit pattern is valid.
pub unsafe trait Header {}

// SAFETY: byte arrays and the wire headers below are bytes only.
unsafe impl Header for u8 {}
unsafe impl<const N: usize> Header for [u8; N] {}
unsafe impl Header for network_types::ip::Ipv4Hdr {}
unsafe impl Header for crate::headers::IgmpHeader {}
unsafe impl Header for crate::headers::V3QueryTail {}
unsafe impl Header for network_types::ip::Ipv6Hdr {}
unsafe impl Header for crate::headers::MldHeader {}
unsafe impl Header for crate::headers::MldQueryTail {}
