//! A VLAN-filtering bridge (`vlan_filtering 1`, the bridge's own per-VLAN
//! snooping on, as the README's recipe for it says): untagged joins on
//! access ports are learned in the port's PVID, the bridge VLAN they belong
//! to, also after `bridge vlan` moves a port (whose entries in the VLAN it
//! left go, as the bridge's do), and `show --json --bridge` gives the
//! bridge's own table, vid for vid.
//! The host kernel has no bridge VLAN filtering: the guest kernels run these
//! (`cargo xtask test --kernel`).
//!
//! Lab tier (`Lab`): kernel hosts in network namespaces, a bridge, the daemon.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use igmp_lab::{ip, run, run_output, wait_for, BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 20, 0, 1);
const OTHER: Ipv4Addr = Ipv4Addr::new(239, 20, 0, 2);

/// (port, vid, group) rows of JSON in the shape of `bridge -j mdb show`.
type Table = BTreeSet<(String, u64, Ipv4Addr)>;

fn table_of(output: &str) -> Table {
    let json: serde_json::Value = serde_json::from_str(output).unwrap_or_default();
    let mut table = Table::new();
    for bridge in json.as_array().into_iter().flatten() {
        for entry in bridge["mdb"].as_array().into_iter().flatten() {
            let group = entry["grp"].as_str().and_then(|grp| grp.parse().ok());
            if let (Some(group), true) = (group, entry["src"].is_null()) {
                let port = entry["port"].as_str().unwrap_or_default().to_string();
                table.insert((port, entry["vid"].as_u64().unwrap_or(0), group));
            }
        }
    }
    table
}

/// Makes `br0` filter VLANs, snooping per VLAN, with host `index`'s port an
/// access port of `vids[index]` (PVID, egress untagged).
fn vlan_aware(lab: &Lab, vids: &[u16]) {
    ip(
        &lab.switch,
        "link set br0 type bridge vlan_filtering 1 mcast_snooping 1 mcast_vlan_snooping 1",
    )
    .unwrap();
    for (host, vid) in lab.hosts.iter().zip(vids) {
        let port = host.port.as_str();
        run(&[
            "bridge",
            "-n",
            &lab.switch,
            "vlan",
            "del",
            "dev",
            port,
            "vid",
            "1",
        ])
        .unwrap();
        let vid = vid.to_string();
        run(&[
            "bridge",
            "-n",
            &lab.switch,
            "vlan",
            "add",
            "dev",
            port,
            "vid",
            &vid,
            "pvid",
            "untagged",
        ])
        .unwrap();
    }
}

#[test]
#[ignore = "needs bridge VLAN filtering: the guest kernels run it"]
fn untagged_joins_on_access_ports_are_learned_in_the_ports_pvid_as_the_bridge_does() {
    let mut lab = Lab::new(3, BridgeSnooping::On).unwrap();
    vlan_aware(&lab, &[10, 20, 10]);
    let pin_dir = unique_pin_dir("vlanbr");
    lab.start_daemon(&daemon_binary(), &pin_dir, &[]).unwrap();
    let log = lab.daemon_log();
    assert!(
        log.contains("untagged frames learned in VLAN 10, its PVID in br0"),
        "{log}"
    );
    let _on_10 = lab.join(0, GROUP).unwrap();
    let _on_20 = lab.join(1, GROUP).unwrap();
    let _other_on_10 = lab.join(2, OTHER).unwrap();
    let (p1, p2, p3) = (
        lab.hosts[0].port.clone(),
        lab.hosts[1].port.clone(),
        lab.hosts[2].port.clone(),
    );
    let expected: Table = [
        (p1.clone(), 10, GROUP),
        (p2.clone(), 20, GROUP),
        (p3.clone(), 10, OTHER),
    ]
    .into_iter()
    .collect();
    let bridge =
        || table_of(&run_output(&["bridge", "-n", &lab.switch, "-j", "mdb", "show"]).unwrap());
    let shown = || {
        let output = lab
            .command_in_switch(&daemon_binary())
            .args(["show", "--json", "--bridge", "--pin-dir"])
            .arg(&pin_dir)
            .output()
            .unwrap();
        table_of(&String::from_utf8_lossy(&output.stdout))
    };
    let agreed = wait_for(Duration::from_secs(10), || {
        shown() == expected && bridge() == expected
    });
    let (ours, theirs) = (shown(), bridge());
    assert!(
        agreed,
        "igmp-snoop {ours:?}, the bridge {theirs:?}, expected {expected:?}\n{}",
        lab.daemon_log()
    );

    // The operator moves host 3's port from VLAN 10 to 30 while the daemon
    // runs: its entry in VLAN 10 goes, as the bridge's does, and its next
    // join is learned in VLAN 30.
    let switch = lab.switch.clone();
    let bridge_vlan = |args: &[&str]| {
        let mut command = vec!["bridge", "-n", switch.as_str(), "vlan"];
        command.extend(args);
        run(&command).unwrap();
    };
    bridge_vlan(&["add", "dev", &p3, "vid", "30", "pvid", "untagged"]);
    bridge_vlan(&["del", "dev", &p3, "vid", "10"]);
    let moved = wait_for(Duration::from_secs(5), || {
        lab.daemon_log()
            .contains("untagged frames learned in the port's new PVID")
    });
    let _on_30 = lab.join(2, GROUP).unwrap();
    let expected: Table = [(p1, 10, GROUP), (p2, 20, GROUP), (p3, 30, GROUP)]
        .into_iter()
        .collect();
    let agreed = wait_for(Duration::from_secs(10), || {
        shown() == expected && bridge() == expected
    });
    let (ours, theirs) = (shown(), bridge());
    let log = lab.daemon_log();
    lab.stop_daemon(libc::SIGTERM).unwrap();
    let _ = igmp_user::loader::remove_pins(&pin_dir);
    assert!(moved, "the new PVID was not followed:\n{log}");
    assert!(
        agreed,
        "after the move: igmp-snoop {ours:?}, the bridge {theirs:?}, expected {expected:?}"
    );
}
