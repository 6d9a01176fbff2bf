//! The ways the corpus breaks a valid message, each tied to the rule it breaks.

use std::{iter::once, net::Ipv4Addr};

use igmp_common::{Counter, DropReason};

use super::{
    bases::{frame_of, reseal_ip, Base, RecordSpan, Shape, GROUP, GROUP_B, HOST, QUERIER, S1},
    Cases, Expected,
};
use crate::frames::*;

const KNOWN_TYPES: [u8; 5] = [QUERY, V1_REPORT, V2_REPORT, V2_LEAVE, V3_REPORT];

/// Every cut of the frame with the IP total length left as it was. Cuts
/// before the IP protocol field leave nothing that says IGMP; every later
/// cut announces IGMP and ends short of what it announces.
pub fn frame_cuts(cases: &mut Cases, base: &Base, tagging: &str, tags: &[(u16, u16)]) {
    let whole = frame_of(tags, &base.ip);
    let l3 = Base::l3(tags);
    for cut in 14..whole.len() {
        let expected = if cut < l3 + 10 {
            Expected::NotIgmp
        } else {
            Expected::Drop(DropReason::Truncated)
        };
        let name = format!("{}/{tagging}/cut_at_{cut}", base.name);
        cases.add(name, whole[..cut].to_vec(), expected);
    }
}

/// Every single-bit error in the IGMP message and in the IPv4 header fields
/// only the checksum protects (RFC 1071: one flipped bit always shows).
pub fn bit_flips(cases: &mut Cases, base: &Base, tagging: &str, tags: &[(u16, u16)]) {
    let whole = frame_of(tags, &base.ip);
    let l3 = Base::l3(tags);
    let header_len = base.ip_header_len();
    let igmp = l3 + header_len;
    // TOS, identification, checksum, addresses, options: fields checked by nothing but the checksum.
    let ip_bytes = [1, 4, 5].into_iter().chain(10..header_len);
    for byte in ip_bytes {
        for bit in 0..8 {
            let mut frame = whole.clone();
            frame[l3 + byte] ^= 1 << bit;
            if checksum(&frame[l3..igmp]) != 0 {
                let name = format!("{}/{tagging}/ip_byte_{byte}_bit_{bit}", base.name);
                cases.drop(name, frame, DropReason::BadIpChecksum);
            }
        }
    }
    for byte in 0..base.message().len() {
        for bit in 0..8 {
            let mut frame = whole.clone();
            frame[igmp + byte] ^= 1 << bit;
            let name = format!("{}/{tagging}/igmp_byte_{byte}_bit_{bit}", base.name);
            if byte == 0 && !KNOWN_TYPES.contains(&frame[igmp]) {
                // An unknown type is ignored and passed on (RFC 3376 §4), checksum unread.
                cases.add(name, frame, Expected::Counted(Counter::OtherIgmpType));
            } else if checksum(&frame[igmp..]) != 0 {
                cases.drop(name, frame, DropReason::BadIgmpChecksum);
            }
        }
    }
}

/// Every value of both checksum fields but the right one (and its ones'
/// complement twin, 0x0000 for 0xffff, which is just as right).
pub fn checksum_values(cases: &mut Cases, base: &Base) {
    let whole = frame_of(&[], &base.ip);
    let l3 = 14;
    let igmp = l3 + base.ip_header_len();
    let fields = [
        (
            "igmp_checksum",
            igmp + 2,
            igmp..whole.len(),
            DropReason::BadIgmpChecksum,
        ),
        ("ip_checksum", l3 + 10, l3..igmp, DropReason::BadIpChecksum),
    ];
    for (field, at, span, reason) in fields {
        for offset in 0..2 {
            for value in 0..=255u8 {
                let mut frame = whole.clone();
                frame[at + offset] = value;
                if checksum(&frame[span.clone()]) != 0 {
                    let name = format!("{}/untagged/{field}_byte_{offset}_{value:#04x}", base.name);
                    cases.drop(name, frame, reason);
                }
            }
        }
    }
}

/// IGMP in fragments: more-fragments set, or a non-zero offset, or both.
pub fn fragments(cases: &mut Cases, base: &Base, tagging: &str, tags: &[(u16, u16)]) {
    const MF: u16 = 0x2000;
    const DF: u16 = 0x4000;
    let offsets = (0..13).map(|bit| 1u16 << bit).chain([0x1fff]);
    let values = offsets
        .flat_map(|offset| [offset, offset | MF])
        .chain([MF, MF | DF]);
    for fragment in values {
        let ip = Ipv4 {
            fragment,
            ..base.ip.clone()
        };
        let name = format!("{}/{tagging}/fragment_{fragment:#06x}", base.name);
        cases.drop(name, frame_of(tags, &ip), DropReason::IpFragment);
    }
}

/// Every TTL but 1 (RFC 2236 §2, RFC 3376 §4).
pub fn ttls(cases: &mut Cases, base: &Base) {
    for ttl in once(0).chain(2..=255) {
        let ip = Ipv4 {
            ttl,
            ..base.ip.clone()
        };
        let name = format!("{}/untagged/ttl_{ttl}", base.name);
        cases.drop(name, frame_of(&[], &ip), DropReason::BadTtl);
    }
}

/// Version, IHL and total length out of range, the header checksum resealed.
pub fn ip_shapes(cases: &mut Cases, base: &Base) {
    let whole = frame_of(&[], &base.ip);
    let l3 = 14;
    let header_len = base.ip_header_len();
    let total = header_len + base.message().len();
    let edit = |byte0: u8, total: usize| {
        let mut frame = whole.clone();
        frame[l3] = byte0;
        frame[l3 + 2..l3 + 4].copy_from_slice(&(total as u16).to_be_bytes());
        reseal_ip(&mut frame, l3, header_len);
        frame
    };
    let ihl = (header_len / 4) as u8;
    let name = |what: String| format!("{}/untagged/{what}", base.name);
    for version in (0..16).filter(|v| *v != 4) {
        let frame = edit(version << 4 | ihl, total);
        cases.drop(
            name(format!("version_{version}")),
            frame,
            DropReason::BadIpHeader,
        );
    }
    for short in 0..5 {
        let frame = edit(0x40 | short, total);
        cases.drop(name(format!("ihl_{short}")), frame, DropReason::BadIpHeader);
    }
    for long in ihl + 1..=15 {
        let claimed = usize::from(long) * 4;
        if claimed + 8 > total {
            let frame = edit(0x40 | long, total);
            let what = format!("ihl_{long}_longer_than_the_datagram");
            cases.drop(name(what), frame, DropReason::BadIpLength);
        }
        // The total length agrees with the IHL, the frame does not.
        let frame = edit(0x40 | long, claimed + base.message().len());
        cases.drop(
            name(format!("ihl_{long}_past_the_frame")),
            frame,
            DropReason::Truncated,
        );
    }
    for short in 0..header_len + 8 {
        let frame = edit(0x40 | ihl, short);
        cases.drop(
            name(format!("total_length_{short}")),
            frame,
            DropReason::BadIpLength,
        );
    }
    for long in (total + 1..=total + 64).chain([0xffff]) {
        let frame = edit(0x40 | ihl, long);
        cases.drop(
            name(format!("total_length_{long}")),
            frame,
            DropReason::Truncated,
        );
    }
}

/// Every cut of the IGMP message with the IP length telling the truth: the
/// message itself is short (RFC 3376 §4.2, §7.1).
pub fn length_cuts(cases: &mut Cases, base: &Base) {
    let message = base.message();
    let spans = base.records();
    for cut in 0..message.len() {
        let reason = match (cut, base.shape) {
            (0..8, _) => DropReason::BadIpLength,
            // 8 octets is a valid v1/v2 query (RFC 3376 §7.1).
            (8, Shape::V3Query) => continue,
            (_, Shape::V3Query) => DropReason::BadIgmpLength,
            (_, Shape::V3Report) => past_end(&spans, cut),
            _ => unreachable!("{} is 8 octets", base.name),
        };
        let mut short = message[..cut].to_vec();
        if cut >= 4 {
            short = seal_igmp(short);
        }
        let name = format!("{}/untagged/message_cut_at_{cut}", base.name);
        cases.drop(name, frame_of(&[], &base.with_message(short)), reason);
    }
}

/// What the first record that does not fit in `end` octets runs past.
fn past_end(spans: &[RecordSpan], end: usize) -> DropReason {
    for span in spans {
        if span.start + 8 > end {
            return DropReason::RecordPastEnd;
        }
        if span.sources_end > end {
            return DropReason::SourcesPastEnd;
        }
        if span.end > end {
            return DropReason::AuxPastEnd;
        }
    }
    unreachable!("every record fits in {end} octets")
}

/// Counts and lengths inside v3 messages that point past their end, and
/// record types RFC 3376 §4.2.12 does not define.
pub fn v3_counts(cases: &mut Cases, base: &Base) {
    let message = base.message().to_vec();
    let len = message.len();
    let mut edited = |what: String, edit: &dyn Fn(&mut Vec<u8>), reason: DropReason| {
        let mut broken = message.clone();
        edit(&mut broken);
        let frame = frame_of(&[], &base.with_message(seal_igmp(broken)));
        cases.drop(format!("{}/untagged/{what}", base.name), frame, reason);
    };
    let past = |minimum: usize| {
        let mut values: Vec<usize> = (minimum..minimum + 32)
            .chain([0xff, 0x100, 0xffff])
            .collect();
        values.retain(|value| *value >= minimum);
        values.dedup();
        values
    };
    match base.shape {
        Shape::V3Query => {
            for sources in past((len - 12) / 4 + 1) {
                let edit =
                    |m: &mut Vec<u8>| m[10..12].copy_from_slice(&(sources as u16).to_be_bytes());
                edited(
                    format!("sources_{sources}"),
                    &edit,
                    DropReason::BadIgmpLength,
                );
            }
        }
        Shape::V3Report => {
            let spans = base.records();
            for claimed in (spans.len() + 1..=spans.len() + 40).chain([255, 256, 0x7fff, 0xffff]) {
                let edit =
                    |m: &mut Vec<u8>| m[6..8].copy_from_slice(&(claimed as u16).to_be_bytes());
                edited(
                    format!("records_claimed_{claimed}"),
                    &edit,
                    DropReason::RecordPastEnd,
                );
            }
            for (index, span) in spans.iter().enumerate() {
                let at = span.start;
                for sources in past((len - at - 8) / 4 + 1) {
                    let edit = |m: &mut Vec<u8>| {
                        m[at + 2..at + 4].copy_from_slice(&(sources as u16).to_be_bytes())
                    };
                    let what = format!("record_{index}_sources_{sources}");
                    edited(what, &edit, DropReason::SourcesPastEnd);
                }
                for aux in (len - span.sources_end) / 4 + 1..=255 {
                    let edit = |m: &mut Vec<u8>| m[at + 1] = aux as u8;
                    edited(
                        format!("record_{index}_aux_words_{aux}"),
                        &edit,
                        DropReason::AuxPastEnd,
                    );
                }
                for kind in once(0).chain(7..=255u8) {
                    let edit = |m: &mut Vec<u8>| m[at] = kind;
                    let what = format!("record_{index}_type_{kind}");
                    edited(what, &edit, DropReason::UnknownRecordType);
                }
            }
        }
        Shape::Report | Shape::Query => {}
    }
}

/// The message sent to a unicast address instead of the one its type is sent to.
pub fn unicast_destinations(cases: &mut Cases, base: &Base) {
    for first in 1..=223 {
        let destination = Ipv4Addr::new(first, 0, 0, 9);
        let ip = Ipv4 {
            destination,
            ..base.ip.clone()
        };
        let name = format!("{}/untagged/to_{destination}", base.name);
        cases.drop(name, frame_of(&[], &ip), DropReason::BadDestination);
    }
}

/// Three and four VLAN tags, in every mix of 802.1Q and 802.1ad.
pub fn stacked_vlans(cases: &mut Cases, base: &Base) {
    let tpids = [TPID_8021Q, TPID_8021AD];
    for a in tpids {
        for b in tpids {
            for c in tpids {
                for vid in [1, 4094] {
                    let tags = [(a, vid), (b, vid), (c, vid)];
                    let name = format!("{}/tags_{a:04x}_{b:04x}_{c:04x}/vid_{vid}", base.name);
                    cases.drop(name, frame_of(&tags, &base.ip), DropReason::TooManyVlanTags);
                }
            }
        }
    }
    let four = [(TPID_8021Q, 1); 4];
    let name = format!("{}/four_tags", base.name);
    cases.drop(name, frame_of(&four, &base.ip), DropReason::TooManyVlanTags);
}

/// Groups outside 224.0.0.0/4, and 224.0.0.0/24: valid, never snooped (RFC 4541 §2.1.2).
pub fn groups(cases: &mut Cases) {
    for first in (0..=223).chain(240..=255) {
        let group = Ipv4Addr::new(first, 1, 2, 3);
        for (name, ip) in group_messages(group) {
            let name = format!("{name}/untagged/group_{group}");
            cases.drop(name, frame_of(&[], &ip), DropReason::NotMulticastGroup);
        }
        // The bad record after a good one: the good one must not be applied either.
        let records = [
            Record::new(MODE_IS_INCLUDE, GROUP, &[S1]),
            Record::new(CHANGE_TO_EXCLUDE, group, &[]),
        ];
        let ip = Ipv4::igmp(HOST, ALL_V3_ROUTERS, v3_report(&records));
        let name = format!("v3_report_rich/untagged/second_group_{group}");
        cases.drop(name, frame_of(&[], &ip), DropReason::NotMulticastGroup);
    }
    for last in 0..=255 {
        let group = Ipv4Addr::new(224, 0, 0, last);
        for (name, ip) in group_messages(group).into_iter().take(4) {
            let name = format!("{name}/untagged/group_{group}");
            cases.add(
                name,
                frame_of(&[], &ip),
                Expected::Counted(Counter::LinkLocalReport),
            );
        }
    }
}

/// Reports and leaves for `group` (the first four), then queries for it.
fn group_messages(group: Ipv4Addr) -> Vec<(&'static str, Ipv4)> {
    vec![
        (
            "v1_report",
            Ipv4::igmp(HOST, group, igmp_message(V1_REPORT, 0, group)),
        ),
        (
            "v2_report",
            Ipv4::igmp(HOST, group, igmp_message(V2_REPORT, 0, group)),
        ),
        (
            "v2_leave",
            Ipv4::igmp(HOST, ALL_ROUTERS, igmp_message(V2_LEAVE, 0, group)),
        ),
        (
            "v3_report",
            Ipv4::igmp(
                HOST,
                ALL_V3_ROUTERS,
                v3_report(&[Record::new(CHANGE_TO_EXCLUDE, group, &[])]),
            ),
        ),
        (
            "v2_group_query",
            Ipv4::igmp(QUERIER, ALL_HOSTS, igmp_message(QUERY, 10, group)),
        ),
        (
            "v3_source_query",
            Ipv4::igmp(QUERIER, ALL_HOSTS, v3_query(group, 10, 2, 125, &[S1])),
        ),
    ]
}

/// Messages sent to a link-local group other than the one their type is sent to.
pub fn multicast_destinations(cases: &mut Cases) {
    for last in 0..=255 {
        let destination = Ipv4Addr::new(224, 0, 0, last);
        let mut wrong = vec![(
            "v2_report",
            Ipv4::igmp(HOST, destination, igmp_message(V2_REPORT, 0, GROUP)),
        )];
        if last != 22 {
            let report = v3_report(&[Record::new(CHANGE_TO_EXCLUDE, GROUP, &[])]);
            wrong.push(("v3_report", Ipv4::igmp(HOST, destination, report)));
        }
        if last != 1 {
            let query = igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED);
            wrong.push(("v2_query", Ipv4::igmp(QUERIER, destination, query)));
        }
        if last != 2 {
            let leave = igmp_message(V2_LEAVE, 0, GROUP);
            wrong.push(("v2_leave", Ipv4::igmp(HOST, destination, leave)));
        }
        for (name, ip) in wrong {
            let name = format!("{name}/untagged/to_{destination}");
            cases.drop(name, frame_of(&[], &ip), DropReason::BadDestination);
        }
    }
}

/// IGMP messages longer than any Ethernet MTU carries (RFC 3376 §4.2.16
/// splits reports rather than send one this long).
pub fn oversize(cases: &mut Cases) {
    for len in 1537..=1600 {
        let mut message = igmp_message(V2_REPORT, 0, GROUP);
        message.resize(len, 0);
        let ip = Ipv4::igmp(HOST, GROUP, seal_igmp(message));
        let name = format!("v2_report/untagged/oversize_{len}");
        cases.drop(name, frame_of(&[], &ip), DropReason::BadIgmpLength);
    }
    for count in 0..=16u8 {
        let sources: Vec<Ipv4Addr> = (1..=count).map(|n| Ipv4Addr::new(192, 0, 2, n)).collect();
        let mut first = Record::new(CHANGE_TO_EXCLUDE, GROUP, &[]);
        first.aux_words = 255;
        let mut second = Record::new(MODE_IS_EXCLUDE, GROUP_B, &sources);
        second.aux_words = 255;
        let message = v3_report(&[first, second]);
        let name = format!("v3_report/untagged/oversize_{}", message.len());
        let ip = Ipv4::igmp(HOST, ALL_V3_ROUTERS, message);
        cases.drop(name, frame_of(&[], &ip), DropReason::BadIgmpLength);
    }
    for count in 382..=400u16 {
        let sources: Vec<Ipv4Addr> = (0..count)
            .map(|n| Ipv4Addr::from(0xc633_6400 + u32::from(n)))
            .collect();
        let message = v3_query(GROUP, 10, 2, 125, &sources);
        let name = format!("v3_source_query/untagged/oversize_{}", message.len());
        let ip = Ipv4::igmp(QUERIER, GROUP, message);
        cases.drop(name, frame_of(&[], &ip), DropReason::BadIgmpLength);
    }
}
