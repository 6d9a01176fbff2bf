//! IGMPv3 reports (RFC 3376 §4.2): validated whole first, then applied, so a
//! malformed report never changes the table halfway.
//!
//! Records are walked with `bpf_loop`: the verifier checks the callback once
//! instead of every unrolled iteration of a records × sources nest, which
//! exceeds its million-instruction budget. Callbacks carry no packet pointer;
//! they read the frame with `bpf_xdp_load_bytes`.

use core::ffi::c_void;

use aya_ebpf::{bindings::xdp_md, helpers::bpf_loop};
use igmp_common::{
    filter_mode, igmp_version, Counter, DropReason, MAX_V3_RECORDS, MAX_V3_SOURCES_PER_RECORD,
};

use crate::{
    frame::{self, Frame},
    headers::{IgmpHeader, RecordHeader},
    igmp::{is_link_local, is_multicast, ALL_V3_ROUTERS},
    ip::IgmpPacket,
    membership::{self, GroupReport, Origin},
};

/// Group record types (RFC 3376 §4.2.12).
const MODE_IS_INCLUDE: u8 = 1;
const MODE_IS_EXCLUDE: u8 = 2;
const CHANGE_TO_INCLUDE: u8 = 3;
const CHANGE_TO_EXCLUDE: u8 = 4;
const ALLOW_NEW_SOURCES: u8 = 5;
const BLOCK_OLD_SOURCES: u8 = 6;

const FIRST_RECORD: usize = 8;
const RECORD_HEADER_LEN: usize = 8;

/// `bpf_loop` callback results.
const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// One group record header, located.
struct Record {
    kind: u8,
    group: [u8; 4],
    sources: usize,
    /// Offset of the first source address.
    sources_at: usize,
    /// Offset of the next record.
    next: usize,
}

/// State of a walk over the records, shared with the `bpf_loop` callbacks.
#[repr(C)]
struct RecordWalk {
    ctx: *mut xdp_md,
    origin: Origin,
    /// Offset of the next record to read.
    at: usize,
    /// End of the IGMP message.
    end: usize,
    /// 0, or 1 + the `DropReason` that stopped validation.
    error: u32,
}

pub fn report(
    frame: &Frame,
    packet: &IgmpPacket,
    header: &IgmpHeader,
    origin: &Origin,
) -> Result<(), DropReason> {
    if packet.destination != ALL_V3_ROUTERS {
        return Err(DropReason::BadDestination);
    }
    let records = header.v3_records();
    let walked = records.min(MAX_V3_RECORDS) as u32;
    let mut walk = RecordWalk {
        ctx: frame.ctx(),
        origin: *origin,
        at: packet.offset + FIRST_RECORD,
        end: packet.offset + packet.len,
        error: 0,
    };
    run(walked, validate_record, &mut walk);
    if walk.error != 0 {
        return Err(drop_reason(walk.error - 1));
    }
    origin.stats.count(Counter::V3Report);
    if records > MAX_V3_RECORDS {
        origin
            .stats
            .add(Counter::RecordsCut, (records - MAX_V3_RECORDS) as u64);
    }
    walk.at = packet.offset + FIRST_RECORD;
    run(walked, apply_record, &mut walk);
    Ok(())
}

#[inline(always)]
fn run<T>(count: u32, callback: extern "C" fn(u64, *mut c_void) -> i64, state: &mut T) {
    if count == 0 {
        return;
    }
    unsafe {
        bpf_loop(count, callback as *mut c_void, (state as *mut T).cast(), 0);
    }
}

/// Reads the record header at `at`; `end` is the end of the IGMP message.
#[inline(always)]
fn record_at(ctx: *mut xdp_md, at: usize, end: usize) -> Result<Record, DropReason> {
    if at + RECORD_HEADER_LEN > end {
        return Err(DropReason::RecordPastEnd);
    }
    let header: RecordHeader = frame::load(ctx, at).ok_or(DropReason::Truncated)?;
    let sources = usize::from(u16::from_be_bytes(header.sources));
    let sources_at = at + RECORD_HEADER_LEN;
    let sources_end = sources_at + sources * 4;
    if sources_end > end {
        return Err(DropReason::SourcesPastEnd);
    }
    let next = sources_end + usize::from(header.aux_words) * 4;
    if next > end {
        return Err(DropReason::AuxPastEnd);
    }
    Ok(Record {
        kind: header.kind,
        group: header.group,
        sources,
        sources_at,
        next,
    })
}

extern "C" fn validate_record(_index: u64, state: *mut c_void) -> i64 {
    let walk = unsafe { &mut *state.cast::<RecordWalk>() };
    match check_record(walk) {
        Ok(next) => {
            walk.at = next;
            CONTINUE
        }
        Err(reason) => {
            walk.error = reason as u32 + 1;
            STOP
        }
    }
}

#[inline(always)]
fn check_record(walk: &RecordWalk) -> Result<usize, DropReason> {
    let record = record_at(walk.ctx, walk.at, walk.end)?;
    if !(MODE_IS_INCLUDE..=BLOCK_OLD_SOURCES).contains(&record.kind) {
        return Err(DropReason::UnknownRecordType);
    }
    if !is_multicast(record.group) {
        return Err(DropReason::NotMulticastGroup);
    }
    Ok(record.next)
}

extern "C" fn apply_record(_index: u64, state: *mut c_void) -> i64 {
    let walk = unsafe { &mut *state.cast::<RecordWalk>() };
    // Validated already; a failure here is only the verifier's view of it.
    let Ok(record) = record_at(walk.ctx, walk.at, walk.end) else {
        return STOP;
    };
    apply(walk.ctx, &walk.origin, &record);
    walk.at = record.next;
    CONTINUE
}

/// One record, as the router side of RFC 3376 §6.4 reads it; timers and
/// group-specific queries are user space's part.
#[inline(always)]
fn apply(ctx: *mut xdp_md, origin: &Origin, record: &Record) {
    origin.stats.count(Counter::V3Record);
    if is_link_local(record.group) {
        origin.stats.count(Counter::LinkLocalReport);
        return;
    }
    let report = GroupReport {
        group: record.group,
        version: igmp_version::V3,
        record_type: record.kind,
    };
    match record.kind {
        MODE_IS_EXCLUDE | CHANGE_TO_EXCLUDE => {
            membership::report_exclude(origin, &report);
            sources(ctx, origin, &report, record, SourceAction::Exclude);
        }
        MODE_IS_INCLUDE | ALLOW_NEW_SOURCES => {
            // IS_IN {} and ALLOW {} ask for nothing.
            if record.sources > 0 {
                membership::report_include(origin, &report);
                sources(ctx, origin, &report, record, SourceAction::Include);
            }
        }
        CHANGE_TO_INCLUDE => {
            if record.sources == 0 {
                membership::leave(origin, &report);
                return;
            }
            let mode = membership::report_include(origin, &report);
            sources(ctx, origin, &report, record, SourceAction::Include);
            // Leaving EXCLUDE mode: the sources not named must be queried (RFC 3376 §6.4.2).
            if mode == filter_mode::EXCLUDE {
                membership::leave(origin, &report);
            }
        }
        _ => sources(ctx, origin, &report, record, SourceAction::Block),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceAction {
    Include,
    Exclude,
    Block,
}

/// Walks the record's sources. A plain bounded loop: it runs inside the
/// record callback, and a nested `bpf_loop` frame would not fit the
/// 512-byte stack shared by the call chain.
#[inline(always)]
fn sources(
    ctx: *mut xdp_md,
    origin: &Origin,
    report: &GroupReport,
    record: &Record,
    action: SourceAction,
) {
    let mut at = record.sources_at;
    for index in 0..MAX_V3_SOURCES_PER_RECORD {
        if index >= record.sources {
            break;
        }
        let Some(source) = frame::load::<[u8; 4]>(ctx, at) else {
            return;
        };
        match action {
            SourceAction::Include => {
                membership::source_seen(origin, report, source, filter_mode::INCLUDE)
            }
            SourceAction::Exclude => {
                membership::source_seen(origin, report, source, filter_mode::EXCLUDE)
            }
            SourceAction::Block => membership::source_leave(origin, report, source),
        }
        at += 4;
    }
    if record.sources > MAX_V3_SOURCES_PER_RECORD {
        let cut = (record.sources - MAX_V3_SOURCES_PER_RECORD) as u64;
        origin.stats.add(Counter::SourcesCut, cut);
        membership::mark_sources_truncated(origin, report.group);
    }
}

/// Inverse of `reason as u32` for the reasons validation can return.
#[inline(always)]
fn drop_reason(raw: u32) -> DropReason {
    match raw {
        r if r == DropReason::RecordPastEnd as u32 => DropReason::RecordPastEnd,
        r if r == DropReason::SourcesPastEnd as u32 => DropReason::SourcesPastEnd,
        r if r == DropReason::AuxPastEnd as u32 => DropReason::AuxPastEnd,
        r if r == DropReason::UnknownRecordType as u32 => DropReason::UnknownRecordType,
        r if r == DropReason::NotMulticastGroup as u32 => DropReason::NotMulticastGroup,
        _ => DropReason::Truncated,
    }
}
