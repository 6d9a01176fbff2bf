//! What ships: the systemd unit's command, run under exactly the unit's
//! capabilities, snoops a real join (and is refused without any one of them);
//! the manual pages and completions cover every command and flag; `cargo
//! xtask install` lays a prefix out.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use clap::CommandFactory as _;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary,
    service::{Unit, UnitDaemon, UNIT},
};
use igmp_user::cli::Cli;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 8, 8, 8);

/// Whether `igmp-snoop show --json` lists `group` on `port`.
fn shown(lab: &Lab, pin_dir: &Path, port: &str, group: Ipv4Addr) -> bool {
    let output = lab
        .command_in_switch(&daemon_binary())
        .args(["show", "--json", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
    rows.iter()
        .any(|row| row["port"] == port && row["grp"] == group.to_string())
}

#[test]
fn the_units_command_snoops_a_real_join_with_only_the_units_capabilities() {
    let unit = Unit::read();
    assert_eq!(unit.user, "root", "this test runs root units only");
    assert_eq!(
        unit.ambient, unit.bounding,
        "AmbientCapabilities and CapabilityBoundingSet differ"
    );
    let lab = Lab::new(3, BridgeSnooping::Off).unwrap();
    let mut daemon = UnitDaemon::start(&lab, &unit, &unit.bounding);
    if let Err(log) = daemon.wait_until_up() {
        panic!("with the unit's capabilities {:?}:\n{log}", unit.bounding);
    }
    assert_eq!(daemon.effective_capabilities(), unit.bounding);
    // Host 2 is on p2, the example's fast-leave port. The example's querier
    // speaks IGMPv2: a host that heard it repeats its unsolicited report up
    // to 10 s later (RFC 2236 §8.10), should the first one be lost while the
    // new veth comes up.
    let _member = lab.join(1, GROUP).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || shown(
            &lab,
            &daemon.pin_dir,
            "p2",
            GROUP
        )),
        "the join never showed\n{}",
        daemon.log()
    );
}

#[test]
fn every_capability_of_the_unit_is_needed() {
    let unit = Unit::read();
    let lab = Lab::new(3, BridgeSnooping::Off).unwrap();
    for capability in &unit.bounding {
        let mut fewer = unit.bounding.clone();
        fewer.remove(capability);
        let named = format!("CAP_{}", capability.to_uppercase());
        let mut daemon = UnitDaemon::start(&lab, &unit, &fewer);
        let log = daemon.wait_until_up().err().unwrap_or_else(|| {
            panic!("the daemon runs without {named}: the unit need not give it")
        });
        assert!(log.contains(&named), "without {named}: {log}");
    }
}

/// The visible commands and, for each, its long flags.
fn commands_and_flags() -> Vec<(String, Vec<String>)> {
    let mut top = Cli::command();
    top.build();
    top.get_subcommands()
        .filter(|command| !command.is_hide_set() && command.get_name() != "help")
        .map(|command| {
            let flags = command
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .filter_map(|arg| arg.get_long())
                .map(|long| format!("--{long}"))
                .collect();
            (command.get_name().to_string(), flags)
        })
        .collect()
}

fn generate(what: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("igmp-snoop-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let status = Command::new(daemon_binary())
        .args(["generate", what, "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn the_manual_pages_cover_every_command_and_flag() {
    let out = generate("man");
    // roff escapes every hyphen.
    let page = |name: &str| {
        fs::read_to_string(out.join(name))
            .unwrap()
            .replace("\\-", "-")
    };
    let top = page("igmp-snoop.8");
    for (command, flags) in commands_and_flags() {
        assert!(
            top.contains(&format!("igmp-snoop-{command}(8)")),
            "{command}"
        );
        let own = page(&format!("igmp-snoop-{command}.8"));
        for flag in flags {
            assert!(own.contains(&flag), "igmp-snoop-{command}.8 lacks {flag}");
        }
    }
    fs::remove_dir_all(out).unwrap();
}

#[test]
fn the_completions_offer_every_command_and_flag() {
    let out = generate("completions");
    for file in ["igmp-snoop.bash", "_igmp-snoop", "igmp-snoop.fish"] {
        let script = fs::read_to_string(out.join(file)).unwrap();
        for (command, flags) in commands_and_flags() {
            assert!(script.contains(&command), "{file} lacks {command}");
            for flag in flags {
                // fish names a long flag `-l iface`, the others `--iface`.
                let fish = format!("-l {}", &flag[2..]);
                assert!(
                    script.contains(&flag) || script.contains(&fish),
                    "{file} lacks {command} {flag}"
                );
            }
        }
    }
    fs::remove_dir_all(out).unwrap();
}

#[test]
fn systemd_accepts_the_unit() {
    let unit = fs::read_to_string(UNIT).unwrap();
    // verify wants ExecStart's binary to exist: the built one stands in.
    let unit = unit.replace(
        "ExecStart=/usr/bin/igmp-snoop ",
        &format!("ExecStart={} ", daemon_binary().display()),
    );
    let dir = std::env::temp_dir().join(format!("igmp-snoop-unit-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("igmp-snoop.service");
    fs::write(&path, unit).unwrap();
    // --man=no: the pages it names are installed with the package, not here.
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    fs::remove_dir_all(dir).unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `cargo xtask install` of the debug build (which the tests use, so nothing
/// is built) under /usr/local in a staging root; returns what it printed.
fn xtask_install(destdir: &Path) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["xtask", "install", "--debug", "--prefix", "/usr/local"])
        .arg("--destdir")
        .arg(destdir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn install_lays_out_the_prefix_and_keeps_an_existing_configuration() {
    let root = std::env::temp_dir().join(format!("igmp-snoop-root-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let printed = xtask_install(&root);
    for path in [
        "usr/local/bin/igmp-snoop",
        "usr/local/share/man/man8/igmp-snoop.8",
        "usr/local/share/man/man8/igmp-snoop-run.8",
        "usr/local/share/bash-completion/completions/igmp-snoop",
        "usr/local/share/zsh/site-functions/_igmp-snoop",
        "usr/local/share/fish/vendor_completions.d/igmp-snoop.fish",
        "usr/local/lib/systemd/system/igmp-snoop.service",
        "etc/igmp-snoop/igmp-snoop.toml",
    ] {
        let file = root.join(path);
        assert!(file.metadata().is_ok_and(|meta| meta.len() > 0), "{path}");
        assert!(
            printed.contains(&file.display().to_string()),
            "unsaid: {path}"
        );
    }
    let unit =
        fs::read_to_string(root.join("usr/local/lib/systemd/system/igmp-snoop.service")).unwrap();
    assert!(
        unit.contains(
            "\nExecStart=/usr/local/bin/igmp-snoop run --config /etc/igmp-snoop/igmp-snoop.toml\n"
        ),
        "{unit}"
    );
    let version = Command::new(root.join("usr/local/bin/igmp-snoop"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());

    // An operator's own configuration survives the next install.
    let config = root.join("etc/igmp-snoop/igmp-snoop.toml");
    fs::write(&config, "interfaces = [\"swp1\"]\n").unwrap();
    let printed = xtask_install(&root);
    assert!(printed.contains("kept"), "{printed}");
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "interfaces = [\"swp1\"]\n"
    );
    fs::remove_dir_all(root).unwrap();
}
