//! The fast path: multicast data to a registered group is redirected in XDP
//! to the ports that want it (RFC 4541 §2.1.2); everything the fast path
//! cannot or should not handle goes to the kernel (XDP_PASS).

use aya_ebpf::bindings::{xdp_action, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS};
use igmp_common::{group_flags, unregistered, DataCounter, GroupEntry, GroupKey, Settings};
use network_types::ip::Ipv4Hdr;

use crate::{
    frame::Frame,
    igmp::{is_link_local, is_multicast},
    l2::L2,
    maps::{DATA_COUNTERS, DEST_SETS, EGRESS_PORTS, GROUPS, ROUTER_EPOCH, SETTINGS},
};

/// Decides what happens to a non-IGMP IPv4 frame arriving on port `ingress`.
#[inline(always)]
pub fn forward(frame: &Frame, ingress: u32, l2: &L2) -> u32 {
    let Some(ip) = frame.get::<Ipv4Hdr>(l2.l3_offset) else {
        return xdp_action::XDP_PASS;
    };
    let group = unsafe { (*ip).dst_addr };
    if !is_multicast(group) {
        return xdp_action::XDP_PASS;
    }
    if settings().is_some_and(|settings| settings.fast_path_off != 0) {
        return xdp_action::XDP_PASS;
    }
    if is_link_local(group) {
        count(DataCounter::LinkLocal);
        return xdp_action::XDP_PASS;
    }
    let key = GroupKey {
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
        group,
    };
    match GROUPS.get_ptr(key) {
        Some(entry) if unsafe { (*entry).flags } & group_flags::LOCAL_LISTENER != 0 => {
            count(DataCounter::LocalListener);
            xdp_action::XDP_PASS
        }
        Some(entry) => {
            count(DataCounter::Forwarded);
            match destinations(unsafe { &*entry }) {
                Destinations::Port(port) => to_sole_port(port, ingress),
                Destinations::Set(slot) => to_set(slot),
                Destinations::Unknown => to_every_wanting_port(),
            }
        }
        None => unregistered_group(),
    }
}

/// Where a registered group's data goes, as far as the fast path knows.
enum Destinations {
    /// One port.
    Port(u32),
    /// The ports of a `DEST_SETS` slot.
    Set(u32),
    /// Every port, for the egress filter to choose.
    Unknown,
}

/// The group's destinations as the daemon worked them out, unless a router
/// port was learned since (it is a destination too).
#[inline(always)]
fn destinations(entry: &GroupEntry) -> Destinations {
    if entry.sole_port == 0 && entry.dest_set == 0 {
        return Destinations::Unknown;
    }
    let epoch = ROUTER_EPOCH.get(0).copied().unwrap_or_default();
    if entry.router_epoch != epoch {
        return Destinations::Unknown;
    }
    if entry.sole_port != 0 {
        Destinations::Port(entry.sole_port)
    } else {
        Destinations::Set(entry.dest_set - 1)
    }
}

/// Broadcasts into the group's destination set: copies for its ports only,
/// each still through the egress filter. An empty slot falls back to every port.
#[inline(always)]
fn to_set(slot: u32) -> u32 {
    let Some(set) = DEST_SETS.get(slot) else {
        return to_every_wanting_port();
    };
    count(DataCounter::ForwardedToSet);
    let flags = u64::from(BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    set.redirect(0, flags).unwrap_or(xdp_action::XDP_PASS)
}

/// Redirects to `port` alone; its egress filter still has the last word. A
/// frame from the only member goes nowhere, as a broadcast that leaves out
/// its ingress would. A port no longer in the devmap leaves it to the kernel.
#[inline(always)]
fn to_sole_port(port: u32, ingress: u32) -> u32 {
    if port == ingress {
        return xdp_action::XDP_DROP;
    }
    count(DataCounter::ForwardedSolePort);
    EGRESS_PORTS
        .redirect(port, u64::from(xdp_action::XDP_PASS))
        .unwrap_or(xdp_action::XDP_PASS)
}

/// A group no port joined, as the daemon's policy says. When some port has
/// its own policy, the egress filter applies each port's.
#[inline(always)]
fn unregistered_group() -> u32 {
    let settings = settings().unwrap_or_default();
    if settings.port_overrides != 0 {
        count(DataCounter::UnregisteredToRouters);
        return to_every_wanting_port();
    }
    match settings.unregistered {
        unregistered::ROUTERS => {
            count(DataCounter::UnregisteredToRouters);
            to_every_wanting_port()
        }
        unregistered::DROP => {
            count(DataCounter::UnregisteredDropped);
            xdp_action::XDP_DROP
        }
        _ => {
            count(DataCounter::UnregisteredFlooded);
            xdp_action::XDP_PASS
        }
    }
}

/// IGMP reports and leaves: to router ports only once a querier is known
/// (RFC 4541 §2.1.1, the bridge's rule), flooded by the kernel before.
#[inline(always)]
pub fn report(action_if_flooded: u32) -> u32 {
    let settings = settings().unwrap_or_default();
    if settings.fast_path_off != 0 {
        return action_if_flooded;
    }
    if settings.reports_to_routers != 0 || settings.port_overrides != 0 {
        count(DataCounter::ReportsToRouters);
        return to_every_wanting_port();
    }
    action_if_flooded
}

/// Broadcasts the frame to every port but the one it came in on; the egress
/// filter (`egress.rs`) keeps only the ports that want it.
#[inline(always)]
fn to_every_wanting_port() -> u32 {
    let flags = u64::from(BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    EGRESS_PORTS
        .redirect(0, flags)
        .unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn settings() -> Option<Settings> {
    SETTINGS.get(0).copied()
}

#[inline(always)]
pub fn count(counter: DataCounter) {
    if let Some(counters) = DATA_COUNTERS.get_ptr_mut(0) {
        if let Some(slot) = unsafe { (*counters).frames.get_mut(counter as usize) } {
            *slot += 1;
        }
    }
}
