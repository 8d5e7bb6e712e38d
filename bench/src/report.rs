//! The results: a markdown table per workload and backend (freshet next to
//! Litestream, with ratios), and the same data as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cli::Workload;
use crate::measure::MachineInfo;
use crate::storage::BackendKind;
use crate::workloads::RunResult;

const MIB: f64 = 1024.0 * 1024.0;

/// A metric row: label, value of one run, decimals.
type Metric = (&'static str, fn(&RunResult) -> Option<f64>, usize);

fn some(v: f64) -> Option<f64> {
    Some(v)
}

/// The rows shown for workload `w`.
fn metrics(w: Workload) -> Vec<Metric> {
    let cpu: Metric = ("CPU s", |r| some(r.cpu_secs), 2);
    let rss: Metric = ("peak RSS MiB", |r| some(r.peak_rss_bytes as f64 / MIB), 1);
    let local: Metric = (
        "local writes MiB",
        |r| some(r.local_write_bytes as f64 / MIB),
        1,
    );
    let reqs: Metric = ("storage requests", |r| some(r.storage_requests as f64), 0);
    let sent: Metric = (
        "storage MiB sent",
        |r| some(r.storage_bytes as f64 / MIB),
        1,
    );
    match w {
        Workload::Snapshot => vec![
            ("time to first full copy s", |r| some(r.wall_secs), 2),
            ("plain cp of the file s", |r| r.reference_cp_secs, 2),
            cpu,
            rss,
            local,
            reqs,
            sent,
        ],
        Workload::Restore => vec![
            ("restore time s", |r| some(r.wall_secs), 2),
            cpu,
            rss,
            local,
            reqs,
            (
                "storage MiB fetched",
                |r| some(r.storage_bytes as f64 / MIB),
                1,
            ),
        ],
        Workload::Idle => vec![
            ("CPU s in the window", |r| some(r.cpu_secs), 2),
            (
                "storage requests in the window",
                |r| some(r.storage_requests as f64),
                0,
            ),
            (
                "local writes MiB in the window",
                |r| some(r.local_write_bytes as f64 / MIB),
                2,
            ),
            rss,
        ],
        Workload::WriteMax | Workload::WriteSteady | Workload::ManyDbs => vec![
            ("app tx/s", |r| r.tx_per_sec, 0),
            ("lag p50 ms", |r| r.lag_p50_ms, 0),
            ("lag p99 ms", |r| r.lag_p99_ms, 0),
            ("lag max ms", |r| r.lag_max_ms, 0),
            ("peak WAL MiB", |r| some(r.peak_wal_bytes as f64 / MIB), 1),
            cpu,
            rss,
            local,
            reqs,
            sent,
        ],
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median of `f` over the successful runs of `tool`.
pub(crate) fn median_of(
    runs: &[&RunResult],
    tool: &str,
    f: fn(&RunResult) -> Option<f64>,
) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.tool == tool && r.error.is_none())
            .filter_map(|r| f(r))
            .collect(),
    )
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Groups results by workload and backend, in run order.
pub(crate) fn groups(results: &[RunResult]) -> BTreeMap<(Workload, BackendKind), Vec<&RunResult>> {
    let mut g: BTreeMap<(Workload, BackendKind), Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        g.entry((r.workload, r.backend)).or_default().push(r);
    }
    g
}

/// The markdown report.
pub(crate) fn markdown(
    results: &[RunResult],
    machine: &MachineInfo,
    versions: &[(String, String)],
    params: &[(String, String)],
) -> String {
    let mut s = String::from("# freshet-bench results\n\n");
    let _ = writeln!(
        s,
        "Machine: {} cores, {}, {:.1} GiB RAM, Linux {}.",
        machine.cores, machine.cpu_model, machine.memory_gib, machine.kernel
    );
    for (tool, v) in versions {
        let _ = writeln!(s, "- {tool}: `{v}`");
    }
    s.push_str("\nParameters: ");
    let p: Vec<String> = params.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
    s.push_str(&p.join(", "));
    s.push_str(
        "\n\nEach figure is the median over the runs; the ratio is freshet / Litestream \
         (below 1 = freshet uses less or is faster, except for tx/s where above 1 is better).\n",
    );
    let failed: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.error.is_some() || !r.verified)
        .collect();
    if !failed.is_empty() {
        s.push_str("\n## FAILED RUNS\n\n");
        for r in &failed {
            let _ = writeln!(
                s,
                "- **{} / {} / {} #{}**: {}",
                r.workload.name(),
                r.backend.name(),
                r.tool,
                r.repeat,
                r.error.as_deref().unwrap_or(&r.verify_detail)
            );
        }
    }
    for ((w, b), runs) in groups(results) {
        let _ = writeln!(s, "\n## {} — {} backend\n", w.name(), b.name());
        let _ = writeln!(s, "| metric | freshet | litestream | ratio |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        if w.writes() {
            let base = median_of(&runs, "baseline", |r| r.tx_per_sec);
            let _ = writeln!(
                s,
                "| app tx/s without replicator | {} | {} | |",
                fmt(base, 0),
                fmt(base, 0)
            );
        }
        for (label, f, d) in metrics(w) {
            let a = median_of(&runs, "freshet", f);
            let b = median_of(&runs, "litestream", f);
            let ratio = match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
                _ => String::new(),
            };
            let _ = writeln!(s, "| {label} | {} | {} | {ratio} |", fmt(a, d), fmt(b, d));
        }
        let verified = |tool: &str| {
            let mine: Vec<&&RunResult> = runs.iter().filter(|r| r.tool == tool).collect();
            let ok = mine
                .iter()
                .filter(|r| r.verified && r.error.is_none())
                .count();
            if ok == mine.len() {
                format!("{ok}/{} ok", mine.len())
            } else {
                format!("**{ok}/{} FAILED**", mine.len())
            }
        };
        let _ = writeln!(
            s,
            "| verified restores | {} | {} | |",
            verified("freshet"),
            verified("litestream")
        );
    }
    s
}

/// The JSON report: machine, versions, parameters and every run.
pub(crate) fn json(
    results: &[RunResult],
    machine: &MachineInfo,
    versions: &[(String, String)],
    params: &[(String, String)],
) -> serde_json::Value {
    serde_json::json!({
        "machine": machine,
        "versions": versions.iter().cloned().collect::<BTreeMap<_, _>>(),
        "parameters": params.iter().cloned().collect::<BTreeMap<_, _>>(),
        "runs": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}
