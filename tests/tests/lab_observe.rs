//! The table seen from another shell while the daemon runs: `monitor` and the metrics.
//!
//! Lab tier (`Lab`, `Snooped`): kernel hosts in network namespaces, a bridge, the
//! daemon.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use igmp_lab::{in_netns, ip, BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary,
    harness::unique_pin_dir,
    one_error_line,
    snooped::{program_attached, Snooped},
};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);

#[test]
fn monitor_streams_join_leave_and_expire() {
    let snooped = Snooped::new(2, &["--last-member-interval", "0.2"]);
    let pin_dir = snooped.pin_dir.clone();
    let lab = &snooped.lab;
    // The daemon opens its monitor socket once its ports are attached.
    let socket = igmp_user::monitor::socket_path(&pin_dir);
    assert!(igmp_lab::wait_for(Duration::from_secs(5), || socket.exists()));
    let mut monitor = lab
        .command_in_switch(&daemon_binary())
        .args(["monitor", "--json", "--pin-dir"])
        .arg(&pin_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // The monitor is connected once a probe's join comes through: a fixed
    // wait lost the first event on a busy machine.
    let mut probes = Vec::new();
    for probe in 1..=10u8 {
        probes.push(lab.join(0, Ipv4Addr::new(239, 7, 8, probe)).unwrap());
        if wait_event(&lines, "join", Duration::from_secs(1)).is_some() {
            break;
        }
    }
    let member = lab.join(1, GROUP).unwrap();
    let join = loop {
        let join = next_event(&lines, "join");
        if join["grp"] == "239.7.7.7" {
            break join;
        }
    };
    assert_eq!(join["port"], "p2");
    assert_eq!(join["grp"], "239.7.7.7");
    assert_eq!(join["address"], "10.0.0.2");
    drop(member);
    next_event(&lines, "leave");
    let expire = next_event(&lines, "expire");
    assert_eq!(expire["reason"], "leave");
    let _ = monitor.kill();
    let _ = monitor.wait();
}

/// The next event of `kind`, skipping others, within 5 s.
fn next_event(lines: &mpsc::Receiver<String>, kind: &str) -> serde_json::Value {
    wait_event(lines, kind, Duration::from_secs(5)).unwrap_or_else(|| panic!("no {kind} event"))
}

/// The next event of `kind`, skipping others, if one comes within `timeout`.
fn wait_event(
    lines: &mpsc::Receiver<String>,
    kind: &str,
    timeout: Duration,
) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).ok()?;
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["event"] == kind {
            return Some(event);
        }
    }
}

#[test]
fn metrics_count_groups_members_and_messages() {
    let snooped = Snooped::new(3, &["--metrics-addr", "127.0.0.1:9477"]);
    let lab = &snooped.lab;
    let _a = lab.join(0, GROUP).unwrap();
    let _b = lab.join(1, GROUP).unwrap();
    let scraped = igmp_lab::wait_for(Duration::from_secs(5), || {
        scrape(&lab.switch).contains(r#"igmp_snoop_memberships{family="ipv4"} 2"#)
    });
    // The port's counters count both families' entries, and the host makes
    // its own MLD memberships (solicited-node groups) when it will: they
    // are counted before and after the scrape.
    let mld_on_p1 = || {
        snooped
            .tables()
            .memberships6()
            .iter()
            .filter(|(key, _)| key.ifindex == snooped.port(0))
            .count()
    };
    let mld_before = mld_on_p1();
    let text = scrape(&lab.switch);
    let mld_after = mld_on_p1();
    assert!(scraped, "{text}");
    assert!(
        text.contains(r#"igmp_snoop_groups{family="ipv4"} 1"#),
        "{text}"
    );
    for family in ["ipv4", "ipv6"] {
        let line = format!(r#"igmp_snoop_is_querier{{family="{family}"}} 0"#);
        assert!(text.contains(&line), "{text}");
    }
    assert!(
        text.contains("igmp_snoop_data_frames_total{decision=\"forwarded_every_port\"} 0"),
        "{text}"
    );
    let created = (1 + mld_before..=1 + mld_after).any(|count| {
        text.contains(&format!(
            "igmp_snoop_messages_total{{port=\"p1\",kind=\"group_created\"}} {count}"
        ))
    });
    assert!(created, "{text}");
    assert!(
        text.contains("igmp_snoop_drops_total{port=\"p1\",reason=\"bad_ttl\"} 0"),
        "{text}"
    );
}

#[test]
fn metrics_have_every_port_at_zero_from_the_start() {
    let snooped = Snooped::new(2, &["--metrics-addr", "127.0.0.1:9477"]);
    let text = scrape(&snooped.lab.switch);
    for host in &snooped.lab.hosts {
        let port = &host.port;
        for series in [
            format!("igmp_snoop_messages_total{{port=\"{port}\",kind=\"v2_leave\"}} 0"),
            format!("igmp_snoop_drops_total{{port=\"{port}\",reason=\"bad_ttl\"}} 0"),
        ] {
            assert!(text.contains(&series), "no {series} in\n{text}");
        }
    }
}

#[test]
fn metrics_escape_label_values() {
    let mut lab = Lab::new(2, BridgeSnooping::Off).expect("lab");
    let name = r#"a"b\c"#;
    let old = lab.hosts[1].port.clone();
    ip(&lab.switch, &format!("link set {old} down")).unwrap();
    ip(&lab.switch, &format!("link set {old} name {name}")).unwrap();
    ip(&lab.switch, &format!("link set {name} up")).unwrap();
    lab.hosts[1].port = name.to_string();
    let snooped = Snooped::on(lab, &["--metrics-addr", "127.0.0.1:9477"]);
    let text = scrape(&snooped.lab.switch);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let mut ports = BTreeSet::new();
    for line in body.lines().filter(|line| !line.starts_with('#')) {
        let labels = sample_labels(line).unwrap_or_else(|| panic!("unparsable: {line}\n{body}"));
        ports.extend(
            labels
                .into_iter()
                .filter(|(key, _)| key == "port")
                .map(|(_, value)| value),
        );
    }
    assert!(ports.contains(name), "{ports:?}\n{body}");
}

#[test]
fn metrics_unreadable_maps_are_a_server_error() {
    let snooped = Snooped::new(1, &["--metrics-addr", "127.0.0.1:9477"]);
    assert!(scrape(&snooped.lab.switch).starts_with("HTTP/1.1 200"));
    std::fs::remove_file(snooped.pin_dir.join(igmp_common::map_names::SOURCES)).unwrap();
    let text = scrape(&snooped.lab.switch);
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
}

#[test]
fn metrics_address_in_use_refuses_to_start() {
    let lab = Lab::new(1, BridgeSnooping::Off).expect("lab");
    let _holder = in_netns(&lab.switch, || Ok(TcpListener::bind("127.0.0.1:9477")?)).unwrap();
    let pin_dir = unique_pin_dir("busy-metrics");
    let mut daemon = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", &lab.hosts[0].port, "--pin-dir"])
        .arg(&pin_dir)
        .args(["--metrics-addr", "127.0.0.1:9477"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = igmp_lab::wait_for(Duration::from_secs(20), || {
        daemon.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = daemon.kill();
        let _ = daemon.wait();
        let _ = igmp_user::loader::remove_pins(&pin_dir);
        panic!("igmp-snoop ran without its metrics address");
    }
    let line = one_error_line(&daemon.wait_with_output().unwrap());
    assert!(line.contains("--metrics-addr 127.0.0.1:9477"), "{line}");
    assert!(!program_attached(&lab, &lab.hosts[0].port));
    assert!(!pin_dir.join(igmp_common::map_names::MEMBERSHIP).exists());
}

#[test]
fn metrics_decisions_partition_the_frames() {
    const FRAMES: u64 = 20;
    let snooped = Snooped::new(2, &["--metrics-addr", "127.0.0.1:9477"]);
    let lab = &snooped.lab;
    let _member = lab.join(1, GROUP).unwrap();
    snooped.wait_for_pairs(
        &BTreeSet::from([(snooped.port(1), GROUP)]),
        Duration::from_secs(5),
    );
    lab.send(0, GROUP, FRAMES as usize, 100).unwrap();
    let mut text = String::new();
    let counted = igmp_lab::wait_for(Duration::from_secs(5), || {
        text = scrape(&lab.switch);
        text.contains(&format!(
            "igmp_snoop_data_frames_total{{decision=\"forwarded_sole_port\"}} {FRAMES}"
        ))
    });
    assert!(counted, "{text}");
    let decisions: Vec<(&str, u64)> = text
        .lines()
        .filter(|line| line.starts_with("igmp_snoop_data_frames_total{"))
        .map(|line| {
            let (labels, value) = line.rsplit_once(' ').unwrap();
            (labels, value.parse::<u64>().unwrap())
        })
        .collect();
    let total: u64 = decisions.iter().map(|(_, count)| count).sum();
    // The hosts' own link-scope IPv6 frames (neighbour discovery), sent
    // when they will, are flooded by rule and counted so.
    let flooded = decisions
        .iter()
        .find(|(labels, _)| labels.ends_with("decision=\"unregistered_flooded\"}"))
        .map_or(0, |(_, count)| *count);
    assert_eq!(total - flooded, FRAMES, "{text}");
}

/// The labels of one sample line of the text exposition format, values
/// unescaped (`\\`, `\"`, `\n`; none when it has no braces), or None when the line does not parse.
fn sample_labels(line: &str) -> Option<Vec<(String, String)>> {
    let Some(open) = line.find('{') else {
        let (_, value) = line.split_once(' ')?;
        value.parse::<f64>().ok()?;
        return Some(Vec::new());
    };
    let mut rest = line[open + 1..].chars();
    let mut labels = Vec::new();
    loop {
        let key: String = rest.by_ref().take_while(|c| *c != '=').collect();
        if rest.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match rest.next()? {
                '"' => break,
                '\\' => match rest.next()? {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                c => value.push(c),
            }
        }
        labels.push((key, value));
        match rest.next()? {
            ',' => continue,
            '}' => break,
            _ => return None,
        }
    }
    let tail: String = rest.collect();
    let value = tail.strip_prefix(' ')?;
    value.parse::<f64>().ok()?;
    Some(labels)
}

/// GETs the metrics page from inside the switch namespace.
fn scrape(switch: &str) -> String {
    in_netns(switch, || {
        let mut stream = TcpStream::connect("127.0.0.1:9477")?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })
    .unwrap_or_default()
}
