//! What ships: the systemd unit's command, run under exactly the unit's
//! capabilities, snoops a real join (and is refused without any one of them);
//! the manual pages and completions cover every command and flag; `cargo
//! xtask install` lays a prefix out; the unit tells systemd when every
//! port is attached; the maintainer scripts leave no program on a port and
//! no pin behind.
//!
//! Lab tier (`Lab`): the unit's command and the maintainer scripts run in a
//! lab's switch namespace. The checks of the manual pages, completions, unit
//! file and install layout need no namespace and stay here with their subject.

use std::{
    fs,
    net::Ipv4Addr,
    os::unix::{fs::PermissionsExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use clap::CommandFactory as _;
use igmp_lab::{wait_for, BridgeSnooping, Lab};
use igmp_tests::{
    daemon_binary,
    service::{Unit, UnitDaemon, UNIT},
    snooped::program_attached,
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

/// `igmp-snoop generate what` into a directory of its own (tests run in parallel).
fn generate(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("igmp-snoop-{what}-{}-{n}", std::process::id()));
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
    for section in ["EXAMPLES", "FILES"] {
        assert!(
            top.contains(&format!(".SH {section}")),
            "igmp-snoop.8 lacks {section}"
        );
    }
    let run = page("igmp-snoop-run.8");
    for path in [
        "/etc/igmp-snoop/igmp-snoop.toml",
        "/usr/share/doc/igmp-snoop/examples/igmp-snoop.toml",
        "/sys/fs/bpf/igmp-snoop",
        "/run/igmp-snoop",
    ] {
        assert!(top.contains(path), "igmp-snoop.8 FILES lacks {path}");
        assert!(run.contains(path), "igmp-snoop-run.8 FILES lacks {path}");
    }
    assert!(
        top.contains("\\fBigmp-snoop.toml\\fR(5)"),
        "igmp-snoop.8 names igmp-snoop.toml(5)"
    );
    fs::remove_dir_all(out).unwrap();
}

/// Every key of the example configuration, as `table.key` (`ports.NAME.key`
/// for a port's).
fn example_keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, keys: &mut Vec<String>) {
        for (key, value) in table {
            let path = match prefix {
                "ports" => "ports.NAME".to_string(),
                "" => key.clone(),
                _ => format!("{prefix}.{key}"),
            };
            match value.as_table() {
                Some(inner) => walk(&path, inner, keys),
                None => keys.push(path),
            }
        }
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../igmp-snoop.example.toml");
    let table: toml::Table = toml::from_str(&fs::read_to_string(example).unwrap()).unwrap();
    let mut keys = Vec::new();
    walk("", &table, &mut keys);
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn the_configuration_page_names_every_key_of_the_example() {
    let out = generate("man");
    let page = fs::read_to_string(out.join("igmp-snoop.toml.5"))
        .expect("igmp-snoop.toml.5 is generated")
        .replace("\\-", "-");
    assert!(page.starts_with(".TH IGMP-SNOOP.TOML 5"), "{page}");
    for key in example_keys() {
        let (section, name) = key.rsplit_once('.').unwrap_or(("", &key));
        if !section.is_empty() {
            assert!(
                page.contains(&format!("[{section}]")),
                "no [{section}] section"
            );
        }
        assert!(
            page.contains(&format!("\\fB{name}\\fR")),
            "igmp-snoop.toml.5 lacks {key}"
        );
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

/// What bash offers for `words` (the last one being completed) with the
/// generated completion loaded, calling the function its `complete -F` names,
/// run in `cwd`.
fn bash_offers(script: &Path, words: &[&str], cwd: &Path) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        r#"source '{}'
function=$(complete -p igmp-snoop | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=({})
COMP_CWORD={}
"$function" igmp-snoop "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_options_commands_and_ports() {
    let out = generate("completions");
    let script = out.join("igmp-snoop.bash");
    // A file that must not be offered as a port.
    fs::write(out.join("not-a-port"), "").unwrap();
    let commands = bash_offers(&script, &["igmp-snoop", ""], &out);
    assert!(commands.contains(&"run".to_string()), "{commands:?}");
    assert!(!commands.contains(&"generate".to_string()), "{commands:?}");
    let options = bash_offers(&script, &["igmp-snoop", "run", "--"], &out);
    for flag in ["--iface", "--config", "--metrics-addr", "--pin-dir"] {
        assert!(
            options.contains(&flag.to_string()),
            "run --<TAB>: {options:?}"
        );
    }
    let detach = bash_offers(&script, &["igmp-snoop", "detach", "--"], &out);
    assert!(detach.contains(&"--pin-dir".to_string()), "{detach:?}");
    let interfaces: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for flag in ["--iface", "-i", "--router-port", "--fast-leave"] {
        let mut ports = bash_offers(&script, &["igmp-snoop", "run", flag, ""], &out);
        ports.sort();
        let mut expected = interfaces.clone();
        expected.sort();
        assert_eq!(ports, expected, "run {flag} <TAB>");
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
        "usr/local/share/man/man5/igmp-snoop.toml.5",
        "usr/local/share/doc/igmp-snoop/examples/igmp-snoop.toml",
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

const PRERM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/prerm");
const POSTRM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/postrm");
const CARGO_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../igmp-user/Cargo.toml");

/// The unit's lines that start with `key=`, values only.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(Into::into)
        .collect()
}

#[test]
fn the_unit_is_notify_waits_for_the_network_and_has_no_reload() {
    let unit = fs::read_to_string(UNIT).unwrap();
    assert_eq!(unit_values(&unit, "Type"), ["notify"]);
    let words = |key: &str| -> Vec<String> {
        unit_values(&unit, key)
            .iter()
            .flat_map(|value| value.split_whitespace().map(String::from))
            .collect()
    };
    assert!(words("Wants").contains(&"network-online.target".into()));
    assert!(words("After").contains(&"network-online.target".into()));
    // SIGHUP stops the daemon: a reload would stop it.
    assert!(unit_values(&unit, "ExecReload").is_empty());
    assert!(unit.contains("No ExecReload"), "the unit says why not");
}

/// A unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("igmp-snoop-{tag}-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self { socket, path }
    }

    /// The next message, or what the daemon logged if none came.
    fn next(&self, log: &Path) -> String {
        let mut buffer = [0u8; 512];
        match self.socket.recv(&mut buffer) {
            Ok(len) => String::from_utf8_lossy(&buffer[..len]).into_owned(),
            Err(error) => panic!(
                "no notification ({error}):\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A configuration on the lab's ports that keeps the program attached at stop.
fn keep_attached_config(lab: &Lab, pin_dir: &Path) -> PathBuf {
    let ports: Vec<String> = lab
        .hosts
        .iter()
        .map(|host| format!("{:?}", host.port))
        .collect();
    let path = pin_dir.with_extension("toml");
    let path = std::env::temp_dir().join(path.file_name().unwrap());
    fs::write(
        &path,
        format!(
            "interfaces = [{}]\npin-dir = {:?}\nkeep-attached = true\n",
            ports.join(", "),
            pin_dir.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// A maintainer script with its fixed paths replaced, run by sh in the
/// lab's switch namespace with the built binary first on PATH as `igmp-snoop`.
fn maintainer_script(
    lab: &Lab,
    script: &str,
    argument: &str,
    paths: &[(&str, &Path)],
) -> std::process::Output {
    let work = std::env::temp_dir().join(format!(
        "igmp-snoop-script-{}-{argument}",
        std::process::id()
    ));
    let bin = work.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let _ = fs::remove_file(bin.join("igmp-snoop"));
    std::os::unix::fs::symlink(daemon_binary(), bin.join("igmp-snoop")).unwrap();
    let mut text = fs::read_to_string(script).unwrap();
    for (installed, here) in paths {
        text = text.replace(installed, &here.display().to_string());
    }
    let copy = work.join("script");
    fs::write(&copy, text).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.switch))
        .args(["sh", "-e"])
        .arg(&copy)
        .arg(argument)
        .env("PATH", path)
        .output()
        .unwrap();
    fs::remove_dir_all(work).unwrap();
    output
}

#[test]
fn ready_once_every_port_is_attached_and_prerm_detaches_a_kept_program() {
    let lab = Lab::new(2, BridgeSnooping::Off).unwrap();
    let pin_dir = igmp_tests::harness::unique_pin_dir("prerm");
    let config = keep_attached_config(&lab, &pin_dir);
    let log = config.with_extension("log");
    let notify = NotifySocket::bind("notify");
    let mut daemon = lab
        .command_in_switch(&daemon_binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify.path)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = notify.next(&log);
    let attached: Vec<bool> = lab
        .hosts
        .iter()
        .map(|host| program_attached(&lab, &host.port))
        .collect();
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let stopping = notify.next(&log);
    daemon.wait().unwrap();
    assert_eq!(ready.trim(), "READY=1");
    assert_eq!(
        attached,
        [true, true],
        "READY=1 before every port was attached"
    );
    assert_eq!(stopping.trim(), "STOPPING=1");
    assert!(program_attached(&lab, &lab.hosts[0].port), "keep-attached");

    let state = std::env::temp_dir().join(format!("igmp-snoop-state-{}", std::process::id()));
    let _ = fs::remove_dir_all(&state);
    let output = maintainer_script(
        &lab,
        PRERM,
        "remove",
        &[
            ("/etc/igmp-snoop/igmp-snoop.toml", &config),
            ("/var/lib/igmp-snoop", &state),
        ],
    );
    let _ = igmp_user::loader::remove_pins(&pin_dir);
    let _ = fs::remove_file(&config);
    let _ = fs::remove_file(&log);
    assert!(output.status.success(), "{output:?}");
    for host in &lab.hosts {
        assert!(
            !program_attached(&lab, &host.port),
            "{} kept the program after prerm remove",
            host.port
        );
    }
    assert!(!pin_dir.exists());
    assert_eq!(
        fs::read_to_string(state.join("pin-dir")).unwrap().trim(),
        pin_dir.display().to_string()
    );
    fs::remove_dir_all(state).unwrap();
}

#[test]
fn postrm_purge_removes_a_recorded_pin_dir_on_bpffs_only() {
    let lab = Lab::new(1, BridgeSnooping::Off).unwrap();
    let state = std::env::temp_dir().join(format!("igmp-snoop-purge-{}", std::process::id()));
    for (pin_dir, removed) in [
        (igmp_tests::harness::unique_pin_dir("purge"), true),
        (state.with_extension("not-bpffs"), false),
    ] {
        fs::create_dir_all(pin_dir.join("links")).unwrap();
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join("pin-dir"), format!("{}\n", pin_dir.display())).unwrap();
        let output = maintainer_script(&lab, POSTRM, "purge", &[("/var/lib/igmp-snoop", &state)]);
        assert!(output.status.success(), "{output:?}");
        assert_eq!(!pin_dir.exists(), removed, "{}", pin_dir.display());
        assert!(!state.exists());
        let _ = fs::remove_dir_all(&pin_dir);
    }
}

#[test]
fn the_package_runs_the_maintainer_scripts_and_names_a_maintainer_address() {
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(CARGO_TOML).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let maintainer = deb["maintainer"].as_str().unwrap();
    assert!(
        maintainer.contains('<') && maintainer.contains('@') && maintainer.ends_with('>'),
        "{maintainer}"
    );
    assert_eq!(deb["maintainer-scripts"].as_str(), Some("../packaging"));
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| {
            let asset = asset.as_array().unwrap();
            (
                asset[0].as_str().unwrap().to_string(),
                asset[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (source, target) in [
        ("target/release/../dist/man/*.5", "usr/share/man/man5/"),
        (
            "../igmp-snoop.example.toml",
            "usr/share/doc/igmp-snoop/examples/igmp-snoop.toml",
        ),
        (
            "../igmp-snoop.example.toml",
            "etc/igmp-snoop/igmp-snoop.toml",
        ),
    ] {
        assert!(
            assets.contains(&(source.into(), target.into())),
            "the package does not install {source} as {target}"
        );
    }
    for script in [PRERM, POSTRM] {
        let text = fs::read_to_string(script).unwrap();
        assert!(text.contains("#DEBHELPER#"), "{script}");
        let mode = fs::metadata(script).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
        let check = Command::new("sh").arg("-n").arg(script).output().unwrap();
        assert!(check.status.success(), "{check:?}");
    }
    let prerm = fs::read_to_string(PRERM).unwrap();
    let stop = prerm
        .find("deb-systemd-invoke stop igmp-snoop.service")
        .unwrap();
    let detach = prerm.find("igmp-snoop detach").unwrap();
    assert!(stop < detach, "prerm stops the service before it detaches");
}
