//! The membership component: it owns what the programs learn from the wire
//! (`MEMBERSHIP`, `SOURCES`, `ROUTER_PORTS`, `HOSTS`, `V1_HOSTS`, the group
//! counts) with a deadline for every entry, and carries out what `expiry`
//! decides: expiries, leaves and the deadlines queries set. A group-specific
//! query lowers its group's timer, a group-and-source one only its sources'
//! (RFC 3376 §6.6.1); a source of EXCLUDE's X whose timer runs out moves to
//! Y rather than away (§6.3).
//!
//! It also keeps what the operator asks of the table (`igmp-snoop mdb`, the
//! configuration's `static-groups`): a static membership is EXCLUDE {}
//! (every source) with `membership_flags::STATIC`: expiry keeps it, and
//! neither a leave, a group-specific query nor fast leave removes it, as the
//! bridge's `permanent` entries. One the daemon made itself is not counted
//! under the group limits, which are against report floods.
//!
//! It never writes the forwarding maps: what changed for forwarding goes
//! back to the loop as `Effects`.
//!
//! There is one per family (`Memberships<[u8; 4]>` for IGMP,
//! `Memberships<[u8; 16]>` for MLD); where the protocols differ (what a
//! version 1 host present means, how a query's Max Resp Code reads) it asks
//! `expiry::Protocol`.

use std::{
    collections::{BTreeSet, HashSet},
    net::IpAddr,
};

use anyhow::{Context as _, Result};
use igmp_common::{
    filter_mode, igmp_version, membership_flags, router_flags, source_flags, Address, Event,
    GroupKey, HostKey, Membership, MembershipKey, RouterKey, RouterPort, SourceEntry, SourceKey,
};
use tokio::sync::broadcast;
use tracing::{debug, info};

use super::{sources::SourceIndex, Effects, Routes};
use crate::{
    expiry::{self, Protocol, Reason, Verdict},
    interfaces::interface_name,
    leaves::{GroupQueries, SourceQueries},
    monitor::{MonitorEvent, MonitorKind},
    tables::LearnedMaps,
    timers::{monotonic_ns, nanos, Deadlines, Timers},
};

/// An entry with a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due<A: Address> {
    Group(MembershipKey<A>),
    Source(SourceKey<A>),
    Router(RouterKey),
}

/// What a leave asks of the querier.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterLeave {
    /// Nothing: the leave changed nothing, or took the group at once.
    Nothing,
    /// This switch, as querier, asks the port whether anyone still wants the group.
    AskPort,
}

/// A group's member ports among the snooped ones.
pub(super) struct Members {
    pub(super) ports: Vec<u32>,
    /// Each takes every source: in EXCLUDE mode with no source listed
    /// (`group_flags::EVERY_SOURCE`).
    pub(super) every_source: bool,
}

/// One per address family: `A` is the family's address bytes.
pub(super) struct Memberships<A: Protocol> {
    maps: LearnedMaps<A>,
    timers: Timers,
    deadlines: Deadlines<Due<A>>,
    /// The sources of each group, so that an expiring group needs no scan of `SOURCES`.
    sources: SourceIndex<A>,
    group_queries: GroupQueries<A>,
    source_queries: SourceQueries<A>,
    /// Ports whose groups go at once when their last host leaves.
    fast_leave_ports: HashSet<u32>,
    /// Whether `HOSTS` may hold entries: only fast-leave ports write it, so
    /// without one the daemon never pays for reading it.
    hosts_possible: bool,
    monitor: broadcast::Sender<MonitorEvent>,
}

impl<A: Protocol> Memberships<A> {
    pub(super) fn new(
        maps: LearnedMaps<A>,
        timers: Timers,
        monitor: broadcast::Sender<MonitorEvent>,
    ) -> Self {
        Self {
            maps,
            timers,
            deadlines: Deadlines::default(),
            sources: SourceIndex::default(),
            group_queries: GroupQueries::default(),
            source_queries: SourceQueries::default(),
            fast_leave_ports: HashSet::new(),
            hosts_possible: false,
            monitor,
        }
    }

    fn publish(&self, event: MonitorEvent) {
        let _ = self.monitor.send(event);
    }

    pub(super) fn set_fast_leave_ports(&mut self, ports: HashSet<u32>) {
        // A port that stops being fast-leave may leave its hosts behind.
        self.hosts_possible |= !ports.is_empty();
        self.fast_leave_ports = ports;
    }

    /// Schedules every entry already in the maps: a restarted daemon picks up
    /// the table its predecessor left pinned.
    pub(super) fn adopt(&mut self) {
        let now = monotonic_ns();
        let groups = self.maps.memberships();
        let sources = self.maps.source_entries();
        let routers = self.maps.router_ports();
        info!(
            groups = groups.len(),
            sources = sources.len(),
            router_ports = routers.len(),
            "adopting the table"
        );
        for (key, _) in groups {
            self.deadlines.schedule(now, Due::Group(key));
        }
        for (key, _) in sources {
            self.deadlines.schedule(now, Due::Source(key));
            self.sources.insert(key);
        }
        self.hosts_possible |= self.maps.hosts.keys().next().is_some();
        for (key, _) in routers {
            self.deadlines.schedule(now, Due::Router(key));
        }
    }

    /// Follows every entry of the tables that has no deadline yet: after
    /// events were lost (`lost.rs`), a group created meanwhile would
    /// otherwise never expire nor get its fast-path entry.
    pub(super) fn catch_up(&mut self, effects: &mut Effects<A>) {
        let followed: BTreeSet<Due<A>> = self.deadlines.pending().copied().collect();
        let now = monotonic_ns();
        for (key, _) in self.maps.memberships() {
            if !followed.contains(&Due::Group(key)) {
                self.deadlines.schedule(now, Due::Group(key));
                effects.groups.insert(key.group_key());
            }
        }
        for (key, _) in self.maps.source_entries() {
            self.sources.insert(key);
            if !followed.contains(&Due::Source(key)) {
                self.deadlines.schedule(now, Due::Source(key));
                // Its event was lost: the group may still be marked as
                // taking every source (`Members::every_source`).
                effects.groups.insert(key.membership().group_key());
            }
        }
        for (key, _) in self.maps.router_ports() {
            if !followed.contains(&Due::Router(key)) {
                self.deadlines.schedule(now, Due::Router(key));
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.next_deadline()
    }

    /// Every membership, for the forwarding entries' rebuild at start.
    pub(super) fn memberships(&self) -> Vec<(MembershipKey<A>, Membership<A>)> {
        self.maps.memberships()
    }

    /// Router ports and the queriers they heard, for the querier's adoption.
    pub(super) fn router_ports(&self) -> Vec<(RouterKey, RouterPort<A>)> {
        self.maps.router_ports()
    }

    /// The ports among `ports` that are members of `group`, and whether each
    /// takes every source.
    pub(super) fn members(&self, group: GroupKey<A>, ports: &[u32]) -> Members {
        let mut members = Members {
            ports: Vec::new(),
            every_source: true,
        };
        for &ifindex in ports {
            let key = group.on_port(ifindex);
            let Ok(entry) = self.maps.membership.get(&key, 0) else {
                continue;
            };
            members.ports.push(ifindex);
            // The index may still hold a source the map no longer has: the
            // flag is then left off, which only costs the port's check.
            members.every_source &= entry.filter_mode == filter_mode::EXCLUDE
                && self.sources.of_group(&key).next().is_none();
        }
        members
    }

    /// The router ports and the epoch they stand for. The epoch is read
    /// first: a router port learned meanwhile makes the entries written from
    /// this stale, never wrong.
    pub(super) fn routes(&self) -> Routes {
        let epoch = self.maps.router_epoch.get(&0, 0).unwrap_or_default();
        let mut router_ports: Vec<RouterKey> =
            self.maps.routers.keys().filter_map(Result::ok).collect();
        router_ports.sort_unstable();
        router_ports.dedup();
        Routes {
            epoch,
            router_ports,
        }
    }

    /// Gives the removals of this wake-up back to the group limits.
    pub(super) fn publish_removed(&mut self) {
        self.maps.publish_removed();
    }

    /// A port joined a group.
    pub(super) fn joined(&mut self, event: &Event<A>, effects: &mut Effects<A>) {
        let gmi = nanos(self.timers.group_membership_interval());
        let key = event.membership_key();
        self.deadlines
            .schedule(event.timestamp_ns + gmi, Due::Group(key));
        effects.groups.insert(key.group_key());
    }

    /// A leave. `other_querier` is the querier on the LAN, if another one.
    pub(super) fn leave_seen(
        &mut self,
        event: &Event<A>,
        other_querier: Option<IpAddr>,
        effects: &mut Effects<A>,
    ) -> AfterLeave {
        let key = event.membership_key();
        let port = interface_name(event.ifindex);
        let group = event.group.ip();
        if !A::V1_HOSTS_LEAVE
            && event.version == igmp_version::V2
            && self.v1_host_present(key, event.timestamp_ns)
        {
            // RFC 2236 §4: an IGMPv1 host never leaves; a v2 host's leave
            // cannot tell whether it was the last.
            debug!(port, group = %group, "leave ignored: a v1 host is on the port");
            self.cancel_leave(key);
        } else if self.fast_leave_ports.contains(&event.ifindex) {
            self.fast_leave(key, effects);
        } else if let Some(querier) = other_querier {
            // The querier's group-specific queries decide (RFC 4541 §2.1.1).
            debug!(port, group = %group, querier = %querier, "leave left to the querier");
            self.cancel_leave(key);
        } else {
            let lmqt = nanos(self.timers.last_member_query_time());
            self.deadlines
                .schedule(event.timestamp_ns + lmqt, Due::Group(key));
            return AfterLeave::AskPort;
        }
        AfterLeave::Nothing
    }

    /// A port asked for a source. Its group's forwarding entry is worked out
    /// again: the port now has a source list (`Members::every_source`).
    pub(super) fn source_seen(&mut self, event: &Event<A>, effects: &mut Effects<A>) {
        effects
            .groups
            .insert(event.source_key().membership().group_key());
        let gmi = nanos(self.timers.group_membership_interval());
        self.deadlines
            .schedule(event.timestamp_ns + gmi, Due::Source(event.source_key()));
        self.sources.insert(event.source_key());
    }

    /// A port blocked a source: it goes after the last member query time
    /// unless asked for again.
    pub(super) fn source_leave_seen(&mut self, event: &Event<A>, effects: &mut Effects<A>) {
        effects
            .groups
            .insert(event.source_key().membership().group_key());
        // A BLOCK in EXCLUDE mode may have made the entry.
        self.sources.insert(event.source_key());
        let lmqt = nanos(self.timers.last_member_query_time());
        self.deadlines
            .schedule(event.timestamp_ns + lmqt, Due::Source(event.source_key()));
    }

    /// The program learned a router port.
    pub(super) fn router_seen(&mut self, event: &Event<A>, effects: &mut Effects<A>) {
        let timeout = nanos(self.timers.router_timeout);
        self.deadlines.schedule(
            event.timestamp_ns + timeout,
            Due::Router(event.router_key()),
        );
        // The program voided every group's destinations: with this port, anew.
        effects.routers = true;
    }

    /// A group-specific query: every member of the group must answer within
    /// LMQC × its Max Resp Time, or goes (the bridge lowers all of them),
    /// except on a port with a v1 host.
    pub(super) fn group_query_seen(&mut self, query: &Event<A>, ports: &[u32]) {
        let wait = A::max_response_time(query.version, query.max_resp_code)
            * self.timers.last_member_query_count;
        let deadline = query.timestamp_ns + nanos(wait);
        for &ifindex in ports {
            let key = MembershipKey {
                ifindex,
                ..query.membership_key()
            };
            // An IGMPv1 host answers within 10 s whatever the query asks (RFC 2236 §4).
            if self.maps.membership.get(&key, 0).is_ok()
                && (A::V1_HOSTS_LEAVE || !self.v1_host_present(key, query.timestamp_ns))
            {
                self.group_queries.lower(key, query.timestamp_ns, deadline);
                self.deadlines.schedule(deadline, Due::Group(key));
            }
        }
    }

    /// A group-and-source-specific query: each source it names that a port
    /// asked for (INCLUDE's A, EXCLUDE's X) must be asked for again within
    /// LMQC × its Max Resp Time, or leaves that list (RFC 3376 §6.6.1). The
    /// group's timer stays, and sources in Y stay excluded.
    pub(super) fn source_query_seen(&mut self, query: &Event<A>, ports: &[u32]) {
        let wait = A::max_response_time(query.version, query.max_resp_code)
            * self.timers.last_member_query_count;
        let deadline = query.timestamp_ns + nanos(wait);
        for &ifindex in ports {
            let key = SourceKey {
                ifindex,
                ..query.source_key()
            };
            let asked = self
                .maps
                .sources
                .get(&key, 0)
                .is_ok_and(|entry| entry.mode == filter_mode::INCLUDE);
            if asked {
                self.source_queries.lower(key, query.timestamp_ns, deadline);
                self.deadlines.schedule(deadline, Due::Source(key));
            }
        }
    }

    /// Checks every entry whose deadline has come, removing the expired ones.
    pub(super) fn expire_due(&mut self, effects: &mut Effects<A>) {
        let now = monotonic_ns();
        let mut expired_groups = HashSet::new();
        for due in self.deadlines.pop_due(now) {
            match due {
                Due::Group(key) => {
                    if self.check_group(key, now, effects) {
                        expired_groups.insert(key);
                    }
                }
                Due::Source(key) => self.check_source(key, now),
                Due::Router(key) => self.check_router(key, now, effects),
            }
        }
        if !expired_groups.is_empty() {
            self.remove_sources_of(&expired_groups);
        }
    }

    /// Whether an IGMPv1 host is present on the entry's port (RFC 3376 §7.3.2).
    fn v1_host_present(&self, key: MembershipKey<A>, now: u64) -> bool {
        let last = self.maps.v1_hosts.get(&key, 0).ok();
        expiry::v1_host_present(last, now, &self.timers)
    }

    /// Returns whether the group was removed.
    fn check_group(&mut self, key: MembershipKey<A>, now: u64, effects: &mut Effects<A>) -> bool {
        let Ok(entry) = self.maps.membership.get(&key, 0) else {
            self.group_queries.forget(&key);
            return false;
        };
        if entry.flags & membership_flags::STATIC != 0 {
            // No leave and no query removes a static membership.
            self.group_queries.forget(&key);
            if entry.flags & membership_flags::LEAVE_PENDING != 0 {
                self.cancel_leave(key);
            }
            return false;
        }
        let verdict = self
            .group_queries
            .verdict(&key, entry.last_report_ns, now)
            .unwrap_or_else(|| expiry::group(&entry, now, &self.timers));
        match verdict {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Group(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(reason) => {
                if entry.filter_mode == filter_mode::EXCLUDE
                    && self.has_wanted_sources(key, &entry, now)
                {
                    self.switch_to_include(key, entry, now);
                    // An INCLUDE port takes only its sources.
                    effects.groups.insert(key.group_key());
                    return false;
                }
                if self.maps.remove_membership(&key) {
                    effects.groups.insert(key.group_key());
                    self.announce_expiry(key, reason);
                    return true;
                }
            }
        }
        false
    }

    /// Whether a source of the group is asked for: in the group's requested
    /// list (X), not deleted by a later EXCLUDE record, its timer running.
    fn source_wanted(&self, source: &SourceEntry, group: &Membership<A>, now: u64) -> bool {
        let gmi = nanos(self.timers.group_membership_interval());
        source.mode == filter_mode::INCLUDE
            && source.listed(group.filter_mode, group.last_report_ns)
            && source.last_report_ns + gmi > now
    }

    /// Whether sources of the group were asked for within the group membership interval.
    fn has_wanted_sources(&self, key: MembershipKey<A>, group: &Membership<A>, now: u64) -> bool {
        self.sources.of_group(&key).any(|source| {
            self.maps
                .sources
                .get(source, 0)
                .is_ok_and(|entry| self.source_wanted(&entry, group, now))
        })
    }

    /// An EXCLUDE group whose timer ran out while sources are still asked
    /// for goes to INCLUDE mode with them (RFC 3376 §6.5) instead of away;
    /// the rest of its sources (Y, and those deleted) go.
    fn switch_to_include(&mut self, key: MembershipKey<A>, mut entry: Membership<A>, now: u64) {
        let unwanted: Vec<SourceKey<A>> = self
            .sources
            .of_group(&key)
            .filter(|source| {
                !self
                    .maps
                    .sources
                    .get(source, 0)
                    .is_ok_and(|source| self.source_wanted(&source, &entry, now))
            })
            .copied()
            .collect();
        for source in unwanted {
            self.sources.remove(&source);
            self.source_queries.forget(&source);
            let _ = self.maps.sources.remove(&source);
        }
        entry.filter_mode = filter_mode::INCLUDE;
        entry.flags &= !membership_flags::LEAVE_PENDING;
        entry.leave_ns = 0;
        entry.last_report_ns = now;
        if self.maps.membership.insert(key, entry, 0).is_ok() {
            info!(
                port = interface_name(key.ifindex),
                group = %key.group.ip(),
                "include: the group keeps only its sources"
            );
            let gmi = nanos(self.timers.group_membership_interval());
            self.deadlines.schedule(now + gmi, Due::Group(key));
        }
    }

    fn check_source(&mut self, key: SourceKey<A>, now: u64) {
        let Ok(entry) = self.maps.sources.get(&key, 0) else {
            self.sources.remove(&key);
            self.source_queries.forget(&key);
            return;
        };
        let verdict = self
            .source_queries
            .verdict(&key, entry.last_report_ns, now)
            .unwrap_or_else(|| expiry::source(&entry, now, &self.timers));
        match verdict {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Source(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(reason) => {
                if self.exclude_if_in_x(key, entry, now) {
                    return;
                }
                self.source_queries.forget(&key);
                self.sources.remove(&key);
                if self.maps.sources.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    let (group, source) = (key.group.ip(), key.source.ip());
                    debug!(
                        port,
                        group = %group,
                        source = %source,
                        reason = reason.as_str(),
                        "expire"
                    );
                    let mut event = MonitorEvent::new(MonitorKind::Expire, port);
                    event.vid = Some(key.vlan);
                    event.grp = Some(group);
                    event.src = Some(source);
                    event.reason = Some(reason.as_str().into());
                    self.publish(event);
                }
            }
        }
    }

    /// A source of EXCLUDE's X whose timer ran out moves to Y: no longer
    /// forwarded, and kept (RFC 3376 §6.3), for as long as the EXCLUDE
    /// records name it. Returns whether it did; a source of INCLUDE's A, of
    /// Y, or deleted by an EXCLUDE record since its last naming just goes.
    fn exclude_if_in_x(&mut self, key: SourceKey<A>, mut entry: SourceEntry, now: u64) -> bool {
        let group_key = key.membership();
        let Ok(group) = self.maps.membership.get(&group_key, 0) else {
            return false;
        };
        let in_x = group.filter_mode == filter_mode::EXCLUDE
            && entry.mode == filter_mode::INCLUDE
            && entry.listed(group.filter_mode, group.last_report_ns);
        if !in_x {
            return false;
        }
        entry.mode = filter_mode::EXCLUDE;
        entry.flags &= !source_flags::LEAVE_PENDING;
        entry.leave_ns = 0;
        entry.last_report_ns = now;
        entry.named = SourceEntry::stamp(now);
        if self.maps.sources.insert(key, entry, 0).is_err() {
            return false;
        }
        self.source_queries.forget(&key);
        let (port, group, source) = (interface_name(key.ifindex), key.group.ip(), key.source.ip());
        debug!(port, group = %group, source = %source, "exclude: the source is no longer asked for");
        let gmi = nanos(self.timers.group_membership_interval());
        self.deadlines.schedule(now + gmi, Due::Source(key));
        true
    }

    fn check_router(&mut self, key: RouterKey, now: u64, effects: &mut Effects<A>) {
        let Ok(entry) = self.maps.routers.get(&key, 0) else {
            return;
        };
        match expiry::router(&entry, now, &self.timers) {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Router(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(_) => {
                if self.maps.routers.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    info!(port, vid = key.vlan, "router port expired");
                    let mut event = MonitorEvent::new(MonitorKind::RouterExpire, port);
                    event.vid = Some(key.vlan);
                    self.publish(event);
                    effects.routers = true;
                }
            }
        }
    }

    /// A leave on a fast-leave port: the group goes at once unless another
    /// host on the port still reported it within the group membership interval.
    fn fast_leave(&mut self, key: MembershipKey<A>, effects: &mut Effects<A>) {
        let static_entry = self
            .maps
            .membership
            .get(&key, 0)
            .is_ok_and(|entry| entry.flags & membership_flags::STATIC != 0);
        if static_entry {
            self.cancel_leave(key);
            return;
        }
        let now = monotonic_ns();
        let gmi = nanos(self.timers.group_membership_interval());
        let others_remain = self
            .maps
            .hosts
            .iter()
            .filter_map(Result::ok)
            .any(|(host, entry)| host.membership() == key && entry.last_report_ns + gmi > now);
        if others_remain {
            self.cancel_leave(key);
            return;
        }
        self.remove(key, Reason::FastLeave, effects);
    }

    /// Other hosts still want the group: the leave changes nothing.
    fn cancel_leave(&mut self, key: MembershipKey<A>) {
        if let Ok(mut entry) = self.maps.membership.get(&key, 0) {
            entry.flags &= !membership_flags::LEAVE_PENDING;
            entry.leave_ns = 0;
            let _ = self.maps.membership.insert(key, entry, 0);
        }
    }

    fn announce_expiry(&self, key: MembershipKey<A>, reason: Reason) {
        let port = interface_name(key.ifindex);
        let group = key.group.ip();
        debug!(
            port,
            vid = key.vlan,
            group = %group,
            reason = reason.as_str(),
            "expire"
        );
        let mut event = MonitorEvent::new(MonitorKind::Expire, port);
        event.vid = Some(key.vlan);
        event.grp = Some(group);
        event.reason = Some(reason.as_str().into());
        self.publish(event);
    }

    /// Removes a membership with its sources and hosts, as an expiry would;
    /// returns whether there was one.
    pub(super) fn remove(
        &mut self,
        key: MembershipKey<A>,
        reason: Reason,
        effects: &mut Effects<A>,
    ) -> bool {
        if !self.maps.remove_membership(&key) {
            return false;
        }
        self.group_queries.forget(&key);
        effects.groups.insert(key.group_key());
        self.announce_expiry(key, reason);
        self.remove_sources_of(&HashSet::from([key]));
        true
    }

    /// Removes the sources and hosts of a batch of removed groups: sources
    /// by the index, hosts in one pass over `HOSTS`, if it may hold any.
    fn remove_sources_of(&mut self, groups: &HashSet<MembershipKey<A>>) {
        for group in groups {
            for key in self.sources.take_group(group) {
                let _ = self.maps.sources.remove(&key);
            }
        }
        if !self.hosts_possible {
            return;
        }
        let hosts: Vec<HostKey<A>> = self
            .maps
            .hosts
            .keys()
            .filter_map(Result::ok)
            .filter(|host| groups.contains(&host.membership()))
            .collect();
        for key in hosts {
            let _ = self.maps.hosts.remove(&key);
        }
    }

    /// Removes port `ifindex`'s entries, in VLAN `only` or in all, as the
    /// bridge does for a port that is deleted or stops forwarding, or for
    /// the VLANs it takes off a port.
    pub(super) fn flush_port(&mut self, ifindex: u32, only: Option<u16>, effects: &mut Effects<A>) {
        let in_scope = |vlan: u16| only.is_none_or(|vid| vid == vlan);
        let groups: HashSet<MembershipKey<A>> = self
            .memberships_of(Some(ifindex))
            .into_iter()
            .filter(|key| in_scope(key.vlan))
            .collect();
        for key in &groups {
            self.maps.remove_membership(key);
            self.group_queries.forget(key);
            effects.groups.insert(key.group_key());
        }
        self.remove_sources_of(&groups);
        let routers: Vec<RouterKey> = self
            .maps
            .routers
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex && in_scope(key.vlan))
            .collect();
        for key in routers {
            let _ = self.maps.routers.remove(&key);
        }
    }

    /// The memberships of port `only`, or of every port.
    pub(super) fn memberships_of(&self, only: Option<u32>) -> Vec<MembershipKey<A>> {
        self.maps
            .membership
            .keys()
            .filter_map(Result::ok)
            .filter(|key| only.is_none_or(|ifindex| key.ifindex == ifindex))
            .collect()
    }

    /// Makes `key` a static membership: a learned one keeps its hosts'
    /// sources, a new one is EXCLUDE {} and not counted under the limits.
    pub(super) fn add_static(
        &mut self,
        key: MembershipKey<A>,
        effects: &mut Effects<A>,
    ) -> Result<()> {
        let now = monotonic_ns();
        let entry = match self.maps.membership.get(&key, 0) {
            Ok(mut learned) => {
                learned.flags |= membership_flags::STATIC;
                learned.flags &= !membership_flags::LEAVE_PENDING;
                learned.leave_ns = 0;
                learned
            }
            Err(_) => Membership {
                last_report_ns: now,
                created_ns: now,
                leave_ns: 0,
                last_reporter: A::UNSPECIFIED,
                version: A::ANY_SOURCE_VERSION,
                filter_mode: filter_mode::EXCLUDE,
                flags: membership_flags::STATIC | membership_flags::UNCOUNTED,
                _pad: Default::default(),
            },
        };
        self.maps
            .membership
            .insert(key, entry, 0)
            .context("writing the MEMBERSHIP map")?;
        self.group_queries.forget(&key);
        effects.groups.insert(key.group_key());
        Ok(())
    }

    /// Keeps the `ROUTER_PORTS` entries of the ports configured permanent
    /// (`permanent`); one no longer configured so ages out like a learned one.
    pub(super) fn keep_permanent_routers(
        &mut self,
        permanent: &[RouterKey],
        effects: &mut Effects<A>,
    ) -> Result<()> {
        let now = monotonic_ns();
        let demoted: Vec<(RouterKey, RouterPort<A>)> = self
            .maps
            .router_ports()
            .into_iter()
            .filter(|(key, router)| {
                router.flags & router_flags::PERMANENT != 0 && !permanent.contains(key)
            })
            .collect();
        for (key, mut router) in demoted {
            router.flags &= !router_flags::PERMANENT;
            router.last_query_ns = now;
            self.maps.routers.insert(key, router, 0)?;
            self.deadlines.schedule(now, Due::Router(key));
        }
        for &key in permanent {
            let mut router = self.maps.routers.get(&key, 0).unwrap_or_default();
            router.flags |= router_flags::PERMANENT;
            router.last_query_ns = now;
            self.maps.routers.insert(key, router, 0).with_context(|| {
                format!(
                    "{}: making it a permanent router port",
                    interface_name(key.ifindex)
                )
            })?;
        }
        effects.routers = true;
        Ok(())
    }
}
