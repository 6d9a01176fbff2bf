//! Which sources each group has, known without reading `SOURCES`: reading a
//! hash map visits every bucket, about 0.3 ms for an empty map of 512k
//! entries, too much to pay for every group that expires. The index holds
//! every source the daemon was told of (events, adoption, catch-up after
//! lost events). It may still hold a source the map no longer has, which a
//! lookup then skips; it misses a source only while its event is lost, until
//! the next catch-up (`lost.rs`) reads it from the map.

use std::collections::{HashMap, HashSet};

use igmp_common::{Address, MembershipKey, SourceKey};

#[derive(Debug)]
pub(super) struct SourceIndex<A: Address> {
    by_group: HashMap<MembershipKey<A>, HashSet<SourceKey<A>>>,
}

impl<A: Address> Default for SourceIndex<A> {
    fn default() -> Self {
        Self {
            by_group: HashMap::new(),
        }
    }
}

impl<A: Address> SourceIndex<A> {
    pub(super) fn insert(&mut self, source: SourceKey<A>) {
        self.by_group
            .entry(source.membership())
            .or_default()
            .insert(source);
    }

    pub(super) fn remove(&mut self, source: &SourceKey<A>) {
        let group = source.membership();
        if let Some(sources) = self.by_group.get_mut(&group) {
            sources.remove(source);
            if sources.is_empty() {
                self.by_group.remove(&group);
            }
        }
    }

    /// The sources of `group`, as far as the daemon knows.
    pub(super) fn of_group(&self, group: &MembershipKey<A>) -> impl Iterator<Item = &SourceKey<A>> {
        self.by_group.get(group).into_iter().flatten()
    }

    /// Forgets the sources of `group` and hands them back.
    pub(super) fn take_group(&mut self, group: &MembershipKey<A>) -> HashSet<SourceKey<A>> {
        self.by_group.remove(group).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(ifindex: u32, group: u8, source: u8) -> SourceKey {
        SourceKey {
            ifindex,
            vlan: 0,
            inner_vlan: 0,
            group: [239, 1, 1, group],
            source: [10, 0, 0, source],
        }
    }

    #[test]
    fn sources_are_found_by_their_group_and_port_only() {
        let mut index = SourceIndex::default();
        index.insert(source(2, 1, 1));
        index.insert(source(2, 1, 2));
        index.insert(source(3, 1, 1));
        index.insert(source(2, 9, 1));
        let group = source(2, 1, 0).membership();
        let mut found: Vec<_> = index.of_group(&group).map(|key| key.source[3]).collect();
        found.sort();
        assert_eq!(found, [1, 2]);
    }

    #[test]
    fn a_group_with_its_last_source_removed_is_forgotten() {
        let mut index = SourceIndex::default();
        index.insert(source(2, 1, 1));
        index.remove(&source(2, 1, 1));
        assert!(index.by_group.is_empty());
        index.insert(source(2, 1, 1));
        let taken = index.take_group(&source(2, 1, 0).membership());
        assert_eq!(taken.len(), 1);
        assert!(index.by_group.is_empty());
    }
}
