//! The control plane: how soon a join is forwarded, and how the table and
//! the daemon scale.

use std::{
    net::{Ipv4Addr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
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

const MEMBER: usize = 0;
const SENDER: usize = 1;
/// What the bench daemons run with: no limit in the way of the figures.
const UNLIMITED: [&str; 6] = [
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
                }
                Ok(())
            })
        })
    };
    let member = lab.hosts[MEMBER].clone();
    let latencies = in_netns(&member.netns, || {
        let socket = raw_receiver(&member.interface)?;
        let mut latencies = Vec::new();
        for n in 1..=joins {
            let group = join_group(n);
            current.store(u32::from(group), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
            socket.drain();
            let report = v2_report(member.address, group);
            let started = Instant::now();
            socket.send(&report)?;
            if socket.wait_for_datagram(group, Duration::from_millis(200)) {
                latencies.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok(latencies)
    });
    stop.store(true, Ordering::Relaxed);
    stream
        .join()
        .map_err(|_| anyhow::anyhow!("the stream panicked"))??;
    let latencies = latencies?;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let missed = joins as usize - latencies.len();
    Ok(Section {
        title: "Join latency".into(),
        text: format!(
            "{joins} joins, each of a new group: a v2 report injected on the member's wire while \
             a sender streams that group (dropped until the join), until the first datagram \
             reaches the member (AF_PACKET, µs). The path: XDP learns the report, the event \
             reaches the daemon through the ring buffer, the daemon registers the group for \
             the fast path. Target: p99 ≤ 1 ms."
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

/// A raw socket on the member's interface: sends its reports, sees its data.
struct RawReceiver {
    socket: OwnedFd,
    address: libc::sockaddr_ll,
}

fn raw_receiver(interface: &str) -> Result<RawReceiver> {
    let name = std::ffi::CString::new(interface)?;
    // SAFETY: if_nametoindex reads a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: a plain socket(2) call; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if fd < 0 || ifindex == 0 {
        bail!(
            "raw socket on {interface}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd is fresh and owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = ifindex as i32;
    // SAFETY: a valid address of the stated length.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        bail!(
            "binding the raw socket: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(RawReceiver { socket, address })
}

impl RawReceiver {
    fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: valid buffer and address of the stated lengths.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error()).context("sending the report");
        }
        Ok(())
    }

    /// One incoming frame, if any arrives within `timeout`.
    fn receive(&self, buffer: &mut [u8], timeout: Duration) -> Option<usize> {
        let mut poll = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as i32) } <= 0 {
            return None;
        }
        // SAFETY: sockaddr_ll is plain old data, filled by recvfrom.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut length = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buffers we own, of the stated lengths.
        let read = unsafe {
            libc::recvfrom(
                self.socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut length,
            )
        };
        // Our own report goes by as an outgoing frame: not an arrival.
        (read > 0 && from.sll_pkttype != libc::PACKET_OUTGOING).then_some(read as usize)
    }

    fn drain(&self) {
        let mut buffer = [0u8; 2048];
        while self.receive(&mut buffer, Duration::ZERO).is_some() {}
    }

    fn wait_for_datagram(&self, group: Ipv4Addr, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut buffer = [0u8; 2048];
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(length) = self.receive(&mut buffer, left) {
                let frame = &buffer[..length];
                if length >= 34 && frame[23] == 17 && frame[30..34] == group.octets() {
                    return true;
                }
            }
        }
        false
    }
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
            format!("{:.1}", figures.map_mib),
            format!("{:.1}", figures.rss_mib),
            format!("{:.2}", figures.idle_cpu_percent),
            format!("{:.2}", figures.expiry_s),
            format!("{:.2}", figures.expiry_cpu_us_per_entry),
        ]);
        json.push(serde_json::json!({
            "groups": groups, "entries": groups * 4, "absorb_s": figures.absorb_s,
            "map_mib": figures.map_mib, "rss_mib": figures.rss_mib,
            "idle_cpu_percent": figures.idle_cpu_percent, "expiry_s": figures.expiry_s,
            "expiry_cpu_us_per_entry": figures.expiry_cpu_us_per_entry,
        }));
    }
    Ok(Section {
        title: "Scale".into(),
        text: "Every group joined on 4 ports by crafted IGMPv3 reports (32 records each) sent \
               back to back from the 4 hosts. Absorb: first report to every group registered \
               for the fast path. Map memory: bpftool's memlock of all maps. Idle CPU: the \
               daemon's user+system time over 5 s with nothing arriving. Expiry: every entry \
               expires at once (GMI 25 s); the time from the GMI to an empty table, and the \
               daemon's CPU per expired entry (flat across sizes: the sweep costs what it \
               removes). Targets: idle CPU < 1 %, RSS ≤ 200 MB."
            .into(),
        header: [
            "groups",
            "entries",
            "absorb (s)",
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
    map_mib: f64,
    rss_mib: f64,
    idle_cpu_percent: f64,
    expiry_s: f64,
    expiry_cpu_us_per_entry: f64,
}

fn scale_run(groups: u32) -> Result<ScaleFigures> {
    let entries = groups * 4;
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
    let snooped = Snooped::new(4, &args);
    let lab = &snooped.lab;
    let pid = lab.daemon_pid().context("no daemon")?;
    let reports: Vec<Vec<Vec<u8>>> = lab
        .hosts
        .iter()
        .map(|host| v3_reports(host.address, groups))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let senders: Vec<_> = reports
            .iter()
            .enumerate()
            .map(|(index, frames)| scope.spawn(move || lab.send_frames(index, frames)))
            .collect();
        senders
            .into_iter()
            .try_for_each(|sender| sender.join().expect("sender thread"))
    })?;
    let sent = Instant::now();
    let tables = snooped.tables();
    let absorbed = wait_for(Duration::from_secs(120), || {
        tables.groups.keys().count() == groups as usize
    });
    if !absorbed {
        bail!(
            "{} of {groups} groups registered after 120 s",
            tables.groups.keys().count()
        );
    }
    let absorb_s = started.elapsed().as_secs_f64();
    let map_mib = map_memory(&snooped)? as f64 / (1 << 20) as f64;
    let rss_mib = rss_kib(pid)? as f64 / 1024.0;
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
        tables.membership.keys().next().is_none()
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
        map_mib,
        rss_mib,
        idle_cpu_percent,
        expiry_s,
        expiry_cpu_us_per_entry,
    })
}

/// IGMPv3 reports from `host` joining groups 0..`groups`, 32 records each.
fn v3_reports(host: Ipv4Addr, groups: u32) -> Vec<Vec<u8>> {
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

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")
}

/// User + system CPU time of process `pid`, in ns.
fn cpu_ns(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state.
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Ok(ticks * 1_000_000_000 / per_second)
}
