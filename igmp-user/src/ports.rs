//! Per-port options (router mode, fast leave) written where the XDP program
//! reads them, and the permanent router ports they imply.

use anyhow::{Context as _, Result};
use igmp_common::{router_flags, router_mode, PortSettings, RouterKey, RouterPort};

use crate::{tables::Tables, timers::monotonic_ns};

/// The options of one snooped port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    pub name: String,
    pub ifindex: u32,
    /// `router_mode::*`.
    pub router_mode: u8,
    pub fast_leave: bool,
}

impl PortPlan {
    fn settings(&self) -> PortSettings {
        PortSettings {
            router_mode: self.router_mode,
            fast_leave: u8::from(self.fast_leave),
            _pad: [0; 2],
        }
    }
}

/// Makes the maps say what `plan` says, replacing what an earlier run left.
pub fn apply(tables: &mut Tables, plan: &[PortPlan]) -> Result<()> {
    let stale: Vec<u32> = tables.ports.keys().filter_map(Result::ok).collect();
    for ifindex in stale {
        let _ = tables.ports.remove(&ifindex);
    }
    for port in plan {
        tables
            .ports
            .insert(port.ifindex, port.settings(), 0)
            .with_context(|| format!("{}: writing its options to the PORTS map", port.name))?;
    }
    demote_unlisted_permanent_routers(tables, plan)?;
    for port in plan
        .iter()
        .filter(|port| port.router_mode == router_mode::PERMANENT)
    {
        make_permanent_router(tables, port.ifindex)
            .with_context(|| format!("{}: making it a permanent router port", port.name))?;
    }
    Ok(())
}

/// A port no longer configured permanent ages out like a learned one.
fn demote_unlisted_permanent_routers(tables: &mut Tables, plan: &[PortPlan]) -> Result<()> {
    let permanent = |ifindex: u32| {
        plan.iter()
            .any(|port| port.ifindex == ifindex && port.router_mode == router_mode::PERMANENT)
    };
    let demoted: Vec<(RouterKey, RouterPort)> = tables
        .router_ports()
        .into_iter()
        .filter(|(key, router)| {
            router.flags & router_flags::PERMANENT != 0 && !permanent(key.ifindex)
        })
        .collect();
    for (key, mut router) in demoted {
        router.flags &= !router_flags::PERMANENT;
        router.last_query_ns = monotonic_ns();
        tables.routers.insert(key, router, 0)?;
    }
    Ok(())
}

/// Static router ports are kept for the untagged VLAN.
fn make_permanent_router(tables: &mut Tables, ifindex: u32) -> Result<()> {
    let key = RouterKey {
        ifindex,
        vlan: 0,
        inner_vlan: 0,
    };
    let mut router = tables.routers.get(&key, 0).unwrap_or_default();
    router.flags |= router_flags::PERMANENT;
    router.last_query_ns = monotonic_ns();
    tables.routers.insert(key, router, 0)?;
    Ok(())
}
