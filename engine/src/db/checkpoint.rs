//! Checkpoint policy and procedure (REPLICATION.md §5): seal, sync, then
//! checkpoint, so no committed frame is ever copied into the database file
//! and removed from the WAL before it was replicated.

use std::time::{Duration, Instant, SystemTime};

use super::continuity::SnapshotReason;
use super::error::{DbError, Result};
use super::sqlite::{CheckpointMode, CheckpointResult};
use super::{Db, SyncReport};
use crate::wal;

/// Passive checkpoint threshold, in pages (`min-checkpoint-page-count`).
pub const DEFAULT_MIN_CHECKPOINT_PAGES: u32 = 1000;
/// Emergency TRUNCATE threshold, in pages (`truncate-page-n`; ≈500 MB of
/// 4 KiB pages).
pub const DEFAULT_TRUNCATE_PAGES: u32 = 121_359;
/// Time-based checkpoint period (`checkpoint-interval`).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// When [`Db::sync`] checkpoints (REPLICATION.md §1, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// PASSIVE once the WAL holds this many pages.
    pub min_page_count: u32,
    /// TRUNCATE once the WAL holds this many pages (0 = never).
    pub truncate_page_n: u32,
    /// PASSIVE when the database file is older than this and something was
    /// synced since the last checkpoint (`None` = off).
    pub interval: Option<Duration>,
}

impl Default for CheckpointPolicy {
    fn default() -> CheckpointPolicy {
        CheckpointPolicy {
            min_page_count: DEFAULT_MIN_CHECKPOINT_PAGES,
            truncate_page_n: DEFAULT_TRUNCATE_PAGES,
            interval: Some(DEFAULT_CHECKPOINT_INTERVAL),
        }
    }
}

/// WAL bytes holding `n` frames of `page_size` (REPLICATION.md §1).
pub fn wal_bytes(page_size: u32, n: u32) -> u64 {
    wal::HEADER_SIZE as u64 + wal::frame_size(page_size) * u64::from(n)
}

impl Db {
    /// Runs the policy of §5 after a sync: `orig` and the current logical
    /// WAL size decide.
    pub(super) fn checkpoint_if_needed(
        &mut self,
        orig: u64,
        report: &mut SyncReport,
    ) -> Result<()> {
        let Some(page_size) = self.page_size() else {
            return Ok(());
        };
        let policy = self.opts.checkpoint;
        let new = self.logical_wal_size()?;
        if policy.truncate_page_n > 0 && orig >= wal_bytes(page_size, policy.truncate_page_n) {
            let threshold = wal_bytes(page_size, policy.truncate_page_n);
            match self.checkpoint_synced(CheckpointMode::Passive, report) {
                Ok(r) if !r.busy && self.logical_wal_size()? < threshold => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e),
            }
            self.checkpoint_synced(CheckpointMode::Truncate, report)?;
            return Ok(());
        }
        let due = if new >= wal_bytes(page_size, policy.min_page_count) {
            true
        } else if let Some(interval) = policy.interval {
            self.synced_since_checkpoint
                && new > wal_bytes(page_size, 1)
                && self.db_older_than(interval)
        } else {
            false
        };
        if due {
            match self.checkpoint_synced(CheckpointMode::Passive, report) {
                Ok(_) => {}
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn db_older_than(&self, interval: Duration) -> bool {
        std::fs::metadata(&self.opts.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= interval)
    }

    /// Checkpoints in `mode` without losing a frame (REPLICATION.md §5):
    /// sync; for PASSIVE, take the write lock and sync again so nothing can
    /// commit unseen; checkpoint with our read transaction released; start a
    /// new WAL generation; sync what follows, or snapshot after a TRUNCATE.
    pub fn checkpoint(
        &mut self,
        mode: CheckpointMode,
        report: &mut SyncReport,
    ) -> Result<CheckpointResult> {
        if mode == CheckpointMode::Passive {
            self.drain(report)?;
        }
        self.checkpoint_synced(mode, report)
    }

    /// [`checkpoint`](Self::checkpoint) right after a sync reached the WAL's
    /// end: what was committed in between is little and synced under the
    /// seal.
    fn checkpoint_synced(
        &mut self,
        mode: CheckpointMode,
        report: &mut SyncReport,
    ) -> Result<CheckpointResult> {
        let started = Instant::now();
        let result = self.checkpoint_steps(mode, report);
        if let Some(m) = &self.checkpoint_metrics {
            m.record(mode.as_str(), started.elapsed(), result.is_ok());
        }
        result
    }

    fn checkpoint_steps(
        &mut self,
        mode: CheckpointMode,
        report: &mut SyncReport,
    ) -> Result<CheckpointResult> {
        let page_size = self
            .page_size()
            .ok_or(DbError::Internal("checkpoint before open"))?;
        let header_before = self.wal_header_bytes()?;
        if mode != CheckpointMode::Passive {
            self.drain(report)?;
        }
        let mut sealed_at = Instant::now();
        if mode == CheckpointMode::Passive {
            self.sqlite()?.seal()?;
            sealed_at = Instant::now();
            if let Err(e) = self.drain(report) {
                let _ = self.sqlite()?.unseal();
                return Err(e);
            }
        }
        let synced = self
            .last_synced_wal_offset
            .unwrap_or(wal::HEADER_SIZE as u64);
        let pre_frames =
            synced.saturating_sub(wal::HEADER_SIZE as u64) / wal::frame_size(page_size);
        let result = self.sqlite()?.checkpoint(mode);
        if mode == CheckpointMode::Passive {
            self.sqlite()?.unseal()?;
        }
        let result = result?;
        tracing::debug!(
            db = %self.opts.path.display(),
            mode = mode.as_str(),
            busy = result.busy,
            frames = result.log_frames,
            copied = result.checkpointed,
            write_lock_ms = sealed_at.elapsed().as_secs_f64() * 1e3,
            "checkpoint"
        );
        report.checkpoints.push((mode, result));
        self.sqlite()?.bump_seq()?;

        if self.wal_header_bytes()? == header_before {
            // Not restarted (readers still in the WAL): nothing moved.
            self.synced_since_checkpoint = false;
            return Ok(result);
        }
        let unseen = result.log_frames > pre_frames as i64;
        if mode == CheckpointMode::Passive || !unseen && mode != CheckpointMode::Truncate {
            // Sealed, so every frame before the restart was synced, by
            // whichever checkpoint copied them (the application's may have
            // beaten ours to it): the restart is one to follow.
            self.restarted_after_seal = mode == CheckpointMode::Passive;
            #[cfg(test)]
            if let Some(hook) = self.after_restart.as_mut() {
                hook();
            }
            self.drain(report)?;
        } else {
            // After TRUNCATE the WAL cannot prove what was copied: write a
            // full snapshot (§5 step 12). Litestream holds the write lock for
            // it; we do not, since that would stall every writer for as long
            // as reading the whole database takes. Our read transaction,
            // re-acquired right after the checkpoint, is enough: while it is
            // held no checkpoint can copy frames into the database file or
            // restart the WAL, so the file plus the committed frames the step
            // scans is one consistent state, and the file records how far
            // into the WAL it reaches; later commits follow incrementally.
            self.sqlite()?.begin_read()?;
            let step = self.sync_step(None, Some(SnapshotReason::CheckpointBoundary))?;
            if let Some(w) = step.written {
                report.written.push(w);
            }
        }
        self.synced_since_checkpoint = false;
        Ok(result)
    }

    /// One sync step without a byte limit: everything committed when it
    /// scans. It does not chase commits made meanwhile (each pass would be
    /// one more small file while the application keeps writing); under the
    /// seal nothing can commit, so there one step reaches the end.
    fn drain(&mut self, report: &mut SyncReport) -> Result<()> {
        if let Some(w) = self.sync_step(None, None)?.written {
            report.written.push(w);
        }
        Ok(())
    }

    pub(super) fn sqlite(&mut self) -> Result<&mut super::Sqlite> {
        self.open
            .as_mut()
            .map(|o| &mut o.sqlite)
            .ok_or(DbError::Internal("database not open"))
    }

    fn wal_header_bytes(&self) -> Result<[u8; wal::HEADER_SIZE]> {
        use std::io::Read;
        let mut b = [0u8; wal::HEADER_SIZE];
        match std::fs::File::open(&self.wal_path) {
            Ok(mut f) => {
                let mut n = 0;
                while n < b.len() {
                    match f.read(&mut b[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(DbError::io("read", &self.wal_path, e)),
                    }
                }
                Ok(b)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(b),
            Err(e) => Err(DbError::io("open", &self.wal_path, e)),
        }
    }
}
