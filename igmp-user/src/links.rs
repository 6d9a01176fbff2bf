//! What rtnetlink says about the links: the notifications of interfaces
//! that appear, vanish, or whose bridge port changes STP state; each port's
//! kind and bridge settings, read once at start (`port_links`), with the
//! warnings they call for; whether a NIC hides the tags of the VLANs it
//! carries from XDP; and every interface's master, for the views.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use igmp_common::{port_vlan_flags, router_mode, PortVlan};
use netlink_packet_core::{NetlinkPayload, Nla as _};
use netlink_packet_route::{
    link::{
        AfSpecBridge, BridgeMulticastRouterType, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge,
        InfoBridgePort, InfoData, InfoPortData, LinkAttribute, LinkExtentMask, LinkInfo,
        LinkMessage, LinkProtoInfoBridge,
    },
    AddressFamily, RouteNetlinkMessage,
};
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

/// `IFLA_BRPORT_STATE` inside the bridge's `IFLA_PROTINFO`.
const IFLA_BRPORT_STATE: u16 = 1;

/// What the kernel said about a link.
#[derive(Debug, PartialEq, Eq)]
pub struct LinkNote {
    pub ifindex: u32,
    pub removed: bool,
    /// The bridge port state (`BR_STATE_*`), when the note comes from the bridge.
    pub stp_state: Option<u8>,
    /// The port's VLANs, in a note that carries them (a VLAN-filtering
    /// bridge's: `bridge vlan add/del` sends one).
    pub vlans: Option<PortVlans>,
}

/// A bridge port's VLANs, as `bridge vlan show` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortVlans {
    /// The VLAN of untagged frames, 0 for none (they are dropped).
    pub pvid: u16,
    /// Every VLAN the port is a member of, ascending.
    pub vids: Vec<u16>,
    /// Those of `vids` that leave the port untagged, ascending.
    pub untagged: Vec<u16>,
}

impl PortVlans {
    /// The port's `PORT_VLANS` entries: each VLAN, and how it leaves.
    pub fn entries(&self) -> Vec<(u16, PortVlan)> {
        self.vids
            .iter()
            .map(|&vid| {
                let untagged = self.untagged.binary_search(&vid).is_ok();
                let flags = if untagged {
                    port_vlan_flags::UNTAGGED
                } else {
                    0
                };
                (
                    vid,
                    PortVlan {
                        flags,
                        ..PortVlan::default()
                    },
                )
            })
            .collect()
    }
}

/// Subscribes to link notifications; each arrives on the returned channel.
pub fn watch() -> Result<mpsc::UnboundedReceiver<LinkNote>> {
    let (connection, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
            .context("subscribing to rtnetlink link notifications")?;
    tokio::spawn(connection);
    let (notes, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let note = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    note(&link, false)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    note(&link, true)
                }
                _ => continue,
            };
            if notes.send(note).is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

fn note(link: &LinkMessage, removed: bool) -> LinkNote {
    let from_bridge = link.header.interface_family == AddressFamily::Bridge;
    LinkNote {
        ifindex: link.header.index,
        removed,
        stp_state: from_bridge.then(|| bridge_port_state(link)).flatten(),
        vlans: from_bridge.then(|| port_vlans(link)).flatten(),
    }
}

fn bridge_port_state(link: &LinkMessage) -> Option<u8> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::ProtoInfoBridge(infos) => infos.iter().find_map(|info| match info {
                LinkProtoInfoBridge::Other(nla)
                    if nla.kind() == IFLA_BRPORT_STATE && nla.value_len() == 1 =>
                {
                    let mut state = [0u8; 1];
                    nla.emit_value(&mut state);
                    Some(state[0])
                }
                _ => None,
            }),
            _ => None,
        })
}

/// What rtnetlink says about a port at start: its kind and, when it is a
/// bridge port, the bridge's and the port's multicast settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortLink {
    pub name: String,
    /// The link kind (`veth`, `tun`, `vlan`, `bridge`, ...), `None` for a
    /// device driver's NIC (physical or virtio), which has none.
    pub kind: Option<String>,
    pub bridge: Option<BridgeLink>,
    /// The VLAN devices on the port (`eth1.10`): tagged frames arrive on it.
    pub vlan_devices: Vec<String>,
    /// The port takes the VLAN tag out of the frames it receives (rx VLAN
    /// offload, ethtool's `rx-vlan-offload`). Read only for a port that
    /// carries VLANs: elsewhere it changes nothing.
    pub strips_vlan_tags: bool,
}

impl PortLink {
    /// Whether tagged frames arrive on the port: a VLAN device sits on it,
    /// or its bridge filters VLANs.
    pub fn carries_vlans(&self) -> bool {
        !self.vlan_devices.is_empty()
            || self
                .bridge
                .as_ref()
                .is_some_and(|bridge| bridge.vlan_filtering)
    }

    /// Why native XDP would lose this port's VLAN tags, if it would: a NIC
    /// that strips the tags of the VLANs it carries hands native XDP each
    /// tagged frame untagged, its tag in the driver's metadata, which only a
    /// program bound to that device can read (`bpf_xdp_metadata_rx_vlan_tag`,
    /// Linux 6.8, not on every driver). Tagged reports would then be learned
    /// in the wrong VLAN and tagged data forwarded untagged.
    pub fn hides_vlan_tags_from_xdp(&self) -> Option<String> {
        if self.kind.is_some() || !self.strips_vlan_tags || !self.carries_vlans() {
            return None;
        }
        let carried = match self.vlan_devices.as_slice() {
            [] => format!(
                "the VLANs of {}",
                self.bridge
                    .as_ref()
                    .map_or("its bridge", |bridge| &bridge.name)
            ),
            devices => devices.join(", "),
        };
        Some(format!(
            "{} (rx-vlan-offload on, carries {carried})",
            self.name
        ))
    }
}

/// The bridge a port is in, and the port's own settings there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeLink {
    pub name: String,
    /// The bridge's own IGMP/MLD snooping (`mcast_snooping`).
    pub snooping: bool,
    /// VLAN filtering: the bridge tags and untags per port, which the tc
    /// classifier does too and a redirect in XDP would skip.
    pub vlan_filtering: bool,
    /// The port's `mcast_router` as a `router_mode::*` (`temp`, a router
    /// port until its timer runs out, is `auto`).
    pub port_router_mode: Option<u8>,
    /// The port's `mcast_fast_leave`.
    pub port_fast_leave: bool,
    /// On a VLAN-filtering bridge, the port's VLANs: its PVID is the VLAN
    /// its untagged frames belong to, which learning keys them by.
    pub port_vlans: Option<PortVlans>,
}

/// What the operator should change on the ports' bridges, one line each:
/// - a bridge whose own snooping is on too: two snoopers on one LAN, and two
///   querier candidates;
/// - a VLAN-filtering bridge whose own snooping is off: there igmp-snoop
///   leaves unregistered groups and reports to the bridge's per-VLAN
///   snooping, so without it they flood their VLAN.
pub fn bridge_warnings(port_links: &[PortLink]) -> Vec<String> {
    let mut bridges: Vec<&BridgeLink> = port_links
        .iter()
        .filter_map(|link| link.bridge.as_ref())
        .collect();
    bridges.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    bridges.dedup_by(|a, b| a.name == b.name);
    bridges
        .into_iter()
        .filter_map(|bridge| {
            let name = &bridge.name;
            match (bridge.vlan_filtering, bridge.snooping) {
                (false, true) => Some(format!(
                    "{name}: the bridge's own multicast snooping is on too (two snoopers, two querier \
                     candidates); turn it off with `ip link set {name} type bridge mcast_snooping 0` \
                     (its MLD snooping goes with it: igmp-snoop snoops MLD in its place)"
                )),
                (true, false) => Some(format!(
                    "{name} filters VLANs: igmp-snoop forwards registered groups there but leaves \
                     unregistered groups and reports to the bridge's per-VLAN snooping, which is \
                     off, so they flood their VLAN; turn it on with \
                     `ip link set {name} type bridge mcast_snooping 1 mcast_vlan_snooping 1`"
                )),
                _ => None,
            }
        })
        .collect()
}

/// Reads every port of `ports` (name, ifindex) and the bridge it is in.
pub async fn port_links(ports: &[(String, u32)]) -> Result<Vec<PortLink>> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let task = tokio::spawn(connection);
    let mut links = Vec::new();
    for (name, ifindex) in ports {
        let mut port_link = PortLink {
            name: name.clone(),
            ..PortLink::default()
        };
        if let Some(port) = link(&handle, *ifindex).await {
            port_link.kind = link_kind(&port);
            if let Some(master) = controller(&port) {
                if let Some(bridge) = link(&handle, master).await {
                    port_link.bridge = bridge_link(&bridge, &port);
                }
            }
        }
        links.push(port_link);
    }
    if links.iter().any(|link| {
        link.bridge
            .as_ref()
            .is_some_and(|bridge| bridge.vlan_filtering)
    }) {
        let mut vlans = bridge_vlans(&handle).await?;
        for (link, (_, ifindex)) in links.iter_mut().zip(ports) {
            if let Some(bridge) = link.bridge.as_mut().filter(|bridge| bridge.vlan_filtering) {
                bridge.port_vlans = Some(vlans.remove(ifindex).unwrap_or_default());
            }
        }
    }
    let mut devices = vlan_devices(&handle).await?;
    for (link, (_, ifindex)) in links.iter_mut().zip(ports) {
        link.vlan_devices = devices.remove(ifindex).unwrap_or_default();
    }
    task.abort();
    for link in links.iter_mut().filter(|link| link.carries_vlans()) {
        link.strips_vlan_tags = strips_vlan_tags(&link.name).await?;
    }
    Ok(links)
}

/// The VLAN devices (kind `vlan`) by the ifindex of the link they sit on.
async fn vlan_devices(handle: &rtnetlink::Handle) -> Result<BTreeMap<u32, Vec<String>>> {
    let mut by_link: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.next().await {
        let link = link.context("reading the VLAN devices")?;
        if link_kind(&link).as_deref() != Some("vlan") {
            continue;
        }
        let lower = link
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Link(lower) => Some(*lower),
                _ => None,
            });
        if let (Some(lower), Some(name)) = (lower, link_name(&link)) {
            by_link.entry(lower).or_default().push(name);
        }
    }
    Ok(by_link)
}

/// Whether the NIC `name` strips the VLAN tag of the frames it receives:
/// the active `rx-vlan-hw-parse` feature over ethtool netlink (ethtool -k
/// calls it `rx-vlan-offload`).
async fn strips_vlan_tags(name: &str) -> Result<bool> {
    let (connection, mut handle, _) =
        ethtool::new_connection().context("opening ethtool netlink")?;
    let task = tokio::spawn(connection);
    let read = async {
        let mut replies = handle.feature().get(Some(name)).execute().await?;
        let mut strips = false;
        while let Some(reply) = replies.next().await {
            for attribute in reply?.payload.nlas {
                if let ethtool::EthtoolAttr::Feature(ethtool::EthtoolFeatureAttr::Active(bits)) =
                    attribute
                {
                    strips |= bits
                        .iter()
                        .any(|bit| bit.name == "rx-vlan-hw-parse" && bit.value);
                }
            }
        }
        Ok::<bool, ethtool::EthtoolError>(strips)
    };
    let strips = read.await;
    task.abort();
    strips.with_context(|| format!("reading {name}'s offloads over ethtool netlink"))
}

/// The bridge `bridge` and `port`'s settings in it; `None` when the master
/// is no bridge (a bond, a VRF).
fn bridge_link(bridge: &LinkMessage, port: &LinkMessage) -> Option<BridgeLink> {
    let options = infos(bridge).find_map(|info| match info {
        LinkInfo::Data(InfoData::Bridge(options)) => Some(options),
        _ => None,
    })?;
    let port_options: &[InfoBridgePort] = infos(port)
        .find_map(|info| match info {
            LinkInfo::PortData(InfoPortData::BridgePort(options)) => Some(options.as_slice()),
            _ => None,
        })
        .unwrap_or_default();
    Some(BridgeLink {
        name: link_name(bridge).unwrap_or_default(),
        snooping: options.contains(&InfoBridge::MulticastSnooping(true)),
        vlan_filtering: options.contains(&InfoBridge::VlanFiltering(true)),
        port_router_mode: port_options.iter().find_map(|option| match option {
            InfoBridgePort::MulticastRouter(mode) => Some(match mode {
                BridgeMulticastRouterType::Disabled => router_mode::OFF,
                BridgeMulticastRouterType::Permanent => router_mode::PERMANENT,
                _ => router_mode::AUTO,
            }),
            _ => None,
        }),
        port_fast_leave: port_options.contains(&InfoBridgePort::FastLeave(true)),
        port_vlans: None,
    })
}

/// Every bridge port's VLANs, by ifindex: the bridge's VLAN table
/// (`RTEXT_FILTER_BRVLAN`), as `bridge vlan show` reads it.
async fn bridge_vlans(handle: &rtnetlink::Handle) -> Result<BTreeMap<u32, PortVlans>> {
    let mut by_port = BTreeMap::new();
    let mut links = handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
        .execute();
    while let Some(link) = links.next().await {
        let link = link.context("reading the bridges' VLANs")?;
        if let Some(vlans) = port_vlans(&link) {
            by_port.insert(link.header.index, vlans);
        }
    }
    Ok(by_port)
}

/// The port's VLANs in a bridge's message, if it lists them: single
/// entries, and ranges (`RangeBegin` .. `RangeEnd`) as the compressed form
/// of the notifications gives them.
fn port_vlans(link: &LinkMessage) -> Option<PortVlans> {
    let infos: Vec<&BridgeVlanInfo> = link
        .attributes
        .iter()
        .filter_map(|attribute| match attribute {
            LinkAttribute::AfSpecBridge(specs) => Some(specs),
            _ => None,
        })
        .flatten()
        .filter_map(|spec| match spec {
            AfSpecBridge::VlanInfo(info) => Some(info),
            _ => None,
        })
        .collect();
    if infos.is_empty() {
        return None;
    }
    let mut vlans = PortVlans::default();
    let mut range_start = None;
    for info in infos {
        if info.flags.contains(BridgeVlanInfoFlags::Pvid) {
            vlans.pvid = info.vid;
        }
        let range = if info.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
            range_start = Some(info.vid);
            continue;
        } else if let Some(start) = range_start.take() {
            start..=info.vid
        } else {
            info.vid..=info.vid
        };
        if info.flags.contains(BridgeVlanInfoFlags::Untagged) {
            vlans.untagged.extend(range.clone());
        }
        vlans.vids.extend(range);
    }
    for list in [&mut vlans.vids, &mut vlans.untagged] {
        list.sort_unstable();
        list.dedup();
    }
    Some(vlans)
}

fn infos(link: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    link.attributes
        .iter()
        .filter_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => Some(infos),
            _ => None,
        })
        .flatten()
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
}

fn link_kind(link: &LinkMessage) -> Option<String> {
    infos(link).find_map(|info| match info {
        LinkInfo::Kind(kind) => Some(kind.to_string()),
        _ => None,
    })
}

/// Every interface's master (its bridge) by name, keyed by the interface's
/// ifindex, as this process's network namespace sees them. Not from sysfs:
/// `/sys/class/net` shows the namespace it was mounted in, which under
/// `nsenter --net` is another one.
pub fn masters() -> Result<BTreeMap<u32, String>> {
    // A thread of its own: a runtime cannot be started inside another one.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(dump_masters())
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reading the interfaces' masters failed")))
    })
}

async fn dump_masters() -> Result<BTreeMap<u32, String>> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let task = tokio::spawn(connection);
    let mut names = BTreeMap::new();
    let mut controllers = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.next().await {
        let link = link.context("listing interfaces")?;
        let index = link.header.index;
        if let Some(master) = controller(&link) {
            controllers.insert(index, master);
        }
        if let Some(name) = link_name(&link) {
            names.insert(index, name);
        }
    }
    task.abort();
    Ok(controllers
        .into_iter()
        .filter_map(|(port, master)| Some((port, names.get(&master)?.clone())))
        .collect())
}

async fn link(handle: &rtnetlink::Handle, ifindex: u32) -> Option<LinkMessage> {
    handle
        .link()
        .get()
        .match_index(ifindex)
        .execute()
        .next()
        .await?
        .ok()
}

fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Controller(master) => Some(*master),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(vid: u16, flags: BridgeVlanInfoFlags) -> AfSpecBridge {
        AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid })
    }

    #[test]
    fn a_ports_vlans_are_read_with_their_ranges_and_its_pvid() {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::AfSpecBridge(vec![
            vlan(1, BridgeVlanInfoFlags::empty()),
            vlan(
                10,
                BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
            ),
            vlan(20, BridgeVlanInfoFlags::RangeBegin),
            vlan(23, BridgeVlanInfoFlags::RangeEnd),
            vlan(
                30,
                BridgeVlanInfoFlags::RangeBegin | BridgeVlanInfoFlags::Untagged,
            ),
            vlan(
                31,
                BridgeVlanInfoFlags::RangeEnd | BridgeVlanInfoFlags::Untagged,
            ),
        ]));
        let vlans = port_vlans(&message).unwrap();
        assert_eq!(
            vlans,
            PortVlans {
                pvid: 10,
                vids: vec![1, 10, 20, 21, 22, 23, 30, 31],
                untagged: vec![10, 30, 31],
            }
        );
        let untagged = |vid: u16| {
            vlans
                .entries()
                .iter()
                .find(|(entry, _)| *entry == vid)
                .map(|(_, port_vlan)| port_vlan.flags & port_vlan_flags::UNTAGGED != 0)
        };
        assert_eq!(
            (untagged(1), untagged(10), untagged(31), untagged(2)),
            (Some(false), Some(true), Some(true), None)
        );
        // A message without the VLAN list says nothing of the VLANs.
        assert_eq!(port_vlans(&LinkMessage::default()), None);
    }

    fn bridge(options: Vec<InfoBridge>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName("br0".into()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Data(
                InfoData::Bridge(options),
            )]));
        message
    }

    fn port(options: Vec<InfoBridgePort>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::PortData(
                InfoPortData::BridgePort(options),
            )]));
        message
    }

    #[test]
    fn the_bridge_options_and_the_ports_own_are_read() {
        let read = bridge_link(
            &bridge(vec![
                InfoBridge::VlanFiltering(true),
                InfoBridge::MulticastSnooping(true),
            ]),
            &port(vec![
                InfoBridgePort::MulticastRouter(BridgeMulticastRouterType::Permanent),
                InfoBridgePort::FastLeave(true),
            ]),
        )
        .unwrap();
        assert_eq!(
            read,
            BridgeLink {
                name: "br0".into(),
                snooping: true,
                vlan_filtering: true,
                port_router_mode: Some(router_mode::PERMANENT),
                port_fast_leave: true,
                // Read from the bridge's VLAN table, apart (`bridge_vlans`).
                port_vlans: None,
            }
        );
        let plain = bridge_link(
            &bridge(vec![InfoBridge::VlanFiltering(false)]),
            &port(vec![InfoBridgePort::MulticastRouter(
                BridgeMulticastRouterType::Temp,
            )]),
        )
        .unwrap();
        assert!(!plain.snooping && !plain.vlan_filtering && !plain.port_fast_leave);
        assert_eq!(plain.port_router_mode, Some(router_mode::AUTO));
        assert_eq!(bridge_link(&LinkMessage::default(), &port(vec![])), None);
    }

    fn port_in(bridge: &str, vlan_filtering: bool, snooping: bool) -> PortLink {
        PortLink {
            name: "p1".into(),
            kind: Some("veth".into()),
            bridge: Some(BridgeLink {
                name: bridge.into(),
                snooping,
                vlan_filtering,
                ..BridgeLink::default()
            }),
            ..PortLink::default()
        }
    }

    #[test]
    fn each_bridge_gets_the_warning_its_settings_call_for_once() {
        let snooping = [port_in("br0", false, true), port_in("br0", false, true)];
        let warnings = bridge_warnings(&snooping);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("mcast_snooping 0"), "{warnings:?}");
        let vlans = bridge_warnings(&[port_in("br1", true, false)]);
        assert_eq!(vlans.len(), 1);
        assert!(vlans[0].contains("mcast_vlan_snooping 1"), "{vlans:?}");
        assert!(bridge_warnings(&[port_in("br0", false, false)]).is_empty());
        assert!(bridge_warnings(&[port_in("br1", true, true)]).is_empty());
        assert!(bridge_warnings(&[PortLink::default()]).is_empty());
    }

    #[test]
    fn the_controller_is_the_port_master() {
        let mut port = LinkMessage::default();
        assert_eq!(controller(&port), None);
        port.attributes.push(LinkAttribute::Controller(7));
        assert_eq!(controller(&port), Some(7));
    }
}
