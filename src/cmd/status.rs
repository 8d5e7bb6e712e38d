//! `freshet status` and `freshet reset` (CLI_CONFIG.md §2.5, §2.6): local
//! state only, no daemon needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use engine::config::{self, DbConfig};
use engine::db::MetaDir;

use crate::cli::{ResetArgs, StatusArgs};

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(&args.source)?;
    let dbs: Vec<DbConfig> = cfg
        .databases()?
        .into_iter()
        .filter(|d| args.db_path.as_ref().is_none_or(|p| *p == d.path))
        .collect();
    let rows: Vec<[String; 4]> = dbs.iter().map(row).collect();
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"database": r[0], "status": r[1], "local_txid": r[2], "wal_size": r[3]}))
            .collect();
        println!("{}", serde_json::Value::Array(json));
    } else {
        let mut text = String::from("database\tstatus\tlocal txid\twal size\n");
        for r in &rows {
            text.push_str(&r.join("\t"));
            text.push('\n');
        }
        print!("{}", super::ltx_list::align(&text));
    }
    Ok(ExitCode::SUCCESS)
}

fn row(db: &DbConfig) -> [String; 4] {
    let path = db.path.display().to_string();
    if !db.path.exists() {
        return [path, "no database".into(), "-".into(), "-".into()];
    }
    let wal = wal_path(&db.path);
    let wal_size = std::fs::metadata(&wal)
        .map(|m| human_size(m.len()))
        .unwrap_or_else(|_| "0 B".into());
    match MetaDir::new(&db.meta_path, 0o600, 0o700).newest_txid() {
        Ok(t) if t.get() == 0 => [path, "not initialized".into(), "-".into(), wal_size],
        Ok(t) => [path, "ok".into(), t.to_string(), wal_size],
        Err(_) => [path, "error".into(), "-".into(), "-".into()],
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// SI units, one decimal: `4.1 MB`.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub(crate) fn reset(args: ResetArgs) -> anyhow::Result<ExitCode> {
    let path = config::normalize_db_path(&args.db_path)?;
    let meta = match &args.source.config {
        Some(_) => {
            let cfg = super::load_config(&args.source)?;
            cfg.databases()?
                .into_iter()
                .find(|d| d.path == path)
                .map(|d| d.meta_path)
        }
        None => None,
    }
    .unwrap_or_else(|| config::default_meta_path(&path));
    if !path.exists() {
        bail!("database does not exist: {}", path.display());
    }
    let ltx_dir = meta.join("ltx");
    if !ltx_dir.exists() {
        println!("No local state to reset for {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        let mut files = Vec::new();
        collect(&ltx_dir, &mut files)?;
        println!(
            "Would remove {} files under {}:",
            files.len(),
            ltx_dir.display()
        );
        for f in files {
            println!("  {}", f.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::remove_dir_all(&ltx_dir).with_context(|| format!("removing {}", ltx_dir.display()))?;
    println!(
        "Reset local state of {}: removed {}",
        path.display(),
        ltx_dir.display()
    );
    println!("The next sync writes a full snapshot.");
    Ok(ExitCode::SUCCESS)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_si_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(4_120_032), "4.1 MB");
        assert_eq!(human_size(1_500_000_000), "1.5 GB");
    }
}
