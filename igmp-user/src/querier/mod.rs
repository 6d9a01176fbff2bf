//! The snooping querier (RFC 4541 §2.1.1, RFC 3376 §6.6): when no other
//! querier is present, this switch sends the general queries that keep hosts
//! reporting, and the group-specific queries that follow a leave.

mod election;
mod frames;
mod sender;

use std::net::Ipv4Addr;

pub use election::{Querier, QuerierAction};
pub use frames::{
    encode_code, general_query, group_and_source_query, group_query, tagged, QueryVersion,
};
pub use sender::{interface_mac, QuerySender};

/// How this switch queries (`--querier`, `--querier-version`, `--querier-address`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerierSettings {
    /// Off by default, like the bridge's `mcast_querier`.
    pub enabled: bool,
    pub version: QueryVersion,
    /// Source of our queries; without one they come from 0.0.0.0 (a proxy querier).
    pub address: Option<Ipv4Addr>,
}
