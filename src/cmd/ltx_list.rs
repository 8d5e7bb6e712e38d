//! `freshet ltx` (CLI_CONFIG.md §2.4): the LTX files of a replica.

use std::process::ExitCode;

use anyhow::Context;
use backends::MAX_LEVEL;
use engine::restore::format_rfc3339;
use engine::setup;
use ltx::TxId;

use crate::cli::LtxArgs;

pub(crate) fn run(args: LtxArgs) -> anyhow::Result<ExitCode> {
    let levels: Vec<u8> = match args.level.as_str() {
        "all" => (0..=MAX_LEVEL).collect(),
        n => {
            let level: u8 = n
                .parse()
                .ok()
                .filter(|l| *l <= MAX_LEVEL)
                .with_context(|| {
                    format!("invalid -level {n:?}: use a number from 0 to {MAX_LEVEL}, or all")
                })?;
            vec![level]
        }
    };
    let (backend, _) = super::resolve_replica(&args.target, &args.source)?;
    let client = setup::open_replica(&backend)?;
    let files = super::runtime()?.block_on(async {
        let mut all = Vec::new();
        for level in levels {
            all.extend(client.list(level, TxId::ZERO).await?);
        }
        Ok::<_, backends::Error>(all)
    })?;
    if args.json {
        let rows: Vec<_> = files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "level": f.id.level,
                    "min_txid": f.id.min_txid.to_string(),
                    "max_txid": f.id.max_txid.to_string(),
                    "size": f.size,
                    "timestamp": format_rfc3339(f.created_at),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::from("level\tmin_txid\tmax_txid\tsize\tcreated\n");
    for f in &files {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            f.id.level,
            f.id.min_txid,
            f.id.max_txid,
            f.size,
            format_rfc3339(f.created_at)
        ));
    }
    print!("{}", align(&out));
    Ok(ExitCode::SUCCESS)
}

/// Pads tab-separated columns like Go's tabwriter (two spaces apart).
pub(crate) fn align(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let last = r.len().saturating_sub(1);
        for (i, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}
