//! Link notifications from the kernel (rtnetlink): interfaces that appear,
//! vanish, or whose bridge port changes STP state.

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use netlink_packet_core::{NetlinkPayload, Nla as _};
use netlink_packet_route::{
    link::{InfoBridge, InfoData, LinkAttribute, LinkInfo, LinkMessage, LinkProtoInfoBridge},
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
    let stp_state = (link.header.interface_family == AddressFamily::Bridge)
        .then(|| bridge_port_state(link))
        .flatten();
    LinkNote {
        ifindex: link.header.index,
        removed,
        stp_state,
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

/// Whether any of `ports` belongs to a bridge with VLAN filtering on: there
/// the bridge tags and untags per port, which a redirect in XDP would skip.
pub async fn on_vlan_filtering_bridge(ports: &[u32]) -> Result<bool> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let task = tokio::spawn(connection);
    let mut filtering = false;
    for &port in ports {
        let Some(master) = link(&handle, port).await.and_then(|link| controller(&link)) else {
            continue;
        };
        if link(&handle, master)
            .await
            .is_some_and(|bridge| vlan_filtering(&bridge))
        {
            filtering = true;
            break;
        }
    }
    task.abort();
    Ok(filtering)
}

/// Each port's rtnetlink link kind (`veth`, `tun`, `vlan`, ...), or `None`
/// for a device driver's NIC (physical or virtio), which has none; by name.
pub async fn link_kinds(ports: &[(String, u32)]) -> Result<Vec<(String, Option<String>)>> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let task = tokio::spawn(connection);
    let mut kinds = Vec::new();
    for (name, ifindex) in ports {
        let kind = match *ifindex {
            0 => None,
            ifindex => link(&handle, ifindex).await.as_ref().and_then(link_kind),
        };
        kinds.push((name.clone(), kind));
    }
    task.abort();
    Ok(kinds)
}

fn link_kind(link: &LinkMessage) -> Option<String> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.to_string()),
                _ => None,
            }),
            _ => None,
        })
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

fn vlan_filtering(bridge: &LinkMessage) -> bool {
    bridge.attributes.iter().any(|attribute| match attribute {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|info| match info {
            LinkInfo::Data(InfoData::Bridge(options)) => {
                options.contains(&InfoBridge::VlanFiltering(true))
            }
            _ => false,
        }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::LinkInfo;

    use super::*;

    fn bridge(options: Vec<InfoBridge>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Data(
                InfoData::Bridge(options),
            )]));
        message
    }

    #[test]
    fn vlan_filtering_is_read_from_the_bridge_options() {
        assert!(vlan_filtering(&bridge(vec![InfoBridge::VlanFiltering(
            true
        )])));
        assert!(!vlan_filtering(&bridge(vec![InfoBridge::VlanFiltering(
            false
        )])));
        assert!(!vlan_filtering(&LinkMessage::default()));
    }

    #[test]
    fn the_controller_is_the_port_master() {
        let mut port = LinkMessage::default();
        assert_eq!(controller(&port), None);
        port.attributes.push(LinkAttribute::Controller(7));
        assert_eq!(controller(&port), Some(7));
    }
}
