//! The configuration file: accepted as documented, refused with its line and
//! key, overridden by flags, and driving a real daemon.
//!
//! Lab tier (`Lab`, `Snooped`): the ports a file names are a lab's. Two checks
//! need no namespace (an unreadable file; README's keys against the example's)
//! and stay here with their subject.

use std::{collections::BTreeSet, path::PathBuf};

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
    let ports: Vec<_> = tables.ports.ports.iter().filter_map(Result::ok).collect();
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

/// `run --check-config` in `lab`'s switch: its status, stdout and stderr.
fn check_config(lab: &Lab, args: &[&str]) -> std::process::Output {
    lab.command_in_switch(&daemon_binary())
        .args(["run", "--check-config"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_prints_the_merged_settings_as_a_config_that_runs_the_same() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    // The example's ports, on a box that has them.
    for port in ["eth1", "eth2", "eth3"] {
        let veth = format!("link add {port} type veth peer name {port}-peer");
        igmp_lab::ip(&lab.switch, &veth).unwrap();
    }
    let example = format!("{}/../igmp-snoop.example.toml", env!("CARGO_MANIFEST_DIR"));
    let output = check_config(&lab, &["--config", &example, "--query-interval", "60"]);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("# attach: tc ("), "{stdout}");
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["timers"]["query-interval"].as_float(), Some(60.0));
    assert_eq!(printed["timers"]["robustness"].as_integer(), Some(2));
    assert_eq!(
        printed["ports"]["eth1"]["router"].as_str(),
        Some("permanent")
    );
    assert_eq!(printed["ports"]["eth2"]["fast-leave"].as_bool(), Some(true));
    assert_eq!(printed["querier"]["enabled"].as_bool(), Some(true));
    assert_eq!(printed["querier"]["address"].as_str(), Some("192.0.2.1"));
    assert_eq!(printed["querier"]["version"].as_integer(), Some(2));
    assert!(!stdout.contains(" { "), "no debug structs: {stdout}");

    // What it printed is a configuration file `run` takes, and it gives the same settings.
    let again = write_config("checked", &stdout);
    let output = check_config(&lab, &["--config", again.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), stdout);
    let _ = std::fs::remove_file(again);
}

#[rstest::rstest]
#[case::missing(&["-i", "p1", "-i", "nope"], "nope: no such interface")]
#[case::the_bridge_itself(&["-i", "br0"], "br0 is a bridge: snoop on its ports instead")]
fn check_config_refuses_ports_run_would_refuse(#[case] args: &[&str], #[case] expected: &str) {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let line = igmp_tests::one_error_line(&check_config(&lab, args));
    assert!(line.contains(expected), "{line}");
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

/// The configuration reference in README.md: (table, key) pairs named in
/// the first cell of its rows, the table being `[timers]`, `[ports.<name>]`,
/// ... or "" for the top level.
fn readme_keys() -> BTreeSet<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("\n## Configuration file\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Configuration file section");
    let mut keys = BTreeSet::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap();
        let names: Vec<&str> = first_cell.split('`').skip(1).step_by(2).collect();
        let (table, names) = match names.split_first() {
            Some((table, rest)) if table.starts_with('[') => (*table, rest),
            _ => ("", &names[..]),
        };
        for name in names {
            keys.insert((table.to_string(), name.to_string()));
        }
    }
    keys
}

/// Every (table, key) the example sets; the ports' names become `<name>`.
fn example_keys() -> BTreeSet<(String, String)> {
    let example: toml::Table = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../igmp-snoop.example.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut keys = BTreeSet::new();
    for (key, value) in &example {
        match (key.as_str(), value) {
            ("ports", toml::Value::Table(ports)) => {
                for options in ports.values() {
                    for option in options.as_table().unwrap().keys() {
                        keys.insert(("[ports.<name>]".to_string(), option.clone()));
                    }
                }
            }
            (table, toml::Value::Table(entries)) => {
                for entry in entries.keys() {
                    keys.insert((format!("[{table}]"), entry.clone()));
                }
            }
            _ => {
                keys.insert((String::new(), key.clone()));
            }
        }
    }
    keys
}

/// The example is loaded whole by `check_config_prints_the_merged_settings_as_a_config_that_runs_the_same`
/// and the loader refuses unknown keys at every level, so each key it sets is
/// accepted; here each must also be in README.md's reference, and the
/// reference must name no key the example leaves out.
#[test]
fn the_readme_documents_exactly_the_keys_of_the_example() {
    let (readme, example) = (readme_keys(), example_keys());
    let undocumented: Vec<_> = example.difference(&readme).collect();
    let not_in_example: Vec<_> = readme.difference(&example).collect();
    assert!(
        undocumented.is_empty(),
        "in igmp-snoop.example.toml, not in README.md: {undocumented:?}"
    );
    assert!(
        not_in_example.is_empty(),
        "in README.md, not in igmp-snoop.example.toml: {not_in_example:?}"
    );
}
