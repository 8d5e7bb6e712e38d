//! The output path and what the CLI prints about a restore (RESTORE.md §8):
//! output preparation (`-force`), `-if-db-not-exists`, the dry-run report,
//! the `-timestamp` range check, and v0.3 replica detection.

use backends::calendar::{civil_from_days, days_from_civil};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use backends::{MAX_LEVEL, ReplicaClient};
use freshet_io::durable;
use ltx::TxId;
use serde::Serialize;

use super::Target;
use super::error::{RestoreError, Result};
use super::plan::{Plan, plan};

/// The SQLite files that belong to a database and would be applied to, or
/// confused with, a restored one.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its file name (`db` → `db-wal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether the output counts as existing for `-if-db-not-exists`: any
/// result of `stat` other than "not found" (a permission error counts as
/// existing, as in Litestream).
pub fn output_exists(path: &Path) -> bool {
    !matches!(fs::metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Prepares the output path of a non-follow restore (RESTORE.md §8): a
/// directory is an error; an existing non-empty file, or an existing
/// `-wal`, `-shm` or `-journal` sidecar, is an error unless `force`; then
/// the output (even a 0-byte file) and the sidecars are deleted.
///
/// Unlike Litestream, sidecars are checked (and with `force` removed) even
/// when the output does not exist: a leftover `-wal` or `-journal` would be
/// applied by SQLite to the restored database.
pub fn prepare_output(path: &Path, force: bool) -> Result<()> {
    check_output(path, force)?;
    for p in std::iter::once(path.to_path_buf()).chain(SIDECARS.map(|s| sibling(path, s))) {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RestoreError::io("remove existing", p, e)),
        }
    }
    Ok(())
}

/// The checks of [`prepare_output`], deleting nothing.
pub(crate) fn check_output(path: &Path, force: bool) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(RestoreError::OutputIsDirectory {
                path: path.to_path_buf(),
            });
        }
        Ok(m) if m.len() > 0 && !force => {
            return Err(RestoreError::OutputExists {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(RestoreError::io("access the output path", path, e)),
    }
    for suffix in SIDECARS {
        let p = sibling(path, suffix);
        match fs::symlink_metadata(&p) {
            Ok(_) if !force => return Err(RestoreError::SidecarExists { path: p }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RestoreError::io("access the SQLite sidecar", p, e)),
        }
    }
    Ok(())
}

/// Fails if the output exists in any form (a dangling symlink counts too),
/// or if a `-wal` or `-journal` file is next to it: SQLite would apply that
/// to the restored database the first time it opens it. (A stale `-shm` is
/// harmless: SQLite rebuilds it.)
pub(crate) fn ensure_absent(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(RestoreError::OutputExists {
            path: path.to_path_buf(),
        });
    }
    for suffix in ["-wal", "-journal"] {
        let p = sibling(path, suffix);
        if fs::symlink_metadata(&p).is_ok() {
            return Err(RestoreError::SidecarExists { path: p });
        }
    }
    Ok(())
}

/// Creates the output's missing parent directories (mode 0700, as
/// Litestream) and returns the parent.
pub(crate) async fn create_parent_dir(output: &Path) -> Result<PathBuf> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let d = dir.clone();
    tokio::task::spawn_blocking(move || durable::create_dir_all(&d, None))
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(|e| RestoreError::io("create the output directory", &dir, e))?;
    Ok(dir)
}

/// Refuses a file replica that holds only Litestream v0.3 data: a
/// `generations/<16 hex digits>/` directory under `root` and no LTX file in
/// `root/ltx/0..9`. With both, the LTX data is used and the v0.3 data
/// ignored (Litestream would pick whichever is newer, RESTORE.md §3).
pub fn check_v3_replica(root: &Path) -> Result<()> {
    let generation = |name: &str| {
        name.len() == 16
            && name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let has_generation = fs::read_dir(root.join("generations")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && e.file_name().to_str().is_some_and(generation)
        })
    });
    if !has_generation {
        return Ok(());
    }
    let has_ltx = (0..=MAX_LEVEL).any(|level| {
        fs::read_dir(root.join("ltx").join(level.to_string())).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .and_then(ltx::parse_file_name)
                    .is_some()
            })
        })
    });
    if has_ltx {
        tracing::warn!(
            replica = %root.display(),
            "the replica also holds Litestream v0.3 data (generations/); restoring from its LTX files"
        );
        return Ok(());
    }
    Err(RestoreError::V3NotSupported {
        root: root.to_path_buf(),
    })
}

/// For the URL form with `-timestamp` (RESTORE.md §8): fails with "no
/// backups found" when the replica is empty, and with "timestamp does not
/// exist" when `t` is before its oldest or after its newest file.
pub async fn check_timestamp(client: &dyn ReplicaClient, t: SystemTime) -> Result<()> {
    let mut range: Option<(SystemTime, SystemTime)> = None;
    for level in (0..=MAX_LEVEL).rev() {
        let files = client
            .list(level, TxId::ZERO)
            .await
            .map_err(|source| RestoreError::List { level, source })?;
        for f in files {
            range = Some(match range {
                None => (f.created_at, f.created_at),
                Some((lo, hi)) => (lo.min(f.created_at), hi.max(f.created_at)),
            });
        }
    }
    let Some((earliest, latest)) = range else {
        return Err(RestoreError::NoBackups {
            target: Target::Time(t),
            listed: 0,
        });
    };
    if t < earliest || t > latest {
        return Err(RestoreError::TimestampOutOfRange {
            earliest: format_rfc3339(earliest),
            latest: format_rfc3339(latest),
        });
    }
    Ok(())
}

/// A plan as `restore -dry-run` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DryRun {
    /// The command's argument (database path or replica URL).
    pub source: String,
    /// The output path.
    pub target_path: PathBuf,
    /// The backend type (`file`, `s3`, …).
    pub replica: String,
    /// The files.
    pub plan: Plan,
}

/// Plans a restore of `target` without fetching anything.
pub async fn dry_run(
    client: &dyn ReplicaClient,
    source: &str,
    output: &Path,
    target: Target,
) -> Result<DryRun> {
    let plan = plan(client, target).await?;
    Ok(DryRun {
        source: source.to_owned(),
        target_path: output.to_path_buf(),
        replica: client.kind().to_owned(),
        plan,
    })
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    source: &'a str,
    target_path: String,
    replica: &'a str,
    min_txid: String,
    max_txid: String,
    files: Vec<JsonFile>,
}

#[derive(Serialize)]
struct JsonFile {
    level: u8,
    name: String,
    min_txid: String,
    max_txid: String,
    size: u64,
    timestamp: String,
}

impl DryRun {
    /// The text report: a summary, then the files in a table aligned like
    /// Go's `tabwriter` (two spaces after the widest cell of each column).
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Restore plan:\n  source: {}\n  target: {}\n  replica: {}\n  txid range: {} - {}\n\n\
             Files to fetch:\n",
            self.source,
            self.target_path.display(),
            self.replica,
            self.plan.min_txid(),
            self.plan.max_txid(),
        );
        let mut rows = vec![[
            "level".to_owned(),
            "file".to_owned(),
            "min_txid".to_owned(),
            "max_txid".to_owned(),
            "size".to_owned(),
            "timestamp".to_owned(),
        ]];
        for f in &self.plan.files {
            rows.push([
                f.id.level.to_string(),
                f.id.file_name(),
                f.id.min_txid.to_string(),
                f.id.max_txid.to_string(),
                f.size.to_string(),
                format_rfc3339(f.created_at),
            ]);
        }
        let mut widths = [0usize; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count() + 2);
            }
        }
        for row in &rows {
            for (w, cell) in widths.iter().zip(row) {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
            out.push_str(&row[5]);
            out.push('\n');
        }
        out
    }

    /// The `-json` report, indented and escaped as Go's
    /// `json.MarshalIndent` does (`<`, `>`, `&`, U+2028 and U+2029 as
    /// `\uXXXX`), with TXIDs as 16 hex digits and RFC 3339 times.
    pub fn to_json(&self) -> String {
        let plan = JsonPlan {
            source: &self.source,
            target_path: self.target_path.to_string_lossy().into_owned(),
            replica: &self.replica,
            min_txid: self.plan.min_txid().to_string(),
            max_txid: self.plan.max_txid().to_string(),
            files: self
                .plan
                .files
                .iter()
                .map(|f| JsonFile {
                    level: f.id.level,
                    name: f.id.file_name(),
                    min_txid: f.id.min_txid.to_string(),
                    max_txid: f.id.max_txid.to_string(),
                    size: f.size,
                    timestamp: format_rfc3339(f.created_at),
                })
                .collect(),
        };
        go_json(&plan)
    }
}

#[derive(Serialize)]
struct JsonResult<'a> {
    db_path: String,
    replica: &'a str,
    txid: String,
    duration_ms: i64,
    integrity_check: &'a str,
}

/// What `restore -json` prints after a successful restore (RESTORE.md §8):
/// `txid` is empty when unknown (Litestream: v0.3 and follow mode).
pub fn result_json(
    db_path: &Path,
    replica: &str,
    txid: Option<TxId>,
    duration: Duration,
    integrity: super::IntegrityCheck,
) -> String {
    go_json(&JsonResult {
        db_path: db_path.to_string_lossy().into_owned(),
        replica,
        txid: txid.map(|t| t.to_string()).unwrap_or_default(),
        duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        integrity_check: integrity.as_str(),
    })
}

/// Indented JSON escaped as Go's `json.MarshalIndent` escapes it: `<`, `>`,
/// `&`, U+2028 and U+2029 as `\uXXXX` (they can only occur inside strings).
fn go_json(value: &impl Serialize) -> String {
    // Serializing plain strings and integers cannot fail.
    let json = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// `t` in UTC as RFC 3339 with whole seconds (`2006-01-02T15:04:05Z`), as Go
/// formats `time.RFC3339`.
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses a `-timestamp` value: RFC 3339 with optional fractional seconds
/// (`2006-01-02T15:04:05.999Z`, `…+02:00`).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime> {
    let bad = || {
        RestoreError::InvalidOptions(format!(
            "invalid -timestamp {s:?}: expected RFC 3339, e.g. 2000-01-01T00:00:00Z"
        ))
    };
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(bad());
    };
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return Err(bad());
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if sep(at, b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let frac = num(at + 1, digits).ok_or_else(bad)?;
        nanos = u32::try_from(frac * 10i64.pow(9 - digits as u32)).map_err(|_| bad())?;
        at += 1 + digits;
    }
    let offset = match b.get(at..) {
        Some(b"Z") => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == at + 6 && sep(at + 3, b':') => {
            let (Some(h), Some(m)) = (num(at + 1, 2), num(at + 4, 2)) else {
                return Err(bad());
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(bad()),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid_day = usize::try_from(month - 1)
        .ok()
        .and_then(|i| month_days.get(i))
        .is_some_and(|&n| day >= 1 && day <= n);
    if !valid_day || hour > 23 || min > 59 || sec > 59 {
        return Err(bad());
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset;
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nanos))
    };
    Ok(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "output_tests.rs"]
mod tests;
