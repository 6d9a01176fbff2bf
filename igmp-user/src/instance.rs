//! What `run` needs before it touches anything: the capabilities to load and
//! attach XDP, and the pin directory to itself. A second daemon on the same
//! pins would take the XDP links over and read the ring buffer the first one
//! reads (each seeing half the events), and its exit would detach the ports
//! the first one still serves.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::fd::AsRawFd as _,
    path::Path,
};

use anyhow::{bail, Context as _, Result};

use crate::monitor;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Refuses to go on without CAP_BPF (or CAP_SYS_ADMIN) for the maps and the
/// program, and CAP_NET_ADMIN to attach it: the kernel's own refusal comes
/// later, after the pin directory is made, and names neither.
pub fn check_capabilities() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .context("/proc/self/status: no CapEff line")?;
    let has = |capability: u32| effective & (1 << capability) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !missing.is_empty() {
        bail!(
            "missing capabilities {} to load and attach XDP (run igmp-snoop as root)",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// Held for the daemon's life: an exclusive `flock` on a file next to the
/// monitor socket. The kernel releases it however the daemon ends, SIGKILL
/// included, so a restart is never refused by a dead daemon.
pub struct InstanceLock {
    _file: File,
}

pub fn lock(pin_dir: &Path) -> Result<InstanceLock> {
    let path = monitor::socket_path(pin_dir).with_extension("lock");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
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
            bail!(
                "{}: another igmp-snoop (pid {}) is running on these pins; stop it first, or give another --pin-dir",
                pin_dir.display(),
                pid.trim()
            );
        }
        return Err(error).with_context(|| format!("locking {}", path.display()));
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(InstanceLock { _file: file })
}
