use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use aya_log::EbpfLogger;
use clap::Parser as _;
use igmp_user::{
    cli::{Cli, Command, Generated, RunArgs, ShowArgs},
    daemon::Daemon,
    generate, instance, kernel, links,
    loader::{self, PortMode},
    logging,
    metrics::{self, SharedStatus},
    monitor,
    ports::{PortPlan, PortSet},
    settings::RunSettings,
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
/// of a usage error adds a blank line and a hint, which scripts and log lines
/// do not want.
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
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("igmp-snoop: {message} (see igmp-snoop --help)");
            std::process::exit(2);
        }
    }
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
        Command::Show(args) => show(&args),
        Command::Routers(args) => routers(&args),
        Command::Stats(args) => stats(&args),
        Command::Monitor(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(monitor::follow(&args.pin.pin_dir, args.json)),
        Command::Detach(args) => {
            // A running daemon would re-create what is removed under it.
            let _lock = instance::lock_to_detach(&args.pin_dir)?;
            let removed = loader::remove_pins(&args.pin_dir)?;
            println!(
                "removed {removed} pins (links and maps) from {}",
                args.pin_dir.display()
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
    let settings = RunSettings::resolve(&args)?;
    if args.check_config {
        print!("{}", settings.describe());
        return Ok(());
    }
    instance::check_capabilities(settings.querier.enabled)?;
    kernel::check()?;
    let mut signals = StopSignals::install()?;
    let _lock = instance::lock(&settings.pin_dir)?;
    let metrics_listener = settings.metrics_addr.map(metrics::bind).transpose()?;
    let plan = port_plan(&settings)?;
    let ifindexes: Vec<u32> = plan.iter().map(|port| port.ifindex).collect();
    let pin_dir = settings.pin_dir.clone();
    // Pins this run creates are its own to remove if no port takes the program.
    let fresh = !pin_dir.join(igmp_common::map_names::MEMBERSHIP).exists();
    let named: Vec<(String, u32)> = plan
        .iter()
        .map(|port| (port.options.name.clone(), port.ifindex))
        .collect();
    let kinds = links::link_kinds(&named).await?;
    PortMode::refuse_bridges(&kinds)?;
    let (mode, why) = PortMode::choose(settings.attach, &kinds);
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
    let (tables, events, links) = match prepare(&settings) {
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
    let status = SharedStatus::default();
    if let Some(listener) = metrics_listener {
        spawn_metrics_server(listener, &pin_dir, status.clone());
    }
    let daemon = Daemon::new(tables, settings.timers.clone(), monitor_tx)
        .with_ports(port_set)?
        .with_querier(settings.querier.clone(), status)?
        .with_unregistered(settings.unregistered)
        .with_fast_path(!links::on_vlan_filtering_bridge(&ifindexes).await?);
    let stop = async {
        let signal = signals.next().await;
        systemd::stopping();
        info!("{signal}: stopping");
    };
    systemd::ready();
    if let Some(port_set) = daemon.run(events, links, stop).await? {
        port_set.release(settings.keep_attached)?;
    }
    Ok(())
}

/// A stop signal arrived before the daemon ran: what the start changed is undone.
fn stopped_while_starting(signal: &str) -> Result<()> {
    info!("{signal} while starting: every port this run attached is detached again");
    Ok(())
}

/// The maps, the events ring buffer and the link notifications the daemon reads.
fn prepare(
    settings: &RunSettings,
) -> Result<(Tables, RingBuf<MapData>, UnboundedReceiver<links::LinkNote>)> {
    let mut tables = Tables::open(&settings.pin_dir)?;
    tables.write_settings(&settings.timers, settings.limits.max_groups)?;
    tables.reconcile_group_counts()?;
    let events = tables::open_events(&settings.pin_dir)?;
    Ok((tables, events, links::watch()?))
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

/// Every port with its options and its interface's index (which must exist).
fn port_plan(settings: &RunSettings) -> Result<Vec<PortPlan>> {
    settings
        .ports
        .iter()
        .map(|port| {
            Ok(PortPlan {
                ifindex: loader::interface_index(&port.name)?,
                options: port.clone(),
            })
        })
        .collect()
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

fn show(args: &ShowArgs) -> Result<()> {
    let tables = Tables::open(&args.pin.pin_dir)?;
    let rows = view::mdb_rows(
        &tables.memberships(),
        &tables.source_entries(),
        &tables.settings(),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", view::render_mdb(&rows));
        println!();
    }
    Ok(())
}

fn routers(args: &ShowArgs) -> Result<()> {
    let tables = Tables::open(&args.pin.pin_dir)?;
    let rows = view::router_rows(&tables.router_ports(), &tables.settings());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", view::render_routers(&rows));
    }
    Ok(())
}

fn stats(args: &ShowArgs) -> Result<()> {
    let tables = Tables::open(&args.pin.pin_dir)?;
    let counters = tables.port_counters();
    let data = tables.data_counters();
    let ports: Vec<_> = tables.ports.iter().filter_map(Result::ok).collect();
    let limits = view::limit_rows(&tables.groups_in_use(), &ports, &tables.settings());
    let attached = loader::attachments(&args.pin.pin_dir);
    if args.json {
        let json = serde_json::json!({
            "ports": view::counters_json(&counters),
            "data": view::data_counters_json(&data),
            "limits": limits,
            "attached": view::attachments_json(&attached),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", view::render_counters(&counters));
        println!("{}", view::render_data_counters(&data));
        println!("{}", view::render_limits(&limits));
        println!("{}", view::render_attachments(&attached));
    }
    Ok(())
}
