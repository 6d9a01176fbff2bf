//! `cargo xtask bench`: the XDP program's per-frame cost, measured with
//! BPF_PROG_TEST_RUN against a no-op XDP program loaded in the same run.
//! A benchmark, not a test: it prints and writes figures, it asserts nothing.

use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, Result};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use igmp_common::{GroupEntry, GroupKey};
use igmp_tests::{frames::*, harness::Harness};

const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The no-op XDP_PASS program in the same object.
const BASELINE: &str = "igmp_snoop_baseline";
const REGISTERED: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

struct Figure {
    name: &'static str,
    ns: Vec<f64>,
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (repeat, rounds) = if quick { (100_000, 3) } else { (1_000_000, 7) };
    pin_to_cpu(0)?;
    let mut harness = Harness::new();
    let baseline: &mut Xdp = harness
        .ebpf_mut()
        .program_mut(BASELINE)
        .context("no baseline program")?
        .try_into()?;
    baseline.load()?;
    let key = GroupKey {
        vlan: 0,
        inner_vlan: 0,
        group: REGISTERED.octets(),
    };
    harness
        .tables
        .groups
        .insert(key, GroupEntry { flags: 0, ports: 1 }, 0)?;
    harness.run(&v2_report(SENDER, REGISTERED));
    let mut figures = Vec::new();
    for (name, frame) in frames() {
        let ns = (0..rounds)
            .map(|_| per_run_ns(&harness, &frame, repeat))
            .collect::<Result<_>>()?;
        figures.push(Figure { name, ns });
    }
    let baseline = (0..rounds)
        .map(|_| baseline_ns(&harness, repeat))
        .collect::<Result<Vec<_>>>()?;
    report(&figures, &baseline, repeat, quick)
}

/// The frames of issue 5, by name.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let records = |n: u8| -> Vec<Record> {
        (0..n)
            .map(|i| Record::new(CHANGE_TO_EXCLUDE, Ipv4Addr::new(239, 2, 0, i), &[]))
            .collect()
    };
    let mut tcp = Ipv4::igmp(SENDER, Ipv4Addr::new(10, 0, 0, 2), vec![0; 20]);
    tcp.protocol = 6;
    tcp.ttl = 64;
    tcp.options.clear();
    let mut malformed = v2_report(SENDER, REGISTERED);
    malformed[14 + 24 + 2] ^= 0xff;
    vec![
        (
            "unicast IPv4/TCP",
            ethernet([2, 0, 0, 0, 0, 2], &[], 0x0800, &tcp.encode()),
        ),
        (
            "multicast data, registered group",
            udp_data(&[], SENDER, REGISTERED, 64),
        ),
        (
            "multicast data, unregistered group",
            udp_data(&[], SENDER, Ipv4Addr::new(239, 9, 9, 9), 64),
        ),
        (
            "multicast data, VLAN-tagged",
            udp_data(&[(TPID_8021Q, 10)], SENDER, REGISTERED, 64),
        ),
        ("IGMPv2 report, refresh", v2_report(SENDER, REGISTERED)),
        (
            "IGMPv3 report, 1 record",
            v3_report_frame(SENDER, &records(1)),
        ),
        (
            "IGMPv3 report, 8 records",
            v3_report_frame(SENDER, &records(8)),
        ),
        (
            "IGMPv3 report, 32 records",
            v3_report_frame(SENDER, &records(32)),
        ),
        ("malformed IGMP (bad checksum)", malformed),
    ]
}

fn per_run_ns(harness: &Harness, frame: &[u8], repeat: u32) -> Result<f64> {
    Ok(harness.time(frame, repeat).as_nanos() as f64)
}

/// The no-op program on a minimal frame: the cost of BPF_PROG_TEST_RUN itself.
fn baseline_ns(harness: &Harness, repeat: u32) -> Result<f64> {
    let program: &Xdp = harness
        .ebpf()
        .program(BASELINE)
        .context("no baseline program")?
        .try_into()?;
    let frame = udp_data(&[], SENDER, REGISTERED, 64);
    let mut out = vec![0u8; frame.len() + 256];
    let options = TestRunOptions {
        data_in: Some(&frame),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::default()
    };
    let duration: Duration = program.test_run(options)?.duration;
    Ok(duration.as_nanos() as f64)
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; sched_setaffinity on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("pinning to CPU 0");
        }
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn spread(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    max - min
}

fn report(figures: &[Figure], baseline: &[f64], repeat: u32, quick: bool) -> Result<()> {
    let base = median(baseline);
    let mut table = format!(
        "| frame | ns per run | over no-op (ns) | spread (ns) |\n|---|---|---|---|\n| no-op XDP_PASS program | {base:.1} | 0 | {:.1} |\n",
        spread(baseline)
    );
    let mut json = Vec::new();
    for figure in figures {
        let ns = median(&figure.ns);
        let _ = writeln!(
            table,
            "| {} | {ns:.1} | {:.1} | {:.1} |",
            figure.name,
            ns - base,
            spread(&figure.ns)
        );
        json.push(serde_json::json!({
            "frame": figure.name, "ns_per_run": ns, "ns_over_noop": ns - base, "spread_ns": spread(&figure.ns),
        }));
    }
    println!("{table}");
    if quick {
        return Ok(());
    }
    let context = machine_context(repeat);
    std::fs::create_dir_all("bench")?;
    std::fs::write(
        "bench/results.md",
        format!("# igmp-snoop per-frame cost (BPF_PROG_TEST_RUN)\n\n{context}\n\n{table}"),
    )?;
    let results = serde_json::json!({ "context": context, "noop_ns": base, "frames": json });
    std::fs::write(
        "bench/results.json",
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("written to bench/results.md and bench/results.json");
    Ok(())
}

fn machine_context(repeat: u32) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Kernel {}, CPU {cpu}, {date}. Each figure: median of rounds of {repeat} runs on CPU 0 (spread = max - min); \
         the no-op program is measured in the same run, and BPF_PROG_TEST_RUN's own cost is in it.",
        kernel.trim()
    )
}
