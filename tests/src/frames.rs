//! Frame builders shared by the BPF_PROG_TEST_RUN tests, the lab tests and
//! the benchmarks: Ethernet, VLAN tags, IPv4 (with options) and IGMP v1/v2/v3.

use std::net::Ipv4Addr;

pub const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
pub const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// IGMP message types.
pub const QUERY: u8 = 0x11;
pub const V1_REPORT: u8 = 0x12;
pub const V2_REPORT: u8 = 0x16;
pub const V2_LEAVE: u8 = 0x17;
pub const V3_REPORT: u8 = 0x22;

/// v3 group record types (RFC 3376 §4.2.12).
pub const MODE_IS_INCLUDE: u8 = 1;
pub const MODE_IS_EXCLUDE: u8 = 2;
pub const CHANGE_TO_INCLUDE: u8 = 3;
pub const CHANGE_TO_EXCLUDE: u8 = 4;
pub const ALLOW_NEW_SOURCES: u8 = 5;
pub const BLOCK_OLD_SOURCES: u8 = 6;

/// RFC 1071 checksum of `bytes` (odd lengths padded with a zero byte).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An 8-byte IGMP message (v1/v2 report, leave, v1/v2 query).
pub fn igmp_message(kind: u8, max_resp: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut message = vec![kind, max_resp, 0, 0];
    message.extend_from_slice(&group.octets());
    seal_igmp(message)
}

/// A v3 query (RFC 3376 §4.1).
pub fn v3_query(group: Ipv4Addr, max_resp: u8, qrv: u8, qqic: u8, sources: &[Ipv4Addr]) -> Vec<u8> {
    let mut message = vec![QUERY, max_resp, 0, 0];
    message.extend_from_slice(&group.octets());
    message.extend_from_slice(&[qrv & 0x07, qqic]);
    message.extend_from_slice(&(sources.len() as u16).to_be_bytes());
    for source in sources {
        message.extend_from_slice(&source.octets());
    }
    seal_igmp(message)
}

/// The same v3 query with its S flag (Suppress Router-Side Processing,
/// RFC 3376 §4.1.5) set.
pub fn suppressed(mut query: Vec<u8>) -> Vec<u8> {
    query[8] |= 0x08;
    seal_igmp(query)
}

/// One v3 group record.
#[derive(Clone, Debug)]
pub struct Record {
    pub kind: u8,
    pub group: Ipv4Addr,
    pub sources: Vec<Ipv4Addr>,
    /// Auxiliary data, a whole number of 32-bit words.
    pub aux_words: u8,
}

impl Record {
    pub fn new(kind: u8, group: Ipv4Addr, sources: &[Ipv4Addr]) -> Self {
        Self {
            kind,
            group,
            sources: sources.to_vec(),
            aux_words: 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.kind, self.aux_words]);
        out.extend_from_slice(&(self.sources.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.group.octets());
        for source in &self.sources {
            out.extend_from_slice(&source.octets());
        }
        out.extend(std::iter::repeat_n(0xaa, usize::from(self.aux_words) * 4));
    }
}

/// A v3 report carrying `records` (RFC 3376 §4.2).
pub fn v3_report(records: &[Record]) -> Vec<u8> {
    v3_report_claiming(records, records.len() as u16)
}

/// A v3 report whose Number of Group Records field says `claimed`.
pub fn v3_report_claiming(records: &[Record], claimed: u16) -> Vec<u8> {
    let mut message = vec![V3_REPORT, 0, 0, 0, 0, 0];
    message.extend_from_slice(&claimed.to_be_bytes());
    for record in records {
        record.encode(&mut message);
    }
    seal_igmp(message)
}

/// Writes the IGMP checksum (bytes 2..4).
pub fn seal_igmp(mut message: Vec<u8>) -> Vec<u8> {
    message[2] = 0;
    message[3] = 0;
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    message
}

/// Router Alert (RFC 2113), the option every IGMP message carries.
pub const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// An IPv4 packet around an IGMP message, with every header field settable
/// so that tests can break one at a time.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
    /// Options, a whole number of words (IHL = 5 + len / 4).
    pub options: Vec<u8>,
    /// Flags and fragment offset.
    pub fragment: u16,
    pub payload: Vec<u8>,
}

impl Ipv4 {
    /// IGMP from `source` to `destination`, TTL 1, with Router Alert.
    pub fn igmp(source: Ipv4Addr, destination: Ipv4Addr, message: Vec<u8>) -> Self {
        Self {
            source,
            destination,
            ttl: 1,
            protocol: 2,
            options: ROUTER_ALERT.to_vec(),
            fragment: 0,
            payload: message,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        let total = header_len + self.payload.len();
        let mut packet = vec![0x40 | (header_len / 4) as u8, 0xc0];
        packet.extend_from_slice(&(total as u16).to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&self.fragment.to_be_bytes());
        packet.extend_from_slice(&[self.ttl, self.protocol, 0, 0]);
        packet.extend_from_slice(&self.source.octets());
        packet.extend_from_slice(&self.destination.octets());
        packet.extend_from_slice(&self.options);
        let sum = checksum(&packet[..header_len]);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
        packet.extend_from_slice(&self.payload);
        packet
    }
}

/// The multicast MAC of an IPv4 group (RFC 1112 §6.4).
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let octets = group.octets();
    [0x01, 0x00, 0x5e, octets[1] & 0x7f, octets[2], octets[3]]
}

/// An Ethernet frame with optional VLAN tags (outermost first).
pub fn ethernet(
    destination: [u8; 6],
    tags: &[(u16, u16)],
    ether_type: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = destination.to_vec();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    for (tpid, vid) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A whole frame carrying `ip`, sent to the MAC of its IP destination.
pub fn frame(tags: &[(u16, u16)], ip: &Ipv4) -> Vec<u8> {
    ethernet(multicast_mac(ip.destination), tags, 0x0800, &ip.encode())
}

/// A v2 report for `group` from `host`, untagged, as a kernel host sends it.
pub fn v2_report(host: Ipv4Addr, group: Ipv4Addr) -> Vec<u8> {
    frame(
        &[],
        &Ipv4::igmp(host, group, igmp_message(V2_REPORT, 0, group)),
    )
}

/// A v3 report from `host`, untagged.
pub fn v3_report_frame(host: Ipv4Addr, records: &[Record]) -> Vec<u8> {
    frame(&[], &Ipv4::igmp(host, ALL_V3_ROUTERS, v3_report(records)))
}

/// A UDP datagram to `group` (multicast data), untagged unless `tags` say otherwise.
pub fn udp_data(
    tags: &[(u16, u16)],
    source: Ipv4Addr,
    group: Ipv4Addr,
    payload_len: usize,
) -> Vec<u8> {
    let mut udp = vec![0x13, 0x88, 0x13, 0x88];
    udp.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend(std::iter::repeat_n(0x5a, payload_len));
    let ip = Ipv4 {
        source,
        destination: group,
        ttl: 16,
        protocol: 17,
        options: Vec::new(),
        fragment: 0,
        payload: udp,
    };
    frame(tags, &ip)
}

/// The frames of `frames` that are UDP datagrams from `source` to `group`.
pub fn datagrams(frames: &[Vec<u8>], source: Ipv4Addr, group: Ipv4Addr) -> usize {
    frames
        .iter()
        .filter(|frame| is_datagram(frame, source, group))
        .count()
}

/// Whether `frame` is an untagged IPv4 UDP datagram from `source` to `group`.
pub fn is_datagram(frame: &[u8], source: Ipv4Addr, group: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x00]
        && frame[23] == 17
        && frame[26..30] == source.octets()
        && frame[30..34] == group.octets()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_sealed_message_is_zero() {
        let message = igmp_message(V2_REPORT, 0, Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(checksum(&message), 0);
        let ip = Ipv4::igmp(Ipv4Addr::new(10, 0, 0, 1), ALL_V3_ROUTERS, message).encode();
        assert_eq!(checksum(&ip[..24]), 0);
    }
}
