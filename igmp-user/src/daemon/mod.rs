//! The control loop: one `select!` over the daemon's inputs, one `on_<input>`
//! handler per arm. State lives in components that own their maps:
//!
//! - `membership`: what the programs learn, with a deadline per entry;
//! - `forwarding`: the groups' fast-path entries, destination sets, policy;
//!
//! (these two once per family: `memberships`/`forwarding` for IGMP's
//! tables, `memberships6`/`forwarding6` for MLD's, each family's events
//! from its own ring buffer, `EVENTS` and `EVENTS6`)
//! - `querying`: the querier election and our queries (IGMP);
//! - `mld_querying`: the same for MLD, with its own election;
//! - `snooped_ports`: the ports and their maps;
//! - `lost`: the counters, to notice events the ring buffer dropped.
//!
//! A component does not reach into another's maps: what one's work means
//! for another goes back to the loop (`Effects`, `PortChange`) and the loop
//! hands it on. Nothing the kernel needs to forward depends on the daemon
//! staying alive: killing it leaves the table pinned and the programs
//! attached through pinned links.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use igmp_common::{query_flags, Address, Event, EventKind, GroupKey, MembershipKey, RouterKey};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{broadcast, mpsc},
};
use tracing::{debug, info, warn};

mod destinations;
mod forwarding;
mod lost;
mod membership;
mod mld_querying;
mod querying;
mod snooped_ports;
mod sources;

use forwarding::{Forwarding, HostGroups};
use lost::LostEvents;
use membership::{AfterLeave, Memberships};
use mld_querying::MldQuerying;
use querying::Querying;
use snooped_ports::SnoopedPorts;

use crate::{
    control::{Reply, Request},
    expiry::{Protocol, Reason},
    interfaces::interface_name,
    links::LinkNote,
    metrics::SharedStatus,
    monitor::{MonitorEvent, MonitorKind},
    options::{is_snooped_group, is_snooped_group6, UnregisteredPolicy},
    ports::{PortChange, PortSet},
    querier::QuerierSettings,
    tables::{FamilyMaps, Ipv6, Tables},
    timers::{monotonic_ns, Timers},
};

/// What a component's work means for forwarding, handed on by the loop.
#[derive(Debug)]
struct Effects<A: Address> {
    /// Groups whose members changed: their entries are worked out again.
    groups: BTreeSet<GroupKey<A>>,
    /// Router ports came or went: every group's destinations change.
    routers: bool,
}

impl<A: Address> Default for Effects<A> {
    fn default() -> Self {
        Self {
            groups: BTreeSet::new(),
            routers: false,
        }
    }
}

/// Where every group's data goes besides its members: the router ports.
struct Routes {
    /// `ROUTER_EPOCH`, read before the router ports.
    epoch: u32,
    /// Each router port, in each VLAN a query came in.
    router_ports: Vec<RouterKey>,
}

impl Routes {
    /// The ports `group` with `members` sends to, sorted, each once: its
    /// members and the router ports of its VLAN (the egress check admits
    /// no other router port).
    fn destinations<A: Address>(&self, group: &GroupKey<A>, members: &[u32]) -> Vec<u32> {
        let routers = self
            .router_ports
            .iter()
            .filter(|router| router.vlan == group.vlan && router.inner_vlan == group.inner_vlan)
            .map(|router| router.ifindex);
        let mut ports: Vec<u32> = members.iter().copied().chain(routers).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// The IGMP tables' address bytes; MLD's are `tables::Ipv6` (`[u8; 16]`).
type Ipv4 = [u8; 4];

pub struct Daemon {
    memberships: Memberships<Ipv4>,
    forwarding: Forwarding<Ipv4>,
    memberships6: Memberships<Ipv6>,
    /// MLD's groups; it never writes `SETTINGS` (the switch-wide policy is
    /// IPv4's forwarding component's).
    forwarding6: Forwarding<Ipv6>,
    querying: Querying,
    mld_querying: MldQuerying,
    ports: SnoopedPorts,
    lost: LostEvents,
    monitor: broadcast::Sender<MonitorEvent>,
    /// The configuration's static groups, by port name: installed at start.
    static_groups: Vec<(String, IpAddr)>,
}

impl Daemon {
    pub fn new(
        tables: Tables,
        timers: Timers,
        monitor: broadcast::Sender<MonitorEvent>,
    ) -> Result<Self> {
        let Tables {
            learned,
            forwarding,
            ipv6,
            ports,
            statistics,
        } = tables;
        let FamilyMaps {
            learned: learned6,
            forwarding: forwarding6,
        } = ipv6.context(
            "MEMBERSHIP6: not pinned (the loader pins MLD's maps beside IGMP's; \
             was the table opened before the program was loaded?)",
        )?;
        Ok(Self {
            memberships: Memberships::new(learned, timers.clone(), monitor.clone()),
            forwarding: Forwarding::new(forwarding),
            memberships6: Memberships::new(learned6, timers.clone(), monitor.clone()),
            forwarding6: Forwarding::new(forwarding6),
            mld_querying: MldQuerying::new(timers.clone(), monitor.clone()),
            querying: Querying::new(timers, monitor.clone()),
            ports: SnoopedPorts::new(ports),
            lost: LostEvents::new(statistics),
            monitor,
            static_groups: Vec::new(),
        })
    }

    /// Static memberships to install at start (the configuration's
    /// `static-groups`); those of an earlier run stay in the pinned table.
    pub fn with_static_groups(mut self, groups: Vec<(String, IpAddr)>) -> Self {
        self.static_groups = groups;
        self
    }

    /// Takes charge of the ports: their options go to the maps, and the
    /// daemon follows them as they vanish, come back or change STP state.
    pub fn with_ports(mut self, port_set: PortSet) -> Result<Self> {
        self.ports.adopt(port_set)?;
        let permanent = self.ports.permanent_routers();
        self.memberships
            .keep_permanent_routers(&permanent, &mut Effects::default())?;
        self.memberships6
            .keep_permanent_routers(&permanent, &mut Effects::default())?;
        self.follow_port_options();
        Ok(self)
    }

    /// Sets how this switch queries; with `--querier` it starts querying
    /// now, IGMP and MLD. `bridges` names each port's bridge (port name to
    /// bridge name), whose link-local address MLD's queries come from.
    pub fn with_querier(
        mut self,
        settings: QuerierSettings,
        status: SharedStatus,
        bridges: BTreeMap<String, String>,
    ) -> Result<Self> {
        self.mld_querying.configure(
            settings.enabled,
            settings.mld_version,
            bridges,
            status.clone(),
        )?;
        self.querying.configure(settings, status)?;
        Ok(self)
    }

    /// Sets the policy for unregistered groups (IPv4's: unregistered IPv6
    /// is flooded whatever the policy, this round).
    pub fn with_unregistered(mut self, policy: UnregisteredPolicy) -> Self {
        self.forwarding.set_unregistered(policy);
        self
    }

    /// Says whether some port is in a VLAN-filtering bridge, and whether the
    /// hook tags each copy as its port's VLAN says (tc does; with XDP the
    /// fast path is off there and learning goes on).
    pub fn with_vlan_bridges(mut self, present: bool, tags_per_port: bool) -> Self {
        self.forwarding.set_vlan_bridges(present, tags_per_port);
        self
    }

    /// Hands the components what follows from the ports' options.
    fn follow_port_options(&mut self) {
        self.memberships
            .set_fast_leave_ports(self.ports.fast_leave());
        self.memberships6
            .set_fast_leave_ports(self.ports.fast_leave());
        self.forwarding
            .set_ports(self.ports.egress_filter(), self.ports.has_overrides());
        self.forwarding6
            .set_ports(self.ports.egress_filter(), self.ports.has_overrides());
    }

    fn publish(&self, event: MonitorEvent) {
        let _ = self.monitor.send(event);
    }

    /// Runs until `shutdown` completes; hands back the ports for release.
    pub async fn run(
        mut self,
        events: RingBuf<MapData>,
        events6: RingBuf<MapData>,
        mut links: mpsc::UnboundedReceiver<LinkNote>,
        mut requests: mpsc::Receiver<crate::control::Asked>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<PortSet>> {
        self.on_start();
        // SAFETY: the ring buffer owns its fd, which stays open for as long as the AsyncFd owns it.
        let mut events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the events ring buffer")?;
        // SAFETY: as above.
        let mut events6 = unsafe { AsyncFd::register_with_interest(events6, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the EVENTS6 ring buffer")?;
        tokio::pin!(shutdown);
        // How often the host's own group memberships and the lost events are looked at.
        let mut housekeeping = tokio::time::interval(Duration::from_secs(2));
        loop {
            let sleep = self.sleep_until_next_deadline();
            tokio::select! {
                ready = events.readable_mut() => {
                    let mut guard = ready.context("waiting for events")?;
                    self.on_events(guard.get_inner_mut());
                    guard.clear_ready();
                }
                ready = events6.readable_mut() => {
                    let mut guard = ready.context("waiting for MLD events")?;
                    self.on_events6(guard.get_inner_mut());
                    guard.clear_ready();
                }
                () = sleep => self.on_deadline(),
                Some(note) = links.recv() => self.on_link(&note),
                Some((request, reply)) = requests.recv() => {
                    let _ = reply.send(self.on_request(request));
                }
                _ = housekeeping.tick() => self.on_housekeeping(),
                () = &mut shutdown => return Ok(self.ports.take()),
            }
            // Once per wake-up, however many entries it removed. Both add
            // to the one GROUPS_REMOVED, one after the other.
            self.memberships.publish_removed();
            self.memberships6.publish_removed();
        }
    }

    /// Takes over the table a previous daemon left pinned: every entry gets
    /// its deadline, the querier it knew is elected again before any policy
    /// is published (a restart must not flood, even for an instant), and
    /// the fast-path entries are rebuilt.
    fn on_start(&mut self) {
        let started = std::time::Instant::now();
        self.memberships.adopt();
        self.memberships6.adopt();
        let query_ports = self.ports.query_ports();
        self.querying
            .adopt(&self.memberships.router_ports(), &query_ports);
        self.mld_querying
            .adopt(&self.memberships6.router_ports(), &query_ports);
        self.publish_policy();
        // Both families' entries are voided before either assigns a
        // destination set: a previous build's IPv4 groups may name slots
        // that are IPv6's now (`destinations::slots_of`).
        let groups = self.forwarding.rebuild(&member_keys(&self.memberships));
        let groups6 = self.forwarding6.rebuild(&member_keys(&self.memberships6));
        self.refresh_groups(groups);
        self.refresh_groups6(groups6);
        self.on_housekeeping();
        self.install_static_groups();
        info!(took = ?started.elapsed(), "table adopted: every entry followed, every group forwarded");
    }

    fn sleep_until_next_deadline(&self) -> tokio::time::Sleep {
        let next = [
            self.memberships.next_deadline(),
            self.memberships6.next_deadline(),
            self.querying.next_deadline(),
            self.mld_querying.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = match next {
            Some(deadline) => Duration::from_nanos(deadline.saturating_sub(monotonic_ns())),
            None => Duration::from_secs(3600),
        };
        tokio::time::sleep(wait)
    }

    fn on_events(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(event) = next_event::<Ipv4>(ring) {
            if let Some(event) = event {
                self.on_event(&event);
            }
        }
    }

    fn on_events6(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(event) = next_event::<Ipv6>(ring) {
            if let Some(event) = event {
                self.on_event6(&event);
            }
        }
    }

    fn on_event(&mut self, event: &Event) {
        let Some(kind) = EventKind::from_u32(event.kind) else {
            warn!(kind = event.kind, "unknown event kind");
            return;
        };
        let port = interface_name(event.ifindex);
        let group = Ipv4Addr::from(event.group);
        let address = Ipv4Addr::from(event.address);
        self.publish(MonitorEvent::from_kernel(kind, event, &port));
        let mut effects = Effects::default();
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
                self.memberships.joined(event, &mut effects);
            }
            EventKind::LeaveSeen => {
                debug!(port, vid = event.vlan, group = %group, reporter = %address, "leave");
                let query_ports = self.ports.query_ports();
                let other_querier = self
                    .querying
                    .other_querier(event.vlan, event.timestamp_ns, &query_ports)
                    .map(IpAddr::V4);
                let after = self
                    .memberships
                    .leave_seen(event, other_querier, &mut effects);
                if after == AfterLeave::AskPort {
                    // As querier, ask whether anyone else on the port still wants the group.
                    self.querying.leave_seen(
                        event.ifindex,
                        event.vlan,
                        group,
                        event.timestamp_ns,
                        &query_ports,
                    );
                    self.poll_querier();
                }
            }
            EventKind::NewSource => {
                debug!(port, group = %group, source = %address, "source");
                self.memberships.source_seen(event, &mut effects);
            }
            EventKind::SourceLeaveSeen => {
                debug!(port, group = %group, source = %address, "block");
                self.memberships.source_leave_seen(event, &mut effects);
                self.querying.source_leave_seen(
                    event.ifindex,
                    event.vlan,
                    group,
                    address,
                    event.timestamp_ns,
                    &self.ports.query_ports(),
                );
                self.poll_querier();
            }
            EventKind::NewRouterPort => {
                info!(
                    port,
                    vid = event.vlan,
                    querier = %address,
                    version = event.version,
                    "router port"
                );
                self.memberships.router_seen(event, &mut effects);
            }
            EventKind::QuerySeen => {
                debug!(
                    port,
                    querier = %address,
                    group = %group,
                    version = event.version,
                    "query"
                );
                let query_ports = self.ports.query_ports();
                if self
                    .querying
                    .query_seen(address, event.vlan, event.timestamp_ns, &query_ports)
                {
                    self.publish_policy();
                }
                // With the S flag nothing is lowered; a group-and-source
                // query lowers its sources' timers only, one event each
                // (RFC 3376 §6.6.1).
                let group_only = event.flags & (query_flags::SUPPRESS | query_flags::SOURCES) == 0;
                if event.group != [0; 4] && group_only {
                    self.memberships
                        .group_query_seen(event, self.ports.ifindexes());
                }
            }
            EventKind::QuerySourceSeen => {
                debug!(port, group = %group, source = %address, "query for a source");
                self.memberships
                    .source_query_seen(event, self.ports.ifindexes());
            }
        }
        self.apply(effects);
    }

    /// An MLD event, as IGMP's: a Done with no other querier takes the
    /// group after the last listener query time, and our querier (with
    /// `--querier`) asks the port in the meantime.
    fn on_event6(&mut self, event: &Event<Ipv6>) {
        let Some(kind) = EventKind::from_u32(event.kind) else {
            warn!(kind = event.kind, family = "ipv6", "unknown event kind");
            return;
        };
        let port = interface_name(event.ifindex);
        let group = Ipv6Addr::from(event.group);
        let address = Ipv6Addr::from(event.address);
        self.publish(MonitorEvent::from_kernel(kind, event, &port));
        let mut effects = Effects::default();
        match kind {
            EventKind::NewMembership => {
                debug!(
                    port,
                    vid = event.vlan,
                    group = %group,
                    reporter = %address,
                    version = event.version,
                    "join"
                );
                self.memberships6.joined(event, &mut effects);
            }
            EventKind::LeaveSeen => {
                debug!(port, vid = event.vlan, group = %group, reporter = %address, "done");
                let query_ports = self.ports.query_ports();
                let other_querier = self
                    .mld_querying
                    .other_querier(event.vlan, event.timestamp_ns, &query_ports)
                    .map(IpAddr::V6);
                let after = self
                    .memberships6
                    .leave_seen(event, other_querier, &mut effects);
                if after == AfterLeave::AskPort {
                    // As querier, the last listener queries (RFC 3810 §7.4.2).
                    self.mld_querying.leave_seen(
                        event.ifindex,
                        event.vlan,
                        group,
                        event.timestamp_ns,
                        &query_ports,
                    );
                    self.poll_querier();
                }
            }
            EventKind::NewSource => {
                debug!(port, group = %group, source = %address, "source");
                self.memberships6.source_seen(event, &mut effects);
            }
            EventKind::SourceLeaveSeen => {
                debug!(port, group = %group, source = %address, "block");
                self.memberships6.source_leave_seen(event, &mut effects);
                self.mld_querying.source_leave_seen(
                    event.ifindex,
                    event.vlan,
                    group,
                    address,
                    event.timestamp_ns,
                    &self.ports.query_ports(),
                );
                self.poll_querier();
            }
            EventKind::NewRouterPort => {
                info!(
                    port,
                    vid = event.vlan,
                    querier = %address,
                    version = event.version,
                    family = "ipv6",
                    "router port"
                );
                self.memberships6.router_seen(event, &mut effects);
            }
            EventKind::QuerySeen => {
                debug!(
                    port,
                    querier = %address,
                    group = %group,
                    version = event.version,
                    "mld query"
                );
                let known = self.mld_querying.querier_known();
                self.mld_querying.query_seen(
                    address,
                    event.version,
                    event.vlan,
                    event.timestamp_ns,
                    &self.ports.query_ports(),
                );
                if self.mld_querying.querier_known() != known {
                    self.publish_policy();
                }
                // As IGMPv3's (RFC 3810 §7.6.1 follows RFC 3376 §6.6.1).
                let group_only = event.flags & (query_flags::SUPPRESS | query_flags::SOURCES) == 0;
                if event.group != Ipv6::UNSPECIFIED && group_only {
                    self.memberships6
                        .group_query_seen(event, self.ports.ifindexes());
                }
            }
            EventKind::QuerySourceSeen => {
                debug!(port, group = %group, source = %address, "mld query for a source");
                self.memberships6
                    .source_query_seen(event, self.ports.ifindexes());
            }
        }
        self.apply6(effects);
    }

    /// Deadlines came: expiries, then whatever the querier has due.
    fn on_deadline(&mut self) {
        let mut effects = Effects::default();
        self.memberships.expire_due(&mut effects);
        self.apply(effects);
        let mut effects6 = Effects::default();
        self.memberships6.expire_due(&mut effects6);
        self.apply6(effects6);
        self.poll_querier();
    }

    /// Sends what the queriers have due; either's state may change the policy.
    fn poll_querier(&mut self) {
        let query_ports = self.ports.query_ports();
        let mld_known = self.mld_querying.querier_known();
        let igmp_changed = self.querying.poll(&query_ports);
        self.mld_querying.poll(&query_ports);
        if igmp_changed || self.mld_querying.querier_known() != mld_known {
            self.publish_policy();
        }
    }

    /// The unregistered-group policy of both families, as their queriers
    /// stand (`auto` resolves per family).
    fn publish_policy(&mut self) {
        self.forwarding.publish_policy(
            self.querying.querier_known(),
            self.mld_querying.querier_known(),
        );
    }

    /// An interface changed: a port that vanished or stopped forwarding
    /// loses its entries, as the bridge does; one that came back is attached
    /// again and, if configured so, a permanent router port again.
    fn on_link(&mut self, note: &LinkNote) {
        debug!(
            ifindex = note.ifindex,
            removed = note.removed,
            stp_state = ?note.stp_state,
            "link note"
        );
        let changes = self.ports.follow(note);
        if changes.is_empty() {
            return;
        }
        let mut effects = Effects::default();
        let mut effects6 = Effects::default();
        for change in changes {
            info!("{change}");
            match change {
                PortChange::Gone { name, ifindex } | PortChange::Blocked { name, ifindex } => {
                    self.memberships.flush_port(ifindex, None, &mut effects);
                    self.memberships6.flush_port(ifindex, None, &mut effects6);
                    self.lost.forget_port(ifindex);
                    self.publish(MonitorEvent::new(MonitorKind::PortDown, name));
                }
                PortChange::Back { name, .. } | PortChange::Unblocked { name, .. } => {
                    self.publish(MonitorEvent::new(MonitorKind::PortUp, name));
                }
                PortChange::Vlans { ifindex, left, .. } => {
                    for vid in left {
                        self.memberships
                            .flush_port(ifindex, Some(vid), &mut effects);
                        self.memberships6
                            .flush_port(ifindex, Some(vid), &mut effects6);
                    }
                }
            }
        }
        let permanent = self.ports.permanent_routers();
        if let Err(error) = self
            .memberships
            .keep_permanent_routers(&permanent, &mut effects)
        {
            warn!("{error:#}");
        }
        if let Err(error) = self
            .memberships6
            .keep_permanent_routers(&permanent, &mut effects6)
        {
            warn!(family = "ipv6", "{error:#}");
        }
        self.follow_port_options();
        // Router ports went or came back with their ports.
        effects.routers = true;
        effects6.routers = true;
        self.apply(effects);
        self.apply6(effects6);
    }

    /// Every two seconds: the groups the host itself listens to, and a look
    /// for events the ring buffer dropped.
    fn on_housekeeping(&mut self) {
        let port_names: Vec<String> = self
            .ports
            .ifindexes()
            .iter()
            .map(|&ifindex| interface_name(ifindex))
            .collect();
        let mut effects = Effects::default();
        effects
            .groups
            .extend(self.forwarding.refresh_local_listeners(&port_names));
        let mut effects6 = Effects::default();
        effects6
            .groups
            .extend(self.forwarding6.refresh_local_listeners(&port_names));
        // One count of lost events for both ring buffers: both catch up.
        if self.lost.lost_since_last_look() {
            self.memberships.catch_up(&mut effects);
            self.memberships6.catch_up(&mut effects6);
        }
        self.apply(effects);
        self.apply6(effects6);
    }

    /// A request from the control socket (`igmp-snoop mdb`).
    fn on_request(&mut self, request: Request) -> Reply {
        let result = match request {
            Request::Add { port, group, vid } => self.add_static(&port, group, vid),
            Request::Del { port, group, vid } => self.delete_membership(&port, group, vid),
            Request::Flush { port } => self.flush_memberships(port.as_deref()),
        };
        match result {
            Ok(message) => {
                info!("{message}");
                Reply::done(message)
            }
            Err(error) => Reply::refused(format!("{error:#}")),
        }
    }

    /// Installs the configuration's static groups; one that cannot be is
    /// logged, and the others still go in.
    fn install_static_groups(&mut self) {
        for (port, group) in std::mem::take(&mut self.static_groups) {
            match self.add_static(&port, group, 0) {
                Ok(message) => info!("{message} (configuration)"),
                Err(error) => warn!("static group {group} on {port}: {error:#}"),
            }
        }
    }

    /// The ifindex of `port`, which must be one this daemon snoops.
    fn snooped_port(&self, port: &str) -> Result<u32> {
        crate::interfaces::interface_index(port)
            .ok()
            .filter(|ifindex| self.ports.ifindexes().contains(ifindex))
            .with_context(|| format!("{port}: not a port this daemon snoops"))
    }

    /// The membership of `port` (a snooped one) in `group` on VLAN `vid`.
    fn request_key<A: Address>(&self, port: &str, group: A, vid: u16) -> Result<MembershipKey<A>> {
        Ok(MembershipKey {
            ifindex: self.snooped_port(port)?,
            vlan: vid,
            inner_vlan: 0,
            group,
        })
    }

    fn add_static(&mut self, port: &str, group: IpAddr, vid: u16) -> Result<String> {
        let written = match group {
            IpAddr::V4(group) => {
                let key = self.request_key(port, group.octets(), vid)?;
                if !is_snooped_group(group) {
                    anyhow::bail!(
                        "{group}: not a group to snoop (a multicast address outside 224.0.0.0/24, which is always flooded)"
                    );
                }
                let mut effects = Effects::default();
                let written = self.memberships.add_static(key, &mut effects);
                self.apply(effects);
                written
            }
            IpAddr::V6(group) => {
                let key = self.request_key(port, group.octets(), vid)?;
                if !is_snooped_group6(group) {
                    anyhow::bail!(
                        "{group}: not a group to snoop (an IPv6 multicast address of link scope or wider, not ff02::1, which is always flooded)"
                    );
                }
                let mut effects = Effects::default();
                let written = self.memberships6.add_static(key, &mut effects);
                self.apply6(effects);
                written
            }
        };
        written.with_context(|| format!("writing the static membership of {port} in {group}"))?;
        let mut event = MonitorEvent::new(MonitorKind::Static, port.to_string());
        event.vid = Some(vid);
        event.grp = Some(group);
        self.publish(event);
        Ok(format!("static: port {port} vid {vid} group {group}"))
    }

    fn delete_membership(&mut self, port: &str, group: IpAddr, vid: u16) -> Result<String> {
        let removed = match group {
            IpAddr::V4(group) => {
                let key = self.request_key(port, group.octets(), vid)?;
                let mut effects = Effects::default();
                let removed = self.memberships.remove(key, Reason::Deleted, &mut effects);
                self.apply(effects);
                removed
            }
            IpAddr::V6(group) => {
                let key = self.request_key(port, group.octets(), vid)?;
                let mut effects = Effects::default();
                let removed = self.memberships6.remove(key, Reason::Deleted, &mut effects);
                self.apply6(effects);
                removed
            }
        };
        if !removed {
            anyhow::bail!("port {port} vid {vid} group {group}: no such membership");
        }
        Ok(format!("deleted: port {port} vid {vid} group {group}"))
    }

    fn flush_memberships(&mut self, port: Option<&str>) -> Result<String> {
        let only = port.map(|port| self.snooped_port(port)).transpose()?;
        let mut effects = Effects::default();
        let removed4 = self
            .memberships
            .memberships_of(only)
            .into_iter()
            .filter(|key| self.memberships.remove(*key, Reason::Deleted, &mut effects))
            .count();
        self.apply(effects);
        let mut effects6 = Effects::default();
        let removed6 = self
            .memberships6
            .memberships_of(only)
            .into_iter()
            .filter(|key| {
                self.memberships6
                    .remove(*key, Reason::Deleted, &mut effects6)
            })
            .count();
        self.apply6(effects6);
        // Per family, as hosts join IPv6 groups (solicited-node ones) on
        // their own: the operator sees which table lost what.
        let counts = format!("{removed4} IGMP and {removed6} MLD memberships");
        Ok(match port {
            Some(port) => format!("flushed {counts} of port {port}"),
            None => format!("flushed {counts}"),
        })
    }

    /// Hands the membership component's changes to forwarding: the groups
    /// that changed, or every group when the router ports did (the
    /// program's epoch counts only the router ports it learned itself).
    fn apply(&mut self, effects: Effects<Ipv4>) {
        apply_to(
            &self.memberships,
            &mut self.forwarding,
            self.ports.ifindexes(),
            effects,
        );
    }

    /// As `apply`, for MLD's components.
    fn apply6(&mut self, effects: Effects<Ipv6>) {
        apply_to(
            &self.memberships6,
            &mut self.forwarding6,
            self.ports.ifindexes(),
            effects,
        );
    }

    /// Works out the entries of `groups` from their member ports and the router ports.
    fn refresh_groups(&mut self, groups: impl IntoIterator<Item = GroupKey<Ipv4>>) {
        refresh(
            &self.memberships,
            &mut self.forwarding,
            self.ports.ifindexes(),
            groups,
        );
    }

    fn refresh_groups6(&mut self, groups: impl IntoIterator<Item = GroupKey<Ipv6>>) {
        refresh(
            &self.memberships6,
            &mut self.forwarding6,
            self.ports.ifindexes(),
            groups,
        );
    }
}

/// One family's membership changes, handed to its forwarding component:
/// the groups that changed, or every group when the router ports did.
fn apply_to<A: Protocol + HostGroups>(
    memberships: &Memberships<A>,
    forwarding: &mut Forwarding<A>,
    ports: &[u32],
    effects: Effects<A>,
) {
    if effects.routers {
        let mut groups = effects.groups;
        groups.extend(forwarding.groups());
        refresh(memberships, forwarding, ports, groups);
        forwarding.log_destination_sets();
    } else if !effects.groups.is_empty() {
        refresh(memberships, forwarding, ports, effects.groups);
    }
}

/// Works out the entries of one family's `groups` from their member ports
/// among `ports` and the router ports.
fn refresh<A: Protocol + HostGroups>(
    memberships: &Memberships<A>,
    forwarding: &mut Forwarding<A>,
    ports: &[u32],
    groups: impl IntoIterator<Item = GroupKey<A>>,
) {
    let routes = memberships.routes();
    for group in groups {
        let members = memberships.members(group, ports);
        forwarding.refresh_group(group, &members.ports, members.every_source, &routes);
    }
}

/// Every membership of one family, for its forwarding entries' rebuild.
fn member_keys<A: Protocol>(memberships: &Memberships<A>) -> Vec<MembershipKey<A>> {
    memberships
        .memberships()
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// The next event of a ring buffer: `None` when it is empty, `Some(None)`
/// for a record too short to be an `Event<A>` (logged and skipped).
fn next_event<A: Address>(ring: &mut RingBuf<MapData>) -> Option<Option<Event<A>>> {
    let item = ring.next()?;
    if item.len() < std::mem::size_of::<Event<A>>() {
        warn!(
            bytes = item.len(),
            family = A::FAMILY.name(),
            "short event ignored"
        );
        return Some(None);
    }
    // SAFETY: the program writes whole `Event<A>`s; read_unaligned copes with any offset.
    Some(Some(unsafe {
        std::ptr::read_unaligned(item.as_ptr().cast::<Event<A>>())
    }))
}
