//! Command-line interface.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::options::{AttachMode, UnregisteredPolicy};

/// IGMP snooping fast path: learns multicast membership in XDP on every port.
///
/// An XDP program on every port parses IGMP v1, v2 and v3 (over 802.1Q and
/// 802.1ad too), keeps a BPF map of group-to-port membership and sends
/// multicast data only to the ports that want it. `run` loads and attaches it
/// and runs the RFC 3376 timers and the querier; `show`, `routers`, `stats`
/// and `monitor` read the maps it pins; `detach` removes them.
#[derive(Debug, Parser)]
#[command(name = "igmp-snoop", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Where log lines go: stderr, as text or JSON, filtered by level.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format: `text` for people and journald, `json` (one object per line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Lines to log: a level (error, warn, info, debug, trace) or a filter such as
    /// `info,igmp_user=debug` [default: $RUST_LOG, else info].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the program, attach it to the ports and run the control loop until SIGINT/SIGTERM.
    Run(Box<RunArgs>),
    /// Print the snooping table (like `bridge mdb show`).
    Show(MdbShowArgs),
    /// Print the router ports and what their querier said.
    Routers(ShowArgs),
    /// Print per-port counters by message type and by drop reason.
    Stats(ShowArgs),
    /// Follow joins, leaves, expiries and querier changes as they happen (like `bridge monitor mdb`).
    Monitor(ShowArgs),
    /// Add a static group to a port, delete a membership, or flush the table
    /// (like `bridge mdb add|del|flush`), through the running daemon.
    Mdb(MdbArgs),
    /// Detach the program from every port and remove the pinned table.
    Detach(PinArgs),
    /// Write the manual pages or the shell completions (for packaging).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

impl Command {
    /// Whether the command prints and exits (everything but the daemon).
    pub fn prints_to_a_pipe(&self) -> bool {
        !matches!(self, Self::Run(_))
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generated,
}

#[derive(Debug, Subcommand)]
pub enum Generated {
    /// Manual pages: igmp-snoop.8 and igmp-snoop-<command>.8 for each command.
    Man(OutArgs),
    /// Completions for bash, zsh and fish.
    Completions(OutArgs),
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Directory to write into (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The environment variable that names the pin directory for every command,
/// under `--pin-dir` and over a configuration file's `pin-dir`.
pub const PIN_DIR_VARIABLE: &str = "IGMP_SNOOP_PIN_DIR";

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Directory under bpffs where the maps are pinned [default: the --config
    /// file's pin-dir, else /sys/fs/bpf/igmp-snoop].
    #[arg(long, env = PIN_DIR_VARIABLE, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Take the pin directory from this configuration file (the one `run` uses).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub pin: PinArgs,
    /// Print JSON instead of a table.
    #[arg(long, short)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MdbArgs {
    #[command(subcommand)]
    pub change: MdbChange,
}

#[derive(Debug, Subcommand)]
pub enum MdbChange {
    /// A static membership: the port receives the group from every source
    /// until it is deleted, whatever its hosts report (the bridge's `permanent`).
    Add(MdbEntryArgs),
    /// Remove a membership, static or learned, with its sources.
    Del(MdbEntryArgs),
    /// Remove every membership, or those of one port; learned ones come back
    /// with their hosts' next reports.
    Flush(MdbFlushArgs),
}

impl MdbChange {
    pub fn pin(&self) -> &PinArgs {
        match self {
            Self::Add(entry) | Self::Del(entry) => &entry.pin,
            Self::Flush(flush) => &flush.pin,
        }
    }
}

#[derive(Debug, Args)]
pub struct MdbFlushArgs {
    /// Only this port's memberships.
    #[arg(long, value_name = "IF")]
    pub port: Option<String>,
    #[command(flatten)]
    pub pin: PinArgs,
}

#[derive(Debug, Args)]
pub struct MdbEntryArgs {
    /// The port (one the daemon snoops).
    #[arg(long, value_name = "IF")]
    pub port: String,
    /// The group (IPv4 or IPv6).
    #[arg(long = "grp", visible_alias = "group", value_name = "GROUP")]
    pub group: std::net::IpAddr,
    /// The VLAN (0: untagged).
    #[arg(long, default_value_t = 0, value_name = "VID")]
    pub vid: u16,
    #[command(flatten)]
    pub pin: PinArgs,
}

#[derive(Debug, Args)]
pub struct MdbShowArgs {
    #[command(flatten)]
    pub show: ShowArgs,
    /// With --json: the shape of `bridge -j mdb show` (the rows under `mdb`,
    /// router ports under `router`), so filters written for the bridge work.
    #[arg(long, requires = "json")]
    pub bridge: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A port to snoop on (repeat for each port; or `interfaces` in the config).
    #[arg(long = "iface", short = 'i', value_name = "IF")]
    pub interfaces: Vec<String>,
    /// A configuration file (TOML; see igmp-snoop.example.toml). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration (file and flags) and that its ports exist,
    /// print the settings as a configuration file that gives them, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// A port that always leads to a multicast router (repeat for each); it
    /// receives every group, like the bridge's `multicast_router 2`.
    #[arg(long = "router-port", value_name = "IF")]
    pub router_ports: Vec<String>,
    /// A port whose groups are removed as soon as their last host leaves
    /// (explicit host tracking; the bridge's `fastleave`). Repeat for each.
    #[arg(long = "fast-leave", value_name = "IF")]
    pub fast_leave: Vec<String>,
    /// Query when no other querier is present (off by default, like the
    /// bridge's mcast_querier): IGMP and MLD, each with its own election,
    /// which lower addresses win. MLD's queries come from a link-local address.
    #[arg(long)]
    pub querier: bool,
    /// IGMP version of this switch's queries: 2 (the default, like the bridge) or 3.
    #[arg(long, value_name = "2|3", value_parser = clap::value_parser!(u8).range(2..=3))]
    pub querier_version: Option<u8>,
    /// MLD version of this switch's queries: 2 (the default, RFC 3810) or 1
    /// (the bridge's default `mcast_mld_version`, for MLDv1-only routers).
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub mld_querier_version: Option<u8>,
    /// Source address of this switch's IGMP queries; without one they come
    /// from 0.0.0.0 and never win an election.
    #[arg(long, value_name = "ADDR")]
    pub querier_address: Option<std::net::Ipv4Addr>,
    /// Multicast data for groups no port joined: auto (the default: to router
    /// ports once a querier is known, flooded before, like the bridge), flood,
    /// routers or drop.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub unregistered: Option<UnregisteredPolicy>,
    /// How the program is attached: auto (the default: native XDP when every
    /// port is a NIC, the tc classifier on all when some port is virtual),
    /// native, generic (XDP) or tc.
    #[arg(
        long = "attach",
        visible_alias = "xdp-mode",
        value_enum,
        value_name = "MODE"
    )]
    pub attach: Option<AttachMode>,
    /// On SIGINT/SIGTERM leave the program attached and the table pinned
    /// (a later `run` takes them over; `detach` removes them).
    #[arg(long)]
    pub keep_attached: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9477).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Directory under bpffs where the maps and links are pinned [default: /sys/fs/bpf/igmp-snoop].
    #[arg(long, env = PIN_DIR_VARIABLE, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    #[command(flatten)]
    pub timers: TimerArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limits against report floods, enforced in XDP before a report costs
/// anything more. Past a limit, new groups are refused and counted; existing
/// entries are never evicted and snooping stays on.
#[derive(Debug, Default, Args)]
pub struct LimitArgs {
    /// Groups one port may hold; 0: no limit [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_groups_per_port: Option<u32>,
    /// Groups all ports together may hold; 0: no limit [default: 15/16 of the table size].
    #[arg(long, value_name = "N")]
    pub max_groups: Option<u32>,
    /// Reports and leaves accepted per second on each port; the excess is
    /// counted and dropped; 0: no limit [default: 1000].
    #[arg(long, value_name = "PER_SEC")]
    pub report_rate: Option<u32>,
    /// Reports accepted back to back on a port before the rate applies [default: 1000].
    #[arg(long, value_name = "N")]
    pub report_burst: Option<u32>,
    /// Capacity of the membership table, and of the source, host and group
    /// maps [default: 65536]. Set when the maps are first pinned.
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub table_size: Option<u32>,
}

/// Protocol timers; defaults are RFC 3376 §8 (the Linux bridge's too).
#[derive(Debug, Default, Args)]
pub struct TimerArgs {
    /// Robustness variable [default: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub robustness: Option<u32>,
    /// Query interval, seconds [default: 125].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub query_interval: Option<Duration>,
    /// Query response interval, seconds [default: 10].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub query_response_interval: Option<Duration>,
    /// Last member query interval, seconds [default: 1].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub last_member_interval: Option<Duration>,
    /// Last member query count [default: the robustness variable].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub last_member_count: Option<u32>,
    /// Router port timeout, seconds [default: 255].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub router_timeout: Option<Duration>,
}

/// Seconds, fractions allowed ("0.5"), positive and finite.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!("{text:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_seconds_name_the_value() {
        let error = Cli::try_parse_from([
            "igmp-snoop",
            "run",
            "-i",
            "eth0",
            "--query-interval",
            "soon",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("\"soon\" is not a number of seconds"),
            "{error}"
        );
    }

    /// `--help` and the manual pages are made of these strings: an argument
    /// without one would show as a bare flag.
    #[test]
    fn every_command_and_argument_is_documented() {
        fn walk(command: &clap::Command, path: &str, undocumented: &mut Vec<String>) {
            if command.get_about().is_none() {
                undocumented.push(path.to_string());
            }
            for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    undocumented.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), undocumented);
            }
        }
        let mut command = <Cli as clap::CommandFactory>::command();
        command.build();
        let mut undocumented = Vec::new();
        walk(&command, "igmp-snoop", &mut undocumented);
        assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
    }

    #[test]
    fn querier_version_must_be_2_or_3() {
        assert!(Cli::try_parse_from(["igmp-snoop", "run", "--querier-version", "1"]).is_err());
    }
}
