//! Events for the daemon: only state changes and queries, never refreshes,
//! so the ring buffer carries little even under a report storm.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use igmp_common::{Counter, Event, EventKind};

use crate::{family::Family, stats::PortStats};

/// Where and about what an event happened.
pub struct Subject<A: Family> {
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    pub group: A,
    pub address: A,
    pub version: u8,
    pub record_type: u8,
    pub max_resp_code: u8,
    /// `query_flags::*` (queries only).
    pub flags: u8,
}

/// Writes the event straight into the ring buffer: no copy of it on the
/// stack, which the program and its `bpf_loop` callbacks share (512 bytes).
#[inline(always)]
pub fn emit<A: Family>(kind: EventKind, subject: &Subject<A>, stats: &PortStats) {
    let Some(mut entry) = A::events().reserve(0) else {
        stats.count(Counter::EventLost);
        return;
    };
    entry.write(Event {
        timestamp_ns: now(),
        kind: kind as u32,
        ifindex: subject.ifindex,
        vlan: subject.vlan,
        inner_vlan: subject.inner_vlan,
        group: subject.group,
        address: subject.address,
        version: subject.version,
        record_type: subject.record_type,
        max_resp_code: subject.max_resp_code,
        flags: subject.flags,
    });
    entry.submit(0);
}

/// CLOCK_MONOTONIC, the clock of every timestamp in the maps.
#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}
