//! The daemon replaced under a stream, with a large table pinned: restarted
//! (`--keep-attached`), upgraded from a table of layout 0 (migrated, the
//! program swapped in through the pinned links), and restarted without
//! `--keep-attached` (the ports without a program meanwhile). The figures a
//! package upgrade is judged by: datagrams lost at a member's socket,
//! memberships lost, and how long the new daemon takes to follow the whole
//! table, set against its start on an empty one.

use std::{
    net::{Ipv4Addr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use igmp_lab::{in_netns, wait_for};
use igmp_tests::{
    daemon_binary,
    replace::{pin_layout_0, pinned_layout, stream_across},
    snooped::Snooped,
};

use crate::{
    control::{v3_reports, UNLIMITED},
    report::Section,
};

const STREAM: Ipv4Addr = Ipv4Addr::new(239, 61, 0, 1);
/// Datagrams sent once the new daemon runs.
const AFTER_RESTART: usize = 2000;
/// The log line that ends the new daemon's start (`daemon/mod.rs`).
const ADOPTED: &str = "table adopted";

#[derive(Clone, Copy)]
enum Case {
    Restart,
    UpgradeFromLayout0,
    RestartDetached,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::Restart => "restart, --keep-attached",
            Self::UpgradeFromLayout0 => "upgrade from layout 0, --keep-attached",
            Self::RestartDetached => "restart without --keep-attached",
        }
    }

    fn keeps_attached(self) -> bool {
        !matches!(self, Self::RestartDetached)
    }
}

struct Figures {
    memberships_before: usize,
    memberships_after: usize,
    sent: usize,
    received: usize,
    /// From the new daemon's spawn to its "table adopted".
    adopt_s: f64,
    layout_after: u32,
}

pub fn run(quick: bool) -> Result<Section> {
    let groups: u32 = if quick { 2_000 } else { 50_000 };
    let empty_start_s = empty_start()?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for case in [
        Case::Restart,
        Case::UpgradeFromLayout0,
        Case::RestartDetached,
    ] {
        let figures = replace_under_stream(groups, case)?;
        let lost = figures.sent.saturating_sub(figures.received);
        rows.push(vec![
            case.name().to_string(),
            figures.memberships_before.to_string(),
            figures
                .memberships_before
                .saturating_sub(figures.memberships_after)
                .to_string(),
            figures.sent.to_string(),
            lost.to_string(),
            format!("{:.2}", figures.adopt_s),
            format!("{:.1}", figures.adopt_s / empty_start_s),
            figures.layout_after.to_string(),
        ]);
        json.push(serde_json::json!({
            "case": case.name(), "memberships": figures.memberships_before,
            "memberships_lost": figures.memberships_before.saturating_sub(figures.memberships_after),
            "datagrams_sent": figures.sent, "datagrams_lost": lost,
            "adopt_s": figures.adopt_s, "empty_start_s": empty_start_s,
            "layout_after": figures.layout_after,
        }));
    }
    Ok(Section {
        title: "Upgrade".into(),
        text: format!(
            "{groups} groups joined on a port by crafted IGMPv3 reports, and one more by a \
             kernel member that a sender streams to (a datagram every 500 µs, from a real \
             socket to the member's real socket) while the daemon is stopped (SIGTERM) and a \
             new one started on the same pins, {AFTER_RESTART} datagrams on after it. \
             Upgrade from layout 0: the stopped daemon's table made to look like the builds' \
             before the layout version (no LAYOUT_VERSION, COUNTERS without headroom); the new \
             one migrates it and swaps its program into the pinned links. Adopt: from the new \
             daemon's spawn to its `{ADOPTED}` (every entry followed, every group's fast-path \
             entry worked out), set against its start on empty pins ({empty_start_s:.2} s) in \
             the same run. Without --keep-attached the bridge (its snooping off) floods while \
             no program is attached."
        ),
        header: [
            "case",
            "memberships",
            "memberships lost",
            "datagrams sent",
            "datagrams lost",
            "adopt (s)",
            "adopt / empty start",
            "layout after",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        json: serde_json::Value::Array(json),
    })
}

/// A start on empty pins (the lab's first daemon stopped, its pins and
/// attachments removed), to its "table adopted": the baseline of the adopt times.
fn empty_start() -> Result<f64> {
    let mut snooped = Snooped::new(2, &[]);
    snooped.lab.stop_daemon(libc::SIGTERM)?;
    igmp_user::loader::remove_pins(&snooped.pin_dir)?;
    let started = Instant::now();
    snooped
        .lab
        .start_daemon(&daemon_binary(), &snooped.pin_dir, &[])?;
    if !wait_for(Duration::from_secs(60), || {
        snooped.lab.daemon_log().contains(ADOPTED)
    }) {
        bail!("no `{ADOPTED}`:\n{}", snooped.lab.daemon_log());
    }
    Ok(started.elapsed().as_secs_f64())
}

fn replace_under_stream(groups: u32, case: Case) -> Result<Figures> {
    let table_size = ((groups + 16).next_power_of_two() * 2).to_string();
    let mut args = vec!["--table-size", table_size.as_str()];
    if case.keeps_attached() {
        args.push("--keep-attached");
    }
    args.extend(UNLIMITED);
    let mut snooped = Snooped::new(2, &args);
    let reports = v3_reports(snooped.lab.hosts[1].address, groups);
    let refused = snooped.lab.inject_all(1, &reports)?;
    if refused > 0 {
        bail!("{refused} reports refused by the host's interface");
    }
    let member = snooped.lab.join(1, STREAM)?;
    let expected = groups as usize + 1;
    if !wait_for(Duration::from_secs(60), || {
        snooped.tables().memberships().len() == expected
    }) {
        bail!(
            "{} of {expected} memberships learned",
            snooped.tables().memberships().len()
        );
    }
    let memberships_before = snooped.tables().memberships().len();
    let sender = snooped.lab.hosts[0].clone();
    let socket = in_netns(&sender.netns, || {
        let socket = UdpSocket::bind((sender.address, 0))?;
        socket.set_multicast_ttl_v4(8)?;
        Ok(socket)
    })?;
    let mut adopt_s = f64::NAN;
    let mut failure = None;
    let (sent, received) = stream_across(&socket, STREAM, &member, AFTER_RESTART, || {
        if let Err(error) = snooped.lab.stop_daemon(libc::SIGTERM) {
            failure = Some(error);
            return;
        }
        if matches!(case, Case::UpgradeFromLayout0) {
            pin_layout_0(&snooped.pin_dir);
        }
        let started = Instant::now();
        if let Err(error) = snooped
            .lab
            .start_daemon(&daemon_binary(), &snooped.pin_dir, &args)
        {
            failure = Some(error);
            return;
        }
        if wait_for(Duration::from_secs(120), || {
            snooped.lab.daemon_log().contains(ADOPTED)
        }) {
            adopt_s = started.elapsed().as_secs_f64();
        }
    });
    if let Some(error) = failure {
        return Err(error).context(case.name());
    }
    Ok(Figures {
        memberships_before,
        memberships_after: snooped.tables().memberships().len(),
        sent,
        received,
        adopt_s,
        layout_after: pinned_layout(&snooped.pin_dir),
    })
}
