use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use aya_log::EbpfLogger;
use clap::Parser as _;
use igmp_user::{
    cli::{Cli, Command, Generated, MdbChange, RunArgs},
    control,
    daemon::Daemon,
    generate, instance, interfaces, kernel, links,
    loader::{self, PortMode},
    logging,
    metrics::{self, SharedStatus},
    monitor,
    ports::{PortPlan, PortSet},
    settings::{self, RunSettings},
    signals::StopSignals,
    systemd, tables,
    tables::Tables,
    view,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{broadcast, mpsc::UnboundedReceiver},
};
use tracing::{info, warn};

fn main() {
    let cli = parse_args();
    if let Err(error) = logging::init(&cli.log) {
        eprintln!("igmp-snoop: {error:#}");
        std::process::exit(2);
    }
    if let Err(error) = dispatch(cli) {
        eprintln!("igmp-snoop: {error:#}");
        std::process::exit(1);
    }
}

/// The command line, or one error line and exit status 2: clap's own report
/// of a usage error spreads over lines (the error, the possible values or a
/// tip, a usage line, a hint), which scripts and log lines do not want. The
/// line keeps what says how to fix it: the possible values, the tip.
fn parse_args() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            error.exit()
        }
        Err(error) => {
            eprintln!(
                "igmp-snoop: {} (see igmp-snoop --help)",
                one_line(&error.to_string())
            );
            std::process::exit(2);
        }
    }
}

/// Clap's report of a usage error on one line: its usage line and its
/// closing hint are left out, the rest joined.
fn one_line(report: &str) -> String {
    let parts: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .collect();
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            // `[possible values: ...]` belongs to the error; a tip follows it.
            line.push_str(if part.starts_with('[') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

fn dispatch(cli: Cli) -> Result<()> {
    if cli.command.prints_to_a_pipe() {
        die_quietly_on_a_closed_pipe();
    }
    match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run(*args)),
        Command::Show(args) => view::mdb::print(&args),
        Command::Routers(args) => view::routers::print(&args),
        Command::Stats(args) => view::stats::print(&args),
        Command::Monitor(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(monitor::follow(&settings::pin_dir(&args.pin)?, args.json)),
        Command::Mdb(args) => {
            let pin_dir = settings::pin_dir(args.change.pin())?;
            let request = match args.change {
                MdbChange::Add(entry) => control::Request::Add {
                    port: entry.port,
                    group: entry.group,
                    vid: entry.vid,
                },
                MdbChange::Del(entry) => control::Request::Del {
                    port: entry.port,
                    group: entry.group,
                    vid: entry.vid,
                },
                MdbChange::Flush(flush) => control::Request::Flush { port: flush.port },
            };
            let done = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(control::ask(&pin_dir, &request))?;
            println!("{done}");
            Ok(())
        }
        Command::Detach(args) => {
            // A running daemon would re-create what is removed under it.
            let pin_dir = settings::pin_dir(&args)?;
            let _lock = instance::lock_to_detach(&pin_dir)?;
            let removed = loader::remove_pins(&pin_dir)?;
            println!(
                "removed {removed} pins (links and maps) from {}",
                pin_dir.display()
            );
            Ok(())
        }
        Command::Generate(args) => {
            let written = match args.what {
                Generated::Man(out) => generate::man_pages(&out.out)?,
                Generated::Completions(out) => generate::completions(&out.out)?,
            };
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// As `ls | head` does: a reader that stopped reading ends the command by
/// SIGPIPE, with no word. Rust ignores SIGPIPE, so a print would fail with
/// EPIPE and panic instead. Only for commands that print and exit: the
/// daemon keeps ignoring it, so a monitor client that goes away costs it nothing.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

async fn run(args: RunArgs) -> Result<()> {
    // Everything that can be refused is checked before any port is touched.
    let mut settings = RunSettings::resolve(&args)?;
    // The ports must exist and be ports (not a bridge) for a check to pass.
    let named = settings
        .ports
        .iter()
        .map(|port| Ok((port.name.clone(), interfaces::interface_index(&port.name)?)))
        .collect::<Result<Vec<(String, u32)>>>()?;
    let port_links = links::port_links(&named).await?;
    PortMode::refuse_bridges(&port_links)?;
    let (mode, why) = PortMode::choose(settings.attach, &port_links);
    let taken = settings.follow_bridge_ports(&port_links);
    let mut warnings = links::bridge_warnings(&port_links);
    warnings.extend(mode.warnings(&port_links));
    if args.check_config {
        println!("# attach: {} ({why})", mode.name());
        for line in taken.iter().chain(&warnings) {
            println!("# {line}");
        }
        print!("{}", settings.describe());
        return Ok(());
    }
    for line in &taken {
        info!("{line}");
    }
    for line in &warnings {
        warn!("{line}");
    }
    let plan = port_plan(&settings, &named);
    instance::check_capabilities(settings.querier.enabled)?;
    kernel::check()?;
    let mut signals = StopSignals::install()?;
    let _lock = instance::lock(&settings.pin_dir)?;
    let metrics_listener = settings.metrics_addr.map(metrics::bind).transpose()?;
    let pin_dir = settings.pin_dir.clone();
    // Pins this run creates are its own to remove if no port takes the program.
    let fresh = !pin_dir.join(igmp_common::map_names::MEMBERSHIP).exists();
    let mut ebpf = loader::load(&pin_dir, settings.limits.table_size, mode)?;
    if let Some(signal) = signals.arrived().await {
        if fresh {
            let _ = loader::remove_pins(&pin_dir);
        }
        return stopped_while_starting(signal);
    }
    spawn_kernel_log(&mut ebpf);
    let port_set = match PortSet::attach(ebpf, plan, mode, pin_dir.clone()) {
        Ok(port_set) => port_set,
        Err(error) => {
            if fresh {
                let _ = loader::remove_pins(&pin_dir);
            }
            return Err(error);
        }
    };
    info!(mode = mode.name(), why = %why, "attach mode");
    let names: Vec<String> = named.iter().map(|(name, _)| name.clone()).collect();
    match loader::detach_unlisted(&pin_dir, &names) {
        Ok(dropped) => {
            for port in dropped {
                info!("detached from {port}: attached by a previous daemon, no longer a port");
            }
        }
        Err(error) => {
            port_set.abandon();
            return Err(error);
        }
    }
    let (tables, events, events6, links) = match prepare(&settings) {
        Ok(prepared) => prepared,
        Err(error) => {
            port_set.abandon();
            return Err(error);
        }
    };
    if let Some(signal) = signals.arrived().await {
        port_set.abandon();
        if fresh {
            let _ = loader::remove_pins(&pin_dir);
        }
        return stopped_while_starting(signal);
    }
    let (monitor_tx, _) = broadcast::channel(1024);
    spawn_monitor_server(&pin_dir, monitor_tx.clone());
    let (requests_tx, requests) = tokio::sync::mpsc::channel(16);
    spawn_control_server(&pin_dir, requests_tx);
    let status = SharedStatus::default();
    if let Some(listener) = metrics_listener {
        spawn_metrics_server(listener, &pin_dir, status.clone());
    }
    let daemon = Daemon::new(tables, settings.timers.clone(), monitor_tx)?
        .with_ports(port_set)?
        .with_querier(settings.querier.clone(), status, port_bridges(&port_links))?
        .with_unregistered(settings.unregistered)
        .with_vlan_bridges(on_vlan_filtering_bridge(&port_links), mode == PortMode::Tc)
        .with_static_groups(settings.static_groups());
    let stop = async {
        let signal = signals.next().await;
        systemd::stopping();
        info!("{signal}: stopping");
    };
    systemd::ready();
    if let Some(port_set) = daemon.run(events, events6, links, requests, stop).await? {
        port_set.release(settings.keep_attached)?;
    }
    Ok(())
}

/// Each port's bridge, by name: MLD's queries come from its link-local address.
fn port_bridges(port_links: &[links::PortLink]) -> std::collections::BTreeMap<String, String> {
    port_links
        .iter()
        .filter_map(|link| Some((link.name.clone(), link.bridge.as_ref()?.name.clone())))
        .collect()
}

/// A stop signal arrived before the daemon ran: what the start changed is undone.
fn stopped_while_starting(signal: &str) -> Result<()> {
    info!("{signal} while starting: every port this run attached is detached again");
    Ok(())
}

/// What the daemon reads: the maps, the two families' events ring buffers
/// and the link notifications.
type Prepared = (
    Tables,
    RingBuf<MapData>,
    RingBuf<MapData>,
    UnboundedReceiver<links::LinkNote>,
);

/// The maps, the events ring buffers and the link notifications the daemon reads.
fn prepare(settings: &RunSettings) -> Result<Prepared> {
    let mut tables = Tables::open(&settings.pin_dir)?;
    tables
        .forwarding
        .write_settings(&settings.timers, settings.limits.max_groups)?;
    tables.reconcile_group_counts()?;
    let events = tables::open_events(&settings.pin_dir)?;
    let events6 = tables::open_events6(&settings.pin_dir)?;
    Ok((tables, events, events6, links::watch()?))
}

fn spawn_metrics_server(
    listener: std::net::TcpListener,
    pin_dir: &std::path::Path,
    status: SharedStatus,
) {
    let pin_dir = pin_dir.to_path_buf();
    tokio::spawn(async move {
        if let Err(error) = metrics::serve(listener, pin_dir, status).await {
            warn!("metrics: {error:#}");
        }
    });
}

/// Every port with its options and its interface's index, as looked up.
fn port_plan(settings: &RunSettings, named: &[(String, u32)]) -> Vec<PortPlan> {
    settings
        .ports
        .iter()
        .zip(named)
        .map(|(port, (_, ifindex))| PortPlan {
            ifindex: *ifindex,
            options: port.clone(),
        })
        .collect()
}

/// Whether a port is in a bridge with VLAN filtering on: there the bridge
/// tags and untags per port, which only the tc classifier does too (a
/// redirect in XDP would skip it).
fn on_vlan_filtering_bridge(port_links: &[links::PortLink]) -> bool {
    port_links.iter().any(|link| {
        link.bridge
            .as_ref()
            .is_some_and(|bridge| bridge.vlan_filtering)
    })
}

fn spawn_control_server(
    pin_dir: &std::path::Path,
    requests: tokio::sync::mpsc::Sender<control::Asked>,
) {
    let pin_dir = pin_dir.to_path_buf();
    tokio::spawn(async move {
        if let Err(error) = control::serve(&pin_dir, requests).await {
            warn!("control socket: {error:#}");
        }
    });
}

fn spawn_monitor_server(
    pin_dir: &std::path::Path,
    events: broadcast::Sender<monitor::MonitorEvent>,
) {
    let pin_dir = pin_dir.to_path_buf();
    tokio::spawn(async move {
        if let Err(error) = monitor::serve(&pin_dir, events).await {
            warn!("monitor socket: {error:#}");
        }
    });
}

/// Forwards aya-log lines from the XDP program to this process's logger.
fn spawn_kernel_log(ebpf: &mut aya::Ebpf) {
    let logger = match EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(error) => {
            warn!("kernel-side logging unavailable: {error}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd owns the logger.
    let Ok(mut logger) = (unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) })
    else {
        warn!("kernel-side logging unavailable: cannot poll its ring buffer");
        return;
    };
    tokio::spawn(async move {
        while let Ok(mut guard) = logger.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
