//! MLD query frames as this switch sends them: Ethernet to 33:33 + the low
//! 32 bits of the destination (RFC 2464 §7), IPv6 with hop limit 1 from our
//! link-local address, a Hop-by-Hop header with Router Alert (RFC 2711, value
//! 0: MLD), and an ICMPv6 type 130 query, MLDv1 (RFC 2710 §3, 24 octets) or
//! MLDv2 (RFC 3810 §5.1, 28 octets and the sources), checksummed over the
//! IPv6 pseudo-header (RFC 8200 §8.1). Built whole, as IGMP's in `frames.rs`.

use std::{net::Ipv6Addr, time::Duration};

use super::frames::encode_code;
use crate::timers::Timers;

/// The MLD version of the queries this switch sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MldVersion {
    V1,
    V2,
}

/// ff02::1, where general queries go (RFC 3810 §5.1.15).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ICMPV6: u8 = 58;
const HOP_BY_HOP: u8 = 0;
const MLD_QUERY: u8 = 130;
/// Next header ICMPv6, length 0 (8 octets), Router Alert (type 5, length
/// 2, value 0: MLD), then PadN of 0 octets to fill the 8.
const HOP_BY_HOP_ROUTER_ALERT: [u8; 8] = [ICMPV6, 0, 5, 2, 0, 0, 1, 0];

/// A general query to ff02::1, asking for replies within the query response interval.
pub fn mld_general_query(
    version: MldVersion,
    source: Ipv6Addr,
    source_mac: [u8; 6],
    timers: &Timers,
) -> Vec<u8> {
    let message = mld_query(
        version,
        Ipv6Addr::UNSPECIFIED,
        &[],
        timers.query_response_interval,
        timers,
    );
    frame(source, source_mac, ALL_NODES, &message)
}

/// A multicast-address-specific query (`sources` empty), or an MLDv2
/// multicast-address-and-source-specific one, sent to the address itself
/// (RFC 3810 §5.1.15), asking for replies within the last
/// listener query interval (§7.4.2). MLDv1 names no sources.
pub fn mld_address_query(
    version: MldVersion,
    source: Ipv6Addr,
    source_mac: [u8; 6],
    group: Ipv6Addr,
    sources: &[Ipv6Addr],
    timers: &Timers,
) -> Vec<u8> {
    let sources = if version == MldVersion::V1 {
        &[]
    } else {
        sources
    };
    let message = mld_query(
        version,
        group,
        sources,
        timers.last_member_query_interval,
        timers,
    );
    frame(source, source_mac, group, &message)
}

/// The ICMPv6 message, with its checksum left at 0 (`frame` fills it in).
fn mld_query(
    version: MldVersion,
    group: Ipv6Addr,
    sources: &[Ipv6Addr],
    max_response: Duration,
    timers: &Timers,
) -> Vec<u8> {
    let millis = max_response.as_millis().min(u128::from(u32::MAX)) as u32;
    let max_response_field = match version {
        // RFC 2710 §3.4: Maximum Response Delay in milliseconds.
        MldVersion::V1 => millis.min(u32::from(u16::MAX)) as u16,
        MldVersion::V2 => encode_max_response_code(millis),
    };
    let mut message = vec![MLD_QUERY, 0, 0, 0];
    message.extend_from_slice(&max_response_field.to_be_bytes());
    message.extend_from_slice(&[0, 0]);
    message.extend_from_slice(&group.octets());
    if version == MldVersion::V2 {
        // RFC 3810 §5.1.8: a robustness above 7 goes as 0. S (§5.1.7) is
        // clear: this switch keeps no timers of the hosts' own to protect.
        let qrv = if timers.robustness > 7 {
            0
        } else {
            timers.robustness as u8
        };
        let qqic = encode_code(timers.query_interval.as_secs());
        message.extend_from_slice(&[qrv, qqic]);
        message.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        for address in sources {
            message.extend_from_slice(&address.octets());
        }
    }
    message
}

/// MLDv2's 16-bit Maximum Response Code (RFC 3810 §5.1.3): milliseconds
/// below 32768 as they are, larger ones as `1 exp(3) mant(12)` meaning
/// `(mant | 0x1000) << (exp + 3)`, rounded down.
pub fn encode_max_response_code(millis: u32) -> u16 {
    if millis < 32_768 {
        return millis as u16;
    }
    for exponent in 0..8u32 {
        let mantissa = millis >> (exponent + 3);
        if mantissa < 0x2000 {
            return 0x8000 | ((exponent as u16) << 12) | (mantissa as u16 & 0x0fff);
        }
    }
    0xffff
}

fn frame(source: Ipv6Addr, source_mac: [u8; 6], destination: Ipv6Addr, message: &[u8]) -> Vec<u8> {
    let octets = destination.octets();
    let mut frame = vec![0x33, 0x33];
    frame.extend_from_slice(&octets[12..16]);
    frame.extend_from_slice(&source_mac);
    frame.extend_from_slice(&0x86ddu16.to_be_bytes());
    let payload = (HOP_BY_HOP_ROUTER_ALERT.len() + message.len()) as u16;
    // Version 6, traffic class 0, flow label 0.
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&payload.to_be_bytes());
    frame.extend_from_slice(&[HOP_BY_HOP, 1]);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&octets);
    frame.extend_from_slice(&HOP_BY_HOP_ROUTER_ALERT);
    let at = frame.len();
    frame.extend_from_slice(message);
    let sum = icmpv6_checksum(source, destination, &frame[at..]);
    frame[at + 2..at + 4].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// The ICMPv6 checksum of `message` (whose checksum field is 0, or
/// filled in: then the result is 0) over the pseudo-header of RFC 8200 §8.1.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut bytes = Vec::with_capacity(40 + message.len());
    bytes.extend_from_slice(&source.octets());
    bytes.extend_from_slice(&destination.octets());
    bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, ICMPV6]);
    bytes.extend_from_slice(message);
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

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x10];
    const SOURCE: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0x10);
    const GROUP: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0x1234, 0x5678);

    /// The fields of a frame this module built, read back one by one.
    struct Decoded<'a> {
        destination_mac: &'a [u8],
        source_mac: &'a [u8],
        ethertype: u16,
        payload_length: usize,
        next_header: u8,
        hop_limit: u8,
        source: Ipv6Addr,
        destination: Ipv6Addr,
        hop_by_hop: &'a [u8],
        mld: &'a [u8],
    }

    fn decode(frame: &[u8]) -> Decoded<'_> {
        let address =
            |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&frame[at..at + 16]).unwrap());
        assert_eq!(frame[14] >> 4, 6, "IPv6");
        Decoded {
            destination_mac: &frame[..6],
            source_mac: &frame[6..12],
            ethertype: u16::from_be_bytes([frame[12], frame[13]]),
            payload_length: usize::from(u16::from_be_bytes([frame[18], frame[19]])),
            next_header: frame[20],
            hop_limit: frame[21],
            source: address(22),
            destination: address(38),
            hop_by_hop: &frame[54..62],
            mld: &frame[62..],
        }
    }

    fn check_common(decoded: &Decoded, destination: Ipv6Addr) {
        let octets = destination.octets();
        assert_eq!(decoded.destination_mac[..2], [0x33, 0x33]);
        assert_eq!(decoded.destination_mac[2..], octets[12..]);
        assert_eq!(decoded.source_mac, MAC);
        assert_eq!(decoded.ethertype, 0x86dd);
        assert_eq!(decoded.next_header, 0, "Hop-by-Hop first");
        assert_eq!(decoded.hop_limit, 1);
        assert_eq!(decoded.source, SOURCE);
        assert_eq!(decoded.destination, destination);
        assert_eq!(decoded.payload_length, 8 + decoded.mld.len());
        // Next header ICMPv6, 8 octets, Router Alert MLD, PadN.
        assert_eq!(decoded.hop_by_hop, [58, 0, 5, 2, 0, 0, 1, 0]);
        assert_eq!(decoded.mld[0], 130, "a query");
        assert_eq!(decoded.mld[1], 0, "code");
        assert_eq!(
            icmpv6_checksum(decoded.source, decoded.destination, decoded.mld),
            0,
            "the checksum over the pseudo-header adds up"
        );
    }

    #[test]
    fn v2_general_query_is_28_octets_to_all_nodes_with_qrv_and_qqic() {
        let frame = mld_general_query(MldVersion::V2, SOURCE, MAC, &Timers::default());
        let decoded = decode(&frame);
        check_common(&decoded, ALL_NODES);
        let mld = decoded.mld;
        assert_eq!(mld.len(), 28);
        assert_eq!(&mld[4..6], &10_000u16.to_be_bytes(), "10 s in ms");
        assert_eq!(&mld[6..8], &[0, 0], "reserved");
        assert_eq!(&mld[8..24], &[0; 16], "general: the unspecified address");
        assert_eq!(mld[24], 2, "S clear, QRV 2");
        assert_eq!(mld[25], 125, "QQIC 125 s");
        assert_eq!(&mld[26..28], &[0, 0], "no sources");
        assert_eq!(frame.len(), 14 + 40 + 8 + 28);
    }

    #[test]
    fn v1_general_query_is_24_octets_with_the_delay_in_milliseconds() {
        let frame = mld_general_query(MldVersion::V1, SOURCE, MAC, &Timers::default());
        let decoded = decode(&frame);
        check_common(&decoded, ALL_NODES);
        assert_eq!(decoded.mld.len(), 24);
        assert_eq!(&decoded.mld[4..6], &10_000u16.to_be_bytes());
        assert_eq!(&decoded.mld[8..24], &[0; 16]);
    }

    #[test]
    fn address_specific_query_goes_to_the_address_and_names_it() {
        for version in [MldVersion::V1, MldVersion::V2] {
            let frame = mld_address_query(version, SOURCE, MAC, GROUP, &[], &Timers::default());
            let decoded = decode(&frame);
            check_common(&decoded, GROUP);
            assert_eq!(
                decoded.destination_mac,
                [0x33, 0x33, 0x12, 0x34, 0x56, 0x78]
            );
            assert_eq!(&decoded.mld[4..6], &1000u16.to_be_bytes(), "LLQI 1 s");
            assert_eq!(&decoded.mld[8..24], &GROUP.octets());
        }
    }

    #[test]
    fn v2_address_and_source_query_lists_its_sources_and_v1_none() {
        let listed: Ipv6Addr = "2001:db8::9".parse().unwrap();
        let timers = Timers::default();
        let frame = mld_address_query(MldVersion::V2, SOURCE, MAC, GROUP, &[listed], &timers);
        let decoded = decode(&frame);
        check_common(&decoded, GROUP);
        assert_eq!(decoded.mld.len(), 28 + 16);
        assert_eq!(&decoded.mld[26..28], &[0, 1]);
        assert_eq!(&decoded.mld[28..44], &listed.octets());
        let v1 = mld_address_query(MldVersion::V1, SOURCE, MAC, GROUP, &[listed], &timers);
        assert_eq!(decode(&v1).mld.len(), 24);
    }

    #[test]
    fn max_response_codes_below_32768_are_literal_and_larger_ones_round_down() {
        let decode_code = |code: u16| -> u32 {
            if code < 0x8000 {
                return u32::from(code);
            }
            (u32::from(code & 0x0fff) | 0x1000) << (((code >> 12) & 0x07) + 3)
        };
        assert_eq!(encode_max_response_code(10_000), 10_000);
        for millis in [32_768u32, 40_000, 1_000_000, 8_387_584] {
            let decoded = decode_code(encode_max_response_code(millis));
            assert!(
                decoded <= millis && u64::from(decoded) * 4097 / 4096 >= u64::from(millis),
                "{millis} -> {decoded}"
            );
        }
    }
}
