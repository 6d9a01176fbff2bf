//! How a leave ends a membership, as the Linux bridge does it (RFC 4541
//! §2.1.1): with another querier on the LAN, the switch ignores the leave
//! and follows that querier's group-specific queries instead; without one it
//! lowers the member's timer to the last member query time itself (and, as
//! querier, sends the group-specific queries). Group-and-source-specific
//! queries lower the timers of their sources the same way, and no group's.

use std::{collections::HashMap, hash::Hash};

use igmp_common::{MembershipKey, SourceKey};

use crate::expiry::{self, Verdict};

/// Entries whose timer a query lowered: key → (query time, deadline).
#[derive(Debug)]
pub struct QueriedTimers<K> {
    lowered: HashMap<K, (u64, u64)>,
}

/// Members a group-specific query lowered (RFC 3376 §6.6.1).
pub type GroupQueries<A = [u8; 4]> = QueriedTimers<MembershipKey<A>>;
/// Sources a group-and-source-specific query lowered (RFC 3376 §6.6.1): the
/// query lowers the timers of its sources only, never the group's.
pub type SourceQueries<A = [u8; 4]> = QueriedTimers<SourceKey<A>>;

impl<K> Default for QueriedTimers<K> {
    fn default() -> Self {
        Self {
            lowered: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> QueriedTimers<K> {
    /// A query at `query_ns` gives the entry until `deadline`, unless an
    /// earlier query already gave it less (the bridge keeps the sooner timer).
    pub fn lower(&mut self, key: K, query_ns: u64, deadline: u64) {
        let slot = self.lowered.entry(key).or_insert((query_ns, deadline));
        if deadline < slot.1 {
            *slot = (query_ns, deadline);
        }
    }

    /// The verdict the pending query gives an entry last reported at
    /// `last_report_ns`, if one is pending; a report after the query settles it.
    pub fn verdict(&mut self, key: &K, last_report_ns: u64, now: u64) -> Option<Verdict> {
        let (query_ns, deadline) = *self.lowered.get(key)?;
        let verdict = expiry::after_group_query(last_report_ns, query_ns, deadline, now);
        if !matches!(verdict, Some(Verdict::KeepUntil(_))) {
            self.lowered.remove(key);
        }
        verdict
    }

    pub fn forget(&mut self, key: &K) {
        self.lowered.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use igmp_common::Membership;

    use super::*;

    const KEY: MembershipKey = MembershipKey {
        ifindex: 1,
        vlan: 0,
        inner_vlan: 0,
        group: [239, 1, 1, 1],
    };

    #[test]
    fn lowered_timer_expires_unanswered_members_and_keeps_the_sooner_deadline() {
        let mut queries = GroupQueries::default();
        queries.lower(KEY, 50, 70);
        queries.lower(KEY, 60, 90);
        let silent: Membership = Membership {
            last_report_ns: 10,
            ..Membership::default()
        };
        assert_eq!(
            queries.verdict(&KEY, silent.last_report_ns, 60),
            Some(Verdict::KeepUntil(70))
        );
        assert_eq!(
            queries.verdict(&KEY, silent.last_report_ns, 70),
            Some(Verdict::Expire(expiry::Reason::Left))
        );
        assert_eq!(
            queries.verdict(&KEY, silent.last_report_ns, 71),
            None,
            "settled once"
        );
    }

    #[test]
    fn a_report_after_the_query_answers_it() {
        let mut queries = GroupQueries::default();
        queries.lower(KEY, 50, 70);
        let answered: Membership = Membership {
            last_report_ns: 55,
            ..Membership::default()
        };
        assert_eq!(queries.verdict(&KEY, answered.last_report_ns, 70), None);
    }
}
