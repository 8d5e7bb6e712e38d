//! Files that go straight from the database to the replica: level-9
//! snapshots, and level-0 files that must hold every page (a first sync, or
//! a sync that cannot prove continuity, REPLICATION.md §4.2). Their pages are
//! compressed in parallel ([`crate::db`]) and piped into the backend's
//! `write` (file backend: temp file + rename in the replica; S3: streaming
//! multipart), so the base copy is written once, and never into the
//! metadata directory.

use std::sync::Arc;

use backends::{FileId, FileInfo, ReplicaClient};
use ltx::{Header, TxId};
use tokio::task::JoinHandle;

use super::pipe::{PipeWriter, pipe};
use crate::db::{DbError, SnapshotSink};

/// Starts the backend write of `id` fed by a new pipe; returns the pipe's
/// writing end and the upload.
pub(super) fn start_upload(
    runtime: &tokio::runtime::Handle,
    client: Arc<dyn ReplicaClient>,
    id: FileId,
    timestamp_ms: i64,
) -> (PipeWriter, JoinHandle<backends::Result<FileInfo>>) {
    let (w, r) = pipe();
    let task = runtime.spawn(async move { client.write(id, timestamp_ms, Box::pin(r)).await });
    (w, task)
}

/// Ends a streamed upload: finishes the pipe if encoding went well, waits
/// for the backend (so no write outlives the call) and names the cause of
/// a failure. `encoded` is the encoding's outcome, with the writer when it
/// succeeded.
pub(super) fn end_upload(
    runtime: &tokio::runtime::Handle,
    what: String,
    encoded: Result<PipeWriter, DbError>,
    upload: JoinHandle<backends::Result<FileInfo>>,
) -> Result<FileInfo, DbError> {
    let finished = encoded.and_then(|w| {
        w.finish().map_err(|e| DbError::Replica {
            what: what.clone(),
            message: e.to_string(),
        })
    });
    // The writer is gone either way, so the upload ends: whole, or failed
    // with nothing visible (the ReplicaClient contract).
    let uploaded = match runtime.block_on(upload) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the upload task failed: {e}")),
    };
    match (finished, uploaded) {
        (Ok(()), Ok(info)) => Ok(info),
        // A failed upload closes the pipe: its error is the cause.
        (Err(e), Err(message)) if is_broken_pipe(&e) => Err(DbError::Replica { what, message }),
        (Err(e), _) => Err(e),
        (Ok(()), Err(message)) => Err(DbError::Replica { what, message }),
    }
}

/// Whether the encoder stopped because the replica stopped reading.
fn is_broken_pipe(e: &DbError) -> bool {
    let io = match e {
        DbError::Ltx(ltx::Error::Io(io)) => io,
        DbError::Io { source, .. } => source,
        DbError::Replica { .. } => return true,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::BrokenPipe
}

/// The monitor's [`SnapshotSink`]: full-snapshot L0 files go to the replica
/// directly.
#[derive(Debug)]
pub(super) struct ReplicaSink {
    pub(super) client: Arc<dyn ReplicaClient>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) name: String,
}

impl ReplicaSink {
    /// Whether the replica's level 0 reaches `txid` (REPLICATION.md §7: it
    /// never has a gap, so a file may only follow its predecessor).
    fn replica_reaches(&self, txid: TxId) -> bool {
        if txid == TxId::ZERO {
            return true;
        }
        let client = self.client.clone();
        let listed = self
            .runtime
            .block_on(async move { client.list(0, txid).await });
        match listed {
            Ok(files) => files.iter().any(|f| f.id.max_txid >= txid),
            Err(e) => {
                tracing::debug!(db = %self.name, error = %e, "cannot list the replica; staging the snapshot locally");
                false
            }
        }
    }
}

impl SnapshotSink for ReplicaSink {
    fn stream_l0(
        &mut self,
        header: &Header,
        fill: &mut dyn FnMut(&mut dyn std::io::Write) -> crate::db::Result<()>,
    ) -> crate::db::Result<bool> {
        let txid = header.max_txid;
        let prev = TxId::new(txid.get().saturating_sub(1));
        if !self.replica_reaches(prev) {
            // Earlier files are still waiting for the uploader: stage this one
            // behind them so the replica gets them in order.
            return Ok(false);
        }
        let id = FileId::new(0, txid, txid);
        let (mut w, upload) =
            start_upload(&self.runtime, self.client.clone(), id, header.timestamp);
        let encoded = fill(&mut w).map(|()| w);
        end_upload(&self.runtime, format!("L0 snapshot {id}"), encoded, upload)?;
        Ok(true)
    }
}
