//! The XDP program's per-frame cost: BPF_PROG_TEST_RUN, each frame against a
//! no-op XDP_PASS program loaded from the same object in the same run.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use igmp_common::{GroupEntry, GroupKey};
use igmp_tests::{
    frames::*,
    harness::{Harness, BASELINE_PROGRAM, TEST_RUN_IFINDEX},
};
use igmp_user::loader;

use crate::report::{median, spread, Section};

const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const REGISTERED: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
/// A registered group with a sole port: redirected there without a broadcast.
const ONE_PORT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);
/// The devmap key of that port (it leads to lo, the test-run device).
const SOLE_PORT: u32 = 7;
/// MLD's figures beside IGMP's: a link-local reporter, a global-scope group.
const SENDER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const REGISTERED6: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 1, 1);
const REFRESH: &str = "IGMPv2 report, refresh";
/// Targets from the design card, ns over the no-op program.
const TARGETS: [(&str, f64); 4] = [
    ("unicast IPv4/TCP", 3.0),
    ("multicast data, registered group", 25.0),
    (REFRESH, 50.0),
    ("IGMPv3 report, 8 records", 250.0),
];

struct Figure {
    name: &'static str,
    ns: Vec<f64>,
}

/// The section's title, which is also its key in results.json.
pub const TITLE: &str = "Per-frame cost of the XDP program (BPF_PROG_TEST_RUN)";

/// How much dearer than in the last whole run a frame may get, each run's
/// figure taken as a multiple of its own no-op program, before the bench
/// calls it a regression: the noise of a shared VM stays within it.
const HEADROOM: f64 = 1.25;

/// The frames whose cost, as a multiple of the no-op program of the same
/// run, grew past `HEADROOM` times what `previous` (the last whole run's
/// section in results.json) measured, one line each. A frame whose earlier
/// spread was larger than its cost (a new entry, made once per group) is
/// too noisy to judge this way.
pub fn regressions(now: &serde_json::Value, previous: &serde_json::Value) -> Vec<String> {
    let relative = |section: &serde_json::Value, name: &str| {
        let noop = section["noop_ns"].as_f64()?;
        let frame = section["frames"]
            .as_array()?
            .iter()
            .find(|frame| frame["frame"] == name)?;
        let (ns, spread) = (frame["ns_per_run"].as_f64()?, frame["spread_ns"].as_f64()?);
        (noop > 0.0).then_some((ns / noop, spread <= ns))
    };
    let names = now["frames"].as_array().into_iter().flatten();
    names
        .filter_map(|frame| frame["frame"].as_str())
        .filter_map(|name| {
            let (then, steady) = relative(previous, name)?;
            let (now, _) = relative(now, name)?;
            (steady && now > then * HEADROOM).then(|| {
                format!(
                    "{name}: {now:.2}× the no-op program, {then:.2}× in the last whole run \
                     (more than {HEADROOM}× as dear)"
                )
            })
        })
        .collect()
}

/// Runs on a thread pinned to CPU 0, so that the other sections are not.
pub fn run(quick: bool) -> Result<Section> {
    std::thread::spawn(move || measure(quick))
        .join()
        .map_err(|_| anyhow::anyhow!("the cost thread panicked"))?
}

fn measure(quick: bool) -> Result<Section> {
    let (repeat, rounds) = if quick { (100_000, 3) } else { (1_000_000, 7) };
    pin_to_cpu(0)?;
    let mut harness = Harness::new();
    harness.load_baseline()?;
    for (_, program) in YARDSTICKS {
        harness.load_xdp(program)?;
    }
    let key = GroupKey {
        vlan: 0,
        inner_vlan: 0,
        group: REGISTERED.octets(),
    };
    harness
        .tables
        .forwarding
        .groups
        .insert(key, GroupEntry::default(), 0)?;
    harness.run(&v2_report(SENDER, REGISTERED));
    harness.register6(
        GroupKey {
            vlan: 0,
            inner_vlan: 0,
            group: REGISTERED6.octets(),
        },
        GroupEntry::default(),
    );
    harness.run(&mld_v1_report(SENDER6, REGISTERED6));
    register_with_sole_port(&mut harness)?;
    let mut figures = Vec::new();
    for (name, frame) in frames() {
        let ns = (0..rounds)
            .map(|_| per_run_ns(&harness, &frame, repeat))
            .collect::<Result<_>>()?;
        figures.push(Figure { name, ns });
    }
    for (name, program) in YARDSTICKS {
        let ns = (0..rounds)
            .map(|_| program_ns(&harness, program, repeat))
            .collect::<Result<_>>()?;
        figures.push(Figure { name, ns });
    }
    let baseline: Vec<f64> = (0..rounds)
        .map(|_| baseline_ns(&harness, repeat))
        .collect::<Result<_>>()?;
    let creations = if quick { 2_000 } else { 20_000 };
    let (created, baseline_once) = creation_ns(&harness, creations)?;
    let mut section = section(
        &figures,
        &baseline,
        (created, baseline_once),
        repeat,
        creations,
    );
    describe_programs(&harness, &mut section)?;
    Ok(section)
}

/// Adds the programs' sizes as the kernel reports them (what `bpftool prog
/// show` prints): where a cost is missed, how much code runs is the first clue.
fn describe_programs(harness: &Harness, section: &mut Section) -> Result<()> {
    let mut sizes = Vec::new();
    let mut json = serde_json::Map::new();
    let programs = [loader::PROGRAM, loader::EGRESS_PROGRAM]
        .into_iter()
        .chain(loader::XDP_TAIL_PROGRAMS);
    for name in programs {
        let info = harness
            .ebpf()
            .program(name)
            .with_context(|| format!("no {name} program"))?
            .info()?;
        let translated = info.size_translated().unwrap_or(0) / 8;
        let jitted = info.size_jitted();
        let verified = info.verified_instruction_count().unwrap_or(0);
        sizes.push(format!(
            "`{name}` {translated} instructions after the verifier ({jitted} bytes JITed; \
             the verifier walked {verified})"
        ));
        json.insert(
            name.into(),
            serde_json::json!({
                "instructions": translated, "jited_bytes": jitted, "verified_instructions": verified,
            }),
        );
    }
    section.text = format!("{} Programs: {}.", section.text, sizes.join("; "));
    section.json["programs"] = json.into();
    Ok(())
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
            "multicast data, registered group, one port",
            udp_data(&[], SENDER, ONE_PORT_GROUP, 64),
        ),
        (
            "multicast data, unregistered group",
            udp_data(&[], SENDER, Ipv4Addr::new(239, 9, 9, 9), 64),
        ),
        (
            "multicast data, VLAN-tagged",
            udp_data(&[(TPID_8021Q, 10)], SENDER, REGISTERED, 64),
        ),
        (REFRESH, v2_report(SENDER, REGISTERED)),
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
        (
            "IPv6 multicast data, registered group",
            udp_data_v6(&[], SENDER6, REGISTERED6, 64),
        ),
        (
            "IPv6 multicast data, unregistered group",
            udp_data_v6(&[], SENDER6, Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 9, 9), 64),
        ),
        ("MLDv1 report, refresh", mld_v1_report(SENDER6, REGISTERED6)),
        (
            "MLDv2 report, 1 record",
            mld_v2_report_frame(SENDER6, &mld_records(1)),
        ),
        (
            "MLDv2 report, 8 records",
            mld_v2_report_frame(SENDER6, &mld_records(8)),
        ),
    ]
}

/// `n` CHANGE_TO_EXCLUDE {} records for distinct global-scope groups.
fn mld_records(n: u16) -> Vec<MldRecord> {
    (0..n)
        .map(|i| {
            MldRecord::new(
                CHANGE_TO_EXCLUDE,
                Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 2, i),
                &[],
            )
        })
        .collect()
}

fn register_with_sole_port(harness: &mut Harness) -> Result<()> {
    let key = GroupKey {
        vlan: 0,
        inner_vlan: 0,
        group: ONE_PORT_GROUP.octets(),
    };
    let entry = GroupEntry {
        ports: 1,
        sole_port: SOLE_PORT,
        ..GroupEntry::default()
    };
    harness.tables.forwarding.groups.insert(key, entry, 0)?;
    harness
        .tables
        .ports
        .egress_ports
        .insert(SOLE_PORT, TEST_RUN_IFINDEX, None, 0)?;
    Ok(())
}

fn per_run_ns(harness: &Harness, frame: &[u8], repeat: u32) -> Result<f64> {
    Ok(harness.time(frame, repeat).as_nanos() as f64)
}

/// The no-op program on a minimal frame: the cost of BPF_PROG_TEST_RUN itself.
fn baseline_ns(harness: &Harness, repeat: u32) -> Result<f64> {
    program_ns(harness, BASELINE_PROGRAM, repeat)
}

/// The yardsticks: programs that do one thing a report pays for and pass.
const YARDSTICKS: [(&str, &str); 3] = [
    ("yardstick: one clock read", "igmp_snoop_probe_clock"),
    (
        "yardstick: one hash lookup, 4-octet key (a miss)",
        "igmp_snoop_probe_lookup4",
    ),
    (
        "yardstick: one hash lookup, 12-octet key (a miss)",
        "igmp_snoop_probe_lookup12",
    ),
];

/// What an IGMPv2 refresh pays before its own code, in yardsticks: one
/// clock read, the counter block and the port's options by ifindex, the
/// membership by its 12-octet key.
fn refresh_floor(over: impl Fn(&str) -> Option<f64>) -> Option<f64> {
    let [clock, lookup4, lookup12] = YARDSTICKS.map(|(name, _)| over(name));
    Some(clock? + 2.0 * lookup4? + lookup12?)
}

/// `name`, an XDP program of the object other than the switch's, on a
/// minimal frame, `repeat` times: ns per run.
fn program_ns(harness: &Harness, name: &str, repeat: u32) -> Result<f64> {
    let program: &Xdp = harness
        .ebpf()
        .program(name)
        .with_context(|| format!("no {name} program"))?
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

/// A report creating an entry can run only once per group: `count` reports
/// for distinct groups, one run each, against the no-op program run once each.
fn creation_ns(harness: &Harness, count: u32) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut created = Vec::new();
    let mut baseline = Vec::new();
    for n in 0..count {
        let [_, a, b, c] = n.to_be_bytes();
        let group = Ipv4Addr::new(239, 200 + a, b, c);
        created.push(harness.time(&v2_report(SENDER, group), 1).as_nanos() as f64);
        baseline.push(baseline_ns(harness, 1)?);
    }
    Ok((created, baseline))
}

fn section(
    figures: &[Figure],
    baseline: &[f64],
    (created, baseline_once): (Vec<f64>, Vec<f64>),
    repeat: u32,
    creations: u32,
) -> Section {
    let base = median(baseline);
    let mut rows = vec![vec![
        "no-op XDP_PASS program".to_string(),
        format!("{base:.1}"),
        "0".into(),
        format!("{:.1}", spread(baseline)),
        String::new(),
    ]];
    let mut json = Vec::new();
    let mut add = |name: &str, ns: f64, over: f64, spread: f64| {
        let target = TARGETS
            .iter()
            .find(|(frame, _)| *frame == name)
            .map(|(_, target)| *target);
        let verdict = target.map_or(String::new(), |target| {
            let met = if over <= target { "met" } else { "missed" };
            format!("<= {target} ns: {met}")
        });
        rows.push(vec![
            name.to_string(),
            format!("{ns:.1}"),
            format!("{over:.1}"),
            format!("{spread:.1}"),
            verdict,
        ]);
        json.push(serde_json::json!({
            "frame": name, "ns_per_run": ns, "ns_over_noop": over, "spread_ns": spread,
            "target_ns_over_noop": target,
        }));
    };
    for figure in figures {
        let ns = median(&figure.ns);
        add(figure.name, ns, ns - base, spread(&figure.ns));
    }
    let once = median(&created);
    add(
        "IGMPv2 report, new entry",
        once,
        once - median(&baseline_once),
        spread(&created[..created.len().min(1000)]),
    );
    let over = |name: &str| {
        let figure = figures.iter().find(|figure| figure.name == name)?;
        Some(median(&figure.ns) - base)
    };
    let floor = match (refresh_floor(over), over(REFRESH)) {
        (Some(floor), Some(refresh)) => format!(
            " The yardsticks are programs that do one thing a report pays for, then pass: an \
             IGMPv2 refresh's clock read and three lookups (two by ifindex, one by membership \
             key) come to {floor:.0} ns of its {refresh:.0} over no-op before any of its own code."
        ),
        _ => String::new(),
    };
    Section {
        title: TITLE.into(),
        text: format!(
            "Median of rounds of {repeat} runs on CPU 0 (spread = max - min over rounds); the no-op \
             program runs in the same process, so BPF_PROG_TEST_RUN's own cost is in the baseline. \
             A new entry can be made only once per group: {creations} reports for distinct groups, \
             one run each, against the no-op program run once each (medians).{floor}"
        ),
        header: vec![
            "frame".into(),
            "ns per run".into(),
            "over no-op (ns)".into(),
            "spread (ns)".into(),
            "target".into(),
        ],
        rows,
        json: serde_json::json!({ "noop_ns": base, "frames": json }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn section(noop: f64, frames: &[(&str, f64, f64)]) -> serde_json::Value {
        let frames: Vec<serde_json::Value> = frames
            .iter()
            .map(|(name, ns, spread)| {
                serde_json::json!({ "frame": name, "ns_per_run": ns, "spread_ns": spread })
            })
            .collect();
        serde_json::json!({ "noop_ns": noop, "frames": frames })
    }

    #[test]
    fn a_frame_dearer_than_the_headroom_against_its_own_no_op_is_a_regression() {
        let last = section(6.0, &[("data", 18.0, 1.0), ("new entry", 540.0, 9000.0)]);
        // A slower machine: everything twice as dear, the no-op too.
        let slower = section(12.0, &[("data", 36.0, 1.0), ("new entry", 1080.0, 9000.0)]);
        assert!(regressions(&slower, &last).is_empty());
        let worse = section(6.0, &[("data", 24.0, 1.0), ("new entry", 5400.0, 9000.0)]);
        let found = regressions(&worse, &last);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("data: 4.00× the no-op program, 3.00×"),
            "{found:?}"
        );
    }
}
