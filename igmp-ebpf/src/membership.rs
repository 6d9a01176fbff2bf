//! Table updates. An existing entry is refreshed in place through the lookup
//! pointer: a refresh never allocates and never goes through the hash again.

use core::intrinsics::{atomic_xadd, AtomicOrdering::Relaxed};

use igmp_common::{
    filter_mode, group_flags, membership_flags, router_flags, router_mode, source_flags, Counter,
    EventKind, GroupEntry, GroupKey, HostEntry, HostKey, Membership, MembershipKey, PortSettings,
    RouterKey, RouterPort, SourceEntry, SourceKey,
};

use crate::{
    events::{emit, Subject},
    family::Family,
    l2::L2,
    limits,
    maps::{BPF_NOEXIST, EEXIST},
    stats::PortStats,
};

/// The port and VLAN a message arrived on, and who sent it.
#[derive(Clone, Copy)]
pub struct Origin<A: Family> {
    pub ifindex: u32,
    pub vlan: u16,
    pub inner_vlan: u16,
    pub sender: A,
    pub stats: PortStats,
    /// The port's options (`PORTS` map) that learning needs: only these, as
    /// `Origin` is copied onto the v3 walk's stack too.
    pub router_mode: u8,
    pub fast_leave: u8,
    pub max_groups: u32,
    /// When the message arrived (CLOCK_MONOTONIC), read once it proved
    /// valid: once per message, as a read costs as much as a table lookup,
    /// and every entry the message touches is stamped alike. (A port's rate
    /// limit reads the clock for itself, before the checksum.)
    pub now: u64,
}

impl<A: Family> Origin<A> {
    /// Where a message came from, with the options of its port.
    #[inline(always)]
    pub fn new(
        ifindex: u32,
        l2: &L2,
        sender: A,
        stats: PortStats,
        port: &PortSettings,
        now: u64,
    ) -> Self {
        Self {
            ifindex,
            // On a VLAN-filtering bridge already the bridge's VLAN.
            vlan: l2.vlan,
            inner_vlan: l2.inner_vlan,
            sender,
            stats,
            router_mode: port.router_mode,
            fast_leave: port.fast_leave,
            max_groups: port.max_groups,
            now,
        }
    }
}

/// What a report says about one group.
#[derive(Clone, Copy)]
pub struct GroupReport<A: Family> {
    pub group: A,
    pub version: u8,
    /// v3 record type, 0 for v1/v2.
    pub record_type: u8,
}

impl<A: Family> Origin<A> {
    #[inline(always)]
    fn key(&self, group: A) -> MembershipKey<A> {
        MembershipKey {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group,
        }
    }

    #[inline(always)]
    fn subject(&self, report: &GroupReport<A>, address: A) -> Subject<A> {
        Subject {
            ifindex: self.ifindex,
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            group: report.group,
            address,
            version: report.version,
            record_type: report.record_type,
            max_resp_code: 0,
            flags: 0,
        }
    }
}

/// A group's state before a record changed it.
#[derive(Clone, Copy)]
pub struct GroupState {
    /// `filter_mode::*`, or 0: the port had no entry (INCLUDE {}).
    pub mode: u8,
    /// `Membership::last_report_ns`: in EXCLUDE mode, the last EXCLUDE record.
    pub last_report_ns: u64,
}

/// The group's entry on the origin's port, as it stands.
#[inline(always)]
pub fn group_state<A: Family>(origin: &Origin<A>, group: A) -> GroupState {
    match A::membership().get_ptr(origin.key(group)) {
        // SAFETY: a map value pointer, read at once.
        Some(entry) => unsafe {
            GroupState {
                mode: (*entry).filter_mode,
                last_report_ns: (*entry).last_report_ns,
            }
        },
        None => GroupState {
            mode: 0,
            last_report_ns: 0,
        },
    }
}

/// A report that puts the group in EXCLUDE mode: v1/v2 reports (EXCLUDE {}),
/// v3 MODE_IS_EXCLUDE and CHANGE_TO_EXCLUDE. Restarts the group timer, which
/// in EXCLUDE mode also marks every source the record does not name as
/// deleted (`SourceEntry::listed`). Returns the state before.
#[inline(always)]
pub fn report_exclude<A: Family>(origin: &Origin<A>, report: &GroupReport<A>) -> GroupState {
    host_seen(origin, report.group);
    let key = origin.key(report.group);
    if let Some(entry) = A::membership().get_ptr_mut(key) {
        let entry = unsafe { &mut *entry };
        let before = GroupState {
            mode: entry.filter_mode,
            last_report_ns: entry.last_report_ns,
        };
        entry.last_report_ns = origin.now;
        entry.leave_ns = 0;
        entry.last_reporter = origin.sender;
        entry.version = report.version;
        entry.filter_mode = filter_mode::EXCLUDE;
        entry.flags &= !membership_flags::LEAVE_PENDING;
        origin.stats.count(Counter::GroupRefreshed);
        return before;
    }
    create(origin, report, key, filter_mode::EXCLUDE);
    GroupState {
        mode: 0,
        last_report_ns: 0,
    }
}

/// A v1 report: starts the port's older version host present timer for the
/// group (RFC 3376 §7.3.2), which user space reads.
#[inline(always)]
pub fn v1_host_seen<A: Family>(origin: &Origin<A>, group: A) {
    let key = origin.key(group);
    if let Some(last) = A::v1_hosts().get_ptr_mut(key) {
        unsafe { *last = origin.now };
        return;
    }
    match A::v1_hosts().insert(key, origin.now, BPF_NOEXIST) {
        Ok(()) | Err(EEXIST) => {}
        Err(_) => origin.stats.count(Counter::TableFull),
    }
}

/// A v3 record naming sources to receive (IS_IN, ALLOW, TO_IN with sources).
/// Returns the group's filter mode after the record. An INCLUDE group lives as
/// long as its sources are reported; an EXCLUDE group's timer is only restarted
/// by EXCLUDE reports (RFC 3376 §6.4.1).
#[inline(always)]
pub fn report_include<A: Family>(origin: &Origin<A>, report: &GroupReport<A>) -> u8 {
    host_seen(origin, report.group);
    let key = origin.key(report.group);
    if let Some(entry) = A::membership().get_ptr_mut(key) {
        let entry = unsafe { &mut *entry };
        entry.last_reporter = origin.sender;
        entry.version = report.version;
        if entry.filter_mode == filter_mode::INCLUDE {
            entry.last_report_ns = origin.now;
            entry.leave_ns = 0;
            entry.flags &= !membership_flags::LEAVE_PENDING;
        }
        origin.stats.count(Counter::GroupRefreshed);
        return entry.filter_mode;
    }
    create(origin, report, key, filter_mode::INCLUDE);
    filter_mode::INCLUDE
}

#[inline(always)]
fn create<A: Family>(origin: &Origin<A>, report: &GroupReport<A>, key: MembershipKey<A>, mode: u8) {
    if !limits::reserve_group(origin.ifindex, origin.max_groups) {
        origin.stats.count(Counter::GroupLimit);
        return;
    }
    let now = origin.now;
    let entry = Membership {
        last_report_ns: now,
        created_ns: now,
        leave_ns: 0,
        last_reporter: origin.sender,
        version: report.version,
        filter_mode: mode,
        flags: 0,
        _pad: Default::default(),
    };
    match A::membership().insert(key, entry, BPF_NOEXIST) {
        Ok(()) => {
            origin.stats.count(Counter::GroupCreated);
            widen_destinations(&key);
            emit(
                EventKind::NewMembership,
                &origin.subject(report, origin.sender),
                &origin.stats,
            );
        }
        // Another CPU created it an instant ago: that report stands for this one.
        Err(EEXIST) => {
            limits::release_group(origin.ifindex);
            origin.stats.count(Counter::GroupRefreshed);
        }
        Err(_) => {
            limits::release_group(origin.ifindex);
            origin.stats.count(Counter::TableFull);
        }
    }
}

/// A new member port: unless it is the group's sole port already, the
/// group's data goes back to the broadcast to every port at once, before the
/// daemon hears of the join (`GroupEntry::sole_port`, `dest_set`). A group
/// no port had is registered here, with no destinations worked out (the
/// broadcast, each port's check deciding), so that it forwards from its
/// first report even while no daemon runs; the daemon works them out when
/// it hears of the join, or at its start.
#[inline(always)]
fn widen_destinations<A: Family>(key: &MembershipKey<A>) {
    let group = GroupKey {
        vlan: key.vlan,
        inner_vlan: key.inner_vlan,
        group: key.group,
    };
    match A::groups().get_ptr_mut(group) {
        Some(entry) => {
            let entry = unsafe { &mut *entry };
            if entry.sole_port != key.ifindex {
                entry.sole_port = 0;
            }
            // The set was worked out without this member port, which may
            // keep sources out.
            entry.dest_set = 0;
            entry.flags &= !group_flags::EVERY_SOURCE;
        }
        None => {
            let entry = GroupEntry {
                ports: 1,
                ..GroupEntry::default()
            };
            // Failing means another CPU registered it an instant ago, or
            // GROUPS, as large as MEMBERSHIP, is full: the group then stays
            // unregistered, forwarded by the unregistered policy.
            let _ = A::groups().insert(group, entry, BPF_NOEXIST);
        }
    }
}

/// A leave for the group (v2 leave, v3 TO_IN{}, TO_IN in EXCLUDE mode). The
/// entry stays: user space lowers its timer or removes it (RFC 4541 §2.1.1).
#[inline(always)]
pub fn leave<A: Family>(origin: &Origin<A>, report: &GroupReport<A>) {
    host_left(origin, report.group);
    let Some(entry) = A::membership().get_ptr_mut(origin.key(report.group)) else {
        return;
    };
    let entry = unsafe { &mut *entry };
    entry.leave_ns = origin.now;
    entry.flags |= membership_flags::LEAVE_PENDING;
    emit(
        EventKind::LeaveSeen,
        &origin.subject(report, origin.sender),
        &origin.stats,
    );
}

/// Marks a group whose source list was cut at the walk bound.
#[inline(always)]
pub fn mark_sources_truncated<A: Family>(origin: &Origin<A>, group: A) {
    if let Some(entry) = A::membership().get_ptr_mut(origin.key(group)) {
        unsafe { (*entry).flags |= membership_flags::SOURCES_TRUNCATED };
    }
}

#[inline(always)]
fn source_key<A: Family>(origin: &Origin<A>, group: A, source: A) -> SourceKey<A> {
    SourceKey {
        ifindex: origin.ifindex,
        vlan: origin.vlan,
        inner_vlan: origin.inner_vlan,
        group,
        source,
    }
}

/// How a record treats the sources it names (RFC 3376 §6.4.1, §6.4.2). A
/// source entry of mode INCLUDE is in the group's requested list (INCLUDE's
/// A, EXCLUDE's X): forwarded while its timer runs; one of mode EXCLUDE is
/// in EXCLUDE's Y: not forwarded. The merge of several hosts behind a port
/// follows from the tables: a source one host asks for never enters Y.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// IS_IN, ALLOW, TO_IN: INCLUDE(A)+IS_IN(B) → INCLUDE(A+B),
    /// EXCLUDE(X,Y)+IS_IN(A) → EXCLUDE(X+A,Y-A); (A)=GMI.
    Asked,
    /// IS_EX, TO_EX from INCLUDE mode (or no entry, INCLUDE {}):
    /// INCLUDE(A)+IS_EX(B) → EXCLUDE(A*B,B-A), (B-A)=0: what was asked for
    /// stays asked for with its timer, the rest is excluded. A-B, named by
    /// neither, counts as deleted from here on (`SourceEntry::listed`).
    ExcludedFromInclude,
    /// IS_EX, TO_EX with the group in EXCLUDE mode since `since` (its last
    /// EXCLUDE record before this one): EXCLUDE(X,Y)+IS_EX(A) →
    /// EXCLUDE(A-Y,Y*A), (A-X-Y)=GMI: listed sources keep their list and
    /// timer; new ones are asked for until their timer runs out, as another
    /// host of the port may want them.
    ExcludedInExclude { since: u64 },
}

/// A source named by a record of any type but BLOCK.
#[inline(always)]
pub fn source_seen<A: Family>(
    origin: &Origin<A>,
    report: &GroupReport<A>,
    source: A,
    named: Named,
) {
    let key = source_key(origin, report.group, source);
    let now = origin.now;
    if let Some(entry) = A::sources().get_ptr_mut(key) {
        let entry = unsafe { &mut *entry };
        let asked_again = match named {
            Named::Asked => true,
            Named::ExcludedFromInclude => {
                if entry.mode != filter_mode::INCLUDE {
                    entry.mode = filter_mode::EXCLUDE;
                    entry.last_report_ns = now;
                }
                false
            }
            Named::ExcludedInExclude { since } => {
                if !entry.listed(filter_mode::EXCLUDE, since) {
                    // Deleted by an EXCLUDE record since: new to the lists.
                    true
                } else {
                    // Y*A: our Y entries live a GMI from their last naming.
                    if entry.mode == filter_mode::EXCLUDE {
                        entry.last_report_ns = now;
                    }
                    false
                }
            }
        };
        if asked_again {
            entry.last_report_ns = now;
            entry.leave_ns = 0;
            entry.mode = filter_mode::INCLUDE;
            entry.flags &= !source_flags::LEAVE_PENDING;
        }
        entry.named = SourceEntry::stamp(now);
        origin.stats.count(Counter::SourceRefreshed);
        return;
    }
    let mode = if named == Named::ExcludedFromInclude {
        filter_mode::EXCLUDE
    } else {
        filter_mode::INCLUDE
    };
    let entry = SourceEntry {
        last_report_ns: now,
        leave_ns: 0,
        mode,
        flags: 0,
        _pad: [0; 2],
        named: SourceEntry::stamp(now),
    };
    insert_source(origin, report, key, source, entry);
}

#[inline(always)]
fn insert_source<A: Family>(
    origin: &Origin<A>,
    report: &GroupReport<A>,
    key: SourceKey<A>,
    source: A,
    entry: SourceEntry,
) {
    let kind = if entry.flags & source_flags::LEAVE_PENDING != 0 {
        // The daemon indexes the source from this event too.
        EventKind::SourceLeaveSeen
    } else {
        EventKind::NewSource
    };
    match A::sources().insert(key, entry, BPF_NOEXIST) {
        Ok(()) => {
            origin.stats.count(Counter::SourceCreated);
            sources_listed(origin, report.group);
            emit(kind, &origin.subject(report, source), &origin.stats);
        }
        Err(EEXIST) => origin.stats.count(Counter::SourceRefreshed),
        Err(_) => origin.stats.count(Counter::TableFull),
    }
}

/// A port of the group now has a source list: its data goes to each port
/// through that port's check again, before the daemon hears of the source.
#[inline(always)]
fn sources_listed<A: Family>(origin: &Origin<A>, group: A) {
    let key = GroupKey {
        vlan: origin.vlan,
        inner_vlan: origin.inner_vlan,
        group,
    };
    if let Some(entry) = A::groups().get_ptr_mut(key) {
        unsafe { (*entry).flags &= !group_flags::EVERY_SOURCE };
    }
}

/// A source named by BLOCK_OLD_SOURCES in a group whose state is `group`:
/// user space queries it (as querier) and lowers its timer
/// (RFC 3376 §6.4.2). INCLUDE(A)+BLOCK(B) → INCLUDE(A), Q(G,A*B): only a
/// listed source is asked about. EXCLUDE(X,Y)+BLOCK(A) →
/// EXCLUDE(X+(A-X-Y),Y), (A-X-Y)=GMI, Q(G,A-Y): a source in Y is left
/// alone, any other is put in X and asked about, and goes to Y when no
/// host asks for it (`daemon/expire.rs`).
#[inline(always)]
pub fn source_leave<A: Family>(
    origin: &Origin<A>,
    report: &GroupReport<A>,
    source: A,
    group: &GroupState,
) {
    let key = source_key(origin, report.group, source);
    let now = origin.now;
    let excluding = group.mode == filter_mode::EXCLUDE;
    if let Some(entry) = A::sources().get_ptr_mut(key) {
        let entry = unsafe { &mut *entry };
        if excluding {
            if !entry.listed(filter_mode::EXCLUDE, group.last_report_ns) {
                // Deleted by an EXCLUDE record since: in neither X nor Y.
                entry.mode = filter_mode::INCLUDE;
                entry.last_report_ns = now;
            } else if entry.mode == filter_mode::EXCLUDE {
                return;
            }
            entry.named = SourceEntry::stamp(now);
        }
        entry.leave_ns = now;
        entry.flags |= source_flags::LEAVE_PENDING;
        emit(
            EventKind::SourceLeaveSeen,
            &origin.subject(report, source),
            &origin.stats,
        );
        return;
    }
    if !excluding {
        return;
    }
    let entry = SourceEntry {
        last_report_ns: now,
        leave_ns: now,
        mode: filter_mode::INCLUDE,
        flags: source_flags::LEAVE_PENDING,
        _pad: [0; 2],
        named: SourceEntry::stamp(now),
    };
    insert_source(origin, report, key, source, entry);
}

/// What a query says about its sender, the querier.
pub struct QueryInfo<A: Family> {
    pub group: A,
    pub version: u8,
    pub robustness: u8,
    pub qqic: u8,
    pub max_resp_code: u8,
    /// `query_flags::*`.
    pub flags: u8,
}

/// What made a port a router port.
pub enum Heard<'a, A: Family> {
    Query(&'a QueryInfo<A>),
    PimHello,
}

/// A query from a real querier, or a PIM hello: the port leads to a multicast
/// router (RFC 4541 §2.1.1). Returns whether the port is new to the map.
#[inline(always)]
pub fn router_seen<A: Family>(origin: &Origin<A>, heard: Heard<A>) -> bool {
    if origin.router_mode == router_mode::OFF {
        return false;
    }
    let key = RouterKey {
        ifindex: origin.ifindex,
        vlan: origin.vlan,
        inner_vlan: origin.inner_vlan,
    };
    if let Some(entry) = A::router_ports().get_ptr_mut(key) {
        let entry = unsafe { &mut *entry };
        entry.last_query_ns = origin.now;
        // Flags (permanent, set by user space) survive: only the querier's words change.
        match heard {
            Heard::Query(query) => record_query(entry, origin, query),
            Heard::PimHello => entry.flags |= router_flags::PIM,
        }
        return false;
    }
    let mut value = RouterPort {
        last_query_ns: origin.now,
        querier: origin.sender,
        ..RouterPort::default()
    };
    let version = match heard {
        Heard::Query(query) => {
            record_query(&mut value, origin, query);
            query.version
        }
        Heard::PimHello => {
            value.flags = router_flags::PIM;
            0
        }
    };
    insert_router_port(origin, key, value, version)
}

#[inline(always)]
fn record_query<A: Family>(entry: &mut RouterPort<A>, origin: &Origin<A>, query: &QueryInfo<A>) {
    entry.querier = origin.sender;
    entry.version = query.version;
    entry.robustness = query.robustness;
    entry.qqic = query.qqic;
    entry.max_resp_code = query.max_resp_code;
}

#[inline(always)]
fn insert_router_port<A: Family>(
    origin: &Origin<A>,
    key: RouterKey,
    value: RouterPort<A>,
    version: u8,
) -> bool {
    let report = GroupReport {
        group: A::UNSPECIFIED,
        version,
        record_type: 0,
    };
    match A::router_ports().insert(key, value, BPF_NOEXIST) {
        Ok(()) => {
            // Every group's data goes to this port too: the destinations the
            // daemon worked out without it no longer hold.
            if let Some(epoch) = A::router_epoch().get_ptr_mut(0) {
                // A plain atomic add (BPF v1 has no fetch-and-add); SAFETY:
                // a pointer into the array's only value, which always exists.
                unsafe { atomic_xadd::<u32, u32, { Relaxed }>(epoch, 1) };
            }
            emit(
                EventKind::NewRouterPort,
                &origin.subject(&report, origin.sender),
                &origin.stats,
            );
            true
        }
        Err(EEXIST) => false,
        Err(_) => {
            origin.stats.count(Counter::TableFull);
            false
        }
    }
}

#[inline(always)]
fn host_key<A: Family>(origin: &Origin<A>, group: A) -> HostKey<A> {
    HostKey {
        ifindex: origin.ifindex,
        vlan: origin.vlan,
        inner_vlan: origin.inner_vlan,
        group,
        host: origin.sender,
    }
}

/// On a fast-leave port, remembers which host reported the group, so that a
/// leave removes the group only when its last host has gone (RFC 4541 §2.1.1).
#[inline(always)]
pub fn host_seen<A: Family>(origin: &Origin<A>, group: A) {
    if origin.fast_leave == 0 {
        return;
    }
    let key = host_key(origin, group);
    if let Some(entry) = A::hosts().get_ptr_mut(key) {
        unsafe { (*entry).last_report_ns = origin.now };
        return;
    }
    let entry = HostEntry {
        last_report_ns: origin.now,
    };
    if A::hosts().insert(key, entry, BPF_NOEXIST).is_err() {
        origin.stats.count(Counter::TableFull);
    }
}

/// On a fast-leave port, forgets the host that left; user space then removes
/// the group if no other host remains.
#[inline(always)]
pub fn host_left<A: Family>(origin: &Origin<A>, group: A) {
    if origin.fast_leave != 0 {
        let _ = A::hosts().remove(host_key(origin, group));
    }
}

/// Every query goes to user space: it tracks the other querier's presence (RFC 3376 §6.6.2).
#[inline(always)]
pub fn query_seen<A: Family>(origin: &Origin<A>, query: &QueryInfo<A>) {
    let report = GroupReport {
        group: query.group,
        version: query.version,
        record_type: 0,
    };
    let mut subject = origin.subject(&report, origin.sender);
    subject.max_resp_code = query.max_resp_code;
    subject.flags = query.flags;
    emit(EventKind::QuerySeen, &subject, &origin.stats);
}

/// A source listed in a group-and-source-specific query: user space lowers
/// its timer on every member port (RFC 3376 §6.6.1).
#[inline(always)]
pub fn query_source_seen<A: Family>(origin: &Origin<A>, group: A, source: A, max_resp_code: u8) {
    let report = GroupReport {
        group,
        version: A::FILTERING_VERSION,
        record_type: 0,
    };
    let mut subject = origin.subject(&report, source);
    subject.max_resp_code = max_resp_code;
    emit(EventKind::QuerySourceSeen, &subject, &origin.stats);
}
