//! The MLD half of the corpus: valid MLDv1 and MLDv2 messages (RFC 2710,
//! RFC 3810), each behind the Hop-by-Hop header with Router Alert as hosts
//! and queriers send them, broken one rule at a time.
//!
//! The frame is MLD once its ICMPv6 type can be read; before that, a frame
//! cut inside its IPv6 or extension headers is `Truncated`, whatever it
//! carries.

use std::{iter::once, net::Ipv6Addr};

use igmp_common::{Counter, DropReason};

use super::{Cases, Expected, TAGGINGS};
use crate::frames::*;

pub const HOST: Ipv6Addr = link_local(7);
pub const QUERIER: Ipv6Addr = link_local(3);
/// ff0e::77:1 and ff0e::77:2.
pub const GROUP: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0x77, 1);
pub const GROUP_B: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0x77, 2);
pub const S1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const S2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

const MLD_TYPES: [u8; 4] = [MLD_QUERY, MLD_V1_REPORT, MLD_DONE, MLD_V2_REPORT];

/// How a message's length is judged (RFC 3810 §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MldShape {
    /// MLDv1 report, Done or query: 24 octets.
    V1,
    /// MLDv2 query: 28 octets and 16 per source.
    V2Query,
    /// MLDv2 report: 8 octets and its records.
    V2Report,
}

#[derive(Clone, Debug)]
pub struct MldBase {
    pub name: &'static str,
    /// The packet; its payload is the ICMPv6 message (sealed on encode).
    pub ip: Ipv6,
    pub shape: MldShape,
}

impl MldBase {
    fn new(
        name: &'static str,
        source: Ipv6Addr,
        to: Ipv6Addr,
        message: Vec<u8>,
        shape: MldShape,
    ) -> Self {
        Self {
            name,
            ip: Ipv6::mld(source, to, message),
            shape,
        }
    }

    fn is_query(&self) -> bool {
        self.ip.payload[0] == MLD_QUERY
    }

    /// Offset of the ICMPv6 message in a frame with `tags`.
    fn icmpv6(&self, tags: &[(u16, u16)]) -> usize {
        14 + 4 * tags.len() + 40 + self.ip.headers_len()
    }

    /// Where each record of an MLDv2 report starts, its sources end and it ends.
    fn records(&self) -> Vec<(usize, usize, usize)> {
        if self.shape != MldShape::V2Report {
            return Vec::new();
        }
        let message = &self.ip.payload;
        let count = usize::from(u16::from_be_bytes([message[6], message[7]]));
        let mut at = 8;
        let mut spans = Vec::new();
        for _ in 0..count {
            let aux = usize::from(message[at + 1]) * 4;
            let sources = usize::from(u16::from_be_bytes([message[at + 2], message[at + 3]]));
            let sources_end = at + 20 + 16 * sources;
            spans.push((at, sources_end, sources_end + aux));
            at = sources_end + aux;
        }
        spans
    }

    fn with(&self, edit: impl FnOnce(&mut Ipv6)) -> Ipv6 {
        let mut ip = self.ip.clone();
        edit(&mut ip);
        ip
    }
}

/// A v2 report with sources and auxiliary data in its first record.
fn rich_v2_report() -> Vec<u8> {
    let mut first = MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1, S2]);
    first.aux_words = 1;
    mld_v2_report(&[first, MldRecord::new(CHANGE_TO_EXCLUDE, GROUP_B, &[S1])])
}

pub fn bases() -> Vec<MldBase> {
    let any = Ipv6Addr::UNSPECIFIED;
    vec![
        MldBase::new(
            "mld_v1_report",
            HOST,
            GROUP,
            mld_v1(MLD_V1_REPORT, 0, GROUP),
            MldShape::V1,
        ),
        MldBase::new(
            "mld_done",
            HOST,
            ALL_ROUTERS_V6,
            mld_v1(MLD_DONE, 0, GROUP),
            MldShape::V1,
        ),
        MldBase::new(
            "mld_v1_query",
            QUERIER,
            ALL_NODES,
            mld_v1(MLD_QUERY, 10_000, any),
            MldShape::V1,
        ),
        MldBase::new(
            "mld_v1_group_query",
            QUERIER,
            GROUP,
            mld_v1(MLD_QUERY, 1_000, GROUP),
            MldShape::V1,
        ),
        MldBase::new(
            "mld_v2_query",
            QUERIER,
            ALL_NODES,
            MldQuery::general().encode(),
            MldShape::V2Query,
        ),
        MldBase::new(
            "mld_v2_source_query",
            QUERIER,
            GROUP,
            MldQuery::of(GROUP, &[S1, S2]).encode(),
            MldShape::V2Query,
        ),
        MldBase::new(
            "mld_v2_report",
            HOST,
            ALL_MLDV2_ROUTERS,
            mld_v2_report(&[MldRecord::new(CHANGE_TO_EXCLUDE, GROUP, &[])]),
            MldShape::V2Report,
        ),
        MldBase::new(
            "mld_v2_report_rich",
            HOST,
            ALL_MLDV2_ROUTERS,
            rich_v2_report(),
            MldShape::V2Report,
        ),
    ]
}

/// Every malformed MLD frame, with the outcome the RFCs ask for.
pub(crate) fn corpus(cases: &mut Cases) {
    for base in bases() {
        for (tagging, tags) in TAGGINGS {
            bit_flips(cases, &base, tagging, tags);
            fragments(cases, &base, tagging, tags);
            frame_cuts(cases, &base, tagging, tags);
        }
        checksum_values(cases, &base);
        hop_limits(cases, &base);
        versions_and_lengths(cases, &base);
        length_cuts(cases, &base);
        router_alerts(cases, &base);
        header_chains(cases, &base);
        sources(cases, &base);
        destinations(cases, &base);
        v2_counts(cases, &base);
        stacked_vlans(cases, &base);
    }
    groups(cases);
}

fn name(base: &MldBase, tagging: &str, what: impl std::fmt::Display) -> String {
    format!("{}/{tagging}/{what}", base.name)
}

/// Every single-bit error in the ICMPv6 message, and in the interface
/// identifier of the source (still link-local): only the checksum, over the
/// pseudo-header, catches them. A type bit that makes another ICMPv6 type
/// leaves a message that is not MLD, and not counted.
fn bit_flips(cases: &mut Cases, base: &MldBase, tagging: &str, tags: &[(u16, u16)]) {
    let whole = frame_v6(tags, &base.ip);
    let icmpv6 = base.icmpv6(tags);
    let l3 = 14 + 4 * tags.len();
    for byte in 0..base.ip.payload.len() {
        for bit in 0..8 {
            let mut frame = whole.clone();
            frame[icmpv6 + byte] ^= 1 << bit;
            let what = format!("icmpv6_byte_{byte}_bit_{bit}");
            if byte == 0 && !MLD_TYPES.contains(&frame[icmpv6]) {
                cases.add(name(base, tagging, what), frame, Expected::NotIgmp);
            } else {
                cases.drop(
                    name(base, tagging, what),
                    frame,
                    DropReason::BadIcmpv6Checksum,
                );
            }
        }
    }
    // Source address octets 8..16: fe80::/64 either way.
    for byte in 16..24 {
        for bit in 0..8 {
            let mut frame = whole.clone();
            frame[l3 + byte] ^= 1 << bit;
            let what = format!("source_byte_{byte}_bit_{bit}");
            cases.drop(
                name(base, tagging, what),
                frame,
                DropReason::BadIcmpv6Checksum,
            );
        }
    }
}

/// Every value of the checksum field but the right one (and its ones'
/// complement twin, which is just as right).
fn checksum_values(cases: &mut Cases, base: &MldBase) {
    let whole = frame_v6(&[], &base.ip);
    let at = base.icmpv6(&[]);
    let (source, destination) = (base.ip.source, base.ip.destination);
    for offset in 0..2 {
        for value in 0..=255u8 {
            let mut frame = whole.clone();
            frame[at + 2 + offset] = value;
            if upper_layer_checksum(source, destination, NEXT_ICMPV6, &frame[at..]) != 0 {
                let what = format!("checksum_byte_{offset}_{value:#04x}");
                cases.drop(
                    name(base, "untagged", what),
                    frame,
                    DropReason::BadIcmpv6Checksum,
                );
            }
        }
    }
}

/// A Fragment header between the Hop-by-Hop header and ICMPv6: first,
/// later and atomic fragments.
fn fragments(cases: &mut Cases, base: &MldBase, tagging: &str, tags: &[(u16, u16)]) {
    let offsets = (0..13).map(|bit| 1u16 << bit).chain([0, 0x1fff]);
    for offset in offsets {
        for more in [false, true] {
            let ip = base.with(|ip| ip.headers.push(ExtHeader::Fragment { offset, more }));
            let what = format!("fragment_{offset}_{}", if more { "more" } else { "last" });
            cases.drop(
                name(base, tagging, what),
                frame_v6(tags, &ip),
                DropReason::IpFragment,
            );
        }
    }
}

/// Every cut with Payload Length left as it was: inside the IPv6 header or
/// an extension header, the frame ends inside a header it announces; after
/// the ICMPv6 type, its Payload Length runs past the frame. Cut right
/// before the type, nothing says MLD (and nothing is counted).
fn frame_cuts(cases: &mut Cases, base: &MldBase, tagging: &str, tags: &[(u16, u16)]) {
    let whole = frame_v6(tags, &base.ip);
    let l3 = 14 + 4 * tags.len();
    let icmpv6 = base.icmpv6(tags);
    for cut in 14..whole.len() {
        let expected = match cut {
            _ if cut < l3 => Expected::NotIgmp,
            _ if cut < icmpv6 => Expected::Drop(DropReason::Truncated),
            _ if cut == icmpv6 => Expected::NotIgmp,
            _ => Expected::Drop(DropReason::BadIpv6Header),
        };
        cases.add(
            name(base, tagging, format!("cut_at_{cut}")),
            whole[..cut].to_vec(),
            expected,
        );
    }
}

/// Every Hop Limit but 1 (RFC 3810 §5, RFC 2710 §3).
fn hop_limits(cases: &mut Cases, base: &MldBase) {
    for hop_limit in once(0).chain(2..=255) {
        let ip = base.with(|ip| ip.hop_limit = hop_limit);
        let what = format!("hop_limit_{hop_limit}");
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::BadHopLimit,
        );
    }
}

/// Versions other than 6, and Payload Lengths past the frame.
fn versions_and_lengths(cases: &mut Cases, base: &MldBase) {
    for version in (0..16).filter(|v| *v != 6) {
        let ip = base.with(|ip| ip.version = version);
        let what = format!("version_{version}");
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::BadIpv6Header,
        );
    }
    let actual = base.ip.headers_len() + base.ip.payload.len();
    for length in (actual + 1..=actual + 64).chain([0xffff]) {
        let ip = base.with(|ip| ip.payload_length = Some(length as u16));
        let what = format!("payload_length_{length}");
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::BadIpv6Header,
        );
    }
}

/// The message cut short, sealed, with a Payload Length that tells the
/// truth (RFC 3810 §8.1 lengths; RFC 3810 §5.2 records).
fn length_cuts(cases: &mut Cases, base: &MldBase) {
    let message = &base.ip.payload;
    let spans = base.records();
    for cut in 4..message.len() {
        let reason = match (base.shape, cut) {
            (MldShape::V1, _) | (MldShape::V2Query, 4..28) if cut != 24 => DropReason::BadMldLength,
            // 24 octets is a valid MLDv1 query.
            (MldShape::V2Query, 24) => continue,
            (MldShape::V2Query, _) => DropReason::BadMldLength,
            (MldShape::V2Report, 4..8) => DropReason::BadMldLength,
            (MldShape::V2Report, _) => past_end(&spans, cut),
            (MldShape::V1, _) => unreachable!("24 is a V1 message's length"),
        };
        let ip = base.with(|ip| ip.payload.truncate(cut));
        let what = format!("message_cut_at_{cut}");
        cases.drop(name(base, "untagged", what), frame_v6(&[], &ip), reason);
    }
}

/// What the first record that does not fit in `end` octets runs past.
fn past_end(spans: &[(usize, usize, usize)], end: usize) -> DropReason {
    for (start, sources_end, record_end) in spans {
        if start + 20 > end {
            return DropReason::RecordPastEnd;
        }
        if *sources_end > end {
            return DropReason::SourcesPastEnd;
        }
        if *record_end > end {
            return DropReason::AuxPastEnd;
        }
    }
    unreachable!("every record fits in {end} octets")
}

/// The Router Alert missing (no Hop-by-Hop header, one with padding only,
/// the option in a Destination Options header) or of any value but 0 (MLD).
fn router_alerts(cases: &mut Cases, base: &MldBase) {
    let mut edits: Vec<(String, Vec<ExtHeader>)> = vec![
        ("no_hop_by_hop".into(), Vec::new()),
        (
            "hop_by_hop_padding_only".into(),
            vec![ExtHeader::hop_by_hop_without_router_alert()],
        ),
        (
            "router_alert_in_destination_options".into(),
            vec![ExtHeader::DestinationOptions(ROUTER_ALERT_MLD.to_vec())],
        ),
    ];
    for value in 1..=u16::MAX {
        if value < 16 || value % 257 == 0 {
            let [high, low] = value.to_be_bytes();
            edits.push((
                format!("router_alert_value_{value}"),
                vec![ExtHeader::HopByHop(vec![5, 2, high, low])],
            ));
        }
    }
    for (what, headers) in edits {
        let ip = base.with(|ip| ip.headers = headers);
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::NoRouterAlert,
        );
    }
}

/// More extension headers before ICMPv6 than the walk's bound of four.
fn header_chains(cases: &mut Cases, base: &MldBase) {
    for more in 4..=8 {
        let ip = base.with(|ip| {
            ip.headers.extend(std::iter::repeat_n(
                ExtHeader::DestinationOptions(vec![1, 4, 0, 0, 0, 0]),
                more,
            ))
        });
        let what = format!("{}_extension_headers", more + 1);
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::ExtHeadersTooLong,
        );
    }
}

/// Sources neither link-local nor (for reports) unspecified (RFC 3810
/// §5.1.14, §5.2.13).
fn sources(cases: &mut Cases, base: &MldBase) {
    let mut refused = vec![
        S1,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7),
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 7),
        Ipv6Addr::new(0xfe00, 0, 0, 0, 0, 0, 0, 7),
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 1),
        ALL_NODES,
        Ipv6Addr::new(0x0064, 0xff9b, 0, 0, 0, 0, 0x0a00, 7),
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 7),
    ];
    if base.is_query() {
        refused.push(Ipv6Addr::UNSPECIFIED);
    }
    for source in refused {
        let ip = base.with(|ip| ip.source = source);
        let what = format!("from_{source}");
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::NotLinkLocalSource,
        );
    }
}

/// Each message sent elsewhere than where its type goes.
fn destinations(cases: &mut Cases, base: &MldBase) {
    let group_specific = base.ip.destination == GROUP;
    let allowed: Vec<Ipv6Addr> = match base.ip.payload[0] {
        MLD_V1_REPORT => vec![GROUP],
        MLD_DONE => vec![GROUP, ALL_ROUTERS_V6],
        MLD_V2_REPORT => vec![ALL_MLDV2_ROUTERS],
        _ if group_specific => vec![GROUP, ALL_NODES],
        _ => vec![ALL_NODES],
    };
    let mut wrong: Vec<Ipv6Addr> = (0..=0x20u16)
        .map(|last| Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, last))
        .chain([GROUP, GROUP_B, link_local(1), S1])
        .collect();
    wrong.retain(|to| !allowed.contains(to));
    for to in wrong {
        let ip = base.with(|ip| ip.destination = to);
        let what = format!("to_{to}");
        cases.drop(
            name(base, "untagged", what),
            frame_v6(&[], &ip),
            DropReason::BadDestination,
        );
    }
}

/// Counts inside MLDv2 messages that point past their end, and record types
/// RFC 3810 §5.2.12 does not define.
fn v2_counts(cases: &mut Cases, base: &MldBase) {
    let len = base.ip.payload.len();
    let mut edited = |what: String, edit: &dyn Fn(&mut Vec<u8>), reason: DropReason| {
        let ip = base.with(|ip| edit(&mut ip.payload));
        cases.drop(name(base, "untagged", what), frame_v6(&[], &ip), reason);
    };
    match base.shape {
        MldShape::V2Query => {
            for sources in ((len - 28) / 16 + 1..(len - 28) / 16 + 24).chain([0xff, 0xffff]) {
                let edit =
                    |m: &mut Vec<u8>| m[26..28].copy_from_slice(&(sources as u16).to_be_bytes());
                edited(
                    format!("sources_{sources}"),
                    &edit,
                    DropReason::BadMldLength,
                );
            }
        }
        MldShape::V2Report => {
            let spans = base.records();
            for claimed in (spans.len() + 1..=spans.len() + 24).chain([255, 0xffff]) {
                let edit =
                    |m: &mut Vec<u8>| m[6..8].copy_from_slice(&(claimed as u16).to_be_bytes());
                edited(
                    format!("records_claimed_{claimed}"),
                    &edit,
                    DropReason::RecordPastEnd,
                );
            }
            for (index, (at, sources_end, _)) in spans.iter().copied().enumerate() {
                for sources in ((len - at - 20) / 16 + 1..(len - at - 20) / 16 + 16).chain([0xffff])
                {
                    let edit = |m: &mut Vec<u8>| {
                        m[at + 2..at + 4].copy_from_slice(&(sources as u16).to_be_bytes())
                    };
                    let what = format!("record_{index}_sources_{sources}");
                    edited(what, &edit, DropReason::SourcesPastEnd);
                }
                for aux in (len - sources_end) / 4 + 1..=255 {
                    let edit = |m: &mut Vec<u8>| m[at + 1] = aux as u8;
                    let what = format!("record_{index}_aux_words_{aux}");
                    edited(what, &edit, DropReason::AuxPastEnd);
                }
                for kind in once(0).chain(7..=255u8) {
                    let edit = |m: &mut Vec<u8>| m[at] = kind;
                    let what = format!("record_{index}_type_{kind}");
                    edited(what, &edit, DropReason::UnknownRecordType);
                }
            }
        }
        MldShape::V1 => {}
    }
}

/// Three and four VLAN tags.
fn stacked_vlans(cases: &mut Cases, base: &MldBase) {
    let tpids = [TPID_8021Q, TPID_8021AD];
    for a in tpids {
        for b in tpids {
            for c in tpids {
                let tags = [(a, 1), (b, 2), (c, 3)];
                let what = format!("tags_{a:04x}_{b:04x}_{c:04x}");
                cases.drop(
                    name(base, "stacked", what),
                    frame_v6(&tags, &base.ip),
                    DropReason::TooManyVlanTags,
                );
            }
        }
    }
}

/// Groups outside ff00::/8; and ff02::1 and the scopes 0 and 1: valid,
/// never snooped (RFC 4541 §3).
fn groups(cases: &mut Cases) {
    for first in (0..=0xfe).step_by(3) {
        let group = Ipv6Addr::new(first << 8 | 0x0e, 0, 0, 0, 0, 0, 0x77, 1);
        for (what, ip) in group_messages(group, group) {
            let name = format!("{what}/untagged/group_{group}");
            cases.drop(name, frame_v6(&[], &ip), DropReason::NotMulticastGroup);
        }
        // The bad record after a good one: the good one must not be applied either.
        let records = [
            MldRecord::new(MODE_IS_INCLUDE, GROUP, &[S1]),
            MldRecord::new(CHANGE_TO_EXCLUDE, group, &[]),
        ];
        let ip = Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, mld_v2_report(&records));
        let name = format!("mld_v2_report_rich/untagged/second_group_{group}");
        cases.drop(name, frame_v6(&[], &ip), DropReason::NotMulticastGroup);
    }
    let never = (0..=0xfu16)
        .flat_map(|flags| {
            [0u16, 1]
                .map(|scope| Ipv6Addr::new(0xff00 | flags << 4 | scope, 0, 0, 0, 0, 0, 0x77, 1))
        })
        .chain([ALL_NODES]);
    for group in never {
        for (what, ip) in group_messages(group, group).into_iter().take(3) {
            let name = format!("{what}/untagged/group_{group}");
            cases.add(
                name,
                frame_v6(&[], &ip),
                Expected::Counted(Counter::LinkLocalReport),
            );
        }
    }
}

/// A v1 report (to `to`), a Done and a v2 report for `group`, then queries for it.
fn group_messages(group: Ipv6Addr, to: Ipv6Addr) -> Vec<(&'static str, Ipv6)> {
    let record = [MldRecord::new(CHANGE_TO_EXCLUDE, group, &[])];
    vec![
        (
            "mld_v1_report",
            Ipv6::mld(HOST, to, mld_v1(MLD_V1_REPORT, 0, group)),
        ),
        (
            "mld_done",
            Ipv6::mld(HOST, ALL_ROUTERS_V6, mld_v1(MLD_DONE, 0, group)),
        ),
        (
            "mld_v2_report",
            Ipv6::mld(HOST, ALL_MLDV2_ROUTERS, mld_v2_report(&record)),
        ),
        (
            "mld_v1_group_query",
            Ipv6::mld(QUERIER, ALL_NODES, mld_v1(MLD_QUERY, 1_000, group)),
        ),
        (
            "mld_v2_source_query",
            Ipv6::mld(QUERIER, ALL_NODES, MldQuery::of(group, &[S1]).encode()),
        ),
    ]
}
