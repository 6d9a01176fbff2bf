//! The configuration file (TOML): every timer and per-port option. Flags on
//! the command line override it.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use thiserror::Error;

use crate::{daemon::UnregisteredPolicy, loader::AttachMode, timers::Timers};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Inconsistent { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Ports to snoop on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    pub pin_dir: Option<PathBuf>,
    pub xdp_mode: Option<XdpModeName>,
    pub metrics_addr: Option<SocketAddr>,
    pub keep_attached: Option<bool>,
    /// Multicast data for groups no port joined: "auto", "flood", "routers" or "drop".
    pub unregistered: Option<UnregisteredPolicy>,
    #[serde(default)]
    pub timers: TimerConfig,
    #[serde(default)]
    pub querier: QuerierConfig,
    /// Per-port options, by interface name.
    #[serde(default)]
    pub ports: BTreeMap<String, PortConfig>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum XdpModeName {
    Native,
    Generic,
}

impl From<XdpModeName> for AttachMode {
    fn from(mode: XdpModeName) -> Self {
        match mode {
            XdpModeName::Native => AttachMode::Native,
            XdpModeName::Generic => AttachMode::Generic,
        }
    }
}

/// Every field optional: what is missing keeps its RFC 3376 §8 default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimerConfig {
    pub robustness: Option<Robustness>,
    pub query_interval: Option<Seconds>,
    pub query_response_interval: Option<Seconds>,
    pub last_member_interval: Option<Seconds>,
    pub last_member_count: Option<Robustness>,
    pub startup_query_interval: Option<Seconds>,
    pub startup_query_count: Option<Robustness>,
    pub router_timeout: Option<Seconds>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuerierConfig {
    pub enabled: Option<bool>,
    pub version: Option<QueryVersionNumber>,
    pub address: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortConfig {
    #[serde(default)]
    pub fast_leave: bool,
    #[serde(default)]
    pub router: RouterModeName,
    /// Send IGMP reports and leaves out of this port too, not only router ports.
    #[serde(default)]
    pub flood_reports: bool,
    /// This port's policy for unregistered groups ("auto": the global one).
    pub unregistered: Option<UnregisteredPolicy>,
}

/// The bridge's `multicast_router` 0 / 1 / 2.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RouterModeName {
    Off,
    #[default]
    Auto,
    Permanent,
}

/// A duration in seconds (fractions allowed), above 0 and at most a day.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(try_from = "f64")]
pub struct Seconds(pub Duration);

impl TryFrom<f64> for Seconds {
    type Error = String;

    fn try_from(seconds: f64) -> Result<Self, String> {
        if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
            return Err(format!(
                "{seconds} s is out of range (more than 0, at most 86400)"
            ));
        }
        Ok(Self(Duration::from_secs_f64(seconds)))
    }
}

/// A count of at least 1 (robustness, LMQC, startup query count).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct Robustness(pub u32);

impl TryFrom<i64> for Robustness {
    type Error = String;

    fn try_from(count: i64) -> Result<Self, String> {
        match u32::try_from(count) {
            Ok(count) if count >= 1 => Ok(Self(count)),
            _ => Err(format!("{count} is out of range (at least 1)")),
        }
    }
}

/// IGMP version of our queries: 2 or 3.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct QueryVersionNumber(pub u8);

impl TryFrom<i64> for QueryVersionNumber {
    type Error = String;

    fn try_from(version: i64) -> Result<Self, String> {
        match version {
            2 | 3 => Ok(Self(version as u8)),
            _ => Err(format!(
                "version {version}: this querier speaks IGMP 2 or 3"
            )),
        }
    }
}

impl Config {
    /// Reads and checks `path`; errors name the file, the line and the column.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            let (line, column) = line_and_column(text, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: error.message().trim().to_string(),
            }
        })
    }

    /// The timers the file sets over the RFC defaults.
    pub fn apply_timers(&self, timers: &mut Timers) {
        let file = &self.timers;
        if let Some(Robustness(robustness)) = file.robustness {
            timers.robustness = robustness;
            timers.last_member_query_count = robustness;
            timers.startup_query_count = robustness;
        }
        if let Some(Seconds(interval)) = file.query_interval {
            timers.query_interval = interval;
            timers.startup_query_interval = interval / 4;
        }
        set(
            &mut timers.query_response_interval,
            file.query_response_interval.map(|s| s.0),
        );
        set(
            &mut timers.last_member_query_interval,
            file.last_member_interval.map(|s| s.0),
        );
        set(
            &mut timers.last_member_query_count,
            file.last_member_count.map(|c| c.0),
        );
        set(
            &mut timers.startup_query_interval,
            file.startup_query_interval.map(|s| s.0),
        );
        set(
            &mut timers.startup_query_count,
            file.startup_query_count.map(|c| c.0),
        );
        set(&mut timers.router_timeout, file.router_timeout.map(|s| s.0));
    }

    /// Cross-field checks, once the command line is merged in: every port
    /// with options must be snooped.
    pub fn check(&self, path: &Path, interfaces: &[String]) -> Result<(), ConfigError> {
        if let Some(stranger) = self.ports.keys().find(|port| !interfaces.contains(port)) {
            return Err(ConfigError::Inconsistent {
                path: path.to_path_buf(),
                message: format!(
                    "[ports.{stranger}]: not one of the interfaces snooped ({})",
                    interfaces.join(", ")
                ),
            });
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |newline| before.len() - newline - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../igmp-snoop.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn the_example_file_sets_every_key() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.interfaces, vec!["eth1", "eth2", "eth3"]);
        assert_eq!(config.xdp_mode, Some(XdpModeName::Native));
        assert!(
            config.metrics_addr.is_some()
                && config.keep_attached.is_some()
                && config.pin_dir.is_some()
        );
        assert_eq!(config.unregistered, Some(UnregisteredPolicy::Auto));
        let timers = &config.timers;
        assert!(timers.robustness.is_some() && timers.query_interval.is_some());
        assert!(timers.query_response_interval.is_some() && timers.last_member_interval.is_some());
        assert!(timers.last_member_count.is_some() && timers.startup_query_interval.is_some());
        assert!(timers.startup_query_count.is_some() && timers.router_timeout.is_some());
        assert!(
            config.querier.enabled.is_some()
                && config.querier.version.is_some()
                && config.querier.address.is_some()
        );
        assert_eq!(config.ports["eth1"].router, RouterModeName::Permanent);
        assert!(config.ports["eth2"].fast_leave);
        assert_eq!(config.ports["eth3"].router, RouterModeName::Off);
        assert!(config.ports["eth3"].flood_reports);
        assert_eq!(
            config.ports["eth3"].unregistered,
            Some(UnregisteredPolicy::Flood)
        );
    }

    #[test]
    fn an_empty_file_keeps_the_rfc_defaults() {
        let mut timers = Timers::default();
        parse("").unwrap().apply_timers(&mut timers);
        assert_eq!(timers, Timers::default());
    }

    #[test]
    fn file_timers_replace_the_defaults_and_derive_the_rest() {
        let mut timers = Timers::default();
        parse("[timers]\nrobustness = 3\nquery-interval = 60\n")
            .unwrap()
            .apply_timers(&mut timers);
        assert_eq!((timers.robustness, timers.last_member_query_count), (3, 3));
        assert_eq!(timers.startup_query_interval, Duration::from_secs(15));
        assert_eq!(timers.group_membership_interval(), Duration::from_secs(190));
    }

    #[test]
    fn unknown_keys_are_named_with_line_and_column() {
        let error = parse("interfaces = [\"eth1\"]\n\n[timers]\nrobustnes = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("test.toml:4:1: unknown field `robustnes`"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_name_their_place_and_the_rule() {
        for (text, expected) in [
            (
                "[timers]\nrobustness = 0\n",
                "test.toml:2:14: 0 is out of range (at least 1)",
            ),
            (
                "[timers]\nquery-interval = -1\n",
                "test.toml:2:18: -1 s is out of range",
            ),
            (
                "xdp-mode = \"fast\"\n",
                "test.toml:1:12: unknown variant `fast`",
            ),
            (
                "[querier]\nversion = 1\n",
                "test.toml:2:11: version 1: this querier speaks IGMP 2 or 3",
            ),
            (
                "[ports.eth1]\nrouter = \"always\"\n",
                "test.toml:2:10: unknown variant `always`",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn options_for_a_port_not_snooped_are_refused() {
        let config = parse("[ports.eth9]\nfast-leave = true\n").unwrap();
        let error = config
            .check(Path::new("c.toml"), &["eth1".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "c.toml: [ports.eth9]: not one of the interfaces snooped (eth1)"
        );
    }
}
