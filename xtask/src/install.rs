//! `cargo xtask install`: a fresh dist copied under a prefix, with the
//! systemd unit pointing at the installed binary and the example
//! configuration as /etc/igmp-snoop/igmp-snoop.toml (never over an existing one)
//! and, for the manual pages to point at, share/doc/igmp-snoop/examples/.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use clap::Args;

use crate::{
    dist::{self, DistArgs},
    workspace_root,
};

/// The binary's path in packaging/igmp-snoop.service: the Debian package's.
const UNIT_BINARY: &str = "/usr/bin/igmp-snoop";
/// The configuration is the same file whatever the prefix: the unit and the
/// manual page name it.
const CONFIG: &str = "etc/igmp-snoop/igmp-snoop.toml";

#[derive(Args)]
pub struct InstallArgs {
    /// Where the binary, pages, completions and unit go (PREFIX/bin, PREFIX/share, ...).
    #[arg(long, default_value = "/usr/local", value_name = "DIR")]
    prefix: PathBuf,
    /// A staging root every path is put under (for packaging, or to look first).
    #[arg(long, value_name = "DIR")]
    destdir: Option<PathBuf>,
    #[command(flatten)]
    dist: DistArgs,
}

pub fn install(args: &InstallArgs) -> Result<()> {
    if !args.prefix.is_absolute() {
        bail!("--prefix {}: must be absolute", args.prefix.display());
    }
    let dist = dist::dist(args.dist)?;
    let root = args.destdir.clone().unwrap_or_else(|| PathBuf::from("/"));
    let under = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
    let prefix = under(&args.prefix);
    for (from, to, mode) in file_plan(&dist, &prefix)? {
        copy(&from, &to, mode)?;
    }
    let binary = args.prefix.join("bin/igmp-snoop");
    let unit = under(&unit_dir(&args.prefix)).join("igmp-snoop.service");
    write(&unit, &unit_for(&binary)?, 0o644)?;
    install_config(&root.join(CONFIG))
}

/// (source, destination, mode) of every file taken from the dist as it is.
fn file_plan(dist: &Path, prefix: &Path) -> Result<Vec<(PathBuf, PathBuf, u32)>> {
    let completions = dist.join("completions");
    let mut plan = vec![
        (
            dist.join("bin/igmp-snoop"),
            prefix.join("bin/igmp-snoop"),
            0o755,
        ),
        (
            completions.join("igmp-snoop.bash"),
            prefix.join("share/bash-completion/completions/igmp-snoop"),
            0o644,
        ),
        (
            completions.join("_igmp-snoop"),
            prefix.join("share/zsh/site-functions/_igmp-snoop"),
            0o644,
        ),
        (
            completions.join("igmp-snoop.fish"),
            prefix.join("share/fish/vendor_completions.d/igmp-snoop.fish"),
            0o644,
        ),
    ];
    let mut pages: Vec<PathBuf> = fs::read_dir(dist.join("man"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    for page in pages {
        let name = page.file_name().expect("a page has a name").to_owned();
        // igmp-snoop.8 goes to man8, igmp-snoop.toml.5 to man5.
        let section = page.extension().and_then(|ext| ext.to_str()).unwrap_or("8");
        let dir = prefix.join(format!("share/man/man{section}"));
        plan.push((page, dir.join(name), 0o644));
    }
    // Where igmp-snoop(8) and igmp-snoop.toml(5) point for the example.
    plan.push((
        workspace_root().join("igmp-snoop.example.toml"),
        prefix.join("share/doc/igmp-snoop/examples/igmp-snoop.toml"),
        0o644,
    ));
    Ok(plan)
}

/// systemd reads units from /usr/lib and /usr/local/lib, not from any other
/// prefix: those go to /etc/systemd/system.
fn unit_dir(prefix: &Path) -> PathBuf {
    if prefix == Path::new("/usr") || prefix == Path::new("/usr/local") {
        prefix.join("lib/systemd/system")
    } else {
        PathBuf::from("/etc/systemd/system")
    }
}

/// packaging/igmp-snoop.service with ExecStart running `binary`.
fn unit_for(binary: &Path) -> Result<String> {
    let path = workspace_root().join("packaging/igmp-snoop.service");
    let unit = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let exec_start = format!("ExecStart={UNIT_BINARY} ");
    if !unit.lines().any(|line| line.starts_with(&exec_start)) {
        bail!("{}: no `{exec_start}...` line", path.display());
    }
    Ok(unit.replace(&exec_start, &format!("ExecStart={} ", binary.display())))
}

/// The example configuration, unless the operator's own is there already.
fn install_config(target: &Path) -> Result<()> {
    if target.exists() {
        println!("kept      {} (already there)", target.display());
        return Ok(());
    }
    copy(
        &workspace_root().join("igmp-snoop.example.toml"),
        target,
        0o644,
    )
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let contents = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write(to, &contents, mode)
}

/// Writes a whole file and says so. The old file is replaced, not written
/// over: a running igmp-snoop keeps its binary.
fn write(to: &Path, contents: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    let dir = to.parent().expect("an installed file has a directory");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = to.file_name().expect("an installed file has a name");
    let staged = dir.join(format!(".{}.new", name.to_string_lossy()));
    fs::write(&staged, contents).with_context(|| format!("writing {}", staged.display()))?;
    fs::set_permissions(&staged, fs::Permissions::from_mode(mode))?;
    fs::rename(&staged, to).with_context(|| format!("installing {}", to.display()))?;
    println!("installed {}", to.display());
    Ok(())
}
