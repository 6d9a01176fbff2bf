//! The Internet checksum (RFC 1071) over a span of the frame.
//!
//! The spans nearly every IGMP frame has (an IPv4 header of 20 or 24 bytes,
//! an 8-byte IGMPv1/v2 message) are summed in place, a few additions. Any
//! other span is first copied into a per-CPU scratch buffer with
//! `bpf_xdp_load_bytes`, then summed by `bpf_csum_diff` in at most three calls.
//! Summing a span of any length in place needs a separately bounds-checked
//! call per power-of-two chunk; each of those branches multiplies the paths
//! the verifier walks through the rest of the program, past its budget.

use crate::frame::Frame;
use aya_ebpf::{
    bindings::xdp_md,
    btf_maps::PerCpuArray,
    helpers::{bpf_csum_diff, bpf_xdp_load_bytes},
    macros::btf_map,
};

/// Largest span summed: an IGMP message never exceeds an Ethernet MTU.
pub const MAX_SPAN: usize = 1536;
/// `bpf_csum_diff` sums at most 512 bytes per call.
const CSUM_CALL_MAX: usize = 512;

/// Room for the largest span plus the zero padding of its last word.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    bytes: [u8; MAX_SPAN + 4],
}

#[btf_map]
static CHECKSUM_SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Whether the 16-bit ones' complement sum of `len` bytes at `offset`,
/// checksum field included, is 0xffff (RFC 1071 §1).
#[inline(always)]
pub fn is_valid(frame: &Frame, offset: usize, len: usize) -> bool {
    let sum = match len {
        8 => sum_in_place::<8>(frame, offset),
        20 => sum_in_place::<20>(frame, offset),
        24 => sum_in_place::<24>(frame, offset),
        _ => sum(frame.ctx(), offset, len),
    };
    match sum {
        Some(sum) => fold(sum) == 0xffff,
        None => false,
    }
}

/// The sum of `N` bytes (`N` even) at `offset`, read from the frame itself.
#[inline(always)]
fn sum_in_place<const N: usize>(frame: &Frame, offset: usize) -> Option<u32> {
    let bytes = unsafe { *frame.get::<[u8; N]>(offset)? };
    let mut sum = 0u32;
    for pair in bytes.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    Some(sum)
}

#[inline(always)]
fn sum(ctx: *mut xdp_md, offset: usize, len: usize) -> Option<u32> {
    if len > MAX_SPAN {
        return None;
    }
    // Callers pass at least 8 bytes; the max() makes that visible to the
    // verifier, which needs a non-zero size for bpf_xdp_load_bytes (an
    // explicit `len == 0` test is folded by LLVM into a form it cannot use).
    let len = len.max(4);
    let scratch = CHECKSUM_SCRATCH.get_ptr_mut(0)?;
    let bytes = unsafe { &mut (*scratch).bytes };
    // Zero the word the span ends in (or the one after it): a span whose
    // length is not a multiple of 4 sums as if padded with zeros.
    let last_word = len & !3;
    if let Some(word) = bytes.get_mut(last_word..last_word + 4) {
        word.copy_from_slice(&[0; 4]);
    }
    let padded = (len + 3) & !3;
    let copied =
        unsafe { bpf_xdp_load_bytes(ctx, offset as u32, bytes.as_mut_ptr().cast(), len as u32) };
    if copied != 0 {
        return None;
    }
    let mut seed = 0u32;
    let mut done = 0usize;
    for _ in 0..MAX_SPAN / CSUM_CALL_MAX {
        if done >= padded {
            break;
        }
        let size = (padded - done).min(CSUM_CALL_MAX);
        let chunk = bytes.get_mut(done..done + size)?;
        let sum = unsafe {
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                chunk.as_mut_ptr().cast(),
                size as u32,
                seed,
            )
        };
        if sum < 0 {
            return None;
        }
        seed = sum as u32;
        done += size;
    }
    Some(seed)
}

#[inline(always)]
fn fold(sum: u32) -> u32 {
    let sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}
