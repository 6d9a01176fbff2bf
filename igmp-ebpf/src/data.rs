//! The fast path: multicast data to a registered group goes to the ports
//! that want it (RFC 4541 §2.1.2); everything the fast path cannot or should
//! not handle goes to the kernel. This decides; the hooks carry it out.

use igmp_common::{group_flags, unregistered, DataCounter, GroupEntry, GroupKey, Settings};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    addr::is_link_scope6,
    family::Family,
    frame::{Frame, Hook},
    l2::L2,
    maps::{in_vlan_bridge, DATA_COUNTERS, SETTINGS},
    verdict::{Destinations, EverySource, Verdict},
};

/// Decides what happens to a non-IGMP IPv4 frame arriving on port `ingress`.
#[inline(always)]
pub fn forward<H: Hook>(frame: &Frame<H>, ingress: u32, l2: &L2) -> Verdict {
    let Some(ip) = frame.header::<Ipv4Hdr>(l2.l3_offset) else {
        return Verdict::Pass;
    };
    to_group(&ip.dst_addr, ingress, l2, Unregistered::ByPolicy)
}

/// Decides what happens to an IPv6 frame other than MLD arriving on port `ingress`.
#[inline(always)]
pub fn forward6<H: Hook>(frame: &Frame<H>, ingress: u32, l2: &L2) -> Verdict {
    let Some(ip) = frame.header::<Ipv6Hdr>(l2.l3_offset) else {
        return Verdict::Pass;
    };
    let unregistered = if is_link_scope6(&ip.dst_addr) {
        Unregistered::Flooded
    } else {
        Unregistered::ByPolicy
    };
    to_group(&ip.dst_addr, ingress, l2, unregistered)
}

/// What becomes of a group no port joined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unregistered {
    /// As the daemon's policy says.
    ByPolicy,
    /// Flooded by the kernel whatever the policy: IPv6's link-scope groups
    /// (solicited-node, all routers, DHCPv6's), whose loss would break
    /// neighbour discovery or DHCPv6 for a host whose report was missed.
    Flooded,
}

/// The frame of family `A` sent to `group`.
#[inline(always)]
///
/// `group` stays where it is (in the frame): a 16-octet copy would be 16
/// registers, spilled to the stack a byte per slot.
fn to_group<A: Family>(group: &A, ingress: u32, l2: &L2, unregistered: Unregistered) -> Verdict {
    if !group.is_multicast() {
        return Verdict::Pass;
    }
    if settings().is_some_and(|settings| settings.fast_path_off != 0) {
        return Verdict::Pass;
    }
    if group.is_never_snooped() {
        count(DataCounter::LinkLocal);
        return Verdict::Pass;
    }
    let Some(l2) = l2.in_bridge_vlan(ingress) else {
        return Verdict::Pass;
    };
    let key = GroupKey {
        vlan: l2.vlan,
        inner_vlan: l2.inner_vlan,
        group: *group,
    };
    match A::groups().get_ptr(key) {
        Some(entry) if unsafe { (*entry).flags } & group_flags::LOCAL_LISTENER != 0 => {
            count(DataCounter::LocalListener);
            Verdict::Pass
        }
        Some(_) if l2.vlan_filtering && host_listens(group) => {
            count(DataCounter::LocalListener);
            Verdict::Pass
        }
        Some(entry) => {
            count(DataCounter::Forwarded);
            match destinations::<A>(unsafe { &*entry }) {
                Destinations::Port(port, every_source) => to_sole_port(port, ingress, every_source),
                to => Verdict::Forward(to),
            }
        }
        None if l2.vlan_filtering => {
            count(DataCounter::ToBridgeSnooping);
            Verdict::Pass
        }
        None if unregistered == Unregistered::Flooded => {
            count(DataCounter::UnregisteredFlooded);
            Verdict::Pass
        }
        None => unregistered_group::<A>(),
    }
}

/// Whether the host itself listens to `group`. The daemon marks the host's
/// groups untagged (it reads them per interface, not per bridge VLAN); on a
/// VLAN-filtering bridge the frame's own key carries a VLAN, so the mark is
/// looked up apart.
#[inline(always)]
fn host_listens<A: Family>(group: &A) -> bool {
    A::groups()
        .get_ptr(GroupKey::untagged(*group))
        .is_some_and(|entry| unsafe { (*entry).flags } & group_flags::LOCAL_LISTENER != 0)
}

/// The group's destinations as the daemon worked them out, unless a router
/// port was learned since (it is a destination too).
#[inline(always)]
fn destinations<A: Family>(entry: &GroupEntry) -> Destinations {
    if entry.sole_port == 0 && entry.dest_set == 0 {
        return Destinations::Every;
    }
    let epoch = A::router_epoch().get(0).copied().unwrap_or_default();
    if entry.router_epoch != epoch {
        return Destinations::Every;
    }
    let every_source = if entry.flags & group_flags::EVERY_SOURCE != 0 {
        EverySource::Taken
    } else {
        EverySource::Unknown
    };
    if entry.sole_port != 0 {
        Destinations::Port(entry.sole_port, every_source)
    } else {
        Destinations::Set(entry.dest_set - 1, every_source)
    }
}

/// To `port` alone; its egress check still has the last word, unless the
/// daemon found that it takes every source (tc only). A frame from
/// the only member goes nowhere, as a broadcast that leaves out its ingress would.
#[inline(always)]
fn to_sole_port(port: u32, ingress: u32, every_source: EverySource) -> Verdict {
    if port == ingress {
        return Verdict::Drop;
    }
    count(DataCounter::ForwardedSolePort);
    Verdict::Forward(Destinations::Port(port, every_source))
}

/// A group no port joined, as the daemon's policy says. When some port has
/// its own policy, the egress check applies each port's.
#[inline(always)]
fn unregistered_group<A: Family>() -> Verdict {
    let settings = settings().unwrap_or_default();
    if settings.port_overrides != 0 {
        count(DataCounter::UnregisteredToRouters);
        return Verdict::Forward(Destinations::Every);
    }
    match A::unregistered(&settings) {
        unregistered::ROUTERS => {
            count(DataCounter::UnregisteredToRouters);
            Verdict::Forward(Destinations::Every)
        }
        unregistered::DROP => {
            count(DataCounter::UnregisteredDropped);
            Verdict::Drop
        }
        _ => {
            count(DataCounter::UnregisteredFlooded);
            Verdict::Pass
        }
    }
}

/// Reports and leaves (IGMP's; MLD's reports and Done): to router ports
/// only once the family's querier is known (RFC 4541 §2.1.1 and §3, the
/// bridge's rule), so that no host hears another's report and suppresses
/// its own; flooded by the kernel before. On a VLAN-filtering bridge the
/// bridge's own per-VLAN snooping sends them.
#[inline(always)]
pub fn report<A: Family>(ingress: u32) -> Verdict {
    let settings = settings().unwrap_or_default();
    if settings.fast_path_off != 0 {
        return Verdict::Pass;
    }
    // Asked again rather than carried from the parse: a flag carried through
    // the IGMP path would double what the verifier walks there.
    if in_vlan_bridge(ingress) {
        count(DataCounter::ToBridgeSnooping);
        return Verdict::Pass;
    }
    if A::reports_to_routers(&settings) || settings.port_overrides != 0 {
        count(DataCounter::ReportsToRouters);
        return Verdict::Forward(Destinations::Every);
    }
    Verdict::Pass
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
