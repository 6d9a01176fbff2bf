//! A corpus of malformed and hostile IGMP frames, generated rather than
//! listed: every truncation, every bit of every checksummed byte, every value
//! of the fields that must have one value, each applied to valid v1/v2/v3
//! reports, leaves and queries, untagged and tagged.
//!
//! Each case breaks one rule and keeps every other one (checksums resealed,
//! lengths consistent), so that its expected outcome is the reason for that
//! one rule, whatever order the program checks in.
//!
//! MLD has its own corpus (`mld_corpus`, built in `mld.rs`), kept apart so
//! that what counts IGMP frames (the lab's wire test) reads one family.

mod bases;
mod mld;
mod mutations;

use igmp_common::{Counter, DropReason};

pub use bases::{Base, Shape, TAGGINGS};

/// What the XDP program must do with a corpus frame (always XDP_PASS, table untouched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Rejected, and counted under this drop reason.
    Drop(DropReason),
    /// Valid but not snooped (224.0.0.0/24 reports, unknown IGMP types):
    /// counted under this message counter, no drop reason.
    Counted(Counter),
    /// Not recognisable as IGMP: the frame ends before the IP protocol field,
    /// or inside the Ethernet/VLAN headers. Nothing is counted.
    NotIgmp,
}

/// One frame of the corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// `<base>/<tagging>/<what is broken>`, unique in the corpus.
    pub name: String,
    /// A whole Ethernet frame.
    pub frame: Vec<u8>,
    pub expected: Expected,
}

/// Collects cases as the mutations produce them.
#[derive(Default)]
pub(crate) struct Cases(pub(crate) Vec<Case>);

impl Cases {
    pub(crate) fn add(&mut self, name: String, frame: Vec<u8>, expected: Expected) {
        self.0.push(Case {
            name,
            frame,
            expected,
        });
    }

    pub(crate) fn drop(&mut self, name: String, frame: Vec<u8>, reason: DropReason) {
        self.add(name, frame, Expected::Drop(reason));
    }
}

/// Every malformed or hostile frame, with the outcome the RFCs ask for.
pub fn malformed_corpus() -> Vec<Case> {
    let mut cases = Cases::default();
    for base in bases::all() {
        for (tagging, tags) in TAGGINGS {
            mutations::frame_cuts(&mut cases, &base, tagging, tags);
            mutations::bit_flips(&mut cases, &base, tagging, tags);
            mutations::fragments(&mut cases, &base, tagging, tags);
        }
        mutations::length_cuts(&mut cases, &base);
        mutations::checksum_values(&mut cases, &base);
        mutations::ttls(&mut cases, &base);
        mutations::ip_shapes(&mut cases, &base);
        mutations::v3_counts(&mut cases, &base);
        mutations::unicast_destinations(&mut cases, &base);
        mutations::stacked_vlans(&mut cases, &base);
    }
    mutations::groups(&mut cases);
    mutations::multicast_destinations(&mut cases);
    mutations::oversize(&mut cases);
    cases.0
}

/// Every malformed or hostile MLD frame, with the outcome RFC 2710 and RFC
/// 3810 ask for. `Expected::NotIgmp` there: not MLD, nothing counted.
pub fn mld_corpus() -> Vec<Case> {
    let mut cases = Cases::default();
    mld::corpus(&mut cases);
    cases.0
}

/// How many frames of `cases` each expected outcome has.
pub fn tally(cases: &[Case]) -> std::collections::BTreeMap<String, u64> {
    let mut totals = std::collections::BTreeMap::new();
    for case in cases {
        *totals.entry(outcome_name(case.expected)).or_default() += 1;
    }
    totals
}

/// `drop:<reason>`, `counted:<counter>` or `not_igmp`.
pub fn outcome_name(expected: Expected) -> String {
    match expected {
        Expected::Drop(reason) => format!("drop:{}", reason.name()),
        Expected::Counted(counter) => format!("counted:{}", counter.name()),
        Expected::NotIgmp => "not_igmp".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_corpus_is_large_named_uniquely_and_sendable() {
        let corpus = malformed_corpus();
        assert!(corpus.len() >= 10_000, "{} frames", corpus.len());
        let mut names = HashSet::new();
        for case in &corpus {
            assert!(names.insert(case.name.clone()), "{} twice", case.name);
            // Shorter frames are refused by BPF_PROG_TEST_RUN and by AF_PACKET.
            assert!(case.frame.len() >= 14, "{}", case.name);
        }
    }

    #[test]
    fn the_mld_corpus_is_large_named_uniquely_and_sendable() {
        let corpus = mld_corpus();
        assert!(corpus.len() >= 10_000, "{} frames", corpus.len());
        let mut names = HashSet::new();
        for case in &corpus {
            assert!(names.insert(case.name.clone()), "{} twice", case.name);
            assert!(case.frame.len() >= 14, "{}", case.name);
        }
    }

    #[test]
    fn every_drop_reason_but_port_blocked_and_rate_limited_is_exercised() {
        let totals = tally(&[malformed_corpus(), mld_corpus()].concat());
        for reason in DropReason::ALL {
            // Those two are about the port, not the frame (see ports.rs, limits.rs).
            if !matches!(reason, DropReason::PortBlocked | DropReason::RateLimited) {
                let name = outcome_name(Expected::Drop(reason));
                assert!(totals.contains_key(&name), "no case for {name}");
            }
        }
    }
}
