//! Bounds the verifier can see. Owns nothing but the one masking instruction;
//! callers check their values first and use this only to make the bound
//! visible.
//!
//! Verifiers before 6.8 lose bounds where newer ones keep them: a byte-swapped
//! value (an IP length) is unbounded, an OR of two unknowns is unknown, and a
//! branch LLVM proved dead is still walked with a range whose minimum exceeds
//! its maximum. A value added to a packet or map pointer must then carry an
//! AND with a constant of its own. Written in Rust, that AND would be dropped
//! by LLVM after the check that made it redundant, so it is written in asm.

/// `value & mask`, as an instruction LLVM keeps. `mask` must be a constant
/// of the form `2^n - 1` (or such a value with low bits cleared); callers
/// pass values already known to fit it, so the result equals `value`.
#[inline(always)]
pub fn masked(value: usize, mask: usize) -> usize {
    let mut value = value;
    // SAFETY: one ALU instruction on registers; no memory is touched.
    unsafe { core::arch::asm!("{0} &= {1}", inout(reg) value, in(reg) mask) };
    value
}
