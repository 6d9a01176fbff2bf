//! When entries go: pure decisions over an entry and the clock, kept apart
//! from the maps so they can be tested without a kernel.

use igmp_common::{
    membership_flags, router_flags, source_flags, Address, Membership, RouterPort, SourceEntry,
};

use crate::timers::{nanos, Timers};

/// What to do with an entry whose deadline came.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still alive: look again at this CLOCK_MONOTONIC time.
    KeepUntil(u64),
    /// Never expires (static entries).
    KeepForever,
    Expire(Reason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No report within the group membership interval (RFC 3376 §6.4.1).
    Timeout,
    /// A leave, and no report within the last member query time (RFC 2236 §6).
    Left,
    /// A leave on a fast-leave port from its last host.
    FastLeave,
    /// The operator deleted it (`igmp-snoop mdb del` or `flush`).
    Deleted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Left => "leave",
            Self::FastLeave => "fast-leave",
            Self::Deleted => "deleted",
        }
    }
}

pub fn group<A: Address>(entry: &Membership<A>, now: u64, timers: &Timers) -> Verdict {
    if entry.flags & membership_flags::STATIC != 0 {
        return Verdict::KeepForever;
    }
    let leaving = entry.flags & membership_flags::LEAVE_PENDING != 0;
    decide(
        entry.last_report_ns,
        leaving.then_some(entry.leave_ns),
        now,
        timers,
    )
}

pub fn source(entry: &SourceEntry, now: u64, timers: &Timers) -> Verdict {
    let leaving = entry.flags & source_flags::LEAVE_PENDING != 0;
    decide(
        entry.last_report_ns,
        leaving.then_some(entry.leave_ns),
        now,
        timers,
    )
}

pub fn router<A: Address>(entry: &RouterPort<A>, now: u64, timers: &Timers) -> Verdict {
    if entry.flags & router_flags::PERMANENT != 0 {
        return Verdict::KeepForever;
    }
    let deadline = entry.last_query_ns + nanos(timers.router_timeout);
    if now >= deadline {
        Verdict::Expire(Reason::Timeout)
    } else {
        Verdict::KeepUntil(deadline)
    }
}

/// A group-specific or group-and-source-specific query (ours or another
/// querier's) lowered the entry's timer to `deadline` (RFC 2236 §6,
/// RFC 3376 §6.4.2, §6.6.1): a report after the query (`last_report_ns`,
/// the group's or the source's) answers it; no report by the deadline
/// means no member is left.
pub fn after_group_query(
    last_report_ns: u64,
    query_ns: u64,
    deadline: u64,
    now: u64,
) -> Option<Verdict> {
    if last_report_ns > query_ns {
        return None;
    }
    if now >= deadline {
        return Some(Verdict::Expire(Reason::Left));
    }
    Some(Verdict::KeepUntil(deadline))
}

/// Whether an IGMPv1 host is still present on a port for a group: its
/// last v1 report, `last_v1_report_ns`, is within the older version host
/// present timeout, which RFC 3376 §8.13 makes the group membership interval.
/// While it is, v2 leaves are ignored (RFC 2236 §4, RFC 3376 §7.3.2) and a
/// group-specific query lowers no timer: a v1 host answers any query as a
/// general one, within 10 s, past the query's short deadline.
pub fn v1_host_present(last_v1_report_ns: Option<u64>, now: u64, timers: &Timers) -> bool {
    last_v1_report_ns.is_some_and(|last| last + nanos(timers.group_membership_interval()) > now)
}

/// The Max Resp Time a query asks for (RFC 3376 §4.1.1; v2: tenths of a
/// second; v1 queries carry 0 and mean 10 s, RFC 2236 §4).
pub fn max_response_time(version: u8, code: u8) -> std::time::Duration {
    let tenths = match (version, code) {
        (1, _) | (_, 0) => 100,
        (3, code) if code >= 128 => {
            let mantissa = u64::from(code & 0x0f);
            let exponent = u32::from((code >> 4) & 0x07);
            (mantissa | 0x10) << (exponent + 3)
        }
        (_, code) => u64::from(code),
    };
    std::time::Duration::from_millis(tenths * 100)
}

/// Where the families' protocols differ, for the membership component's
/// decisions. IGMP: RFC 3376 §7.3.2, RFC 2236 §4; MLD: RFC 3810 §8.3.2,
/// RFC 2710 §4. What an older host present means for source lists (IGMPv2's
/// and MLDv1's: a v3 or MLDv2 record's sources are ignored) the program
/// applies as it learns; the daemon needs only what follows.
pub trait Protocol: Address {
    /// Whether version 1 hosts (`V1_HOSTS`, `V1_HOSTS6`) leave and answer
    /// group-specific queries. IGMPv1 hosts do neither: while one is on a
    /// port, a v2 leave cannot tell that the group has no listener left, nor
    /// may a group-specific query lower the group's timer. MLDv1 hosts send
    /// Done and answer multicast-address-specific queries: their presence
    /// changes neither.
    const V1_HOSTS_LEAVE: bool;
    /// The version a static membership the daemon makes is shown with:
    /// any source, no list (IGMPv2, MLDv1).
    const ANY_SOURCE_VERSION: u8;

    /// The Max Resp Time a query's event asks for.
    fn max_response_time(version: u8, code: u8) -> std::time::Duration;
}

impl Protocol for [u8; 4] {
    const V1_HOSTS_LEAVE: bool = false;
    const ANY_SOURCE_VERSION: u8 = igmp_common::igmp_version::V2;

    fn max_response_time(version: u8, code: u8) -> std::time::Duration {
        max_response_time(version, code)
    }
}

impl Protocol for [u8; 16] {
    const V1_HOSTS_LEAVE: bool = true;
    const ANY_SOURCE_VERSION: u8 = 1;

    /// MLD's Maximum Response Code is 16 bits (milliseconds, RFC 2710 §3.4;
    /// exponential past 32768, RFC 3810 §5.1.3), and `Event::max_resp_code`
    /// 8: the program hands the delay over as IGMPv3's Max Resp Code
    /// (tenths of a second, exponential from 128 on), which this reads as
    /// IGMPv3's. 0 is read as 10 s, as for IGMP: a timer lowered too little
    /// keeps data flowing, one lowered too much cuts a listener off.
    fn max_response_time(_version: u8, code: u8) -> std::time::Duration {
        max_response_time(igmp_common::igmp_version::V3, code)
    }
}

fn decide(last_report_ns: u64, leave_ns: Option<u64>, now: u64, timers: &Timers) -> Verdict {
    let timeout = last_report_ns + nanos(timers.group_membership_interval());
    if now >= timeout {
        return Verdict::Expire(Reason::Timeout);
    }
    // A report after the leave (leave_ns is cleared by it) cancels the leave.
    if let Some(leave_ns) = leave_ns.filter(|leave| *leave >= last_report_ns) {
        let left = leave_ns + nanos(timers.last_member_query_time());
        if now >= left {
            return Verdict::Expire(Reason::Left);
        }
        return Verdict::KeepUntil(left.min(timeout));
    }
    Verdict::KeepUntil(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn entry(last_report_s: u64, leave_s: Option<u64>) -> Membership {
        Membership {
            last_report_ns: last_report_s * SECOND,
            leave_ns: leave_s.map_or(0, |s| s * SECOND),
            flags: if leave_s.is_some() {
                membership_flags::LEAVE_PENDING
            } else {
                0
            },
            ..Membership::default()
        }
    }

    #[test]
    fn group_lives_for_the_group_membership_interval() {
        let timers = Timers::default();
        assert_eq!(
            group(&entry(100, None), 359 * SECOND, &timers),
            Verdict::KeepUntil(360 * SECOND)
        );
        assert_eq!(
            group(&entry(100, None), 360 * SECOND, &timers),
            Verdict::Expire(Reason::Timeout)
        );
    }

    #[test]
    fn leave_shortens_life_to_last_member_query_time() {
        let timers = Timers::default();
        assert_eq!(
            group(&entry(100, Some(150)), 151 * SECOND, &timers),
            Verdict::KeepUntil(152 * SECOND)
        );
        assert_eq!(
            group(&entry(100, Some(150)), 152 * SECOND, &timers),
            Verdict::Expire(Reason::Left)
        );
    }

    #[test]
    fn group_query_unanswered_expires_at_its_deadline_and_a_report_answers_it() {
        let queried = entry(100, None);
        let deadline = 112 * SECOND;
        assert_eq!(
            after_group_query(queried.last_report_ns, 110 * SECOND, deadline, 111 * SECOND),
            Some(Verdict::KeepUntil(deadline))
        );
        assert_eq!(
            after_group_query(queried.last_report_ns, 110 * SECOND, deadline, deadline),
            Some(Verdict::Expire(Reason::Left))
        );
        let answered = entry(111, None);
        assert_eq!(
            after_group_query(answered.last_report_ns, 110 * SECOND, deadline, deadline),
            None
        );
    }

    #[test]
    fn max_response_codes_decode_as_rfc_3376_says() {
        use std::time::Duration;
        assert_eq!(max_response_time(2, 100), Duration::from_secs(10));
        assert_eq!(max_response_time(1, 0), Duration::from_secs(10));
        assert_eq!(max_response_time(3, 10), Duration::from_secs(1));
        // 0x8f: mantissa 15, exponent 0 -> (15 | 16) << 3 = 248 tenths.
        assert_eq!(max_response_time(3, 0x8f), Duration::from_millis(24_800));
        // MLD's events carry IGMPv3's code whatever the version.
        assert_eq!(
            <[u8; 16] as Protocol>::max_response_time(1, 10),
            Duration::from_secs(1)
        );
        assert_eq!(
            <[u8; 16] as Protocol>::max_response_time(2, 0x8f),
            Duration::from_millis(24_800)
        );
        assert_eq!(
            <[u8; 16] as Protocol>::max_response_time(2, 0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_v1_host_is_present_for_the_group_membership_interval() {
        let timers = Timers::default();
        assert!(!v1_host_present(None, 100 * SECOND, &timers));
        assert!(v1_host_present(Some(100 * SECOND), 359 * SECOND, &timers));
        assert!(!v1_host_present(Some(100 * SECOND), 360 * SECOND, &timers));
    }

    #[test]
    fn static_entries_never_expire() {
        let mut permanent = entry(0, None);
        permanent.flags = membership_flags::STATIC;
        assert_eq!(
            group(&permanent, u64::MAX / 2, &Timers::default()),
            Verdict::KeepForever
        );
    }

    #[test]
    fn router_port_expires_after_router_timeout() {
        let timers = Timers::default();
        let port: RouterPort = RouterPort {
            last_query_ns: 10 * SECOND,
            ..RouterPort::default()
        };
        assert_eq!(
            router(&port, 264 * SECOND, &timers),
            Verdict::KeepUntil(265 * SECOND)
        );
        assert_eq!(
            router(&port, 265 * SECOND, &timers),
            Verdict::Expire(Reason::Timeout)
        );
    }
}
