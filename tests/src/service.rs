//! The packaged systemd unit, read as systemd reads the parts the tests
//! need, and its command run on a lab as systemd would run it.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use igmp_lab::{wait_for, Lab};

use crate::{daemon_binary, harness::unique_pin_dir};

pub const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/igmp-snoop.service"
);
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../igmp-snoop.example.toml");

/// Capability names by number, as in linux/capability.h.
const CAPABILITIES: &str = "chown dac_override dac_read_search fowner fsetid kill setgid setuid \
    setpcap linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner \
    sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot sys_nice \
    sys_resource sys_time sys_tty_config mknod lease audit_write audit_control setfcap \
    mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf \
    checkpoint_restore";

/// What the tests read of the unit's [Service] section.
pub struct Unit {
    pub exec_start: Vec<String>,
    /// Lower-case names without `CAP_`, as setpriv takes them.
    pub bounding: BTreeSet<String>,
    pub ambient: BTreeSet<String>,
    pub user: String,
}

impl Unit {
    pub fn read() -> Self {
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
pub struct UnitDaemon {
    child: Child,
    log: PathBuf,
    config: PathBuf,
    pub pin_dir: PathBuf,
}

impl UnitDaemon {
    pub fn start(lab: &Lab, unit: &Unit, capabilities: &BTreeSet<String>) -> Self {
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

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ok once it adopted the table (it is up), Err(its log) if it exited.
    pub fn wait_until_up(&mut self) -> Result<(), String> {
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
    pub fn effective_capabilities(&self) -> BTreeSet<String> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let hex = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .unwrap();
        let mask = u64::from_str_radix(hex.trim(), 16).unwrap();
        (0..64)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| {
                let name = CAPABILITIES.split_whitespace().nth(bit);
                name.unwrap_or("unknown").to_string()
            })
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
