//! Every run ends with a restore by the same tool, compared with the source:
//! the bench tables' rows must be identical and `PRAGMA integrity_check` of
//! the restored database must say `ok`.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::data;
use crate::measure::ProcStats;
use crate::tools::{Tool, Tools};

/// Outcome of one verification.
pub(crate) struct Verified {
    /// Whether the restored database matches its source.
    pub(crate) ok: bool,
    /// One line: what was compared, and what differed.
    pub(crate) detail: String,
    /// What the restore used.
    pub(crate) restore: ProcStats,
}

/// Checkpoints `db` (the replicator has stopped), restores it with `tool`
/// into `out`, and compares.
pub(crate) fn restore_and_compare(
    tools: &Tools,
    tool: Tool,
    config: &Path,
    db: &Path,
    out: &Path,
    log: &Path,
) -> Result<Verified> {
    let expected = {
        let conn = data::open_app(db)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .with_context(|| format!("checkpoint {}", db.display()))?;
        data::content_digest(&conn)?
    };
    let restore = tools.restore(tool, config, db, out, log)?;
    let conn = Connection::open_with_flags(out, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open the restored database {}", out.display()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| format!("integrity_check failed to run: {e}"));
    let got = data::content_digest(&conn).unwrap_or((0, 0));
    let ok = integrity == "ok" && got == expected;
    let detail = if ok {
        format!("restored {} rows identical, integrity ok", got.0)
    } else {
        format!(
            "RESTORE MISMATCH: source {} rows (digest {:016x}), restored {} rows (digest {:016x}), \
             integrity_check: {integrity}",
            expected.0, expected.1, got.0, got.1
        )
    };
    Ok(Verified {
        ok,
        detail,
        restore,
    })
}
