//! The Internet checksum (RFC 1071) over a span of the frame.
//!
//! The spans nearly every IGMP frame has (an IPv4 header of 20 or 24 bytes,
//! an 8-byte IGMPv1/v2 message) are summed in place, a few additions. Any
//! other span is first copied into a per-CPU scratch buffer with
//! the hook's load helper, then summed by `bpf_csum_diff` in at most three calls.
//! A source-filtering report is always summed from the copy, which its
//! record walk then reads ([`copied`]): one load for the whole message
//! instead of one per record header and per source.
//! Summing a span of any length in place needs a separately bounds-checked
//! call per power-of-two chunk; each of those branches multiplies the paths
//! the verifier walks through the rest of the program, past its budget.

use crate::{
    frame::{Frame, Hook},
    verifier::masked,
};
use core::ffi::c_void;

use aya_ebpf::{btf_maps::PerCpuArray, helpers::bpf_csum_diff, macros::btf_map};

/// Largest span summed: an IGMP message never exceeds an Ethernet MTU.
pub const MAX_SPAN: usize = 1536;
/// `bpf_csum_diff` sums at most 512 bytes per call.
const CSUM_CALL_MAX: usize = 512;
/// The verifier's bound on one call's size (`verifier::masked`): at least
/// `CSUM_CALL_MAX`, a multiple of 4, all ones below that.
const CSUM_CALL_MASK: usize = 0x3fc;
/// The verifier's bound on a span less one (`verifier::masked`): all ones,
/// at least `MAX_SPAN - 1`.
const SPAN_MASK: usize = 0x7ff;
/// The scratch buffer is as long as the verifier's bounds reach, not only as
/// long as a real span: older verifiers walk branches LLVM proved dead with
/// ranges no frame has, and check every access on them.
/// Past that, room for the longest read from the copy (an MLDv2 record
/// header, 20 octets) at any index the verifier sees bounded by `SPAN_MASK`.
const SCRATCH_LEN: usize = SPAN_MASK + 1 + COPIED_MAX;
/// The longest `T` [`copied`] reads.
const COPIED_MAX: usize = 32;
const _: () = assert!(SCRATCH_LEN >= MAX_SPAN + 4);
const _: () = assert!(SPAN_MASK >= MAX_SPAN - 1);
const _: () =
    assert!(SCRATCH_LEN > (MAX_SPAN / CSUM_CALL_MAX - 1) * CSUM_CALL_MAX + CSUM_CALL_MASK);

/// Room for the largest span plus the zero padding of its last word.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    bytes: [u8; SCRATCH_LEN],
}

#[btf_map]
static CHECKSUM_SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Whether the 16-bit ones' complement sum of `len` bytes at `offset`,
/// checksum field included, is 0xffff (RFC 1071 §1).
#[inline(always)]
pub fn is_valid<H: Hook>(frame: &Frame<H>, offset: usize, len: usize) -> bool {
    is_valid_from(frame, offset, len, 0, Kept::No)
}

/// Whether a span is summed from a copy that stays for [`copied`] to read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Summed in place where its length allows.
    No,
    /// Copied whatever its length.
    Copy,
}

/// As `is_valid`, and on success the span stays in this CPU's scratch
/// buffer, where [`copied`] reads it until the next span is summed.
#[inline(always)]
pub fn is_valid_kept<H: Hook>(frame: &Frame<H>, offset: usize, len: usize) -> bool {
    is_valid_from(frame, offset, len, 0, Kept::Copy)
}

/// A `T` at `at` octets into the span last summed from a copy (`Kept::Copy`):
/// the caller checked that `at + size_of::<T>()` lies within that span.
#[inline(always)]
pub fn copied<T: Copy>(at: usize) -> Option<T> {
    const { assert!(core::mem::size_of::<T>() <= COPIED_MAX) };
    if at > MAX_SPAN {
        return None;
    }
    let scratch = CHECKSUM_SCRATCH.get_ptr(0)?;
    // SAFETY: `at` is at most `SPAN_MASK`, and the buffer holds
    // `COPIED_MAX` octets past that, at least a `T`.
    Some(unsafe {
        (*scratch)
            .bytes
            .as_ptr()
            .add(masked(at, SPAN_MASK))
            .cast::<T>()
            .read_unaligned()
    })
}

/// Whether the ICMPv6 message of `len` bytes at `offset`, in the IPv6
/// packet at `l3_offset`, sums to 0xffff with its pseudo-header: source,
/// destination, upper-layer length and Next Header 58 (RFC 4443 §2.3,
/// RFC 8200 §8.1). The destination is the packet's own: MLD never carries
/// a Routing header.
#[inline(always)]
pub fn is_valid_icmpv6<H: Hook>(
    frame: &Frame<H>,
    l3_offset: usize,
    offset: usize,
    len: usize,
    kept: Kept,
) -> bool {
    // Source and destination, 32 octets from octet 8 of the IPv6 header.
    let Some(addresses) = sum_in_place::<32, H>(frame, l3_offset + 8) else {
        return false;
    };
    let seed = addresses + (len >> 16) as u32 + (len & 0xffff) as u32 + u32::from(ICMPV6);
    // Summed here, before the copy's load: left to LLVM, the sum sinks past
    // the helper call and the 32 octets it reads wait on the stack, 256
    // bytes of spills on a frame near the verifier's limit.
    let seed = core::hint::black_box(fold(seed));
    is_valid_from(frame, offset, len, seed, kept)
}

/// Next Header of ICMPv6, in the pseudo-header.
const ICMPV6: u8 = 58;

#[inline(always)]
fn is_valid_from<H: Hook>(
    frame: &Frame<H>,
    offset: usize,
    len: usize,
    seed: u32,
    kept: Kept,
) -> bool {
    let sum = match len {
        8 if kept == Kept::No => sum_in_place::<8, H>(frame, offset).map(|sum| sum + seed),
        20 if kept == Kept::No => sum_in_place::<20, H>(frame, offset).map(|sum| sum + seed),
        24 if kept == Kept::No => sum_in_place::<24, H>(frame, offset).map(|sum| sum + seed),
        // `bpf_csum_diff` sums words in the CPU's byte order (little-endian
        // here), the in-place sums in network order: the seed, a network
        // order sum, goes in byte-swapped (RFC 1071 §2(B)).
        _ => sum::<H>(
            frame.ctx(),
            offset,
            len,
            u32::from((fold(seed) as u16).swap_bytes()),
        ),
    };
    match sum {
        Some(sum) => fold(sum) == 0xffff,
        None => false,
    }
}

/// The sum of `N` bytes (`N` even) at `offset`, read from the frame itself.
#[inline(always)]
fn sum_in_place<const N: usize, H: Hook>(frame: &Frame<H>, offset: usize) -> Option<u32> {
    let bytes = frame.read::<[u8; N]>(offset)?;
    let mut sum = 0u32;
    for pair in bytes.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    Some(sum)
}

#[inline(always)]
fn sum<H: Hook>(ctx: *mut c_void, offset: usize, len: usize, seed: u32) -> Option<u32> {
    if len > MAX_SPAN {
        return None;
    }
    // Callers pass at least 8 bytes. The load helpers need a size the
    // verifier knows to be non-zero and inside the buffer: a compare is folded
    // by LLVM, which knows the callers, and 6.1 never saw the length bounded.
    if len == 0 {
        return None;
    }
    let len = masked(len - 1, SPAN_MASK) + 1;
    let scratch = CHECKSUM_SCRATCH.get_ptr_mut(0)?;
    let bytes = unsafe { &mut (*scratch).bytes };
    // Zero the word the span ends in (or the one after it): a span whose
    // length is not a multiple of 4 sums as if padded with zeros.
    let last_word = masked(len, SPAN_MASK & !3);
    // SAFETY: `last_word + 4 <= SPAN_MASK + 1`, the buffer's length.
    unsafe {
        bytes
            .as_mut_ptr()
            .add(last_word)
            .cast::<[u8; 4]>()
            .write_unaligned([0; 4])
    };
    let padded = (len + 3) & !3;
    let copied =
        unsafe { H::load_bytes(ctx, offset as u32, bytes.as_mut_ptr().cast(), len as u32) };
    if copied != 0 {
        return None;
    }
    let mut seed = seed;
    // Chunks at constant offsets: a running offset plus a size is a sum the
    // 6.1 verifier cannot bound against the scratch buffer.
    for chunk in 0..MAX_SPAN / CSUM_CALL_MAX {
        let start = chunk * CSUM_CALL_MAX;
        if start >= padded {
            break;
        }
        let size = masked((padded - start).min(CSUM_CALL_MAX), CSUM_CALL_MASK);
        // SAFETY: `start + size <= padded <= MAX_SPAN + 4`, inside `bytes`.
        let from = unsafe { bytes.as_mut_ptr().add(start) };
        let sum =
            unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, from.cast(), size as u32, seed) };
        if sum < 0 {
            return None;
        }
        seed = sum as u32;
    }
    Some(seed)
}

#[inline(always)]
fn fold(sum: u32) -> u32 {
    let sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}
