//! The table seen from another shell while the daemon runs: `monitor` and the metrics.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use igmp_lab::in_netns;
use igmp_tests::{daemon_binary, snooped::Snooped};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);

#[test]
fn monitor_streams_join_leave_and_expire() {
    let snooped = Snooped::new(2, &["--last-member-interval", "0.2"]);
    let pin_dir = snooped.pin_dir.clone();
    let lab = &snooped.lab;
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
    std::thread::sleep(Duration::from_millis(300));
    let member = lab.join(1, GROUP).unwrap();
    let join = next_event(&lines, "join");
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
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no {kind} event"));
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["event"] == kind {
            return event;
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
        scrape(&lab.switch).contains("igmp_snoop_memberships 2")
    });
    let text = scrape(&lab.switch);
    assert!(scraped, "{text}");
    assert!(text.contains("igmp_snoop_groups 1"), "{text}");
    assert!(text.contains("igmp_snoop_is_querier 0"), "{text}");
    assert!(
        text.contains("igmp_snoop_data_frames_total{decision=\"forwarded\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("igmp_snoop_messages_total{port=\"p1\",kind=\"group_created\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("igmp_snoop_drops_total{port=\"p1\",reason=\"bad_ttl\"} 0"),
        "{text}"
    );
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
