//! The ports component: the snooped ports (`ports.rs`'s `PortSet`) and the
//! maps that describe them to the programs (`PORTS`, `EGRESS_PORTS`,
//! `PORT_LIST`). It follows ports that vanish, come back, change STP state
//! or get another PVID on a VLAN-filtering bridge, and reports each change;
//! the loop has the other components flush or refresh what goes with the port.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use aya::programs::ProgramFd;
use igmp_common::RouterKey;
use tracing::warn;

use crate::{
    links::LinkNote,
    ports::{PortChange, PortSet},
    tables::PortMaps,
};

use super::querying::{QueryPort, QueryPorts};

pub(super) struct SnoopedPorts {
    set: Option<PortSet>,
    maps: PortMaps,
    /// Every present snooped port, to find a group's members without a table scan.
    ifindexes: Vec<u32>,
}

impl SnoopedPorts {
    pub(super) fn new(maps: PortMaps) -> Self {
        Self {
            set: None,
            maps,
            ifindexes: Vec::new(),
        }
    }

    /// Takes charge of the ports: their options go to the maps.
    pub(super) fn adopt(&mut self, set: PortSet) -> Result<()> {
        set.publish(&mut self.maps)?;
        self.ifindexes = set.ifindexes();
        self.set = Some(set);
        Ok(())
    }

    /// Every present snooped port.
    pub(super) fn ifindexes(&self) -> &[u32] {
        &self.ifindexes
    }

    /// Where queries go, per VLAN (see `QueryPorts`).
    pub(super) fn query_ports(&self) -> QueryPorts {
        let mut by_vlan: BTreeMap<u16, Vec<QueryPort>> = BTreeMap::new();
        for (ifindex, vlans) in self.set.iter().flat_map(PortSet::vlan_layout) {
            for (vlan, tagged) in vlans {
                by_vlan
                    .entry(vlan)
                    .or_default()
                    .push(QueryPort { ifindex, tagged });
            }
        }
        QueryPorts(by_vlan)
    }

    /// Ports whose groups go at once when their last host leaves.
    pub(super) fn fast_leave(&self) -> HashSet<u32> {
        self.set
            .as_ref()
            .map(|set| set.fast_leave_ifindexes().into_iter().collect())
            .unwrap_or_default()
    }

    /// Ports configured as permanent router ports.
    pub(super) fn permanent_routers(&self) -> Vec<RouterKey> {
        self.set
            .as_ref()
            .map(PortSet::permanent_routers)
            .unwrap_or_default()
    }

    /// Whether some port has its own report or unregistered-group policy.
    pub(super) fn has_overrides(&self) -> bool {
        self.set.as_ref().is_some_and(PortSet::has_overrides)
    }

    /// The egress filter for destination sets' entries, as an fd of its own.
    pub(super) fn egress_filter(&self) -> Option<ProgramFd> {
        let set = self.set.as_ref()?;
        match set.egress_filter().and_then(|fd| Ok(fd.try_clone()?)) {
            Ok(fd) => Some(fd),
            Err(error) => {
                warn!("no egress filter for destination sets (every group broadcasts): {error:#}");
                None
            }
        }
    }

    /// An interface changed: ports that vanished leave the maps, ports that
    /// came back are attached again, and a port's STP state is followed.
    pub(super) fn follow(&mut self, note: &LinkNote) -> Vec<PortChange> {
        crate::interfaces::forget_interface_names();
        let Some(set) = self.set.as_mut() else {
            return Vec::new();
        };
        let mut changes = set.resync(&mut self.maps);
        if let Some(state) = note.stp_state.filter(|_| !note.removed) {
            changes.extend(set.stp_state(note.ifindex, state, &mut self.maps));
        }
        if let Some(vlans) = note.vlans.clone().filter(|_| !note.removed) {
            changes.extend(set.set_vlans(note.ifindex, vlans, &mut self.maps));
        }
        self.ifindexes = set.ifindexes();
        changes
    }

    /// Hands the ports back for release at shutdown.
    pub(super) fn take(&mut self) -> Option<PortSet> {
        self.set.take()
    }
}
