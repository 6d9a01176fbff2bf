//! Map keys and monitor events derived from kernel events.

use super::*;

/// What the monitors see of a kernel event.
pub(super) fn monitor_event(kind: EventKind, event: &Event, port: &str) -> MonitorEvent {
    let name = match kind {
        EventKind::NewMembership => MonitorKind::Join,
        EventKind::LeaveSeen => MonitorKind::Leave,
        EventKind::QuerySeen => MonitorKind::Query,
        EventKind::NewRouterPort => MonitorKind::Router,
        EventKind::NewSource => MonitorKind::Source,
        EventKind::SourceLeaveSeen => MonitorKind::Block,
        EventKind::QuerySourceSeen => MonitorKind::QuerySource,
    };
    let mut monitor = MonitorEvent::new(name, port.to_string());
    monitor.vid = Some(event.vlan);
    if event.group != [0; 4] {
        monitor.grp = Some(Ipv4Addr::from(event.group));
    }
    if matches!(
        kind,
        EventKind::NewSource | EventKind::SourceLeaveSeen | EventKind::QuerySourceSeen
    ) {
        monitor.src = Some(Ipv4Addr::from(event.address));
    } else {
        monitor.address = Some(Ipv4Addr::from(event.address));
    }
    monitor
}

pub(super) fn group_key(event: &Event) -> MembershipKey {
    MembershipKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
        group: event.group,
    }
}

pub(super) fn source_key(event: &Event) -> SourceKey {
    SourceKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
        group: event.group,
        source: event.address,
    }
}

pub(super) fn router_key(event: &Event) -> RouterKey {
    RouterKey {
        ifindex: event.ifindex,
        vlan: event.vlan,
        inner_vlan: event.inner_vlan,
    }
}

pub(super) fn group_of_host(host: &HostKey) -> MembershipKey {
    MembershipKey {
        ifindex: host.ifindex,
        vlan: host.vlan,
        inner_vlan: host.inner_vlan,
        group: host.group,
    }
}

pub(super) fn group_of_source(source: &SourceKey) -> MembershipKey {
    MembershipKey {
        ifindex: source.ifindex,
        vlan: source.vlan,
        inner_vlan: source.inner_vlan,
        group: source.group,
    }
}
