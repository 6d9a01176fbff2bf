//! `cargo xtask demo`: igmp-snoop learning a table from real kernel clients.
//!
//! With no `--iface`, a lab of network namespaces: a Linux bridge (its own
//! snooping off) with four hosts on veth ports. Hosts join and leave with
//! IGMPv2 and IGMPv3 while the table is printed, then everything is removed,
//! on Ctrl-C or failure too. With `--iface`, igmp-snoop runs on those NICs
//! and the table is printed until Ctrl-C.

use std::{
    net::Ipv4Addr,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use clap::Args;
use igmp_lab::{BridgeSnooping, Lab, Member};

#[derive(Args)]
pub struct DemoArgs {
    /// Run on these interfaces instead of a lab (repeat for each port).
    #[arg(long = "iface", value_name = "IF")]
    interfaces: Vec<String>,
    /// How the program is attached for --iface (auto, native, generic or tc).
    #[arg(long, default_value = "auto")]
    attach: String,
    /// Leave the lab up at the end, with the commands to explore it.
    #[arg(long)]
    keep: bool,
}

/// This demo's name, for its namespaces and its pins: two demos run side by side.
fn demo_name() -> String {
    format!("igmp-demo-{}", std::process::id())
}

fn pin_dir() -> String {
    format!("/sys/fs/bpf/{}", demo_name())
}
const IPTV: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const MARKET_DATA: Ipv4Addr = Ipv4Addr::new(239, 2, 2, 2);
const SSM_GROUP: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);
const SSM_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);

pub fn run(args: &DemoArgs) -> Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let binary = crate::workspace_root().join("target/debug/igmp-snoop");
    if args.interfaces.is_empty() {
        lab_demo(&binary, args.keep, &interrupted)
    } else {
        nic_demo(&binary, args, &interrupted)
    }
}

/// Sleeps, returning an error as soon as Ctrl-C is pressed so that the lab is torn down.
fn pause(seconds: f64, interrupted: &AtomicBool) -> Result<()> {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn step(title: &str) {
    println!("\n==> {title}");
}

fn lab_demo(binary: &Path, keep: bool, interrupted: &AtomicBool) -> Result<()> {
    step("building a lab: bridge br0 (mcast_snooping 0) with hosts h1..h4 on ports p1..p4");
    let mut lab = Lab::with_prefix(&demo_name(), 4, BridgeSnooping::Off)?;
    let pin_dir = pin_dir();
    lab.start_daemon(
        binary,
        Path::new(&pin_dir),
        &["--last-member-interval", "0.5"],
    )?;
    println!(
        "igmp-snoop runs in namespace {} on p1..p4, maps pinned in {pin_dir}",
        lab.switch
    );
    lab.force_igmp_version(0, 2)?;

    step("h1 (IGMPv2) joins 239.1.1.1; h2 (IGMPv3) joins 239.1.1.1 and 239.2.2.2; h3 joins (10.0.0.4, 232.1.1.1)");
    let h1_iptv = lab.join(0, IPTV)?;
    let _h2_iptv = lab.join(1, IPTV)?;
    let h2_market = lab.join(1, MARKET_DATA)?;
    let _h3_ssm = lab.join_source(2, SSM_GROUP, SSM_SOURCE)?;
    pause(1.0, interrupted)?;
    show(&lab, binary)?;
    step(&format!(
        "bpftool map dump pinned {pin_dir}/MEMBERSHIP (BTF: named fields)"
    ));
    print_command(Command::new("bpftool").args([
        "map",
        "dump",
        "pinned",
        &format!("{pin_dir}/MEMBERSHIP"),
    ]));

    step("h4 sends 20 datagrams to 239.1.1.1: XDP forwards them to h1 and h2 only");
    show_delivery(&lab, 3, IPTV)?;

    step("h1 leaves 239.1.1.1 (v2 leave): gone after the last member query time, h2 stays");
    drop(h1_iptv);
    pause(0.2, interrupted)?;
    show(&lab, binary)?;
    pause(1.5, interrupted)?;
    show(&lab, binary)?;

    step("h2 leaves 239.2.2.2 (v3 TO_IN {})");
    leave_and_show(&lab, binary, h2_market, interrupted)?;

    step("counters (igmp-snoop stats)");
    print_command(
        lab.command_in_switch(binary)
            .args(["stats", "--pin-dir", &pin_dir]),
    );
    step("daemon log");
    println!("{}", lab.daemon_log());
    if keep {
        explore_hint(&lab);
        std::mem::forget(lab);
        return Ok(());
    }
    step("tearing the lab down");
    drop(lab);
    let _ = Command::new("rm").args(["-rf", &pin_dir]).status();
    Ok(())
}

fn leave_and_show(
    lab: &Lab,
    binary: &Path,
    member: Member,
    interrupted: &AtomicBool,
) -> Result<()> {
    drop(member);
    // A v3 host repeats its TO_IN {} (robustness 2, up to 1 s apart): each restarts the leave timer.
    pause(2.5, interrupted)?;
    show(lab, binary)
}

/// Sends 20 datagrams from host `sender` to `group` and prints what each
/// other host's wire saw.
fn show_delivery(lab: &Lab, sender: usize, group: Ipv4Addr) -> Result<()> {
    let captures: Vec<_> = (0..lab.hosts.len())
        .filter(|host| *host != sender)
        .map(|host| Ok((host, lab.capture(host)?)))
        .collect::<Result<_>>()?;
    lab.send(sender, group, 20, 64)?;
    std::thread::sleep(Duration::from_millis(300));
    let from = lab.hosts[sender].address.octets();
    for (host, capture) in captures {
        let seen = capture
            .frames_for(Duration::from_millis(50))
            .iter()
            .filter(|frame| {
                frame.len() >= 34
                    && frame[23] == 17
                    && frame[26..30] == from
                    && frame[30..34] == group.octets()
            })
            .count();
        println!("  h{}: {seen} datagrams", host + 1);
    }
    Ok(())
}

fn show(lab: &Lab, binary: &Path) -> Result<()> {
    print_command(
        lab.command_in_switch(binary)
            .args(["show", "--pin-dir", &pin_dir()]),
    );
    Ok(())
}

fn print_command(command: &mut Command) {
    match command.output() {
        Ok(output) => {
            print!("{}", String::from_utf8_lossy(&output.stdout));
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        Err(error) => eprintln!("{command:?}: {error}"),
    }
}

fn explore_hint(lab: &Lab) {
    let pid = lab
        .daemon_pid()
        .map_or("?".to_string(), |pid| pid.to_string());
    println!(
        "\nThe lab stays up. Try:\n  \
         nsenter --net=/run/netns/{sw} target/debug/igmp-snoop show --pin-dir {pins}\n  \
         bpftool map dump pinned {pins}/MEMBERSHIP\n  \
         ip netns exec {name}-h4 ip maddr show dev eth0\n\
         Remove it with:\n  \
         kill {pid}; for ns in $(ip netns list | awk '/^{name}-/ {{print $1}}'); do ip netns del $ns; done; rm -rf {pins}",
        sw = lab.switch,
        pins = pin_dir(),
        name = demo_name(),
    );
}

fn nic_demo(binary: &Path, args: &DemoArgs, interrupted: &AtomicBool) -> Result<()> {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .args(["--pin-dir", &pin_dir(), "--attach", &args.attach]);
    for interface in &args.interfaces {
        command.args(["--iface", interface]);
    }
    let mut daemon = command.spawn()?;
    let result = (|| -> Result<()> {
        loop {
            pause(2.0, interrupted)?;
            if let Some(status) = daemon.try_wait()? {
                bail!("igmp-snoop exited: {status}");
            }
            print_command(Command::new(binary).args(["show", "--pin-dir", &pin_dir()]));
        }
    })();
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    // The table stays pinned after a stop; this demo's pins are its own.
    let _ = Command::new(binary)
        .args(["detach", "--pin-dir", &pin_dir()])
        .status();
    match result {
        Err(error) if error.to_string() == "interrupted" => Ok(()),
        other => other,
    }
}
