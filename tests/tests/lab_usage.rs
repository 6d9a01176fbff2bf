//! Refused usage: no privileges, bad configuration files, conflicting flags,
//! a second daemon. Each gets one clear error line and a non-zero exit, and
//! nothing already running is disturbed. (Unknown interfaces, drivers without
//! native XDP and incompatible pins are in lab_cli.rs.)
//!
//! Lab tier (`Lab`, `Snooped`): the daemon runs in a lab's switch namespace. A
//! few refusals need no namespace (unreadable or invalid files, wrong flags, a
//! detach off bpffs) and stay here with their subject.

use std::{net::Ipv4Addr, process::Command, time::Duration};

use igmp_lab::{BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary,
    harness::{table_snapshot, unique_pin_dir, TableSnapshot},
    one_error_line,
    snooped::{program_attached, Snooped},
};
use rstest::rstest;

/// `setpriv` arguments that run the binary without any capability.
const NOBODY: [&str; 5] = [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
];
const ROOT_WITHOUT_CAPABILITIES: [&str; 2] = ["--inh-caps=-all", "--bounding-set=-all"];

#[rstest]
#[case::nobody(&NOBODY)]
#[case::root_without_capabilities(&ROOT_WITHOUT_CAPABILITIES)]
fn run_without_capabilities_names_the_ones_missing(#[case] setpriv: &[&str]) {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let pin_dir = unique_pin_dir("nocap");
    let output = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.switch))
        .arg("setpriv")
        .args(setpriv)
        .arg(daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&pin_dir)
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(
        line.contains("missing capabilities CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"),
        "{line}"
    );
    assert!(line.contains("run igmp-snoop as root"), "{line}");
    assert!(!pin_dir.exists(), "a refused run created its pin directory");
    assert!(!program_attached(&lab, "p1"));
}

#[test]
fn a_config_file_that_cannot_be_read_is_named() {
    // A file nobody may read, read by nobody.
    let path = std::env::temp_dir().join(format!("igmp-snoop-000-{}.toml", std::process::id()));
    std::fs::write(&path, "interfaces = [\"p1\"]\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let output = Command::new("setpriv")
        .args(NOBODY)
        .arg(daemon_binary())
        .args(["run", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let line = one_error_line(&output);
    assert!(
        line.contains(&format!(
            "{}: cannot read: Permission denied",
            path.display()
        )),
        "{line}"
    );
    // A directory, read by root.
    let output = Command::new(daemon_binary())
        .args(["run", "--check-config", "--config", "/tmp"])
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains("/tmp: cannot read: Is a directory"), "{line}");
}

#[rstest]
#[case::wrong_type(
    "[timers]\nrobustness = \"two\"\n",
    ":3:14: `timers.robustness`: invalid type"
)]
#[case::unknown_value(
    "[ports.p1]\nrouter = \"sometimes\"\n",
    ":3:10: `ports.p1.router`: unknown variant `sometimes`"
)]
#[case::not_toml("[timers\n", ":2:8: unclosed table")]
fn an_invalid_config_names_its_line_and_key(#[case] body: &str, #[case] expected: &str) {
    let path = std::env::temp_dir().join(format!(
        "igmp-snoop-invalid-{}-{}.toml",
        std::process::id(),
        expected.len()
    ));
    std::fs::write(&path, format!("interfaces = [\"p1\"]\n{body}")).unwrap();
    let output = Command::new(daemon_binary())
        .args(["run", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let line = one_error_line(&output);
    assert!(
        line.contains(&format!("{}{expected}", path.display())),
        "{line}"
    );
}

#[rstest]
#[case::a_port_twice(&["-i", "p1", "-i", "p2", "-i", "p1"], "p1: given twice as a port")]
#[case::fast_leave_on_no_port(&["-i", "p1", "--fast-leave", "p9"], "--fast-leave p9: not a port given with --iface")]
#[case::router_port_on_no_port(&["-i", "p1", "--router-port", "p9"], "--router-port p9: not a port given with --iface")]
#[case::response_interval_past_query_interval(
    &["-i", "p1", "--query-interval", "5", "--query-response-interval", "8"],
    "query-response-interval (8s) must be less than query-interval (5s)"
)]
#[case::querier_version_1(&["-i", "p1", "--querier-version", "1"], "invalid value '1' for '--querier-version")]
#[case::unknown_flag(&["-i", "p1", "--fast-path-please"], "unexpected argument '--fast-path-please'")]
#[case::unknown_value_lists_the_possible_ones(
    &["-i", "p1", "--attach", "fast"],
    "invalid value 'fast' for '--attach <MODE>' [possible values: auto, native, generic, tc]"
)]
#[case::a_misspelt_flag_gets_the_tip(&["--ifac", "p1"], "tip: a similar argument exists: '--iface'")]
#[case::no_port(&[], "no port to snoop on")]
fn conflicting_or_wrong_flags_get_one_line(#[case] args: &[&str], #[case] expected: &str) {
    let output = Command::new(daemon_binary())
        .arg("run")
        .args(args)
        .arg("--check-config")
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains(expected), "{line}");
}

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);

/// A running daemon with one member, and what a second run must not change.
fn running_with_a_member() -> (Snooped, igmp_lab::Member, TableSnapshot) {
    let snooped = Snooped::new(1, &[]);
    let member = snooped.lab.join(0, GROUP).unwrap();
    let pairs = [(snooped.port(0), GROUP)].into_iter().collect();
    snooped.wait_for_pairs(&pairs, Duration::from_secs(5));
    // Let the member's unsolicited reports (within 1 s of the join) pass.
    std::thread::sleep(Duration::from_millis(1200));
    let snapshot = table_snapshot(&snooped.tables());
    (snooped, member, snapshot)
}

fn assert_undisturbed(snooped: &mut Snooped, before: &TableSnapshot) {
    assert!(!snooped.lab.daemon_exited(), "{}", snooped.lab.daemon_log());
    assert!(
        program_attached(&snooped.lab, "p1"),
        "the port lost its program"
    );
    assert!(
        table_snapshot(&snooped.tables()) == *before,
        "the table changed: {:?}",
        snooped.pairs()
    );
    let show = snooped.cli(&["show"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    // The first daemon still learns: a new member is heard.
    let _second = snooped.lab.join(0, Ipv4Addr::new(239, 7, 7, 8)).unwrap();
    snooped.wait_until(
        "a join after the refused run",
        Duration::from_secs(5),
        || snooped.pairs().len() == 2,
    );
}

#[test]
fn a_second_daemon_on_the_same_pins_is_refused_and_the_first_runs_on() {
    let (mut snooped, _member, before) = running_with_a_member();
    let output = snooped
        .lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&snooped.pin_dir)
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(
        line.contains("another igmp-snoop (pid") && line.contains("is running on these pins"),
        "{line}"
    );
    assert_undisturbed(&mut snooped, &before);
}

#[test]
fn a_second_daemon_on_the_same_port_with_other_pins_is_refused_and_leaves_no_pins() {
    let (mut snooped, _member, before) = running_with_a_member();
    let other_pins = unique_pin_dir("second");
    let output = snooped
        .lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--iface", "p1", "--pin-dir"])
        .arg(&other_pins)
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(
        line.contains("p1: another") && line.contains("is attached already"),
        "{line}"
    );
    assert!(!other_pins.exists(), "the refused run left its pins behind");
    assert_undisturbed(&mut snooped, &before);
}

/// `detach` under a running daemon would remove pins the daemon still uses
/// and leave its ports attached: it is refused, naming the daemon.
#[test]
fn detach_while_a_daemon_runs_is_refused_and_changes_nothing() {
    let (mut snooped, _member, before) = running_with_a_member();
    let output = snooped.cli(&["detach"]);
    let line = one_error_line(&output);
    let pid = snooped.lab.daemon_pid().unwrap();
    assert!(
        line.contains(&format!("igmp-snoop (pid {pid}) is running on these pins")),
        "{line}"
    );
    assert_undisturbed(&mut snooped, &before);
}

/// Off bpffs, the names `detach` removes would be ordinary files.
#[test]
fn detach_of_a_directory_off_bpffs_removes_nothing() {
    let dir = std::env::temp_dir().join(format!("igmp-snoop-not-bpffs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("links")).unwrap();
    let files = [dir.join("links/eth0"), dir.join("MEMBERSHIP")];
    for file in &files {
        std::fs::write(file, "an ordinary file").unwrap();
    }
    let output = Command::new(daemon_binary())
        .args(["detach", "--pin-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains("not on bpffs"), "{line}");
    for file in &files {
        assert!(file.exists(), "{} was removed", file.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
