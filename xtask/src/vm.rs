//! `cargo xtask vm`: boots a stock kernel (kernels.rs) in qemu and runs one
//! command in it as root, at the current directory's path, with the host root
//! shared read-only under a tmpfs overlay. It owns the qemu command line and
//! the run directory shared with the guest (command in, status out); what the
//! guest does at boot is guest/init.sh.
//!
//! The command's stdout and stderr come back on two virtio ports, so the
//! kernel's console (kept in the run directory, printed only when the guest
//! fails) never mixes with them. Exit status: the command's; 124 when the
//! guest timed out, 125 when it panicked or stopped without a status, 130 on
//! Ctrl-C. Always TCG: this machine kind's /dev/kvm (PVM) runs only patched
//! guest kernels, and a stock one hangs under it.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc, Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::kernels::{self, Kernel, Series};

#[derive(Args)]
pub struct VmArgs {
    /// The guest's kernel series.
    #[arg(long, value_enum)]
    kernel: Series,
    /// virtio-net NICs, wired in pairs: the 1st and 2nd share a qemu hub (a
    /// cable between them), the 3rd and 4th, and so on.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=16))]
    nics: u8,
    /// Guest memory, as qemu's -m takes it.
    #[arg(long, default_value = "4G")]
    memory: String,
    /// Seconds from boot until the guest is stopped and counted as failed.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Print the kernel's console, not quiet, on stderr after the run.
    #[arg(long)]
    console: bool,
    /// The command and its arguments (no shell: use `sh -c '...'` for one).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Environment variables passed into the guest, by prefix (the guest's
/// environment is otherwise PATH, HOME and TERM=dumb).
const FORWARDED_ENV: &[&str] = &["RUST_", "IGMP_SNOOP_"];
/// Console lines printed when a guest fails.
const CONSOLE_LINES: usize = 40;

pub fn run(args: &VmArgs) -> Result<i32> {
    let guest = Guest {
        kernel: kernels::ensure(args.kernel)?,
        nics: args.nics,
        memory: args.memory.clone(),
        cpus: 2,
        timeout: Duration::from_secs(args.timeout),
        console: args.console,
    };
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut stdout = std::io::stdout();
    let outcome = guest.run(&cwd, &args.command, &mut |line| {
        let _ = stdout.write_all(line);
        let _ = stdout.flush();
    })?;
    if let Some(problem) = outcome.problem(&guest) {
        let hint = match outcome {
            Outcome::TimedOut(_) => "; raise --timeout if it was only slow",
            _ => "",
        };
        eprintln!("vm: {problem}{hint}");
    }
    Ok(outcome.code())
}

/// One guest machine's shape.
pub struct Guest {
    pub kernel: Kernel,
    pub nics: u8,
    pub memory: String,
    pub cpus: u8,
    pub timeout: Duration,
    /// Print the whole console, with every kernel message, after the run.
    pub console: bool,
}

/// How a guest run ended.
pub enum Outcome {
    /// The command exited with this status.
    Exited(i32),
    /// The kernel panicked; the console's panic line.
    Panicked(String),
    /// The timeout passed first.
    TimedOut(Duration),
    /// The guest stopped with no status: init failed, or qemu did (its status).
    Lost(Option<i32>),
    /// Ctrl-C.
    Interrupted,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::TimedOut(_) => 124,
            Outcome::Panicked(_) | Outcome::Lost(_) => 125,
            Outcome::Interrupted => 130,
        }
    }

    /// One line saying what went wrong with the guest itself, if anything did.
    pub fn problem(&self, guest: &Guest) -> Option<String> {
        let kernel = &guest.kernel.version;
        match self {
            Outcome::Exited(_) => None,
            Outcome::Panicked(line) => Some(format!("the {kernel} guest panicked: {line}")),
            Outcome::TimedOut(after) => Some(format!(
                "the {kernel} guest timed out after {} s",
                after.as_secs()
            )),
            Outcome::Lost(None) => Some(format!(
                "the {kernel} guest stopped without the command's status (see the console above)"
            )),
            Outcome::Lost(Some(status)) => Some(format!(
                "qemu exited with status {status} before the {kernel} guest ran the command"
            )),
            Outcome::Interrupted => Some("interrupted".into()),
        }
    }
}

impl Guest {
    /// Boots, runs `command` in `cwd` and hands each line of its stdout to
    /// `on_stdout` as it comes; its stderr goes to ours. On a failure of the
    /// guest itself, the console's last lines go to stderr.
    pub fn run(
        &self,
        cwd: &Path,
        command: &[String],
        on_stdout: &mut dyn FnMut(&[u8]),
    ) -> Result<Outcome> {
        let dir = RunDir::create()?;
        fs::write(dir.path.join("command.sh"), command_script(cwd, command))?;
        let initramfs = dir.path.join("initramfs.cpio");
        fs::write(&initramfs, crate::initramfs::build(&self.kernel)?)?;
        let interrupted = interrupt_flag()?;

        let mut qemu = self
            .qemu(&dir.path, &initramfs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running qemu-system-x86_64 (`cargo xtask setup` installs qemu-system-x86)")?;
        // The guest's stderr and qemu's own messages, passed on as they come.
        let stderr = qemu.stderr.take().expect("piped stderr");
        let stderr_copier = std::thread::spawn(move || {
            for_each_line(stderr, |line| {
                // Hubs are the cables between NICs, on purpose unconnected to the host.
                if !line.ends_with(b"is not connected to host network\n") {
                    let _ = std::io::stderr().write_all(&line);
                }
                true
            })
        });
        let stdout = qemu.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel::<Vec<u8>>();
        let reader =
            std::thread::spawn(move || for_each_line(stdout, |line| lines.send(line).is_ok()));

        let started = Instant::now();
        let mut stopped = None;
        let qemu_status = loop {
            match received.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => on_stdout(&line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // qemu closed its stdout: it is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
            if let Some(status) = qemu.try_wait()? {
                break status;
            }
            if interrupted.load(Ordering::SeqCst) {
                stopped = Some(Outcome::Interrupted);
            } else if started.elapsed() > self.timeout {
                stopped = Some(Outcome::TimedOut(self.timeout));
            }
            if stopped.is_some() {
                let _ = qemu.kill();
                break qemu.wait()?;
            }
        };
        let _ = reader.join();
        let _ = stderr_copier.join();
        for line in received.try_iter() {
            on_stdout(&line);
        }

        // Ctrl-C reaches qemu too, which may have exited on it first.
        if interrupted.load(Ordering::SeqCst) {
            stopped = Some(Outcome::Interrupted);
        }
        let outcome = match stopped {
            Some(outcome) => outcome,
            None => match fs::read_to_string(dir.path.join("status")) {
                Ok(status) => Outcome::Exited(
                    status
                        .trim()
                        .parse()
                        .with_context(|| format!("the guest's status {status:?}"))?,
                ),
                Err(_) => {
                    let console = fs::read_to_string(dir.path.join("console.log"));
                    let panic = console.ok().and_then(|text| {
                        text.lines()
                            .find(|line| line.contains("Kernel panic"))
                            .map(|line| line.trim().to_owned())
                    });
                    match panic {
                        Some(line) => Outcome::Panicked(line),
                        None if qemu_status.success() => Outcome::Lost(None),
                        None => Outcome::Lost(qemu_status.code()),
                    }
                }
            },
        };
        let console = fs::read_to_string(dir.path.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = console.lines().collect();
        let shown = if self.console {
            &lines[..]
        } else if matches!(outcome, Outcome::Exited(_) | Outcome::Interrupted) {
            &[][..]
        } else {
            // From just before the first sign of trouble, else the last lines.
            let trouble = lines.iter().position(|line| {
                ["Kernel panic", "BUG:", "Oops:", "guest init failed"]
                    .iter()
                    .any(|sign| line.contains(sign))
            });
            let from = trouble.map_or(lines.len().saturating_sub(CONSOLE_LINES), |at| {
                at.saturating_sub(5)
            });
            &lines[from..lines.len().min(from + CONSOLE_LINES)]
        };
        if !shown.is_empty() {
            eprintln!("--- the {} guest's console ---", self.kernel.version);
            for line in shown {
                eprintln!("{}", line.trim_end_matches('\r'));
            }
            eprintln!("---");
        }
        Ok(outcome)
    }

    fn qemu(&self, run_dir: &Path, initramfs: &Path) -> Command {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-M", "q35,accel=tcg", "-cpu", "max"])
            .args(["-smp", &self.cpus.to_string(), "-m", &self.memory])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(self.kernel.image())
            .arg("-initrd")
            .arg(initramfs)
            // panic=-1: reboot at once, which -no-reboot turns into qemu exiting.
            .arg("-append")
            .arg(format!(
                "console=ttyS0 {} panic=-1 rdinit=/init",
                if self.console {
                    "loglevel=7"
                } else {
                    "quiet loglevel=4"
                }
            ))
            .arg("-serial")
            .arg(format!("file:{}", run_dir.join("console.log").display()))
            // The command's output on qemu's stdout and stderr, both pipes to
            // us. Files, not a stdio chardev: that one disconnects the port
            // when stdin ends, and the guest's writes then block.
            .args(["-chardev", "file,id=out,path=/proc/self/fd/1,append=on"])
            .args(["-chardev", "file,id=err,path=/proc/self/fd/2,append=on"])
            .args(["-device", "virtio-serial-pci,id=ports"])
            .args(["-device", "virtserialport,bus=ports.0,chardev=out,name=out"])
            .args(["-device", "virtserialport,bus=ports.0,chardev=err,name=err"]);
        let shares = [
            ("host", Path::new("/"), true),
            ("modules", &*self.kernel.modules(), true),
            ("run", run_dir, false),
        ];
        for (tag, path, readonly) in shares {
            // multidevs=remap: the host root spans several filesystems whose
            // inode numbers would otherwise collide in the guest.
            let mut fsdev = format!(
                "local,id={tag},path={},security_model=none,multidevs=remap",
                path.display()
            );
            if readonly {
                fsdev.push_str(",readonly=on");
            }
            qemu.args(["-fsdev", &fsdev]).args([
                "-device",
                &format!("virtio-9p-pci,fsdev={tag},mount_tag={tag}"),
            ]);
        }
        for nic in 0..self.nics {
            // The virtio_net offloads off and multiqueue with enough vectors:
            // what the driver wants before it takes a native XDP program.
            qemu.args(["-netdev", &format!("hubport,id=nic{nic},hubid={}", nic / 2)])
                .args([
                    "-device",
                    &format!(
                        "virtio-net-pci,netdev=nic{nic},mac=52:54:00:12:34:{:02x},romfile=,\
                         guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,mq=on,vectors=6",
                        nic + 1
                    ),
                ]);
        }
        qemu
    }
}

/// The script init.sh runs: the directory, the forwarded environment, the command.
fn command_script(cwd: &Path, command: &[String]) -> String {
    let mut script = format!("cd {} || exit\n", quote(&cwd.to_string_lossy()));
    for (name, value) in std::env::vars() {
        if FORWARDED_ENV.iter().any(|prefix| name.starts_with(prefix)) {
            script.push_str(&format!("export {name}={}\n", quote(&value)));
        }
    }
    let words: Vec<String> = command.iter().map(|word| quote(word)).collect();
    script.push_str(&format!("exec {}\n", words.join(" ")));
    script
}

/// `word` as one sh word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Set by Ctrl-C, so that qemu is stopped and the run directory removed.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(Arc::clone(flag));
    }
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    Ok(Arc::clone(FLAG.get_or_init(|| flag)))
}

/// A directory shared with one guest (9p tag `run`), removed on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "igmp-snoop-vm.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Hands each line of `input` (its newline kept) to `each` until the input
/// ends or `each` returns false.
fn for_each_line(input: impl std::io::Read, mut each: impl FnMut(Vec<u8>) -> bool) {
    let mut input = BufReader::new(input);
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if !each(line) => return,
            Ok(_) => {}
        }
    }
}
