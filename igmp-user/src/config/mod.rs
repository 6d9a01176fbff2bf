//! The configuration file (TOML): every timer and per-port option. Flags on
//! the command line override it.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use thiserror::Error;

use crate::{
    options::{
        is_snooped_group, is_snooped_group6, AttachMode, RouterModeName, UnregisteredPolicy,
    },
    timers::Timers,
};

#[derive(Debug, Error)]
pub enum ConfigError {
    // The OS error is in the message and deliberately not a `#[source]`:
    // `main` prints the whole chain, which would repeat it.
    #[error("{path}: cannot read: {error} (check the path given to --config)")]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
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
    /// The timers after the flags are laid over the file.
    #[error("timers: {0}")]
    Timers(String),
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Ports to snoop on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    pub pin_dir: Option<PathBuf>,
    #[serde(alias = "xdp-mode")]
    pub attach: Option<AttachMode>,
    pub metrics_addr: Option<SocketAddr>,
    pub keep_attached: Option<bool>,
    /// Multicast data for groups no port joined: "auto", "flood", "routers" or "drop".
    pub unregistered: Option<UnregisteredPolicy>,
    #[serde(default)]
    pub timers: TimerConfig,
    #[serde(default)]
    pub querier: QuerierConfig,
    #[serde(default)]
    pub limits: LimitConfig,
    /// Per-port options, by interface name.
    #[serde(default)]
    pub ports: BTreeMap<String, PortConfig>,
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
    pub mld_version: Option<MldVersionNumber>,
    pub address: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortConfig {
    /// Unset: the bridge port's `mcast_fast_leave`, else off.
    pub fast_leave: Option<bool>,
    /// Unset: the bridge port's `mcast_router`, else auto.
    pub router: Option<RouterModeName>,
    /// Send IGMP reports and leaves out of this port too, not only router ports.
    #[serde(default)]
    pub flood_reports: bool,
    /// This port's policy for unregistered groups ("auto": the global one).
    pub unregistered: Option<UnregisteredPolicy>,
    /// This port's group limit (0: none), over `limits.max-groups-per-port`.
    pub max_groups: Option<u32>,
    /// Groups the port always receives, as `igmp-snoop mdb add` makes them.
    #[serde(default)]
    pub static_groups: Vec<IpAddr>,
    /// This port's report rate limit (0: none), over `limits.report-rate`.
    pub report_rate: Option<u32>,
    pub report_burst: Option<u32>,
}

/// Limits against report floods; what is missing keeps its default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitConfig {
    pub max_groups_per_port: Option<u32>,
    pub max_groups: Option<u32>,
    pub report_rate: Option<u32>,
    pub report_burst: Option<u32>,
    pub table_size: Option<TableSize>,
}

/// A map capacity: from 1024 entries (a few ports' worth) to 16 M.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct TableSize(pub u32);

impl TryFrom<i64> for TableSize {
    type Error = String;

    fn try_from(entries: i64) -> Result<Self, String> {
        match u32::try_from(entries) {
            Ok(entries) if (1024..=16_777_216).contains(&entries) => Ok(Self(entries)),
            _ => Err(format!(
                "{entries} entries is out of range (at least 1024, at most 16777216)"
            )),
        }
    }
}

/// A duration in seconds (fractions allowed), from 1 ms to a day.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(try_from = "f64")]
pub struct Seconds(pub Duration);

impl TryFrom<f64> for Seconds {
    type Error = String;

    fn try_from(seconds: f64) -> Result<Self, String> {
        // The floor is tokio's timer resolution: anything shorter fires as if
        // it were zero, and a zero query interval would query in a busy loop.
        if !seconds.is_finite() || !(0.001..=86_400.0).contains(&seconds) {
            return Err(format!(
                "{seconds} s is out of range (at least 0.001, at most 86400)"
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

/// MLD version of our queries: 1 or 2.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct MldVersionNumber(pub u8);

impl TryFrom<i64> for MldVersionNumber {
    type Error = String;

    fn try_from(version: i64) -> Result<Self, String> {
        match version {
            1 | 2 => Ok(Self(version as u8)),
            _ => Err(format!("version {version}: this querier speaks MLD 1 or 2")),
        }
    }
}

impl Config {
    /// Reads and checks `path`; errors name the file, the line and the column.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            let (line, column) = line_and_column(text, offset);
            let message = in_words(error.message().trim());
            // Serde reports a bad value at the value without its key; an
            // unknown key is reported at the key and its message names it.
            let message = match key_at(text, offset) {
                Some(key) => format!("`{key}`: {message}"),
                None => message.to_string(),
            };
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })
    }

    /// The RFC defaults with the file's timers over them.
    pub fn timers(&self) -> Timers {
        self.timers.resolve()
    }

    /// The options of port `name`: its `[ports.<name>]` table, or the defaults.
    pub fn port(&self, name: &str) -> PortConfig {
        self.ports.get(name).cloned().unwrap_or_default()
    }

    /// The timers the file sets over `timers`.
    pub fn apply_timers(&self, timers: &mut Timers) {
        self.timers.apply(timers);
    }

    /// Cross-field checks, once the command line is merged in: every port
    /// with options must be snooped.
    pub fn check(&self, path: &Path, interfaces: &[String]) -> Result<(), ConfigError> {
        for (port, options) in &self.ports {
            if let Some(group) = options.static_groups.iter().find(|group| match group {
                IpAddr::V4(group) => !is_snooped_group(*group),
                IpAddr::V6(group) => !is_snooped_group6(*group),
            }) {
                return Err(ConfigError::Inconsistent {
                    path: path.to_path_buf(),
                    message: format!(
                        "[ports.{port}] static-groups: {group} is not a group to snoop (a multicast address outside 224.0.0.0/24, or an IPv6 one of link scope or wider but ff02::1)"
                    ),
                });
            }
        }
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

impl TimerConfig {
    /// Key by key, what `flags` sets wins. Derived values (the counts from
    /// robustness, the startup interval from the query interval) are only
    /// worked out in `resolve`, so a flag never undoes a key the file set.
    pub fn overridden_by(&self, flags: &TimerConfig) -> TimerConfig {
        TimerConfig {
            robustness: flags.robustness.or(self.robustness),
            query_interval: flags.query_interval.or(self.query_interval),
            query_response_interval: flags
                .query_response_interval
                .or(self.query_response_interval),
            last_member_interval: flags.last_member_interval.or(self.last_member_interval),
            last_member_count: flags.last_member_count.or(self.last_member_count),
            startup_query_interval: flags.startup_query_interval.or(self.startup_query_interval),
            startup_query_count: flags.startup_query_count.or(self.startup_query_count),
            router_timeout: flags.router_timeout.or(self.router_timeout),
        }
    }

    /// The RFC defaults with these timers over them.
    pub fn resolve(&self) -> Timers {
        let mut timers = Timers::default();
        self.apply(&mut timers);
        timers
    }

    /// Sets what is given over `timers`; robustness and the query interval
    /// first, as the counts and the startup interval derive from them.
    pub fn apply(&self, timers: &mut Timers) {
        if let Some(Robustness(robustness)) = self.robustness {
            timers.robustness = robustness;
            timers.last_member_query_count = robustness;
            timers.startup_query_count = robustness;
        }
        if let Some(Seconds(interval)) = self.query_interval {
            timers.query_interval = interval;
            timers.startup_query_interval = interval / 4;
        }
        set(
            &mut timers.query_response_interval,
            self.query_response_interval.map(|s| s.0),
        );
        set(
            &mut timers.last_member_query_interval,
            self.last_member_interval.map(|s| s.0),
        );
        set(
            &mut timers.last_member_query_count,
            self.last_member_count.map(|c| c.0),
        );
        set(
            &mut timers.startup_query_interval,
            self.startup_query_interval.map(|s| s.0),
        );
        set(
            &mut timers.startup_query_count,
            self.startup_query_count.map(|c| c.0),
        );
        set(&mut timers.router_timeout, self.router_timeout.map(|s| s.0));
    }
}

/// Rules between timers, checked once the flags are merged in.
pub fn check_timers(timers: &Timers) -> Result<(), ConfigError> {
    // RFC 3376 §8.3: hosts spread their reports over the response interval,
    // which must end before the next general query.
    if timers.query_response_interval >= timers.query_interval {
        return Err(ConfigError::Timers(format!(
            "query-response-interval ({:?}) must be less than query-interval ({:?})",
            timers.query_response_interval, timers.query_interval
        )));
    }
    Ok(())
}

/// Serde names the Rust type it wanted (`expected f64`); the operator wants
/// the kind of value.
fn in_words(message: &str) -> String {
    let Some((before, wanted)) = message.rsplit_once("expected ") else {
        return message.to_string();
    };
    let wanted = match wanted {
        "f64" => "a number",
        "i64" | "u64" => "a whole number",
        "u32" | "u16" | "u8" => "a whole number, 0 or more",
        other => other,
    };
    format!("{before}expected {wanted}")
}

/// The dotted key whose value holds byte `offset` (`timers.robustness`), or
/// None when the offset is on a key or the text does not parse.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    key_in(document.get_ref(), offset)
}

fn key_in(table: &toml::de::DeTable<'_>, offset: usize) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let key = quoted(key.get_ref());
        match value.get_ref() {
            // A table's span may not cover its body (`[timers]`), so look
            // inside every table rather than only the one holding the offset.
            toml::de::DeValue::Table(inner) => {
                key_in(inner, offset).map(|rest| format!("{key}.{rest}"))
            }
            _ => value.span().contains(&offset).then_some(key),
        }
    })
}

/// A key as it is written in TOML: `ports."eth1.100"` for a VLAN port.
fn quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
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
mod tests;
