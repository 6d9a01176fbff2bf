//! The control loop: reads events from the XDP program, keeps a deadline per
//! entry and removes what expired, queries when elected, follows the ports,
//! and keeps the maps the fast path reads. Nothing the kernel needs to
//! forward depends on it staying alive: killing it leaves the table pinned
//! and the program attached through pinned links.

use std::{collections::HashSet, future::Future, net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use igmp_common::{
    filter_mode, igmp_version, membership_flags, query_flags, Event, EventKind, HostKey,
    Membership, MembershipKey, RouterKey, SourceEntry, SourceKey,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{broadcast, mpsc},
};
use tracing::{debug, info, warn};

mod aging;
mod destinations;
mod forwarding;
mod lost;
mod port_changes;
mod querying;
mod sources;
mod statics;

use destinations::DestinationSets;
use sources::SourceIndex;

use crate::{
    expiry::{self, Reason, Verdict},
    interfaces::interface_name,
    leaves::{GroupQueries, SourceQueries},
    links::LinkNote,
    metrics::SharedStatus,
    monitor::{MonitorEvent, MonitorKind},
    options::UnregisteredPolicy,
    ports::{PortChange, PortSet},
    querier::{Querier, QuerierSettings, QuerySender, QueryVersion},
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
    /// The querier election, and our queries when we win it.
    querier: Querier,
    query_settings: QuerierSettings,
    query_sender: Option<QuerySender>,
    status: SharedStatus,
    group_queries: GroupQueries,
    source_queries: SourceQueries,
    unregistered: UnregisteredPolicy,
    fast_path_off: bool,
    /// Groups the host itself listens to (flagged in `GROUPS`).
    local_groups: std::collections::BTreeSet<[u8; 4]>,
    /// Events the XDP program could not queue, as last counted.
    events_lost: u64,
    /// The sources of each group, so that an expiring group needs no scan of `SOURCES`.
    sources: SourceIndex,
    /// Whether `HOSTS` may hold entries: only fast-leave ports write it, so
    /// without one the daemon never pays for reading it.
    hosts_possible: bool,
    /// The devmaps of the groups' destination ports.
    destinations: DestinationSets,
    /// The configuration's static groups, by port name: installed at start.
    static_groups: Vec<(String, Ipv4Addr)>,
}

impl Daemon {
    pub fn new(tables: Tables, timers: Timers, monitor: broadcast::Sender<MonitorEvent>) -> Self {
        let timers_for_querier = timers.clone();
        Self {
            tables,
            timers,
            deadlines: Deadlines::default(),
            monitor,
            fast_leave_ports: HashSet::new(),
            ports: Vec::new(),
            port_set: None,
            querier: Querier::new(false, None, timers_for_querier, monotonic_ns()),
            query_settings: QuerierSettings {
                enabled: false,
                version: QueryVersion::V2,
                address: None,
            },
            query_sender: None,
            status: SharedStatus::default(),
            group_queries: GroupQueries::default(),
            source_queries: SourceQueries::default(),
            unregistered: UnregisteredPolicy::default(),
            fast_path_off: false,
            local_groups: std::collections::BTreeSet::new(),
            events_lost: 0,
            sources: SourceIndex::default(),
            hosts_possible: false,
            destinations: DestinationSets::default(),
            static_groups: Vec::new(),
        }
    }

    /// Static memberships to install at start (the configuration's
    /// `static-groups`); those of an earlier run stay in the pinned table.
    pub fn with_static_groups(mut self, groups: Vec<(String, Ipv4Addr)>) -> Self {
        self.static_groups = groups;
        self
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
        // A port that stops being fast-leave may leave its hosts behind.
        self.hosts_possible |= !self.fast_leave_ports.is_empty();
    }

    /// Tells the monitors; nobody listening is fine.
    fn publish(&self, event: MonitorEvent) {
        let _ = self.monitor.send(event);
    }

    /// Runs until `shutdown` completes; hands back the ports for release.
    pub async fn run(
        mut self,
        events: RingBuf<MapData>,
        mut links: mpsc::UnboundedReceiver<LinkNote>,
        mut requests: mpsc::Receiver<crate::control::Asked>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<PortSet>> {
        self.adopt_table();
        self.install_static_groups();
        // SAFETY: the ring buffer owns its fd, which stays open for as long as the AsyncFd owns it.
        let mut events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the events ring buffer")?;
        tokio::pin!(shutdown);
        // How often the host's own group memberships are re-read.
        let mut local_listeners = tokio::time::interval(Duration::from_secs(2));
        loop {
            let sleep = self.sleep_until_next_deadline();
            tokio::select! {
                ready = events.readable_mut() => {
                    let mut guard = ready.context("waiting for events")?;
                    self.drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                () = sleep => {
                    self.expire_due();
                    self.run_querier();
                }
                Some(note) = links.recv() => self.on_link(&note),
                Some((request, reply)) = requests.recv() => {
                    let _ = reply.send(self.on_request(request));
                }
                _ = local_listeners.tick() => {
                    self.refresh_local_listeners();
                    self.catch_up_lost_events();
                }
                () = &mut shutdown => return Ok(self.port_set.take()),
            }
            // Once per wake-up, however many entries it removed.
            self.tables.publish_removed();
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
            self.sources.insert(key);
        }
        self.hosts_possible |= self.tables.hosts.keys().next().is_some();
        for (key, _) in routers {
            self.deadlines.schedule(now, Due::Router(key));
        }
        self.rebuild_groups();
        self.events_lost = self.count_lost_events();
    }

    fn sleep_until_next_deadline(&self) -> tokio::time::Sleep {
        let next = [self.deadlines.next_deadline(), self.querier.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let wait = match next {
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
        self.publish(MonitorEvent::from_kernel(kind, event, &port));
        match kind {
            EventKind::NewMembership => {
                // Per-entry lines are debug: at table scale they would be the
                // daemon's main work; `igmp-snoop monitor` streams them.
                debug!(
                    port,
                    vid = event.vlan,
                    group = %group,
                    reporter = %address,
                    version = event.version,
                    "join"
                );
                self.deadlines
                    .schedule(event.timestamp_ns + gmi, Due::Group(event.membership_key()));
                self.register_group(event.membership_key());
            }
            EventKind::LeaveSeen => {
                debug!(port, vid = event.vlan, group = %group, reporter = %address, "leave");
                if event.version == igmp_version::V2
                    && self.v1_host_present(event.membership_key(), event.timestamp_ns)
                {
                    // RFC 2236 §4: a v1 host never leaves; a v2 host's leave
                    // cannot tell whether it was the last.
                    debug!(port, group = %group, "leave ignored: a v1 host is on the port");
                    self.cancel_leave(event.membership_key());
                } else if self.fast_leave_ports.contains(&event.ifindex) {
                    self.fast_leave(event.membership_key());
                } else if let Some(querier) = self.querier.other_querier(event.timestamp_ns) {
                    // The querier's group-specific queries decide (RFC 4541 §2.1.1).
                    debug!(port, group = %group, querier = %querier, "leave left to the querier");
                    self.cancel_leave(event.membership_key());
                } else {
                    let deadline = event.timestamp_ns + lmqt;
                    self.deadlines
                        .schedule(deadline, Due::Group(event.membership_key()));
                    // As querier, ask whether anyone else on the port still wants the group.
                    self.querier
                        .on_leave(event.ifindex, group, event.timestamp_ns);
                    self.run_querier();
                }
            }
            EventKind::NewSource => {
                debug!(port, group = %group, source = %address, "source");
                self.deadlines
                    .schedule(event.timestamp_ns + gmi, Due::Source(event.source_key()));
                self.sources.insert(event.source_key());
            }
            EventKind::SourceLeaveSeen => {
                debug!(port, group = %group, source = %address, "block");
                // A BLOCK in EXCLUDE mode may have made the entry.
                self.sources.insert(event.source_key());
                self.deadlines
                    .schedule(event.timestamp_ns + lmqt, Due::Source(event.source_key()));
                self.querier
                    .on_source_leave(event.ifindex, group, address, event.timestamp_ns);
                self.run_querier();
            }
            EventKind::NewRouterPort => {
                info!(
                    port,
                    vid = event.vlan,
                    querier = %address,
                    version = event.version,
                    "router port"
                );
                let timeout = nanos(self.timers.router_timeout);
                self.deadlines.schedule(
                    event.timestamp_ns + timeout,
                    Due::Router(event.router_key()),
                );
                // The program voided every group's destinations: with this port, anew.
                self.refresh_all_groups();
            }
            EventKind::QuerySeen => {
                debug!(
                    port,
                    querier = %address,
                    group = %group,
                    version = event.version,
                    "query"
                );
                if let Some(action) = self.querier.on_query(address, event.timestamp_ns) {
                    self.act(action);
                }
                // With the S flag nothing is lowered; a group-and-source
                // query lowers its sources' timers only, one event each
                // (RFC 3376 §6.6.1).
                let group_only = event.flags & (query_flags::SUPPRESS | query_flags::SOURCES) == 0;
                if event.group != [0; 4] && group_only {
                    self.follow_group_query(event);
                }
            }
            EventKind::QuerySourceSeen => {
                debug!(port, group = %group, source = %address, "query for a source");
                self.follow_source_query(event);
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
}
