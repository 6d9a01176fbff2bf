//! Builds the XDP program (igmp-ebpf) so that a plain `cargo build` yields a
//! daemon with its kernel half embedded.
//!
//! aya-build would do this too, but it wants the eBPF crate to be a member of
//! this workspace, which makes every host-side `cargo test`/`clippy` compile a
//! `no_std` BPF crate for the host. So the eBPF crate keeps its own workspace
//! and lock file and is built here with the nightly toolchain and bpf-linker
//! (`cargo xtask setup` installs both).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

const TARGET: &str = "bpfel-unknown-none";
const BINARY: &str = "igmp-snoop";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .context("igmp-user has no parent directory")?;
    let ebpf_dir = workspace.join("igmp-ebpf");
    for watched in ["igmp-ebpf/src", "igmp-ebpf/Cargo.toml", "igmp-common/src"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let target_dir = out_dir.join("ebpf-target");
    build(&ebpf_dir, &target_dir)?;
    let object = target_dir.join(TARGET).join("release").join(BINARY);
    std::fs::copy(&object, out_dir.join("igmp-snoop.bpf.o"))
        .with_context(|| format!("copying {}", object.display()))?;
    Ok(())
}

fn build(ebpf_dir: &Path, target_dir: &Path) -> Result<()> {
    let mut cargo = Command::new("rustup");
    cargo
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--release",
            "--target",
            TARGET,
        ])
        .args(["-Z", "build-std=core", "--manifest-path"])
        .arg(ebpf_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        // BTF for the maps (bpftool prints field names) and for aya-log.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    // The host build's compiler settings must not leak into the BPF build.
    for key in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cargo.env_remove(key);
    }
    let output = cargo
        .output()
        .context("running `rustup run nightly cargo`: run `cargo xtask setup` first")?;
    if !output.status.success() {
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            println!("cargo:warning={line}");
        }
        bail!("building the XDP program failed (is bpf-linker installed? run `cargo xtask setup`)");
    }
    Ok(())
}
