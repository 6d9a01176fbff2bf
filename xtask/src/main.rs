//! Project tasks: `cargo xtask setup | build | test | vm | demo | bench | dist | install | deb`.
//!
//! xtask depends on nothing that needs the XDP toolchain, so `setup` can
//! build and run on a machine that has none of it yet.

mod demo;
mod dist;
mod initramfs;
mod install;
mod kernels;
mod matrix;
mod setup;
mod vm;

use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "igmp-snoop project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need, the guest kernels included
    /// (idempotent; quick when done).
    Setup,
    /// Build the daemon with its XDP program.
    Build,
    /// Set up, build, and run every test (needs root: XDP, namespaces, bpffs).
    Test {
        /// Run the guest selection (xtask/src/matrix.rs) inside this stock
        /// kernel instead, under qemu.
        #[arg(long, value_enum, conflicts_with = "matrix")]
        kernel: Option<kernels::Series>,
        /// Run every test on the host, then the guest selection in each kernel.
        #[arg(long, conflicts_with = "args")]
        matrix: bool,
        /// Extra arguments for `cargo test` (a filter, `--nocapture`, ...);
        /// with --kernel: name filters narrow the selection, options go to
        /// each test executable.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a command as root in a guest booted on a stock kernel (qemu), with
    /// the host root read-only under a tmpfs overlay; exits with its status.
    Vm(vm::VmArgs),
    /// Show igmp-snoop at work: a lab of namespaces, or the NICs named with --iface.
    Demo(demo::DemoArgs),
    /// Measure the XDP program's per-frame cost against a no-op program
    /// (writes bench/results.md and .json and draws bench/*.svg; --quick: a
    /// short run, nothing written).
    Bench {
        #[arg(long)]
        quick: bool,
        /// Run one section only (cost, forwarding, live, latency, scale or upgrade); nothing is written.
        #[arg(long, value_name = "SECTION")]
        only: Option<String>,
        /// Measure nothing: draw bench/*.svg again from bench/results.json.
        #[arg(long, conflicts_with_all = ["quick", "only"])]
        plot: bool,
    },
    /// Build the release binary and write target/dist/{bin,man,completions}.
    Dist(dist::DistArgs),
    /// Install a fresh dist, the systemd unit and the example configuration
    /// (as /etc/igmp-snoop/igmp-snoop.toml, never over an existing one).
    Install(install::InstallArgs),
    /// Build a Debian package from a fresh dist (installs cargo-deb if missing).
    Deb,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => {
            setup::run()?;
            for series in kernels::Series::ALL {
                kernels::ensure(series)?;
            }
            Ok(())
        }
        Task::Build => {
            setup::run()?;
            build()
        }
        Task::Test {
            kernel,
            matrix,
            args,
        } => {
            setup::run()?;
            build()?;
            let success = match kernel {
                _ if matrix => matrix::run_matrix()?,
                Some(series) => matrix::run_kernel(series, &args)?.success,
                None => test(&args)?.1,
            };
            if !success {
                bail!("tests failed");
            }
            Ok(())
        }
        Task::Vm(args) => {
            setup::run()?;
            let code = vm::run(&args)?;
            std::process::exit(code)
        }
        Task::Demo(args) => {
            setup::run()?;
            build()?;
            demo::run(&args)
        }
        Task::Bench { quick, only, plot } => {
            let mut args = vec![
                "run",
                "--release",
                "--package",
                "igmp-tests",
                "--bin",
                "bench",
                "--",
            ];
            if plot {
                args.push("--plot");
                return cargo(&args);
            }
            setup::run()?;
            // The lab sections drive the release daemon, as an operator runs it.
            cargo(&["build", "--release", "--package", "igmp-user"])?;
            let daemon = workspace_root().join("target/release/igmp-snoop");
            std::env::set_var("IGMP_SNOOP_BIN", daemon);
            if quick {
                args.push("--quick");
            }
            if let Some(section) = &only {
                args.extend(["--only", section]);
            }
            cargo(&args)
        }
        Task::Dist(args) => {
            setup::run()?;
            dist::dist(args).map(drop)
        }
        Task::Install(args) => {
            setup::run()?;
            install::install(&args)
        }
        Task::Deb => {
            setup::run()?;
            dist::deb()
        }
    }
}

/// Builds the `igmp-snoop` binary (its build script builds the XDP program).
fn build() -> Result<()> {
    cargo(&["build", "--package", "igmp-user", "--bins"])
}

/// Runs the tests of every crate and closes with one line of totals (cargo's
/// own last line is that of whichever test binary ran last); returns them and
/// whether everything passed.
fn test(extra: &[String]) -> Result<(Totals, bool)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut totals = Totals::default();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait()?;
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    let success = status.success() && totals.failed == 0;
    Ok((totals, success))
}

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds the counts of a libtest summary line ("test result: ok. 5 passed; 0 failed; ...").
    fn add(&mut self, line: &str) {
        let Some(summary) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in summary.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(count), Some(kind)) = (words.next(), words.next()) {
                let Ok(count) = count.parse::<u64>() else {
                    continue;
                };
                match kind {
                    "passed" => self.passed += count,
                    "failed" => self.failed += count,
                    _ => {}
                }
            }
        }
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the workspace's.
fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}
