//! The commands that print the table: `show` (`mdb.rs`), `routers` and
//! `stats`, each a module with its rows (`Serialize`, keys pinned by the
//! tests below), its renderer for people (aligned columns, like `bridge mdb
//! show`) and the command itself; `main.rs` only dispatches. They read the
//! pinned maps through `Tables` and never talk to the daemon.

use anyhow::Result;

use crate::{instance, tables::Tables};

pub mod mdb;
pub mod routers;
pub mod stats;

/// Exit status of `show`, `routers` and `stats` when no daemon runs on the
/// pins: the rows are printed, but they are what the last daemon left and
/// their timers stand still (as `systemctl status` of a stopped unit).
const EXIT_NO_DAEMON: i32 = 3;

/// Opens the tables of `pin_dir` for a command that prints them, and whether
/// a daemon keeps them.
fn tables_to_print(pin_dir: &std::path::Path) -> Result<(Tables, instance::DaemonState)> {
    let state = instance::daemon_state(pin_dir)?;
    Ok((Tables::open(pin_dir)?, state))
}

/// Says, once the rows are out, that no daemon keeps them, and ends with
/// [`EXIT_NO_DAEMON`].
fn end_if_no_daemon(pin_dir: &std::path::Path, state: &instance::DaemonState) {
    if *state == instance::DaemonState::NotRunning {
        eprintln!(
            "igmp-snoop: no daemon runs on {}: these rows are what the last one left, and their timers stand still",
            pin_dir.display()
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(EXIT_NO_DAEMON);
    }
}

/// Each port's bridge by the port's ifindex ([`crate::links::masters`]).
pub type Masters = std::collections::BTreeMap<u32, String>;

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
    use igmp_common::{Counter, DropReason};
    use serde_json::json;

    use super::{mdb::*, routers::*, stats::*};

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
            family: "ipv4",
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
                "family": "ipv4", "port": "p3", "ifindex": 5, "querier": "10.0.0.3", "version": 3,
                "robustness": 2, "qqic": 125, "timer": "254.90", "flags": ["pim"],
            })
        );
    }

    #[test]
    fn a_family_row_keeps_its_keys() {
        let row = FamilyRow {
            family: "ipv6",
            groups: 2,
            memberships: 3,
            sources: 1,
            router_ports: 1,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({
                "family": "ipv6", "groups": 2, "memberships": 3, "sources": 1,
                "router_ports": 1,
            })
        );
    }

    #[test]
    fn a_port_routing_both_families_is_one_bridge_router_entry() {
        let router = |family, timer: &str, flags| RouterRow {
            family,
            port: "p3".into(),
            ifindex: 5,
            vid: None,
            querier: String::new(),
            version: 2,
            robustness: 2,
            qqic: 125,
            timer: timer.into(),
            flags,
        };
        let routers = [
            router("ipv4", "100.00", vec![]),
            router("ipv6", "200.00", vec![]),
        ];
        let masters = super::Masters::from([(5, "br0".to_string())]);
        let shaped = bridge_shape(&[], &routers, &masters);
        assert_eq!(
            shaped[0]["router"],
            json!({"br0": [{"port": "p3", "timer": "200.00", "type": "temp"}]})
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
