//! Carrying out what `expiry` decides: expiries, leaves and the deadlines queries set:
//! a group-specific query lowers its group's timer, a group-and-source one
//! only its sources' (RFC 3376 §6.6.1). A source of EXCLUDE's X whose timer
//! runs out moves to Y rather than away (§6.3).

use super::*;

impl Daemon {
    /// Returns whether the group was removed.
    /// A group-specific query: every member of the group must answer within
    /// LMQC × its Max Resp Time, or goes (the bridge lowers all of them),
    /// except on a port with a v1 host.
    pub(super) fn follow_group_query(&mut self, query: &Event) {
        let wait = expiry::max_response_time(query.version, query.max_resp_code)
            * self.timers.last_member_query_count;
        let deadline = query.timestamp_ns + nanos(wait);
        for &ifindex in &self.ports {
            let key = MembershipKey {
                ifindex,
                ..query.membership_key()
            };
            // A v1 host answers within 10 s whatever the query asks (RFC 2236 §4).
            if self.tables.membership.get(&key, 0).is_ok()
                && !self.v1_host_present(key, query.timestamp_ns)
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
    pub(super) fn follow_source_query(&mut self, query: &Event) {
        let wait = expiry::max_response_time(query.version, query.max_resp_code)
            * self.timers.last_member_query_count;
        let deadline = query.timestamp_ns + nanos(wait);
        for &ifindex in &self.ports {
            let key = SourceKey {
                ifindex,
                ..query.source_key()
            };
            let asked = self
                .tables
                .sources
                .get(&key, 0)
                .is_ok_and(|entry| entry.mode == filter_mode::INCLUDE);
            if asked {
                self.source_queries.lower(key, query.timestamp_ns, deadline);
                self.deadlines.schedule(deadline, Due::Source(key));
            }
        }
    }

    /// Whether an IGMPv1 host is present on the entry's port (RFC 3376 §7.3.2).
    pub(super) fn v1_host_present(&self, key: MembershipKey, now: u64) -> bool {
        let last = self.tables.v1_hosts.get(&key, 0).ok();
        expiry::v1_host_present(last, now, &self.timers)
    }

    pub(super) fn check_group(&mut self, key: MembershipKey, now: u64) -> bool {
        let Ok(entry) = self.tables.membership.get(&key, 0) else {
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
                    return false;
                }
                if self.tables.remove_membership(&key) {
                    self.unregister_if_unwanted(key);
                    self.announce_expiry(key, reason);
                    return true;
                }
            }
        }
        false
    }

    /// Whether a source of the group is asked for: in the group's requested
    /// list (X), not deleted by a later EXCLUDE record, its timer running.
    fn source_wanted(&self, source: &SourceEntry, group: &Membership, now: u64) -> bool {
        let gmi = nanos(self.timers.group_membership_interval());
        source.mode == filter_mode::INCLUDE
            && source.listed(group.filter_mode, group.last_report_ns)
            && source.last_report_ns + gmi > now
    }

    /// Whether sources of the group were asked for within the group membership interval.
    pub(super) fn has_wanted_sources(
        &self,
        key: MembershipKey,
        group: &Membership,
        now: u64,
    ) -> bool {
        self.sources.of_group(&key).any(|source| {
            self.tables
                .sources
                .get(source, 0)
                .is_ok_and(|entry| self.source_wanted(&entry, group, now))
        })
    }

    /// An EXCLUDE group whose timer ran out while sources are still asked
    /// for goes to INCLUDE mode with them (RFC 3376 §6.5) instead of away;
    /// the rest of its sources (Y, and those deleted) go.
    pub(super) fn switch_to_include(
        &mut self,
        key: MembershipKey,
        mut entry: Membership,
        now: u64,
    ) {
        let unwanted: Vec<SourceKey> = self
            .sources
            .of_group(&key)
            .filter(|source| {
                !self
                    .tables
                    .sources
                    .get(source, 0)
                    .is_ok_and(|source| self.source_wanted(&source, &entry, now))
            })
            .copied()
            .collect();
        for source in unwanted {
            self.sources.remove(&source);
            self.source_queries.forget(&source);
            let _ = self.tables.sources.remove(&source);
        }
        entry.filter_mode = filter_mode::INCLUDE;
        entry.flags &= !membership_flags::LEAVE_PENDING;
        entry.leave_ns = 0;
        entry.last_report_ns = now;
        if self.tables.membership.insert(key, entry, 0).is_ok() {
            info!(
                port = interface_name(key.ifindex),
                group = %Ipv4Addr::from(key.group),
                "include: the group keeps only its sources"
            );
            let gmi = nanos(self.timers.group_membership_interval());
            self.deadlines.schedule(now + gmi, Due::Group(key));
        }
    }

    pub(super) fn check_source(&mut self, key: SourceKey, now: u64) {
        let Ok(entry) = self.tables.sources.get(&key, 0) else {
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
                if self.tables.sources.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    let (group, source) = (Ipv4Addr::from(key.group), Ipv4Addr::from(key.source));
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
    fn exclude_if_in_x(&mut self, key: SourceKey, mut entry: SourceEntry, now: u64) -> bool {
        let group_key = key.membership();
        let Ok(group) = self.tables.membership.get(&group_key, 0) else {
            return false;
        };
        let in_x = group.filter_mode == filter_mode::EXCLUDE
            && entry.mode == filter_mode::INCLUDE
            && entry.listed(group.filter_mode, group.last_report_ns);
        if !in_x {
            return false;
        }
        entry.mode = filter_mode::EXCLUDE;
        entry.flags &= !igmp_common::source_flags::LEAVE_PENDING;
        entry.leave_ns = 0;
        entry.last_report_ns = now;
        entry.named = SourceEntry::stamp(now);
        if self.tables.sources.insert(key, entry, 0).is_err() {
            return false;
        }
        self.source_queries.forget(&key);
        let (port, group, source) = (
            interface_name(key.ifindex),
            Ipv4Addr::from(key.group),
            Ipv4Addr::from(key.source),
        );
        debug!(port, group = %group, source = %source, "exclude: the source is no longer asked for");
        let gmi = nanos(self.timers.group_membership_interval());
        self.deadlines.schedule(now + gmi, Due::Source(key));
        true
    }

    pub(super) fn check_router(&mut self, key: RouterKey, now: u64) {
        let Ok(entry) = self.tables.routers.get(&key, 0) else {
            return;
        };
        match expiry::router(&entry, now, &self.timers) {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Router(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(_) => {
                if self.tables.routers.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    info!(port, vid = key.vlan, "router port expired");
                    let mut event = MonitorEvent::new(MonitorKind::RouterExpire, port);
                    event.vid = Some(key.vlan);
                    self.publish(event);
                    self.refresh_all_groups();
                }
            }
        }
    }

    /// A leave on a fast-leave port: the group goes at once unless another
    /// host on the port still reported it within the group membership interval.
    pub(super) fn fast_leave(&mut self, key: MembershipKey) {
        let static_entry = self
            .tables
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
            .tables
            .hosts
            .iter()
            .filter_map(Result::ok)
            .any(|(host, entry)| host.membership() == key && entry.last_report_ns + gmi > now);
        if others_remain {
            self.cancel_leave(key);
            return;
        }
        if self.tables.remove_membership(&key) {
            self.unregister_if_unwanted(key);
            self.announce_expiry(key, Reason::FastLeave);
            self.remove_sources_of(&HashSet::from([key]));
        }
    }

    /// Other hosts still want the group: the leave changes nothing.
    pub(super) fn cancel_leave(&mut self, key: MembershipKey) {
        if let Ok(mut entry) = self.tables.membership.get(&key, 0) {
            entry.flags &= !membership_flags::LEAVE_PENDING;
            entry.leave_ns = 0;
            let _ = self.tables.membership.insert(key, entry, 0);
        }
    }

    pub(super) fn announce_expiry(&self, key: MembershipKey, reason: Reason) {
        let port = interface_name(key.ifindex);
        let group = Ipv4Addr::from(key.group);
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

    /// Removes the sources and hosts of a batch of removed groups: sources
    /// by the index, hosts in one pass over `HOSTS`, if it may hold any.
    pub(super) fn remove_sources_of(&mut self, groups: &HashSet<MembershipKey>) {
        for group in groups {
            for key in self.sources.take_group(group) {
                let _ = self.tables.sources.remove(&key);
            }
        }
        if !self.hosts_possible {
            return;
        }
        let hosts: Vec<HostKey> = self
            .tables
            .hosts
            .keys()
            .filter_map(Result::ok)
            .filter(|host| groups.contains(&host.membership()))
            .collect();
        for key in hosts {
            let _ = self.tables.hosts.remove(&key);
        }
    }
}
