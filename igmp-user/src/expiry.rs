//! When entries go: pure decisions over an entry and the clock, kept apart
//! from the maps so they can be tested without a kernel.

use igmp_common::{
    membership_flags, router_flags, source_flags, Membership, RouterPort, SourceEntry,
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
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Left => "leave",
            Self::FastLeave => "fast-leave",
        }
    }
}

pub fn group(entry: &Membership, now: u64, timers: &Timers) -> Verdict {
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

pub fn router(entry: &RouterPort, now: u64, timers: &Timers) -> Verdict {
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
        let port = RouterPort {
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
