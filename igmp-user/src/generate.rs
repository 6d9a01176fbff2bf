//! Manual pages and shell completions, made from the clap definitions so
//! that they can never disagree with `--help` (igmp-snoop.toml(5), the
//! configuration file's page, is written here by hand). What clap_complete
//! gets wrong for this binary is fixed here, each fix with the reason.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::{Generator as _, Shell};

use crate::cli::Cli;

const NAME: &str = "igmp-snoop";
/// System administration commands and daemons.
const SECTION: &str = "8";
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Where the top page and run's page point the reader: the files the daemon
/// reads and makes.
const FILES: &str = r#".SH FILES
.TP
\fI/etc/igmp\-snoop/igmp\-snoop.toml\fR
The configuration the packaged service runs with (\fBrun \-\-config\fR); its format is
\fBigmp\-snoop.toml\fR(5).
.TP
\fI/usr/share/doc/igmp\-snoop/examples/igmp\-snoop.toml\fR
The example configuration: every key once, with a comment each.
.TP
\fI/sys/fs/bpf/igmp\-snoop/\fR
The pinned maps, XDP links and tc markers (\fB\-\-pin\-dir\fR); they outlive the daemon.
.TP
\fI/run/igmp\-snoop/\fR
The monitor socket, the control socket (\fBmdb\fR, root's only) and the lock against a
second daemon on the same pins; a daemon that stops removes its own.
"#;

const EXAMPLES: &str = r#".SH EXAMPLES
Snoop on three ports, with the querier on, from the command line:
.PP
.RS
.nf
igmp\-snoop run \-\-iface eth1 \-\-iface eth2 \-\-iface eth3 \-\-querier \-\-querier\-address 192.0.2.1
.fi
.RE
.PP
Check a configuration, then run the service with it:
.PP
.RS
.nf
igmp\-snoop run \-\-config /etc/igmp\-snoop/igmp\-snoop.toml \-\-check\-config
systemctl enable \-\-now igmp\-snoop
.fi
.RE
.PP
See the table, the router ports and the counters, and follow the changes:
.PP
.RS
.nf
igmp\-snoop show
igmp\-snoop routers \-\-json
igmp\-snoop stats
igmp\-snoop monitor
.fi
.RE
.PP
Give a port a group whose receiver never reports, and take it away again:
.PP
.RS
.nf
igmp\-snoop mdb add \-\-port eth2 \-\-grp 239.1.2.3
igmp\-snoop mdb del \-\-port eth2 \-\-grp 239.1.2.3
.fi
.RE
.PP
Take the program off every port and remove the pins (the daemon stopped):
.PP
.RS
.nf
igmp\-snoop detach \-\-pin\-dir /sys/fs/bpf/igmp\-snoop
.fi
.RE
"#;

/// igmp-snoop.toml(5): the configuration file's keys, as
/// igmp-snoop.example.toml sets them (a test checks that every key there is here).
const CONFIG_PAGE: &str = r#".TH IGMP\-SNOOP.TOML 5 "" "igmp\-snoop" "File Formats"
.SH NAME
igmp\-snoop.toml \- configuration of the igmp\-snoop daemon
.SH SYNOPSIS
\fI/etc/igmp\-snoop/igmp\-snoop.toml\fR, read by \fBigmp\-snoop run \-\-config\fR \fIFILE\fR
.SH DESCRIPTION
A TOML file. Every key is optional; a flag given on the command line overrides the key of
the same name. A bad file (an unknown key, a wrong type) is refused with one line naming the
file, line, column and key, before any port changes. Durations are seconds, fractions
allowed. \fBigmp\-snoop run \-\-config\fR \fIFILE\fR \fB\-\-check\-config\fR prints the
resolved options and exits.
.SH "TOP-LEVEL KEYS"
.TP
\fBinterfaces\fR = [\fI"eth1"\fR, ...]
Ports to snoop on (\fB\-\-iface\fR).
.TP
\fBpin\-dir\fR = \fI"/sys/fs/bpf/igmp\-snoop"\fR
Where the maps, XDP links and tc markers are pinned (\fB\-\-pin\-dir\fR).
.TP
\fBattach\fR = \fI"auto"\fR | \fI"native"\fR | \fI"generic"\fR | \fI"tc"\fR
How the program is attached (\fB\-\-attach\fR; formerly \fBxdp\-mode\fR, still read).
\fIauto\fR: native XDP when every port is a NIC, the tc classifier on every port when some
port is virtual.
.TP
\fBmetrics\-addr\fR = \fI"127.0.0.1:9477"\fR
Serve Prometheus metrics here (\fB\-\-metrics\-addr\fR).
.TP
\fBkeep\-attached\fR = \fBtrue\fR | \fBfalse\fR
On SIGINT/SIGTERM, leave the program attached and the table pinned (\fB\-\-keep\-attached\fR).
.TP
\fBunregistered\fR = \fI"auto"\fR | \fI"flood"\fR | \fI"routers"\fR | \fI"drop"\fR
Multicast data for groups no port joined (\fB\-\-unregistered\fR). \fIauto\fR: to router
ports once a querier is known, flooded before, like the bridge.
.SH "[timers]"
RFC 3376 \(sc8 timers; the defaults are the RFC's (and the Linux bridge's).
.TP
\fBrobustness\fR = \fI2\fR
Robustness variable (\fB\-\-robustness\fR); also the default of the two counts.
.TP
\fBquery\-interval\fR = \fI125\fR
Query interval (\fB\-\-query\-interval\fR).
.TP
\fBquery\-response\-interval\fR = \fI10\fR
Query response interval (\fB\-\-query\-response\-interval\fR).
.TP
\fBlast\-member\-interval\fR = \fI1\fR
Last member query interval (\fB\-\-last\-member\-interval\fR).
.TP
\fBlast\-member\-count\fR = \fI2\fR
Last member query count (\fB\-\-last\-member\-count\fR).
.TP
\fBstartup\-query\-interval\fR = \fI31.25\fR
Startup query interval; defaults to a quarter of the query interval.
.TP
\fBstartup\-query\-count\fR = \fI2\fR
Startup query count.
.TP
\fBrouter\-timeout\fR = \fI255\fR
How long a router port lives without a query or PIM hello (\fB\-\-router\-timeout\fR).
.SH "[querier]"
.TP
\fBenabled\fR = \fBtrue\fR | \fBfalse\fR
Query when no other querier is present (\fB\-\-querier\fR), IGMP and MLD (MLD's
from the bridge's link-local address); off by default.
.TP
\fBversion\fR = \fI2\fR | \fI3\fR
IGMP version of the queries (\fB\-\-querier\-version\fR).
.TP
\fBmld\-version\fR = \fI1\fR | \fI2\fR
MLD version of the queries (\fB\-\-mld\-querier\-version\fR); 2 by default.
.TP
\fBaddress\fR = \fI"192.0.2.1"\fR
Source address of the IGMP queries (\fB\-\-querier\-address\fR); without one they come from
0.0.0.0 and never win an election.
.SH "[limits]"
Enforced in XDP. Past a group limit new groups are refused and counted; existing entries
are never evicted. 0 means no limit.
.TP
\fBmax\-groups\-per\-port\fR = \fI1024\fR
Groups one port may hold (\fB\-\-max\-groups\-per\-port\fR).
.TP
\fBmax\-groups\fR = \fI61440\fR
Groups all ports together may hold (\fB\-\-max\-groups\fR); defaults to 15/16 of the table size.
.TP
\fBreport\-rate\fR = \fI1000\fR
Reports and leaves accepted per second on each port (\fB\-\-report\-rate\fR).
.TP
\fBreport\-burst\fR = \fI1000\fR
Reports accepted back to back before the rate applies (\fB\-\-report\-burst\fR).
.TP
\fBtable\-size\fR = \fI65536\fR
Capacity of the membership, source, host and group maps (\fB\-\-table\-size\fR), from 1024
to 16777216; fixed when the maps are first pinned.
.SH "[ports.NAME]"
Per-port options, by interface name; every port named here must be snooped.
.TP
\fBrouter\fR = \fI"off"\fR | \fI"auto"\fR | \fI"permanent"\fR
Router port mode (\fB\-\-router\-port\fR); by default the bridge port's \fBmcast_router\fR,
else \fIauto\fR (learned from queries and PIM hellos).
.TP
\fBfast\-leave\fR = \fBtrue\fR | \fBfalse\fR
Remove a group as soon as its last host on the port leaves (\fB\-\-fast\-leave\fR); by
default the bridge port's \fBmcast_fast_leave\fR, else off.
.TP
\fBstatic\-groups\fR = [\fI"239.1.2.3"\fR, \fI"ff0e::1:2:3"\fR, ...]
Groups the port always receives, IPv4 or IPv6, from every source, whatever its hosts
report (static memberships, as \fBigmp\-snoop mdb add\fR makes at run time).
.TP
\fBflood\-reports\fR = \fBtrue\fR | \fBfalse\fR
Send IGMP reports and leaves out of this port too, not only out of router ports.
.TP
\fBunregistered\fR = \fI"auto"\fR | \fI"flood"\fR | \fI"routers"\fR | \fI"drop"\fR
This port's policy for unregistered groups (\fIauto\fR: the global \fBunregistered\fR).
.TP
\fBmax\-groups\fR, \fBreport\-rate\fR, \fBreport\-burst\fR
This port's limits, over the \fB[limits]\fR ones.
.SH EXAMPLES
.RS
.nf
interfaces = ["eth1", "eth2", "eth3"]
keep\-attached = true

[querier]
enabled = true
address = "192.0.2.1"

[ports.eth1]
router = "permanent"

[ports.eth2]
fast\-leave = true
.fi
.RE
.SH FILES
.TP
\fI/etc/igmp\-snoop/igmp\-snoop.toml\fR
The configuration the packaged service runs with.
.TP
\fI/usr/share/doc/igmp\-snoop/examples/igmp\-snoop.toml\fR
The example: every key once, with a comment each.
.SH "SEE ALSO"
\fBigmp\-snoop\fR(8), \fBigmp\-snoop\-run\fR(8)
"#;

/// Writes igmp-snoop.8, one igmp-snoop-<command>.8 per visible command and
/// igmp-snoop.toml.5, the configuration file's format.
pub fn man_pages(out: &Path) -> Result<Vec<PathBuf>> {
    make_dir(out)?;
    let command = full_command();
    let mut written = vec![write_page(
        out,
        command.clone(),
        &format!("{EXAMPLES}{FILES}{}", see_also(&[CONFIG_PAGE_NAME])),
    )?];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let extra = if sub.get_name() == "run" {
            format!(
                "{FILES}{}",
                see_also(&[&format!("{NAME}({SECTION})"), CONFIG_PAGE_NAME])
            )
        } else {
            see_also(&[&format!("{NAME}({SECTION})")])
        };
        written.push(write_page(out, sub.clone(), &extra)?);
    }
    let path = out.join("igmp-snoop.toml.5");
    fs::write(&path, CONFIG_PAGE).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    Ok(written)
}

const CONFIG_PAGE_NAME: &str = "igmp-snoop.toml(5)";

/// Writes the bash, zsh and fish completions under the names clap gives them
/// (igmp-snoop.bash, _igmp-snoop, igmp-snoop.fish): the visible commands
/// only, and a port (every value named `IF`) completed from the interfaces
/// in /sys/class/net rather than from file names.
pub fn completions(out: &Path) -> Result<Vec<PathBuf>> {
    make_dir(out)?;
    let mut command = completed_command();
    let interface_flags = interface_flags(&command);
    SHELLS
        .iter()
        .map(|shell| {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, NAME, &mut script);
            let script = String::from_utf8(script).context("clap_complete wrote UTF-8")?;
            let script = match shell {
                Shell::Bash => bash_fixed(&script, &interface_flags),
                Shell::Zsh => script.replace(":IF:_default", ":IF:_net_interfaces"),
                Shell::Fish => fish_interfaces(&script, &interface_flags),
                _ => script,
            };
            let path = out.join(shell.file_name(NAME));
            fs::write(&path, script).with_context(|| {
                format!("writing the {shell} completions into {}", path.display())
            })?;
            Ok(path)
        })
        .collect()
}

/// The command the completions offer: clap_complete lists hidden
/// subcommands (`generate`) with the others, so they are left out here.
fn completed_command() -> clap::Command {
    let full = Cli::command().disable_help_subcommand(true);
    let mut command = clap::Command::new(NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    for arg in full.get_arguments() {
        command = command.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        command = command.subcommand(sub.clone());
    }
    command
}

/// The flags that take a port: every one whose value is named `IF`, as
/// `--long` and `-s`.
fn interface_flags(command: &clap::Command) -> Vec<String> {
    let mut flags = Vec::new();
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        commands.extend(command.get_subcommands());
        for arg in command.get_arguments() {
            let names = arg.get_value_names().unwrap_or_default();
            if names.len() == 1 && names[0] == "IF" {
                flags.extend(arg.get_long().map(|long| format!("--{long}")));
                flags.extend(arg.get_short().map(|short| format!("-{short}")));
            }
        }
    }
    flags
}

const BASH_FILES: &str = r#"COMPREPLY=($(compgen -f "${cur}"))"#;
const BASH_INTERFACES: &str =
    r#"COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "${cur}"))"#;

/// clap_complete 4.6 names a subcommand's case `igmp__subcmd__snoop__...`
/// but sets `cmd` to `igmp__snoop__...` (it mangles the hyphen of the
/// binary's name two ways), so no subcommand's options were ever offered.
/// Port flags complete interfaces.
fn bash_fixed(script: &str, interface_flags: &[String]) -> String {
    let mangled = NAME.replace('-', "__subcmd__");
    let function = NAME.replace('-', "__");
    let script = script.replace(&mangled, &function);
    let mut fixed = String::with_capacity(script.len());
    let mut after_interface_flag = false;
    for line in script.lines() {
        if after_interface_flag && line.trim() == BASH_FILES {
            fixed.push_str(&line.replace(BASH_FILES, BASH_INTERFACES));
        } else {
            fixed.push_str(line);
        }
        fixed.push('\n');
        after_interface_flag = line
            .trim()
            .strip_suffix(')')
            .is_some_and(|flag| interface_flags.iter().any(|known| known == flag));
    }
    fixed
}

/// fish: a port flag takes interface names, not files.
fn fish_interfaces(script: &str, interface_flags: &[String]) -> String {
    let mut fixed = String::with_capacity(script.len());
    for line in script.lines() {
        fixed.push_str(line);
        let takes_port = interface_flags
            .iter()
            .filter_map(|flag| flag.strip_prefix("--"))
            .any(|long| line.contains(&format!(" -l {long} ")));
        if takes_port {
            fixed.push_str(" -f -a '(__fish_print_interfaces)'");
        }
        fixed.push('\n');
    }
    fixed
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

/// A SEE ALSO section naming `pages` ("name(section)").
fn see_also(pages: &[&str]) -> String {
    let named: Vec<String> = pages
        .iter()
        .map(|page| {
            let (name, section) = page.split_once('(').unwrap_or((page, ")"));
            format!("\\fB{}\\fR({section}", name.replace('-', "\\-"))
        })
        .collect();
    format!(".SH \"SEE ALSO\"\n{}\n", named.join(", "))
}

fn make_dir(out: &Path) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}
