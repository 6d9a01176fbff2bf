//! `igmp-snoop show`: one row per group and per source of a group, as
//! `bridge mdb show` prints them, and `--bridge`'s JSON in the shape of
//! `bridge -j mdb show`. IPv6 (MLD) groups follow the IPv4 ones, from the
//! same `mdb_rows`; a table pinned before MLD shows IPv4 alone.

use anyhow::Result;
use comfy_table::{presets::NOTHING, Table};
use igmp_common::{
    membership_flags, source_flags, Address, FilterMode, Membership, MembershipKey, Settings,
    SourceEntry, SourceKey,
};
use serde::Serialize;

use super::{
    end_if_no_daemon, ms,
    routers::{router_rows, RouterRow},
    seconds, tables_to_print, vid_text, Masters,
};
use crate::{cli::MdbShowArgs, interfaces::interface_name, links, settings, timers::monotonic_ns};

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
        filter_mode: FilterMode::from(entry.filter_mode).name(),
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
    row.filter_mode = FilterMode::from(source.mode).name();
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

/// The JSON of `bridge -j mdb show`: one object with the rows under `mdb`
/// and, under `router`, each bridge's router ports (`port`, `timer`, `type`).
/// Ports in no bridge are their own `dev`, as in the rows. A port that is a
/// router port of both families is listed once, as the bridge does, with
/// the later of its timers and `permanent` if either is.
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
        let ports = by_bridge.entry(dev).or_default();
        let listed = ports
            .iter_mut()
            .find(|listed| listed["port"] == router.port.as_str());
        match listed {
            Some(listed) => {
                let seconds = |value: &serde_json::Value| {
                    value
                        .as_str()
                        .and_then(|text| text.trim().parse::<f64>().ok())
                };
                if seconds(&listed["timer"]) < router.timer.trim().parse::<f64>().ok() {
                    listed["timer"] = router.timer.clone().into();
                }
                if kind == "permanent" {
                    listed["type"] = kind.into();
                }
            }
            None => ports.push(
                serde_json::json!({"port": router.port, "timer": router.timer, "type": kind}),
            ),
        }
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

/// `igmp-snoop show`.
pub fn print(args: &MdbShowArgs) -> Result<()> {
    let pin_dir = settings::pin_dir(&args.show.pin)?;
    let (tables, state) = tables_to_print(&pin_dir)?;
    let settings = tables.settings();
    let masters = links::masters()?;
    let mut rows = mdb_rows(
        &tables.memberships(),
        &tables.source_entries(),
        &settings,
        &masters,
    );
    rows.extend(mdb_rows(
        &tables.memberships6(),
        &tables.source_entries6(),
        &settings,
        &masters,
    ));
    if args.bridge {
        let mut routers = router_rows(&tables.router_ports(), &settings);
        routers.extend(router_rows(&tables.router_ports6(), &settings));
        let shaped = bridge_shape(&rows, &routers, &masters);
        println!("{}", serde_json::to_string_pretty(&shaped)?);
    } else if args.show.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_mdb(&rows));
        println!();
    }
    end_if_no_daemon(&pin_dir, &state);
    Ok(())
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

/// IPv6 rows against what `bridge -j mdb show` printed for the same state
/// (recorded on Linux 6.18 with iproute2 6.1: a bridge with `mcast_snooping
/// 1` and `mcast_mld_version 2`, hosts joining with `IPV6_JOIN_GROUP` and
/// `MCAST_JOIN_SOURCE_GROUP`, and their solicited-node groups).
#[cfg(test)]
mod bridge_rows_of_ipv6 {
    use igmp_common::filter_mode;
    use serde_json::Value;

    use super::*;
    use crate::interfaces::interface_name;

    const BRIDGE_ROWS: [&str; 4] = [
        r#"{"index":2,"dev":"br0","port":"p2","grp":"ff0e::42","state":"temp","flags":[]}"#,
        r#"{"index":2,"dev":"br0","port":"p1","grp":"ff02::1:ff5a:e01e","state":"temp","flags":[],"timer":" 254.21"}"#,
        r#"{"index":2,"dev":"br0","port":"p2","grp":"ff3e::99","src":"2001:db8::5","state":"temp","flags":[],"timer":"   0.00"}"#,
        r#"{"index":2,"dev":"br0","port":"p2","grp":"ff3e::99","state":"temp","flags":[],"timer":"   0.00"}"#,
    ];

    /// Keys whose values depend on the machine, not on the table: the
    /// bridge's ifindex, the port's name (here the test's own ifindex 1),
    /// and the timer (`-s`, padded, and counting from another start).
    const MACHINE_KEYS: [&str; 3] = ["index", "port", "timer"];

    fn membership(group: &str, mode: u8) -> (MembershipKey<[u8; 16]>, Membership<[u8; 16]>) {
        let group: std::net::Ipv6Addr = group.parse().unwrap();
        let key = MembershipKey {
            ifindex: 1,
            vlan: 0,
            inner_vlan: 0,
            group: group.octets(),
        };
        let now = monotonic_ns();
        let entry = Membership {
            last_report_ns: now,
            created_ns: now,
            version: 2,
            filter_mode: mode,
            last_reporter: "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            ..Membership::default()
        };
        (key, entry)
    }

    #[test]
    fn ipv6_rows_give_the_bridges_keys_and_values() {
        let groups = [
            membership("ff0e::42", filter_mode::EXCLUDE),
            membership("ff02::1:ff5a:e01e", filter_mode::EXCLUDE),
            membership("ff3e::99", filter_mode::INCLUDE),
        ];
        let (ssm, _) = groups[2];
        let source_key = SourceKey {
            ifindex: ssm.ifindex,
            vlan: ssm.vlan,
            inner_vlan: ssm.inner_vlan,
            group: ssm.group,
            source: "2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        };
        let now = monotonic_ns();
        let source = SourceEntry {
            last_report_ns: now,
            mode: filter_mode::INCLUDE,
            named: SourceEntry::stamp(now),
            ..SourceEntry::default()
        };
        let masters = Masters::from([(1, "br0".to_string())]);
        let rows = mdb_rows(
            &groups,
            &[(source_key, source)],
            &Settings::default(),
            &masters,
        );
        let ours: Vec<Value> = rows
            .iter()
            .map(|row| serde_json::to_value(row).unwrap())
            .collect();
        for line in BRIDGE_ROWS {
            let bridge: Value = serde_json::from_str(line).unwrap();
            let bridge = bridge.as_object().unwrap();
            let same_entry =
                |row: &&Value| row["grp"] == bridge["grp"] && row.get("src") == bridge.get("src");
            let row = ours
                .iter()
                .find(same_entry)
                .unwrap_or_else(|| panic!("no row for {line}: {ours:?}"));
            for (key, value) in bridge
                .iter()
                .filter(|(key, _)| !MACHINE_KEYS.contains(&key.as_str()))
            {
                assert_eq!(&row[key], value, "{key} of {line}, ours {row}");
            }
            assert_eq!(row["port"], interface_name(1), "{row}");
            assert!(row["timer"].is_string(), "{row}");
        }
        // Nothing but these: one row per group and one for the source.
        assert_eq!(ours.len(), BRIDGE_ROWS.len());
    }
}
