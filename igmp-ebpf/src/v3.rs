//! Source-filtering reports, IGMPv3's (RFC 3376 §4.2) and MLDv2's (RFC 3810
//! §5.2), which share one layout over addresses of 4 and 16 octets:
//! validated whole first, then applied, so a malformed report never changes
//! the table halfway.
//!
//! Records are walked with `bpf_loop`: the verifier checks the callback
//! instead of every unrolled iteration of a records × sources nest, which
//! exceeds its million-instruction budget. The apply pass takes one *item*
//! per iteration, a record header or one of its sources, so that its callback
//! holds no loop. Verifiers from 6.8 on check a callback again and again
//! until the state it is entered with repeats, so what changes from one
//! iteration to the next (the walk's cursor) lives in a per-CPU scratch map,
//! whose contents the verifier does not track, and the stack the callbacks
//! see stays the same. Callbacks carry no packet pointer: a report's walk
//! reads the copy of the message its checksum was summed from
//! (`checksum::copied`), at offsets from the message's start; a query's
//! reads the frame with the hook's load helper (`frame::load`).

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{btf_maps::PerCpuArray, helpers::bpf_loop, macros::btf_map};
use igmp_common::{filter_mode, Counter, DropReason, MAX_V3_RECORDS, MAX_V3_SOURCES_PER_RECORD};

use crate::{
    checksum,
    family::Family,
    frame::{self, Frame, Hook},
    headers::RecordHeader,
    membership::{self, GroupReport, GroupState, Named, Origin, QueryInfo},
};

/// Group record types (RFC 3376 §4.2.12).
const MODE_IS_INCLUDE: u8 = 1;
const MODE_IS_EXCLUDE: u8 = 2;
const CHANGE_TO_INCLUDE: u8 = 3;
const CHANGE_TO_EXCLUDE: u8 = 4;
const ALLOW_NEW_SOURCES: u8 = 5;
const BLOCK_OLD_SOURCES: u8 = 6;

/// The report's header before its first record: 8 octets in both families.
const FIRST_RECORD: usize = 8;

/// `bpf_loop` callback results.
const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// One group record header, located.
pub struct Record<A: Family> {
    kind: u8,
    group: A,
    sources: usize,
    /// Offset of the first source address.
    sources_at: usize,
    /// Offset of the next record.
    next: usize,
}

/// What the callbacks share, on the stack: the same at every iteration.
#[repr(C)]
pub struct RecordWalk<A: Walked> {
    origin: Origin<A>,
    /// This CPU's `V3_WALK` (`MLD_WALK`) entry.
    cursor: *mut WalkCursor<A>,
}

/// Where a walk is, changed at every iteration.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WalkCursor<A: Family> {
    /// Offset in the message of the next record (or, while `sources.left >
    /// 0`, source) to read.
    at: usize,
    /// The message's length.
    end: usize,
    /// 0, or 1 + the `DropReason` that stopped validation.
    error: u32,
    /// Records still to apply.
    records_left: u32,
    /// Items the apply pass takes: each walked record and its walked sources.
    items: u32,
    _pad: u32,
    /// The record whose sources the apply pass is reading.
    sources: SourceCursor<A>,
}

#[btf_map]
static V3_WALK: PerCpuArray<WalkCursor<[u8; 4]>, 1> = PerCpuArray::new();

#[btf_map]
static MLD_WALK: PerCpuArray<WalkCursor<[u8; 16]>, 1> = PerCpuArray::new();

/// A family whose reports are walked: where its walk's cursor lives, and
/// how an item is applied. MLD's item is a function of its own (a BPF-to-BPF
/// call): inlined, its 16-octet keys and values would put the callback's
/// frame past what the verifier allows on top of the program's; IGMP's is
/// inlined, as its small frame fits and a call would cost every record.
pub trait Walked: Family {
    fn cursor() -> Option<*mut WalkCursor<Self>>;
    fn apply_record(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64;
    fn apply_source(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64;
    fn finish_record(origin: &Origin<Self>, cursor: &mut WalkCursor<Self>);
}

impl Walked for [u8; 4] {
    #[inline(always)]
    fn cursor() -> Option<*mut WalkCursor<Self>> {
        V3_WALK.get_ptr_mut(0)
    }
    #[inline(always)]
    fn apply_record(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64 {
        apply_record::<Self>(walk, cursor)
    }
    #[inline(always)]
    fn apply_source(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64 {
        apply_source::<Self>(walk, cursor)
    }
    #[inline(always)]
    fn finish_record(origin: &Origin<Self>, cursor: &mut WalkCursor<Self>) {
        finish_record(origin, cursor)
    }
}

impl Walked for [u8; 16] {
    #[inline(always)]
    fn cursor() -> Option<*mut WalkCursor<Self>> {
        MLD_WALK.get_ptr_mut(0)
    }
    #[inline(never)]
    fn apply_record(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64 {
        apply_record::<Self>(walk, cursor)
    }
    #[inline(never)]
    fn apply_source(walk: &RecordWalk<Self>, cursor: &mut WalkCursor<Self>) -> i64 {
        apply_source::<Self>(walk, cursor)
    }
    #[inline(never)]
    fn finish_record(origin: &Origin<Self>, cursor: &mut WalkCursor<Self>) {
        finish_record(origin, cursor)
    }
}

/// The sources of the record being applied, read one per `bpf_loop` iteration.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SourceCursor<A: Family> {
    /// Offset of the record after this one.
    next_record: usize,
    group: A,
    /// Sources still to read (at most `MAX_V3_SOURCES_PER_RECORD`).
    left: u16,
    /// Sources past that bound: counted, not read.
    cut: u16,
    record_type: u8,
    /// What each source does (`SourceAction`).
    action: SourceAction,
    /// TO_IN that left EXCLUDE mode: the group is queried once the sources
    /// are in (RFC 3376 §6.4.2).
    leave_after: bool,
    /// The group's mode before the record (`filter_mode::*`, 0: no entry).
    group_mode: u8,
    /// The group's `last_report_ns` before the record: in EXCLUDE mode its
    /// last EXCLUDE record, which deleted the sources it did not name.
    excluded_ns: u64,
}

impl<A: Family> SourceCursor<A> {
    /// What the record says about its group, for each of its sources.
    #[inline(always)]
    fn report(&self) -> GroupReport<A> {
        GroupReport {
            group: self.group,
            version: A::FILTERING_VERSION,
            record_type: self.record_type,
        }
    }
}

/// The report of `len` octets claiming `records` records, read from the
/// copy `checksum::is_valid_kept` (or `Kept::Copy`) left of it. The caller
/// checked where it was sent.
#[inline(always)]
pub fn report<A: Walked>(len: usize, records: usize, origin: Origin<A>) -> Result<(), DropReason> {
    let walked = records.min(MAX_V3_RECORDS) as u32;
    // Index 0 of a one-entry array is always there; the check is the verifier's.
    let Some(cursor) = A::cursor() else {
        return Ok(());
    };
    let first = FIRST_RECORD;
    // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
    unsafe {
        *cursor = WalkCursor {
            at: first,
            end: len,
            error: 0,
            records_left: walked,
            items: 0,
            _pad: 0,
            sources: SourceCursor::default(),
        };
    }
    let mut walk = RecordWalk { origin, cursor };
    run(walked, validate_record::<A>, &mut walk);
    let (error, items) = unsafe { ((*cursor).error, (*cursor).items) };
    if error != 0 {
        return Err(drop_reason(error - 1));
    }
    let stats = walk.origin.stats;
    stats.count(A::REPORT_COUNTER);
    if records > MAX_V3_RECORDS {
        stats.add(Counter::RecordsCut, (records - MAX_V3_RECORDS) as u64);
    }
    unsafe { (*cursor).at = first };
    run(items, apply_item::<A>, &mut walk);
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

/// Reads the record header at `at`; `end` is the message's length.
#[inline(always)]
fn record_at<A: Family>(at: usize, end: usize) -> Result<Record<A>, DropReason> {
    if at + size_of::<RecordHeader<A>>() > end {
        return Err(DropReason::RecordPastEnd);
    }
    let header: RecordHeader<A> = checksum::copied(at).ok_or(DropReason::Truncated)?;
    let sources = usize::from(u16::from_be_bytes(header.sources));
    let sources_at = at + size_of::<RecordHeader<A>>();
    let sources_end = sources_at + sources * size_of::<A>();
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

extern "C" fn validate_record<A: Walked>(_index: u64, state: *mut c_void) -> i64 {
    let walk = unsafe { &*state.cast::<RecordWalk<A>>() };
    let cursor = unsafe { &mut *walk.cursor };
    match check_record::<A>(cursor) {
        Ok(record) => {
            cursor.at = record.next;
            // An upper bound: records whose sources are not read take fewer.
            cursor.items += 1 + record.sources.min(MAX_V3_SOURCES_PER_RECORD) as u32;
            CONTINUE
        }
        Err(reason) => {
            cursor.error = reason as u32 + 1;
            STOP
        }
    }
}

#[inline(always)]
fn check_record<A: Family>(cursor: &WalkCursor<A>) -> Result<Record<A>, DropReason> {
    let record = record_at::<A>(cursor.at, cursor.end)?;
    if !(MODE_IS_INCLUDE..=BLOCK_OLD_SOURCES).contains(&record.kind) {
        return Err(DropReason::UnknownRecordType);
    }
    if !record.group.is_multicast() {
        return Err(DropReason::NotMulticastGroup);
    }
    Ok(record)
}

/// One item of the apply pass: the next source of the current record, or
/// the next record's header.
extern "C" fn apply_item<A: Walked>(_index: u64, state: *mut c_void) -> i64 {
    let walk = unsafe { &*state.cast::<RecordWalk<A>>() };
    let cursor = unsafe { &mut *walk.cursor };
    let next = if cursor.sources.left > 0 {
        A::apply_source(walk, cursor)
    } else {
        A::apply_record(walk, cursor)
    };
    // Here rather than in either: a call from them would stack one more
    // frame on theirs.
    if next == CONTINUE && cursor.sources.left == 0 {
        A::finish_record(&walk.origin, cursor);
    }
    next
}

/// The next record's header.
#[inline(always)]
fn apply_record<A: Walked>(walk: &RecordWalk<A>, cursor: &mut WalkCursor<A>) -> i64 {
    if cursor.records_left == 0 {
        return STOP;
    }
    cursor.records_left -= 1;
    // Validated already; a failure here is only the verifier's view of it.
    let Ok(record) = record_at::<A>(cursor.at, cursor.end) else {
        return STOP;
    };
    cursor.sources = apply(&walk.origin, &record);
    cursor.at = record.sources_at;
    CONTINUE
}

/// One record, as the router side of RFC 3376 §6.4 reads it: the group's
/// update now, its sources in the items that follow. Timers and
/// group-specific queries are user space's part.
#[inline(always)]
fn apply<A: Family>(origin: &Origin<A>, record: &Record<A>) -> SourceCursor<A> {
    origin.stats.count(A::RECORD_COUNTER);
    let mut cursor = SourceCursor {
        next_record: record.next,
        group: record.group,
        record_type: record.kind,
        ..SourceCursor::default()
    };
    if record.group.is_never_snooped() {
        origin.stats.count(Counter::LinkLocalReport);
        return cursor;
    }
    let report = GroupReport {
        group: record.group,
        version: A::FILTERING_VERSION,
        record_type: record.kind,
    };
    cursor.action = match record.kind {
        MODE_IS_EXCLUDE | CHANGE_TO_EXCLUDE => {
            let before = membership::report_exclude(origin, &report);
            cursor.group_mode = before.mode;
            cursor.excluded_ns = before.last_report_ns;
            if before.mode == filter_mode::EXCLUDE {
                SourceAction::ExcludeKept
            } else {
                SourceAction::Exclude
            }
        }
        MODE_IS_INCLUDE | ALLOW_NEW_SOURCES => {
            // IS_IN {} and ALLOW {} ask for nothing.
            if record.sources == 0 {
                return cursor;
            }
            membership::report_include(origin, &report);
            SourceAction::Include
        }
        CHANGE_TO_INCLUDE => {
            if record.sources == 0 {
                membership::leave(origin, &report);
                return cursor;
            }
            let mode = membership::report_include(origin, &report);
            cursor.leave_after = mode == filter_mode::EXCLUDE;
            SourceAction::Include
        }
        _ => {
            let group = membership::group_state(origin, record.group);
            cursor.group_mode = group.mode;
            cursor.excluded_ns = group.last_report_ns;
            SourceAction::Block
        }
    };
    cursor.left = record.sources.min(MAX_V3_SOURCES_PER_RECORD) as u16;
    cursor.cut = record.sources.saturating_sub(MAX_V3_SOURCES_PER_RECORD) as u16;
    cursor
}

/// The next source of the current record.
#[inline(always)]
fn apply_source<A: Walked>(walk: &RecordWalk<A>, cursor: &mut WalkCursor<A>) -> i64 {
    // Within the message: validation checked each record's sources.
    let Some(source) = checksum::copied::<A>(cursor.at) else {
        return STOP;
    };
    let report = cursor.sources.report();
    let origin = &walk.origin;
    let named = match cursor.sources.action {
        SourceAction::Include => Named::Asked,
        SourceAction::Exclude => Named::ExcludedFromInclude,
        SourceAction::ExcludeKept => Named::ExcludedInExclude {
            since: cursor.sources.excluded_ns,
        },
        SourceAction::Block => {
            let group = GroupState {
                mode: cursor.sources.group_mode,
                last_report_ns: cursor.sources.excluded_ns,
            };
            membership::source_leave(origin, &report, source, &group);
            return next_source(cursor);
        }
    };
    membership::source_seen(origin, &report, source, named);
    next_source(cursor)
}

#[inline(always)]
fn next_source<A: Family>(cursor: &mut WalkCursor<A>) -> i64 {
    cursor.at += size_of::<A>();
    cursor.sources.left -= 1;
    CONTINUE
}

/// After a record's last source: what waits for the sources, then on to
/// the next record.
#[inline(always)]
fn finish_record<A: Family>(origin: &Origin<A>, cursor: &mut WalkCursor<A>) {
    let sources = cursor.sources;
    if sources.cut > 0 {
        origin
            .stats
            .add(Counter::SourcesCut, u64::from(sources.cut));
        membership::mark_sources_truncated(origin, sources.group);
    }
    if sources.leave_after {
        membership::leave(origin, &sources.report());
    }
    cursor.at = sources.next_record;
}

/// What the sources of a record do to the table (`membership::Named`).
#[repr(u8)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceAction {
    #[default]
    Include,
    /// IS_EX or TO_EX taking the group from INCLUDE to EXCLUDE.
    Exclude,
    /// IS_EX or TO_EX with the group in EXCLUDE mode already.
    ExcludeKept,
    Block,
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

/// What the query walk's callback reads, on the stack: the same at every
/// iteration, the source's offset following from the iteration's index.
#[repr(C)]
struct QueryWalk<A: Family> {
    ctx: *mut c_void,
    origin: Origin<A>,
    group: A,
    max_resp_code: u8,
    _pad: [u8; 3],
    /// Offset of the first source address.
    first: usize,
}

/// The `count` sources of a group-and-source-specific query from `first`,
/// each told to user space, which lowers its timers (RFC 3376 §6.6.1).
/// The caller checked that they lie within the message.
#[inline(always)]
pub fn query_sources<H: Hook, A: Family>(
    frame: &Frame<H>,
    first: usize,
    count: u32,
    query: &QueryInfo<A>,
    origin: &Origin<A>,
) {
    let mut walk = QueryWalk {
        ctx: frame.ctx(),
        origin: *origin,
        group: query.group,
        max_resp_code: query.max_resp_code,
        _pad: [0; 3],
        first,
    };
    run(count, query_source::<H, A>, &mut walk);
}

extern "C" fn query_source<H: Hook, A: Family>(index: u64, state: *mut c_void) -> i64 {
    let walk = unsafe { &*state.cast::<QueryWalk<A>>() };
    // `index` < MAX_V3_SOURCES_PER_RECORD: the verifier sees it bounded by the loop count.
    let at = walk.first + (index as usize) * size_of::<A>();
    let Some(source) = frame::load::<H, A>(walk.ctx, at) else {
        return STOP;
    };
    membership::query_source_seen(&walk.origin, walk.group, source, walk.max_resp_code);
    CONTINUE
}
