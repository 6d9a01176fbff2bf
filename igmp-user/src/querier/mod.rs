//! The snooping querier (RFC 4541 §2.1.1, RFC 3376 §6.6, RFC 3810 §7.6):
//! when no other querier is present, this switch sends the general queries
//! that keep hosts reporting, and the group-specific queries that follow a
//! leave; IGMP's and MLD's, each family with its own election.

mod election;
mod frames;
mod link_local;
mod mld_frames;
mod sender;

use std::net::Ipv4Addr;

pub use election::{Querier, QuerierAction, QuerierAddress};
pub use frames::{
    encode_code, general_query, group_and_source_query, group_query, tagged, QueryVersion,
};
pub use link_local::mld_query_source;
pub use mld_frames::{mld_address_query, mld_general_query, MldVersion};
pub use sender::{interface_mac, QuerySender};

/// How this switch queries (`--querier`, `--querier-version`,
/// `--mld-querier-version`, `--querier-address`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerierSettings {
    /// Off by default, like the bridge's `mcast_querier`. Switches on both
    /// families' queriers, as `mcast_querier 1` does on the bridge: IGMP's
    /// with `version` and `address`, MLD's with `mld_version` from a
    /// link-local address (`link_local`).
    pub enabled: bool,
    pub version: QueryVersion,
    pub mld_version: MldVersion,
    /// Source of our queries; without one they come from 0.0.0.0 (a proxy querier).
    pub address: Option<Ipv4Addr>,
}
