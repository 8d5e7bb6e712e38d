//! `replicate`: the running daemon. Each database gets a monitor thread that
//! owns its SQLite connections and stages L0 files ([`crate::db`]), an upload
//! task that copies them to the replica in TXID order, and a place in the
//! compaction schedules ([`crate::compact`]). Full snapshots (level-9 files,
//! and L0 files that hold every page) are not staged: the monitor streams
//! them into the replica as it encodes them (`stream`).
//!
//! Shutdown (REPLICATION.md §10): schedules stop, each monitor does a final
//! sync and releases SQLite, then pending files are uploaded, retrying until
//! the shutdown timeout.

mod monitor;
mod pipe;
mod stream;
mod target;
mod uploader;
mod wake;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::ReplicaClient;
use ltx::TxId;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::compact::{CompactionConfig, Scheduler, SystemClock, TargetSet};
use crate::db::{Db, DbOptions, SyncReport};
use crate::metrics::{MeteredClient, Metrics};
use monitor::{Command, Monitor};
pub use uploader::{UploadError, Uploader};

/// Upload period (`sync-interval`).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// WAL poll period (`monitor-interval`).
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown keeps retrying uploads (`shutdown-sync-timeout`).
pub const DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait between those retries (`shutdown-sync-interval`).
pub const DEFAULT_SHUTDOWN_SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// One database to replicate.
#[derive(Debug)]
pub struct DbSpec {
    /// Local settings.
    pub db: DbOptions,
    /// Its replica.
    pub client: Arc<dyn ReplicaClient>,
    /// `monitor-interval`; `None` disables background syncs.
    pub monitor_interval: Option<Duration>,
    /// `sync-interval`.
    pub sync_interval: Duration,
    /// `max-sync-ltx-files` (0 = unlimited).
    pub max_sync_ltx_files: usize,
}

impl DbSpec {
    /// Defaults for `db` replicating to `client`.
    pub fn new(db: DbOptions, client: Arc<dyn ReplicaClient>) -> DbSpec {
        DbSpec {
            db,
            client,
            monitor_interval: Some(DEFAULT_MONITOR_INTERVAL),
            sync_interval: DEFAULT_SYNC_INTERVAL,
            max_sync_ltx_files: 256,
        }
    }
}

/// Settings of the whole daemon.
#[derive(Debug)]
pub struct ReplicateOptions {
    /// The databases.
    pub dbs: Vec<DbSpec>,
    /// Compaction and retention; `None` runs none (as `replicate -once`).
    pub compaction: Option<CompactionConfig>,
    /// `shutdown-sync-timeout` (zero: one attempt).
    pub shutdown_sync_timeout: Duration,
    /// `shutdown-sync-interval`.
    pub shutdown_sync_interval: Duration,
    /// Where the databases' and replicas' series go (CLI_CONFIG.md §6).
    pub metrics: Arc<Metrics>,
}

/// Where one database stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbStatus {
    /// The database file.
    pub path: PathBuf,
    /// Newest staged L0 file.
    pub local_txid: TxId,
    /// Newest L0 file known to be on the replica.
    pub replica_txid: TxId,
}

/// A failure that stops replication of a database or of the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicateError {
    /// A monitor thread is gone.
    #[error("the monitor of {0} stopped unexpectedly")]
    MonitorGone(PathBuf),
    /// A sync or snapshot failed.
    #[error("{path}: {message}", path = path.display())]
    Db {
        /// The database.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Uploads did not finish before the shutdown timeout.
    #[error("{path}: uploads did not finish: replica at TXID {replica}, local at {local}: {last_error}", path = path.display())]
    UploadIncomplete {
        /// The database.
        path: PathBuf,
        /// Replica position reached.
        replica: TxId,
        /// Local position.
        local: TxId,
        /// The last error seen.
        last_error: String,
    },
    /// Starting a thread failed.
    #[error("starting the monitor thread for {path}: {source}", path = path.display())]
    Spawn {
        /// The database.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

struct DbHandle {
    path: PathBuf,
    commands: std::sync::mpsc::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    local: watch::Receiver<TxId>,
    replicated: watch::Receiver<TxId>,
    uploader: Option<JoinHandle<Uploader>>,
    sync_interval: Duration,
    target: Arc<target::Target>,
    /// For a fresh uploader when the running one cannot stop in time.
    client: Arc<dyn ReplicaClient>,
    meta: crate::db::MetaDir,
    max_batch: usize,
}

/// The running replication of a set of databases.
pub struct Replicator {
    dbs: Vec<DbHandle>,
    stop: watch::Sender<bool>,
    scheduler: Option<JoinHandle<()>>,
    shutdown_sync_timeout: Duration,
    shutdown_sync_interval: Duration,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("dbs", &self.dbs.len())
            .finish()
    }
}

impl Replicator {
    /// Starts replicating every database. Must run inside a tokio runtime.
    pub fn start(opts: ReplicateOptions) -> Result<Replicator, ReplicateError> {
        let runtime = tokio::runtime::Handle::current();
        let (stop, stop_rx) = watch::channel(false);
        let targets = TargetSet::new();
        let mut watcher = wake::Watcher::new();
        let mut dbs = Vec::new();
        for mut spec in opts.dbs {
            let path = spec.db.path.clone();
            let name = path.display().to_string();
            // Every request of the daemon to the replica is counted here,
            // whatever the backend.
            let kind = spec.client.kind();
            spec.client = Arc::new(MeteredClient::new(
                spec.client,
                opts.metrics.replica_ops(kind),
            ));
            let db_metrics = opts.metrics.db(&path);
            let mut db = Db::new(spec.db);
            db.set_checkpoint_metrics(db_metrics.checkpoints.clone());
            db.set_snapshot_sink(Box::new(stream::ReplicaSink {
                client: spec.client.clone(),
                runtime: runtime.clone(),
                name: name.clone(),
            }));
            let meta = db.meta().clone();
            let (local_tx, local_rx) = watch::channel(TxId::ZERO);
            let (repl_tx, repl_rx) = watch::channel(TxId::ZERO);
            let (tx, rx) = std::sync::mpsc::channel();
            if let Some(w) = watcher.as_mut()
                && let Err(e) = w.watch(&path, tx.clone())
            {
                tracing::warn!(db = %name, error = %e, "cannot watch the database directory; polling instead");
            }
            let monitor = Monitor {
                db,
                client: spec.client.clone(),
                runtime: runtime.clone(),
                local: local_tx,
                interval: spec.monitor_interval,
                name: name.clone(),
                metrics: db_metrics.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!(
                    "monitor {}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ))
                .spawn(move || monitor.run(rx))
                .map_err(|source| ReplicateError::Spawn {
                    path: path.clone(),
                    source,
                })?;
            let uploader =
                Uploader::new(spec.client.clone(), meta.clone(), spec.max_sync_ltx_files);
            let (handle_client, handle_meta) = (spec.client.clone(), meta.clone());
            let task = tokio::spawn(uploader::run(
                uploader,
                name.clone(),
                local_rx.clone(),
                repl_tx,
                spec.sync_interval,
                stop_rx.clone(),
            ));
            tokio::spawn(confirmations(repl_rx.clone(), db_metrics.clone()));
            let target = Arc::new(target::Target::new(
                path.clone(),
                spec.client,
                meta,
                tx.clone(),
                local_rx.clone(),
                repl_rx.clone(),
                db_metrics,
            ));
            targets.insert(target.clone());
            tracing::info!(db = %name, replica = spec_kind(&targets, &path), "replicating");
            dbs.push(DbHandle {
                path,
                commands: tx,
                thread: Some(thread),
                local: local_rx,
                replicated: repl_rx,
                uploader: Some(task),
                sync_interval: spec.sync_interval,
                target,
                client: handle_client,
                meta: handle_meta,
                max_batch: spec.max_sync_ltx_files,
            });
        }
        if let Some(w) = watcher {
            let _ = std::thread::Builder::new()
                .name("inotify".into())
                .spawn(move || w.run());
        }
        let scheduler = opts.compaction.map(|config| {
            let s = Arc::new(Scheduler::new(config, Arc::new(SystemClock), targets));
            tokio::spawn(s.run(stop_rx))
        });
        Ok(Replicator {
            dbs,
            stop,
            scheduler,
            shutdown_sync_timeout: opts.shutdown_sync_timeout,
            shutdown_sync_interval: opts.shutdown_sync_interval,
        })
    }

    /// Where every database stands.
    pub fn status(&self) -> Vec<DbStatus> {
        self.dbs
            .iter()
            .map(|d| DbStatus {
                path: d.path.clone(),
                local_txid: *d.local.borrow(),
                replica_txid: *d.replicated.borrow(),
            })
            .collect()
    }

    /// Syncs one database now (WAL → L0) and returns what it wrote.
    pub async fn sync(&self, path: &Path) -> Result<SyncReport, ReplicateError> {
        let d = self.handle(path)?;
        let (tx, rx) = oneshot::channel();
        d.commands
            .send(Command::Sync(tx))
            .map_err(|_| ReplicateError::MonitorGone(d.path.clone()))?;
        rx.await
            .map_err(|_| ReplicateError::MonitorGone(d.path.clone()))?
            .map_err(|message| ReplicateError::Db {
                path: d.path.clone(),
                message,
            })
    }

    /// Writes a level-9 snapshot of one database at its current position
    /// (`replicate -once -force-snapshot`).
    pub async fn write_snapshot(&self, path: &Path) -> Result<backends::FileInfo, ReplicateError> {
        use crate::compact::CompactionTarget;
        let d = self.handle(path)?;
        d.target
            .write_snapshot()
            .await
            .map_err(|e| ReplicateError::Db {
                path: d.path.clone(),
                message: e.to_string(),
            })
    }

    /// The replica client and metadata directory's `ltx/0` of a database.
    pub fn replica_of(&self, path: &Path) -> Option<(Arc<dyn ReplicaClient>, PathBuf)> {
        use crate::compact::CompactionTarget;
        let d = self.handle(path).ok()?;
        Some((d.target.client(), d.target.local_l0_dir()?))
    }

    fn handle(&self, path: &Path) -> Result<&DbHandle, ReplicateError> {
        self.dbs
            .iter()
            .find(|d| d.path == path)
            .ok_or_else(|| ReplicateError::MonitorGone(path.to_path_buf()))
    }

    /// Waits until the replica holds everything staged locally, or `timeout`.
    /// Returns whether it caught up.
    pub async fn wait_replicated(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for d in &self.dbs {
            let target = *d.local.borrow();
            let mut rx = d.replicated.clone();
            while *rx.borrow_and_update() < target {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Stops everything (REPLICATION.md §10) and reports, per database, an
    /// error if its final sync or uploads failed.
    pub async fn shutdown(mut self) -> Vec<(PathBuf, Result<DbStatus, ReplicateError>)> {
        self.stop.send_replace(true);
        if let Some(mut s) = self.scheduler.take() {
            // A compaction upload stuck in retries must not hold shutdown
            // past its timeout (the compacted files can be rebuilt).
            if bounded(self.shutdown_sync_timeout, &mut s).await.is_none() {
                tracing::warn!("compaction did not stop within the shutdown timeout; abandoned");
                s.abort();
            }
        }
        let mut results = Vec::new();
        for mut d in std::mem::take(&mut self.dbs) {
            let result = self.shutdown_db(&mut d).await;
            results.push((d.path.clone(), result));
        }
        results
    }

    async fn shutdown_db(&self, d: &mut DbHandle) -> Result<DbStatus, ReplicateError> {
        let (tx, rx) = oneshot::channel();
        let final_sync = match d.commands.send(Command::Stop(tx)) {
            Ok(()) => rx
                .await
                .map_err(|_| ReplicateError::MonitorGone(d.path.clone())),
            Err(_) => Err(ReplicateError::MonitorGone(d.path.clone())),
        };
        if let Some(t) = d.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let deadline = Instant::now() + self.shutdown_sync_timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        // The running uploader stops after its current upload; if that is
        // stuck in retries past the timeout, continue with a fresh one.
        let mut uploader = match d.uploader.take() {
            Some(mut task) => match bounded(left(), &mut task).await {
                Some(Ok(u)) => u,
                Some(Err(_)) => return Err(ReplicateError::MonitorGone(d.path.clone())),
                None => {
                    task.abort();
                    Uploader::new(d.client.clone(), d.meta.clone(), d.max_batch)
                }
            },
            None => return Err(ReplicateError::MonitorGone(d.path.clone())),
        };
        let local = *d.local.borrow();
        let mut replica = uploader.replica_pos().unwrap_or(TxId::ZERO);
        if local > TxId::ZERO {
            loop {
                let attempt = match bounded(left(), uploader.upload_through(local)).await {
                    Some(r) => r,
                    None => {
                        let last_error = "timed out".to_string();
                        return Err(ReplicateError::UploadIncomplete {
                            path: d.path.clone(),
                            replica,
                            local,
                            last_error,
                        });
                    }
                };
                match attempt {
                    Ok(pos) => {
                        replica = pos;
                        if pos >= local {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        if Instant::now() + self.shutdown_sync_interval > deadline {
                            let last_error = e.to_string();
                            return Err(ReplicateError::UploadIncomplete {
                                path: d.path.clone(),
                                replica,
                                local,
                                last_error,
                            });
                        }
                    }
                }
                tokio::time::sleep(self.shutdown_sync_interval.min(d.sync_interval)).await;
            }
        }
        final_sync?.map_err(|message| ReplicateError::Db {
            path: d.path.clone(),
            message,
        })?;
        Ok(DbStatus {
            path: d.path.clone(),
            local_txid: local,
            replica_txid: replica,
        })
    }
}

/// Feeds the uploader's published replica position into the lag tracker
/// and `freshet_replica_txid`; ends when the uploader is gone.
async fn confirmations(mut replicated: watch::Receiver<TxId>, metrics: crate::metrics::DbMetrics) {
    while replicated.changed().await.is_ok() {
        let pos = *replicated.borrow_and_update();
        metrics.lag.confirmed(pos, Instant::now());
        metrics.replica_txid.set(pos.get() as f64);
    }
}

fn spec_kind(targets: &TargetSet, path: &Path) -> &'static str {
    targets
        .targets()
        .iter()
        .find(|t| t.db_path() == path)
        .map(|t| t.client().kind())
        .unwrap_or("unknown")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// Awaits `fut` for at most `limit`; a zero limit means no limit (the
/// setting's "0 = one attempt" still makes that one attempt).
async fn bounded<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    if limit.is_zero() {
        return Some(fut.await);
    }
    tokio::time::timeout(limit, fut).await.ok()
}
