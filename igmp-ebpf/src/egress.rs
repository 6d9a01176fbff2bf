//! Whether a port wants a copy of a forwarded frame (RFC 4541 §2.1.2):
//! member ports get the groups they joined, filtered by their IGMPv3 source
//! lists; router ports get every group and every report. XDP asks it in the
//! devmap's egress program, run on each copy of a broadcast on its way out of
//! a port; tc asks it before cloning the frame to a port.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use igmp_common::{
    filter_mode, membership_flags, unregistered, DataCounter, GroupKey, MembershipKey,
    PortSettings, RouterKey, SourceKey,
};

use crate::{
    data::count,
    family::Family,
    frame::{Frame, Xdp},
    maps::{port_settings, SETTINGS},
    verdict::Headers,
};

/// The devmap egress program's verdict on one copy.
pub fn filter(ctx: &XdpContext) -> u32 {
    let port = unsafe { (*ctx.ctx).egress_ifindex };
    let frame = Frame::<Xdp>::new(ctx);
    let options = port_settings(port);
    let wanted = match Headers::<[u8; 4]>::read(&frame) {
        Some(headers) => port_wants(port, &options, &headers),
        None => Headers::<[u8; 16]>::read(&frame)
            .is_some_and(|headers| port_wants(port, &options, &headers)),
    };
    if wanted {
        xdp_action::XDP_PASS
    } else {
        count(DataCounter::EgressFiltered);
        xdp_action::XDP_DROP
    }
}

/// Whether port `port`, with options `options`, wants a frame with `headers`.
#[inline(always)]
pub fn port_wants<A: Family>(port: u32, options: &PortSettings, headers: &Headers<A>) -> bool {
    if options.blocked != 0 {
        return false;
    }
    let router_key = RouterKey {
        ifindex: port,
        vlan: headers.vlan,
        inner_vlan: headers.inner_vlan,
    };
    if A::router_ports().get_ptr(router_key).is_some() {
        return true;
    }
    let global = SETTINGS.get(0).copied().unwrap_or_default();
    if headers.protocol == A::SIGNALLING {
        // Reports and leaves: router ports, ports that flood reports, or
        // everyone while no querier is known.
        return options.flood_reports != 0 || !A::reports_to_routers(&global);
    }
    let group_key = GroupKey {
        vlan: headers.vlan,
        inner_vlan: headers.inner_vlan,
        group: headers.group,
    };
    if A::groups().get_ptr(group_key).is_none() {
        let policy = match options.unregistered {
            unregistered::FOLLOW_GLOBAL => A::unregistered(&global),
            own => own,
        };
        // Router ports were let through above; ROUTERS and DROP stop here.
        return policy == unregistered::FLOOD;
    }
    member_wants(port, headers)
}

/// Whether port `port` joined the group and admits the source (RFC 3376
/// §6.3, RFC 3810 §7.2).
#[inline(always)]
fn member_wants<A: Family>(port: u32, headers: &Headers<A>) -> bool {
    let key = MembershipKey {
        ifindex: port,
        vlan: headers.vlan,
        inner_vlan: headers.inner_vlan,
        group: headers.group,
    };
    let Some(entry) = A::membership().get_ptr(key) else {
        return false;
    };
    let (mode, flags, excluded_ns) = unsafe {
        (
            (*entry).filter_mode,
            (*entry).flags,
            (*entry).last_report_ns,
        )
    };
    if flags & membership_flags::SOURCES_TRUNCATED != 0 {
        // The source list is incomplete: deliver rather than lose wanted traffic.
        return true;
    }
    let source_key = SourceKey {
        ifindex: port,
        vlan: headers.vlan,
        inner_vlan: headers.inner_vlan,
        group: headers.group,
        source: headers.source,
    };
    let Some(source) = A::sources().get_ptr(source_key) else {
        // INCLUDE: not asked for; EXCLUDE: in neither list, so wanted.
        return mode != filter_mode::INCLUDE;
    };
    let source = unsafe { &*source };
    match mode {
        filter_mode::INCLUDE => source.mode == filter_mode::INCLUDE,
        // Only Y is kept out, and only while no EXCLUDE record since its
        // last naming deleted it (RFC 3376 §6.3, §6.4.1).
        _ => source.mode != filter_mode::EXCLUDE || !source.listed(mode, excluded_ns),
    }
}
