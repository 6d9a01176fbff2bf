//! Manual pages and shell completions, made from the clap definitions so
//! that they can never disagree with `--help`.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

const NAME: &str = "igmp-snoop";
/// System administration commands and daemons.
const SECTION: &str = "8";
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Where the top page points the reader: the files the daemon reads and makes.
const FILES: &str = r#".SH FILES
.TP
\fI/etc/igmp-snoop/igmp-snoop.toml\fR
The configuration the packaged service runs with (\fBrun \-\-config\fR).
.TP
\fI/sys/fs/bpf/igmp\-snoop/\fR
The pinned maps and XDP links (\fB\-\-pin\-dir\fR); they outlive the daemon.
.TP
\fI/run/igmp\-snoop/\fR
The monitor socket and the lock against a second daemon on the same pins.
"#;

/// Writes igmp-snoop.8 and one igmp-snoop-<command>.8 per visible command.
pub fn man_pages(out: &Path) -> Result<Vec<PathBuf>> {
    make_dir(out)?;
    let command = full_command();
    let mut written = vec![write_page(out, command.clone(), FILES)?];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        written.push(write_page(out, sub.clone(), &see_also_top())?);
    }
    Ok(written)
}

/// Writes the bash, zsh and fish completions under the names clap gives them
/// (igmp-snoop.bash, _igmp-snoop, igmp-snoop.fish).
pub fn completions(out: &Path) -> Result<Vec<PathBuf>> {
    make_dir(out)?;
    let mut command = full_command();
    SHELLS
        .iter()
        .map(|shell| {
            clap_complete::generate_to(*shell, &mut command, NAME, out)
                .with_context(|| format!("writing the {shell} completions into {}", out.display()))
        })
        .collect()
}

/// The command as the pages show it: built (so each subcommand is named
/// `igmp-snoop-<command>` and carries the global flags) and without clap's
/// `help` subcommand, which has no page.
fn full_command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

fn write_page(out: &Path, command: clap::Command, extra: &str) -> Result<PathBuf> {
    let man = clap_mangen::Man::new(command)
        .section(SECTION)
        .manual("System Administration");
    let path = out.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.write_all(extra.as_bytes())?;
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn see_also_top() -> String {
    format!(".SH \"SEE ALSO\"\n\\fB{NAME}\\fR({SECTION})\n")
}

fn make_dir(out: &Path) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}
