//! The compaction, snapshot and retention schedules over a set of databases
//! (REPLICA_LAYOUT.md §6, §7).
//!
//! One task per configured level and one for level 9 each run once at start
//! and then at every wall-clock multiple of their interval; a separate task
//! runs level-0 retention every check interval. Failures are logged (one
//! line naming the database and level) and the step is tried again at the
//! next boundary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backends::{FileInfo, SNAPSHOT_LEVEL};
use ltx::TxId;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::clock::{Clock, prev_boundary, until_next_boundary};
use super::config::CompactionConfig;
use super::error::CompactError;
use super::level::{LevelOutcome, compact_one_level, newest};
use super::retention::{RetentionReport, enforce_l0_retention, enforce_snapshot_retention};
use super::target::{Entry, TargetSet};

/// How many times a level is retried for a database that is not ready
/// (page size unknown) before waiting for the next boundary (§6 step 2).
pub const NOT_READY_RETRIES: u32 = 30;
/// Wait between those retries: 1 s.
pub const NOT_READY_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a schedule runs at each boundary.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Compaction into a level, with its interval.
    Level(u8, Duration),
    /// The level-9 snapshot step and snapshot retention.
    Snapshot,
}

/// Runs compaction, snapshots and retention for a [`TargetSet`].
#[derive(Debug)]
pub struct Scheduler {
    config: CompactionConfig,
    clock: Arc<dyn Clock>,
    targets: TargetSet,
}

impl Scheduler {
    /// A scheduler for `targets` reading time from `clock`.
    pub fn new(config: CompactionConfig, clock: Arc<dyn Clock>, targets: TargetSet) -> Scheduler {
        Scheduler {
            config,
            clock,
            targets,
        }
    }

    /// Runs every schedule until `shutdown` holds `true` (or its sender is
    /// dropped), then returns once all of them have stopped. A step in
    /// progress is abandoned: uploads are all-or-nothing, so nothing partial
    /// is left visible.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        for level in self.config.levels().to_vec() {
            let (this, stop) = (self.clone(), shutdown.clone());
            tasks.spawn(async move {
                this.every_boundary(Step::Level(level.level, level.interval), stop)
                    .await;
            });
        }
        let (this, stop) = (self.clone(), shutdown.clone());
        tasks.spawn(async move {
            this.every_boundary(Step::Snapshot, stop).await;
        });
        if !self.config.l0_retention.is_zero() {
            let (this, mut stop) = (self.clone(), shutdown.clone());
            tasks.spawn(async move {
                let period = this.config.l0_retention_check_interval;
                loop {
                    tokio::select! {
                        () = this.clock.sleep(period) => {}
                        () = stopped(&mut stop) => return,
                    }
                    tokio::select! {
                        () = this.run_l0_retention() => {}
                        () = stopped(&mut stop) => return,
                    }
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a compaction schedule stopped: {e}");
            }
        }
    }

    /// Runs `step` now and then at each multiple of its interval until
    /// shutdown.
    async fn every_boundary(&self, step: Step, mut stop: watch::Receiver<bool>) {
        let interval = match step {
            Step::Level(_, interval) => interval,
            Step::Snapshot => self.config.snapshot_interval,
        };
        loop {
            tokio::select! {
                () = self.for_ready_targets(step) => {}
                () = stopped(&mut stop) => return,
            }
            // Never zero for a positive interval; guard against a spin all
            // the same should the time arithmetic ever overflow.
            let wait = match until_next_boundary(self.clock.now(), interval) {
                Duration::ZERO => interval.max(NOT_READY_RETRY_DELAY),
                wait => wait,
            };
            tokio::select! {
                () = self.clock.sleep(wait) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    /// One pass of compaction into `level` over every database. Databases
    /// not ready are retried every [`NOT_READY_RETRY_DELAY`] up to
    /// [`NOT_READY_RETRIES`] times.
    pub async fn run_level(&self, level: u8) {
        let Some(interval) = self.config.interval(level) else {
            tracing::error!(level, "compaction level {level} is not configured");
            return;
        };
        self.for_ready_targets(Step::Level(level, interval)).await;
    }

    /// One pass of the level-9 step over every database: a snapshot where
    /// one is due, then snapshot retention (§6, §7.1).
    pub async fn run_snapshot_level(&self) {
        self.for_ready_targets(Step::Snapshot).await;
    }

    /// One pass of level-0 retention over every database (§7.2).
    pub async fn run_l0_retention(&self) {
        for entry in self.targets.entries() {
            self.l0_retention_for(&entry).await;
        }
    }

    async fn for_ready_targets(&self, step: Step) {
        let mut pending = self.targets.entries();
        for attempt in 0..=NOT_READY_RETRIES {
            if attempt > 0 {
                self.clock.sleep(NOT_READY_RETRY_DELAY).await;
            }
            let mut waiting = Vec::new();
            for entry in pending {
                if !entry.target.is_ready() {
                    waiting.push(entry);
                    continue;
                }
                match step {
                    Step::Level(level, interval) => {
                        self.compact_target(&entry, level, interval).await;
                    }
                    Step::Snapshot => self.snapshot_target(&entry).await,
                }
            }
            if waiting.is_empty() {
                return;
            }
            pending = waiting;
        }
        let level = match step {
            Step::Level(level, _) => level,
            Step::Snapshot => SNAPSHOT_LEVEL,
        };
        for entry in pending {
            tracing::warn!(
                db = %entry.target.db_path().display(),
                level,
                "database not ready after {NOT_READY_RETRIES} retries; skipped until the next boundary"
            );
        }
    }

    async fn compact_target(&self, entry: &Entry, level: u8, interval: Duration) {
        let target = &entry.target;
        let client = target.client();
        let local = target.local_l0_dir();
        // Level 0 grows while this runs: compact only what the uploader has
        // confirmed, never a listing that caught it mid-upload.
        let through = if level == 1 {
            target.replicated_txid()
        } else {
            None
        };
        let _levels = entry.levels.lock().await;
        let now = self.clock.now();
        let result = compact_one_level(
            &*client,
            level,
            interval,
            now,
            local.as_deref(),
            through,
            &entry.newest,
        )
        .await;
        let db = target.db_path().display();
        match result {
            Ok(LevelOutcome::Compacted {
                file,
                inputs,
                local_inputs,
            }) => {
                tracing::debug!(%db, level, file = %file.id, inputs, local_inputs, size = file.size, "compacted");
                if level == 1 {
                    self.l0_retention_for(entry).await;
                }
            }
            Ok(outcome) => tracing::trace!(%db, level, ?outcome, "no compaction"),
            Err(e) => {
                entry.newest.clear();
                tracing::error!(%db, level, "compaction failed: {e}");
            }
        }
    }

    async fn snapshot_target(&self, entry: &Entry) {
        let target = &entry.target;
        let db = target.db_path().display();
        let level = SNAPSHOT_LEVEL;
        match self.snapshot_if_due(entry).await {
            Ok(Some(file)) => {
                tracing::debug!(%db, level, file = %file.id, size = file.size, "snapshot written")
            }
            Ok(None) => tracing::trace!(%db, level, "no snapshot due"),
            Err(e) => {
                entry.newest.clear();
                tracing::error!(%db, level, "snapshot failed: {e}");
            }
        }
        let client = target.client();
        let local = target.local_l0_dir();
        let _levels = entry.levels.lock().await;
        let result = enforce_snapshot_retention(
            &*client,
            self.config.snapshot_retention,
            self.config.max_level(),
            self.clock.now(),
            self.config.retention_enabled,
            local.as_deref(),
        )
        .await;
        log_retention(target.db_path(), level, result);
    }

    /// The snapshot step: skipped when the newest snapshot is from this
    /// period or already at the current TXID, or nothing was written yet.
    async fn snapshot_if_due(&self, entry: &Entry) -> Result<Option<FileInfo>, CompactError> {
        let now = self.clock.now();
        let level = SNAPSHOT_LEVEL;
        let latest = match entry.newest.get(level) {
            Some(file) => Some(file),
            None => {
                let files = entry
                    .target
                    .client()
                    .list(level, TxId::ZERO)
                    .await
                    .map_err(CompactError::backend("list", level))?;
                newest(&files)
            }
        };
        let current = entry.target.current_txid();
        if let Some(latest) = latest {
            entry.newest.observe(latest);
            if latest.created_at > prev_boundary(now, self.config.snapshot_interval)
                || latest.id.max_txid >= current
            {
                return Ok(None);
            }
        }
        if current == TxId::ZERO {
            return Ok(None);
        }
        let file = entry
            .target
            .write_snapshot()
            .await
            .map_err(CompactError::Snapshot)?;
        entry.newest.observe(file);
        Ok(Some(file))
    }

    async fn l0_retention_for(&self, entry: &Entry) {
        let target = &entry.target;
        let client = target.client();
        let local = target.local_l0_dir();
        let result = enforce_l0_retention(
            &*client,
            self.config.l0_retention,
            self.clock.now(),
            self.config.retention_enabled,
            local.as_deref(),
        )
        .await;
        if let Ok(RetentionReport {
            l0_scan: Some(scan),
            ..
        }) = &result
        {
            target.record_l0_retention(scan);
        }
        log_retention(target.db_path(), 0, result);
    }
}

fn log_retention(db: &Path, level: u8, result: Result<RetentionReport, CompactError>) {
    let db = db.display();
    match result {
        Ok(report) if report.is_empty() => {}
        Ok(report) => tracing::debug!(
            %db,
            level,
            deleted = report.remote.len(),
            kept_remote = report.kept_remote.len(),
            local = report.local.len(),
            floor = ?report.floor.map(TxId::get),
            "retention"
        ),
        Err(e) => tracing::error!(%db, level, "retention failed: {e}"),
    }
}

/// Resolves once shutdown is requested or the sender is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&stop| stop).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use backends::FileId;

    use super::*;
    use crate::compact::testutil::{
        Fixture, ManualClock, TestTarget, TokioClock, decode, fid, l0_ids, secs, secs_ms,
    };

    fn scheduler(
        config: CompactionConfig,
        clock: Arc<dyn Clock>,
        target: Arc<TestTarget>,
    ) -> Arc<Scheduler> {
        let targets = TargetSet::new();
        targets.insert(target);
        Arc::new(Scheduler::new(config, clock, targets))
    }

    fn ids(pairs: impl IntoIterator<Item = (u64, u64)>, level: u8) -> Vec<FileId> {
        pairs.into_iter().map(|(a, b)| fid(level, a, b)).collect()
    }

    /// Level 0 gets a file every 15 s (at 8 s, 23 s, 38 s, … after
    /// midnight) for 70 minutes; the scheduler steps run at every boundary
    /// of the default levels, lower levels first. The listing must be what
    /// the schedule implies: L1 pairs, L2 runs of twenty, one hourly L3 file,
    /// and level 0 trimmed to the last five minutes.
    #[tokio::test]
    async fn a_workload_spanning_levels_gives_the_scheduled_listing() {
        let mut fx = Fixture::new();
        let clock = Arc::new(ManualClock::new(secs(0)));
        let target = TestTarget::new(&fx, clock.clone());
        let s = scheduler(CompactionConfig::default(), clock.clone(), target.clone());

        let end = 70 * 60;
        for boundary in (30..=end).step_by(30) {
            while 15 * fx.next_txid() - 7 < boundary {
                let t = fx.next_txid();
                let ts = secs_ms(15 * t - 7);
                if t == 1 {
                    fx.commit(&[(1, 0), (2, 0), (3, 0), (4, 0)], ts).await;
                } else {
                    fx.commit(&[((t % 6) as u32 + 1, t as u8)], ts).await;
                }
            }
            clock.set(secs(boundary));
            s.run_level(1).await;
            if boundary % 300 == 0 {
                s.run_level(2).await;
            }
            if boundary % 3600 == 0 {
                s.run_level(3).await;
            }
        }

        assert_eq!(fx.next_txid(), 281);
        assert_eq!(
            fx.list(1).await,
            ids((1..=140).map(|k| (2 * k - 1, 2 * k)), 1)
        );
        assert_eq!(
            fx.list(2).await,
            ids((1..=14).map(|m| (20 * m - 19, 20 * m)), 2)
        );
        assert_eq!(fx.list(3).await, [fid(3, 1, 240)]);
        // Retention after the last L1 run (4200 s): the threshold is 3900 s,
        // TXID 260 (3893 s) is the last file old enough.
        assert_eq!(fx.list(0).await, l0_ids(261, 280));
        let local: Vec<String> = l0_ids(261, 280).iter().map(FileId::file_name).collect();
        assert_eq!(fx.local_names(), local);

        let (header, pages) = decode(&fx.read(fid(3, 1, 240)));
        assert_eq!(header.timestamp, secs_ms(15 * 240 - 7));
        assert!(pages == fx.expected(1, 240));
        let (_, pages) = decode(&fx.read(fid(2, 261, 280)));
        assert!(pages == fx.expected(261, 280));
    }

    #[tokio::test]
    async fn a_database_not_ready_is_retried_every_second_for_thirty() {
        let mut fx = Fixture::new();
        fx.commit(&[(1, 1)], secs_ms(1)).await;
        let clock = Arc::new(ManualClock::new(secs(10)));
        let mut target = TestTarget::new(&fx, clock.clone());
        Arc::get_mut(&mut target).unwrap().not_ready_for = u32::MAX;
        let s = scheduler(CompactionConfig::default(), clock.clone(), target.clone());
        s.run_level(1).await;
        assert_eq!(target.ready_calls.load(Ordering::SeqCst), 31);
        assert_eq!(clock.now(), secs(40), "30 waits of 1 s");
        assert!(fx.list(1).await.is_empty());

        // Ready on the fourth look: compacted three seconds in.
        let clock = Arc::new(ManualClock::new(secs(10)));
        let mut target = TestTarget::new(&fx, clock.clone());
        Arc::get_mut(&mut target).unwrap().not_ready_for = 3;
        let s = scheduler(CompactionConfig::default(), clock.clone(), target.clone());
        s.run_level(1).await;
        assert_eq!(clock.now(), secs(13));
        assert_eq!(fx.list(1).await, [fid(1, 1, 1)]);
    }

    #[tokio::test]
    async fn snapshots_are_written_when_due_and_old_ones_retired() {
        let fx = Fixture::new();
        let clock = Arc::new(ManualClock::new(secs(100)));
        let target = TestTarget::new(&fx, clock.clone());
        let s = scheduler(CompactionConfig::default(), clock.clone(), target.clone());
        for (min, max) in [(1, 3), (4, 6), (7, 7)] {
            fx.put(1, min, max, secs_ms(max)).await;
        }
        let day = 24 * 3600;
        let count = || target.snapshots.load(Ordering::SeqCst);

        // No TXID yet: nothing to snapshot.
        s.run_snapshot_level().await;
        assert_eq!(count(), 0);

        target.set_txid(5);
        s.run_snapshot_level().await;
        assert_eq!(fx.list(9).await, [fid(9, 1, 5)]);

        // Same day: too early, though there is new data.
        target.set_txid(6);
        clock.set(secs(200));
        s.run_snapshot_level().await;
        assert_eq!(count(), 1);

        clock.set(secs(day + 100));
        s.run_snapshot_level().await;
        assert_eq!(count(), 2);

        // A new day but no new data.
        clock.set(secs(2 * day + 100));
        s.run_snapshot_level().await;
        assert_eq!(count(), 2);

        // Day 3: a new snapshot; the two older ones are past 24 h, the floor
        // becomes 6 and level-1 files ending below it go.
        target.set_txid(7);
        clock.set(secs(3 * day + 100));
        s.run_snapshot_level().await;
        assert_eq!(count(), 3);
        assert_eq!(fx.list(9).await, [fid(9, 1, 7)]);
        assert_eq!(fx.list(1).await, [fid(1, 4, 6), fid(1, 7, 7)]);
    }

    /// Real schedule loops on tokio's paused clock: the first pass runs at
    /// once, the next at the following 30 s boundary, L0 retention on its
    /// own ticker, and shutdown stops everything.
    #[tokio::test(start_paused = true)]
    async fn loops_run_at_start_then_at_boundaries_and_stop_on_request() {
        let mut fx = Fixture::new();
        for t in 1..=3u8 {
            fx.commit(&[(1, t), (2, t)], secs_ms(u64::from(t))).await;
        }
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(secs(10)));
        let target = TestTarget::new(&fx, clock.clone());
        target.set_txid(3);
        let mut config =
            CompactionConfig::with_level_intervals(&[Duration::from_secs(30)]).unwrap();
        config.l0_retention = Duration::from_secs(60);
        let s = scheduler(config, clock.clone(), target.clone());
        let (stop, stop_rx) = watch::channel(false);
        let running = tokio::spawn(s.run(stop_rx));

        let until = |t: u64| {
            let clock = clock.clone();
            async move {
                let wait = secs(t).duration_since(clock.now()).unwrap();
                tokio::time::sleep(wait).await;
            }
        };
        until(11).await;
        assert_eq!(fx.list(1).await, [fid(1, 1, 3)], "compacted at start");
        assert_eq!(fx.list(9).await, [fid(9, 1, 3)], "snapshot at start");

        fx.commit(&[(3, 4)], secs_ms(15)).await;
        target.set_txid(4);
        until(29).await;
        assert_eq!(fx.list(1).await, [fid(1, 1, 3)], "not before the boundary");
        until(31).await;
        assert_eq!(fx.list(1).await, [fid(1, 1, 3), fid(1, 4, 4)]);
        assert_eq!(
            target.snapshots.load(Ordering::SeqCst),
            1,
            "next one at midnight"
        );

        // Retention after the L1 runs found nothing 60 s old; the ticker
        // (every 15 s from 10 s) at 70 s finds TXIDs 1–3 (1–3 s) old enough
        // and keeps 4, the newest.
        until(64).await;
        assert_eq!(fx.list(0).await, l0_ids(1, 4));
        until(71).await;
        assert_eq!(fx.list(0).await, l0_ids(4, 4));

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), running)
            .await
            .expect("the scheduler stops promptly")
            .unwrap();
    }
}
