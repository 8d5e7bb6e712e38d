//! The optional integrity check of a restored database (RESTORE.md §5
//! step 6, `-integrity-check`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::{Connection, OpenFlags};

use super::error::{RestoreError, Result};
use super::output::sibling;

/// Which SQLite check runs on the restored database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IntegrityCheck {
    /// No check (the default).
    #[default]
    None,
    /// `PRAGMA quick_check`: structure, without index cross-checks.
    Quick,
    /// `PRAGMA integrity_check`: everything SQLite can verify.
    Full,
}

impl IntegrityCheck {
    /// The pragma run (`none` runs nothing).
    pub fn pragma(self) -> &'static str {
        match self {
            IntegrityCheck::None => "none",
            IntegrityCheck::Quick => "quick_check",
            IntegrityCheck::Full => "integrity_check",
        }
    }

    /// The flag value: `none`, `quick` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityCheck::None => "none",
            IntegrityCheck::Quick => "quick",
            IntegrityCheck::Full => "full",
        }
    }
}

impl fmt::Display for IntegrityCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrityCheck {
    type Err = RestoreError;

    /// Parses `-integrity-check`: exactly `none`, `quick` or `full`.
    fn from_str(s: &str) -> Result<IntegrityCheck> {
        match s {
            "none" => Ok(IntegrityCheck::None),
            "quick" => Ok(IntegrityCheck::Quick),
            "full" => Ok(IntegrityCheck::Full),
            other => Err(RestoreError::InvalidOptions(format!(
                "invalid -integrity-check {other:?}: expected none, quick or full"
            ))),
        }
    }
}

/// Runs `mode` on the database at `path` on a blocking thread. On failure
/// the database and its `-wal`/`-shm` are removed (a database that fails
/// its check must not be mistaken for a good restore); on success the
/// `-wal`/`-shm` that opening it created are removed.
pub(crate) async fn run(path: &Path, mode: IntegrityCheck) -> Result<()> {
    if mode == IntegrityCheck::None {
        return Ok(());
    }
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || check(&owned, mode))
        .await
        .map_err(|e| RestoreError::io("integrity check of", path, std::io::Error::other(e)))?
}

fn check(path: &Path, mode: IntegrityCheck) -> Result<()> {
    let verdict = first_row(path, mode);
    let sidecars = [sibling(path, "-wal"), sibling(path, "-shm")];
    let failure = match verdict {
        Ok(row) if row == "ok" => None,
        Ok(row) => Some(row),
        Err(e) => Some(e.to_string()),
    };
    let Some(result) = failure else {
        return remove_all(&sidecars);
    };
    let mut doomed: Vec<PathBuf> = vec![path.to_path_buf()];
    doomed.extend(sidecars);
    remove_all(&doomed)?;
    Err(RestoreError::IntegrityFailed {
        path: path.to_path_buf(),
        mode,
        result,
    })
}

/// Opens the database (never creating it) and returns the check's first row.
fn first_row(path: &Path, mode: IntegrityCheck) -> rusqlite::Result<String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    let row = conn.query_row(&format!("PRAGMA {}", mode.pragma()), [], |r| {
        r.get::<_, String>(0)
    })?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(row)
}

fn remove_all(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RestoreError::io("remove", p, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_values_only() {
        for (s, m) in [
            ("none", IntegrityCheck::None),
            ("quick", IntegrityCheck::Quick),
            ("full", IntegrityCheck::Full),
        ] {
            assert_eq!(s.parse::<IntegrityCheck>().unwrap(), m);
            assert_eq!(m.to_string(), s);
        }
        for bad in ["", "Quick", "fast", "integrity_check"] {
            assert!(bad.parse::<IntegrityCheck>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_damaged_database_is_removed_with_its_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bad.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE;
                 CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT printf('row %d', i) FROM n;",
            )
            .unwrap();
        }
        // Scribble over a b-tree page in the middle of the file.
        let mut bytes = std::fs::read(&db).unwrap();
        let mid = bytes.len() / 2 / 1024 * 1024;
        bytes[mid..mid + 1024].fill(0x5a);
        std::fs::write(&db, &bytes).unwrap();

        let err = check(&db, IntegrityCheck::Full).unwrap_err();
        assert!(matches!(err, RestoreError::IntegrityFailed { .. }), "{err}");
        assert!(!db.exists(), "the damaged database is removed");
        assert!(!sibling(&db, "-wal").exists() && !sibling(&db, "-shm").exists());
    }

    #[test]
    fn a_good_wal_mode_database_passes_and_leaves_no_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("good.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
        }
        let before = std::fs::read(&db).unwrap();
        for mode in [IntegrityCheck::Quick, IntegrityCheck::Full] {
            check(&db, mode).unwrap();
            assert_eq!(std::fs::read(&db).unwrap(), before, "{mode}: unchanged");
            assert!(!sibling(&db, "-wal").exists(), "{mode}: no -wal left");
            assert!(!sibling(&db, "-shm").exists(), "{mode}: no -shm left");
        }
    }
}
