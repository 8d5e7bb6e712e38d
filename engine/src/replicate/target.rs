//! How the compaction schedules see a replicated database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backends::{FileInfo, ReplicaClient};
use ltx::TxId;
use tokio::sync::{oneshot, watch};

use super::monitor::Command;
use crate::compact::{CompactionTarget, L0Scan, SnapshotError};
use crate::db::MetaDir;
use crate::metrics::DbMetrics;

/// A database under replication, for the schedules.
#[derive(Debug)]
pub(crate) struct Target {
    path: PathBuf,
    client: Arc<dyn ReplicaClient>,
    meta: MetaDir,
    /// Guards nothing but the sender itself (it is cloned out to send).
    commands: Mutex<std::sync::mpsc::Sender<Command>>,
    local: watch::Receiver<TxId>,
    replicated: watch::Receiver<TxId>,
    metrics: DbMetrics,
}

impl Target {
    pub(crate) fn new(
        path: PathBuf,
        client: Arc<dyn ReplicaClient>,
        meta: MetaDir,
        commands: std::sync::mpsc::Sender<Command>,
        local: watch::Receiver<TxId>,
        replicated: watch::Receiver<TxId>,
        metrics: DbMetrics,
    ) -> Target {
        Target {
            path,
            client,
            meta,
            commands: Mutex::new(commands),
            local,
            replicated,
            metrics,
        }
    }
}

#[async_trait]
impl CompactionTarget for Target {
    fn db_path(&self) -> &Path {
        &self.path
    }

    fn client(&self) -> Arc<dyn ReplicaClient> {
        self.client.clone()
    }

    fn local_l0_dir(&self) -> Option<PathBuf> {
        Some(self.meta.l0_dir())
    }

    fn is_ready(&self) -> bool {
        *self.local.borrow() > TxId::ZERO
    }

    fn current_txid(&self) -> TxId {
        *self.local.borrow()
    }

    fn replicated_txid(&self) -> Option<TxId> {
        // The uploader publishes a TXID only once it and every file before
        // it are on the replica (streamed snapshots included).
        Some(*self.replicated.borrow())
    }

    fn record_l0_retention(&self, scan: &L0Scan) {
        self.metrics
            .l0_retention(scan.eligible, scan.not_compacted, scan.too_recent);
    }

    async fn write_snapshot(&self) -> Result<FileInfo, SnapshotError> {
        let (tx, rx) = oneshot::channel();
        let sender = self
            .commands
            .lock()
            .map_err(|_| "monitor command channel poisoned")?
            .clone();
        sender
            .send(Command::Snapshot(tx))
            .map_err(|_| "the database's monitor has stopped")?;
        rx.await
            .map_err(|_| "the database's monitor has stopped")??
            .ok_or_else(|| "the database has not been synced yet".into())
    }
}
