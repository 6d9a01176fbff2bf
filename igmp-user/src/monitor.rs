//! `igmp-snoop monitor`: a live stream of table changes, like `bridge monitor mdb`.
//!
//! The events ring buffer has one reader, the daemon; it republishes what it
//! decides (joins, leaves, expiries, querier changes) on a Unix socket next to
//! its pin directory, one JSON object per line, to every connected monitor.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use igmp_common::{Address, Event, EventKind};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::broadcast,
};

/// Directory of the monitor sockets.
const RUN_DIR: &str = "/run/igmp-snoop";

/// What happened, as `monitor` names it (the JSON `event` key).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MonitorKind {
    /// A new membership of a port in a group.
    Join,
    /// A leave (v2 leave, v3 TO_IN {}) was heard.
    Leave,
    /// A query was heard.
    Query,
    /// A group-and-source query named this source.
    QuerySource,
    /// A source a port asks for (or excludes).
    Source,
    /// A BLOCK (or a TO_IN without it) named this source.
    Block,
    /// A membership or a source went: timeout, leave, fast-leave, deleted.
    Expire,
    /// The operator gave a port a static group.
    Static,
    /// A port became a router port.
    Router,
    /// A router port timed out.
    RouterExpire,
    /// A querier was elected (this switch or another).
    Querier,
    /// The other querier fell silent.
    QuerierExpire,
    /// A port vanished or the bridge stopped forwarding on it.
    PortDown,
    /// A port is back.
    PortUp,
}

impl MonitorKind {
    /// The name `monitor` prints, as the JSON spells it.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|name| name.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One change of the table or of the querier.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MonitorEvent {
    pub event: MonitorKind,
    /// When the daemon saw it: RFC 3339, UTC, milliseconds (as `bridge monitor -t`).
    pub time: String,
    pub port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grp: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Reporter, querier or router address, as the event says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MonitorEvent {
    pub fn new(event: MonitorKind, port: String) -> Self {
        Self {
            event,
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            port,
            vid: None,
            grp: None,
            src: None,
            address: None,
            reason: None,
        }
    }

    /// What the monitors see of an event of the packet program.
    pub fn from_kernel<A: Address>(kind: EventKind, event: &Event<A>, port: &str) -> Self {
        let name = match kind {
            EventKind::NewMembership => MonitorKind::Join,
            EventKind::LeaveSeen => MonitorKind::Leave,
            EventKind::QuerySeen => MonitorKind::Query,
            EventKind::NewRouterPort => MonitorKind::Router,
            EventKind::NewSource => MonitorKind::Source,
            EventKind::SourceLeaveSeen => MonitorKind::Block,
            EventKind::QuerySourceSeen => MonitorKind::QuerySource,
        };
        let mut monitor = Self::new(name, port.to_string());
        monitor.vid = Some(event.vlan);
        if event.group != A::UNSPECIFIED {
            monitor.grp = Some(event.group.ip());
        }
        if matches!(
            kind,
            EventKind::NewSource | EventKind::SourceLeaveSeen | EventKind::QuerySourceSeen
        ) {
            monitor.src = Some(event.address.ip());
        } else {
            monitor.address = Some(event.address.ip());
        }
        monitor
    }

    /// One line in the style of `bridge monitor -t mdb`.
    pub fn line(&self) -> String {
        let mut line = format!("[{}] {} port {}", self.time, self.event.name(), self.port);
        if let Some(grp) = self.grp {
            line += &format!(" grp {grp}");
        }
        if let Some(src) = self.src {
            line += &format!(" src {src}");
        }
        if let Some(vid) = self.vid.filter(|vid| *vid != 0) {
            line += &format!(" vid {vid}");
        }
        if let Some(address) = self.address {
            line += &format!(" from {address}");
        }
        if let Some(reason) = &self.reason {
            line += &format!(" ({reason})");
        }
        line
    }
}

/// Where the daemon using `pin_dir` listens.
pub fn socket_path(pin_dir: &Path) -> PathBuf {
    let name: String = pin_dir
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

/// Accepts monitors on the socket of `pin_dir` and streams `events` to each.
pub async fn serve(pin_dir: &Path, events: broadcast::Sender<MonitorEvent>) -> Result<()> {
    let path = socket_path(pin_dir);
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
    // A stale socket of a daemon that died: nobody listens on it any more.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let receiver = events.subscribe();
        tokio::spawn(stream_events(stream, receiver));
    }
}

async fn stream_events(mut stream: UnixStream, mut events: broadcast::Receiver<MonitorEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // A slow monitor misses events rather than slowing the daemon.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Ok(mut line) = serde_json::to_string(&event) else {
            continue;
        };
        line.push('\n');
        if stream.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Connects to the daemon of `pin_dir` and prints its events until it stops.
pub async fn follow(pin_dir: &Path, json: bool) -> Result<()> {
    let path = socket_path(pin_dir);
    let stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "{}: no daemon to monitor (is `igmp-snoop run --pin-dir {}` running?)",
            path.display(),
            pin_dir.display()
        )
    })?;
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await? {
        if json {
            println!("{line}");
        } else if let Ok(event) = serde_json::from_str::<MonitorEvent>(&line) {
            println!("{}", event.line());
        }
    }
    bail!(
        "the daemon on {} stopped: no more events",
        pin_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn socket_path_is_derived_from_the_pin_dir() {
        assert_eq!(
            socket_path(Path::new("/sys/fs/bpf/igmp-snoop")),
            PathBuf::from("/run/igmp-snoop/sys-fs-bpf-igmp-snoop.sock")
        );
    }

    #[test]
    fn line_reads_like_bridge_monitor() {
        let mut event = MonitorEvent::new(MonitorKind::Join, "p1".into());
        event.time = "2026-12-02T10:00:00.123Z".into();
        event.grp = Some(Ipv4Addr::new(239, 1, 1, 1).into());
        event.vid = Some(10);
        event.address = Some(Ipv4Addr::new(10, 0, 0, 1).into());
        assert_eq!(
            event.line(),
            "[2026-12-02T10:00:00.123Z] join port p1 grp 239.1.1.1 vid 10 from 10.0.0.1"
        );
    }

    #[test]
    fn event_names_are_kebab_case_in_json_and_lines() {
        let event = MonitorEvent::new(MonitorKind::QuerierExpire, "*".into());
        let json: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "querier-expire");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(MonitorKind::PortDown.name(), "port-down");
    }
}
