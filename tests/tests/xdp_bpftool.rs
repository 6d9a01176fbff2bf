//! The pinned maps carry BTF: bpftool prints their fields by name.
//!
//! TestRun tier: the maps are a `Harness`'s, filled by frames it runs;
//! bpftool reads them from their pins. No namespaces, no daemon.

use std::{net::Ipv4Addr, process::Command};

use igmp_tests::{
    frames::{
        frame, igmp_message, v2_report, v3_report_frame, Ipv4, Record, ALL_HOSTS, MODE_IS_INCLUDE,
        QUERY, V1_REPORT,
    },
    harness::Harness,
};

fn dump(harness: &Harness, map: &str) -> serde_json::Value {
    let path = harness.pin_dir().join(map);
    let output = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&path)
        .output()
        .expect("bpftool is installed (cargo xtask setup)");
    assert!(
        output.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("bpftool prints JSON")
}

/// The BTF-formatted view of the first entry (`bpftool -j` puts it under "formatted").
fn formatted(entries: &serde_json::Value) -> &serde_json::Value {
    let view = &entries[0]["formatted"];
    assert!(view.is_object(), "no BTF-formatted view: {entries}");
    view
}

#[test]
fn bpftool_dump_of_membership_shows_field_names() {
    let harness = Harness::new();
    harness.run(&v2_report(
        Ipv4Addr::new(10, 0, 0, 7),
        Ipv4Addr::new(239, 1, 2, 3),
    ));
    let entries = dump(&harness, "MEMBERSHIP");
    let entry = formatted(&entries);
    assert_eq!(
        entry["key"]["group"],
        serde_json::json!([239, 1, 2, 3]),
        "{entries}"
    );
    assert_eq!(entry["key"]["ifindex"], 1);
    assert_eq!(entry["key"]["vlan"], 0);
    assert_eq!(entry["value"]["version"], 2);
    assert_eq!(
        entry["value"]["last_reporter"],
        serde_json::json!([10, 0, 0, 7])
    );
    assert!(entry["value"]["last_report_ns"].as_u64().unwrap() > 0);
}

#[test]
fn bpftool_dump_of_router_ports_and_counters_shows_field_names() {
    let harness = Harness::new();
    let query = Ipv4::igmp(
        Ipv4Addr::new(10, 0, 0, 1),
        ALL_HOSTS,
        igmp_message(QUERY, 100, Ipv4Addr::UNSPECIFIED),
    );
    harness.run(&frame(&[], &query));
    let routers = dump(&harness, "ROUTER_PORTS");
    let router = formatted(&routers);
    assert_eq!(
        router["value"]["querier"],
        serde_json::json!([10, 0, 0, 1]),
        "{routers}"
    );
    assert_eq!(router["value"]["version"], 2);
    let counters = dump(&harness, "COUNTERS");
    let first_cpu = &formatted(&counters)["values"][0]["value"];
    assert!(
        first_cpu["messages"].is_array() && first_cpu["drops"].is_array(),
        "{counters}"
    );
}

#[test]
fn bpftool_dump_of_sources_and_v1_hosts_shows_field_names() {
    let harness = Harness::new();
    let (host, group) = (Ipv4Addr::new(10, 0, 0, 7), Ipv4Addr::new(239, 1, 2, 3));
    let source = Ipv4Addr::new(192, 0, 2, 1);
    harness.run(&v3_report_frame(
        host,
        &[Record::new(MODE_IS_INCLUDE, group, &[source])],
    ));
    let sources = dump(&harness, "SOURCES");
    let entry = formatted(&sources);
    assert_eq!(entry["key"]["source"], serde_json::json!([192, 0, 2, 1]));
    assert_eq!(entry["value"]["mode"], 1, "{sources}");
    assert!(entry["value"]["named"].as_u64().unwrap() > 0, "{sources}");
    harness.run(&frame(
        &[],
        &Ipv4::igmp(host, group, igmp_message(V1_REPORT, 0, group)),
    ));
    let v1_hosts = dump(&harness, "V1_HOSTS");
    let entry = formatted(&v1_hosts);
    assert_eq!(entry["key"]["group"], serde_json::json!([239, 1, 2, 3]));
    assert!(entry["value"].as_u64().unwrap() > 0, "{v1_hosts}");
}
