//! `cargo xtask bench`: the XDP program's per-frame cost, forwarding
//! throughput against the Linux bridge, join latency, scale and the daemon
//! replaced under a stream (restart, upgrade), and their figures as SVG
//! (`--plot` redraws those from the last whole run). A benchmark,
//! not a test: it prints and writes figures, it asserts nothing; every figure
//! is set against a baseline measured in the same run.

mod control;
mod cost;
mod forwarding;
mod plot;
mod report;
mod upgrade;

use anyhow::{bail, Result};

use report::Section;

/// A section of the report; its argument says `--quick`.
type Measure = fn(bool) -> Result<Section>;

/// The sections, by the name `--only` takes, and whether `--quick` runs
/// them: it leaves out the IPv6 sweeps (the same classifier as IPv4's, one
/// tail call more), so that it stays under two minutes.
const SECTIONS: [(&str, Measure, bool); 8] = [
    ("cost", cost::run, true),
    ("forwarding", forwarding::run, true),
    ("live", forwarding::run_live, true),
    ("forwarding6", forwarding::run6, false),
    ("live6", forwarding::run_live6, false),
    ("latency", control::join_latency, true),
    ("scale", control::scale, true),
    ("upgrade", upgrade::run, true),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--plot") {
        return report::redraw();
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let only = args
        .iter()
        .position(|arg| arg == "--only")
        .map(|at| args.get(at + 1).cloned().unwrap_or_default());
    if let Some(name) = &only {
        if !SECTIONS.iter().any(|(section, ..)| section == name) {
            let names: Vec<&str> = SECTIONS.iter().map(|(section, ..)| *section).collect();
            bail!(
                "--only {name:?}: not a section (one of {})",
                names.join(", ")
            );
        }
    }
    // The lab daemons log at info: a line per join would be their main work at scale.
    std::env::set_var("RUST_LOG", "info");
    let sections = SECTIONS
        .iter()
        .filter(|(name, _, in_quick)| match only.as_deref() {
            Some(only) => only == *name,
            None => *in_quick || !quick,
        })
        .map(|(name, section, _)| {
            let started = std::time::Instant::now();
            let measured = section(quick);
            eprintln!(
                "bench: {name} took {:.0} s",
                started.elapsed().as_secs_f64()
            );
            measured
        })
        .collect::<Result<Vec<_>>>()?;
    // Judged against the last whole run before this one overwrites it.
    let regressions = match (
        report::last_run(),
        sections.iter().find(|s| s.title == cost::TITLE),
    ) {
        (Some(last), Some(measured)) if !quick => {
            cost::regressions(&measured.json, &last["sections"][cost::TITLE])
        }
        _ => Vec::new(),
    };
    // One section alone is a look, not a result: only a whole run is written.
    report::finish(&sections, !quick && only.is_none())?;
    if !regressions.is_empty() {
        bail!(
            "the per-frame cost regressed against the last whole run:\n  {}",
            regressions.join("\n  ")
        );
    }
    Ok(())
}
