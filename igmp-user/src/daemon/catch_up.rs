//! Catching up with changes whose events were lost: when the XDP program
//! finds the ring buffer full it counts `event_lost` and makes the entry
//! anyway. The entries made since the last check are then scheduled and
//! registered from the maps, so none is left without expiry or forwarding.

use igmp_common::Counter;
use log::warn;

use super::{Daemon, Due};
use crate::timers::monotonic_ns;

/// Entries made this long before the previous check are looked at again:
/// an entry and its lost-event count are not written at the same instant.
const OVERLAP_NS: u64 = 1_000_000_000;

impl Daemon {
    /// Losses before now are covered by adopting the whole table.
    pub(super) fn count_lost_events_from_now(&mut self) {
        self.lost_events = LostEvents {
            seen: self.lost_event_count(),
            checked_ns: monotonic_ns(),
        };
    }

    fn lost_event_count(&self) -> u64 {
        self.tables
            .port_counters()
            .iter()
            .map(|(_, counters)| counters.messages[Counter::EventLost as usize])
            .sum()
    }

    pub(super) fn catch_up_lost_events(&mut self) {
        let now = monotonic_ns();
        let lost = self.lost_event_count();
        let since = self.lost_events.checked_ns.saturating_sub(OVERLAP_NS);
        self.lost_events.checked_ns = now;
        if lost <= self.lost_events.seen {
            self.lost_events.seen = lost;
            return;
        }
        warn!(
            "{} events lost (ring buffer full): catching up from the maps",
            lost - self.lost_events.seen
        );
        self.lost_events.seen = lost;
        for (key, entry) in self.tables.memberships() {
            if entry.created_ns >= since {
                self.deadlines.schedule(now, Due::Group(key));
                self.register_group(key);
            }
        }
        for (key, entry) in self.tables.source_entries() {
            if entry.last_report_ns >= since {
                self.deadlines.schedule(now, Due::Source(key));
            }
        }
    }
}

/// What the daemon knows of lost events.
#[derive(Debug, Default)]
pub(super) struct LostEvents {
    /// `event_lost` summed over ports, at the last check.
    pub seen: u64,
    pub checked_ns: u64,
}
