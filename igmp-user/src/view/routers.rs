//! `igmp-snoop routers`: the router ports, their querier and timer: IGMP's,
//! then MLD's (`family`), as each family's queries made them.

use anyhow::Result;
use comfy_table::{presets::NOTHING, Table};
use igmp_common::{router_flags, Address, RouterKey, RouterPort, Settings};
use serde::Serialize;

use super::{end_if_no_daemon, ms, seconds, tables_to_print, vid_text};
use crate::{cli::ShowArgs, interfaces::interface_name, settings, timers::monotonic_ns};

/// One row of `igmp-snoop routers`.
#[derive(Debug, Serialize, PartialEq)]
pub struct RouterRow {
    /// `ipv4` (IGMP queries, PIM hellos) or `ipv6` (MLD).
    pub family: &'static str,
    pub port: String,
    pub ifindex: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vid: Option<u16>,
    pub querier: String,
    pub version: u8,
    pub robustness: u8,
    pub qqic: u8,
    pub timer: String,
    /// `permanent` (configured) and/or `pim` (PIM hellos heard).
    pub flags: Vec<&'static str>,
}

pub fn router_rows<A: Address>(
    routers: &[(RouterKey, RouterPort<A>)],
    settings: &Settings,
) -> Vec<RouterRow> {
    let now = monotonic_ns();
    routers
        .iter()
        .map(|(key, router)| RouterRow {
            family: A::FAMILY.name(),
            port: interface_name(key.ifindex),
            ifindex: key.ifindex,
            vid: (key.vlan != 0).then_some(key.vlan),
            querier: router.querier.ip().to_string(),
            version: router.version,
            robustness: router.robustness,
            qqic: router.qqic,
            timer: if router.flags & router_flags::PERMANENT != 0 {
                seconds(0)
            } else {
                seconds((router.last_query_ns + ms(settings.router_timeout_ms)).saturating_sub(now))
            },
            flags: router_flag_names(router.flags),
        })
        .collect()
}

pub fn render_routers(rows: &[RouterRow]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header([
        "port", "family", "vid", "querier", "version", "qrv", "qqic", "timer", "flags",
    ]);
    for row in rows {
        // A port made a router port by configuration may never have heard a
        // query: it has no querier to show, and a permanent one no timer.
        let heard = row.version != 0;
        let or_dash = |heard: bool, text: String| if heard { text } else { "-".into() };
        table.add_row([
            row.port.clone(),
            row.family.into(),
            vid_text(row.vid, None),
            or_dash(heard, row.querier.clone()),
            or_dash(heard, format!("v{}", row.version)),
            or_dash(heard, row.robustness.to_string()),
            or_dash(heard, row.qqic.to_string()),
            or_dash(!row.flags.contains(&"permanent"), row.timer.clone()),
            row.flags.join(","),
        ]);
    }
    table.to_string()
}

fn router_flag_names(flags: u8) -> Vec<&'static str> {
    let mut names = Vec::new();
    if flags & router_flags::PERMANENT != 0 {
        names.push("permanent");
    }
    if flags & router_flags::PIM != 0 {
        names.push("pim");
    }
    names
}

/// `igmp-snoop routers`.
pub fn print(args: &ShowArgs) -> Result<()> {
    let pin_dir = settings::pin_dir(&args.pin)?;
    let (tables, state) = tables_to_print(&pin_dir)?;
    let settings = tables.settings();
    let mut rows = router_rows(&tables.router_ports(), &settings);
    rows.extend(router_rows(&tables.router_ports6(), &settings));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", render_routers(&rows));
    }
    end_if_no_daemon(&pin_dir, &state);
    Ok(())
}
