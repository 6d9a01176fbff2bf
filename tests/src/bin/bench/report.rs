//! The benchmark's output: a table per section on stdout, and the whole run
//! in bench/results.md and bench/results.json with the machine it ran on,
//! and drawn in bench/*.svg.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

/// One part of the benchmark, as measured.
pub struct Section {
    pub title: String,
    /// How it was measured, printed above the table.
    pub text: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub json: serde_json::Value,
}

impl Section {
    pub fn markdown(&self) -> String {
        let mut out = format!("## {}\n\n{}\n\n", self.title, self.text);
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The value below which `percent` % of `values` lie.
pub fn percentile(values: &[f64], percent: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * percent / 100.0).round() as usize;
    sorted[index]
}

pub fn spread(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    max - min
}

/// Prints every section; writes them to bench/ if this was a whole run.
pub fn finish(sections: &[Section], whole_run: bool) -> Result<()> {
    let context = machine_context();
    let body: String = sections.iter().map(Section::markdown).collect();
    println!("{context}\n\n{body}");
    if !whole_run {
        println!("(--quick or --only: nothing written)");
        return Ok(());
    }
    std::fs::create_dir_all("bench")?;
    std::fs::write(
        "bench/results.md",
        format!("# igmp-snoop benchmark (`cargo xtask bench`)\n\n{context}\n\n{body}"),
    )?;
    let json: serde_json::Map<String, serde_json::Value> = sections
        .iter()
        .map(|section| (section.title.clone(), section.json.clone()))
        .collect();
    let results = serde_json::json!({ "context": context, "sections": json });
    std::fs::write(RESULTS_JSON, serde_json::to_string_pretty(&results)?)?;
    println!("written to bench/results.md and bench/results.json");
    draw(&results)
}

/// Draws the figures of the last whole run (bench/results.json) again.
pub fn redraw() -> Result<()> {
    let text = std::fs::read_to_string(RESULTS_JSON)
        .context("reading bench/results.json (a whole `cargo xtask bench` writes it)")?;
    draw(&serde_json::from_str(&text).context(RESULTS_JSON)?)
}

/// The last whole run's results, if one was written here.
pub fn last_run() -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(RESULTS_JSON).ok()?).ok()
}

const RESULTS_JSON: &str = "bench/results.json";

fn draw(results: &serde_json::Value) -> Result<()> {
    for path in crate::plot::write_all(results, Path::new("bench"))? {
        println!("drew {}", path.display());
    }
    Ok(())
}

fn machine_context() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cpus = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Kernel {}, {cpus} × {cpu}, {date}. A shared VM: every figure is set against a \
         baseline measured in the same run.",
        kernel.trim()
    )
}
