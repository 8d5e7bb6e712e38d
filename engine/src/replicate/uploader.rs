//! Copies staged level-0 files to the replica, strictly in TXID order
//! (REPLICATION.md §7), so the replica's level 0 never has a gap.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use backends::{FileId, ReplicaClient};
use ltx::TxId;
use tokio::sync::watch;

use crate::db::MetaDir;

/// Longest wait between retries after errors (REPLICATION.md §1).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why an upload round failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The replica refused.
    #[error("replica: {0}")]
    Replica(#[from] backends::Error),
    /// A staged file could not be read.
    #[error("local L0 file {txid}: {source}")]
    Local {
        /// The TXID of the file.
        txid: TxId,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// Uploads one database's staged L0 files.
#[derive(Debug)]
pub struct Uploader {
    client: Arc<dyn ReplicaClient>,
    meta: MetaDir,
    /// Highest TXID known to be on the replica; `None` = ask the replica.
    replica_pos: Option<TxId>,
    max_batch: usize,
}

impl Uploader {
    /// An uploader for the files in `meta`; `max_batch` files per round
    /// (`max-sync-ltx-files`, 0 = unlimited).
    pub fn new(client: Arc<dyn ReplicaClient>, meta: MetaDir, max_batch: usize) -> Uploader {
        Uploader {
            client,
            meta,
            replica_pos: None,
            max_batch,
        }
    }

    /// The replica's position as last seen.
    pub fn replica_pos(&self) -> Option<TxId> {
        self.replica_pos
    }

    /// The replica's newest level-0 TXID (zero for an empty replica).
    pub async fn remote_position(&self) -> Result<TxId, UploadError> {
        let files = self.client.list(0, TxId::ZERO).await?;
        Ok(files
            .iter()
            .map(|f| f.id.max_txid)
            .max()
            .unwrap_or(TxId::ZERO))
    }

    /// Uploads files `replica_pos+1 ..= local` (at most one batch) and
    /// returns the new replica position. On error the position is forgotten
    /// and re-read from the replica next time (§7 step 6).
    pub async fn upload_through(&mut self, local: TxId) -> Result<TxId, UploadError> {
        let result = self.upload_batch(local).await;
        if result.is_err() {
            self.replica_pos = None;
        }
        result
    }

    async fn upload_batch(&mut self, local: TxId) -> Result<TxId, UploadError> {
        let mut pos = match self.replica_pos {
            Some(p) => p,
            None => {
                let p = self.remote_position().await?;
                self.replica_pos = Some(p);
                p
            }
        };
        let mut uploaded = 0usize;
        while pos < local && (self.max_batch == 0 || uploaded < self.max_batch) {
            let Some(txid) = pos.next() else { break };
            self.upload_one(txid).await?;
            pos = txid;
            self.replica_pos = Some(pos);
            uploaded += 1;
        }
        Ok(pos)
    }

    async fn upload_one(&self, txid: TxId) -> Result<(), UploadError> {
        let local_err = |source| UploadError::Local { txid, source };
        let path = self.meta.l0_path(txid);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.was_streamed(txid) => {
                // Streamed to the replica by the monitor: already there.
                return Ok(());
            }
            Err(e) => return Err(local_err(e)),
        };
        let mut head = [0u8; ltx::HEADER_SIZE];
        file.read_exact(&mut head).map_err(local_err)?;
        let header = ltx::Header::from_bytes(&head)
            .map_err(|e| local_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let body = tokio::fs::File::open(&path).await.map_err(local_err)?;
        self.client
            .write(FileId::new(0, txid, txid), header.timestamp, Box::pin(body))
            .await?;
        Ok(())
    }
}

impl Uploader {
    /// Whether the L0 file `txid` went straight to the replica (its record
    /// is written only after the replica held it whole).
    fn was_streamed(&self, txid: TxId) -> bool {
        matches!(self.meta.read_streamed(), Ok(Some((h, _))) if h.max_txid == txid)
    }
}

/// Runs uploads until `stop` turns true: after every change of `local`, and
/// every `interval` as a fallback; errors back off from `interval`, doubling
/// up to [`MAX_BACKOFF`]. Publishes the replica position on `replicated`.
pub(super) async fn run(
    mut uploader: Uploader,
    db: String,
    mut local: watch::Receiver<TxId>,
    replicated: watch::Sender<TxId>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> Uploader {
    let mut backoff = interval;
    let mut failing = false;
    loop {
        let target = *local.borrow_and_update();
        if target > TxId::ZERO && uploader.replica_pos() != Some(target) {
            match uploader.upload_through(target).await {
                Ok(pos) => {
                    if failing {
                        tracing::info!(db = %db, txid = %pos, "replica uploads resumed");
                    }
                    failing = false;
                    backoff = interval;
                    replicated.send_replace(pos);
                    if pos < target {
                        continue; // more than one batch pending
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(db = %db, error = %e, "replica upload failed; retrying with backoff");
                    }
                    failing = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if *stop.borrow() {
                        return uploader;
                    }
                    continue;
                }
            }
        }
        if *stop.borrow() {
            return uploader;
        }
        tokio::select! {
            r = local.changed() => { if r.is_err() { return uploader; } }
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}
