//! Forwarding throughput through a lab switch: one sender, 18 ports, 1 to 16
//! members of one group, IPv4 or IPv6, (a) the Linux bridge with its snooping and querier on and
//! (b) the bridge with snooping off and igmp-snoop's fast path on the ports,
//! attached as `--attach auto` picks it: every port is a veth, so the tc
//! ingress classifier.
//!
//! Two generators, each the same for both paths:
//! - trafgen (netsniff-ng) on the sender's veth: a packet mmap ring at a fixed
//!   frame. The frames cross a veth as skbs.
//! - BPF_PROG_TEST_RUN live frames on the sender's port: frames start as
//!   XDP buffers, as a NIC driver hands them over, and a no-op XDP program
//!   passes each to the stack, as a NIC port without XDP does: the bridge
//!   path takes them from there, the fast path in the classifier.
//!
//! Delivered frames are the members' interface counters.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use igmp_lab::{in_netns, ip, wait_for, BridgeSnooping, Lab, Member, Member6, DATA_PORT};
use igmp_tests::{
    frames::{udp_data, udp_data_v6},
    harness::{Harness, BASELINE_PROGRAM},
    snooped::Snooped,
};

use crate::report::Section;
use igmp_tests::process::busy_cpu_ns;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 5);
const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0x5, 0x5, 0x5);
/// The sender, 16 members at most, and a bystander that never joins.
const PORTS: usize = 18;
const SENDER: usize = 0;
/// Members per group: where per-copy work (an XDP frame clone, an skb clone)
/// overtakes the per-frame saving, the sweep shows the crossover.
const FAN_OUTS: [usize; 5] = [1, 2, 4, 8, 16];
/// `--quick`'s sweep: one fan-out either side of where the paths once
/// crossed, small frames only, so that a quick run stays under two minutes.
const QUICK_FAN_OUTS: [usize; 2] = [1, 4];

/// The fan-outs and frame sizes a run sweeps.
fn sweep(family: Family, quick: bool) -> (&'static [usize], &'static [(usize, &'static str)]) {
    let sizes = family.sizes();
    if quick {
        (&QUICK_FAN_OUTS, &sizes[..1])
    } else {
        (&FAN_OUTS, sizes)
    }
}

/// Frame sizes (`Family::sizes`), as given to the generators and as named in the tables.
const IPV4_SIZES: [(usize, &str); 2] = [(60, "64 B"), (1514, "1518 B")];
const IPV6_SIZES: [(usize, &str); 2] = [(62, "66 B"), (1514, "1518 B")];

/// The family of the group the members join and the sender sends to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// Ethernet frame sizes without the FCS: the family's smallest UDP
    /// frame (64 bytes on the wire; IPv6's headers make 66) and 1518 bytes.
    fn sizes(self) -> &'static [(usize, &'static str)] {
        match self {
            Self::Ipv4 => &IPV4_SIZES,
            Self::Ipv6 => &IPV6_SIZES,
        }
    }

    /// A UDP frame of `size` bytes (without the FCS) from the sender to the group.
    fn frame(self, lab: &Lab, size: usize) -> Result<Vec<u8>> {
        Ok(match self {
            Self::Ipv4 => udp_data(&[], lab.hosts[SENDER].address, GROUP, size - 42),
            Self::Ipv6 => udp_data_v6(&[], lab.link_local(SENDER)?, GROUP6, size - 62),
        })
    }

    /// `count` datagrams from the sender's socket.
    fn send(self, lab: &Lab, count: usize) -> Result<()> {
        match self {
            Self::Ipv4 => lab.send(SENDER, GROUP, count, 64),
            Self::Ipv6 => lab.send6(SENDER, GROUP6, DATA_PORT, count, 64),
        }
    }

    fn group(self) -> String {
        match self {
            Self::Ipv4 => GROUP.to_string(),
            Self::Ipv6 => GROUP6.to_string(),
        }
    }
}

/// The members' sockets, kept open for as long as the run goes on.
#[derive(Default)]
struct Joined {
    ipv4: Vec<Member>,
    ipv6: Vec<Member6>,
}

impl Joined {
    fn count(&self) -> usize {
        self.ipv4.len() + self.ipv6.len()
    }

    /// Host `member` joins the group of `family` with a kernel socket.
    fn join(&mut self, lab: &Lab, member: usize, family: Family) -> Result<()> {
        match family {
            Family::Ipv4 => self.ipv4.push(lab.join(member, GROUP)?),
            Family::Ipv6 => self.ipv6.push(lab.join6(member, GROUP6, DATA_PORT)?),
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Bridge,
    FastPath,
}

/// Where the frames come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generator {
    Trafgen,
    LiveFrames,
}

/// Live frames per BPF_PROG_TEST_RUN call, and per batch inside it.
const LIVE_FRAMES_PER_CALL: u32 = 200_000;
const LIVE_BATCH: u32 = 64;

struct Run {
    sent: u64,
    /// Frames each member received, per second, averaged over members.
    per_member_pps: f64,
    /// sent × members − received by members.
    lost: u64,
    /// Frames that reached ports that did not join.
    leaked: u64,
    /// Busy CPU time of the whole machine per frame sent.
    cpu_ns_per_frame: f64,
}

/// The sections' titles, which are also their keys in results.json.
pub const TRAFGEN_TITLE: &str = "Forwarding throughput, lab of namespaces (trafgen on a veth)";
pub const LIVE_TITLE: &str =
    "Forwarding throughput, lab of namespaces (live frames, as from a NIC driver)";
pub const TRAFGEN6_TITLE: &str =
    "Forwarding throughput, IPv6, lab of namespaces (trafgen on a veth)";
pub const LIVE6_TITLE: &str =
    "Forwarding throughput, IPv6, lab of namespaces (live frames, as from a NIC driver)";

/// Throughput with trafgen on the sender's veth.
pub fn run(quick: bool) -> Result<Section> {
    throughput(Generator::Trafgen, Family::Ipv4, quick)
}

/// Throughput with live frames starting on the sender's port.
pub fn run_live(quick: bool) -> Result<Section> {
    throughput(Generator::LiveFrames, Family::Ipv4, quick)
}

/// `run` with an IPv6 group (MLD snooping on the bridge, MLD in igmp-snoop).
pub fn run6(quick: bool) -> Result<Section> {
    throughput(Generator::Trafgen, Family::Ipv6, quick)
}

/// `run_live` with an IPv6 group.
pub fn run_live6(quick: bool) -> Result<Section> {
    throughput(Generator::LiveFrames, Family::Ipv6, quick)
}

fn throughput(generator: Generator, family: Family, quick: bool) -> Result<Section> {
    let seconds = if quick { 1.0 } else { 4.0 };
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let (fan_outs, sizes) = sweep(family, quick);
    let bridge = measure(Path::Bridge, generator, family, seconds, quick)?;
    let ours = measure(Path::FastPath, generator, family, seconds, quick)?;
    for (at, fan_out) in fan_outs.iter().enumerate() {
        for (index, (_, size)) in sizes.iter().enumerate() {
            let (b, o) = (&bridge[at][index], &ours[at][index]);
            let ratio = o.per_member_pps / b.per_member_pps;
            rows.push(vec![
                fan_out.to_string(),
                size.to_string(),
                format!("{:.0}", b.per_member_pps),
                format!("{:.0}", o.per_member_pps),
                format!("{ratio:.2}×"),
                format!("{:.0} / {:.0}", b.cpu_ns_per_frame, o.cpu_ns_per_frame),
                format!("{} / {}", b.lost, o.lost),
                format!("{} / {}", b.leaked, o.leaked),
            ]);
            json.push(serde_json::json!({
                "fan_out": fan_out, "frame": size,
                "bridge": run_json(b), "igmp_snoop": run_json(o), "ratio": ratio,
            }));
        }
    }
    let (title, source) = match (generator, family) {
        (Generator::Trafgen, Family::Ipv6) => (
            TRAFGEN6_TITLE,
            "trafgen sends one IPv6 group's UDP frames flat out from the sender's veth, so \
             every frame reaches the switch as an skb",
        ),
        (Generator::LiveFrames, Family::Ipv6) => (
            LIVE6_TITLE,
            "BPF_PROG_TEST_RUN in live-frames mode starts one IPv6 group's UDP frames on the \
             sender's port as XDP buffers, as the IPv4 section does",
        ),
        (Generator::Trafgen, Family::Ipv4) => (
            TRAFGEN_TITLE,
            "trafgen sends one group's UDP frames flat out from the sender's veth, so every \
             frame reaches the switch as an skb",
        ),
        (Generator::LiveFrames, Family::Ipv4) => (
            LIVE_TITLE,
            "BPF_PROG_TEST_RUN in live-frames mode starts one group's UDP frames on the \
             sender's port as XDP buffers, as a NIC driver would, and a no-op XDP_PASS \
             program hands each to the stack as an skb: the bridge path takes it from there, \
             the fast path in its classifier",
        ),
    };
    Ok(Section {
        title: title.into(),
        text: format!(
            "{source}, flat out for {seconds} s, from one of {PORTS} ports; the members are \
             veth peers in their own namespaces. Bridge: `mcast_snooping 1` with its querier \
             on, IGMP's and MLD's (so that it forwards registered groups to members only). igmp-snoop: bridge \
             snooping off, the program on every port as `--attach auto` picks it (the tc \
             classifier: every port is a veth). The veths keep their defaults (no GRO, no XDP \
             in the members). CPU: the whole machine's busy time per frame sent. Lost: frames \
             sent × members − frames members received. Leaked: frames that reached ports that \
             did not join. Target: ≥ 1.2× the bridge at fan-out 1, never below 1.0×, nothing \
             lost."
        ),
        header: [
            "fan-out",
            "frame",
            "bridge (frames/s per member)",
            "igmp-snoop (frames/s per member)",
            "igmp-snoop / bridge",
            "CPU ns per frame (bridge / igmp-snoop)",
            "lost (bridge / igmp-snoop)",
            "leaked (bridge / igmp-snoop)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        json: serde_json::Value::Array(json),
    })
}

fn run_json(run: &Run) -> serde_json::Value {
    serde_json::json!({
        "sent": run.sent, "per_member_pps": run.per_member_pps, "lost": run.lost,
        "leaked": run.leaked, "cpu_ns_per_frame": run.cpu_ns_per_frame,
    })
}

/// One lab for one path: members join one fan-out after the other, both
/// frame sizes through each. Runs by fan-out, then by size.
fn measure(
    path: Path,
    generator: Generator,
    family: Family,
    seconds: f64,
    quick: bool,
) -> Result<Vec<Vec<Run>>> {
    let (fan_outs, sizes) = sweep(family, quick);
    let (bridge_lab, snooped, live);
    let lab = match path {
        Path::Bridge => {
            bridge_lab = Lab::new(PORTS, BridgeSnooping::On)?;
            ip(
                &bridge_lab.switch,
                "link set br0 type bridge mcast_querier 1 mcast_query_response_interval 100",
            )?;
            live = match generator {
                Generator::Trafgen => None,
                Generator::LiveFrames => Some(noop_harness()?),
            };
            &bridge_lab
        }
        Path::FastPath => {
            snooped = Snooped::new(PORTS, &[]);
            live = match generator {
                Generator::Trafgen => None,
                Generator::LiveFrames => Some(noop_harness()?),
            };
            &snooped.lab
        }
    };
    let mut joined = Joined::default();
    let mut runs = Vec::new();
    for &fan_out in fan_outs {
        let members: Vec<usize> = (1..=fan_out).collect();
        for &member in &members[joined.count()..] {
            joined.join(lab, member, family)?;
        }
        wait_until_selective(lab, &members, family)?;
        let by_size = sizes
            .iter()
            .map(|&(size, _)| {
                let frame = family.frame(lab, size)?;
                match &live {
                    None => blast(lab, &members, &frame, seconds),
                    Some(harness) => {
                        live_blast(lab, noop_program(harness)?, &members, &frame, seconds)
                    }
                }
            })
            .collect::<Result<_>>()?;
        runs.push(by_size);
    }
    Ok(runs)
}

/// The no-op XDP_PASS program: every live frame goes to the stack.
fn noop_program(harness: &Harness) -> Result<&Xdp> {
    Ok(harness
        .ebpf()
        .program(BASELINE_PROGRAM)
        .context("no baseline program")?
        .try_into()?)
}

fn noop_harness() -> Result<Harness> {
    let mut harness = Harness::new();
    harness.load_baseline()?;
    Ok(harness)
}

fn wait_until_selective(lab: &Lab, members: &[usize], family: Family) -> Result<()> {
    let bystander = PORTS - 1;
    let selective = wait_for(Duration::from_secs(40), || {
        let before = rx_packets(lab, bystander).unwrap_or(0);
        let members_before: Vec<u64> = members
            .iter()
            .map(|&member| rx_packets(lab, member).unwrap_or(0))
            .collect();
        if family.send(lab, 20).is_err() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
        let leaked = rx_packets(lab, bystander).unwrap_or(0) - before;
        let all_served = members
            .iter()
            .zip(&members_before)
            .all(|(&member, before)| rx_packets(lab, member).unwrap_or(0) - before >= 20);
        leaked < 5 && all_served
    });
    if !selective {
        bail!(
            "the switch never forwarded {} to its members only",
            family.group()
        );
    }
    Ok(())
}

fn blast(lab: &Lab, members: &[usize], frame: &[u8], seconds: f64) -> Result<Run> {
    let sender = &lab.hosts[SENDER];
    let config = std::env::temp_dir().join(format!("{}-trafgen.cfg", lab.prefix));
    std::fs::write(&config, trafgen_config(frame))?;
    let tally = Tally::start(lab, members)?;
    let sent_before = tx_packets(lab, SENDER)?;
    let started = Instant::now();
    let status = Command::new("timeout")
        .args(["--signal=INT", &format!("{seconds}")])
        .args(["ip", "netns", "exec", &sender.netns, "trafgen", "--dev"])
        .arg(&sender.interface)
        .arg("--conf")
        .arg(&config)
        .args(["--cpus", "1", "--no-sock-mem"])
        .output()
        .context("running trafgen (apt install netsniff-ng)")?;
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::fs::remove_file(&config);
    tally.finish(lab, elapsed, || {
        let sent = tx_packets(lab, SENDER)? - sent_before;
        // trafgen stopped by SIGINT exits non-zero: what it sent is the verdict.
        if sent == 0 {
            bail!(
                "trafgen sent nothing: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            );
        }
        Ok(sent)
    })
}

/// The counters a run is measured by, read before it starts.
struct Tally<'a> {
    members: &'a [usize],
    bystanders: Vec<usize>,
    received_before: u64,
    leaked_before: u64,
    busy_before: u64,
}

impl<'a> Tally<'a> {
    fn start(lab: &Lab, members: &'a [usize]) -> Result<Self> {
        let bystanders: Vec<usize> = (1..PORTS).filter(|port| !members.contains(port)).collect();
        Ok(Self {
            received_before: counts(lab, members)?,
            leaked_before: counts(lab, &bystanders)?,
            busy_before: busy_cpu_ns()?,
            members,
            bystanders,
        })
    }

    /// The run over `elapsed` seconds, from the counters now; `sent` counts
    /// the frames sent, after the CPU time is read (it may run a command).
    fn finish(self, lab: &Lab, elapsed: f64, sent: impl FnOnce() -> Result<u64>) -> Result<Run> {
        let busy = busy_cpu_ns()? - self.busy_before;
        let sent = sent()?;
        let received = counts(lab, self.members)? - self.received_before;
        let leaked = counts(lab, &self.bystanders)? - self.leaked_before;
        let members = self.members.len() as u64;
        Ok(Run {
            sent,
            per_member_pps: received as f64 / members as f64 / elapsed,
            lost: (sent * members).saturating_sub(received),
            leaked,
            cpu_ns_per_frame: busy as f64 / sent.max(1) as f64,
        })
    }
}

/// Runs live frames through `program` on the sender's port for `seconds`.
fn live_blast(
    lab: &Lab,
    program: &Xdp,
    members: &[usize],
    frame: &[u8],
    seconds: f64,
) -> Result<Run> {
    let ingress = lab.port_ifindex(&lab.hosts[SENDER].port)?;
    let tally = Tally::start(lab, members)?;
    // The ingress ifindex is looked up in the caller's namespace.
    let context = xdp_md(frame.len(), ingress);
    let (sent, elapsed) = in_netns(&lab.switch, || {
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            let options = TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&context),
                repeat: LIVE_FRAMES_PER_CALL,
                attrs: TestRunAttrs::new().xdp_live_frames(LIVE_BATCH),
                ..TestRunOptions::default()
            };
            program
                .test_run(options)
                .context("BPF_PROG_TEST_RUN with live frames")?;
            sent += u64::from(LIVE_FRAMES_PER_CALL);
        }
        Ok((sent, started.elapsed().as_secs_f64()))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    tally.finish(lab, elapsed, || Ok(sent))
}

/// The `xdp_md` a driver would hand the program: the frame from 0 to its
/// length, arriving on `ingress`, queue 0.
fn xdp_md(frame_len: usize, ingress: u32) -> [u8; 24] {
    let fields = [0, frame_len as u32, 0, ingress, 0, 0];
    let mut context = [0; 24];
    for (bytes, field) in context.chunks_exact_mut(4).zip(fields) {
        bytes.copy_from_slice(&field.to_ne_bytes());
    }
    context
}

/// A trafgen packet: the frame's bytes, as its configuration language wants them.
fn trafgen_config(frame: &[u8]) -> String {
    let bytes: Vec<String> = frame.iter().map(|byte| format!("{byte:#04x}")).collect();
    format!("{{ {} }}\n", bytes.join(", "))
}

fn counts(lab: &Lab, hosts: &[usize]) -> Result<u64> {
    hosts.iter().map(|&host| rx_packets(lab, host)).sum()
}

fn rx_packets(lab: &Lab, host: usize) -> Result<u64> {
    link_stat(lab, host, "rx")
}

fn tx_packets(lab: &Lab, host: usize) -> Result<u64> {
    link_stat(lab, host, "tx")
}

/// A packet counter of host `host`'s interface (`ip -s -j link`).
fn link_stat(lab: &Lab, host: usize, direction: &str) -> Result<u64> {
    let host = &lab.hosts[host];
    let output = igmp_lab::run_output(&[
        "ip",
        "-n",
        &host.netns,
        "-s",
        "-j",
        "link",
        "show",
        "dev",
        &host.interface,
    ])?;
    let links: serde_json::Value = serde_json::from_str(&output)?;
    links[0]["stats64"][direction]["packets"]
        .as_u64()
        .with_context(|| format!("no {direction} packet count in `ip -s -j link`"))
}
