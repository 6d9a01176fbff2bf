//! `cargo xtask dist` and `cargo xtask deb`: what an installation is made of,
//! under `target/dist/`, and the Debian package made from it.
//!
//! dist/bin/igmp-snoop           the daemon (XDP program embedded)
//! dist/man/*.8, *.5             igmp-snoop(8), one page per command, igmp-snoop.toml(5)
//! dist/completions/             igmp-snoop.bash, _igmp-snoop, igmp-snoop.fish

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};
use clap::Args;

use crate::{cargo, target_dir, workspace_root};

/// The cargo-deb `deb` installs when it is missing: the newest that builds
/// with this project's stable toolchain (it wants rustc 1.85 or later).
const CARGO_DEB_VERSION: &str = "3.8.0";

#[derive(Args, Clone, Copy)]
pub struct DistArgs {
    /// Package the debug build (quick to make after `cargo xtask build`) into
    /// target/dist-debug instead of the release build into target/dist.
    #[arg(long)]
    pub debug: bool,
}

impl DistArgs {
    pub fn dir(self) -> PathBuf {
        target_dir().join(if self.debug { "dist-debug" } else { "dist" })
    }

    fn profile_dir(self) -> PathBuf {
        target_dir().join(if self.debug { "debug" } else { "release" })
    }
}

/// Builds the daemon and writes the dist directory afresh; returns it.
pub fn dist(args: DistArgs) -> Result<PathBuf> {
    let mut build = vec!["build", "--package", "igmp-user", "--bin", "igmp-snoop"];
    if !args.debug {
        build.push("--release");
    }
    cargo(&build)?;
    let dist = args.dir();
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("emptying {}", dist.display()))?;
    }
    let binary = dist.join("bin/igmp-snoop");
    fs::create_dir_all(dist.join("bin"))?;
    fs::copy(args.profile_dir().join("igmp-snoop"), &binary)
        .context("copying the igmp-snoop binary")?;
    // The pages and completions come from the binary being shipped, so they
    // describe exactly its flags.
    for what in ["man", "completions"] {
        let out = dist.join(what);
        run(Command::new(&binary)
            .args(["generate", what, "--out"])
            .arg(&out)
            .stdout(Stdio::null()))?;
    }
    eprintln!("dist: {}", dist.display());
    Ok(dist)
}

/// Builds the Debian package from a fresh release dist (the assets are listed
/// in igmp-user/Cargo.toml) and prints its contents.
pub fn deb() -> Result<()> {
    install_cargo_deb()?;
    dist(DistArgs { debug: false })?;
    let output = target_dir().join("debian");
    let manifest = workspace_root().join("igmp-user/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let result = Command::new(&cargo)
        .args(["deb", "--no-build", "--manifest-path"])
        .arg(&manifest)
        .arg("--output")
        .arg(&output)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo deb")?;
    if !result.status.success() {
        bail!("cargo deb failed");
    }
    // cargo-deb prints the path of the package it wrote.
    let package = String::from_utf8(result.stdout)?.trim().to_string();
    println!("{package}");
    run(Command::new("dpkg-deb").args(["--contents", &package]))
}

/// cargo-deb is a packaging tool, not a build or test need: installed here on
/// first use rather than by `setup`.
fn install_cargo_deb() -> Result<()> {
    let cargo_binary = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = Command::new(&cargo_binary)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("deb: installing cargo-deb {CARGO_DEB_VERSION}");
    cargo(&[
        "install",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
        "--locked",
    ])
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{command:?} failed");
    }
    Ok(())
}
