//! Prometheus metrics on `--metrics-addr`, in the text exposition format
//! 0.0.4 written by `prometheus-client` (which escapes label values: an
//! interface may be named `a"b\c`). Values are read from the pinned maps at
//! scrape time: nothing is counted twice, and a scrape always agrees with
//! `igmp-snoop show` and `stats`. Every attached port has its series from the
//! start, at 0. The `decision` values of `igmp_snoop_data_frames_total`
//! partition the frames the fast path decided on: their sum is the number of
//! frames. This module must not write a map; a scrape that cannot read the
//! maps is answered with status 500.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result};
use igmp_common::{
    Address, Counter, DataCounter, DataCounters, DropReason, Family as AddressFamily, PortCounters,
};
use prometheus_client::{
    encoding::prometheus_text,
    metrics::{counter::Counter as PromCounter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::{
    interfaces::interface_name,
    tables::{LearnedMaps, Tables},
};

/// What the daemon knows beyond the maps: the querier elections, IGMP's
/// and MLD's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuerierStatus {
    /// Whether this switch sends IGMP's general queries.
    pub is_querier: bool,
    /// The elected IGMP querier's address (ours, or the other querier's), if any.
    pub querier: Option<Ipv4Addr>,
    /// Whether this switch sends MLD's general queries.
    pub mld_is_querier: bool,
    /// The elected MLD querier's address, if any.
    pub mld_querier: Option<Ipv6Addr>,
}

pub type SharedStatus = Arc<Mutex<QuerierStatus>>;

/// The size of one address family's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub groups: usize,
    pub memberships: usize,
    pub sources: usize,
    pub router_ports: usize,
}

impl TableSizes {
    pub fn read<A: Address>(learned: &LearnedMaps<A>) -> Self {
        let memberships = learned.memberships();
        let groups: BTreeSet<_> = memberships.iter().map(|(key, _)| key.group_key()).collect();
        Self {
            groups: groups.len(),
            memberships: memberships.len(),
            sources: learned.source_entries().len(),
            router_ports: learned.router_ports().len(),
        }
    }

    /// Each table's gauge: name, help text, value.
    fn gauges(&self) -> [(&'static str, &'static str, usize); 4] {
        [
            (
                "igmp_snoop_groups",
                "Groups with at least one member port",
                self.groups,
            ),
            (
                "igmp_snoop_memberships",
                "(port, VLAN, group) entries",
                self.memberships,
            ),
            (
                "igmp_snoop_sources",
                "(port, VLAN, group, source) entries",
                self.sources,
            ),
            (
                "igmp_snoop_router_ports",
                "Ports a query was heard on",
                self.router_ports,
            ),
        ]
    }
}

/// What one scrape shows, read from the maps.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each address family's tables (the `family` label).
    pub tables: Vec<(AddressFamily, TableSizes)>,
    pub status: QuerierStatus,
    /// Every attached port (and any port with counters), by name.
    pub ports: Vec<(String, PortCounters)>,
    pub data: DataCounters,
}

impl Snapshot {
    pub fn read(tables: &Tables, status: &QuerierStatus) -> Self {
        let mut counted = tables.port_counters();
        // A port attached but not yet sent a frame has no counters entry.
        for ifindex in tables.ports.ports.keys().filter_map(Result::ok) {
            if !counted.iter().any(|(known, _)| *known == ifindex) {
                counted.push((ifindex, PortCounters::default()));
            }
        }
        counted.sort_by_key(|(ifindex, _)| *ifindex);
        Self {
            tables: std::iter::once((AddressFamily::Ipv4, TableSizes::read(&tables.learned)))
                .chain(
                    tables
                        .ipv6
                        .as_ref()
                        .map(|ipv6| (AddressFamily::Ipv6, TableSizes::read(&ipv6.learned))),
                )
                .collect(),
            status: status.clone(),
            ports: counted
                .into_iter()
                .map(|(ifindex, block)| (interface_name(ifindex), block))
                .collect(),
            data: tables.data_counters(),
        }
    }
}

/// The `decision` label of `igmp_snoop_data_frames_total`: each frame the
/// fast path decided on has exactly one. The program counts `forwarded` for
/// every frame of a registered group and, besides, `forwarded_sole_port` or
/// `forwarded_to_set` for some of them; the rest of `forwarded` is shown as
/// `forwarded_every_port`. `egress_filtered` and `clone_failed` count
/// copies, not frames, and are metrics of their own.
pub fn decisions(data: &DataCounters) -> Vec<(&'static str, u64)> {
    let frames = |counter: DataCounter| data.frames[counter as usize];
    let sole = frames(DataCounter::ForwardedSolePort);
    let set = frames(DataCounter::ForwardedToSet);
    // Per-CPU sums read one after the other: never below zero.
    let every = frames(DataCounter::Forwarded).saturating_sub(sole + set);
    let mut rows = vec![
        ("forwarded_sole_port", sole),
        ("forwarded_to_set", set),
        ("forwarded_every_port", every),
    ];
    for counter in DataCounter::ALL {
        match counter {
            DataCounter::Forwarded
            | DataCounter::ForwardedSolePort
            | DataCounter::ForwardedToSet
            | DataCounter::EgressFiltered
            | DataCounter::CloneFailed => {}
            counter => rows.push((counter.name(), frames(counter))),
        }
    }
    rows
}

type Labels = Vec<(&'static str, String)>;

/// The metrics text (Prometheus exposition format 0.0.4).
pub fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::default();
    // One gauge per table, one series per family.
    for (index, (name, help, _)) in TableSizes::default().gauges().into_iter().enumerate() {
        let by_family = Family::<Labels, Gauge>::default();
        for (family, sizes) in &snapshot.tables {
            let (_, _, size) = sizes.gauges()[index];
            by_family
                .get_or_create(&vec![("family", family.name().to_string())])
                .set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        registry.register(name, help, by_family);
    }
    // One series per family, as the tables' gauges.
    let status = &snapshot.status;
    let is_querier = Family::<Labels, Gauge>::default();
    for (family, querying) in [
        (AddressFamily::Ipv4, status.is_querier),
        (AddressFamily::Ipv6, status.mld_is_querier),
    ] {
        is_querier
            .get_or_create(&vec![("family", family.name().to_string())])
            .set(i64::from(querying));
    }
    registry.register(
        "igmp_snoop_is_querier",
        "1 when this switch is the querier (IGMP's for ipv4, MLD's for ipv6)",
        is_querier,
    );
    let elected = [
        (
            AddressFamily::Ipv4,
            status.querier.map(|address| address.to_string()),
        ),
        (
            AddressFamily::Ipv6,
            status.mld_querier.map(|address| address.to_string()),
        ),
    ];
    if elected.iter().any(|(_, address)| address.is_some()) {
        let info = Family::<Labels, Gauge>::default();
        for (family, address) in elected {
            if let Some(address) = address {
                info.get_or_create(&vec![
                    ("family", family.name().to_string()),
                    ("address", address),
                ])
                .set(1);
            }
        }
        registry.register("igmp_snoop_querier_info", "The elected querier", info);
    }
    // prometheus-client adds the `_total` of a counter's name, and the
    // full stop of a help text.
    let messages = Family::<Labels, PromCounter>::default();
    let drops = Family::<Labels, PromCounter>::default();
    for (port, block) in &snapshot.ports {
        for counter in Counter::ALL {
            messages
                .get_or_create(&vec![
                    ("port", port.clone()),
                    ("kind", counter.name().to_string()),
                ])
                .inc_by(block.messages[counter as usize]);
        }
        for reason in DropReason::ALL {
            drops
                .get_or_create(&vec![
                    ("port", port.clone()),
                    ("reason", reason.name().to_string()),
                ])
                .inc_by(block.drops[reason as usize]);
        }
    }
    registry.register(
        "igmp_snoop_messages",
        "IGMP messages and table operations by port",
        messages,
    );
    registry.register(
        "igmp_snoop_drops",
        "Frames passed over without touching the table, by reason",
        drops,
    );
    let data = Family::<Labels, PromCounter>::default();
    for (decision, value) in decisions(&snapshot.data) {
        data.get_or_create(&vec![("decision", decision.to_string())])
            .inc_by(value);
    }
    registry.register(
        "igmp_snoop_data_frames",
        "Multicast frames by fast-path decision; each frame has one decision",
        data,
    );
    // Counters of copies, not frames: each a metric of its own.
    for (name, help, counter) in [
        (
            "igmp_snoop_egress_filtered",
            "Copies of forwarded frames the egress check kept from a port",
            DataCounter::EgressFiltered,
        ),
        (
            "igmp_snoop_clone_failed",
            "Copies of forwarded frames the tc classifier could not make (a port missed the frame)",
            DataCounter::CloneFailed,
        ),
    ] {
        let copies = PromCounter::<u64>::default();
        copies.inc_by(snapshot.data.frames[counter as usize]);
        registry.register(name, help, copies);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

/// Takes `address` before any port is attached: a daemon asked for metrics
/// it cannot serve refuses to start rather than run without them.
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).with_context(|| {
        format!("--metrics-addr {address}: cannot listen (is another exporter using it?)")
    })?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("--metrics-addr {address}: cannot listen"))?;
    Ok(listener)
}

/// Serves the metrics to any HTTP GET on the listener `bind` returned.
pub async fn serve(
    listener: std::net::TcpListener,
    pin_dir: PathBuf,
    status: SharedStatus,
) -> Result<()> {
    let listener = TcpListener::from_std(listener).context("metrics listener")?;
    loop {
        let (stream, _) = listener.accept().await?;
        let page = match Tables::open(&pin_dir) {
            Ok(tables) => {
                let status = status.lock().expect("status lock").clone();
                Ok(render(&Snapshot::read(&tables, &status)))
            }
            Err(error) => Err(format!("igmp-snoop: {error:#}\n")),
        };
        tokio::spawn(respond(stream, page));
    }
}

/// The metrics with status 200, or why they cannot be read with status 500
/// (a scraper then records the target as down rather than its series as gone).
async fn respond(mut stream: TcpStream, page: Result<String, String>) {
    // The request itself does not matter: every path is the metrics page.
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request).await;
    let (status, content_type, body) = match page {
        Ok(body) => ("200 OK", prometheus_text::CONTENT_TYPE, body),
        Err(body) => (
            "500 Internal Server Error",
            "text/plain; charset=utf-8",
            body,
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_partition_the_frames() {
        let mut data = DataCounters::default();
        data.frames[DataCounter::Forwarded as usize] = 10;
        data.frames[DataCounter::ForwardedSolePort as usize] = 3;
        data.frames[DataCounter::ForwardedToSet as usize] = 4;
        data.frames[DataCounter::LinkLocal as usize] = 5;
        data.frames[DataCounter::EgressFiltered as usize] = 7;
        let rows = decisions(&data);
        assert_eq!(rows.iter().map(|(_, value)| value).sum::<u64>(), 15);
        assert!(rows.contains(&("forwarded_every_port", 3)));
        assert!(!rows.iter().any(|(name, _)| *name == "forwarded"));
    }

    #[test]
    fn table_sizes_carry_their_family() {
        let sizes = TableSizes {
            groups: 1,
            memberships: 2,
            sources: 3,
            router_ports: 4,
        };
        let snapshot = Snapshot {
            tables: vec![(AddressFamily::Ipv4, sizes)],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        for line in [
            r#"igmp_snoop_groups{family="ipv4"} 1"#,
            r#"igmp_snoop_memberships{family="ipv4"} 2"#,
            r#"igmp_snoop_sources{family="ipv4"} 3"#,
            r#"igmp_snoop_router_ports{family="ipv4"} 4"#,
        ] {
            assert!(text.lines().any(|found| found == line), "{line}: {text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let snapshot = Snapshot {
            ports: vec![("a\"b\\c".to_string(), PortCounters::default())],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        assert!(
            text.contains(r#"igmp_snoop_drops_total{port="a\"b\\c",reason="bad_ttl"} 0"#),
            "{text}"
        );
    }
}
