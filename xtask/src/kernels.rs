//! The stock kernels the guest matrix boots: Debian's 6.1 and 6.12 images,
//! downloaded with apt and unpacked once into a cache outside the checkout
//! (`$IGMP_SNOOP_KERNELS`, else /var/cache/igmp-snoop/kernels), so fresh
//! clones reuse them. One directory per series, as `dpkg -x` lays a package
//! out, plus the modules.dep the package does not ship and the image
//! decompressed (`boot/vmlinux-<version>`, booted through its PVH entry: TCG
//! takes seconds to run the bzImage's own decompressor). It never installs a
//! kernel into the host's /boot or /lib/modules.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

/// Overrides the cache directory.
pub const CACHE_ENV: &str = "IGMP_SNOOP_KERNELS";
const DEFAULT_CACHE: &str = "/var/cache/igmp-snoop/kernels";

/// A kernel series CI tests; the newest image Debian has for it is the one used.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Series {
    /// Linux 6.1 LTS, Debian 12's kernel.
    #[value(name = "6.1")]
    V6_1,
    /// Linux 6.12 LTS, the kernel of Debian 13 and RHEL 10 (from bookworm's archive).
    #[value(name = "6.12")]
    V6_12,
}

impl Series {
    pub const ALL: [Series; 2] = [Series::V6_1, Series::V6_12];

    pub fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// Debian's metapackage that depends on the series' newest image.
    fn metapackage(self) -> &'static str {
        match self {
            Series::V6_1 => "linux-image-amd64",
            Series::V6_12 => "linux-image-6.12-amd64",
        }
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One unpacked kernel: `<root>/boot/vmlinu[xz]-<version>` and `<root>/lib/modules/<version>/`.
#[derive(Clone)]
pub struct Kernel {
    pub version: String,
    pub root: PathBuf,
}

impl Kernel {
    /// What qemu boots: the decompressed ELF if there is one, else the bzImage.
    pub fn image(&self) -> PathBuf {
        let elf = self
            .root
            .join("boot")
            .join(format!("vmlinux-{}", self.version));
        if elf.exists() {
            return elf;
        }
        self.bzimage()
    }

    fn bzimage(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.version))
    }

    /// The directory the guest mounts as /usr/lib/modules.
    pub fn modules(&self) -> PathBuf {
        self.root.join("lib/modules")
    }
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// The series' kernel from the cache, downloaded and unpacked first if missing.
pub fn ensure(series: Series) -> Result<Kernel> {
    let root = cache_dir().join(series.name());
    if version_in(&root)?.is_none() {
        unpack(series, &root)?;
    }
    let version = version_in(&root)?
        .with_context(|| format!("{}: no boot/vmlinuz-* after unpacking", root.display()))?;
    let kernel = Kernel { version, root };
    if !kernel
        .image()
        .ends_with(format!("vmlinux-{}", kernel.version))
    {
        decompress(&kernel)?;
    }
    Ok(kernel)
}

/// The version of the one image under `<root>/boot`, or None if there is none.
fn version_in(root: &Path) -> Result<Option<String>> {
    let boot = root.join("boot");
    if !boot.exists() {
        return Ok(None);
    }
    let mut versions: Vec<String> = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_owned)
        })
        .collect();
    match versions.len() {
        0 => Ok(None),
        1 => Ok(versions.pop()),
        _ => bail!(
            "{}: several kernel images; remove the directory and run `cargo xtask setup` again",
            boot.display()
        ),
    }
}

/// Downloads the series' unsigned image into `<root>.partial`, unpacks it,
/// writes modules.dep and renames the result to `root`, so an interrupted
/// download leaves no half kernel behind.
fn unpack(series: Series, root: &Path) -> Result<()> {
    let partial = root.with_file_name(format!("{series}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| {
        format!(
            "{}: cannot create the kernel cache; run as root or set {CACHE_ENV} to a writable directory",
            partial.display()
        )
    })?;
    eprintln!(
        "setup: downloading the {series} kernel into {}",
        root.display()
    );
    run(Command::new("apt-get").args(["update", "-q"]))?;
    let image = image_package(series)?;
    // The unsigned package holds the same image and modules without the
    // signed-shim dependencies; older archives may have only the signed one.
    // As root into a root-owned directory: apt's _apt sandbox user could not write there.
    let download = ["download", "-q", "-o", "APT::Sandbox::User=root"];
    let downloaded = Command::new("apt-get")
        .args(download)
        .arg(format!("{image}-unsigned"))
        .current_dir(&partial)
        .status()
        .is_ok_and(|status| status.success());
    if !downloaded {
        run(Command::new("apt-get")
            .args(download)
            .arg(&image)
            .current_dir(&partial))?;
    }
    let deb = fs::read_dir(&partial)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("{}: apt-get download left no .deb", partial.display()))?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    fs::remove_file(&deb)?;
    let version = version_in(&partial)?
        .with_context(|| format!("{}: the package holds no boot/vmlinuz-*", deb.display()))?;
    // Debian's packages leave modules.dep to the postinst; modprobe needs it.
    run(Command::new("depmod").arg("-b").arg(&partial).arg(&version))?;
    fs::rename(&partial, root)
        .with_context(|| format!("renaming {} to {}", partial.display(), root.display()))?;
    Ok(())
}

/// Writes `boot/vmlinux-<version>`, the ELF inside the bzImage, when the
/// payload is xz or zstd (Debian's 6.1 and 6.12); otherwise leaves the
/// bzImage to be booted as it is.
fn decompress(kernel: &Kernel) -> Result<()> {
    let bzimage = fs::read(kernel.bzimage())?;
    let Some(payload) = bzimage_payload(&bzimage) else {
        return Ok(());
    };
    let tool = if payload.starts_with(b"\xfd7zXZ\0") {
        "xz"
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        return Ok(());
    };
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {tool} (`cargo xtask setup` installs it)"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &payload));
    let output = child.wait_with_output()?;
    let _ = writer.join();
    if !output.status.success() || !output.stdout.starts_with(b"\x7fELF") {
        bail!(
            "{}: {tool} did not give the kernel's ELF; remove {} and run `cargo xtask setup` again",
            kernel.bzimage().display(),
            kernel.root.display()
        );
    }
    let elf = kernel
        .root
        .join("boot")
        .join(format!("vmlinux-{}", kernel.version));
    let partial = elf.with_file_name(format!("vmlinux-{}.partial", kernel.version));
    fs::write(&partial, &output.stdout)?;
    fs::rename(&partial, &elf)?;
    Ok(())
}

/// The compressed kernel inside a bzImage, from the boot protocol's setup
/// header (payload_offset, payload_length), without the 4-byte size the
/// kernel's build appends to it.
fn bzimage_payload(bzimage: &[u8]) -> Option<&[u8]> {
    let u32_at = |at: usize| -> Option<usize> {
        let bytes = bzimage.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    if bzimage.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let setup_sectors = match *bzimage.get(0x1f1)? {
        0 => 4,
        sectors => sectors as usize,
    };
    let start = (setup_sectors + 1) * 512 + u32_at(0x248)?;
    let length = u32_at(0x24c)?.checked_sub(4)?;
    bzimage.get(start..start + length)
}

/// The versioned image package the series' metapackage depends on
/// (`linux-image-amd64` → `linux-image-6.1.0-57-amd64`).
fn image_package(series: Series) -> Result<String> {
    let meta = series.metapackage();
    let output = Command::new("apt-cache")
        .args(["depends", meta])
        .output()
        .context("running apt-cache")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .find(|name| {
            name.strip_prefix("linux-image-")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .with_context(|| {
            format!("{meta}: apt-cache names no linux-image-<version> it depends on; is the Debian archive in the apt sources?")
        })
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed");
    }
    Ok(())
}
