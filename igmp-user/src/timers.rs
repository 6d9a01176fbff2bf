//! Protocol timers: the RFC defaults in one place, and the deadline queue that
//! drives expiry so that its cost grows with the number of expiries, not with
//! the size of the table.

use std::{cmp::Reverse, collections::BinaryHeap, time::Duration};

/// IGMP timer settings. Defaults are RFC 3376 §8 (and RFC 2236 §8), which the
/// Linux bridge also uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Robustness variable (RFC 3376 §8.1).
    pub robustness: u32,
    /// Query interval (RFC 3376 §8.2).
    pub query_interval: Duration,
    /// Query response interval (RFC 3376 §8.3).
    pub query_response_interval: Duration,
    /// Last member query interval (RFC 3376 §8.8).
    pub last_member_query_interval: Duration,
    /// Last member query count (RFC 3376 §8.9), defaults to the robustness variable.
    pub last_member_query_count: u32,
    /// Startup query interval (RFC 3376 §8.6): a quarter of the query interval.
    pub startup_query_interval: Duration,
    /// Startup query count (RFC 3376 §8.7), defaults to the robustness variable.
    pub startup_query_count: u32,
    /// How long a router port lives without a query (the bridge's
    /// multicast_querier_interval, equal to the other querier present interval).
    pub router_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            last_member_query_interval: Duration::from_secs(1),
            last_member_query_count: 2,
            startup_query_interval: Duration::from_millis(31_250),
            startup_query_count: 2,
            router_timeout: Duration::from_secs(255),
        }
    }
}

impl Timers {
    /// Group membership interval: robustness × query interval + query response
    /// interval (RFC 3376 §8.4), 260 s by default.
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval
    }

    /// Other querier present interval: robustness × query interval + half the
    /// query response interval (RFC 3376 §8.5), 255 s by default.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval / 2
    }

    /// Last member query time: LMQC × LMQI (RFC 3376 §8.14), 2 s by default.
    pub fn last_member_query_time(&self) -> Duration {
        self.last_member_query_interval * self.last_member_query_count
    }
}

/// A min-heap of (deadline, item). An item may sit in it more than once: the
/// check at its deadline re-reads the table, so a stale deadline costs one
/// lookup and no wrong decision.
pub struct Deadlines<T: Ord> {
    heap: BinaryHeap<Reverse<(u64, T)>>,
}

impl<T: Ord> Default for Deadlines<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord> Deadlines<T> {
    pub fn schedule(&mut self, deadline_ns: u64, item: T) {
        self.heap.push(Reverse((deadline_ns, item)));
    }

    /// Every item waiting for its deadline, in no particular order.
    pub fn pending(&self) -> impl Iterator<Item = &T> {
        self.heap.iter().map(|Reverse((_, item))| item)
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Removes and returns every item whose deadline is at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Vec<T> {
        let mut due = Vec::new();
        while let Some(Reverse((deadline, _))) = self.heap.peek() {
            if *deadline > now_ns {
                break;
            }
            let Reverse((_, item)) = self.heap.pop().expect("peeked");
            due.push(item);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`, so kernel
/// timestamps in the maps compare directly with it.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec and CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

pub fn nanos(duration: Duration) -> u64 {
    duration.as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rfc_3376_section_8() {
        let timers = Timers::default();
        assert_eq!(timers.group_membership_interval(), Duration::from_secs(260));
        assert_eq!(
            timers.other_querier_present_interval(),
            Duration::from_secs(255)
        );
        assert_eq!(timers.last_member_query_time(), Duration::from_secs(2));
        assert_eq!(timers.startup_query_interval, timers.query_interval / 4);
    }

    #[test]
    fn deadlines_pop_in_order_and_only_when_due() {
        let mut deadlines = Deadlines::default();
        deadlines.schedule(30, "c");
        deadlines.schedule(10, "a");
        deadlines.schedule(20, "b");
        assert_eq!(deadlines.pop_due(5), Vec::<&str>::new());
        assert_eq!(deadlines.pop_due(20), vec!["a", "b"]);
        assert_eq!(deadlines.next_deadline(), Some(30));
        assert_eq!(deadlines.len(), 1);
    }
}
