//! The guest's initramfs, written as a newc cpio archive: static busybox,
//! our PID 1 (`xtask/guest/init.sh`) and the modules it needs before it can
//! mount the host root (virtio PCI and console, 9p, overlay), uncompressed.
//! Built afresh for each boot, which takes milliseconds. Everything else the
//! guest runs comes from the host root; nothing else belongs here.

use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::kernels::Kernel;

const INIT: &str = include_str!("../guest/init.sh");
/// busybox-static's binary: the guest's shell and tools until the host root is mounted.
const BUSYBOX: &str = "/bin/busybox";
/// Loaded in this order by init.sh; modprobe adds their dependencies.
const EARLY_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
];

const DIRECTORY: u32 = 0o040_755;
const EXECUTABLE: u32 = 0o100_755;
const FILE: u32 = 0o100_644;
const CHAR_DEVICE: u32 = 0o020_600;

/// The archive's bytes for this kernel.
pub fn build(kernel: &Kernel) -> Result<Vec<u8>> {
    let busybox = fs::read(BUSYBOX).with_context(|| {
        format!(
            "{BUSYBOX}: cannot read the guest's shell; `cargo xtask setup` installs busybox-static"
        )
    })?;
    let mut archive = Archive::default();
    for dir in [
        "bin", "dev", "proc", "sys", "modules", "lower", "upper", "newroot",
    ] {
        archive.entry(dir, DIRECTORY, &[], (0, 0));
    }
    // The kernel opens /dev/console for PID 1 before devtmpfs is mounted.
    archive.entry("dev/console", CHAR_DEVICE, &[], (5, 1));
    archive.entry("init", EXECUTABLE, INIT.as_bytes(), (0, 0));
    archive.entry("bin/busybox", EXECUTABLE, &busybox, (0, 0));
    let mut order = String::new();
    for module in early_modules(kernel)? {
        let name = module
            .file_name()
            .and_then(|name| name.to_str())
            .context("a module path without a file name")?;
        let name = name.strip_suffix(".xz").unwrap_or(name);
        archive.entry(
            &format!("modules/{name}"),
            FILE,
            &module_bytes(&module)?,
            (0, 0),
        );
        order.push_str(name);
        order.push('\n');
    }
    archive.entry("modules/order", FILE, order.as_bytes(), (0, 0));
    Ok(archive.finish())
}

/// The .ko files of EARLY_MODULES and their dependencies, each once, in load
/// order; modules built into the kernel are left out.
fn early_modules(kernel: &Kernel) -> Result<Vec<std::path::PathBuf>> {
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for module in EARLY_MODULES {
        let output = Command::new("modprobe")
            .arg("-d")
            .arg(&kernel.root)
            .args(["-S", &kernel.version, "--show-depends", module])
            .output()
            .context("running modprobe (`cargo xtask setup` installs kmod)")?;
        if !output.status.success() {
            bail!(
                "{module}: not among the modules of {}: {}",
                kernel.version,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            // "insmod /path/x.ko[.xz] [options]" or "builtin x".
            if let Some(rest) = line.strip_prefix("insmod ") {
                let path = std::path::PathBuf::from(rest.split_whitespace().next().unwrap_or(""));
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
    }
    Ok(paths)
}

/// A module's ELF bytes: busybox's insmod takes no compressed modules.
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|ext| ext == "xz") {
        let output = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .context("running xz (`cargo xtask setup` installs xz-utils)")?;
        if !output.status.success() {
            bail!("{}: xz could not decompress it", path.display());
        }
        return Ok(output.stdout);
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A newc ("070701") cpio archive, as the kernel unpacks it into its rootfs.
#[derive(Default)]
struct Archive {
    bytes: Vec<u8>,
    inode: u32,
}

impl Archive {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], (major, minor): (u32, u32)) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            major,
            minor,
            name.len() as u32 + 1,
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.bytes
    }
}
