//! Prometheus text metrics on `--metrics-addr`. Values are read from the
//! pinned maps at scrape time: nothing is counted twice, and a scrape always
//! agrees with `igmp-snoop show` and `stats`.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result};
use igmp_common::{Counter, DataCounter, DropReason};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::{loader::interface_name, tables::Tables};

/// What the daemon knows beyond the maps: the querier election.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerierStatus {
    /// Whether this switch sends the general queries.
    pub is_querier: bool,
    /// The elected querier's address (ours, or the other querier's), if any.
    pub querier: Option<Ipv4Addr>,
}

pub type SharedStatus = Arc<Mutex<QuerierStatus>>;

/// The metrics text (Prometheus exposition format 0.0.4).
pub fn render(tables: &Tables, status: &QuerierStatus) -> String {
    let mut out = String::new();
    let memberships = tables.memberships();
    let groups: BTreeSet<_> = memberships
        .iter()
        .map(|(key, _)| (key.vlan, key.inner_vlan, key.group))
        .collect();
    gauge(
        &mut out,
        "igmp_snoop_groups",
        "Groups with at least one member port.",
        groups.len(),
    );
    gauge(
        &mut out,
        "igmp_snoop_memberships",
        "(port, VLAN, group) entries.",
        memberships.len(),
    );
    gauge(
        &mut out,
        "igmp_snoop_sources",
        "(port, VLAN, group, source) entries.",
        tables.source_entries().len(),
    );
    gauge(
        &mut out,
        "igmp_snoop_router_ports",
        "Ports a query was heard on.",
        tables.router_ports().len(),
    );
    gauge(
        &mut out,
        "igmp_snoop_is_querier",
        "1 when this switch is the querier.",
        usize::from(status.is_querier),
    );
    if let Some(querier) = status.querier {
        let _ = writeln!(out, "# HELP igmp_snoop_querier_info The elected querier.");
        let _ = writeln!(out, "# TYPE igmp_snoop_querier_info gauge");
        let _ = writeln!(out, "igmp_snoop_querier_info{{address=\"{querier}\"}} 1");
    }
    counters(&mut out, tables);
    let data = tables.data_counters();
    let _ = writeln!(
        out,
        "# HELP igmp_snoop_data_frames_total Multicast data frames by fast-path decision."
    );
    let _ = writeln!(out, "# TYPE igmp_snoop_data_frames_total counter");
    for counter in DataCounter::ALL {
        let value = data.frames[counter as usize];
        let _ = writeln!(
            out,
            "igmp_snoop_data_frames_total{{decision=\"{}\"}} {value}",
            counter.name()
        );
    }
    out
}

fn gauge(out: &mut String, name: &str, help: &str, value: usize) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counters(out: &mut String, tables: &Tables) {
    let ports = tables.port_counters();
    let _ = writeln!(
        out,
        "# HELP igmp_snoop_messages_total IGMP messages and table operations by port."
    );
    let _ = writeln!(out, "# TYPE igmp_snoop_messages_total counter");
    for (ifindex, block) in &ports {
        let port = interface_name(*ifindex);
        for counter in Counter::ALL {
            let value = block.messages[counter as usize];
            let _ = writeln!(
                out,
                "igmp_snoop_messages_total{{port=\"{port}\",kind=\"{}\"}} {value}",
                counter.name()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP igmp_snoop_drops_total Frames passed over without touching the table, by reason."
    );
    let _ = writeln!(out, "# TYPE igmp_snoop_drops_total counter");
    for (ifindex, block) in &ports {
        let port = interface_name(*ifindex);
        for reason in DropReason::ALL {
            let value = block.drops[reason as usize];
            let _ = writeln!(
                out,
                "igmp_snoop_drops_total{{port=\"{port}\",reason=\"{}\"}} {value}",
                reason.name()
            );
        }
    }
}

/// Serves the metrics on `address` to any HTTP GET.
pub async fn serve(address: SocketAddr, pin_dir: PathBuf, status: SharedStatus) -> Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("--metrics-addr {address}: cannot listen"))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let body = match Tables::open(&pin_dir) {
            Ok(tables) => render(&tables, &status.lock().expect("status lock").clone()),
            Err(error) => format!("# igmp-snoop: {error:#}\n"),
        };
        tokio::spawn(respond(stream, body));
    }
}

async fn respond(mut stream: TcpStream, body: String) {
    // The request itself does not matter: every path is the metrics page.
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request).await;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}
