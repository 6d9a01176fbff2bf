//! The configuration file: accepted as documented, refused with its line and
//! key, overridden by flags, and driving a real daemon.

use std::path::PathBuf;

use igmp_common::{router_flags, router_mode};
use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir, snooped::Snooped};

fn write_config(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("igmp-snoop-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_daemon_takes_timers_and_port_options_from_the_file() {
    let config = write_config(
        "lab",
        "[timers]\nrouter-timeout = 1\n\n[ports.p2]\nrouter = \"permanent\"\n\n[ports.p1]\nfast-leave = true\n",
    );
    let snooped = Snooped::new(2, &["--config", config.to_str().unwrap()]);
    let tables = snooped.tables();
    let ports: Vec<_> = tables.ports.iter().filter_map(Result::ok).collect();
    let settings_of = |ifindex: u32| ports.iter().find(|(index, _)| *index == ifindex).unwrap().1;
    assert_eq!(settings_of(snooped.port(0)).fast_leave, 1);
    assert_eq!(
        settings_of(snooped.port(1)).router_mode,
        router_mode::PERMANENT
    );
    let routers = tables.router_ports();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0].1.flags, router_flags::PERMANENT);
    assert_eq!(tables.settings().router_timeout_ms, 1000);
    let _ = std::fs::remove_file(config);
}

#[test]
fn check_config_prints_the_merged_settings_and_touches_nothing() {
    let example = format!("{}/../igmp-snoop.example.toml", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(daemon_binary())
        .args([
            "run",
            "--check-config",
            "--config",
            &example,
            "--query-interval",
            "60",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("eth1 (router permanent)"), "{stdout}");
    assert!(
        stdout.contains("eth2 (router auto, fast leave)"),
        "{stdout}"
    );
    assert!(stdout.contains("query_interval: 60s"), "{stdout}");
    assert!(
        stdout.contains("querier: on (IGMPv2, from 192.0.2.1)"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_file_is_refused_with_line_column_and_key_before_any_port_changes() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let config = write_config(
        "bad",
        "interfaces = [\"p1\"]\n[timers]\nquery-intervall = 10\n",
    );
    let pin_dir = unique_pin_dir("badcfg");
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--config", config.to_str().unwrap(), "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(":3:1: unknown field `query-intervall`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(!pin_dir.exists(), "nothing may be created for a bad config");
    let _ = std::fs::remove_file(config);
}

#[test]
fn an_unreadable_file_is_named() {
    let output = std::process::Command::new(daemon_binary())
        .args([
            "run",
            "--config",
            "/nonexistent/igmp.toml",
            "--check-config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("/nonexistent/igmp.toml: cannot read"),
        "{stderr}"
    );
}
