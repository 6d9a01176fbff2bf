//! What ships: the systemd unit's command, run under exactly the unit's
//! capabilities, snoops a real join (and is refused without any one of them);
//! the manual pages and completions cover every command and flag; `cargo
//! xtask install` lays a prefix out.

use std::{
    collections::BTreeSet,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use clap::CommandFactory as _;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_tests::{daemon_binary, harness::unique_pin_dir};
use igmp_user::cli::Cli;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/igmp-snoop.service"
);
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../igmp-snoop.example.toml");
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 8, 8, 8);

/// Capability names by number, as in linux/capability.h.
const CAPABILITIES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// What the tests read of the unit's [Service] section.
struct Unit {
    exec_start: Vec<String>,
    /// Lower-case names without `CAP_`, as setpriv takes them.
    bounding: BTreeSet<String>,
    ambient: BTreeSet<String>,
    user: String,
}

impl Unit {
    fn read() -> Self {
        let text = fs::read_to_string(UNIT).unwrap();
        let mut unit = Unit {
            exec_start: Vec::new(),
            bounding: BTreeSet::new(),
            ambient: BTreeSet::new(),
            user: "root".into(),
        };
        for line in text.lines().map(str::trim) {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "ExecStart" => unit.exec_start = value.split_whitespace().map(Into::into).collect(),
                "CapabilityBoundingSet" => add_capabilities(&mut unit.bounding, value),
                "AmbientCapabilities" => add_capabilities(&mut unit.ambient, value),
                "User" => unit.user = value.into(),
                _ => {}
            }
        }
        assert!(!unit.exec_start.is_empty(), "{UNIT}: no ExecStart");
        unit
    }

    /// The unit's command with the built binary and `config` in place of the installed ones.
    fn command_with(&self, config: &Path) -> Vec<String> {
        let mut command = self.exec_start.clone();
        command[0] = daemon_binary().display().to_string();
        let at = command
            .iter()
            .position(|arg| arg == "--config")
            .expect("ExecStart gives --config");
        command[at + 1] = config.display().to_string();
        command
    }
}

/// systemd merges repeated assignments and resets the list on an empty one.
fn add_capabilities(set: &mut BTreeSet<String>, value: &str) {
    if value.trim().is_empty() {
        set.clear();
    }
    for name in value.split_whitespace() {
        let name = name.strip_prefix("CAP_").expect("capabilities are CAP_*");
        set.insert(name.to_lowercase());
    }
}

/// The example configuration on the lab's ports (eth<n> becomes p<n>) with
/// pins of its own: every option the operator is shown, querier included.
fn lab_config(pin_dir: &Path) -> PathBuf {
    let mut config: toml::Table = toml::from_str(&fs::read_to_string(EXAMPLE).unwrap()).unwrap();
    let on_lab = |name: &str| name.replace("eth", "p");
    let interfaces: Vec<toml::Value> = config["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| on_lab(name.as_str().unwrap()).into())
        .collect();
    config.insert("interfaces".into(), interfaces.into());
    let ports: toml::Table = config["ports"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(name, options)| (on_lab(name), options.clone()))
        .collect();
    config.insert("ports".into(), ports.into());
    config.insert("pin-dir".into(), pin_dir.display().to_string().into());
    let path = pin_dir.with_extension("toml");
    let path = std::env::temp_dir().join(path.file_name().unwrap());
    fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// The unit's command running in the lab's switch namespace as root with
/// only `capabilities` (setpriv, as systemd sets them for a root service:
/// bounding, inheritable and ambient), stopped and cleaned up on drop.
struct UnitDaemon {
    child: Child,
    log: PathBuf,
    config: PathBuf,
    pin_dir: PathBuf,
}

impl UnitDaemon {
    fn start(lab: &Lab, unit: &Unit, capabilities: &BTreeSet<String>) -> Self {
        let pin_dir = unique_pin_dir("unit");
        let config = lab_config(&pin_dir);
        let log = config.with_extension("log");
        let caps: String = std::iter::once("-all".to_string())
            .chain(capabilities.iter().map(|cap| format!("+{cap}")))
            .collect::<Vec<_>>()
            .join(",");
        let command = unit.command_with(&config);
        let output = fs::File::create(&log).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.switch))
            .arg("setpriv")
            .args([
                format!("--inh-caps={caps}"),
                format!("--ambient-caps={caps}"),
                format!("--bounding-set={caps}"),
            ])
            .args(&command)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            config,
            pin_dir,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ok once it adopted the table (it is up), Err(its log) if it exited.
    fn wait_until_up(&mut self) -> Result<(), String> {
        let mut exited = false;
        wait_for(Duration::from_secs(60), || {
            exited = !matches!(self.child.try_wait(), Ok(None));
            exited || self.log().contains("adopting")
        });
        if exited {
            Err(self.log())
        } else {
            Ok(())
        }
    }

    /// The capabilities it runs with (its effective set).
    fn effective_capabilities(&self) -> BTreeSet<String> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let hex = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .unwrap();
        let mask = u64::from_str_radix(hex.trim(), 16).unwrap();
        (0..64)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| CAPABILITIES.get(bit).unwrap_or(&"unknown").to_string())
            .collect()
    }
}

impl Drop for UnitDaemon {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on a child we own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = igmp_user::loader::remove_pins(&self.pin_dir);
        let _ = fs::remove_file(&self.log);
        let _ = fs::remove_file(&self.config);
    }
}

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
