//! `igmp-snoop stats`: each port's message and drop counters, the fast
//! path's decisions, the group limits and the attachments, and whether a
//! daemon keeps them. Counters are shared by both families and named by
//! protocol (`v2_report`, `mld_v2_report`); the table sizes are per family
//! (`tables`), and the limits count both families' groups together.

use anyhow::Result;
use comfy_table::{presets::NOTHING, Table};
use igmp_common::{Counter, DataCounter, DataCounters, DropReason, Settings};
use serde::Serialize;

use super::{end_if_no_daemon, tables_to_print};
use crate::{cli::ShowArgs, instance, interfaces::interface_name, loader, settings};

/// Counters by port, by name; zero counters left out of the human view.
pub fn counters_json(counters: &[(u32, igmp_common::PortCounters)]) -> serde_json::Value {
    let ports: Vec<_> = counters
        .iter()
        .map(|(ifindex, block)| {
            let messages: serde_json::Map<_, _> = Counter::ALL
                .iter()
                .map(|c| (c.name().to_string(), block.messages[*c as usize].into()))
                .collect();
            let drops: serde_json::Map<_, _> = DropReason::ALL
                .iter()
                .map(|d| (d.name().to_string(), block.drops[*d as usize].into()))
                .collect();
            serde_json::json!({
                "port": interface_name(*ifindex),
                "ifindex": ifindex,
                "messages": messages,
                "drops": drops,
            })
        })
        .collect();
    serde_json::Value::Array(ports)
}

pub fn render_counters(counters: &[(u32, igmp_common::PortCounters)]) -> String {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_header(["port", "kind", "counter", "value"]);
    for (ifindex, block) in counters {
        let port = interface_name(*ifindex);
        for counter in Counter::ALL {
            let value = block.messages[counter as usize];
            if value != 0 {
                table.add_row([
                    port.clone(),
                    "message".into(),
                    counter.name().into(),
                    value.to_string(),
                ]);
            }
        }
        for reason in DropReason::ALL {
            let value = block.drops[reason as usize];
            if value != 0 {
                table.add_row([
                    port.clone(),
                    "drop".into(),
                    reason.name().into(),
                    value.to_string(),
                ]);
            }
        }
    }
    table.to_string()
}

/// One family's table sizes, as the metrics' gauges count them.
#[derive(Debug, Serialize, PartialEq)]
pub struct FamilyRow {
    /// `ipv4` (IGMP) or `ipv6` (MLD).
    pub family: &'static str,
    pub groups: usize,
    pub memberships: usize,
    pub sources: usize,
    pub router_ports: usize,
}

/// IPv4's table sizes, then IPv6's (absent from a table pinned before MLD).
pub fn family_rows(tables: &crate::tables::Tables) -> Vec<FamilyRow> {
    let row = |family: igmp_common::Family, sizes: crate::metrics::TableSizes| FamilyRow {
        family: family.name(),
        groups: sizes.groups,
        memberships: sizes.memberships,
        sources: sizes.sources,
        router_ports: sizes.router_ports,
    };
    let mut rows = vec![row(
        igmp_common::Family::Ipv4,
        crate::metrics::TableSizes::read(&tables.learned),
    )];
    if let Some(ipv6) = &tables.ipv6 {
        rows.push(row(
            igmp_common::Family::Ipv6,
            crate::metrics::TableSizes::read(&ipv6.learned),
        ));
    }
    rows
}

pub fn render_families(rows: &[FamilyRow]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header([
        "family",
        "groups",
        "memberships",
        "sources",
        "router ports",
    ]);
    for row in rows {
        table.add_row([
            row.family.to_string(),
            row.groups.to_string(),
            row.memberships.to_string(),
            row.sources.to_string(),
            row.router_ports.to_string(),
        ]);
    }
    table.to_string()
}

/// Which hook each port runs (`loader::attachments`).
pub fn attachments_json(attached: &[(String, &str)]) -> serde_json::Value {
    attached
        .iter()
        .map(|(port, hook)| serde_json::json!({ "port": port, "hook": hook }))
        .collect()
}

pub fn render_attachments(attached: &[(String, &str)]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(["port", "hook"]);
    for (port, hook) in attached {
        table.add_row([port.as_str(), hook]);
    }
    table.to_string()
}

/// One port's (or, for ifindex 0, the whole switch's) use of its limits.
#[derive(Debug, Serialize)]
pub struct LimitRow {
    pub port: String,
    pub ifindex: u32,
    /// Groups held, as the XDP program counts them against the limit.
    pub groups: u64,
    /// 0: no limit.
    pub max_groups: u32,
    /// Reports per second accepted (0: no limit); absent for the switch.
    pub report_rate: Option<u32>,
    pub report_burst: Option<u32>,
}

pub fn limit_rows(
    in_use: &[(u32, u64)],
    ports: &[(u32, igmp_common::PortSettings)],
    settings: &Settings,
) -> Vec<LimitRow> {
    let groups = |ifindex: u32| {
        in_use
            .iter()
            .find(|(counted, _)| *counted == ifindex)
            .map_or(0, |(_, groups)| *groups)
    };
    let switch = LimitRow {
        port: "(all)".into(),
        ifindex: 0,
        groups: groups(0),
        max_groups: settings.max_groups,
        report_rate: None,
        report_burst: None,
    };
    let per_port = ports.iter().map(|(ifindex, port)| LimitRow {
        port: interface_name(*ifindex),
        ifindex: *ifindex,
        groups: groups(*ifindex),
        max_groups: port.max_groups,
        report_rate: Some(port.report_rate),
        report_burst: Some(port.report_burst),
    });
    let mut rows: Vec<LimitRow> = std::iter::once(switch).chain(per_port).collect();
    // Hash map order is no order for a person: the switch first, then the ports by ifindex.
    rows.sort_by_key(|row| row.ifindex);
    rows
}

pub fn render_limits(rows: &[LimitRow]) -> String {
    let limit = |value: u32| {
        if value == 0 {
            "none".to_string()
        } else {
            value.to_string()
        }
    };
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_header(["limits", "groups", "max groups", "reports/s", "burst"]);
    for row in rows {
        table.add_row([
            row.port.clone(),
            row.groups.to_string(),
            limit(row.max_groups),
            row.report_rate.map_or("-".into(), limit),
            row.report_burst
                .map_or("-".into(), |burst| burst.to_string()),
        ]);
    }
    table.to_string()
}

/// Fast-path counters (all ports), by name.
pub fn data_counters_json(counters: &DataCounters) -> serde_json::Value {
    DataCounter::ALL
        .iter()
        .map(|counter| {
            (
                counter.name().to_string(),
                counters.frames[*counter as usize].into(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub fn render_data_counters(counters: &DataCounters) -> String {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_header(["fast path", "frames"]);
    for counter in DataCounter::ALL {
        table.add_row([
            counter.name().to_string(),
            counters.frames[counter as usize].to_string(),
        ]);
    }
    table.to_string()
}

/// `igmp-snoop stats`.
pub fn print(args: &ShowArgs) -> Result<()> {
    let pin_dir = settings::pin_dir(&args.pin)?;
    let (tables, state) = tables_to_print(&pin_dir)?;
    let counters = tables.port_counters();
    let data = tables.data_counters();
    let ports: Vec<_> = tables.ports.ports.iter().filter_map(Result::ok).collect();
    let limits = limit_rows(&tables.groups_in_use(), &ports, &tables.settings());
    let attached = loader::attachments(&pin_dir);
    let families = family_rows(&tables);
    if args.json {
        let json = serde_json::json!({
            "ports": counters_json(&counters),
            "data": data_counters_json(&data),
            "tables": families,
            "limits": limits,
            "attached": attachments_json(&attached),
            "daemon": match &state {
                instance::DaemonState::Running { pid } => serde_json::json!({"running": true, "pid": pid}),
                instance::DaemonState::NotRunning => serde_json::json!({"running": false}),
            },
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", render_counters(&counters));
        println!("{}", render_data_counters(&data));
        println!("{}", render_families(&families));
        println!("{}", render_limits(&limits));
        println!("{}", render_attachments(&attached));
    }
    end_if_no_daemon(&pin_dir, &state);
    Ok(())
}
