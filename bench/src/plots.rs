//! SVG plots: lag over time and `-wal` size over time per write workload and
//! backend (first repetition of each tool), and throughput bars.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::{groups, median_of};
use crate::workloads::RunResult;

const SIZE: (u32, u32) = (900, 500);

fn colour(tool: &str) -> RGBColor {
    match tool {
        "freshet" => RGBColor(0x1f, 0x77, 0xb4),
        "litestream" => RGBColor(0xff, 0x7f, 0x0e),
        _ => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// Draws every plot into `dir`; returns the files written.
pub(crate) fn draw_all(results: &[RunResult], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for ((w, b), runs) in groups(results) {
        if !w.writes() {
            continue;
        }
        let firsts: Vec<&RunResult> = ["freshet", "litestream"]
            .iter()
            .filter_map(|t| {
                runs.iter()
                    .find(|r| r.tool == *t && r.error.is_none())
                    .copied()
            })
            .collect();
        let name = format!("{}-{}", w.name(), b.name());
        let lag: Vec<(&str, &[(f64, f64)])> = firsts
            .iter()
            .map(|r| (r.tool, r.lag_series.as_slice()))
            .collect();
        let p = dir.join(format!("lag-{name}.svg"));
        line_chart(&p, &format!("replication lag, {name}"), "lag ms", &lag, 1.0)?;
        files.push(p);
        let wal: Vec<(&str, &[(f64, f64)])> = firsts
            .iter()
            .map(|r| (r.tool, r.wal_series.as_slice()))
            .collect();
        let p = dir.join(format!("wal-{name}.svg"));
        line_chart(
            &p,
            &format!("-wal size, {name}"),
            "MiB",
            &wal,
            1024.0 * 1024.0,
        )?;
        files.push(p);
    }
    let p = dir.join("throughput.svg");
    if throughput(results, &p)? {
        files.push(p);
    }
    Ok(files)
}

fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
    y_div: f64,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("draw {}: {e}", path.display());
    let x_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1 / y_div))
        .fold(1.0, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (tool, s) in series {
        let c = colour(tool);
        chart
            .draw_series(LineSeries::new(s.iter().map(|&(x, y)| (x, y / y_div)), c))
            .map_err(|e| err(&e))?
            .label(*tool)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Median app tx/s per write workload and backend: baseline, freshet,
/// Litestream side by side. Returns false when there is nothing to draw.
fn throughput(results: &[RunResult], path: &Path) -> Result<bool> {
    let err = |e: &dyn std::fmt::Display| anyhow!("draw {}: {e}", path.display());
    const TOOLS: [&str; 3] = ["baseline", "freshet", "litestream"];
    let mut bars: Vec<(String, [f64; 3])> = Vec::new();
    for ((w, b), runs) in groups(results) {
        if !w.writes() {
            continue;
        }
        let mut v = [0.0; 3];
        for (i, t) in TOOLS.iter().enumerate() {
            v[i] = median_of(&runs, t, |r| r.tx_per_sec).unwrap_or(0.0);
        }
        bars.push((format!("{} {}", w.name(), b.name()), v));
    }
    if bars.is_empty() {
        return Ok(false);
    }
    let y_max = bars
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max)
        * 1.25;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = bars.len();
    let mut chart = ChartBuilder::on(&root)
        .caption("application tx/s (median)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(20)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("tx/s")
        .draw()
        .map_err(|e| err(&e))?;
    // Group names above each group of bars: a numeric axis has no
    // category labels.
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (label, _))| {
            Text::new(
                label.clone(),
                (i as f64 + 0.1, y_max * 0.98),
                ("sans-serif", 14),
            )
        }))
        .map_err(|e| err(&e))?;
    for (t, tool) in TOOLS.iter().enumerate() {
        let c = colour(tool);
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let x0 = i as f64 + 0.1 + t as f64 * 0.27;
                Rectangle::new([(x0, 0.0), (x0 + 0.25, v[t])], c.filled())
            }))
            .map_err(|e| err(&e))?
            .label(*tool)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(true)
}
