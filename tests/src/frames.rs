//! Frame builders shared by the BPF_PROG_TEST_RUN tests, the lab tests and
//! the benchmarks: Ethernet, VLAN tags, IPv4 (with options) and IGMP v1/v2/v3;
//! IPv6 (with an extension-header chain), ICMPv6 and MLD v1/v2. Builders make
//! valid frames; a test breaks one field after building.

use std::net::{Ipv4Addr, Ipv6Addr};

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

/// Whether `frame` is an untagged IGMP report from `host` naming `group`
/// (v2: the group field; v3: the first record's group).
pub fn is_report_for(frame: &[u8], host: Ipv4Addr, group: Ipv4Addr) -> bool {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 2 {
        return false;
    }
    if frame[26..30] != host.octets() {
        return false;
    }
    let Some(igmp) = frame.get(14 + usize::from(frame[14] & 0x0f) * 4..) else {
        return false;
    };
    match igmp.first() {
        Some(&V2_REPORT) => igmp.get(4..8) == Some(&group.octets()[..]),
        Some(&V3_REPORT) => igmp.get(12..16) == Some(&group.octets()[..]),
        _ => false,
    }
}

// ---- IPv6 and MLD -------------------------------------------------------

/// ff02::1, all nodes: where general queries go (RFC 3810 §5.1.15).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All PIM routers: where PIMv6 hellos go (RFC 7761 §4.9.2).
pub const ALL_PIM_ROUTERS_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xd);
/// ff02::2, all routers: where MLDv1 Done goes (RFC 2710 §3.7).
pub const ALL_ROUTERS_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// ff02::16, all MLDv2-capable routers: where MLDv2 reports go (RFC 3810 §5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// MLD message types (ICMPv6 types, RFC 2710 §3, RFC 3810 §5).
pub const MLD_QUERY: u8 = 130;
pub const MLD_V1_REPORT: u8 = 131;
pub const MLD_DONE: u8 = 132;
pub const MLD_V2_REPORT: u8 = 143;

/// IPv6 next-header values.
pub const NEXT_HOP_BY_HOP: u8 = 0;
pub const NEXT_ROUTING: u8 = 43;
pub const NEXT_FRAGMENT: u8 = 44;
pub const NEXT_DESTINATION_OPTIONS: u8 = 60;
pub const NEXT_ICMPV6: u8 = 58;
pub const NEXT_UDP: u8 = 17;
pub const NEXT_NONE: u8 = 59;

/// The Router Alert option (RFC 2711) with value 0, "MLD", as every MLD
/// message carries it in its Hop-by-Hop header.
pub const ROUTER_ALERT_MLD: [u8; 4] = [0x05, 0x02, 0x00, 0x00];

/// The link-local address fe80::`iid`.
pub const fn link_local(iid: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, iid)
}

/// The solicited-node group of `address` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// One IPv6 extension header (RFC 8200 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtHeader {
    /// Hop-by-Hop Options: these options, padded to a multiple of 8 octets.
    HopByHop(Vec<u8>),
    /// Destination Options: these options, padded likewise.
    DestinationOptions(Vec<u8>),
    /// A Routing header of type 0 segments left 0 with `addresses`.
    Routing(Vec<Ipv6Addr>),
    /// A Fragment header: offset in 8-octet units and the M flag.
    Fragment { offset: u16, more: bool },
}

impl ExtHeader {
    /// The Hop-by-Hop header every MLD message has: Router Alert MLD, PadN.
    pub fn router_alert() -> Self {
        Self::HopByHop(ROUTER_ALERT_MLD.to_vec())
    }

    /// A Hop-by-Hop header with only padding (no Router Alert).
    pub fn hop_by_hop_without_router_alert() -> Self {
        Self::HopByHop(Vec::new())
    }

    /// The next-header value announcing this header.
    pub fn code(&self) -> u8 {
        match self {
            Self::HopByHop(_) => NEXT_HOP_BY_HOP,
            Self::DestinationOptions(_) => NEXT_DESTINATION_OPTIONS,
            Self::Routing(_) => NEXT_ROUTING,
            Self::Fragment { .. } => NEXT_FRAGMENT,
        }
    }

    fn encode(&self, next: u8, out: &mut Vec<u8>) {
        match self {
            Self::HopByHop(options) | Self::DestinationOptions(options) => {
                let mut body = options.clone();
                // Pad1 for one octet, PadN for more (RFC 8200 §4.2).
                match (8 - (2 + body.len()) % 8) % 8 {
                    0 => {}
                    1 => body.push(0),
                    n => {
                        body.extend_from_slice(&[1, (n - 2) as u8]);
                        body.extend(std::iter::repeat_n(0, n - 2));
                    }
                }
                out.extend_from_slice(&[next, ((2 + body.len()) / 8 - 1) as u8]);
                out.extend_from_slice(&body);
            }
            Self::Routing(addresses) => {
                out.extend_from_slice(&[next, (2 * addresses.len()) as u8, 0, 0, 0, 0, 0, 0]);
                for address in addresses {
                    out.extend_from_slice(&address.octets());
                }
            }
            Self::Fragment { offset, more } => {
                let field = (offset << 3) | u16::from(*more);
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&field.to_be_bytes());
                out.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
            }
        }
    }

    /// Its length on the wire.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(0, &mut out);
        out.len()
    }
}

/// An IPv6 packet with every header field settable, so that tests can break
/// one at a time. `encode` seals the ICMPv6 or UDP checksum over the
/// pseudo-header unless `seal` is off.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// 6, unless a test says otherwise.
    pub version: u8,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub hop_limit: u8,
    /// Extension headers in order, between the fixed header and the payload.
    pub headers: Vec<ExtHeader>,
    /// The next-header value of the payload (58: ICMPv6, 17: UDP).
    pub protocol: u8,
    pub payload: Vec<u8>,
    /// The Payload Length field, when a test wants it to lie.
    pub payload_length: Option<u16>,
    /// Write the upper-layer checksum as it should be.
    pub seal: bool,
}

impl Ipv6 {
    /// An MLD message from `source` to `destination`, hop limit 1, behind a
    /// Hop-by-Hop header with Router Alert (RFC 3810 §5).
    pub fn mld(source: Ipv6Addr, destination: Ipv6Addr, message: Vec<u8>) -> Self {
        Self {
            version: 6,
            source,
            destination,
            hop_limit: 1,
            headers: vec![ExtHeader::router_alert()],
            protocol: NEXT_ICMPV6,
            payload: message,
            payload_length: None,
            seal: true,
        }
    }

    /// The Next Header field of the fixed header.
    pub fn first_next_header(&self) -> u8 {
        self.headers.first().map_or(self.protocol, ExtHeader::code)
    }

    /// Octets of extension headers before the payload.
    pub fn headers_len(&self) -> usize {
        self.headers.iter().map(ExtHeader::encoded_len).sum()
    }

    /// The payload with its checksum sealed (if `seal` and ICMPv6 or UDP).
    pub fn sealed_payload(&self) -> Vec<u8> {
        let mut payload = self.payload.clone();
        let at = match self.protocol {
            NEXT_ICMPV6 => 2,
            NEXT_UDP => 6,
            _ => return payload,
        };
        if self.seal && payload.len() >= at + 2 {
            payload[at..at + 2].copy_from_slice(&[0, 0]);
            let mut sum =
                upper_layer_checksum(self.source, self.destination, self.protocol, &payload);
            if self.protocol == NEXT_UDP && sum == 0 {
                sum = 0xffff;
            }
            payload[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        payload
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut chain = Vec::new();
        for (index, header) in self.headers.iter().enumerate() {
            let next = self
                .headers
                .get(index + 1)
                .map_or(self.protocol, ExtHeader::code);
            header.encode(next, &mut chain);
        }
        chain.extend_from_slice(&self.sealed_payload());
        let length = self.payload_length.unwrap_or(chain.len() as u16);
        let mut packet = vec![self.version << 4, 0, 0, 0];
        packet.extend_from_slice(&length.to_be_bytes());
        packet.extend_from_slice(&[self.first_next_header(), self.hop_limit]);
        packet.extend_from_slice(&self.source.octets());
        packet.extend_from_slice(&self.destination.octets());
        packet.extend_from_slice(&chain);
        packet
    }
}

/// RFC 4443 §2.3 (and RFC 8200 §8.1): the checksum of `message` with the
/// IPv6 pseudo-header (source, destination, upper-layer length as a u32,
/// three zero octets, next header) in front.
pub fn upper_layer_checksum(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    next_header: u8,
    message: &[u8],
) -> u16 {
    let mut bytes = source.octets().to_vec();
    bytes.extend_from_slice(&destination.octets());
    bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, next_header]);
    bytes.extend_from_slice(message);
    checksum(&bytes)
}

/// `message` with its ICMPv6 checksum (bytes 2..4) written for `source` → `destination`.
pub fn seal_icmpv6(source: Ipv6Addr, destination: Ipv6Addr, mut message: Vec<u8>) -> Vec<u8> {
    message[2..4].copy_from_slice(&[0, 0]);
    let sum = upper_layer_checksum(source, destination, NEXT_ICMPV6, &message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    message
}

/// A 24-octet MLDv1 message (RFC 2710 §3): report, Done, or a v1 query
/// (a general one for `::`).
pub fn mld_v1(kind: u8, max_delay_ms: u16, group: Ipv6Addr) -> Vec<u8> {
    let mut message = vec![kind, 0, 0, 0];
    message.extend_from_slice(&max_delay_ms.to_be_bytes());
    message.extend_from_slice(&[0, 0]);
    message.extend_from_slice(&group.octets());
    message
}

/// An MLDv2 query (RFC 3810 §5.1).
#[derive(Clone, Debug)]
pub struct MldQuery {
    /// `::` for a general query.
    pub group: Ipv6Addr,
    pub max_resp_code: u16,
    /// The S flag (Suppress Router-Side Processing, §5.1.7).
    pub suppress: bool,
    /// QRV (§5.1.8), three bits.
    pub qrv: u8,
    /// QQIC (§5.1.9).
    pub qqic: u8,
    pub sources: Vec<Ipv6Addr>,
}

impl MldQuery {
    pub fn general() -> Self {
        Self::of(Ipv6Addr::UNSPECIFIED, &[])
    }

    /// A group-specific (no sources) or group-and-source-specific query.
    pub fn of(group: Ipv6Addr, sources: &[Ipv6Addr]) -> Self {
        Self {
            group,
            max_resp_code: 10_000,
            suppress: false,
            qrv: 2,
            qqic: 125,
            sources: sources.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut message = vec![MLD_QUERY, 0, 0, 0];
        message.extend_from_slice(&self.max_resp_code.to_be_bytes());
        message.extend_from_slice(&[0, 0]);
        message.extend_from_slice(&self.group.octets());
        message.push(u8::from(self.suppress) << 3 | (self.qrv & 0x07));
        message.push(self.qqic);
        message.extend_from_slice(&(self.sources.len() as u16).to_be_bytes());
        for source in &self.sources {
            message.extend_from_slice(&source.octets());
        }
        message
    }
}

/// One MLDv2 multicast address record (RFC 3810 §5.2.4); its types are
/// IGMPv3's (`MODE_IS_INCLUDE` ..= `BLOCK_OLD_SOURCES`).
#[derive(Clone, Debug)]
pub struct MldRecord {
    pub kind: u8,
    pub group: Ipv6Addr,
    pub sources: Vec<Ipv6Addr>,
    /// Auxiliary data, a whole number of 32-bit words.
    pub aux_words: u8,
}

impl MldRecord {
    pub fn new(kind: u8, group: Ipv6Addr, sources: &[Ipv6Addr]) -> Self {
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

/// An MLDv2 report carrying `records` (RFC 3810 §5.2), checksum not yet written.
pub fn mld_v2_report(records: &[MldRecord]) -> Vec<u8> {
    mld_v2_report_claiming(records, records.len() as u16)
}

/// An MLDv2 report whose Nr of Mcast Address Records field says `claimed`.
pub fn mld_v2_report_claiming(records: &[MldRecord], claimed: u16) -> Vec<u8> {
    let mut message = vec![MLD_V2_REPORT, 0, 0, 0, 0, 0];
    message.extend_from_slice(&claimed.to_be_bytes());
    for record in records {
        record.encode(&mut message);
    }
    message
}

/// The multicast MAC of an IPv6 group (RFC 2464 §7): 33:33 and its last four octets.
pub fn multicast_mac_v6(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A whole frame carrying `ip`: to the multicast MAC of a multicast
/// destination, to a unicast MAC otherwise.
pub fn frame_v6(tags: &[(u16, u16)], ip: &Ipv6) -> Vec<u8> {
    let mac = if ip.destination.is_multicast() {
        multicast_mac_v6(ip.destination)
    } else {
        [0x02, 0, 0, 0, 0, 0x09]
    };
    ethernet(mac, tags, 0x86dd, &ip.encode())
}

/// An MLDv1 report for `group` from `host`, to the group, untagged.
pub fn mld_v1_report(host: Ipv6Addr, group: Ipv6Addr) -> Vec<u8> {
    frame_v6(
        &[],
        &Ipv6::mld(host, group, mld_v1(MLD_V1_REPORT, 0, group)),
    )
}

/// An MLDv1 Done for `group` from `host`, to ff02::2, untagged.
pub fn mld_done(host: Ipv6Addr, group: Ipv6Addr) -> Vec<u8> {
    frame_v6(
        &[],
        &Ipv6::mld(host, ALL_ROUTERS_V6, mld_v1(MLD_DONE, 0, group)),
    )
}

/// An MLDv2 report from `host` to ff02::16, untagged.
pub fn mld_v2_report_frame(host: Ipv6Addr, records: &[MldRecord]) -> Vec<u8> {
    frame_v6(
        &[],
        &Ipv6::mld(host, ALL_MLDV2_ROUTERS, mld_v2_report(records)),
    )
}

/// An MLD query from `querier` to `destination`, untagged.
pub fn mld_query_frame(querier: Ipv6Addr, destination: Ipv6Addr, message: Vec<u8>) -> Vec<u8> {
    frame_v6(&[], &Ipv6::mld(querier, destination, message))
}

/// A UDP datagram to IPv6 `group` (multicast data), hop limit 16.
pub fn udp_data_v6(
    tags: &[(u16, u16)],
    source: Ipv6Addr,
    group: Ipv6Addr,
    payload_len: usize,
) -> Vec<u8> {
    let mut udp = vec![0x13, 0x88, 0x13, 0x88];
    udp.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend(std::iter::repeat_n(0x5a, payload_len));
    let ip = Ipv6 {
        hop_limit: 16,
        headers: Vec::new(),
        protocol: NEXT_UDP,
        ..Ipv6::mld(source, group, udp)
    };
    frame_v6(tags, &ip)
}

/// The frames of `frames` that are IPv6 UDP datagrams from `source` to `group`.
pub fn datagrams_v6(frames: &[Vec<u8>], source: Ipv6Addr, group: Ipv6Addr) -> usize {
    frames
        .iter()
        .filter(|frame| is_datagram_v6(frame, source, group))
        .count()
}

/// Whether `frame` is an untagged IPv6 UDP datagram (no extension headers)
/// from `source` to `group`.
pub fn is_datagram_v6(frame: &[u8], source: Ipv6Addr, group: Ipv6Addr) -> bool {
    frame.len() >= 14 + 40 + 8
        && frame[12..14] == [0x86, 0xdd]
        && frame[14 + 6] == NEXT_UDP
        && frame[22..38] == source.octets()
        && frame[38..54] == group.octets()
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

    #[test]
    fn mld_frames_are_laid_out_as_rfc_3810_says_and_sealed() {
        let host = link_local(7);
        let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x42);
        let frame = mld_v1_report(host, group);
        // Ethernet, IPv6 (40), Hop-by-Hop (8), MLDv1 (24).
        assert_eq!(frame.len(), 14 + 40 + 8 + 24);
        assert_eq!(frame[..6], [0x33, 0x33, 0, 0, 0, 0x42]);
        assert_eq!(frame[12..14], [0x86, 0xdd]);
        assert_eq!(frame[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([frame[18], frame[19]]), 32);
        assert_eq!((frame[20], frame[21]), (NEXT_HOP_BY_HOP, 1));
        assert_eq!(frame[54..62], [NEXT_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
        assert_eq!(frame[62], MLD_V1_REPORT);
        let message = &frame[62..];
        assert_eq!(
            upper_layer_checksum(host, group, NEXT_ICMPV6, message),
            0,
            "sealed over the pseudo-header"
        );
        let mut records = vec![MldRecord::new(MODE_IS_INCLUDE, group, &[link_local(1)])];
        records[0].aux_words = 1;
        let report = mld_v2_report(&records);
        assert_eq!(report.len(), 8 + 20 + 16 + 4);
        let query = MldQuery {
            suppress: true,
            ..MldQuery::of(group, &[link_local(1), link_local(2)])
        }
        .encode();
        assert_eq!(query.len(), 28 + 32);
        assert_eq!(query[24], 0x08 | 2);
    }

    #[test]
    fn extension_headers_chain_and_pad_to_eight_octets() {
        let mut ip = Ipv6::mld(
            link_local(1),
            ALL_NODES,
            mld_v1(MLD_QUERY, 0, Ipv6Addr::UNSPECIFIED),
        );
        ip.headers
            .push(ExtHeader::DestinationOptions(vec![1, 3, 0, 0, 0]));
        ip.headers.push(ExtHeader::Fragment {
            offset: 0,
            more: true,
        });
        let packet = ip.encode();
        assert_eq!(packet[6], NEXT_HOP_BY_HOP);
        assert_eq!(packet[40], NEXT_DESTINATION_OPTIONS);
        assert_eq!(packet[48], NEXT_FRAGMENT);
        assert_eq!(packet[49], 0, "7 octets of options pad to one 8-octet unit");
        assert_eq!(packet[56], NEXT_ICMPV6);
        assert_eq!(packet[58..60], [0, 1], "M flag");
        assert_eq!(ip.headers_len(), 24);
        assert_eq!(
            solicited_node(link_local(0x1234)).segments()[6..],
            [0xff00, 0x1234]
        );
    }
}
