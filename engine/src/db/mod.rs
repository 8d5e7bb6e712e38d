//! One replicated database, local side: the SQLite connections, the WAL, the
//! staged level-0 files and checkpoints (REPLICATION.md §2–6, §9–10).
//!
//! [`Db`] is synchronous and owned by one thread; it never touches the
//! replica itself. Each [`Db::sync`] turns the frames committed since the
//! previous sync into one L0 file in the metadata directory (or a full
//! snapshot when continuity cannot be proven) and then checkpoints when the
//! policy says so. A full snapshot goes to a [`SnapshotSink`] instead when
//! one is set, so the base copy of a large database is never staged: only a
//! small record of it (`ltx/streamed`, [`MetaDir::write_streamed`]) is kept,
//! written after the replica holds the whole file, and it is the position
//! on a restart.

mod backlog;
mod build;
mod checkpoint;
mod continuity;
mod error;
mod identity;
mod meta;
mod snapshot;
mod sqlite;
mod step;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ltx::{Header, TxId};

pub use checkpoint::{
    CheckpointPolicy, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MIN_CHECKPOINT_PAGES,
    DEFAULT_TRUNCATE_PAGES, wal_bytes,
};
pub use continuity::SnapshotReason;
pub use error::{DbError, Result};
pub use meta::{LastPage, MetaDir};
pub use sqlite::{CheckpointMode, CheckpointResult};

use crate::wal;
use sqlite::Sqlite;

/// Settings of one database (CLI_CONFIG.md §3.3).
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// The database file.
    pub path: PathBuf,
    /// The metadata directory.
    pub meta_path: PathBuf,
    /// SQLite busy timeout for our connections.
    pub busy_timeout: Duration,
    /// When to checkpoint.
    pub checkpoint: CheckpointPolicy,
    /// WAL bytes one incremental step may convert (`None` = unlimited).
    pub max_sync_wal_bytes: Option<u64>,
}

impl DbOptions {
    /// Defaults for a database at `path`, with the metadata directory
    /// `<dir>/.<name>-litestream` (REPLICA_LAYOUT.md §8).
    pub fn new(path: impl Into<PathBuf>) -> DbOptions {
        let path = path.into();
        let meta_path = crate::config::default_meta_path(&path);
        DbOptions {
            path,
            meta_path,
            busy_timeout: Duration::from_secs(1),
            checkpoint: CheckpointPolicy::default(),
            max_sync_wal_bytes: Some(64 << 20),
        }
    }
}

/// Takes full-snapshot L0 files straight to the replica, so a database's
/// base copy is never staged in the metadata directory.
pub trait SnapshotSink: Send {
    /// Streams the L0 file `header` describes into the replica, its bytes
    /// written by `fill`, and returns `Ok(true)` once the replica holds the
    /// whole file. Returns `Ok(false)` without calling `fill` when it cannot
    /// take the file now (the replica lacks the files before it): the file is
    /// then staged locally as usual. After an error nothing of the file is
    /// on the replica.
    fn stream_l0(
        &mut self,
        header: &Header,
        fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
    ) -> Result<bool>;
}

/// What one L0 file held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its TXID.
    pub txid: TxId,
    /// Why it is a snapshot, if it is one.
    pub snapshot: Option<SnapshotReason>,
    /// Pages in it.
    pub pages: u64,
    /// WAL bytes it covers.
    pub wal_bytes: u64,
    /// Its size.
    pub file_bytes: u64,
    /// Whether it went straight to the replica (no local copy).
    pub streamed: bool,
}

/// What a [`Db::sync`] did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    /// Files written, oldest first.
    pub written: Vec<Written>,
    /// Checkpoints run.
    pub checkpoints: Vec<(CheckpointMode, CheckpointResult)>,
}

struct Open {
    sqlite: Sqlite,
    db_file: File,
    page_size: u32,
}

/// The last WAL frame the newest L0 file consumed, remembered so the next
/// continuity check does not have to decode that file (§4.2 step 7).
#[derive(Clone, Copy, Debug)]
struct LastFrame {
    txid: TxId,
    pgno: u32,
    crc: u64,
}

/// One database being replicated.
pub struct Db {
    opts: DbOptions,
    wal_path: PathBuf,
    meta: MetaDir,
    open: Option<Open>,
    /// Header of the newest local L0 file: the position.
    pos: Option<Header>,
    /// End of replicated WAL content (§4.5).
    last_synced_wal_offset: Option<u64>,
    synced_to_wal_end: bool,
    /// See [`continuity::Previous::restarted_after_seal`]; consumed by the
    /// next sync step.
    restarted_after_seal: bool,
    synced_since_checkpoint: bool,
    last_frame: Option<LastFrame>,
    /// A snapshot the next sync must write whatever the WAL says: the
    /// database file was replaced.
    pending_snapshot: Option<SnapshotReason>,
    scratch: Vec<u8>,
    sink: Option<Box<dyn SnapshotSink>>,
    checkpoint_metrics: Option<crate::metrics::CheckpointMetrics>,
    /// The WAL index, opened lazily for [`Db::unsynced_frames_hint`].
    shm: Option<File>,
    /// Runs between the continuity check and the WAL read of a sync step,
    /// so tests can change the WAL in that window.
    #[cfg(test)]
    after_check: Option<Box<dyn FnMut() + Send>>,
    /// Test hook: runs after our checkpoint restarted the WAL, before the
    /// sync step that follows.
    #[cfg(test)]
    after_restart: Option<Box<dyn FnMut() + Send>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.opts.path)
            .field("txid", &self.txid())
            .finish()
    }
}

impl Db {
    /// A database to replicate; nothing is opened until the first sync.
    pub fn new(opts: DbOptions) -> Db {
        let mut wal = opts.path.clone().into_os_string();
        wal.push("-wal");
        let (file_mode, dir_mode) = modes(&opts.path);
        let meta = MetaDir::new(&opts.meta_path, file_mode, dir_mode);
        Db {
            opts,
            wal_path: PathBuf::from(wal),
            meta,
            open: None,
            pos: None,
            last_synced_wal_offset: None,
            synced_to_wal_end: false,
            restarted_after_seal: false,
            synced_since_checkpoint: false,
            last_frame: None,
            pending_snapshot: None,
            scratch: Vec::new(),
            sink: None,
            checkpoint_metrics: None,
            shm: None,
            #[cfg(test)]
            after_check: None,
            #[cfg(test)]
            after_restart: None,
        }
    }

    /// Sends full-snapshot L0 files to `sink` instead of staging them.
    pub fn set_snapshot_sink(&mut self, sink: Box<dyn SnapshotSink>) {
        self.sink = Some(sink);
    }

    /// Counts checkpoints into `m` (CLI_CONFIG.md §6).
    pub fn set_checkpoint_metrics(&mut self, m: crate::metrics::CheckpointMetrics) {
        self.checkpoint_metrics = Some(m);
    }

    /// The `-wal` file.
    pub fn wal_path(&self) -> &Path {
        &self.wal_path
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.opts.path
    }

    /// The staged L0 files.
    pub fn meta(&self) -> &MetaDir {
        &self.meta
    }

    /// The local position: TXID of the newest L0 file (zero before any).
    pub fn txid(&self) -> TxId {
        self.pos.map(|h| h.max_txid).unwrap_or(TxId::ZERO)
    }

    /// The page size, once open.
    pub fn page_size(&self) -> Option<u32> {
        self.open.as_ref().map(|o| o.page_size)
    }

    /// Whether the database has been opened.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// End of the WAL content replicated so far, if known.
    pub fn synced_wal_offset(&self) -> Option<u64> {
        self.last_synced_wal_offset
    }

    /// Opens the database if it exists (REPLICATION.md §2). `Ok(false)`: no
    /// database file yet, try again next tick.
    pub fn ensure_open(&mut self) -> Result<bool> {
        if self.open.is_some() {
            return Ok(true);
        }
        if !self.opts.path.exists() {
            return Ok(false);
        }
        let (sqlite, page_size) = Sqlite::open(&self.opts.path, self.opts.busy_timeout)?;
        let db_file =
            File::open(&self.opts.path).map_err(|e| DbError::io("open", &self.opts.path, e))?;
        self.meta.prepare()?;
        let wal_len = std::fs::metadata(&self.wal_path)
            .map(|m| m.len())
            .unwrap_or(0);
        if wal_len < wal::HEADER_SIZE as u64 {
            sqlite.bump_seq()?;
        }
        let txid = self.meta.newest_txid()?;
        self.pos = if txid == TxId::ZERO {
            None
        } else {
            Some(self.meta.verify_l0(txid)?)
        };
        // A snapshot streamed to the replica after the newest staged file is
        // the position; its record keeps the last page for continuity.
        if let Some((header, last)) = self.meta.read_streamed()?
            && header.max_txid > txid
        {
            self.pos = Some(header);
            self.last_frame = last.map(|(pgno, crc)| LastFrame {
                txid: header.max_txid,
                pgno,
                crc,
            });
        }
        self.open = Some(Open {
            sqlite,
            db_file,
            page_size,
        });
        Ok(true)
    }

    /// Replaces the local position with `header`'s file, already recorded in
    /// the metadata directory by the caller (the database-behind-replica
    /// case, REPLICATION.md §9.2): the next sync writes a snapshot after it.
    pub fn adopt_position(&mut self, header: Header) {
        self.pos = Some(header);
        self.last_frame = None;
        self.synced_to_wal_end = false;
    }

    /// Brings the replica position up to date with the WAL: sync steps until
    /// caught up, then a checkpoint if the policy asks for one (§4, §5).
    pub fn sync(&mut self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        self.forget_replaced_file()?;
        if !self.ensure_open()? {
            return Ok(report);
        }
        // Re-taken here if an earlier failure left it released (§2 step 8).
        self.sqlite()?.begin_read()?;
        if let Some(reason) = self.pending_snapshot {
            report
                .written
                .extend(self.sync_step(None, Some(reason))?.written);
            self.pending_snapshot = None;
        }
        let orig = self.logical_wal_size()?;
        self.sync_to_end(&mut report)?;
        self.checkpoint_if_needed(orig, &mut report)?;
        Ok(report)
    }

    /// Sync steps until one reaches the WAL's end (or finds nothing new).
    fn sync_to_end(&mut self, report: &mut SyncReport) -> Result<()> {
        loop {
            let step = self.sync_step(self.opts.max_sync_wal_bytes, None)?;
            if let Some(w) = step.written {
                report.written.push(w);
            }
            if step.written.is_none() || !step.limited || step.at_wal_end {
                return Ok(());
            }
        }
    }

    /// Closes the database if its file was deleted or replaced (a new
    /// inode under the name); the next open snapshots the new file, since
    /// nothing links its content to what was replicated.
    fn forget_replaced_file(&mut self) -> Result<()> {
        let Some(open) = &self.open else {
            return Ok(());
        };
        if identity::check(&self.opts.path, &open.db_file)? == identity::Identity::Same {
            return Ok(());
        }
        self.open = None;
        self.shm = None;
        self.last_frame = None;
        self.last_synced_wal_offset = None;
        self.synced_to_wal_end = false;
        self.pending_snapshot = Some(SnapshotReason::DatabaseReplaced);
        Ok(())
    }

    fn logical_wal_size(&self) -> Result<u64> {
        match self.last_synced_wal_offset {
            Some(o) => Ok(o),
            None => Ok(std::fs::metadata(&self.wal_path)
                .map(|m| m.len())
                .unwrap_or(0)),
        }
    }

    /// Writes a full snapshot L0 file now, whatever the WAL says.
    pub fn force_snapshot(&mut self, reason: SnapshotReason) -> Result<Option<Written>> {
        if !self.ensure_open()? {
            return Ok(None);
        }
        Ok(self.sync_step(None, Some(reason))?.written)
    }

    /// Final sync and release of SQLite (REPLICATION.md §10). The WAL stays.
    pub fn close(mut self) -> Result<SyncReport> {
        let report = if self.open.is_some() {
            let mut report = SyncReport::default();
            loop {
                let step = self.sync_step(None, None)?;
                match step.written {
                    Some(w) => report.written.push(w),
                    None => break,
                }
                if step.at_wal_end {
                    break;
                }
            }
            report
        } else {
            SyncReport::default()
        };
        if let Some(open) = self.open.take() {
            open.sqlite.close()?;
        }
        Ok(report)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Modes for staged files and directories: the database's and its
/// directory's (REPLICA_LAYOUT.md §8), or 0600/0700.
fn modes(db: &Path) -> (u32, u32) {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::metadata(db)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o600);
    let dir = db
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.permissions().mode())
        .unwrap_or(0o700);
    (file & 0o666, dir & 0o777)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod stream_tests;
