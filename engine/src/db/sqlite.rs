//! freshet's own SQLite connections to a replicated database
//! (REPLICATION.md §2): WAL mode, no automatic checkpoints on our side, the
//! WAL kept on close, and a long read transaction that stops any checkpoint
//! from copying frames we have not replicated yet.

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::error::{DbError, Result};

/// Checkpoint modes freshet runs (REPLICATION.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Copy what it can without waiting.
    Passive,
    /// Wait for readers and truncate the WAL to zero bytes.
    Truncate,
}

impl CheckpointMode {
    /// The name as SQLite and the metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

/// The result row of `PRAGMA wal_checkpoint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointResult {
    /// The checkpoint could not finish because of a reader or writer.
    pub busy: bool,
    /// Frames in the WAL.
    pub log_frames: i64,
    /// Frames copied into the database.
    pub checkpointed: i64,
}

thread_local! {
    /// `busy-timeout` of the database whose connections this thread uses (a
    /// database's connections live on its monitor thread).
    static BUSY_TIMEOUT: Cell<Duration> = const { Cell::new(Duration::from_secs(1)) };
    /// When the current wait for a lock started.
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Longest sleep between two attempts at a lock.
const BUSY_MAX_SLEEP: Duration = Duration::from_millis(1);

/// Busy handler of our connections: retries within the busy timeout,
/// sleeping 20 µs at first and never more than [`BUSY_MAX_SLEEP`]. SQLite's
/// own handler backs off to 100 ms sleeps; against an application that
/// commits back to back the write lock is free only for microseconds
/// between its transactions, so such sleeps kept a checkpoint's seal
/// waiting for hundreds of milliseconds while the WAL grew.
fn retry_soon(attempt: i32) -> bool {
    let now = Instant::now();
    let since = BUSY_SINCE.with(|s| match (attempt, s.get()) {
        (0, _) | (_, None) => {
            s.set(Some(now));
            now
        }
        (_, Some(t)) => t,
    });
    if now.duration_since(since) >= BUSY_TIMEOUT.with(Cell::get) {
        return false;
    }
    let shift = u32::try_from(attempt / 8).unwrap_or(u32::MAX).min(6);
    let sleep = Duration::from_micros(20u64 << shift).min(BUSY_MAX_SLEEP);
    std::thread::sleep(sleep);
    true
}

/// Two connections: `reader` holds the long read transaction and runs our
/// checkpoints (after letting go of it); `writer` seals the database and
/// writes the bookkeeping row.
#[derive(Debug)]
pub(super) struct Sqlite {
    reader: Connection,
    writer: Connection,
    reading: bool,
    sealed: bool,
}

impl Sqlite {
    /// Opens the database, switches it to WAL mode, creates Litestream's
    /// bookkeeping tables (so restores of either tool match byte for byte)
    /// and returns the page size.
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> Result<(Sqlite, u32)> {
        let open = |what| {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut c = Connection::open_with_flags(path, flags).map_err(DbError::sqlite(what))?;
            BUSY_TIMEOUT.with(|t| t.set(busy_timeout));
            c.busy_handler(Some(retry_soon))
                .map_err(DbError::sqlite("set busy timeout"))?;
            // Only the application checkpoints automatically; ours are
            // explicit (REPLICATION.md §2 step 3).
            c.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(DbError::sqlite("disable autocheckpoint"))?;
            // Keep the -wal file when our last connection closes, so a restart
            // resumes instead of taking a full snapshot (§2 step 4).
            let mut persist: i32 = 1;
            c.file_control(
                Some(rusqlite::MAIN_DB),
                rusqlite::FileControl::PersistWal(&mut persist),
            )
            .map_err(DbError::sqlite("persist WAL"))?;
            Ok::<_, DbError>(c)
        };
        let reader = open("open database")?;
        let mode: String = reader
            .query_row("PRAGMA journal_mode = wal", [], |r| r.get(0))
            .map_err(DbError::sqlite("enable WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Unsupported(format!(
                "{} is in journal_mode={mode} and could not be switched to WAL; \
                 replication needs WAL mode",
                path.display()
            )));
        }
        reader
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
                 CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
            )
            .map_err(DbError::sqlite("create bookkeeping tables"))?;
        let writer = open("open database")?;
        let page_size: u32 = reader
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(DbError::sqlite("read page size"))?;
        let mut db = Sqlite {
            reader,
            writer,
            reading: false,
            sealed: false,
        };
        db.begin_read()?;
        Ok((db, page_size))
    }

    /// Starts the long read transaction (REPLICATION.md §2 step 8).
    pub(super) fn begin_read(&mut self) -> Result<()> {
        if self.reading {
            return Ok(());
        }
        self.reader
            .execute_batch("BEGIN")
            .map_err(DbError::sqlite("begin read transaction"))?;
        let started = self
            .reader
            .query_row("SELECT COUNT(1) FROM _litestream_seq", [], |r| {
                r.get::<_, i64>(0)
            });
        if let Err(e) = started {
            let _ = self.reader.execute_batch("ROLLBACK");
            return Err(DbError::sqlite("begin read transaction")(e));
        }
        self.reading = true;
        Ok(())
    }

    /// Ends the long read transaction.
    pub(super) fn end_read(&mut self) -> Result<()> {
        if !self.reading {
            return Ok(());
        }
        self.reading = false;
        self.reader
            .execute_batch("ROLLBACK")
            .map_err(DbError::sqlite("end read transaction"))
    }

    /// Appends a small transaction to the WAL, so the WAL has a header and a
    /// completed checkpoint starts a new WAL generation (§2 step 11, §5 step 8).
    pub(super) fn bump_seq(&self) -> Result<()> {
        self.writer
            .execute(
                "INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET seq = seq + 1",
                [],
            )
            .map(|_| ())
            .map_err(DbError::sqlite("write bookkeeping row"))
    }

    /// Takes SQLite's write lock so no commit can land until [`unseal`]
    /// (§5 step 4). Nothing is ever committed by it.
    ///
    /// [`unseal`]: Self::unseal
    pub(super) fn seal(&mut self) -> Result<()> {
        self.writer
            .execute_batch("BEGIN; INSERT INTO _litestream_lock (id) VALUES (1);")
            .map_err(|e| {
                let _ = self.writer.execute_batch("ROLLBACK");
                DbError::sqlite("take the write lock")(e)
            })?;
        self.sealed = true;
        Ok(())
    }

    /// Releases the write lock taken by [`seal`](Self::seal).
    pub(super) fn unseal(&mut self) -> Result<()> {
        if !self.sealed {
            return Ok(());
        }
        self.sealed = false;
        self.writer
            .execute_batch("ROLLBACK")
            .map_err(DbError::sqlite("release the write lock"))
    }

    /// Runs `PRAGMA wal_checkpoint(mode)` with our read transaction released
    /// for exactly that long (§5 step 6).
    pub(super) fn checkpoint(&mut self, mode: CheckpointMode) -> Result<CheckpointResult> {
        self.end_read()?;
        let sql = format!("PRAGMA wal_checkpoint({})", mode.as_str());
        let result = self.reader.query_row(&sql, [], |r| {
            Ok(CheckpointResult {
                busy: r.get::<_, i64>(0)? != 0,
                log_frames: r.get(1)?,
                checkpointed: r.get(2)?,
            })
        });
        let reacquired = self.begin_read();
        let result = result.map_err(DbError::sqlite("checkpoint"))?;
        reacquired?;
        Ok(result)
    }

    /// Releases everything (§10): the seal, the read transaction.
    pub(super) fn close(mut self) -> Result<()> {
        self.unseal()?;
        self.end_read()
    }
}
