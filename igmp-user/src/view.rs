//! Rendering the table for people (aligned columns, like `bridge mdb show`)
//! and for programs (JSON with the keys of `bridge -j mdb show`).

use comfy_table::{presets::NOTHING, Table};
use igmp_common::{
    filter_mode, membership_flags, router_flags, source_flags, Address, Counter, DataCounter,
    DataCounters, DropReason, Membership, MembershipKey, RouterKey, RouterPort, Settings,
    SourceEntry, SourceKey,
};
use serde::Serialize;

use crate::{interfaces::interface_name, timers::monotonic_ns};

/// One row of `igmp-snoop show`: a group, or one source of a group.
#[derive(Debug, Serialize, PartialEq)]
pub struct MdbRow {
    /// The bridge the port belongs to, or the port itself when it has no master.
    pub dev: String,
    pub port: String,
    pub ifindex: u32,
    pub grp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_vid: Option<u16>,
    /// `temp` (learned) or `permanent` (static), as the bridge says.
    pub state: &'static str,
    /// Seconds until the entry expires, two decimals, as `bridge -j mdb show` prints it.
    pub timer: String,
    pub filter_mode: &'static str,
    pub version: u8,
    pub flags: Vec<&'static str>,
    pub last_reporter: String,
}

/// One row of `igmp-snoop routers`.
#[derive(Debug, Serialize, PartialEq)]
pub struct RouterRow {
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

/// Each port's bridge by the port's ifindex ([`crate::links::masters`]).
pub type Masters = std::collections::BTreeMap<u32, String>;

pub fn mdb_rows<A: Address>(
    groups: &[(MembershipKey<A>, Membership<A>)],
    sources: &[(SourceKey<A>, SourceEntry)],
    settings: &Settings,
    masters: &Masters,
) -> Vec<MdbRow> {
    let now = monotonic_ns();
    let mut rows = Vec::new();
    for (key, entry) in groups {
        rows.push(group_row(key, entry, settings, now, masters));
        // A source an EXCLUDE record deleted since it was last named is in
        // neither of the group's lists (`SourceEntry::listed`): not shown.
        let listed = |source: &SourceEntry| source.listed(entry.filter_mode, entry.last_report_ns);
        for (source_key, source) in sources
            .iter()
            .filter(|(s, source)| s.membership() == *key && listed(source))
        {
            rows.push(source_row(
                key, entry, source_key, source, settings, now, masters,
            ));
        }
    }
    rows
}

fn group_row<A: Address>(
    key: &MembershipKey<A>,
    entry: &Membership<A>,
    settings: &Settings,
    now: u64,
    masters: &Masters,
) -> MdbRow {
    let port = interface_name(key.ifindex);
    let mut deadline = entry.last_report_ns + ms(settings.group_membership_interval_ms);
    if entry.flags & membership_flags::LEAVE_PENDING != 0 {
        deadline = deadline.min(entry.leave_ns + ms(settings.last_member_query_time_ms));
    }
    let permanent = entry.flags & membership_flags::STATIC != 0;
    MdbRow {
        dev: masters
            .get(&key.ifindex)
            .cloned()
            .unwrap_or_else(|| port.clone()),
        port,
        ifindex: key.ifindex,
        grp: key.group.ip().to_string(),
        src: None,
        vid: (key.vlan != 0).then_some(key.vlan),
        inner_vid: (key.inner_vlan != 0).then_some(key.inner_vlan),
        state: if permanent { "permanent" } else { "temp" },
        timer: if permanent {
            seconds(0)
        } else {
            seconds(deadline.saturating_sub(now))
        },
        filter_mode: mode_name(entry.filter_mode),
        version: entry.version,
        flags: group_flags(entry.flags),
        last_reporter: entry.last_reporter.ip().to_string(),
    }
}

fn source_row<A: Address>(
    key: &MembershipKey<A>,
    entry: &Membership<A>,
    source_key: &SourceKey<A>,
    source: &SourceEntry,
    settings: &Settings,
    now: u64,
    masters: &Masters,
) -> MdbRow {
    let mut row = group_row(key, entry, settings, now, masters);
    let mut deadline = source.last_report_ns + ms(settings.group_membership_interval_ms);
    let mut flags = Vec::new();
    if source.flags & source_flags::LEAVE_PENDING != 0 {
        deadline = deadline.min(source.leave_ns + ms(settings.last_member_query_time_ms));
        flags.push("leaving");
    }
    row.src = Some(source_key.source.ip().to_string());
    row.timer = seconds(deadline.saturating_sub(now));
    row.filter_mode = mode_name(source.mode);
    row.flags = flags;
    row
}

fn group_flags(flags: u16) -> Vec<&'static str> {
    let mut names = Vec::new();
    if flags & membership_flags::LEAVE_PENDING != 0 {
        names.push("leaving");
    }
    if flags & membership_flags::SOURCES_TRUNCATED != 0 {
        names.push("sources_truncated");
    }
    names
}

fn mode_name(mode: u8) -> &'static str {
    match mode {
        filter_mode::INCLUDE => "include",
        filter_mode::EXCLUDE => "exclude",
        _ => "unknown",
    }
}

pub fn router_rows<A: Address>(
    routers: &[(RouterKey, RouterPort<A>)],
    settings: &Settings,
) -> Vec<RouterRow> {
    let now = monotonic_ns();
    routers
        .iter()
        .map(|(key, router)| RouterRow {
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

/// The JSON of `bridge -j mdb show`: one object with the rows under `mdb`
/// and, under `router`, each bridge's router ports (`port`, `timer`, `type`).
/// Ports in no bridge are their own `dev`, as in the rows.
pub fn bridge_shape(
    rows: &[MdbRow],
    routers: &[RouterRow],
    masters: &Masters,
) -> serde_json::Value {
    let mut by_bridge: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        Default::default();
    for router in routers {
        let dev = masters
            .get(&router.ifindex)
            .cloned()
            .unwrap_or_else(|| router.port.clone());
        let kind = if router.flags.contains(&"permanent") {
            "permanent"
        } else {
            "temp"
        };
        by_bridge
            .entry(dev)
            .or_default()
            .push(serde_json::json!({"port": router.port, "timer": router.timer, "type": kind}));
    }
    serde_json::json!([{"mdb": rows, "router": by_bridge}])
}

/// The table as `bridge mdb show` lays it out, in aligned columns.
pub fn render_mdb(rows: &[MdbRow]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header([
        "dev", "port", "grp", "src", "vid", "state", "mode", "ver", "timer", "flags",
    ]);
    for row in rows {
        table.add_row([
            row.dev.clone(),
            row.port.clone(),
            row.grp.clone(),
            row.src.clone().unwrap_or_else(|| "*".into()),
            vid_text(row.vid, row.inner_vid),
            row.state.into(),
            row.filter_mode.into(),
            format!("v{}", row.version),
            row.timer.clone(),
            row.flags.join(","),
        ]);
    }
    table.to_string()
}

pub fn render_routers(rows: &[RouterRow]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header([
        "port", "vid", "querier", "version", "qrv", "qqic", "timer", "flags",
    ]);
    for row in rows {
        // A port made a router port by configuration may never have heard a
        // query: it has no querier to show, and a permanent one no timer.
        let heard = row.version != 0;
        let or_dash = |heard: bool, text: String| if heard { text } else { "-".into() };
        table.add_row([
            row.port.clone(),
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

fn vid_text(vid: Option<u16>, inner: Option<u16>) -> String {
    match (vid, inner) {
        (Some(vid), Some(inner)) => format!("{vid}.{inner}"),
        (Some(vid), None) => vid.to_string(),
        _ => "-".into(),
    }
}

fn ms(millis: u32) -> u64 {
    u64::from(millis) * 1_000_000
}

fn seconds(nanos: u64) -> String {
    format!("{:.2}", nanos as f64 / 1e9)
}

/// The JSON of `show`, `routers` and `stats` is read by scripts: its keys
/// and their types are an interface, changed only on purpose.
#[cfg(test)]
mod json_stability {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_show_row_keeps_its_keys() {
        let row = MdbRow {
            dev: "br0".into(),
            port: "p1".into(),
            ifindex: 3,
            grp: "232.1.1.1".into(),
            src: Some("10.0.0.4".into()),
            vid: Some(10),
            inner_vid: Some(20),
            state: "temp",
            timer: "259.09".into(),
            filter_mode: "include",
            version: 3,
            flags: vec!["leaving"],
            last_reporter: "10.0.0.3".into(),
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({
                "dev": "br0", "port": "p1", "ifindex": 3, "grp": "232.1.1.1", "src": "10.0.0.4",
                "vid": 10, "inner_vid": 20, "state": "temp", "timer": "259.09",
                "filter_mode": "include", "version": 3, "flags": ["leaving"],
                "last_reporter": "10.0.0.3",
            })
        );
    }

    #[test]
    fn a_show_row_without_source_or_vlan_leaves_those_keys_out_as_the_bridge_does() {
        let row = MdbRow {
            dev: "p1".into(),
            port: "p1".into(),
            ifindex: 3,
            grp: "239.1.1.1".into(),
            src: None,
            vid: None,
            inner_vid: None,
            state: "temp",
            timer: "1.00".into(),
            filter_mode: "exclude",
            version: 2,
            flags: vec![],
            last_reporter: "10.0.0.1".into(),
        };
        let value = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "dev",
                "filter_mode",
                "flags",
                "grp",
                "ifindex",
                "last_reporter",
                "port",
                "state",
                "timer",
                "version"
            ]
        );
    }

    #[test]
    fn a_router_row_keeps_its_keys() {
        let row = RouterRow {
            port: "p3".into(),
            ifindex: 5,
            vid: None,
            querier: "10.0.0.3".into(),
            version: 3,
            robustness: 2,
            qqic: 125,
            timer: "254.90".into(),
            flags: vec!["pim"],
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({
                "port": "p3", "ifindex": 5, "querier": "10.0.0.3", "version": 3,
                "robustness": 2, "qqic": 125, "timer": "254.90", "flags": ["pim"],
            })
        );
    }

    #[test]
    fn a_limit_row_keeps_its_keys() {
        let row = LimitRow {
            port: "(all)".into(),
            ifindex: 0,
            groups: 2,
            max_groups: 61440,
            report_rate: None,
            report_burst: None,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({
                "port": "(all)", "ifindex": 0, "groups": 2, "max_groups": 61440,
                "report_rate": null, "report_burst": null,
            })
        );
    }

    #[test]
    fn counters_are_named_by_counter_and_reason() {
        let mut block = igmp_common::PortCounters::default();
        block.messages[Counter::V2Report as usize] = 7;
        block.drops[DropReason::Truncated as usize] = 1;
        let value = counters_json(&[(1, block)]);
        let port = &value[0];
        assert_eq!(port["ifindex"], 1);
        assert_eq!(port["messages"]["v2_report"], 7);
        assert_eq!(port["drops"]["truncated"], 1);
        assert_eq!(
            port["messages"].as_object().unwrap().len(),
            Counter::ALL.len()
        );
        assert_eq!(
            port["drops"].as_object().unwrap().len(),
            DropReason::ALL.len()
        );
    }
}

#[cfg(test)]
mod listed_sources {
    use igmp_common::filter_mode;

    use super::*;

    #[test]
    fn show_leaves_out_a_source_an_exclude_record_deleted() {
        let key = MembershipKey {
            ifindex: 1,
            vlan: 0,
            inner_vlan: 0,
            group: [239, 1, 1, 1],
        };
        // The group's last IS_EX came at t = 2 s; S1 was named at 1 s, S2 at 2 s.
        let group = Membership {
            last_report_ns: 2_000_000_000,
            filter_mode: filter_mode::EXCLUDE,
            ..Membership::default()
        };
        let source = |last: u8, at_ns: u64| {
            (
                SourceKey {
                    ifindex: 1,
                    vlan: 0,
                    inner_vlan: 0,
                    group: key.group,
                    source: [192, 0, 2, last],
                },
                SourceEntry {
                    last_report_ns: at_ns,
                    mode: filter_mode::EXCLUDE,
                    named: SourceEntry::stamp(at_ns),
                    ..SourceEntry::default()
                },
            )
        };
        let sources = [source(1, 1_000_000_000), source(2, 2_000_000_000)];
        let rows = mdb_rows(
            &[(key, group)],
            &sources,
            &Settings::default(),
            &Masters::new(),
        );
        let shown: Vec<_> = rows.iter().filter_map(|row| row.src.clone()).collect();
        assert_eq!(shown, ["192.0.2.2"]);
    }
}
