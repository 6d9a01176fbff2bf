//! The Linux bridge's own snooping is the reference peer: the same kernel
//! clients joining and leaving on a bridge with `mcast_snooping 1` and on one
//! watched by igmp-snoop must give the same (port, group) table.
//!
//! Lab tier (`Lab`): kernel hosts in network namespaces, two bridges, the daemon.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use igmp_lab::{run_output, wait_for, BridgeSnooping, Lab, Member};
use igmp_tests::{daemon_binary, harness::unique_pin_dir};
use igmp_user::tables::Tables;

const G1: Ipv4Addr = Ipv4Addr::new(239, 10, 0, 1);
const G2: Ipv4Addr = Ipv4Addr::new(239, 10, 0, 2);
const G3: Ipv4Addr = Ipv4Addr::new(239, 10, 0, 3);
const SETTLE: Duration = Duration::from_secs(15);

type Table = BTreeSet<(String, Ipv4Addr)>;

/// Runs the scenario on `lab`, reading the table with `read` after the joins
/// (once `rows` says it holds the four joined, or after 15 s) and after the
/// leaves (once it is down to the two left, or after 15 s; leaves lower the
/// timers to the last member query time, 2 s, more under an emulated guest's
/// slow clock).
fn scenario(lab: &Lab, rows: &dyn Fn() -> usize, read: &dyn Fn() -> Table) -> (Table, Table) {
    lab.force_igmp_version(0, 2).unwrap();
    lab.force_igmp_version(2, 1).unwrap();
    let h1: Member = lab.join(0, G1).unwrap();
    let _h2_g1 = lab.join(1, G1).unwrap();
    let h2_g2 = lab.join(1, G2).unwrap();
    let _h3 = lab.join(2, G3).unwrap();
    wait_for(SETTLE, || rows() >= 4);
    let joined = read();
    drop(h1);
    drop(h2_g2);
    wait_for(SETTLE, || rows() <= 2);
    (joined, read())
}

fn bridge_table(lab: &Lab) -> Table {
    table_of(&run_output(&["bridge", "-n", &lab.switch, "-j", "mdb", "show"]).unwrap())
}

/// The (port, group) rows of JSON in the shape of `bridge -j mdb show`.
fn table_of(output: &str) -> Table {
    let json: serde_json::Value = serde_json::from_str(output).unwrap();
    let mut table = Table::new();
    for bridge in json.as_array().into_iter().flatten() {
        for entry in bridge["mdb"].as_array().into_iter().flatten() {
            if let Some(Ok(group)) = entry["grp"].as_str().map(str::parse::<Ipv4Addr>) {
                if entry["src"].is_null() {
                    table.insert((entry["port"].as_str().unwrap().to_string(), group));
                }
            }
        }
    }
    table
}

#[test]
fn joins_and_leaves_give_the_same_table_as_the_linux_bridge() {
    let reference = Lab::new(4, BridgeSnooping::On).unwrap();
    let (bridge_joined, bridge_left) =
        scenario(&reference, &|| bridge_table(&reference).len(), &|| {
            bridge_table(&reference)
        });
    drop(reference);

    let mut lab = Lab::new(4, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("diff");
    lab.start_daemon(&daemon_binary(), &pin_dir, &[]).unwrap();
    let port_names: Vec<(u32, String)> = lab
        .hosts
        .iter()
        .map(|host| (lab.port_ifindex(&host.port).unwrap(), host.port.clone()))
        .collect();
    let ours = || -> Table {
        Tables::open(&pin_dir)
            .unwrap()
            .memberships()
            .iter()
            .map(|(key, _)| {
                let port = port_names
                    .iter()
                    .find(|(index, _)| *index == key.ifindex)
                    .unwrap();
                (port.1.clone(), Ipv4Addr::from(key.group))
            })
            .collect()
    };
    // What a script written for `bridge -j mdb show` reads from `show --json --bridge`.
    let shown = || -> Table {
        let output = lab
            .command_in_switch(&daemon_binary())
            .args(["show", "--json", "--bridge", "--pin-dir"])
            .arg(&pin_dir)
            .output()
            .unwrap();
        table_of(&String::from_utf8_lossy(&output.stdout))
    };
    // The rows are counted from the maps alone; each reading also holds
    // `show` to them, which needs a table that stopped changing.
    let (snoop_joined, snoop_left) = scenario(&lab, &|| ours().len(), &|| {
        let table = ours();
        assert_eq!(
            shown(),
            table,
            "show --json --bridge, read as the bridge's JSON"
        );
        table
    });
    lab.stop_daemon(libc::SIGTERM).unwrap();
    let _ = igmp_user::loader::remove_pins(&pin_dir);

    assert_eq!(
        bridge_joined.len(),
        4,
        "the reference learned {bridge_joined:?}"
    );
    assert_eq!(snoop_joined, bridge_joined, "after the joins");
    assert_eq!(snoop_left, bridge_left, "after the leaves");
    assert_eq!(bridge_left.len(), 2, "the reference kept {bridge_left:?}");
}
