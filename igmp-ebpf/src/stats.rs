//! Per-port, per-CPU counters: one map lookup per IGMP frame, then plain increments.

use igmp_common::{Counter, DropReason, PortCounters};

use crate::maps::{BPF_NOEXIST, COUNTERS};

static ZEROED: PortCounters = PortCounters::ZERO;

/// The counter block of one port on this CPU (absent only if the map is full).
#[derive(Clone, Copy)]
pub struct PortStats(Option<*mut PortCounters>);

impl PortStats {
    #[inline(always)]
    pub fn for_port(ifindex: u32) -> Self {
        if let Some(block) = COUNTERS.get_ptr_mut(ifindex) {
            return Self(Some(block));
        }
        // Inserted by reference to read-only data: a zeroed block copied onto
        // the 512-byte stack would not fit beside the rest of the program.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let _ = COUNTERS.insert(ifindex, &ZEROED, BPF_NOEXIST);
        Self(COUNTERS.get_ptr_mut(ifindex))
    }

    #[inline(always)]
    pub fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }

    #[inline(always)]
    pub fn add(&self, counter: Counter, n: u64) {
        if let Some(block) = self.0 {
            // Per-CPU value: no other CPU writes it, so no atomic is needed.
            // `get_mut` rather than indexing: a bounds check that can panic
            // leaves an unreachable panic call the verifier rejects.
            if let Some(slot) = unsafe { (*block).messages.get_mut(counter as usize) } {
                *slot += n;
            }
        }
    }

    #[inline(always)]
    pub fn reject(&self, reason: DropReason) {
        if let Some(block) = self.0 {
            if let Some(slot) = unsafe { (*block).drops.get_mut(reason as usize) } {
                *slot += 1;
            }
        }
    }
}
