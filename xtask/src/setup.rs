//! `cargo xtask setup`: everything a fresh machine needs, each step skipped
//! when already done.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

/// Debian packages the tests and the demo run: bpftool to read the maps,
/// iproute2 for namespaces, veth and bridges, procps for sysctl, util-linux
/// for nsenter, ethtool to turn GRO on for veths that receive XDP redirects
/// and to check the offloads `auto` reads,
/// netsniff-ng for trafgen, the benchmark's traffic generator, systemd for
/// `systemd-analyze verify`, which checks the unit file, iperf (iperf2) as a
/// multicast client the project did not write; qemu-system-x86,
/// busybox-static (the guest's initramfs), kmod (the guest kernel's module
/// dependencies), xz-utils and zstd (its compressed modules and images) for
/// the guest kernels of `cargo xtask vm` and `test --kernel`; fonts-dejavu-core
/// for the labels of the bench's figures; iputils-ping for `ping -6`, the
/// neighbour-discovery check of the MLD lab tests.
const PACKAGES: &[&str] = &[
    "bpftool",
    "iproute2",
    "procps",
    "util-linux",
    "ethtool",
    "netsniff-ng",
    "systemd",
    "iperf",
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "xz-utils",
    "zstd",
    "fonts-dejavu-core",
    "iputils-ping",
];
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub fn run() -> Result<()> {
    install_packages()?;
    install_rust_src()?;
    install_bpf_linker()?;
    mount_bpffs()?;
    Ok(())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn run_command(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed", args.join(" "));
    }
    Ok(())
}

fn install_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|package| !succeeds("dpkg", &["-s", package]))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    run_command("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!(
            "apt-get install {} failed (setup needs root)",
            missing.join(" ")
        );
    }
    Ok(())
}

/// The nightly toolchain's sysroot, installing the toolchain (with rust-src)
/// first when this machine has none: the eBPF crate is built with it.
fn nightly_sysroot() -> Result<PathBuf> {
    if !succeeds("rustc", &["+nightly", "--version"]) {
        eprintln!("setup: installing the nightly toolchain");
        run_command(
            "rustup",
            &[
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ],
        )?;
    }
    let output = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("running rustc +nightly")?;
    if !output.status.success() {
        bail!("rustc +nightly failed after installing the toolchain");
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// bpf-linker's feature for the LLVM inside the nightly (`llvm-22` for
/// "LLVM version: 22.1.4"): the linker must read the bitcode that rustc emits.
fn bpf_linker_llvm_feature() -> Result<String> {
    let output = Command::new("rustc")
        .args(["+nightly", "-vV"])
        .output()
        .context("running rustc +nightly -vV")?;
    let text = String::from_utf8(output.stdout)?;
    let major = text
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|version| version.split('.').next())
        .context("rustc +nightly -vV names no LLVM version")?;
    Ok(format!("llvm-{major}"))
}

/// `-Z build-std=core` for the BPF target needs the standard library sources.
fn install_rust_src() -> Result<()> {
    let sources = nightly_sysroot()?.join("lib/rustlib/src/rust/library/core");
    if sources.exists() {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    run_command(
        "rustup",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )
}

/// bpf-linker's default feature wants a system LLVM this machine lacks; it
/// builds against the libLLVM shipped in the nightly toolchain, the same LLVM
/// that emits the bitcode it links.
fn install_bpf_linker() -> Result<()> {
    if succeeds("bpf-linker", &["--version"]) {
        return Ok(());
    }
    let llvm_prefix = link_nightly_llvm()?;
    let feature = bpf_linker_llvm_feature()?;
    eprintln!(
        "setup: building bpf-linker against {}",
        llvm_prefix.display()
    );
    let status = Command::new("cargo")
        .args(["install", "bpf-linker", "--no-default-features"])
        .args(["--features", &feature])
        .env("LLVM_PREFIX", &llvm_prefix)
        .status()?;
    if !status.success() {
        bail!("cargo install bpf-linker failed");
    }
    Ok(())
}

/// Makes `<prefix>/lib/libLLVM.so` point at the nightly's libLLVM and returns the prefix.
fn link_nightly_llvm() -> Result<PathBuf> {
    let lib = nightly_sysroot()?.join("lib");
    let llvm = fs::read_dir(&lib)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("libLLVM.so"))
        })
        .with_context(|| format!("no libLLVM.so in {}", lib.display()))?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = Path::new(&home).join(".local/share/rust-llvm");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)?;
    let soname = llvm.file_name().expect("a file name");
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        let link = prefix_lib.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link)?;
    }
    Ok(prefix)
}

fn mount_bpffs() -> Result<()> {
    let path = CString::new("/sys/fs/bpf")?;
    // SAFETY: statfs is plain old data; an all-zero value is valid.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    let mounted = unsafe { libc::statfs(path.as_ptr(), &mut stats) } == 0
        && stats.f_type as i64 == BPF_FS_MAGIC;
    if mounted {
        return Ok(());
    }
    eprintln!("setup: mounting bpffs on /sys/fs/bpf");
    run_command("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"])
}
