//! Tests of the configuration file.

use super::*;
use crate::cli::TimerArgs;

const EXAMPLE: &str = include_str!("../../../igmp-snoop.example.toml");

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("test.toml"), text)
}

#[test]
fn the_example_file_sets_every_key() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(config.interfaces, vec!["eth1", "eth2", "eth3"]);
    assert_eq!(config.attach, Some(AttachMode::Auto));
    assert!(
        config.metrics_addr.is_some() && config.keep_attached.is_some() && config.pin_dir.is_some()
    );
    assert_eq!(config.unregistered, Some(UnregisteredPolicy::Auto));
    let timers = &config.timers;
    assert!(timers.robustness.is_some() && timers.query_interval.is_some());
    assert!(timers.query_response_interval.is_some() && timers.last_member_interval.is_some());
    assert!(timers.last_member_count.is_some() && timers.startup_query_interval.is_some());
    assert!(timers.startup_query_count.is_some() && timers.router_timeout.is_some());
    assert!(
        config.querier.enabled.is_some()
            && config.querier.version.is_some()
            && config.querier.mld_version.is_some()
            && config.querier.address.is_some()
    );
    assert_eq!(config.ports["eth1"].router, Some(RouterModeName::Permanent));
    assert_eq!(config.ports["eth2"].fast_leave, Some(true));
    assert_eq!(config.ports["eth3"].router, Some(RouterModeName::Off));
    assert!(config.ports["eth3"].flood_reports);
    assert_eq!(
        config.ports["eth3"].unregistered,
        Some(UnregisteredPolicy::Flood)
    );
}

#[test]
fn an_empty_file_keeps_the_rfc_defaults() {
    let mut timers = Timers::default();
    parse("").unwrap().apply_timers(&mut timers);
    assert_eq!(timers, Timers::default());
}

#[test]
fn file_timers_replace_the_defaults_and_derive_the_rest() {
    let mut timers = Timers::default();
    parse("[timers]\nrobustness = 3\nquery-interval = 60\n")
        .unwrap()
        .apply_timers(&mut timers);
    assert_eq!((timers.robustness, timers.last_member_query_count), (3, 3));
    assert_eq!(timers.startup_query_interval, Duration::from_secs(15));
    assert_eq!(timers.group_membership_interval(), Duration::from_secs(190));
}

#[test]
fn unknown_keys_are_named_with_line_and_column() {
    let error = parse("interfaces = [\"eth1\"]\n\n[timers]\nrobustnes = 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("test.toml:4:1: unknown field `robustnes`"),
        "{error}"
    );
}

#[test]
fn bad_values_name_their_place_and_the_rule() {
    for (text, expected) in [
        (
            "[timers]\nrobustness = 0\n",
            "test.toml:2:14: `timers.robustness`: 0 is out of range (at least 1)",
        ),
        (
            "[timers]\nquery-interval = -1\n",
            "test.toml:2:18: `timers.query-interval`: -1 s is out of range",
        ),
        (
            "xdp-mode = \"fast\"\n",
            "test.toml:1:12: `xdp-mode`: unknown variant `fast`",
        ),
        (
            "[querier]\nversion = 1\n",
            "test.toml:2:11: `querier.version`: version 1: this querier speaks IGMP 2 or 3",
        ),
        (
            "[ports.\"eth1.100\"]\nrouter = \"always\"\n",
            "test.toml:2:10: `ports.\"eth1.100\".router`: unknown variant `always`",
        ),
        (
            "[timers]\nlast-member-interval = 0.0001\n",
            "test.toml:2:24: `timers.last-member-interval`: 0.0001 s is out of range",
        ),
        (
            "[timers]\nrobustness = 1.5\n",
            "test.toml:2:14: `timers.robustness`: invalid type: floating point `1.5`, expected a whole number",
        ),
        (
            "[timers]\nquery-interval = \"10\"\n",
            "test.toml:2:18: `timers.query-interval`: invalid type: string \"10\", expected a number",
        ),
        (
            "[limits]\nmax-groups = -1\n",
            "test.toml:2:14: `limits.max-groups`: invalid value: integer `-1`, expected a whole number, 0 or more",
        ),
    ] {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
}

#[test]
fn options_for_a_port_not_snooped_are_refused() {
    let config = parse("[ports.eth9]\nfast-leave = true\n").unwrap();
    let error = config
        .check(Path::new("c.toml"), &["eth1".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "c.toml: [ports.eth9]: not one of the interfaces snooped (eth1)"
    );
}

/// Static groups of either family, each held to what the daemon snoops.
#[test]
fn static_groups_take_both_families_and_refuse_groups_never_snooped() {
    let config = parse("[ports.eth1]\nstatic-groups = [\"239.1.2.3\", \"ff0e::1\"]\n").unwrap();
    assert_eq!(config.ports["eth1"].static_groups.len(), 2);
    assert!(config.check(Path::new("c.toml"), &["eth1".into()]).is_ok());
    for group in ["224.0.0.5", "ff02::1", "10.0.0.1"] {
        let config = parse(&format!("[ports.eth1]\nstatic-groups = [\"{group}\"]\n")).unwrap();
        let error = config
            .check(Path::new("c.toml"), &["eth1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "c.toml: [ports.eth1] static-groups: {group} is not a group to snoop"
            )),
            "{error}"
        );
    }
}

#[test]
fn an_unreadable_file_names_the_path_and_the_os_error_once() {
    let error = Config::load(Path::new("/nonexistent/igmp-snoop.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error.matches("No such file or directory").count(),
        1,
        "{error}"
    );
    assert!(error.starts_with("/nonexistent/igmp-snoop.toml: cannot read: "));
}

#[test]
fn flags_override_the_file_key_by_key() {
    let file = parse("[timers]\nrobustness = 2\nlast-member-count = 5\nquery-interval = 100\nstartup-query-interval = 7\n")
        .unwrap();
    let flags = TimerArgs {
        robustness: Some(3),
        query_interval: Some(Duration::from_secs(60)),
        ..TimerArgs::default()
    };
    let timers = file.timers.overridden_by(&(&flags).into()).resolve();
    assert_eq!(timers.robustness, 3);
    assert_eq!(timers.query_interval, Duration::from_secs(60));
    // The file set these two; a flag for another key must not undo them.
    assert_eq!(timers.last_member_query_count, 5);
    assert_eq!(timers.startup_query_interval, Duration::from_secs(7));
    // Not set anywhere: still derived, from the flag's robustness.
    assert_eq!(timers.startup_query_count, 3);
}

#[test]
fn query_response_interval_must_end_before_the_next_query() {
    let timers = parse("[timers]\nquery-interval = 10\nquery-response-interval = 10\n")
        .unwrap()
        .timers();
    let error = check_timers(&timers).unwrap_err().to_string();
    assert!(
        error.contains("must be less than query-interval"),
        "{error}"
    );
    assert!(check_timers(&Timers::default()).is_ok());
}

#[test]
fn unlisted_ports_get_the_defaults() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(config.port("eth9"), PortConfig::default());
    assert_eq!(config.port("eth1").router, Some(RouterModeName::Permanent));
    assert_eq!(parse("").unwrap().timers(), Timers::default());
}

#[test]
fn every_example_key_is_in_the_readme() {
    let readme = include_str!("../../../README.md");
    let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let mut keys = Vec::new();
    for (key, value) in &example {
        keys.push(key.clone());
        let Some(table) = value.as_table() else {
            continue;
        };
        // Under [ports] the keys are port names; their options are the keys.
        let tables = if key == "ports" {
            table.values().filter_map(toml::Value::as_table).collect()
        } else {
            vec![table]
        };
        keys.extend(tables.into_iter().flat_map(|t| t.keys().cloned()));
    }
    for key in keys {
        // Tables appear as their header: `[timers]`, `[ports.<name>]`.
        let documented =
            readme.contains(&format!("`{key}`")) || readme.contains(&format!("`[{key}"));
        assert!(documented, "README lacks `{key}`");
    }
}
