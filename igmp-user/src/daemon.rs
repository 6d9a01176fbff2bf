//! The control loop: reads events from the XDP program, keeps a deadline per
//! entry, and removes what expired. It owns nothing the kernel needs to
//! forward: killing it leaves the table pinned and the program attached.

use std::{collections::HashSet, future::Future, net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use igmp_common::{
    filter_mode, membership_flags, Event, EventKind, HostKey, Membership, MembershipKey, RouterKey,
    SourceKey,
};
use log::{debug, info, warn};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{broadcast, mpsc},
};

use crate::{
    expiry::{self, Reason, Verdict},
    leaves::{GroupQueries, OtherQuerier},
    links::LinkNote,
    loader::interface_name,
    monitor::MonitorEvent,
    ports::{PortChange, PortSet},
    tables::Tables,
    timers::{monotonic_ns, nanos, Deadlines, Timers},
};

/// An entry with a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Group(MembershipKey),
    Source(SourceKey),
    Router(RouterKey),
}

pub struct Daemon {
    tables: Tables,
    timers: Timers,
    deadlines: Deadlines<Due>,
    monitor: broadcast::Sender<MonitorEvent>,
    /// Ports whose groups go at once when their last host leaves.
    fast_leave_ports: HashSet<u32>,
    /// Every snooped port, to find a group's members without a table scan.
    ports: Vec<u32>,
    port_set: Option<PortSet>,
    other_querier: OtherQuerier,
    group_queries: GroupQueries,
}

impl Daemon {
    pub fn new(tables: Tables, timers: Timers, monitor: broadcast::Sender<MonitorEvent>) -> Self {
        Self {
            tables,
            timers,
            deadlines: Deadlines::default(),
            monitor,
            fast_leave_ports: HashSet::new(),
            ports: Vec::new(),
            port_set: None,
            other_querier: OtherQuerier::default(),
            group_queries: GroupQueries::default(),
        }
    }

    /// Takes charge of the ports: their options go to the maps, and the
    /// daemon follows them as they vanish, come back or change STP state.
    pub fn with_ports(mut self, port_set: PortSet) -> Result<Self> {
        port_set.publish(&mut self.tables)?;
        self.port_set = Some(port_set);
        self.refresh_port_lists();
        Ok(self)
    }

    fn refresh_port_lists(&mut self) {
        if let Some(port_set) = &self.port_set {
            self.ports = port_set.ifindexes();
            self.fast_leave_ports = port_set.fast_leave_ifindexes().into_iter().collect();
        }
    }

    /// Tells the monitors; nobody listening is fine.
    fn publish(&self, event: MonitorEvent) {
        let _ = self.monitor.send(event);
    }

    /// Runs until `shutdown` completes.
    /// Runs until `shutdown` completes; hands back the ports for release.
    pub async fn run(
        mut self,
        events: RingBuf<MapData>,
        mut links: mpsc::UnboundedReceiver<LinkNote>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<PortSet>> {
        self.adopt_table();
        // SAFETY: the ring buffer owns its fd, which stays open for as long as the AsyncFd owns it.
        let mut events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the events ring buffer")?;
        tokio::pin!(shutdown);
        loop {
            let sleep = self.sleep_until_next_deadline();
            tokio::select! {
                ready = events.readable_mut() => {
                    let mut guard = ready.context("waiting for events")?;
                    self.drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                () = sleep => self.expire_due(),
                Some(note) = links.recv() => self.on_link(&note),
                () = &mut shutdown => return Ok(self.port_set.take()),
            }
        }
    }

    /// Schedules every entry already in the maps: a restarted daemon picks up
    /// the table its predecessor left pinned.
    fn adopt_table(&mut self) {
        let now = monotonic_ns();
        let groups = self.tables.memberships();
        let sources = self.tables.source_entries();
        let routers = self.tables.router_ports();
        info!(
            "adopting {} groups, {} sources, {} router ports",
            groups.len(),
            sources.len(),
            routers.len()
        );
        for (key, _) in groups {
            self.deadlines.schedule(now, Due::Group(key));
        }
        for (key, _) in sources {
            self.deadlines.schedule(now, Due::Source(key));
        }
        for (key, _) in routers {
            self.deadlines.schedule(now, Due::Router(key));
        }
    }

    fn sleep_until_next_deadline(&self) -> tokio::time::Sleep {
        let wait = match self.deadlines.next_deadline() {
            Some(deadline) => Duration::from_nanos(deadline.saturating_sub(monotonic_ns())),
            None => Duration::from_secs(3600),
        };
        tokio::time::sleep(wait)
    }

    fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<Event>() {
                warn!("short event of {} bytes ignored", item.len());
                continue;
            }
            // SAFETY: the XDP program writes whole `Event`s; read_unaligned copes with any offset.
            let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) };
            self.on_event(&event);
        }
    }

    fn on_event(&mut self, event: &Event) {
        let Some(kind) = EventKind::from_u32(event.kind) else {
            warn!("unknown event kind {}", event.kind);
            return;
        };
        let port = interface_name(event.ifindex);
        let group = Ipv4Addr::from(event.group);
        let address = Ipv4Addr::from(event.address);
        let gmi = nanos(self.timers.group_membership_interval());
        let lmqt = nanos(self.timers.last_member_query_time());
        self.publish(monitor_event(kind, event, &port));
        match kind {
            EventKind::NewMembership => {
                info!(
                    "join: port {port} vid {} group {group} by {address} (v{})",
                    event.vlan, event.version
                );
                self.deadlines
                    .schedule(event.timestamp_ns + gmi, Due::Group(group_key(event)));
            }
            EventKind::LeaveSeen => {
                info!(
                    "leave: port {port} vid {} group {group} by {address}",
                    event.vlan
                );
                if self.fast_leave_ports.contains(&event.ifindex) {
                    self.fast_leave(group_key(event));
                } else if let Some(querier) = self.other_querier.present(event.timestamp_ns) {
                    // The querier's group-specific queries decide (RFC 4541 §2.1.1).
                    debug!("leave left to querier {querier}");
                    self.cancel_leave(group_key(event));
                } else {
                    let deadline = event.timestamp_ns + lmqt;
                    self.deadlines
                        .schedule(deadline, Due::Group(group_key(event)));
                }
            }
            EventKind::NewSource => {
                debug!("source: port {port} group {group} source {address}");
                self.deadlines
                    .schedule(event.timestamp_ns + gmi, Due::Source(source_key(event)));
            }
            EventKind::SourceLeaveSeen => {
                debug!("block: port {port} group {group} source {address}");
                self.deadlines
                    .schedule(event.timestamp_ns + lmqt, Due::Source(source_key(event)));
            }
            EventKind::NewRouterPort => {
                info!(
                    "router port: {port} vid {} querier {address} (v{})",
                    event.vlan, event.version
                );
                let timeout = nanos(self.timers.router_timeout);
                self.deadlines
                    .schedule(event.timestamp_ns + timeout, Due::Router(router_key(event)));
            }
            EventKind::QuerySeen => {
                debug!(
                    "query: port {port} from {address} group {group} (v{})",
                    event.version
                );
                let present = nanos(self.timers.other_querier_present_interval());
                self.other_querier
                    .heard(address, event.timestamp_ns, present);
                if event.group != [0; 4] {
                    self.follow_group_query(event);
                }
            }
        }
    }

    /// Checks every entry whose deadline has come, removing the expired ones.
    fn expire_due(&mut self) {
        let now = monotonic_ns();
        let mut expired_groups = HashSet::new();
        for due in self.deadlines.pop_due(now) {
            match due {
                Due::Group(key) => {
                    if self.check_group(key, now) {
                        expired_groups.insert(key);
                    }
                }
                Due::Source(key) => self.check_source(key, now),
                Due::Router(key) => self.check_router(key, now),
            }
        }
        if !expired_groups.is_empty() {
            self.remove_sources_of(&expired_groups);
        }
    }

    /// Returns whether the group was removed.
    /// A group-specific query: every member of the group must answer within
    /// LMQC × its Max Resp Time, or goes (the bridge lowers all of them).
    fn follow_group_query(&mut self, query: &Event) {
        let wait = expiry::max_response_time(query.version, query.max_resp_code)
            * self.timers.last_member_query_count;
        let deadline = query.timestamp_ns + nanos(wait);
        for &ifindex in &self.ports {
            let key = MembershipKey {
                ifindex,
                ..group_key(query)
            };
            if self.tables.membership.get(&key, 0).is_ok() {
                self.group_queries.lower(key, query.timestamp_ns, deadline);
                self.deadlines.schedule(deadline, Due::Group(key));
            }
        }
    }

    fn check_group(&mut self, key: MembershipKey, now: u64) -> bool {
        let Ok(entry) = self.tables.membership.get(&key, 0) else {
            self.group_queries.forget(&key);
            return false;
        };
        let verdict = self
            .group_queries
            .verdict(&key, &entry, now)
            .unwrap_or_else(|| expiry::group(&entry, now, &self.timers));
        match verdict {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Group(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(reason) => {
                if entry.filter_mode == filter_mode::EXCLUDE && self.has_wanted_sources(key, now) {
                    self.switch_to_include(key, entry, now);
                    return false;
                }
                if self.tables.membership.remove(&key).is_ok() {
                    self.announce_expiry(key, reason);
                    return true;
                }
            }
        }
        false
    }

    /// Whether sources of the group were asked for within the group membership interval.
    fn has_wanted_sources(&self, key: MembershipKey, now: u64) -> bool {
        let gmi = nanos(self.timers.group_membership_interval());
        self.tables
            .sources
            .iter()
            .filter_map(Result::ok)
            .any(|(source, entry)| {
                group_of_source(&source) == key
                    && entry.mode == filter_mode::INCLUDE
                    && entry.last_report_ns + gmi > now
            })
    }

    /// An EXCLUDE group whose timer ran out while sources are still asked
    /// for goes to INCLUDE mode with them (RFC 3376 §6.5) instead of away.
    fn switch_to_include(&mut self, key: MembershipKey, mut entry: Membership, now: u64) {
        entry.filter_mode = filter_mode::INCLUDE;
        entry.flags &= !membership_flags::LEAVE_PENDING;
        entry.leave_ns = 0;
        entry.last_report_ns = now;
        if self.tables.membership.insert(key, entry, 0).is_ok() {
            info!(
                "include: port {} group {} keeps only its sources",
                interface_name(key.ifindex),
                Ipv4Addr::from(key.group)
            );
            let gmi = nanos(self.timers.group_membership_interval());
            self.deadlines.schedule(now + gmi, Due::Group(key));
        }
    }

    fn check_source(&mut self, key: SourceKey, now: u64) {
        let Ok(entry) = self.tables.sources.get(&key, 0) else {
            return;
        };
        match expiry::source(&entry, now, &self.timers) {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Source(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(reason) => {
                if self.tables.sources.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    let (group, source) = (Ipv4Addr::from(key.group), Ipv4Addr::from(key.source));
                    info!(
                        "expire: port {port} group {group} source {source} ({})",
                        reason.as_str()
                    );
                    let mut event = MonitorEvent::new("expire", port);
                    event.vid = Some(key.vlan);
                    event.grp = Some(group);
                    event.src = Some(source);
                    event.reason = Some(reason.as_str().into());
                    self.publish(event);
                }
            }
        }
    }

    fn check_router(&mut self, key: RouterKey, now: u64) {
        let Ok(entry) = self.tables.routers.get(&key, 0) else {
            return;
        };
        match expiry::router(&entry, now, &self.timers) {
            Verdict::KeepUntil(deadline) => self.deadlines.schedule(deadline, Due::Router(key)),
            Verdict::KeepForever => {}
            Verdict::Expire(_) => {
                if self.tables.routers.remove(&key).is_ok() {
                    let port = interface_name(key.ifindex);
                    info!("expire: router port {port} vid {}", key.vlan);
                    let mut event = MonitorEvent::new("router-expire", port);
                    event.vid = Some(key.vlan);
                    self.publish(event);
                }
            }
        }
    }

    /// An interface changed: ports that vanished lose their entries, ports
    /// that came back are attached again, blocked ports are flushed.
    fn on_link(&mut self, note: &LinkNote) {
        debug!("link note: {note:?}");
        let Some(port_set) = self.port_set.as_mut() else {
            return;
        };
        let mut changes = port_set.resync(&mut self.tables);
        if let Some(state) = note.stp_state.filter(|_| !note.removed) {
            changes.extend(port_set.stp_state(note.ifindex, state, &mut self.tables));
        }
        for change in changes {
            info!("port change: {change:?}");
            match change {
                PortChange::Gone { name, ifindex } | PortChange::Blocked { name, ifindex } => {
                    self.flush_port(ifindex);
                    self.publish(MonitorEvent::new("port-down", name));
                }
                PortChange::Back { name, .. } | PortChange::Unblocked { name, .. } => {
                    self.publish(MonitorEvent::new("port-up", name));
                }
            }
        }
        self.refresh_port_lists();
    }

    /// Removes every entry of port `ifindex`, as the bridge does for a port
    /// that is deleted or stops forwarding.
    fn flush_port(&mut self, ifindex: u32) {
        let groups: HashSet<MembershipKey> = self
            .tables
            .membership
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .collect();
        for key in &groups {
            let _ = self.tables.membership.remove(key);
            self.group_queries.forget(key);
        }
        self.remove_sources_of(&groups);
        let routers: Vec<RouterKey> = self
            .tables
            .routers
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .collect();
        for key in routers {
            let _ = self.tables.routers.remove(&key);
        }
        let _ = self.tables.counters.remove(&ifindex);
    }

    /// A leave on a fast-leave port: the group goes at once unless another
    /// host on the port still reported it within the group membership interval.
    fn fast_leave(&mut self, key: MembershipKey) {
        let now = monotonic_ns();
        let gmi = nanos(self.timers.group_membership_interval());
        let others_remain = self
            .tables
            .hosts
            .iter()
            .filter_map(Result::ok)
            .any(|(host, entry)| group_of_host(&host) == key && entry.last_report_ns + gmi > now);
        if others_remain {
            self.cancel_leave(key);
            return;
        }
        if self.tables.membership.remove(&key).is_ok() {
            self.announce_expiry(key, Reason::FastLeave);
            self.remove_sources_of(&HashSet::from([key]));
        }
    }

    /// Other hosts still want the group: the leave changes nothing.
    fn cancel_leave(&mut self, key: MembershipKey) {
        if let Ok(mut entry) = self.tables.membership.get(&key, 0) {
            entry.flags &= !membership_flags::LEAVE_PENDING;
            entry.leave_ns = 0;
            let _ = self.tables.membership.insert(key, entry, 0);
        }
    }

    fn announce_expiry(&self, key: MembershipKey, reason: Reason) {
        let port = interface_name(key.ifindex);
        let group = Ipv4Addr::from(key.group);
        info!(
            "expire: port {port} vid {} group {group} ({})",
            key.vlan,
            reason.as_str()
        );
        let mut event = MonitorEvent::new("expire", port);
        event.vid = Some(key.vlan);
        event.grp = Some(group);
        event.reason = Some(reason.as_str().into());
        self.publish(event);
    }

    /// One pass over the source and host maps for a whole batch of expired groups.
    fn remove_sources_of(&mut self, groups: &HashSet<MembershipKey>) {
        let hosts: Vec<HostKey> = self
            .tables
            .hosts
            .keys()
            .filter_map(Result::ok)
            .filter(|host| groups.contains(&group_of_host(host)))
            .collect();
        for key in hosts {
            let _ = self.tables.hosts.remove(&key);
        }
        let orphans: Vec<SourceKey> = self
            .tables
            .sources
            .keys()
            .filter_map(Result::ok)
            .filter(|source| groups.contains(&group_of_source(source)))
            .collect();
        for key in orphans {
            let _ = self.tables.sources.remove(&key);
        }
    }
}

/// What the monitors see of a kernel event.
fn monitor_event(kind: EventKind, event: &Event, port: &str) -> MonitorEvent {
    let name = match kind {
        EventKind::NewMembership => "join",
        EventKind::LeaveSeen => "leave",
        EventKind::QuerySeen => "query",
        EventKind::NewRouterPort => "router",
        EventKind::NewSource => "source",
        EventKind::SourceLeaveSeen => "block",
    };
    let mut monitor = MonitorEvent::new(name, port.to_string());
    monitor.vid = Some(event.vlan);
    if event.group != [0; 4] {
        monitor.grp = Some(Ipv4Addr::from(event.group));
    }
    if matches!(kind, EventKind::NewSource | EventKind::SourceLeaveSeen) {
        monitor.src = Some(Ipv4Addr::from(event.address));
    } else {
        monitor.address = Some(Ipv4Addr::from(event.address));
    }
    monitor
}

fn group_key(event: &Event) -> MembershipKey {
    MembershipKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
        group: event.group,
    }
}

fn source_key(event: &Event) -> SourceKey {
    SourceKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
        group: event.group,
        source: event.address,
    }
}

fn router_key(event: &Event) -> RouterKey {
    RouterKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
    }
}

fn group_of_host(host: &HostKey) -> MembershipKey {
    MembershipKey {
        ifindex: host.ifindex,
        vlan: host.vlan,
        inner_vlan: host.inner_vlan,
        group: host.group,
    }
}

fn group_of_source(source: &SourceKey) -> MembershipKey {
    MembershipKey {
        ifindex: source.ifindex,
        vlan: source.vlan,
        inner_vlan: source.inner_vlan,
        group: source.group,
    }
}
