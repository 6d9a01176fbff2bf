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

/// The sections, by the name `--only` takes.
const SECTIONS: [(&str, Measure); 8] = [
    ("cost", cost::run),
    ("forwarding", forwarding::run),
    ("live", forwarding::run_live),
    ("forwarding6", forwarding::run6),
    ("live6", forwarding::run_live6),
    ("latency", control::join_latency),
    ("scale", control::scale),
    ("upgrade", upgrade::run),
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
        if !SECTIONS.iter().any(|(section, _)| section == name) {
            let names: Vec<&str> = SECTIONS.iter().map(|(section, _)| *section).collect();
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
        .filter(|(name, _)| only.as_deref().is_none_or(|only| only == *name))
        .map(|(name, section)| {
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
