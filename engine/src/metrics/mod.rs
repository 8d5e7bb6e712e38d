//! Prometheus metrics of the replicate daemon (CLI_CONFIG.md §6), served
//! at `GET http://<addr>/metrics` ([`server`]).
//!
//! - [`Registry`] holds counters, gauges and histograms with labels and
//!   renders them in the text format 0.0.4.
//! - [`Metrics`] registers Litestream's series under Litestream's names,
//!   the `process_*` series, and freshet's own (`freshet_*`): replication
//!   lag ([`LagTracker`]), the confirmed replica TXID and the `-wal` size.
//! - [`DbMetrics`] are one database's handles, kept by its monitor;
//!   [`MeteredClient`] counts replica operations around any backend.

mod client;
mod lag;
mod process;
mod registry;
pub mod server;
mod text;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use client::{MeteredClient, ReplicaOps};
pub use lag::{LATENCY_BUCKETS, LagTracker};
pub use registry::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, Registry};
pub use text::CONTENT_TYPE;

/// Buckets of `litestream_replica_operation_duration_seconds` (§6).
pub const REPLICA_OP_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0];

/// Families labelled by database.
#[derive(Debug)]
struct DbFamilies {
    db_size: GaugeVec,
    wal_size: GaugeVec,
    total_wal_bytes: CounterVec,
    txid: GaugeVec,
    sync_count: CounterVec,
    sync_errors: CounterVec,
    sync_seconds: CounterVec,
    disk_full: GaugeVec,
    checkpoint_count: CounterVec,
    checkpoint_errors: CounterVec,
    checkpoint_seconds: CounterVec,
    verify_errors: CounterVec,
    l0_retention: GaugeVec,
    lag: GaugeVec,
    latency: HistogramVec,
    replica_txid: GaugeVec,
    wal_bytes: GaugeVec,
}

/// Families labelled by replica type and operation.
#[derive(Debug)]
struct ReplicaFamilies {
    total: CounterVec,
    bytes: CounterVec,
    duration: HistogramVec,
    errors: CounterVec,
}

/// Every series of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    db: DbFamilies,
    replica: ReplicaFamilies,
    process: process::Process,
    /// Lag of each database, read at every scrape.
    lags: Mutex<Vec<Arc<LagTracker>>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let r = Registry::new();
        let db = &["db"];
        let db_mode = &["db", "mode"];
        let db = DbFamilies {
            db_size: r.gauge_vec("litestream_db_size", "Database file size in bytes, after the last sync", db),
            wal_size: r.gauge_vec(
                "litestream_wal_size",
                "End offset of the WAL content replicated so far, in bytes",
                db,
            ),
            total_wal_bytes: r.counter_vec(
                "litestream_total_wal_bytes",
                "WAL bytes converted into level-0 files",
                db,
            ),
            txid: r.gauge_vec("litestream_txid", "Local position: TXID of the newest level-0 file", db),
            sync_count: r.counter_vec("litestream_sync_count", "Sync steps run", db),
            sync_errors: r.counter_vec(
                "litestream_sync_error_count",
                "Sync steps that failed",
                db,
            ),
            sync_seconds: r.counter_vec(
                "litestream_sync_seconds",
                "Seconds spent in sync steps",
                db,
            ),
            disk_full: r.gauge_vec(
                "litestream_disk_full",
                "1 while the last sync failed because the disk is full",
                db,
            ),
            checkpoint_count: r.counter_vec(
                "litestream_checkpoint_count",
                "Checkpoints run, by mode",
                db_mode,
            ),
            checkpoint_errors: r.counter_vec(
                "litestream_checkpoint_error_count",
                "Checkpoints that failed, by mode",
                db_mode,
            ),
            checkpoint_seconds: r.counter_vec(
                "litestream_checkpoint_seconds",
                "Seconds spent in checkpoints, by mode",
                db_mode,
            ),
            verify_errors: r.counter_vec(
                "litestream_compaction_verify_error_count",
                "Post-compaction checks that found a TXID gap or overlap",
                db,
            ),
            l0_retention: r.gauge_vec(
                "litestream_l0_retention_files_total",
                "Level-0 files by retention status at the last retention scan",
                &["db", "status"],
            ),
            lag: r.gauge_vec(
                "freshet_replication_lag_seconds",
                "Age of the oldest committed change not yet durable in the replica (0 when caught up)",
                db,
            ),
            latency: r.histogram_vec(
                "freshet_replication_latency_seconds",
                "Time from a WAL change being seen to its level-0 file being durable in the replica",
                db,
                LATENCY_BUCKETS,
            ),
            replica_txid: r.gauge_vec(
                "freshet_replica_txid",
                "Newest TXID confirmed on the replica",
                db,
            ),
            wal_bytes: r.gauge_vec(
                "freshet_wal_bytes",
                "Size of the database's -wal file, in bytes",
                db,
            ),
        };
        let op = &["replica_type", "operation"];
        let replica = ReplicaFamilies {
            total: r.counter_vec(
                "litestream_replica_operation_total",
                "Requests made to the replica, by operation",
                op,
            ),
            bytes: r.counter_vec(
                "litestream_replica_operation_bytes",
                "Bytes sent to or read from the replica, by operation",
                op,
            ),
            duration: r.histogram_vec(
                "litestream_replica_operation_duration_seconds",
                "Latency of replica requests, in seconds",
                op,
                REPLICA_OP_BUCKETS,
            ),
            errors: r.counter_vec(
                "litestream_replica_operation_errors_total",
                "Replica requests that failed, by error code",
                &["replica_type", "operation", "code"],
            ),
        };
        let process = process::Process::register(&r);
        Metrics {
            registry: r,
            db,
            replica,
            process,
            lags: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A fresh set of series.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The registry, for series of other parts.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles of the database at `path` (labelled with the full path).
    pub fn db(&self, path: &Path) -> DbMetrics {
        let name = path.display().to_string();
        let f = &self.db;
        let l = &[name.as_str()];
        // Series that only move on rare events exist from the start, at 0,
        // so a dashboard sees them before the first event.
        f.sync_errors.with(l);
        // verify-compaction is not implemented (the daemon warns that it is
        // ignored), so no check ever fails: this series stays at 0.
        f.verify_errors.with(l);
        let lag = Arc::new(LagTracker::new(f.lag.with(l), f.latency.with(l)));
        self.lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(lag.clone());
        DbMetrics {
            db_size: f.db_size.with(l),
            wal_size: f.wal_size.with(l),
            total_wal_bytes: f.total_wal_bytes.with(l),
            txid: f.txid.with(l),
            sync_count: f.sync_count.with(l),
            sync_errors: f.sync_errors.with(l),
            sync_seconds: f.sync_seconds.with(l),
            disk_full: f.disk_full.with(l),
            replica_txid: f.replica_txid.with(l),
            wal_bytes: f.wal_bytes.with(l),
            checkpoints: CheckpointMetrics {
                db: name.clone(),
                count: f.checkpoint_count.clone(),
                errors: f.checkpoint_errors.clone(),
                seconds: f.checkpoint_seconds.clone(),
            },
            l0_retention: f.l0_retention.clone(),
            base_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(name),
            lag,
        }
    }

    /// The operation series of replicas of type `kind`.
    pub fn replica_ops(&self, kind: &'static str) -> ReplicaOps {
        ReplicaOps::new(self, kind)
    }

    /// The exposition text, after refreshing the values computed at read
    /// time (lag, `/proc`).
    pub fn render(&self) -> String {
        let now = Instant::now();
        for lag in self
            .lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            lag.refresh(now);
        }
        self.process.refresh();
        self.registry.render()
    }
}

/// One database's series.
#[derive(Debug, Clone)]
pub struct DbMetrics {
    /// `litestream_db_size`.
    pub db_size: Arc<Gauge>,
    /// `litestream_wal_size`.
    pub wal_size: Arc<Gauge>,
    /// `litestream_total_wal_bytes`.
    pub total_wal_bytes: Arc<Counter>,
    /// `litestream_txid`.
    pub txid: Arc<Gauge>,
    /// `litestream_sync_count`.
    pub sync_count: Arc<Counter>,
    /// `litestream_sync_error_count`.
    pub sync_errors: Arc<Counter>,
    /// `litestream_sync_seconds`.
    pub sync_seconds: Arc<Counter>,
    /// `litestream_disk_full`.
    pub disk_full: Arc<Gauge>,
    /// `freshet_replica_txid`.
    pub replica_txid: Arc<Gauge>,
    /// `freshet_wal_bytes`.
    pub wal_bytes: Arc<Gauge>,
    /// `litestream_checkpoint_*`.
    pub checkpoints: CheckpointMetrics,
    /// `freshet_replication_lag_seconds` and the latency histogram.
    pub lag: Arc<LagTracker>,
    l0_retention: GaugeVec,
    /// The file name: the `db` label of the L0 retention gauge (§6).
    base_name: String,
}

impl DbMetrics {
    /// Records the last level-0 retention scan.
    pub fn l0_retention(&self, eligible: usize, not_compacted: usize, too_recent: usize) {
        for (status, n) in [
            ("eligible", eligible),
            ("not_compacted", not_compacted),
            ("too_recent", too_recent),
        ] {
            self.l0_retention
                .with(&[&self.base_name, status])
                .set(n as f64);
        }
    }
}

/// `litestream_checkpoint_{count,error_count,seconds}` of one database,
/// by mode.
#[derive(Debug, Clone)]
pub struct CheckpointMetrics {
    db: String,
    count: CounterVec,
    errors: CounterVec,
    seconds: CounterVec,
}

impl CheckpointMetrics {
    /// Records one checkpoint in `mode` (`PASSIVE`, `TRUNCATE`, …).
    pub fn record(&self, mode: &str, took: Duration, ok: bool) {
        let l = &[self.db.as_str(), mode];
        self.count.with(l).inc();
        self.seconds.with(l).inc_by(took.as_secs_f64());
        if !ok {
            self.errors.with(l).inc();
        }
    }
}
