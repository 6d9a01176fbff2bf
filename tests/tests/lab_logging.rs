//! Log lines as JSON, one object per line: the daemon's own lines and the
//! XDP program's (aya-log hands them to the same subscriber).
//!
//! Lab tier (`Snooped`): kernel hosts in network namespaces, a bridge, the daemon.

use std::time::Duration;

use igmp_lab::wait_for;
use igmp_tests::snooped::Snooped;

/// The log's lines that are not JSON objects with a level, a target and a message.
fn malformed_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| {
            let Ok(object) = serde_json::from_str::<serde_json::Value>(line) else {
                return true;
            };
            ["level", "target", "message", "timestamp"]
                .iter()
                .any(|key| !object[key].is_string())
        })
        .map(str::to_owned)
        .collect()
}

fn objects(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn json_logs_carry_the_daemons_and_the_xdp_programs_lines() {
    let snooped = Snooped::new(3, &["--log-format", "json", "--log-level", "debug"]);
    let lab = &snooped.lab;
    lab.start_bridge_querier(2, 3, 50).unwrap();
    let kernel_line = |log: &str| {
        objects(log).into_iter().find(|object| {
            object["message"]
                .as_str()
                .is_some_and(|message| message.contains("learned from querier 10.0.0.3"))
        })
    };
    assert!(
        wait_for(Duration::from_secs(10), || kernel_line(&lab.daemon_log())
            .is_some()),
        "no line from the XDP program:\n{}",
        lab.daemon_log()
    );
    let log = lab.daemon_log();
    assert_eq!(malformed_lines(&log), Vec::<String>::new());
    let kernel = kernel_line(&log).unwrap();
    assert_eq!(kernel["level"], "DEBUG");
    // The XDP program's crate, not the daemon's: the line crossed aya-log's ring buffer.
    assert!(
        kernel["target"]
            .as_str()
            .is_some_and(|target| target.starts_with("igmp_snoop::")),
        "{kernel}"
    );
    assert!(
        objects(&log).iter().any(|object| object["target"]
            .as_str()
            .is_some_and(|target| target.starts_with("igmp_user"))
            && object["level"] == "INFO"),
        "no daemon line at info:\n{log}"
    );
}

/// Per-entry lines carry their facts as fields, which `--log-format json`
/// puts beside the message, so a log pipeline can filter on them.
#[test]
fn json_log_lines_carry_fields_not_prose() {
    let snooped = Snooped::new(2, &["--log-format", "json", "--log-level", "debug"]);
    let lab = &snooped.lab;
    let _member = lab.join(0, std::net::Ipv4Addr::new(239, 1, 2, 4)).unwrap();
    let join = |log: &str| {
        objects(log)
            .into_iter()
            .find(|object| object["message"] == "join" && object["group"] == "239.1.2.4")
    };
    assert!(
        wait_for(Duration::from_secs(5), || join(&lab.daemon_log()).is_some()),
        "{}",
        lab.daemon_log()
    );
    let join = join(&lab.daemon_log()).unwrap();
    assert_eq!(join["port"], "p1", "{join}");
    assert_eq!(join["reporter"], "10.0.0.1", "{join}");
    assert_eq!(join["version"], 3, "{join}");
    assert_eq!(join["vid"], 0, "{join}");
}

/// The lab sets RUST_LOG to debug for igmp_user; the flag wins over it.
#[test]
fn the_log_level_flag_wins_over_rust_log() {
    let snooped = Snooped::new(2, &["--log-format", "json", "--log-level", "info"]);
    let lab = &snooped.lab;
    let group = std::net::Ipv4Addr::new(239, 1, 2, 3);
    let _member = lab.join(1, group).unwrap();
    assert!(wait_for(Duration::from_secs(5), || snooped
        .cli(&["show", "--json"])
        .stdout
        .windows(9)
        .any(|window| window == b"239.1.2.3")));
    let log = lab.daemon_log();
    assert_eq!(malformed_lines(&log), Vec::<String>::new());
    let debug: Vec<_> = objects(&log)
        .into_iter()
        .filter(|object| object["level"] == "DEBUG")
        .collect();
    assert!(debug.is_empty(), "{debug:?}");
}
