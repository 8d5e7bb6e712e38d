//! The per-database monitor thread: it owns the [`Db`] (SQLite connections
//! are not shared), sleeps until inotify or its interval wakes it, syncs, and
//! answers commands from the async side.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use backends::{ByteRange, FileId, FileInfo, ReplicaClient, SNAPSHOT_LEVEL};
use freshet_io::durable;
use ltx::TxId;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};

use super::wake::Wake;
use crate::db::{Db, DbError, SyncReport};
use crate::metrics::DbMetrics;

/// Backoff ceiling after sync errors (REPLICATION.md §11).
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a persisting error is logged again.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);
/// Consecutive disk-full errors after which stale `*.tmp` files are removed.
const DISK_FULL_CLEANUP_AFTER: u32 = 3;

/// Requests to a monitor.
#[derive(Debug)]
pub(crate) enum Command {
    /// Something changed on disk.
    Wake(Wake),
    /// Sync now and report.
    Sync(oneshot::Sender<Result<SyncReport, String>>),
    /// Stream a level-9 snapshot into the replica (`None`: nothing synced
    /// yet).
    Snapshot(oneshot::Sender<Result<Option<FileInfo>, String>>),
    /// Final sync, release SQLite, stop.
    Stop(oneshot::Sender<Result<SyncReport, String>>),
}

/// What a monitor thread needs.
pub(crate) struct Monitor {
    pub(crate) db: Db,
    pub(crate) client: Arc<dyn ReplicaClient>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) local: watch::Sender<TxId>,
    /// `monitor-interval`: the fallback poll and the minimum spacing of
    /// syncs; `None` disables background syncs (explicit ones still run).
    pub(crate) interval: Option<Duration>,
    pub(crate) name: String,
    pub(crate) metrics: DbMetrics,
}

impl Monitor {
    /// The thread body. Returns when told to stop or when every sender is
    /// gone (after a final sync in both cases).
    pub(crate) fn run(mut self, rx: Receiver<Command>) {
        let mut checked_replica = false;
        let mut last_sync: Option<Instant> = None;
        let mut pending = true; // sync once at start
        // The WAL ran a checkpoint's worth ahead: sync without waiting out
        // the interval, so the WAL stays near the checkpoint threshold
        // whatever the write rate.
        let mut urgent = false;
        let mut backoff = self.interval.unwrap_or(Duration::from_secs(1));
        let mut failed_at: Option<Instant> = None;
        let mut last_logged: Option<Instant> = None;
        let mut disk_full = 0u32;
        loop {
            let wait = match (self.interval, failed_at) {
                (_, Some(at)) => backoff.saturating_sub(at.elapsed()),
                (None, None) => Duration::from_secs(3600),
                (Some(_), None) if urgent => Duration::ZERO,
                (Some(iv), None) => {
                    let since = last_sync.map(|t| t.elapsed()).unwrap_or(iv);
                    if pending {
                        iv.saturating_sub(since)
                    } else {
                        iv
                    }
                }
            };
            let cmd = if wait.is_zero() {
                Err(RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(wait)
            };
            match cmd {
                Ok(Command::Wake(_)) => {
                    // The lag of a change starts when it is first noticed.
                    self.metrics.lag.woke(Instant::now());
                    pending = true;
                    urgent = urgent || (self.interval.is_some() && self.db.sync_is_urgent());
                    continue;
                }
                Ok(Command::Sync(reply)) => {
                    let r = self.sync(&mut checked_replica);
                    last_sync = Some(Instant::now());
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                    continue;
                }
                Ok(Command::Snapshot(reply)) => {
                    let _ = reply.send(self.snapshot().map_err(|e| e.to_string()));
                    continue;
                }
                Ok(Command::Stop(reply)) => {
                    let _ = reply.send(self.close().map_err(|e| e.to_string()));
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let name = self.name.clone();
                    if let Err(e) = self.close() {
                        tracing::error!(db = %name, error = %e, "final sync failed");
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.interval.is_none() && failed_at.is_none() {
                continue;
            }
            last_sync = Some(Instant::now());
            pending = false;
            urgent = false;
            match self.sync(&mut checked_replica) {
                Ok(_) => {
                    if failed_at.is_some() {
                        tracing::info!(db = %self.name, "sync recovered");
                    }
                    failed_at = None;
                    backoff = self.interval.unwrap_or(Duration::from_secs(1));
                    disk_full = 0;
                }
                Err(e) => {
                    failed_at = Some(Instant::now());
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if e.is_disk_full() {
                        disk_full += 1;
                        if disk_full >= DISK_FULL_CLEANUP_AFTER {
                            let _ = durable::remove_temp_files(self.db.meta().root());
                            disk_full = 0;
                        }
                    }
                    if last_logged.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY) {
                        tracing::error!(db = %self.name, error = %e, retry_in = ?backoff, "sync failed");
                        last_logged = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// One sync step with its metrics (CLI_CONFIG.md §6); publishes the
    /// local position once the lag tracker knows the files behind it, so
    /// the uploader's confirmation can never arrive first.
    fn sync(&mut self, checked_replica: &mut bool) -> Result<SyncReport, DbError> {
        let started = Instant::now();
        let result = self.sync_step(checked_replica);
        let m = &self.metrics;
        m.sync_count.inc();
        m.sync_seconds.inc_by(started.elapsed().as_secs_f64());
        let txid = self.db.txid();
        match &result {
            Ok(report) => {
                m.disk_full.set(0.0);
                let written: Vec<TxId> = report.written.iter().map(|w| w.txid).collect();
                m.lag.synced(&written, txid, started);
                let wal: u64 = report.written.iter().map(|w| w.wal_bytes).sum();
                m.total_wal_bytes.inc_by(wal as f64);
                m.txid.set(txid.get() as f64);
                if let Some(offset) = self.db.synced_wal_offset() {
                    m.wal_size.set(offset as f64);
                }
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |md| md.len());
                m.db_size.set(size(self.db.path()) as f64);
                m.wal_bytes.set(size(self.db.wal_path()) as f64);
            }
            Err(e) => {
                m.sync_errors.inc();
                m.disk_full.set(if e.is_disk_full() { 1.0 } else { 0.0 });
                m.lag.sync_failed(started);
            }
        }
        // Publish the position whenever it moved: after new files, and on
        // the first open after a restart, when files staged by the previous
        // run (and perhaps never uploaded) are the position.
        if result.is_ok() && *self.local.borrow() != txid {
            self.local.send_replace(txid);
        }
        result
    }

    fn sync_step(&mut self, checked_replica: &mut bool) -> Result<SyncReport, DbError> {
        if !self.db.ensure_open()? {
            return Ok(SyncReport::default());
        }
        if !*checked_replica {
            self.catch_up_with_replica()?;
            *checked_replica = true;
        }
        let report = self.db.sync()?;
        for w in &report.written {
            match w.snapshot {
                Some(reason) => {
                    tracing::info!(db = %self.name, txid = %w.txid, pages = w.pages, %reason, "wrote snapshot")
                }
                None => {
                    tracing::debug!(db = %self.name, txid = %w.txid, pages = w.pages, wal_bytes = w.wal_bytes, "wrote L0")
                }
            }
        }
        Ok(report)
    }

    /// REPLICATION.md §9.2: when the replica is ahead of the local position
    /// (a restored backup, a lost metadata directory), continue the
    /// replica's TXID sequence instead of reusing numbers: clear local L0
    /// files and adopt the replica's newest L0 file as the position; the
    /// next sync cannot prove continuity with it and writes a snapshot.
    fn catch_up_with_replica(&mut self) -> Result<(), DbError> {
        let client = self.client.clone();
        let remote = self
            .runtime
            .block_on(async move { client.list(0, TxId::ZERO).await });
        let remote = remote
            .map_err(|e| DbError::Unsupported(format!("listing the replica's level 0: {e}")))?;
        let Some(newest) = remote.iter().max_by_key(|f| f.id.max_txid).copied() else {
            return Ok(());
        };
        if self.db.txid() >= newest.id.max_txid {
            return Ok(());
        }
        tracing::warn!(
            db = %self.name,
            local = %self.db.txid(),
            replica = %newest.id.max_txid,
            "database is behind its replica; continuing the replica's TXIDs with a fresh snapshot"
        );
        // Only the header is needed: the next sync cannot prove continuity
        // with a file it did not write from this WAL and takes a snapshot.
        // (The newest file may be a full snapshot: never download it whole.)
        let client = self.client.clone();
        let id = FileId::new(0, newest.id.max_txid, newest.id.max_txid);
        let range = ByteRange {
            offset: 0,
            len: Some(ltx::HEADER_SIZE as u64),
        };
        let bytes = self.runtime.block_on(async move {
            let mut s = client.open(id, range).await?;
            let mut v = Vec::new();
            s.read_to_end(&mut v)
                .await
                .map_err(|e| backends::Error::Body {
                    what: id.to_string(),
                    source: e,
                })?;
            Ok::<_, backends::Error>(v)
        });
        let bytes = bytes.map_err(|e| {
            DbError::Unsupported(format!(
                "reading the header of the replica's newest L0 file: {e}"
            ))
        })?;
        let mut head = [0u8; ltx::HEADER_SIZE];
        let n = bytes.len().min(ltx::HEADER_SIZE);
        head[..n].copy_from_slice(&bytes[..n]);
        let header = ltx::Header::from_bytes(&head)?;
        let meta = self.db.meta().clone();
        meta.reset()?;
        meta.prepare()?;
        meta.write_streamed(&header, None)?;
        self.db.adopt_position(header);
        self.local.send_replace(self.db.txid());
        Ok(())
    }

    /// Streams a level-9 snapshot straight into the replica (REPLICATION.md
    /// §8): pages are compressed in parallel and piped into the backend's
    /// write (file: temp + rename; S3: multipart), with no local copy. The
    /// file exists on the replica only once the whole write succeeded.
    fn snapshot(&mut self) -> Result<Option<FileInfo>, DbError> {
        if !self.db.ensure_open()? {
            return Ok(None);
        }
        let (client, runtime) = (self.client.clone(), self.runtime.clone());
        let mut upload = None;
        let written = self.db.write_snapshot(|header| {
            let id = FileId::new(SNAPSHOT_LEVEL, TxId::new(1), header.max_txid);
            let (w, task) = super::stream::start_upload(&runtime, client, id, header.timestamp);
            upload = Some((id, task));
            Ok(w)
        });
        let written = match written {
            Ok(None) => return Ok(None),
            Ok(Some((_, w))) => Ok(w),
            Err(e) => Err(e),
        };
        let Some((id, task)) = upload else {
            return written.map(|_| None);
        };
        super::stream::end_upload(&self.runtime, format!("snapshot {id}"), written, task).map(Some)
    }

    fn close(self) -> Result<SyncReport, DbError> {
        let Monitor { db, local, .. } = self;
        let report = db.close()?;
        if let Some(w) = report.written.last() {
            local.send_replace(w.txid);
        }
        Ok(report)
    }
}
