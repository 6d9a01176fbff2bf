//! The control plane: how soon a join is forwarded, and how the table and
//! the daemon scale.

use std::{
    net::{Ipv4Addr, UdpSocket},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use igmp_common::map_names;
use igmp_lab::{in_netns, wait_for, DATA_PORT};
use igmp_tests::{frames::*, snooped::Snooped};

use crate::report::{percentile, Section};
use igmp_tests::process::{cpu_ns, rss_kib};

const MEMBER: usize = 0;
const SENDER: usize = 1;
/// What the bench daemons run with: no limit in the way of the figures.
pub(crate) const UNLIMITED: [&str; 6] = [
    "--max-groups-per-port",
    "0",
    "--max-groups",
    "0",
    "--report-rate",
    "0",
];

fn join_group(n: u32) -> Ipv4Addr {
    let [_, a, b, c] = n.to_be_bytes();
    Ipv4Addr::new(239, 60 + a, b, c)
}

/// Report on the wire → first data frame forwarded to the new member. A
/// sender streams to the group being joined, dropped until the join (the
/// daemon's unregistered policy is `drop`); the member injects a v2 report
/// and waits on a raw socket for the first datagram of that group.
/// Between two datagrams of the join latency's stream (the sleep itself
/// takes longer: the timer's slack).
const STREAM_GAP: Duration = Duration::from_micros(20);

pub fn join_latency(quick: bool) -> Result<Section> {
    let joins = if quick { 200 } else { 1000 };
    let mut args = vec!["--unregistered", "drop"];
    args.extend(UNLIMITED);
    let snooped = Snooped::new(3, &args);
    let lab = &snooped.lab;
    let current = Arc::new(AtomicU32::new(u32::from(join_group(0))));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = lab.hosts[SENDER].clone();
    let stream = {
        let (current, stop) = (current.clone(), stop.clone());
        std::thread::spawn(move || {
            in_netns(&sender.netns, || {
                let socket = UdpSocket::bind((sender.address, 0))?;
                socket.set_multicast_ttl_v4(8)?;
                while !stop.load(Ordering::Relaxed) {
                    let group = Ipv4Addr::from(current.load(Ordering::Relaxed));
                    let _ = socket.send_to(&[0x5a; 32], (group, DATA_PORT));
                    // Paced: a sender flat out on one of two CPUs starved the
                    // capture and the daemon, and their wait was the tail.
                    std::thread::sleep(STREAM_GAP);
                }
                Ok(())
            })
        })
    };
    let member = lab.hosts[MEMBER].address;
    let (injector, capture) = (lab.injector(MEMBER)?, lab.capture(MEMBER)?);
    let mut latencies = Vec::new();
    for n in 1..=joins {
        let group = join_group(n);
        current.store(u32::from(group), Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2));
        capture.drain();
        let report = v2_report(member, group);
        let started = Instant::now();
        injector.send(&report).context("sending the report")?;
        if capture.wait_for(Duration::from_millis(200), |frame| {
            is_datagram_to(frame, group)
        }) {
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    stop.store(true, Ordering::Relaxed);
    stream
        .join()
        .map_err(|_| anyhow::anyhow!("the stream panicked"))??;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let missed = joins as usize - latencies.len();
    Ok(Section {
        title: "Join latency".into(),
        text: format!(
            "{joins} joins, each of a new group: a v2 report injected on the member's wire while \
             a sender streams that group (a datagram every {gap} µs or so, dropped until the \
             join), until the first datagram reaches the member (AF_PACKET, µs; the wait for \
             the sender's next datagram included). The path: the program learns the report \
             and registers the group itself, so the next datagram is forwarded; the daemon \
             works the group's destinations out after, through the ring buffer. Target: p99 \
             ≤ 1 ms.",
            gap = STREAM_GAP.as_micros()
        ),
        header: [
            "joins",
            "p50 (µs)",
            "p99 (µs)",
            "max (µs)",
            "not forwarded within 200 ms",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![vec![
            joins.to_string(),
            format!("{p50:.0}"),
            format!("{p99:.0}"),
            format!("{:.0}", percentile(&latencies, 100.0)),
            missed.to_string(),
        ]],
        json: serde_json::json!({
            "joins": joins, "p50_us": p50, "p99_us": p99,
            "max_us": percentile(&latencies, 100.0), "missed": missed,
        }),
    })
}

/// A UDP datagram to `group` (the member's own report goes by too).
fn is_datagram_to(frame: &[u8], group: Ipv4Addr) -> bool {
    frame.len() >= 34 && frame[23] == 17 && frame[30..34] == group.octets()
}

/// Groups joined on every port of a 4-port lab with crafted v3 reports (32
/// records each); the figures a large deployment cares about.
pub fn scale(quick: bool) -> Result<Section> {
    let sizes: &[u32] = if quick {
        &[10_000]
    } else {
        &[100_000, 250_000]
    };
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for &groups in sizes {
        let figures = scale_run(groups)?;
        rows.push(vec![
            groups.to_string(),
            (groups * 4).to_string(),
            format!("{:.2}", figures.absorb_s),
            format!("{:.2}", figures.backlog_s),
            format!("{:.1}", figures.map_mib),
            format!("{:.1}", figures.rss_mib),
            format!("{:.2}", figures.idle_cpu_percent),
            format!("{:.2}", figures.expiry_s),
            format!("{:.2}", figures.expiry_cpu_us_per_entry),
        ]);
        json.push(serde_json::json!({
            "groups": groups, "entries": groups * 4, "absorb_s": figures.absorb_s,
            "backlog_s": figures.backlog_s,
            "map_mib": figures.map_mib, "rss_mib": figures.rss_mib,
            "idle_cpu_percent": figures.idle_cpu_percent, "expiry_s": figures.expiry_s,
            "expiry_cpu_us_per_entry": figures.expiry_cpu_us_per_entry,
        }));
    }
    Ok(Section {
        title: "Scale".into(),
        text: "Every group joined on 4 ports by crafted IGMPv3 reports (32 records each) sent \
               back to back from the 4 hosts. Absorb: first report to every group worked out by \
               the daemon for the fast path (its 4 member ports counted; the program itself \
               registers a group at its first report). Backlog: from then until the daemon's CPU time stops \
               growing for 0.5 s (events queued in the flood, the catch-up for those the \
               full ring buffer lost). Map memory: bpftool's memlock of all maps. Idle CPU: the \
               daemon's user+system time over 5 s with nothing arriving (/proc counts it in 10 ms \
               ticks: 0.00 means under 0.2 %). Expiry: every entry \
               expires at once (GMI 25 s); the time from the GMI to an empty table, and the \
               daemon's CPU per expired entry (flat across sizes: the sweep costs what it \
               removes). Targets: idle CPU < 1 %, RSS ≤ 200 MB."
            .into(),
        header: [
            "groups",
            "entries",
            "absorb (s)",
            "backlog (s)",
            "map memory (MiB)",
            "daemon RSS (MiB)",
            "idle daemon CPU (%)",
            "expiry of all (s)",
            "daemon CPU per expiry (µs)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        json: serde_json::Value::Array(json),
    })
}

struct ScaleFigures {
    absorb_s: f64,
    backlog_s: f64,
    map_mib: f64,
    rss_mib: f64,
    idle_cpu_percent: f64,
    expiry_s: f64,
    expiry_cpu_us_per_entry: f64,
}

/// Ports every group is joined on.
const MEMBER_PORTS: u32 = 4;

fn scale_run(groups: u32) -> Result<ScaleFigures> {
    let entries = groups * MEMBER_PORTS;
    let table_size = (entries + entries / 4)
        .next_power_of_two()
        .max(1024)
        .to_string();
    let mut args = vec![
        "--table-size",
        &table_size,
        "--query-interval",
        "10",
        "--query-response-interval",
        "5",
    ];
    args.extend(UNLIMITED);
    let snooped = Snooped::new(MEMBER_PORTS as usize, &args);
    let lab = &snooped.lab;
    let pid = lab.daemon_pid().context("no daemon")?;
    let reports: Vec<Vec<Vec<u8>>> = lab
        .hosts
        .iter()
        .map(|host| v3_reports(host.address, groups))
        .collect();
    let started = Instant::now();
    let refused = std::thread::scope(|scope| {
        let senders: Vec<_> = reports
            .iter()
            .enumerate()
            .map(|(index, frames)| scope.spawn(move || lab.inject_all(index, frames)))
            .collect();
        senders
            .into_iter()
            .map(|sender| sender.join().expect("sender thread"))
            .sum::<Result<usize>>()
    })?;
    if refused > 0 {
        bail!("{refused} reports refused by the hosts' interfaces");
    }
    let sent = Instant::now();
    let tables = snooped.tables();
    // The program registers a group from its first report; the daemon then
    // counts its member ports and works its destinations out.
    let worked_out = || {
        tables
            .forwarding
            .groups
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, entry)| entry.ports == MEMBER_PORTS)
            .count()
    };
    let absorbed = wait_for(Duration::from_secs(120), || worked_out() == groups as usize);
    if !absorbed {
        bail!(
            "{} of {groups} groups worked out by the daemon after 120 s",
            worked_out()
        );
    }
    let absorb_s = started.elapsed().as_secs_f64();
    let map_mib = map_memory(&snooped)? as f64 / (1 << 20) as f64;
    let rss_mib = rss_kib(pid)? as f64 / 1024.0;
    // Idle means after the backlog: events queued during the flood, and the
    // catch-up for those the full ring buffer lost, take the daemon a moment more.
    let backlog_s = settle(pid)?;
    let idle_start = cpu_ns(pid)?;
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu_percent = (cpu_ns(pid)? - idle_start) as f64 / 5e9 * 100.0;
    // GMI = 2 × 10 s + 5 s after the last report.
    let gmi = sent + Duration::from_secs(25);
    if let Some(wait) = gmi.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait.saturating_sub(Duration::from_millis(500)));
    }
    let sweep_start = cpu_ns(pid)?;
    let emptied = wait_for(Duration::from_secs(300), || {
        tables.learned.membership.keys().next().is_none()
    });
    // Reported, not fatal: a table that does not empty is itself the figure.
    let expiry_s = if emptied {
        Instant::now().saturating_duration_since(gmi).as_secs_f64()
    } else {
        f64::NAN
    };
    let expiry_cpu_us_per_entry = (cpu_ns(pid)? - sweep_start) as f64 / 1e3 / f64::from(entries);
    Ok(ScaleFigures {
        absorb_s,
        backlog_s,
        map_mib,
        rss_mib,
        idle_cpu_percent,
        expiry_s,
        expiry_cpu_us_per_entry,
    })
}

/// Waits until the daemon used no CPU for 0.5 s (at most 60 s); returns how long that took.
fn settle(pid: u32) -> Result<f64> {
    let started = Instant::now();
    let mut last = cpu_ns(pid)?;
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_ns(pid)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// IGMPv3 reports from `host` joining groups 0..`groups`, 32 records each.
pub(crate) fn v3_reports(host: Ipv4Addr, groups: u32) -> Vec<Vec<u8>> {
    (0..groups)
        .collect::<Vec<_>>()
        .chunks(32)
        .map(|chunk| {
            let records: Vec<Record> = chunk
                .iter()
                .map(|&n| {
                    let [_, a, b, c] = n.to_be_bytes();
                    Record::new(CHANGE_TO_EXCLUDE, Ipv4Addr::new(239, 128 + a, b, c), &[])
                })
                .collect();
            v3_report_frame(host, &records)
        })
        .collect()
}

/// Memlock of every pinned map, as bpftool reports it.
fn map_memory(snooped: &Snooped) -> Result<u64> {
    let mut total = 0;
    for name in map_names::ALL {
        let output = Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(snooped.pin_dir.join(name))
            .output()
            .context("running bpftool")?;
        let map: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        total += map["bytes_memlock"].as_u64().unwrap_or(0);
    }
    Ok(total)
}
