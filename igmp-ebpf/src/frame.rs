//! Bounds-checked access to the frame: the one place that does pointer arithmetic.

use aya_ebpf::{bindings::xdp_md, helpers::bpf_xdp_load_bytes, programs::XdpContext};

use crate::verifier::masked;

/// Offsets past this are refused before any pointer is formed (no frame is
/// larger: 9 KiB jumbo frames fit). A length read from the frame is also
/// masked with it (`verifier::masked`), as verifiers before 6.8 lose its
/// bounds: a power of two less one.
const MAX_OFFSET: usize = 0x3fff;

pub struct Frame {
    start: usize,
    ctx: *const xdp_md,
}

impl Frame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            ctx: ctx.ctx,
        }
    }

    /// The end of the frame, read afresh for every check. With a plain load,
    /// LLVM proves later checks redundant from earlier ones through lengths
    /// the verifier cannot follow (a variable IP total length, say), drops
    /// them, and the verifier then rejects the access.
    #[inline(always)]
    fn end(&self) -> usize {
        unsafe { core::ptr::read_volatile(&(*self.ctx).data_end) as usize }
    }

    /// A pointer to a `T` at `offset`, or `None` when the frame ends before it does.
    #[inline(always)]
    pub fn get<T>(&self, offset: usize) -> Option<*const T> {
        if offset > MAX_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + core::mem::size_of::<T>() > self.end() {
            return None;
        }
        Some(at as *const T)
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

    /// The XDP context, for code that reads through helpers (loop callbacks).
    #[inline(always)]
    pub fn ctx(&self) -> *mut xdp_md {
        self.ctx as *mut xdp_md
    }
}

/// Copies a `T` from `offset` in the frame of `ctx` through `bpf_xdp_load_bytes`.
/// Used where no packet pointer can be carried, as in `bpf_loop` callbacks.
#[inline(always)]
pub fn load<T: Copy>(ctx: *mut xdp_md, offset: usize) -> Option<T> {
    if offset > MAX_OFFSET {
        return None;
    }
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let size = core::mem::size_of::<T>() as u32;
    let loaded = unsafe { bpf_xdp_load_bytes(ctx, offset as u32, value.as_mut_ptr().cast(), size) };
    // SAFETY: on success the helper wrote all `size` bytes of `value`.
    (loaded == 0).then(|| unsafe { value.assume_init() })
}
