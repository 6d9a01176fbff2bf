//! The valid messages the corpus breaks: one of each kind a host or a
//! querier sends, each in an IPv4 packet as RFC 2236 §2 and RFC 3376 §4 want
//! it (TTL 1, Router Alert).

use std::net::Ipv4Addr;

use crate::frames::{self, *};

pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
pub const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 1, 1);
pub const GROUP_B: Ipv4Addr = Ipv4Addr::new(239, 77, 1, 2);
pub const S1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const S2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// A unicast MAC, for frames to a unicast IP destination.
pub const UNICAST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];

/// The VLAN encapsulations every base is also sent in.
pub const TAGGINGS: [(&str, &[(u16, u16)]); 3] = [
    ("untagged", &[]),
    ("dot1q", &[(TPID_8021Q, 10)]),
    ("qinq", &[(TPID_8021AD, 100), (TPID_8021Q, 10)]),
];

/// How a message's length is judged (RFC 3376 §7.1 for queries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// v1/v2 report or leave: 8 octets.
    Report,
    /// v1/v2 query: 8 octets.
    Query,
    /// v3 query: 12 octets and 4 per source.
    V3Query,
    /// v3 report: 8 octets and its group records.
    V3Report,
}

#[derive(Clone, Debug)]
pub struct Base {
    pub name: &'static str,
    /// The packet, untagged; its payload is the IGMP message.
    pub ip: Ipv4,
    pub shape: Shape,
}

/// Where one v3 group record lies in its message.
#[derive(Clone, Copy, Debug)]
pub struct RecordSpan {
    pub start: usize,
    pub sources_end: usize,
    pub end: usize,
}

impl Base {
    fn new(
        name: &'static str,
        source: Ipv4Addr,
        to: Ipv4Addr,
        message: Vec<u8>,
        shape: Shape,
    ) -> Self {
        Self {
            name,
            ip: Ipv4::igmp(source, to, message),
            shape,
        }
    }

    pub fn message(&self) -> &[u8] {
        &self.ip.payload
    }

    /// The base with another IGMP message (sealed by the caller, or not).
    pub fn with_message(&self, message: Vec<u8>) -> Ipv4 {
        Ipv4 {
            payload: message,
            ..self.ip.clone()
        }
    }

    /// Offset of the IPv4 header in a frame with `tags`.
    pub fn l3(tags: &[(u16, u16)]) -> usize {
        14 + 4 * tags.len()
    }

    /// Length of the IPv4 header (with its options).
    pub fn ip_header_len(&self) -> usize {
        20 + self.ip.options.len()
    }

    /// The record layout of a v3 report (empty for other shapes).
    pub fn records(&self) -> Vec<RecordSpan> {
        if self.shape != Shape::V3Report {
            return Vec::new();
        }
        let message = self.message();
        let count = usize::from(u16::from_be_bytes([message[6], message[7]]));
        let mut at = 8;
        let mut spans = Vec::new();
        for _ in 0..count {
            let aux = usize::from(message[at + 1]) * 4;
            let sources = usize::from(u16::from_be_bytes([message[at + 2], message[at + 3]]));
            let sources_end = at + 8 + 4 * sources;
            spans.push(RecordSpan {
                start: at,
                sources_end,
                end: sources_end + aux,
            });
            at = sources_end + aux;
        }
        spans
    }
}

/// A whole frame around `ip`: to the group MAC of its destination, or to a
/// unicast MAC when the destination is unicast.
pub fn frame_of(tags: &[(u16, u16)], ip: &Ipv4) -> Vec<u8> {
    if ip.destination.is_multicast() {
        frames::frame(tags, ip)
    } else {
        ethernet(UNICAST_MAC, tags, 0x0800, &ip.encode())
    }
}

/// Rewrites the IPv4 header checksum at `l3` over `header_len` bytes.
pub fn reseal_ip(frame: &mut [u8], l3: usize, header_len: usize) {
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let sum = checksum(&frame[l3..l3 + header_len]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
}

/// A v3 report with sources and auxiliary data in its first record.
pub fn rich_v3_report() -> Vec<u8> {
    let mut first = Record::new(MODE_IS_INCLUDE, GROUP, &[S1, S2]);
    first.aux_words = 1;
    v3_report(&[first, Record::new(CHANGE_TO_EXCLUDE, GROUP_B, &[S1])])
}

pub fn all() -> Vec<Base> {
    let any = Ipv4Addr::UNSPECIFIED;
    vec![
        Base::new(
            "v1_report",
            HOST,
            GROUP,
            igmp_message(V1_REPORT, 0, GROUP),
            Shape::Report,
        ),
        Base::new(
            "v2_report",
            HOST,
            GROUP,
            igmp_message(V2_REPORT, 0, GROUP),
            Shape::Report,
        ),
        Base::new(
            "v2_leave",
            HOST,
            ALL_ROUTERS,
            igmp_message(V2_LEAVE, 0, GROUP),
            Shape::Report,
        ),
        Base::new(
            "v3_report",
            HOST,
            ALL_V3_ROUTERS,
            v3_report(&[Record::new(CHANGE_TO_EXCLUDE, GROUP, &[])]),
            Shape::V3Report,
        ),
        Base::new(
            "v3_report_rich",
            HOST,
            ALL_V3_ROUTERS,
            rich_v3_report(),
            Shape::V3Report,
        ),
        Base::new(
            "v1_query",
            QUERIER,
            ALL_HOSTS,
            igmp_message(QUERY, 0, any),
            Shape::Query,
        ),
        Base::new(
            "v2_query",
            QUERIER,
            ALL_HOSTS,
            igmp_message(QUERY, 100, any),
            Shape::Query,
        ),
        Base::new(
            "v2_group_query",
            QUERIER,
            GROUP,
            igmp_message(QUERY, 10, GROUP),
            Shape::Query,
        ),
        Base::new(
            "v3_query",
            QUERIER,
            ALL_HOSTS,
            v3_query(any, 100, 2, 125, &[]),
            Shape::V3Query,
        ),
        Base::new(
            "v3_source_query",
            QUERIER,
            GROUP,
            v3_query(GROUP, 10, 2, 125, &[S1, S2]),
            Shape::V3Query,
        ),
    ]
}
