//! What `run` needs before it touches anything: the capabilities to load and
//! attach XDP, and the pin directory to itself. A second daemon on the same
//! pins would take the XDP links over and read the ring buffer the first one
//! reads (each seeing half the events), and its exit would detach the ports
//! the first one still serves.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::{control, monitor};

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Refuses to go on without the capabilities `run` needs, naming each one
/// missing: the kernel's own refusals come later, after the pin directory is
/// made (or a port attached), and name none.
///
/// - CAP_BPF (or CAP_SYS_ADMIN): maps, BTF, the program, the pins.
/// - CAP_PERFMON (or CAP_SYS_ADMIN): without it the verifier refuses the
///   packet-pointer arithmetic the parser does with a variable offset
///   ("pointer arithmetic with it prohibited for !root").
/// - CAP_NET_ADMIN: XDP links and the devmap of egress ports.
/// - CAP_NET_RAW, with the querier only: the AF_PACKET socket queries leave by.
pub fn check_capabilities(querier: bool) -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .context("/proc/self/status: no CapEff line")?;
    let missing = missing_capabilities(effective, querier);
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "capability"
        } else {
            "capabilities"
        };
        bail!(
            "missing {noun} {} (run igmp-snoop as root)",
            english_list(&missing)
        );
    }
    Ok(())
}

fn missing_capabilities(effective: u64, querier: bool) -> Vec<&'static str> {
    let has = |capability: u32| effective & (1 << capability) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if querier && !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    missing
}

/// "A", "A and B", "A, B and C".
fn english_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Held for the daemon's life: an exclusive `flock` on a file next to the
/// monitor socket. The kernel releases it however the daemon ends, SIGKILL
/// included, so a restart is never refused by a dead daemon. A daemon that
/// ends by itself removes the file and its monitor socket, so that
/// `/run/igmp-snoop` holds only what running daemons use.
pub struct InstanceLock {
    /// Open for as long as the lock is held; closing it releases the lock.
    _file: File,
    pin_dir: PathBuf,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Removed while still locked: a starter that opened the old file
        // finds, once it gets the lock, that the path no longer names it.
        let _ = fs::remove_file(monitor::socket_path(&self.pin_dir));
        let _ = fs::remove_file(control::socket_path(&self.pin_dir));
        let _ = fs::remove_file(lock_path(&self.pin_dir));
    }
}

pub fn lock(pin_dir: &Path) -> Result<InstanceLock> {
    try_lock(pin_dir)?.map_err(|pid| {
        anyhow::anyhow!(
            "{}: another igmp-snoop (pid {pid}) is running on these pins; stop it first, or give another --pin-dir",
            pin_dir.display()
        )
    })
}

/// The lock `detach` holds while it removes the pins: a daemon running on
/// them would re-create them, and keep its ports attached.
pub fn lock_to_detach(pin_dir: &Path) -> Result<InstanceLock> {
    try_lock(pin_dir)?.map_err(|pid| {
        anyhow::anyhow!(
            "{}: igmp-snoop (pid {pid}) is running on these pins; stop it (SIGTERM detaches every port) instead",
            pin_dir.display()
        )
    })
}

fn lock_path(pin_dir: &Path) -> PathBuf {
    monitor::socket_path(pin_dir).with_extension("lock")
}

/// The lock, or the pid of the daemon holding it.
fn try_lock(pin_dir: &Path) -> Result<std::result::Result<InstanceLock, String>> {
    let path = lock_path(pin_dir);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let pid = fs::read_to_string(&path).unwrap_or_default();
                return Ok(Err(pid.trim().to_owned()));
            }
            return Err(error).with_context(|| format!("locking {}", path.display()));
        }
        if !names_the_same_file(&path, &file) {
            // The daemon that held it removed it as it stopped: lock the new one.
            continue;
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        return Ok(Ok(InstanceLock {
            _file: file,
            pin_dir: pin_dir.to_path_buf(),
        }));
    }
}

fn names_the_same_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

/// Whether a daemon runs on a pin directory, for the commands that read
/// its tables.
#[derive(Debug, PartialEq, Eq)]
pub enum DaemonState {
    Running { pid: String },
    NotRunning,
}

/// Asks the lock without taking it for long: held means a daemon runs. A
/// lock file nobody may open here is an error, not "not running".
pub fn daemon_state(pin_dir: &Path) -> Result<DaemonState> {
    let path = lock_path(pin_dir);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DaemonState::NotRunning)
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("{}: cannot tell whether a daemon runs", path.display()))
        }
    };
    // SAFETY: flock on a descriptor this function owns; closing it releases it.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(DaemonState::NotRunning);
    }
    let pid = fs::read_to_string(&path).unwrap_or_default();
    Ok(DaemonState::Running {
        pid: pid.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_RUN_NEEDS: u64 =
        1 << CAP_BPF | 1 << CAP_PERFMON | 1 << CAP_NET_ADMIN | 1 << CAP_NET_RAW;

    #[test]
    fn the_querier_alone_needs_cap_net_raw() {
        let without_raw = ALL_RUN_NEEDS & !(1 << CAP_NET_RAW);
        assert!(missing_capabilities(without_raw, false).is_empty());
        assert_eq!(missing_capabilities(without_raw, true), ["CAP_NET_RAW"]);
    }

    #[test]
    fn cap_sys_admin_stands_for_cap_bpf_and_cap_perfmon() {
        let admin = 1 << CAP_SYS_ADMIN | 1 << CAP_NET_ADMIN;
        assert!(missing_capabilities(admin, false).is_empty());
    }

    #[test]
    fn none_names_all_in_one_list() {
        assert_eq!(
            english_list(&missing_capabilities(0, true)),
            "CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_NET_RAW"
        );
    }
}
