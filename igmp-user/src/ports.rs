//! The snooped ports: the XDP program attached to each, their options
//! (router mode, fast leave) written where the program reads them, and their
//! comings and goings (deleted and re-created interfaces, STP state).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use aya::{programs::ProgramFd, Ebpf};
use igmp_common::{router_mode, PortSettings, RouterKey};
use tracing::{debug, info, warn};

use crate::{
    interfaces,
    links::PortVlans,
    loader::{self, Attachment, PortMode},
    settings::PortOptions,
    tables::PortMaps,
};

/// The options of one snooped port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// 0 while the interface does not exist.
    pub ifindex: u32,
    pub options: PortOptions,
}

/// Linux bridge port states (`BR_STATE_*`) in which a port forwards nothing,
/// so its IGMP is not learned from and its memberships are flushed.
const STP_STATES_NOT_FORWARDING: [u8; 3] = [
    0, /* disabled */
    1, /* listening */
    4, /* blocking */
];

/// A port that disappeared or came back.
#[derive(Debug, PartialEq, Eq)]
pub enum PortChange {
    /// The interface is gone: its entries (under the old ifindex) must go too.
    Gone {
        name: String,
        ifindex: u32,
    },
    /// The interface exists again, under a new ifindex, with the program attached.
    Back {
        name: String,
        ifindex: u32,
    },
    /// The bridge stopped forwarding on the port (STP): its entries must go.
    Blocked {
        name: String,
        ifindex: u32,
    },
    Unblocked {
        name: String,
        ifindex: u32,
    },
    /// The bridge changed the port's VLANs (`bridge vlan add/del`): its
    /// entries in those it `left` must go, as the bridge's own do, and a
    /// permanent router port is one in each VLAN it has now.
    Vlans {
        name: String,
        ifindex: u32,
        left: Vec<u16>,
    },
}

impl std::fmt::Display for PortChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, ifindex, what) = match self {
            Self::Gone { name, ifindex } => (name, ifindex, "gone: its entries are removed"),
            Self::Back { name, ifindex } => (name, ifindex, "back: attached again"),
            Self::Blocked { name, ifindex } => (
                name,
                ifindex,
                "blocked by the bridge (STP): its entries are removed",
            ),
            Self::Unblocked { name, ifindex } => (name, ifindex, "forwarding again"),
            Self::Vlans {
                name,
                ifindex,
                left,
            } if left.is_empty() => (name, ifindex, "has new VLANs"),
            Self::Vlans {
                name,
                ifindex,
                left,
            } => {
                return write!(
                    f,
                    "port {name} (ifindex {ifindex}) left VLANs {left:?}: its entries there are removed"
                )
            }
        };
        write!(f, "port {name} (ifindex {ifindex}) {what}")
    }
}

struct Port {
    plan: PortPlan,
    attachment: Option<Attachment>,
    blocked: bool,
}

/// Owns the loaded program and its attachments for the daemon's lifetime.
pub struct PortSet {
    ebpf: Ebpf,
    mode: PortMode,
    pin_dir: PathBuf,
    ports: Vec<Port>,
}

impl PortSet {
    /// Attaches to every port of `plan`; if one fails, the ports attached so
    /// far by this run are detached again and the error returned.
    pub fn attach(
        mut ebpf: Ebpf,
        plan: Vec<PortPlan>,
        mode: PortMode,
        pin_dir: PathBuf,
    ) -> Result<Self> {
        let mut ports = Vec::new();
        for port in plan {
            match loader::attach(&mut ebpf, &port.options.name, mode, &pin_dir) {
                Ok(attachment) => {
                    log_attached(&port.options.name, &attachment, mode);
                    ports.push(Port {
                        plan: port,
                        attachment: Some(attachment),
                        blocked: false,
                    });
                }
                Err(error) => {
                    detach_new(ports);
                    return Err(error);
                }
            }
        }
        Ok(Self {
            ebpf,
            mode,
            pin_dir,
            ports,
        })
    }

    pub fn ifindexes(&self) -> Vec<u32> {
        self.ports
            .iter()
            .map(|port| port.plan.ifindex)
            .filter(|index| *index != 0)
            .collect()
    }

    /// Each present port's VLANs, each with whether it leaves the port
    /// tagged: on a VLAN-filtering bridge the bridge's, elsewhere the
    /// untagged VLAN 0 alone.
    pub fn vlan_layout(&self) -> Vec<(u32, Vec<(u16, bool)>)> {
        self.ports
            .iter()
            .filter(|port| port.plan.ifindex != 0)
            .map(|port| {
                let vlans = match &port.plan.options.vlans {
                    Some(vlans) => vlans
                        .vids
                        .iter()
                        .map(|vid| (*vid, vlans.untagged.binary_search(vid).is_err()))
                        .collect(),
                    None => vec![(0, false)],
                };
                (port.plan.ifindex, vlans)
            })
            .collect()
    }

    /// Whether some port has its own report or unregistered-group policy.
    pub fn has_overrides(&self) -> bool {
        self.ports.iter().any(|port| {
            port.plan.options.flood_reports
                || port.plan.options.unregistered != igmp_common::unregistered::FOLLOW_GLOBAL
        })
    }

    pub fn fast_leave_ifindexes(&self) -> Vec<u32> {
        self.ports
            .iter()
            .filter(|port| port.plan.options.fast_leave && port.plan.ifindex != 0)
            .map(|port| port.plan.ifindex)
            .collect()
    }

    /// Makes the maps say what the plan says, replacing what an earlier run left.
    pub fn publish(&self, maps: &mut PortMaps) -> Result<()> {
        let stale: Vec<u32> = maps.ports.keys().filter_map(Result::ok).collect();
        for ifindex in stale {
            let _ = maps.ports.remove(&ifindex);
        }
        let stale: Vec<u32> = maps.egress_ports.keys().filter_map(Result::ok).collect();
        for ifindex in stale {
            let _ = maps.egress_ports.remove(ifindex);
        }
        for port in self.ports.iter().filter(|port| port.plan.ifindex != 0) {
            self.add_egress(maps, port.plan.ifindex)?;
        }
        maps.write_port_list(&self.ifindexes())?;
        maps.keep_port_vlans_of(&self.ifindexes());
        for port in self.ports.iter().filter(|port| port.plan.ifindex != 0) {
            write_settings(maps, port)?;
            write_vlans(maps, port)?;
        }
        Ok(())
    }

    /// The ports configured as permanent router ports, present and
    /// forwarding, in each VLAN they are in (on a VLAN-filtering bridge
    /// each of theirs, elsewhere the untagged one): the membership component
    /// keeps these `ROUTER_PORTS` entries.
    pub fn permanent_routers(&self) -> Vec<RouterKey> {
        self.ports
            .iter()
            .filter(|port| port.plan.options.router_mode == router_mode::PERMANENT)
            .filter(|port| !port.blocked && port.plan.ifindex != 0)
            .flat_map(|port| {
                let vids = match &port.plan.options.vlans {
                    Some(vlans) => vlans.vids.clone(),
                    None => vec![0],
                };
                vids.into_iter().map(|vlan| RouterKey {
                    ifindex: port.plan.ifindex,
                    vlan,
                    inner_vlan: 0,
                })
            })
            .collect()
    }

    /// Compares every port with the interfaces that exist now: a port whose
    /// interface vanished is dropped from the maps, one that came back is
    /// attached again.
    pub fn resync(&mut self, maps: &mut PortMaps) -> Vec<PortChange> {
        let mut changes = Vec::new();
        for index in 0..self.ports.len() {
            let now =
                interfaces::interface_index(&self.ports[index].plan.options.name).unwrap_or(0);
            let known = self.ports[index].plan.ifindex;
            if now == known {
                continue;
            }
            if known != 0 {
                changes.push(self.forget(index, maps));
            }
            if now != 0 {
                if let Some(change) = self.reattach(index, now, maps) {
                    changes.push(change);
                }
            }
        }
        changes
    }

    fn forget(&mut self, index: usize, maps: &mut PortMaps) -> PortChange {
        let port = &mut self.ports[index];
        let ifindex = port.plan.ifindex;
        // The kernel detached the program with the interface; the pin is all that is left.
        if let Some(attachment) = port.attachment.take() {
            let _ = attachment.detach();
        }
        let _ = maps.ports.remove(&ifindex);
        let _ = maps.egress_ports.remove(ifindex);
        let _ = maps.write_port_vlans(ifindex, &[]);
        port.plan.ifindex = 0;
        let name = port.plan.options.name.clone();
        if let Err(error) = maps.write_port_list(&self.ifindexes()) {
            warn!("{name}: {error:#}");
        }
        PortChange::Gone { name, ifindex }
    }

    fn reattach(&mut self, index: usize, ifindex: u32, maps: &mut PortMaps) -> Option<PortChange> {
        let name = self.ports[index].plan.options.name.clone();
        match loader::attach(&mut self.ebpf, &name, self.mode, &self.pin_dir) {
            Ok(attachment) => {
                let port = &mut self.ports[index];
                port.attachment = Some(attachment);
                port.plan.ifindex = ifindex;
                port.blocked = false;
                rewrite_settings(maps, port);
                if let Err(error) = write_vlans(maps, port) {
                    warn!("{error:#}");
                }
                if let Err(error) = self.add_egress(maps, ifindex) {
                    warn!("{name}: {error:#}");
                }
                if let Err(error) = maps.write_port_list(&self.ifindexes()) {
                    warn!("{name}: {error:#}");
                }
                Some(PortChange::Back { name, ifindex })
            }
            Err(error) => {
                warn!("{name} is back but could not be attached: {error:#}");
                None
            }
        }
    }

    /// The egress filter every devmap entry carries.
    pub fn egress_filter(&self) -> Result<&ProgramFd> {
        loader::egress_program_fd(&self.ebpf)
    }

    /// Makes port `ifindex` a destination of the fast path, behind the egress filter.
    fn add_egress(&self, maps: &mut PortMaps, ifindex: u32) -> Result<()> {
        let filter = loader::egress_program_fd(&self.ebpf)?;
        maps.egress_ports
            .insert(ifindex, ifindex, Some(filter), 0)
            .with_context(|| format!("adding ifindex {ifindex} to the EGRESS_PORTS devmap"))
    }

    /// The bridge changed the STP state of port `ifindex`.
    pub fn stp_state(
        &mut self,
        ifindex: u32,
        state: u8,
        maps: &mut PortMaps,
    ) -> Option<PortChange> {
        let port = self
            .ports
            .iter_mut()
            .find(|port| port.plan.ifindex == ifindex)?;
        let blocked = STP_STATES_NOT_FORWARDING.contains(&state);
        if blocked == port.blocked {
            return None;
        }
        port.blocked = blocked;
        rewrite_settings(maps, port);
        let name = port.plan.options.name.clone();
        Some(if blocked {
            PortChange::Blocked { name, ifindex }
        } else {
            PortChange::Unblocked { name, ifindex }
        })
    }

    /// The bridge changed port `ifindex`'s VLANs (`bridge vlan`): its
    /// untagged frames are learned in the new PVID from now on, and the
    /// VLANs it left are handed back so that their entries go.
    pub fn set_vlans(
        &mut self,
        ifindex: u32,
        vlans: PortVlans,
        maps: &mut PortMaps,
    ) -> Option<PortChange> {
        let port = self
            .ports
            .iter_mut()
            .find(|port| port.plan.ifindex == ifindex)?;
        // A bridge that does not filter VLANs still announces its ports'
        // default PVID (1) where the kernel has VLAN filtering built in;
        // there a tag makes no LAN of its own, and all is learned in VLAN 0.
        let Some(known) = port.plan.options.vlans.as_mut() else {
            debug!(
                port = port.plan.options.name,
                "VLANs of a port whose bridge does not filter VLANs: not followed"
            );
            return None;
        };
        let before = std::mem::replace(known, vlans.clone());
        if let Err(error) = write_vlans(maps, port) {
            warn!("{error:#}");
        }
        if before.pvid != vlans.pvid {
            rewrite_settings(maps, port);
            info!(
                port = port.plan.options.name,
                vid = vlans.pvid,
                "untagged frames learned in the port's new PVID"
            );
        }
        let left: Vec<u16> = before
            .vids
            .iter()
            .copied()
            .filter(|vid| !vlans.vids.contains(vid))
            .collect();
        (before.vids != vlans.vids).then(|| PortChange::Vlans {
            name: port.plan.options.name.clone(),
            ifindex,
            left,
        })
    }

    /// At shutdown: detaches every port, or leaves them attached for a later daemon.
    pub fn release(self, keep_attached: bool) -> Result<()> {
        if keep_attached {
            info!("leaving the program attached (--keep-attached)");
        } else {
            for port in self.ports {
                if let Some(attachment) = port.attachment {
                    info!("detaching from {}", port.plan.options.name);
                    attachment.detach()?;
                }
            }
        }
        drop(self.ebpf);
        Ok(())
    }

    /// After a failed start: undoes this run's own attachments only.
    pub fn abandon(self) {
        detach_new(self.ports);
    }
}

fn log_attached(name: &str, attachment: &Attachment, mode: PortMode) {
    if attachment.adopted {
        info!(
            "took over the attachment of {name} left by a previous daemon ({})",
            mode.hook()
        );
    } else {
        info!("attached to {name} ({})", mode.hook());
    }
}

/// Links taken over from a previous daemon stay: forwarding through them must not stop.
fn detach_new(ports: Vec<Port>) {
    for attachment in ports.into_iter().filter_map(|port| port.attachment) {
        if !attachment.adopted {
            let _ = attachment.detach();
        }
    }
}

/// `write_settings` for a change while the daemon runs: a failure is
/// logged (the error names the port) and the daemon goes on.
fn rewrite_settings(maps: &mut PortMaps, port: &Port) {
    if let Err(error) = write_settings(maps, port) {
        warn!("{error:#}");
    }
}

fn write_settings(maps: &mut PortMaps, port: &Port) -> Result<()> {
    let options = &port.plan.options;
    let settings = PortSettings {
        router_mode: options.router_mode,
        fast_leave: u8::from(options.fast_leave),
        blocked: u8::from(port.blocked),
        flood_reports: u8::from(options.flood_reports),
        unregistered: options.unregistered,
        max_groups: options.max_groups,
        report_rate: options.report_rate,
        report_burst: options.report_burst,
        vlan_filtering: u8::from(options.vlans.is_some()),
        pvid: options.vlans.as_ref().map_or(0, |vlans| vlans.pvid),
        ..PortSettings::default()
    };
    maps.ports
        .insert(port.plan.ifindex, settings, 0)
        .with_context(|| {
            format!(
                "{}: writing its options to the PORTS map",
                port.plan.options.name
            )
        })
}

/// The port's VLANs where the tc classifier reads them: what it may take in
/// and how each VLAN leaves it.
fn write_vlans(maps: &mut PortMaps, port: &Port) -> Result<()> {
    let entries = port
        .plan
        .options
        .vlans
        .as_ref()
        .map(PortVlans::entries)
        .unwrap_or_default();
    maps.write_port_vlans(port.plan.ifindex, &entries)
        .with_context(|| format!("{}: writing its VLANs", port.plan.options.name))
}
