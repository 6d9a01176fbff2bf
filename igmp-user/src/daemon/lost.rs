//! Events the XDP program could not queue: the ring buffer was full (a report
//! storm, or a daemon stopped or slow). The program counts them
//! (`Counter::EventLost`) and the tables hold what they announced, so the
//! loop has the membership component read the tables for every entry it
//! does not follow yet. This component owns the counter maps on the daemon's
//! side: it reads them, and drops a vanished port's.

use igmp_common::Counter;
use tracing::warn;

use crate::tables::StatisticsMaps;

pub(super) struct LostEvents {
    maps: StatisticsMaps,
    /// Events lost on every port, as last counted.
    seen: u64,
}

impl LostEvents {
    pub(super) fn new(maps: StatisticsMaps) -> Self {
        let mut lost = Self { maps, seen: 0 };
        lost.seen = lost.count();
        lost
    }

    /// Events lost on every port so far.
    fn count(&self) -> u64 {
        self.maps
            .port_counters()
            .iter()
            .map(|(_, counters)| counters.messages[Counter::EventLost as usize])
            .sum()
    }

    /// Whether events were lost since the last look.
    pub(super) fn lost_since_last_look(&mut self) -> bool {
        let lost = self.count();
        // Counters of a vanished port go with it: the sum may also fall.
        let more = lost > self.seen;
        if more {
            warn!(
                lost = lost - self.seen,
                "events lost (ring buffer full): reading the tables for them"
            );
        }
        self.seen = lost;
        more
    }

    /// The counters of a port that is gone go with it.
    pub(super) fn forget_port(&mut self, ifindex: u32) {
        let _ = self.maps.counters.remove(&ifindex);
    }
}
