//! The link-local address MLD queries come from. RFC 3810 §5.1.14 has
//! queries sent from a link-local address, and hosts drop the others (Linux:
//! `igmp6_event_query`), so unlike IGMP's (0.0.0.0 unless configured) an
//! MLD query always names a real one. The bridge queries from its own
//! address (`br_ip6_multicast_alloc_query`: `ipv6_dev_get_saddr` on the
//! bridge), so we do as well: the link-local address of the bridge the port
//! is in, else the port's own, else the EUI-64 one the kernel would give
//! the port (RFC 4291 §2.5.1), so that a port without IPv6 still queries.
//! It only reads: `getifaddrs(3)` (the kernel's RTM_GETADDR dump, as `ip
//! -6 addr` shows it) and the MAC.

use std::{ffi::CStr, net::Ipv6Addr};

/// The link-local address our MLD queries on `port` come from; `bridge`
/// is the bridge the port is in, if any. `None` only when the port has no
/// MAC to derive one from.
pub fn mld_query_source(
    port: &str,
    bridge: Option<&str>,
    mac: Option<[u8; 6]>,
) -> Option<Ipv6Addr> {
    let addresses = link_local_addresses();
    let of = |interface: &str| {
        addresses
            .iter()
            .filter(|(name, _)| name == interface)
            .map(|(_, address)| *address)
            .min()
    };
    bridge
        .and_then(of)
        .or_else(|| of(port))
        .or_else(|| mac.map(eui64_link_local))
}

/// The fe80::/64 address of EUI-64 interface identifier from `mac`: the
/// universal/local bit flipped, ff:fe in the middle (RFC 4291 appendix A).
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets[..2].copy_from_slice(&[0xfe, 0x80]);
    octets[8..11].copy_from_slice(&[mac[0] ^ 0x02, mac[1], mac[2]]);
    octets[11..13].copy_from_slice(&[0xff, 0xfe]);
    octets[13..].copy_from_slice(&mac[3..]);
    Ipv6Addr::from(octets)
}

/// Every link-local IPv6 address of the namespace, by interface name.
fn link_local_addresses() -> Vec<(String, Ipv6Addr)> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifaddr = unsafe { &*entry };
        entry = ifaddr.ifa_next;
        if ifaddr.ifa_addr.is_null() || ifaddr.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of its family.
        if i32::from(unsafe { (*ifaddr.ifa_addr).sa_family }) != libc::AF_INET6 {
            continue;
        }
        // SAFETY: an AF_INET6 ifa_addr is a sockaddr_in6.
        let address = unsafe { &*ifaddr.ifa_addr.cast::<libc::sockaddr_in6>() };
        let address = Ipv6Addr::from(address.sin6_addr.s6_addr);
        if !address.is_unicast_link_local() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(ifaddr.ifa_name) };
        found.push((name.to_string_lossy().into_owned(), address));
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_flips_the_universal_local_bit_and_puts_fffe_in_the_middle() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        assert_eq!(
            eui64_link_local(mac),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn without_an_address_anywhere_the_mac_gives_one() {
        let mac = [0x02, 0, 0, 0, 0, 1];
        assert_eq!(
            mld_query_source("no-such-port", Some("no-such-bridge"), Some(mac)),
            Some("fe80::ff:fe00:1".parse().unwrap())
        );
        assert_eq!(mld_query_source("no-such-port", None, None), None);
    }
}
