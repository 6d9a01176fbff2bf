//! The option enums that both the flags and the configuration file take,
//! and the components that act on them read, and what a group option may name. A leaf: it imports nothing of
//! this crate, so `cli`, `config`, `settings`, the loader and the daemon
//! all build on it without importing each other.

use igmp_common::{RouterMode, Unregistered};
use serde::Deserialize;

/// Whether `group` is one a port can be a member of: multicast and outside
/// 224.0.0.0/24, which is always flooded (RFC 4541 §2.1.2). For the static
/// groups the operator names, in the file and through `mdb add`.
pub fn is_snooped_group(group: std::net::Ipv4Addr) -> bool {
    group.is_multicast() && group.octets()[..3] != [224, 0, 0]
}

/// The same for IPv6: multicast of link scope or wider (RFC 4291 §2.7),
/// and not ff02::1, which every node joins and is always flooded (RFC 4541
/// §3). Other link-scope groups (solicited-node, ff02::2) are snooped as the
/// bridge does.
pub fn is_snooped_group6(group: std::net::Ipv6Addr) -> bool {
    let scope = group.octets()[1] & 0x0f;
    group.is_multicast()
        && scope > 1
        && group != std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
}

/// What happens to multicast data for groups no port joined (`--unregistered`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnregisteredPolicy {
    /// As the bridge: to router ports while a querier is known, flooded
    /// before and once it fell silent.
    #[default]
    Auto,
    Flood,
    Routers,
    Drop,
}

impl UnregisteredPolicy {
    /// The switch-wide code the fast path applies, resolved as the bridge
    /// does (`br_multicast_querier_exists`): `auto` follows whether a querier is known.
    pub fn resolved(self, querier_known: bool) -> Unregistered {
        match self {
            Self::Auto if querier_known => Unregistered::Routers,
            Self::Auto | Self::Flood => Unregistered::Flood,
            Self::Routers => Unregistered::Routers,
            Self::Drop => Unregistered::Drop,
        }
    }

    /// A port's own policy: `auto` follows the switch-wide one.
    pub fn for_port(self) -> Unregistered {
        match self {
            Self::Auto => Unregistered::FollowGlobal,
            Self::Flood => Unregistered::Flood,
            Self::Routers => Unregistered::Routers,
            Self::Drop => Unregistered::Drop,
        }
    }
}

/// How the program is to be attached, as the flags and the file ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// Native XDP when every port is a NIC, the tc classifier on every port
    /// when some port is virtual (veth, tap, ...): see `loader::PortMode::choose`.
    #[default]
    Auto,
    /// Driver (native) XDP: the fast path for NICs. Fails on drivers without XDP support.
    Native,
    /// Generic (skb) XDP: works on any interface, at kernel-stack speed.
    Generic,
    /// The tc ingress classifier (clsact): the fast path for ports whose
    /// frames arrive as skbs (veth, tap); works on any interface.
    Tc,
}

/// The bridge's `multicast_router` 0 / 1 / 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterModeName {
    Off,
    #[default]
    Auto,
    Permanent,
}

impl From<RouterModeName> for RouterMode {
    fn from(name: RouterModeName) -> Self {
        match name {
            RouterModeName::Off => Self::Off,
            RouterModeName::Auto => Self::Auto,
            RouterModeName::Permanent => Self::Permanent,
        }
    }
}
