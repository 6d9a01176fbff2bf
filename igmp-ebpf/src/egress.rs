//! The egress filter, run by the devmap for each copy of a broadcast frame
//! on its way out of a port: it keeps the copy only if that port wants it
//! (RFC 4541 §2.1.2). Member ports get the groups they joined, filtered by
//! their IGMPv3 source lists; router ports get every group and every report.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use igmp_common::{
    filter_mode, membership_flags, unregistered, DataCounter, GroupKey, MembershipKey, RouterKey,
    SourceKey,
};
use network_types::ip::{IpProto, Ipv4Hdr};

use crate::{
    data::count,
    frame::Frame,
    l2,
    maps::{port_settings, GROUPS, MEMBERSHIP, ROUTER_PORTS, SETTINGS, SOURCES},
};

pub fn filter(ctx: &XdpContext) -> u32 {
    if wanted(ctx) {
        xdp_action::XDP_PASS
    } else {
        count(DataCounter::EgressFiltered);
        xdp_action::XDP_DROP
    }
}

#[inline(always)]
fn wanted(ctx: &XdpContext) -> bool {
    let port = unsafe { (*ctx.ctx).egress_ifindex };
    let frame = Frame::new(ctx);
    let Ok(Some(l2)) = l2::parse(&frame) else {
        return false;
    };
    let Some(ip) = frame.get::<Ipv4Hdr>(l2.l3_offset) else {
        return false;
    };
    let ip = unsafe { &*ip };
    let options = port_settings(port);
    if options.blocked != 0 {
        return false;
    }
    let router_key = RouterKey {
        ifindex: port,
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
    };
    if ROUTER_PORTS.get_ptr(router_key).is_some() {
        return true;
    }
    let global = SETTINGS.get(0).copied().unwrap_or_default();
    if ip.proto == IpProto::Igmp as u8 {
        // Reports and leaves: router ports, ports that flood reports, or
        // everyone while no querier is known.
        return options.flood_reports != 0 || global.reports_to_routers == 0;
    }
    let group_key = GroupKey {
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
        group: ip.dst_addr,
    };
    if GROUPS.get_ptr(group_key).is_none() {
        let policy = match options.unregistered {
            unregistered::FOLLOW_GLOBAL => global.unregistered,
            own => own,
        };
        // Router ports were let through above; ROUTERS and DROP stop here.
        return policy == unregistered::FLOOD;
    }
    member_wants(port, &l2, ip)
}

/// Whether port `port` joined the group and admits the source (RFC 3376 §6.3).
#[inline(always)]
fn member_wants(port: u32, l2: &l2::L2, ip: &Ipv4Hdr) -> bool {
    let key = MembershipKey {
        ifindex: port,
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
        group: ip.dst_addr,
    };
    let Some(entry) = MEMBERSHIP.get_ptr(key) else {
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
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
        group: ip.dst_addr,
        source: ip.src_addr,
    };
    let Some(source) = SOURCES.get_ptr(source_key) else {
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
