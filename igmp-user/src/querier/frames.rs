//! Query frames as this switch sends them: Ethernet, IPv4 with Router Alert
//! and TTL 1, IGMP v2 or v3 (RFC 2236 §2, RFC 3376 §4.1).

use std::{net::Ipv4Addr, time::Duration};

use crate::timers::Timers;

/// The IGMP version of the queries this switch sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryVersion {
    V2,
    V3,
}

const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const IGMP_QUERY: u8 = 0x11;
/// IP Router Alert (RFC 2113), carried by every IGMP message.
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];
/// DSCP CS6 (internetwork control), as Linux marks its IGMP.
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;

/// A general query to 224.0.0.1, asking for replies within the query response interval.
pub fn general_query(
    version: QueryVersion,
    source: Ipv4Addr,
    source_mac: [u8; 6],
    timers: &Timers,
) -> Vec<u8> {
    let message = igmp_query(
        version,
        Ipv4Addr::UNSPECIFIED,
        timers.query_response_interval,
        timers,
    );
    frame(source, source_mac, ALL_HOSTS, &message)
}

/// A group-specific query, sent to the group itself (RFC 3376 §4.1.12),
/// asking for replies within the last member query interval.
pub fn group_query(
    version: QueryVersion,
    source: Ipv4Addr,
    source_mac: [u8; 6],
    group: Ipv4Addr,
    timers: &Timers,
) -> Vec<u8> {
    let message = igmp_query(version, group, timers.last_member_query_interval, timers);
    frame(source, source_mac, group, &message)
}

/// A group-and-source-specific query (IGMPv3 only, RFC 3376 §4.1.12) for
/// `sources` of `group`, sent to the group.
pub fn group_and_source_query(
    source: Ipv4Addr,
    source_mac: [u8; 6],
    group: Ipv4Addr,
    sources: &[Ipv4Addr],
    timers: &Timers,
) -> Vec<u8> {
    let mut message = igmp_query(
        QueryVersion::V3,
        group,
        timers.last_member_query_interval,
        timers,
    );
    message[10..12].copy_from_slice(&(sources.len() as u16).to_be_bytes());
    for address in sources {
        message.extend_from_slice(&address.octets());
    }
    message[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    frame(source, source_mac, group, &message)
}

/// `frame` with an 802.1Q tag of VLAN `vid` after its addresses, as a
/// query leaves a port whose copies of the VLAN are tagged.
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    const ADDRESSES: usize = 12;
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..ADDRESSES]);
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    out.extend_from_slice(&frame[ADDRESSES..]);
    out
}

fn igmp_query(
    version: QueryVersion,
    group: Ipv4Addr,
    max_response: Duration,
    timers: &Timers,
) -> Vec<u8> {
    let tenths = (max_response.as_millis() / 100) as u64;
    let mut message = match version {
        // v2: Max Resp Time in tenths of a second, one octet.
        QueryVersion::V2 => vec![IGMP_QUERY, tenths.min(255) as u8, 0, 0],
        QueryVersion::V3 => vec![IGMP_QUERY, encode_code(tenths), 0, 0],
    };
    message.extend_from_slice(&group.octets());
    if version == QueryVersion::V3 {
        let qrv = if timers.robustness > 7 {
            0
        } else {
            timers.robustness as u8
        };
        let qqic = encode_code(timers.query_interval.as_secs());
        message.extend_from_slice(&[qrv, qqic, 0, 0]);
    }
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    message
}

/// The 8-bit floating point code of Max Resp Code and QQIC (RFC 3376
/// §4.1.1, §4.1.7): values below 128 as they are, larger ones as
/// `1 exp(3) mant(4)` meaning `(mant | 0x10) << (exp + 3)`, rounded down.
pub fn encode_code(value: u64) -> u8 {
    if value < 128 {
        return value as u8;
    }
    for exponent in 0..8u32 {
        let mantissa = (value >> (exponent + 3)) as u32;
        if mantissa < 0x20 {
            return 0x80 | ((exponent as u8) << 4) | (mantissa as u8 & 0x0f);
        }
    }
    0xff
}

fn frame(source: Ipv4Addr, source_mac: [u8; 6], destination: Ipv4Addr, message: &[u8]) -> Vec<u8> {
    let octets = destination.octets();
    let mut frame = vec![0x01, 0x00, 0x5e, octets[1] & 0x7f, octets[2], octets[3]];
    frame.extend_from_slice(&source_mac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let header_len = 24;
    let total = (header_len + message.len()) as u16;
    let mut ip = vec![0x46, TOS_INTERNETWORK_CONTROL];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]);
    ip.extend_from_slice(&source.octets());
    ip.extend_from_slice(&octets);
    ip.extend_from_slice(&ROUTER_ALERT);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(message);
    frame
}

/// RFC 1071 checksum.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 200);

    fn decode(code: u8) -> u64 {
        if code < 128 {
            return u64::from(code);
        }
        (u64::from(code & 0x0f) | 0x10) << (((code >> 4) & 0x07) + 3)
    }

    #[test]
    fn codes_below_128_are_literal_and_larger_ones_round_trip_downwards() {
        assert_eq!(encode_code(100), 100);
        assert_eq!(encode_code(125), 125);
        for value in [128u64, 260, 1000, 31_744] {
            let decoded = decode(encode_code(value));
            assert!(
                decoded <= value && decoded * 17 / 16 >= value,
                "{value} -> {decoded}"
            );
        }
        assert_eq!(decode(encode_code(128)), 128);
    }

    #[test]
    fn a_tagged_query_carries_its_vlan_after_the_addresses() {
        let plain = general_query(QueryVersion::V2, SOURCE, MAC, &Timers::default());
        let tagged = tagged(&plain, 20);
        assert_eq!(tagged.len(), plain.len() + 4);
        assert_eq!(tagged[..12], plain[..12]);
        assert_eq!(tagged[12..16], [0x81, 0x00, 0, 20]);
        assert_eq!(tagged[16..], plain[12..]);
    }

    #[test]
    fn group_and_source_query_lists_its_sources() {
        let (group, listed) = (Ipv4Addr::new(232, 1, 1, 1), Ipv4Addr::new(192, 0, 2, 9));
        let frame = group_and_source_query(SOURCE, MAC, group, &[listed], &Timers::default());
        let igmp = &frame[38..];
        assert_eq!(igmp.len(), 16);
        assert_eq!(checksum(igmp), 0);
        assert_eq!(&igmp[10..12], &[0, 1]);
        assert_eq!(&igmp[12..16], &listed.octets());
    }

    #[test]
    fn v2_general_query_is_8_bytes_to_all_hosts_with_valid_checksums() {
        let frame = general_query(QueryVersion::V2, SOURCE, MAC, &Timers::default());
        assert_eq!(&frame[..6], &[0x01, 0x00, 0x5e, 0, 0, 1]);
        let (ip, igmp) = (&frame[14..38], &frame[38..]);
        assert_eq!(checksum(ip), 0);
        assert_eq!((ip[8], ip[9]), (1, 2), "TTL 1, protocol IGMP");
        assert_eq!(&ip[16..20], &[224, 0, 0, 1]);
        assert_eq!(igmp.len(), 8);
        assert_eq!(checksum(igmp), 0);
        assert_eq!((igmp[0], igmp[1]), (0x11, 100), "10 s in tenths");
        assert_eq!(&igmp[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn v3_group_query_goes_to_its_group_with_qrv_and_qqic() {
        let group = Ipv4Addr::new(239, 1, 2, 3);
        let frame = group_query(QueryVersion::V3, SOURCE, MAC, group, &Timers::default());
        assert_eq!(&frame[..6], &[0x01, 0x00, 0x5e, 1, 2, 3]);
        let igmp = &frame[38..];
        assert_eq!(igmp.len(), 12);
        assert_eq!(checksum(igmp), 0);
        assert_eq!(igmp[1], 10, "last member query interval, 1 s");
        assert_eq!(&igmp[4..8], &group.octets());
        assert_eq!((igmp[8], igmp[9]), (2, 125), "QRV 2, QQIC 125 s");
    }
}
