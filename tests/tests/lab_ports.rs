//! Per-port options in the lab: fast leave and static router ports with the
//! daemon and kernel hosts, a `--router-port` that names no snooped port, a
//! bridge port's own `mcast_router` and `mcast_fast_leave` as defaults, and
//! the warning when the bridge's own snooping is on too.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge,
//! the daemon. How the XDP program applies the options is xdp_ports.rs.

use std::{net::Ipv4Addr, time::Duration};

use igmp_common::router_mode;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, frames::*, harness::unique_pin_dir, snooped::Snooped};
use igmp_user::tables::Tables;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 4, 4, 4);

#[test]
fn fast_leave_removes_the_group_when_its_last_host_leaves() {
    // A long last member query time: only fast leave can remove the group quickly.
    let args = ["--fast-leave", "p1", "--last-member-interval", "30"];
    let snooped = Snooped::new(2, &args);
    let lab = &snooped.lab;
    let pairs = || snooped.pairs().len();
    lab.force_igmp_version(0, 2).unwrap();
    let member = lab.join(0, GROUP).unwrap();
    assert!(wait_for(Duration::from_secs(5), || pairs() == 1));
    // A second host behind the same port (spoofed onto h1's wire) reports too.
    let other_host = Ipv4Addr::new(10, 0, 0, 50);
    lab.inject(0, &v2_report(other_host, GROUP)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(member);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pairs(),
        1,
        "another host still reports the group\n{}",
        lab.daemon_log()
    );
    let leave = Ipv4::igmp(other_host, ALL_ROUTERS, igmp_message(V2_LEAVE, 0, GROUP));
    lab.inject(0, &frame(&[], &leave)).unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || pairs() == 0),
        "{}",
        lab.daemon_log()
    );
    assert!(lab.daemon_log().contains("reason=\"fast-leave\""));
}

#[test]
fn a_static_router_port_is_permanent_and_a_restart_without_it_demotes_it() {
    let args = ["--router-port", "p2", "--router-timeout", "1"];
    let mut snooped = Snooped::new(2, &args);
    let pin_dir = snooped.pin_dir.clone();
    let lab = &snooped.lab;
    let routers = || {
        Tables::open(&pin_dir)
            .map(|t| t.router_ports())
            .unwrap_or_default()
    };
    let p2 = lab.port_ifindex("p2").unwrap();
    assert_eq!(routers().len(), 1);
    assert_eq!(routers()[0].0.ifindex, p2);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(routers().len(), 1, "a permanent router port expired");
    // No query was heard on p2: the view has no querier, version or timer to show.
    let view = snooped.cli(&["routers"]);
    let view = String::from_utf8_lossy(&view.stdout);
    // A permanent router port is one for both families, as the bridge's
    // `multicast_router 2` is.
    let rows: Vec<Vec<&str>> = view
        .lines()
        .filter(|line| line.trim_start().starts_with("p2"))
        .map(|row| row.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["p2", "ipv4", "-", "-", "-", "-", "-", "-", "permanent"],
            ["p2", "ipv6", "-", "-", "-", "-", "-", "-", "permanent"],
        ],
        "{view}"
    );
    snooped.lab.stop_daemon(libc::SIGTERM).unwrap();
    snooped
        .lab
        .start_daemon(&daemon_binary(), &pin_dir, &["--router-timeout", "1"])
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(4), || routers().is_empty()),
        "{:?}",
        routers()
    );
}

#[test]
fn router_port_flag_for_a_port_not_snooped_is_refused() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--router-port", "p7", "--pin-dir"])
        .arg(unique_pin_dir("bad"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--router-port p7: not a port given with --iface"),
        "{stderr}"
    );
}

/// A bridge port's own `mcast_router` and `mcast_fast_leave` are the port's
/// defaults, as the bridge would have snooped it; a flag or the file wins.
#[test]
fn a_bridge_ports_mcast_router_and_fast_leave_are_the_defaults() {
    let lab = Lab::new(3, BridgeSnooping::Off).unwrap();
    let bridge_link = |port: &str, setting: &str| {
        let command = format!("bridge -n {} link set dev {port} {setting}", lab.switch);
        igmp_lab::run(&command.split_whitespace().collect::<Vec<_>>()).unwrap();
    };
    bridge_link("p1", "fastleave on");
    bridge_link("p2", "mcast_router 2");
    bridge_link("p3", "mcast_router 2");
    let config =
        std::env::temp_dir().join(format!("igmp-snoop-brport-{}.toml", std::process::id()));
    std::fs::write(&config, "[ports.p3]\nrouter = \"off\"\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];

    let checked = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--check-config", "-i", "p1", "-i", "p2", "-i", "p3"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout).to_string();
    assert!(
        stdout.contains("# p1: fast leave, as its mcast_fast_leave in br0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# p2: router permanent, as its mcast_router in br0"),
        "{stdout}"
    );
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["ports"]["p1"]["fast-leave"].as_bool(), Some(true));
    assert_eq!(printed["ports"]["p2"]["router"].as_str(), Some("permanent"));
    assert_eq!(
        printed["ports"]["p3"]["router"].as_str(),
        Some("off"),
        "the file wins"
    );

    let snooped = Snooped::on(lab, &args);
    let _ = std::fs::remove_file(&config);
    let tables = snooped.tables();
    let ports: Vec<_> = tables.ports.ports.iter().filter_map(Result::ok).collect();
    let settings_of = |host: usize| {
        let ifindex = snooped.port(host);
        ports.iter().find(|(index, _)| *index == ifindex).unwrap().1
    };
    assert_eq!(settings_of(0).fast_leave, 1);
    assert_eq!(settings_of(1).router_mode, router_mode::PERMANENT);
    assert_eq!(settings_of(2).router_mode, router_mode::OFF);
    let routers = tables.router_ports();
    assert_eq!(routers.len(), 1, "{routers:?}");
    assert_eq!(routers[0].0.ifindex, snooped.port(1));
}

/// Two snoopers on one LAN: the daemon says so at start, once per bridge.
#[rstest::rstest]
#[case::bridge_snooping_on(BridgeSnooping::On, 1)]
#[case::bridge_snooping_off(BridgeSnooping::Off, 0)]
fn the_bridges_own_snooping_is_warned_about(
    #[case] snooping: BridgeSnooping,
    #[case] warnings: usize,
) {
    let snooped = Snooped::on(Lab::new(2, snooping).unwrap(), &[]);
    snooped.wait_until("started", Duration::from_secs(5), || {
        snooped.lab.daemon_log().contains("adopting")
    });
    let log = snooped.lab.daemon_log();
    let warned = log
        .lines()
        .filter(|line| {
            line.contains("WARN")
                && line.contains("br0: the bridge's own multicast snooping is on too")
        })
        .count();
    assert_eq!(warned, warnings, "{log}");
}
