//! Limits against report floods, enforced here so that a flood costs no more
//! than these checks: a group limit per port and for the whole switch, and a
//! report rate limit per port. Existing entries are never evicted (unlike
//! OVS) and snooping is never switched off (unlike the Linux bridge).

use core::intrinsics::{atomic_xadd, AtomicOrdering::Relaxed};

use aya_ebpf::btf_maps::HashMap;
use igmp_common::{PortSettings, Settings};

use crate::{
    events::now,
    maps::{BPF_NOEXIST, GROUPS_ADDED, GROUPS_REMOVED, REPORT_RATE, SETTINGS},
};

/// The key of the whole-switch counts in `GROUPS_ADDED` / `GROUPS_REMOVED`.
const ALL_PORTS: u32 = 0;
const NS_PER_SECOND: u64 = 1_000_000_000;

/// Takes a place for one new membership entry on `ifindex`, if both the
/// port's and the switch's limits allow it. The place is counted before the
/// check, so CPUs racing for the last place cannot both take it (at worst
/// both give it back). Call `release_group` if the entry is not made.
#[inline(always)]
pub fn reserve_group(ifindex: u32, max_groups: u32) -> bool {
    if !reserve(ifindex, max_groups) {
        return false;
    }
    let switch_limit = SETTINGS
        .get(0)
        .map_or(0, |settings: &Settings| settings.max_groups);
    if !reserve(ALL_PORTS, switch_limit) {
        unreserve(ifindex);
        return false;
    }
    true
}

/// Gives back the place `reserve_group` took (the insert failed).
#[inline(always)]
pub fn release_group(ifindex: u32) {
    unreserve(ifindex);
    unreserve(ALL_PORTS);
}

#[inline(always)]
fn reserve(key: u32, limit: u32) -> bool {
    let Some(added) = get_or_insert_zero(&GROUPS_ADDED, key) else {
        // The counter map is full: counting is lost, learning is not.
        return true;
    };
    // An atomic add whose result is not used: the BPF CPU this object is
    // built for (v1) has no fetch-and-add. The count read back includes
    // this reservation and any racing one.
    // SAFETY: a pointer into the map's value, valid while the entry lives
    // (never deleted while the program runs).
    unsafe { atomic_xadd::<u64, u64, { Relaxed }>(added, 1) };
    if limit == 0 {
        return true;
    }
    let in_use = unsafe { core::ptr::read_volatile(added) }.wrapping_sub(removed_count(key));
    if in_use <= u64::from(limit) {
        return true;
    }
    unsafe { atomic_xadd::<u64, u64, { Relaxed }>(added, u64::MAX) };
    false
}

#[inline(always)]
fn unreserve(key: u32) {
    if let Some(added) = get_or_insert_zero(&GROUPS_ADDED, key) {
        // Adding 2^64 - 1 subtracts one: a plain atomic add, as above.
        unsafe { atomic_xadd::<u64, u64, { Relaxed }>(added, u64::MAX) };
    }
}

#[inline(always)]
fn removed_count(key: u32) -> u64 {
    GROUPS_REMOVED
        .get_ptr(key)
        .map_or(0, |removed| unsafe { *removed })
}

#[inline(always)]
fn get_or_insert_zero<const N: usize>(map: &HashMap<u32, u64, N>, key: u32) -> Option<*mut u64> {
    if let Some(value) = map.get_ptr_mut(key) {
        return Some(value);
    }
    let _ = map.insert(key, 0, BPF_NOEXIST);
    map.get_ptr_mut(key)
}

/// Whether a report or leave on the port fits its rate (`report_rate` per
/// second, up to `report_burst` back to back). A generic cell rate algorithm:
/// one timestamp per port, the time the next report is due at the steady
/// rate. Two CPUs racing on a port may both pass: the limit is a guard
/// against floods, and being a few reports generous costs nothing.
#[inline(always)]
pub fn report_allowed(ifindex: u32, port: &PortSettings) -> bool {
    if port.report_rate == 0 {
        return true;
    }
    let Some(due) = get_or_insert_zero(&REPORT_RATE, ifindex) else {
        return true;
    };
    let interval = NS_PER_SECOND / u64::from(port.report_rate);
    let tolerance = interval * u64::from(port.report_burst.max(1));
    let now = now();
    // SAFETY: a pointer into the map's value, valid while the entry lives.
    let after = unsafe { *due }.max(now) + interval;
    // Room for this report if the backlog it would leave fits the burst.
    if after - now > tolerance {
        return false;
    }
    unsafe { *due = after };
    true
}
