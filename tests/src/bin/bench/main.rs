//! `cargo xtask bench`: the XDP program's per-frame cost, forwarding
//! throughput against the Linux bridge, join latency and scale. A benchmark,
//! not a test: it prints and writes figures, it asserts nothing; every figure
//! is set against a baseline measured in the same run.

mod control;
mod cost;
mod forwarding;
mod report;

use anyhow::Result;

fn main() -> Result<()> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    // The lab daemons log at info: a line per join would be their main work at scale.
    std::env::set_var("RUST_LOG", "info");
    let sections = vec![
        cost::run(quick)?,
        forwarding::run(quick)?,
        control::join_latency(quick)?,
        control::scale(quick)?,
    ];
    report::finish(&sections, quick)
}
