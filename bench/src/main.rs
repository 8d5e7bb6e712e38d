//! `freshet-bench`: runs the same workloads against freshet and the real
//! Litestream, alternating, on the file backend and on a local S3 server,
//! and writes a markdown table, JSON and SVG plots of what each used.
//!
//! Both replicators are black boxes: each run generates one
//! `litestream.yml`, starts `replicate -config` on it, measures the process
//! from /proc and its rusage, watches the replica on disk, and ends with a
//! verifying `restore` by the same tool.

mod cli;
mod data;
mod lag;
mod measure;
mod plots;
mod report;
mod s3;
mod storage;
mod tools;
mod verify;
mod workloads;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Args, Workload};
use storage::{BackendKind, Storage};
use tools::{Tool, Tools};
use workloads::{Ctx, RunResult, Subject};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("freshet-bench: SOME RUNS FAILED (see the report's FAILED RUNS section)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("freshet-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when a run failed or did not verify.
fn run(args: &Args) -> Result<bool> {
    args.validate()?;
    measure::stop_children_on_interrupt()?;
    let tools = Tools::find(args.freshet.as_deref(), args.litestream.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench-results").join(timestamp()));
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let work = args.work_dir.clone().unwrap_or_else(|| out.join("work"));
    fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let work = fs::canonicalize(&work)?;
    let logs = fs::canonicalize(&logs)?;
    let machine = measure::MachineInfo::read();
    let versions = vec![
        ("freshet".to_owned(), tools.version(Tool::Freshet)),
        ("litestream".to_owned(), tools.version(Tool::Litestream)),
    ];
    eprintln!(
        "freshet-bench: {} vs {}; results in {}",
        versions[0].1,
        versions[1].1,
        out.display()
    );

    let pristine = if args
        .workloads
        .iter()
        .any(|w| matches!(w, Workload::Snapshot | Workload::Restore))
    {
        let p = work.join("pristine.db");
        let _ = fs::remove_file(&p);
        let _ = fs::remove_file(work.join("pristine.db-wal"));
        eprintln!(
            "building a {} byte database (page size {})",
            args.size, args.page_size
        );
        data::build_database(&p, args.page_size, args.size, args.seed)?;
        Some(p)
    } else {
        None
    };

    let mut results: Vec<RunResult> = Vec::new();
    for kind in args.backends() {
        let storage = open_storage(args, kind, &work, &logs)?;
        let ctx = Ctx {
            args,
            tools: &tools,
            storage: &storage,
            work: work.join(kind.name()),
            logs: logs.clone(),
            pristine: pristine.clone(),
        };
        fs::create_dir_all(&ctx.work)?;
        for &w in &args.workloads {
            for rep in 0..args.repeat {
                let mut order = vec![
                    Subject::Tool(Tool::Freshet),
                    Subject::Tool(Tool::Litestream),
                ];
                // Alternate who goes first, so warm caches favour neither.
                if rep % 2 == 1 {
                    order.reverse();
                }
                if w.writes() {
                    order.insert(0, Subject::Baseline);
                }
                for who in order {
                    eprintln!("run {} / {} / {} #{rep}", w.name(), kind.name(), who.name());
                    let r = workloads::run(&ctx, w, who, rep);
                    print_outcome(&r);
                    results.push(r);
                }
            }
        }
    }
    if let Some(p) = &pristine {
        let _ = fs::remove_file(p);
    }
    let _ = fs::remove_dir_all(work.join(BackendKind::S3.name()).join("s3-data"));

    let params = params(args);
    let md = report::markdown(&results, &machine, &versions, &params);
    fs::write(out.join("report.md"), &md)?;
    let json = report::json(&results, &machine, &versions, &params);
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let plots = out.join("plots");
    fs::create_dir_all(&plots)?;
    if let Err(e) = plots::draw_all(&results, &plots) {
        eprintln!("freshet-bench: plots not drawn: {e:#}");
    }
    println!("{md}");
    if args.work_dir.is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    Ok(results.iter().all(|r| r.error.is_none() && r.verified))
}

fn open_storage(args: &Args, kind: BackendKind, work: &Path, logs: &Path) -> Result<Storage> {
    Ok(match kind {
        BackendKind::File => Storage::File {
            root: work.join("file").join("replicas"),
        },
        BackendKind::S3 => {
            let bin = s3::find_s3s_fs(args.s3s_fs.as_deref())?;
            let data = work.join("s3").join("s3-data");
            let _ = fs::remove_dir_all(&data);
            let server = s3::S3Server::start(&bin, &data, &logs.join("s3s-fs.log"))?;
            let proxy = s3::CountingProxy::start(server.port)?;
            Storage::S3 { server, proxy }
        }
    })
}

fn print_outcome(r: &RunResult) {
    match (&r.error, r.verified) {
        (Some(e), _) => eprintln!("  FAILED: {e}"),
        (None, false) => eprintln!("  FAILED VERIFICATION: {}", r.verify_detail),
        (None, true) => eprintln!(
            "  ok: {:.2} s, CPU {:.2} s, RSS {:.1} MiB{}; {}",
            r.wall_secs,
            r.cpu_secs,
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            r.tx_per_sec
                .map(|t| format!(", {t:.0} tx/s"))
                .unwrap_or_default(),
            r.verify_detail
        ),
    }
}

fn params(a: &Args) -> Vec<(String, String)> {
    let mut p = vec![
        (
            "workloads".to_owned(),
            a.workloads
                .iter()
                .map(|w| w.name())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("repeat".to_owned(), a.repeat.to_string()),
        ("size".to_owned(), a.size.to_string()),
        ("page-size".to_owned(), a.page_size.to_string()),
        ("seed".to_owned(), a.seed.to_string()),
        ("rows-per-tx".to_owned(), a.rows_per_tx.to_string()),
        ("row-bytes".to_owned(), a.row_bytes.to_string()),
        ("duration".to_owned(), format!("{:?}", a.duration)),
        ("tx-per-sec".to_owned(), a.tx_per_sec.to_string()),
        ("dbs".to_owned(), a.dbs.to_string()),
        ("db-tx-per-sec".to_owned(), a.db_tx_per_sec.to_string()),
    ];
    p.push(("monitor-interval".to_owned(), a.monitor_interval.clone()));
    p.push(("sync-interval".to_owned(), a.sync_interval.clone()));
    p
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = backends::calendar::civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
