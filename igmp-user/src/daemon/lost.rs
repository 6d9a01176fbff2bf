//! Events the XDP program could not queue: the ring buffer was full (a report
//! storm, or a daemon stopped or slow). The program counts them
//! (`Counter::EventLost`) and the tables hold what they announced, so the
//! daemon reads the tables for every entry it does not follow yet. Without
//! this, a group created while events were lost would never expire and
//! never get its fast-path entry.

use std::collections::BTreeSet;

use igmp_common::Counter;
use tracing::warn;

use super::{Daemon, Due};
use crate::timers::monotonic_ns;

impl Daemon {
    /// Events lost on every port so far.
    pub(super) fn count_lost_events(&self) -> u64 {
        self.tables
            .port_counters()
            .iter()
            .map(|(_, counters)| counters.messages[Counter::EventLost as usize])
            .sum()
    }

    /// Follows every entry of the tables the daemon has no deadline for, if
    /// events were lost since the last look.
    pub(super) fn catch_up_lost_events(&mut self) {
        let lost = self.count_lost_events();
        // Counters of a vanished port go with it: the sum may also fall.
        if lost <= self.events_lost {
            self.events_lost = lost;
            return;
        }
        warn!(
            "{} events lost (ring buffer full): reading the tables for them",
            lost - self.events_lost
        );
        self.events_lost = lost;
        let followed: BTreeSet<Due> = self.deadlines.pending().copied().collect();
        let now = monotonic_ns();
        for (key, _) in self.tables.memberships() {
            if !followed.contains(&Due::Group(key)) {
                self.deadlines.schedule(now, Due::Group(key));
                self.register_group(key);
            }
        }
        for (key, _) in self.tables.source_entries() {
            self.sources.insert(key);
            if !followed.contains(&Due::Source(key)) {
                self.deadlines.schedule(now, Due::Source(key));
            }
        }
        for (key, _) in self.tables.router_ports() {
            if !followed.contains(&Due::Router(key)) {
                self.deadlines.schedule(now, Due::Router(key));
            }
        }
    }
}
