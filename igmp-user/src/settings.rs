//! What `run` does: the configuration file, if any, with the flags over it.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{bail, Result};
use igmp_common::{capacity, limits, router_mode, RouterMode, Unregistered};
use serde::Serialize;

use crate::{
    cli::{LimitArgs, PinArgs, RunArgs, TimerArgs},
    config::{check_timers, Config, LimitConfig, Robustness, Seconds, TimerConfig},
    links::{PortLink, PortVlans},
    loader::DEFAULT_PIN_DIR,
    options::{AttachMode, UnregisteredPolicy},
    querier::{MldVersion, QuerierSettings, QueryVersion},
    timers::Timers,
};

/// The options of one port, before its interface is looked up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortOptions {
    pub name: String,
    /// `router_mode::*`.
    pub router_mode: u8,
    pub fast_leave: bool,
    /// Which of the two above a flag or the file set: the others follow the
    /// bridge port's own settings (`mcast_router`, `mcast_fast_leave`).
    #[serde(skip)]
    pub configured: Configured,
    pub flood_reports: bool,
    /// `unregistered::*` for this port, or `unregistered::FOLLOW_GLOBAL`.
    pub unregistered: u8,
    /// Groups the port may hold (0: no limit).
    pub max_groups: u32,
    /// Reports per second (0: no limit) and back-to-back burst.
    pub report_rate: u32,
    pub report_burst: u32,
    /// Groups the port always receives.
    pub static_groups: Vec<std::net::IpAddr>,
    /// The port's VLANs on a VLAN-filtering bridge (its PVID: the bridge VLAN
    /// of its untagged frames), or none: taken from the bridge, not configured.
    #[serde(skip)]
    pub vlans: Option<PortVlans>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Configured {
    pub router_mode: bool,
    pub fast_leave: bool,
}

/// The limits against report floods, resolved from the defaults, the file and the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Limits {
    /// Capacity of the membership, source, host and group maps.
    pub table_size: u32,
    /// Groups on all ports together (0: no limit).
    pub max_groups: u32,
    pub max_groups_per_port: u32,
    pub report_rate: u32,
    pub report_burst: u32,
}

impl Limits {
    fn resolve(config: &LimitConfig, flags: &LimitArgs) -> Result<Self> {
        let table_size = flags
            .table_size
            .or(config.table_size.map(|size| size.0))
            .unwrap_or(capacity::MEMBERSHIP);
        // Below the capacity, so that the switch-wide limit is what refuses
        // a flood, counted, before the map itself runs out of room.
        let max_groups = flags
            .max_groups
            .or(config.max_groups)
            .unwrap_or(table_size - table_size / 16);
        if max_groups > table_size {
            bail!("limits: max-groups ({max_groups}) must not exceed table-size ({table_size})");
        }
        Ok(Self {
            table_size,
            max_groups,
            max_groups_per_port: flags
                .max_groups_per_port
                .or(config.max_groups_per_port)
                .unwrap_or(limits::MAX_GROUPS_PER_PORT),
            report_rate: flags
                .report_rate
                .or(config.report_rate)
                .unwrap_or(limits::REPORT_RATE),
            report_burst: flags
                .report_burst
                .or(config.report_burst)
                .unwrap_or(limits::REPORT_BURST),
        })
    }
}

#[derive(Debug)]
pub struct RunSettings {
    pub ports: Vec<PortOptions>,
    pub pin_dir: PathBuf,
    pub attach: AttachMode,
    pub keep_attached: bool,
    pub metrics_addr: Option<SocketAddr>,
    pub unregistered: UnregisteredPolicy,
    pub timers: Timers,
    pub querier: QuerierSettings,
    pub limits: Limits,
}

impl RunSettings {
    /// Reads `--config` (if given) and lays the flags over it.
    pub fn resolve(args: &RunArgs) -> Result<Self> {
        let config = match &args.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let interfaces = if args.interfaces.is_empty() {
            config.interfaces.clone()
        } else {
            args.interfaces.clone()
        };
        if interfaces.is_empty() {
            bail!("no port to snoop on: give --iface IF, or `interfaces` in a --config file");
        }
        if let Some(twice) = interfaces
            .iter()
            .enumerate()
            .find_map(|(at, name)| interfaces[..at].contains(name).then_some(name))
        {
            bail!("{twice}: given twice as a port (--iface or `interfaces`)");
        }
        if let Some(path) = &args.config {
            config.check(path, &interfaces)?;
        }
        for (flag, names) in [
            ("--router-port", &args.router_ports),
            ("--fast-leave", &args.fast_leave),
        ] {
            if let Some(stranger) = names.iter().find(|name| !interfaces.contains(name)) {
                bail!("{flag} {stranger}: not a port given with --iface");
            }
        }
        let timers = config
            .timers
            .overridden_by(&TimerConfig::from(&args.timers))
            .resolve();
        check_timers(&timers)?;
        let limits = Limits::resolve(&config.limits, &args.limits)?;
        Ok(Self {
            ports: interfaces
                .iter()
                .map(|name| port_options(name, &config, args, &limits))
                .collect(),
            pin_dir: args
                .pin_dir
                .clone()
                .or(config.pin_dir.clone())
                .unwrap_or_else(|| DEFAULT_PIN_DIR.into()),
            attach: args.attach.or(config.attach).unwrap_or_default(),
            keep_attached: args.keep_attached || config.keep_attached.unwrap_or(false),
            metrics_addr: args.metrics_addr.or(config.metrics_addr),
            unregistered: args
                .unregistered
                .or(config.unregistered)
                .unwrap_or_default(),
            querier: querier_settings(&config, args),
            timers,
            limits,
        })
    }

    /// Every port's static groups, by port name.
    pub fn static_groups(&self) -> Vec<(String, std::net::IpAddr)> {
        self.ports
            .iter()
            .flat_map(|port| {
                port.static_groups
                    .iter()
                    .map(|group| (port.name.clone(), *group))
            })
            .collect()
    }

    /// Ports in a bridge take the bridge port's `mcast_router` and
    /// `mcast_fast_leave` where neither a flag nor the file set them, as the
    /// bridge would have snooped them. Returns a line for each one taken.
    pub fn follow_bridge_ports(&mut self, links: &[PortLink]) -> Vec<String> {
        let mut taken = Vec::new();
        for (port, link) in self.ports.iter_mut().zip(links) {
            let Some(bridge) = &link.bridge else {
                continue;
            };
            if let Some(mode) = bridge
                .port_router_mode
                .filter(|&mode| !port.configured.router_mode && mode != port.router_mode)
            {
                port.router_mode = mode;
                let name = RouterMode::from(mode).name();
                taken.push(format!(
                    "{}: router {name}, as its mcast_router in {}",
                    port.name, bridge.name
                ));
            }
            if bridge.port_fast_leave && !port.configured.fast_leave && !port.fast_leave {
                port.fast_leave = true;
                taken.push(format!(
                    "{}: fast leave, as its mcast_fast_leave in {}",
                    port.name, bridge.name
                ));
            }
            if let Some(vlans) = &bridge.port_vlans {
                port.vlans = Some(vlans.clone());
                taken.push(format!(
                    "{}: untagged frames learned in VLAN {}, its PVID in {}",
                    port.name, vlans.pvid, bridge.name
                ));
            }
        }
        taken
    }

    /// The settings as a configuration file that gives them, for
    /// `--check-config`: every key written out, defaults included, so that
    /// `run --config` of the output runs the same.
    pub fn describe(&self) -> String {
        let seconds = |duration: std::time::Duration| duration.as_secs_f64();
        let timers = &self.timers;
        let described = Described {
            interfaces: self.ports.iter().map(|port| port.name.as_str()).collect(),
            pin_dir: &self.pin_dir,
            attach: value_name(&self.attach),
            keep_attached: self.keep_attached,
            metrics_addr: self.metrics_addr,
            unregistered: value_name(&self.unregistered),
            timers: DescribedTimers {
                robustness: timers.robustness,
                query_interval: seconds(timers.query_interval),
                query_response_interval: seconds(timers.query_response_interval),
                last_member_interval: seconds(timers.last_member_query_interval),
                last_member_count: timers.last_member_query_count,
                startup_query_interval: seconds(timers.startup_query_interval),
                startup_query_count: timers.startup_query_count,
                router_timeout: seconds(timers.router_timeout),
            },
            querier: DescribedQuerier {
                enabled: self.querier.enabled,
                version: match self.querier.version {
                    QueryVersion::V2 => 2,
                    QueryVersion::V3 => 3,
                },
                mld_version: match self.querier.mld_version {
                    MldVersion::V1 => 1,
                    MldVersion::V2 => 2,
                },
                address: self.querier.address,
            },
            limits: self.limits,
            ports: self
                .ports
                .iter()
                .map(|port| (port.name.as_str(), DescribedPort::from(port)))
                .collect(),
        };
        toml::to_string(&described).expect("settings are plain TOML values")
    }
}

/// [`RunSettings`] in the configuration file's keys.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Described<'a> {
    interfaces: Vec<&'a str>,
    pin_dir: &'a std::path::Path,
    attach: String,
    keep_attached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_addr: Option<SocketAddr>,
    unregistered: String,
    timers: DescribedTimers,
    querier: DescribedQuerier,
    limits: Limits,
    ports: std::collections::BTreeMap<&'a str, DescribedPort>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct DescribedTimers {
    robustness: u32,
    query_interval: f64,
    query_response_interval: f64,
    last_member_interval: f64,
    last_member_count: u32,
    startup_query_interval: f64,
    startup_query_count: u32,
    router_timeout: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct DescribedQuerier {
    enabled: bool,
    version: u8,
    mld_version: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<std::net::Ipv4Addr>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct DescribedPort {
    fast_leave: bool,
    router: &'static str,
    flood_reports: bool,
    unregistered: &'static str,
    max_groups: u32,
    report_rate: u32,
    report_burst: u32,
    static_groups: Vec<std::net::IpAddr>,
}

impl From<&PortOptions> for DescribedPort {
    fn from(port: &PortOptions) -> Self {
        Self {
            fast_leave: port.fast_leave,
            router: RouterMode::from(port.router_mode).name(),
            flood_reports: port.flood_reports,
            unregistered: Unregistered::from(port.unregistered).name(),
            max_groups: port.max_groups,
            report_rate: port.report_rate,
            report_burst: port.report_burst,
            static_groups: port.static_groups.clone(),
        }
    }
}

/// A flag value's name as the command line and the file spell it.
fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |name| name.get_name().to_string())
}

/// The timer flags, as the file would give them.
impl From<&TimerArgs> for TimerConfig {
    fn from(flags: &TimerArgs) -> Self {
        TimerConfig {
            robustness: flags.robustness.map(Robustness),
            query_interval: flags.query_interval.map(Seconds),
            query_response_interval: flags.query_response_interval.map(Seconds),
            last_member_interval: flags.last_member_interval.map(Seconds),
            last_member_count: flags.last_member_count.map(Robustness),
            router_timeout: flags.router_timeout.map(Seconds),
            ..TimerConfig::default()
        }
    }
}

/// The pin directory a command that reads the tables uses: `--pin-dir` (or
/// its variable), else the `--config` file's `pin-dir`, else the default.
pub fn pin_dir(args: &PinArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.pin_dir {
        return Ok(dir.clone());
    }
    let from_file = match &args.config {
        Some(path) => Config::load(path)?.pin_dir,
        None => None,
    };
    Ok(from_file.unwrap_or_else(|| DEFAULT_PIN_DIR.into()))
}

fn port_options(name: &str, config: &Config, args: &RunArgs, limits: &Limits) -> PortOptions {
    let file = config.port(name);
    let router_mode = if args.router_ports.iter().any(|port| port == name) {
        Some(router_mode::PERMANENT)
    } else {
        file.router.map(|mode| RouterMode::from(mode).into())
    };
    let fast_leave = if args.fast_leave.iter().any(|port| port == name) {
        Some(true)
    } else {
        file.fast_leave
    };
    PortOptions {
        name: name.to_string(),
        router_mode: router_mode.unwrap_or(router_mode::AUTO),
        fast_leave: fast_leave.unwrap_or(false),
        configured: Configured {
            router_mode: router_mode.is_some(),
            fast_leave: fast_leave.is_some(),
        },
        flood_reports: file.flood_reports,
        unregistered: file.unregistered.unwrap_or_default().for_port().into(),
        max_groups: file.max_groups.unwrap_or(limits.max_groups_per_port),
        report_rate: file.report_rate.unwrap_or(limits.report_rate),
        report_burst: file.report_burst.unwrap_or(limits.report_burst),
        static_groups: file.static_groups,
        vlans: None,
    }
}

fn querier_settings(config: &Config, args: &RunArgs) -> QuerierSettings {
    let version = args
        .querier_version
        .or(config.querier.version.map(|v| v.0))
        .unwrap_or(2);
    QuerierSettings {
        enabled: args.querier || config.querier.enabled.unwrap_or(false),
        version: if version == 3 {
            QueryVersion::V3
        } else {
            QueryVersion::V2
        },
        mld_version: match args
            .mld_querier_version
            .or(config.querier.mld_version.map(|v| v.0))
        {
            Some(1) => MldVersion::V1,
            _ => MldVersion::V2,
        },
        address: args.querier_address.or(config.querier.address),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn resolve(args: &[&str]) -> Result<RunSettings> {
        let mut argv = vec!["igmp-snoop", "run"];
        argv.extend(args);
        let Command::Run(run) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        RunSettings::resolve(&run)
    }

    fn example() -> String {
        format!("{}/../igmp-snoop.example.toml", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn flags_alone_give_the_defaults() {
        let settings = resolve(&["--iface", "eth0"]).unwrap();
        assert_eq!(settings.timers, Timers::default());
        assert_eq!(settings.pin_dir, PathBuf::from(DEFAULT_PIN_DIR));
        assert_eq!(settings.ports[0].router_mode, router_mode::AUTO);
        assert!(!settings.querier.enabled);
    }

    #[test]
    fn the_file_sets_and_flags_override() {
        let example = example();
        let settings = resolve(&[
            "--config",
            &example,
            "--query-interval",
            "30",
            "--querier-version",
            "3",
        ])
        .unwrap();
        assert_eq!(settings.ports.len(), 3);
        assert_eq!(settings.ports[0].router_mode, router_mode::PERMANENT);
        assert!(settings.ports[1].fast_leave);
        assert_eq!(settings.ports[2].router_mode, router_mode::OFF);
        assert_eq!(
            settings.timers.query_interval,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(settings.querier.version, QueryVersion::V3);
        assert!(settings.querier.enabled);
    }

    #[test]
    fn no_port_anywhere_is_an_error() {
        let error = resolve(&[]).unwrap_err().to_string();
        assert!(error.contains("no port to snoop on"), "{error}");
    }

    #[test]
    fn flags_for_ports_not_snooped_are_refused() {
        let error = resolve(&["-i", "eth0", "--fast-leave", "eth1"])
            .unwrap_err()
            .to_string();
        assert_eq!(error, "--fast-leave eth1: not a port given with --iface");
    }
}
