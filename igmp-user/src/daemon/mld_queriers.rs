//! The MLD queriers heard on the wire, per querier election (a VLAN of a
//! VLAN-filtering bridge, or the untagged LAN: `QueryPorts::election_of`).
//! This build has no MLD querier of its own yet: a Done, or an MLDv2
//! TO_IN {}, is left to another querier's multicast-address-specific
//! queries when one queried within the other querier present interval
//! (RFC 3810 §7.6.2, §9.5), and takes the group after the last listener
//! query time otherwise. It owns no map: the loop hands it each MLD query
//! and, at start, the router ports the previous daemon left.

use std::{collections::BTreeMap, net::Ipv6Addr};

use igmp_common::{RouterKey, RouterPort};

use super::querying::QueryPorts;
use crate::timers::{nanos, Timers};

pub(super) struct MldQueriersHeard {
    /// Per election, the last querier heard and when.
    last: BTreeMap<u16, (Ipv6Addr, u64)>,
    other_querier_present_ns: u64,
}

impl MldQueriersHeard {
    pub(super) fn new(timers: &Timers) -> Self {
        Self {
            last: BTreeMap::new(),
            other_querier_present_ns: nanos(timers.other_querier_present_interval()),
        }
    }

    /// The queriers the router ports heard before this start, as if their
    /// queries had just come in at the time `ROUTER_PORTS6` recorded.
    pub(super) fn adopt(
        &mut self,
        routers: &[(RouterKey, RouterPort<[u8; 16]>)],
        ports: &QueryPorts,
    ) {
        let mut heard: Vec<(u16, Ipv6Addr, u64)> = routers
            .iter()
            .filter(|(_, entry)| entry.version != 0 && entry.querier != [0; 16])
            .map(|(key, entry)| (key.vlan, Ipv6Addr::from(entry.querier), entry.last_query_ns))
            .collect();
        heard.sort_by_key(|&(_, _, at)| at);
        for (vlan, querier, at) in heard {
            self.query_seen(querier, vlan, at, ports);
        }
    }

    /// An MLD query from `querier` in `vlan` at `now`. A query from ::
    /// (a proxy's) names no querier.
    pub(super) fn query_seen(
        &mut self,
        querier: Ipv6Addr,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) {
        if querier.is_unspecified() {
            return;
        }
        self.last.insert(ports.election_of(vlan), (querier, now));
    }

    /// The querier of `vlan`'s election, if one queried within the other
    /// querier present interval before `now`.
    pub(super) fn other_querier(
        &self,
        vlan: u16,
        now: u64,
        ports: &QueryPorts,
    ) -> Option<Ipv6Addr> {
        let &(querier, heard) = self.last.get(&ports.election_of(vlan))?;
        (heard + self.other_querier_present_ns > now).then_some(querier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_querier_counts_for_the_other_querier_present_interval_then_not() {
        let timers = Timers::default();
        let ports = QueryPorts::default();
        let mut heard = MldQueriersHeard::new(&timers);
        assert_eq!(heard.other_querier(0, SECOND, &ports), None);
        let querier: Ipv6Addr = "fe80::1".parse().unwrap();
        heard.query_seen(querier, 0, SECOND, &ports);
        assert_eq!(heard.other_querier(0, 2 * SECOND, &ports), Some(querier));
        // 255 s by default (RFC 3810 §9.5).
        assert_eq!(heard.other_querier(0, 255 * SECOND, &ports), Some(querier));
        assert_eq!(heard.other_querier(0, 256 * SECOND, &ports), None);
    }

    #[test]
    fn a_proxy_query_from_the_unspecified_address_names_no_querier() {
        let ports = QueryPorts::default();
        let mut heard = MldQueriersHeard::new(&Timers::default());
        heard.query_seen(Ipv6Addr::UNSPECIFIED, 0, SECOND, &ports);
        assert_eq!(heard.other_querier(0, SECOND, &ports), None);
    }
}
