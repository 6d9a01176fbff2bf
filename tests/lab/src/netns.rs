//! Network namespaces and the commands run in them.

use std::{fs::File, os::fd::AsRawFd, process::Command};

use anyhow::{bail, Context as _, Result};

pub fn add(name: &str) -> Result<()> {
    delete(name);
    run(&["ip", "netns", "add", name])
}

/// Deletes a namespace; its veth ends go with it.
pub fn delete(name: &str) {
    let _ = Command::new("ip").args(["netns", "delete", name]).output();
}

/// Runs a command, failing with its stderr if it fails.
pub fn run(args: &[&str]) -> Result<()> {
    run_output(args).map(drop)
}

/// Runs a command and returns its stdout.
pub fn run_output(args: &[&str]) -> Result<String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `work` on a thread that has entered namespace `name`. Sockets made
/// there stay in that namespace whichever thread uses them later.
pub fn in_netns<T: Send>(name: &str, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let netns = File::open(&path).with_context(|| format!("opening {path}"))?;
                // SAFETY: setns on this thread only, with a valid namespace fd.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns({path}): {}", std::io::Error::last_os_error());
                }
                work()
            })
            .join()
            .expect("namespace thread panicked")
    })
}
