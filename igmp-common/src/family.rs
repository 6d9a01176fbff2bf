//! The address-family seam. IGMP (IPv4) and MLD (IPv6) keep parallel
//! tables: one set of maps per family, with the same key and value types
//! instantiated for each family's address bytes (`MembershipKey` is
//! `MembershipKey<[u8; 4]>`, IPv6's `MembershipKey<[u8; 16]>`), and user
//! space works on either through `Address`.
//!
//! Why parallel tables rather than one set with 16-byte addresses: the fast
//! path hashes 12-byte IPv4 keys at line rate instead of 24-byte ones (and
//! the verifier of the oldest kernels sees the same small stack); the pinned
//! IPv4 tables keep their layout, so an upgrade carries them over as they
//! are; and an IPv6 parser cannot write an IPv4 entry by mistake. What it
//! costs is generic code in user space, which this trait keeps to one
//! parameter.

use core::{fmt::Debug, hash::Hash, net::IpAddr};

/// An address family, as the views and metrics name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// `ipv4` or `ipv6`: the word in JSON, metrics labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

/// The bytes of one family's addresses, in network order, as the maps keep
/// them (`bpftool map dump` prints them as bytes).
pub trait Address: Copy + Default + Eq + Ord + Hash + Debug + sealed::Sealed + 'static {
    const FAMILY: Family;
    /// The unspecified address (0.0.0.0, ::).
    const UNSPECIFIED: Self;
    /// Trailing bytes that keep a value type holding one address free of
    /// implicit padding: none for IPv4, four for IPv6.
    type Pad: Copy + Default + Eq + Ord + Hash + Debug;

    fn ip(self) -> IpAddr;
}

impl Address for [u8; 4] {
    const FAMILY: Family = Family::Ipv4;
    const UNSPECIFIED: Self = [0; 4];
    type Pad = [u8; 0];

    fn ip(self) -> IpAddr {
        IpAddr::from(self)
    }
}

impl Address for [u8; 16] {
    const FAMILY: Family = Family::Ipv6;
    const UNSPECIFIED: Self = [0; 16];
    type Pad = [u8; 4];

    fn ip(self) -> IpAddr {
        IpAddr::from(self)
    }
}

mod sealed {
    /// Only the two families' byte arrays are addresses: the layout checks
    /// in `wire.rs` cover exactly these.
    pub trait Sealed {}
    impl Sealed for [u8; 4] {}
    impl Sealed for [u8; 16] {}
}
