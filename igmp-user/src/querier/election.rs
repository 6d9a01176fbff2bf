//! Who queries: this switch, unless another querier with a lower address
//! speaks (RFC 2236 §3, RFC 3376 §6.6.2; for MLD the lowest IPv6 address,
//! RFC 3810 §7.6.2); and whether any querier is known, which ends when the
//! other querier falls silent for the other querier present interval. One
//! election for both families, generic over the address. Pure logic over a
//! clock the caller passes in, so every rule is tested without a network.

use std::{
    fmt::{Debug, Display},
    net::{Ipv4Addr, Ipv6Addr},
};

use crate::timers::{nanos, Timers};

/// A querier's address: IGMP's IPv4 or MLD's IPv6. Both order as numbers
/// (their octets, big-endian), which is the order of the election.
pub trait QuerierAddress: Copy + Ord + Debug + Display {
    /// The address of a proxy's queries (0.0.0.0, ::), which never win.
    const UNSPECIFIED: Self;
}

impl QuerierAddress for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
}

impl QuerierAddress for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
}

/// What the daemon must do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuerierAction<A = Ipv4Addr> {
    /// Send a general query on every port.
    SendGeneralQuery,
    /// Send a group-specific query on `port` (ifindex); with `source`, a
    /// group-and-source-specific one (IGMPv3).
    SendGroupQuery {
        port: u32,
        group: A,
        source: Option<A>,
    },
    /// This switch became the querier (at start, or the other one fell silent).
    BecameQuerier,
    /// Another querier won the election; this switch stops querying.
    OtherQuerierElected(A),
    /// The other querier was not heard for the other querier present
    /// interval (RFC 3376 §6.6, RFC 2236 §3): it is forgotten, so the
    /// policies that follow "a querier is known" must be published again,
    /// whether or not this switch queries in its place.
    OtherQuerierSilent(A),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingGroupQuery<A> {
    port: u32,
    group: A,
    source: Option<A>,
    due: u64,
    left: u32,
}

#[derive(Debug)]
pub struct Querier<A = Ipv4Addr> {
    enabled: bool,
    /// Our source address; `None` queries from the unspecified address,
    /// which never wins an election.
    address: Option<A>,
    timers: Timers,
    /// The elected other querier and when its present interval ends.
    other: Option<(A, u64)>,
    /// When our next general query is due, while we are the querier.
    next_general: Option<u64>,
    startup_queries_left: u32,
    group_queries: Vec<PendingGroupQuery<A>>,
    announced: bool,
}

impl<A: QuerierAddress> Querier<A> {
    /// A querier that, if `enabled`, starts querying at `now` with the
    /// startup queries (RFC 3376 §8.6, §8.7).
    pub fn new(enabled: bool, address: Option<A>, timers: Timers, now: u64) -> Self {
        Self {
            enabled,
            address: address.filter(|address| *address != A::UNSPECIFIED),
            startup_queries_left: timers.startup_query_count,
            timers,
            other: None,
            next_general: enabled.then_some(now),
            group_queries: Vec::new(),
            announced: false,
        }
    }

    /// Whether this switch is the querier now.
    pub fn is_querier(&self) -> bool {
        self.enabled && self.other.is_none()
    }

    /// The other querier, while its present interval lasts, whether or not
    /// this switch would query itself.
    pub fn other_querier(&self, now: u64) -> Option<A> {
        self.other
            .filter(|(_, until)| now < *until)
            .map(|(address, _)| address)
    }

    /// The elected querier: the other one, or ours.
    pub fn current(&self) -> Option<A> {
        match self.other {
            Some((other, _)) => Some(other),
            None if self.enabled => Some(self.address.unwrap_or(A::UNSPECIFIED)),
            None => None,
        }
    }

    /// A query from `source` arrived at `now`. Queries from 0.0.0.0 (::)
    /// never win; a real querier wins over us if we have no address or a
    /// higher one.
    pub fn on_query(&mut self, source: A, now: u64) -> Option<QuerierAction<A>> {
        if source == A::UNSPECIFIED || !self.wins_over_us(source) {
            return None;
        }
        let until = now + nanos(self.timers.other_querier_present_interval());
        let newly_elected = self.other.is_none_or(|(other, _)| other != source);
        self.other = Some((source, until));
        self.next_general = None;
        self.group_queries.clear();
        newly_elected.then_some(QuerierAction::OtherQuerierElected(source))
    }

    /// A query from `source` heard at `heard` (before `now`, by a previous
    /// daemon: the router ports keep it), elected as if it had just come,
    /// unless its other querier present interval already ran out by `now`.
    /// So a restart keeps the querier until its own timer would expire.
    pub fn adopt(&mut self, source: A, heard: u64, now: u64) -> Option<QuerierAction<A>> {
        let until = heard + nanos(self.timers.other_querier_present_interval());
        if until <= now {
            return None;
        }
        self.on_query(source, heard)
    }

    fn wins_over_us(&self, source: A) -> bool {
        match (self.enabled, self.address) {
            (false, _) | (true, None) => true,
            (true, Some(ours)) => source < ours,
        }
    }

    /// A leave for `group` on `port`: as querier, schedules LMQC
    /// group-specific queries LMQI apart (RFC 3376 §6.6.3.1). Returns whether
    /// this switch will query.
    pub fn on_leave(&mut self, port: u32, group: A, now: u64) -> bool {
        self.schedule_group_query(port, group, None, now)
    }

    /// A BLOCK of `source` (IGMPv3): as querier, schedules LMQC
    /// group-and-source-specific queries LMQI apart (RFC 3376 §6.6.3.2).
    pub fn on_source_leave(&mut self, port: u32, group: A, source: A, now: u64) -> bool {
        self.schedule_group_query(port, group, Some(source), now)
    }

    fn schedule_group_query(&mut self, port: u32, group: A, source: Option<A>, now: u64) -> bool {
        if !self.is_querier() {
            return false;
        }
        self.group_queries
            .retain(|query| (query.port, query.group, query.source) != (port, group, source));
        self.group_queries.push(PendingGroupQuery {
            port,
            group,
            source,
            due: now,
            left: self.timers.last_member_query_count,
        });
        true
    }

    /// The next time [`Querier::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let other_expires = self.other.map(|(_, until)| until);
        let group_query = self.group_queries.iter().map(|query| query.due).min();
        [self.next_general, other_expires, group_query]
            .into_iter()
            .flatten()
            .min()
    }

    /// Everything due at `now`, in order.
    pub fn poll(&mut self, now: u64) -> Vec<QuerierAction<A>> {
        let mut actions = Vec::new();
        self.take_over_if_other_silent(now, &mut actions);
        if self.is_querier() && !self.announced {
            self.announced = true;
            actions.push(QuerierAction::BecameQuerier);
        }
        if let Some(due) = self.next_general.filter(|due| *due <= now) {
            actions.push(QuerierAction::SendGeneralQuery);
            self.next_general = Some(due.max(now) + self.general_query_gap());
        }
        self.poll_group_queries(now, &mut actions);
        actions
    }

    /// The other querier present interval ran out: it is forgotten, and we
    /// query again at once if we may.
    fn take_over_if_other_silent(&mut self, now: u64, actions: &mut Vec<QuerierAction<A>>) {
        if let Some((other, _)) = self.other.filter(|(_, until)| *until <= now) {
            self.other = None;
            actions.push(QuerierAction::OtherQuerierSilent(other));
            if self.enabled {
                self.next_general = Some(now);
                self.announced = true;
                actions.push(QuerierAction::BecameQuerier);
            }
        }
    }

    /// Startup queries come a startup query interval apart, then one per query interval.
    fn general_query_gap(&mut self) -> u64 {
        if self.startup_queries_left > 1 {
            self.startup_queries_left -= 1;
            nanos(self.timers.startup_query_interval)
        } else {
            self.startup_queries_left = 0;
            nanos(self.timers.query_interval)
        }
    }

    fn poll_group_queries(&mut self, now: u64, actions: &mut Vec<QuerierAction<A>>) {
        let interval = nanos(self.timers.last_member_query_interval);
        for query in self
            .group_queries
            .iter_mut()
            .filter(|query| query.due <= now)
        {
            actions.push(QuerierAction::SendGroupQuery {
                port: query.port,
                group: query.group,
                source: query.source,
            });
            query.left -= 1;
            query.due = now + interval;
        }
        self.group_queries.retain(|query| query.left > 0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: u64 = 1_000_000_000;
    const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

    fn timers() -> Timers {
        Timers {
            query_interval: Duration::from_secs(100),
            startup_query_interval: Duration::from_secs(25),
            ..Timers::default()
        }
    }

    fn generals<A: QuerierAddress>(querier: &mut Querier<A>, now: u64) -> usize {
        querier
            .poll(now)
            .iter()
            .filter(|action| **action == QuerierAction::SendGeneralQuery)
            .count()
    }

    #[test]
    fn startup_queries_are_sent_at_the_startup_interval_then_at_the_query_interval() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        assert_eq!(
            querier.poll(0),
            vec![
                QuerierAction::BecameQuerier,
                QuerierAction::SendGeneralQuery
            ]
        );
        assert_eq!(querier.next_deadline(), Some(25 * S));
        assert_eq!(generals(&mut querier, 25 * S), 1);
        assert_eq!(querier.next_deadline(), Some(125 * S));
        assert_eq!(generals(&mut querier, 124 * S), 0);
        assert_eq!(generals(&mut querier, 125 * S), 1);
    }

    #[test]
    fn a_disabled_querier_sends_nothing() {
        let mut querier = Querier::new(false, Some(OURS), timers(), 0);
        assert!(querier.poll(0).is_empty());
        assert_eq!(querier.next_deadline(), None);
        assert!(!querier.on_leave(1, GROUP, 0));
    }

    #[test]
    fn lower_address_querier_wins_and_we_back_off() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        querier.poll(0);
        let lower = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(
            querier.on_query(lower, S),
            Some(QuerierAction::OtherQuerierElected(lower))
        );
        assert!(!querier.is_querier());
        assert_eq!(querier.current(), Some(lower));
        assert_eq!(generals(&mut querier, 200 * S), 0);
    }

    #[test]
    fn higher_address_querier_is_ignored_while_we_query() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        assert_eq!(querier.on_query(Ipv4Addr::new(10, 0, 0, 200), S), None);
        assert!(querier.is_querier());
    }

    #[test]
    fn zero_source_query_never_wins() {
        let mut querier = Querier::new(true, None, timers(), 0);
        assert_eq!(querier.on_query(Ipv4Addr::UNSPECIFIED, S), None);
        assert!(querier.is_querier());
        assert_eq!(querier.current(), Some(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn without_an_address_any_real_querier_wins() {
        let mut querier = Querier::new(true, None, timers(), 0);
        let any = Ipv4Addr::new(192, 168, 1, 254);
        assert_eq!(
            querier.on_query(any, S),
            Some(QuerierAction::OtherQuerierElected(any))
        );
    }

    #[test]
    fn we_take_over_after_the_other_querier_present_interval() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        querier.poll(0);
        querier.on_query(Ipv4Addr::new(10, 0, 0, 3), 10 * S);
        // Other querier present interval: 2 × 100 s + 10 s / 2 = 205 s.
        assert_eq!(querier.next_deadline(), Some(215 * S));
        assert!(querier.poll(214 * S).is_empty());
        let actions = querier.poll(215 * S);
        assert_eq!(
            actions,
            vec![
                QuerierAction::OtherQuerierSilent(Ipv4Addr::new(10, 0, 0, 3)),
                QuerierAction::BecameQuerier,
                QuerierAction::SendGeneralQuery
            ]
        );
        assert!(querier.is_querier());
    }

    #[test]
    fn without_our_querier_a_silent_querier_is_forgotten_and_none_is_known() {
        let mut querier = Querier::new(false, None, timers(), 0);
        let other = Ipv4Addr::new(10, 0, 0, 3);
        querier.on_query(other, 10 * S);
        assert_eq!(querier.current(), Some(other));
        assert_eq!(querier.next_deadline(), Some(215 * S));
        assert!(querier.poll(214 * S).is_empty());
        assert_eq!(
            querier.poll(215 * S),
            vec![QuerierAction::OtherQuerierSilent(other)]
        );
        assert_eq!(querier.current(), None);
        assert_eq!(querier.next_deadline(), None);
        assert!(querier.poll(400 * S).is_empty(), "said once");
    }

    #[test]
    fn a_querier_heard_before_a_restart_is_kept_until_its_own_interval_ends() {
        let other = Ipv4Addr::new(10, 0, 0, 3);
        // Heard at 10 s, restarted at 100 s: present until 10 + 205 s.
        let mut querier = Querier::new(true, Some(OURS), timers(), 100 * S);
        assert_eq!(
            querier.adopt(other, 10 * S, 100 * S),
            Some(QuerierAction::OtherQuerierElected(other))
        );
        assert_eq!(querier.current(), Some(other));
        assert_eq!(generals(&mut querier, 100 * S), 0, "no startup queries");
        assert_eq!(querier.next_deadline(), Some(215 * S));
        assert_eq!(
            querier.poll(215 * S)[..2],
            [
                QuerierAction::OtherQuerierSilent(other),
                QuerierAction::BecameQuerier
            ]
        );
    }

    #[test]
    fn a_querier_whose_interval_ran_out_before_the_restart_is_not_adopted() {
        let mut querier = Querier::new(false, None, timers(), 300 * S);
        assert_eq!(
            querier.adopt(Ipv4Addr::new(10, 0, 0, 3), 10 * S, 215 * S),
            None
        );
        assert_eq!(querier.current(), None);
    }

    #[test]
    fn a_higher_querier_heard_before_a_restart_does_not_win_over_ours() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 100 * S);
        assert_eq!(
            querier.adopt(Ipv4Addr::new(10, 0, 0, 200), 90 * S, 100 * S),
            None
        );
        assert!(querier.is_querier());
    }

    #[test]
    fn leave_schedules_lmqc_group_queries_lmqi_apart() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        querier.poll(0);
        assert!(querier.on_leave(3, GROUP, 10 * S));
        let query = QuerierAction::SendGroupQuery {
            port: 3,
            group: GROUP,
            source: None,
        };
        assert_eq!(querier.poll(10 * S), vec![query.clone()]);
        assert_eq!(querier.next_deadline(), Some(11 * S));
        assert_eq!(querier.poll(11 * S), vec![query]);
        assert!(querier.poll(12 * S).is_empty(), "LMQC is 2");
    }

    #[test]
    fn a_blocked_source_is_asked_about_with_group_and_source_queries() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        querier.poll(0);
        let source = Ipv4Addr::new(192, 0, 2, 1);
        assert!(querier.on_source_leave(3, GROUP, source, S));
        let query = QuerierAction::SendGroupQuery {
            port: 3,
            group: GROUP,
            source: Some(source),
        };
        assert_eq!(querier.poll(S), vec![query]);
    }

    #[test]
    fn a_querier_that_yields_drops_its_pending_group_queries() {
        let mut querier = Querier::new(true, Some(OURS), timers(), 0);
        querier.poll(0);
        querier.on_leave(3, GROUP, S);
        querier.on_query(Ipv4Addr::new(10, 0, 0, 1), S);
        assert!(querier.poll(S).is_empty());
    }

    const OURS6: &str = "fe80::5054:ff:fe00:10";

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    /// RFC 3810 §7.6.2: the lowest IPv6 address wins, compared as a 128-bit number.
    #[test]
    fn mld_lowest_link_local_address_wins() {
        let mut querier = Querier::new(true, Some(v6(OURS6)), timers(), 0);
        querier.poll(0);
        assert_eq!(querier.on_query(v6("fe80::5054:ff:fe00:11"), S), None);
        assert_eq!(
            querier.on_query(v6("fe80::6000:0:0:0"), S),
            None,
            "higher in the interface identifier's first group"
        );
        assert!(querier.is_querier());
        let lower = v6("fe80::2");
        assert_eq!(
            querier.on_query(lower, S),
            Some(QuerierAction::OtherQuerierElected(lower))
        );
        assert!(!querier.is_querier());
        assert_eq!(querier.other_querier(2 * S), Some(lower));
        assert_eq!(generals(&mut querier, 100 * S), 0);
    }

    #[test]
    fn mld_a_query_from_the_unspecified_address_never_wins() {
        let mut querier = Querier::new(true, Some(v6(OURS6)), timers(), 0);
        assert_eq!(querier.on_query(Ipv6Addr::UNSPECIFIED, S), None);
        assert_eq!(querier.current(), Some(v6(OURS6)));
    }

    #[test]
    fn mld_done_as_querier_schedules_llqc_address_specific_queries() {
        let mut querier = Querier::new(true, Some(v6(OURS6)), Timers::default(), 0);
        querier.poll(0);
        let group = v6("ff0e::66");
        assert!(querier.on_leave(4, group, 3 * S));
        let query = QuerierAction::SendGroupQuery {
            port: 4,
            group,
            source: None,
        };
        assert_eq!(querier.poll(3 * S), vec![query.clone()]);
        assert_eq!(querier.poll(4 * S), vec![query]);
        assert!(querier.poll(5 * S).is_empty(), "LLQC = robustness = 2");
    }

    #[test]
    fn mld_the_other_querier_present_interval_is_255_s_by_default() {
        // RFC 3810 §9.5: 2 × 125 s + 10 s / 2.
        let mut querier = Querier::new(true, Some(v6(OURS6)), Timers::default(), 0);
        querier.poll(0);
        querier.on_query(v6("fe80::1"), 0);
        assert_eq!(querier.next_deadline(), Some(255 * S));
    }
}
