//! The bench's figures as SVG: each path's throughput per member against
//! the fan-out, and the report path's cost against the records in a report.
//! Drawn from a run's JSON, so that `--plot` redraws them from
//! bench/results.json without measuring anything.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use plotters::{
    prelude::*,
    style::{register_font, FontStyle},
};
use serde_json::Value;

use crate::{cost, forwarding};

/// The labels' font, from Debian's fonts-dejavu-core (`cargo xtask setup`
/// installs it): SVG text needs a font's metrics to be laid out.
const FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";

/// Writes every figure of `results` (results.json's shape) into `dir`;
/// returns their paths.
pub fn write_all(results: &Value, dir: &Path) -> Result<Vec<PathBuf>> {
    register_label_font()?;
    let sections = &results["sections"];
    let forwarding = dir.join("forwarding.svg");
    draw_forwarding(
        &[
            ("trafgen on a veth", &sections[forwarding::TRAFGEN_TITLE]),
            (
                "live frames, as from a NIC",
                &sections[forwarding::LIVE_TITLE],
            ),
        ],
        &forwarding,
    )?;
    let report_cost = dir.join("report-cost.svg");
    draw_report_cost(&sections[cost::TITLE], &report_cost)?;
    Ok(vec![forwarding, report_cost])
}

fn register_label_font() -> Result<()> {
    let bytes = std::fs::read(FONT_FILE)
        .with_context(|| format!("reading {FONT_FILE} (fonts-dejavu-core; cargo xtask setup)"))?;
    // plotters keeps the font for the process's life.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, FontStyle::Normal, bytes).map_err(|_| anyhow!("{FONT_FILE}: not a font"))
}

/// One point of a forwarding section: (fan-out, frame size, bridge's and
/// igmp-snoop's frames per second per member).
fn forwarding_rows(section: &Value) -> Vec<(u64, String, f64, f64)> {
    section
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| {
            Some((
                row["fan_out"].as_u64()?,
                row["frame"].as_str()?.to_string(),
                row["bridge"]["per_member_pps"].as_f64()?,
                row["igmp_snoop"]["per_member_pps"].as_f64()?,
            ))
        })
        .collect()
}

/// A grid: a row per generator, a column per frame size; in each panel the
/// bridge's and igmp-snoop's frames per second per member against the
/// fan-out (log₂ axis).
fn draw_forwarding(generators: &[(&str, &Value)], path: &Path) -> Result<()> {
    let sizes = ["64 B", "1518 B"];
    let root = SVGBackend::new(path, (1000, 380 * generators.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Registered multicast, frames per second per member (higher is better)",
        (FONT, 22),
    )?;
    let panels = root.split_evenly((generators.len(), sizes.len()));
    for (row, (generator, section)) in generators.iter().enumerate() {
        let rows = forwarding_rows(section);
        for (column, size) in sizes.iter().enumerate() {
            let points: Vec<&(u64, String, f64, f64)> = rows
                .iter()
                .filter(|(_, frame, _, _)| frame == size)
                .collect();
            let top = points
                .iter()
                .map(|(_, _, bridge, ours)| bridge.max(*ours))
                .fold(0.0, f64::max)
                * 1.1;
            let widest = points
                .iter()
                .map(|(fan_out, ..)| *fan_out)
                .max()
                .unwrap_or(16);
            let max_exponent = (widest.max(2) as f64).log2();
            let panel = &panels[row * sizes.len() + column];
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{generator}, {size}"), (FONT, 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(-0.2f64..max_exponent + 0.2, 0f64..top.max(1.0))?;
            chart
                .configure_mesh()
                .x_desc("members (fan-out)")
                .y_desc("frames/s per member")
                .x_labels(max_exponent as usize + 1)
                .x_label_formatter(&|exponent| format!("{}", 2f64.powf(exponent.round()) as u64))
                .y_label_formatter(&|value| format!("{:.1}M", value / 1e6))
                .label_style((FONT, 12))
                .draw()?;
            for (name, color, pick) in [("Linux bridge", BLUE, 2usize), ("igmp-snoop", RED, 3usize)]
            {
                let series: Vec<(f64, f64)> = points
                    .iter()
                    .map(|point| {
                        let value = if pick == 2 { point.2 } else { point.3 };
                        ((point.0 as f64).log2(), value)
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart.draw_series(
                    series
                        .iter()
                        .map(|&point| Circle::new(point, 3, color.filled())),
                )?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT, 12))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// The cost of an IGMP report over the no-op program against the records
/// it carries (an IGMPv2 report is one record), with the targets marked.
fn draw_report_cost(section: &Value, path: &Path) -> Result<()> {
    let frames = section["frames"].as_array().cloned().unwrap_or_default();
    let figure = |name: &str, field: &str| {
        frames
            .iter()
            .find(|frame| frame["frame"] == name)
            .and_then(|frame| frame[field].as_f64())
    };
    let cost_of = |name: &str| figure(name, "ns_over_noop");
    let v3: Vec<(f64, f64)> = [(1.0, "1 record"), (8.0, "8 records"), (32.0, "32 records")]
        .iter()
        .filter_map(|(records, name)| Some((*records, cost_of(&format!("IGMPv3 report, {name}"))?)))
        .collect();
    let v2_refresh = cost_of("IGMPv2 report, refresh");
    let top = v3.iter().map(|(_, ns)| *ns).fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "An IGMP report's cost in the program, over a no-op program (lower is better)",
            (FONT, 18),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..34.0, 0f64..top.max(300.0))?;
    chart
        .configure_mesh()
        .x_desc("records in the report")
        .y_desc("ns per report")
        .x_label_formatter(&|records| format!("{records:.0}"))
        .y_label_formatter(&|ns| format!("{ns:.0}"))
        .label_style((FONT, 12))
        .draw()?;
    chart
        .draw_series(LineSeries::new(v3.clone(), RED.stroke_width(2)))?
        .label("IGMPv3 report")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    chart.draw_series(v3.iter().map(|&point| Circle::new(point, 4, RED.filled())))?;
    if let Some(ns) = v2_refresh {
        chart
            .draw_series(std::iter::once(Cross::new(
                (1.0, ns),
                6,
                BLUE.stroke_width(2),
            )))?
            .label("IGMPv2 report, refresh")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, BLUE.stroke_width(2)));
    }
    let targets: Vec<(f64, f64)> = [
        (1.0, "IGMPv2 report, refresh"),
        (8.0, "IGMPv3 report, 8 records"),
    ]
    .iter()
    .filter_map(|(records, name)| Some((*records, figure(name, "target_ns_over_noop")?)))
    .collect();
    chart
        .draw_series(
            targets
                .iter()
                .map(|&point| TriangleMarker::new(point, 6, BLACK.stroke_width(1))),
        )?
        .label("target (v2 refresh; v3, 8 records)")
        .legend(|(x, y)| TriangleMarker::new((x + 9, y), 5, BLACK.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}
