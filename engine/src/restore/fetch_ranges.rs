//! Ranged reads of the large first file of a restore (see the parent
//! module): consecutive ranges fetched ahead in parallel, within the fetch
//! slots, and handed to the merge in file order.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use backends::{FileInfo, ReplicaClient};
use tokio::sync::{Semaphore, mpsc};

use super::{RANGES_AHEAD, Resumable, STREAM_CHUNK};
use crate::restore::error::{RestoreError, Result};

/// Streams one large file into `tx` as [`stream`] does, fetching it as
/// ranges of `range_size` bytes: the next range always, and more ahead
/// while fetch slots are free.
pub(super) async fn stream_ranges(
    client: Arc<dyn ReplicaClient>,
    info: FileInfo,
    delays: Vec<Duration>,
    range_size: u64,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let delays: Arc<[Duration]> = delays.into();
    let mut queue = Ranges::default();
    let mut next = 0u64;
    loop {
        while next < info.size {
            // The stream's own slot covers one range; others need a free one.
            let permit = if queue.0.is_empty() {
                None
            } else if queue.0.len() < RANGES_AHEAD {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => break,
                }
            } else {
                break;
            };
            let end = next.saturating_add(range_size).min(info.size);
            let (client, delays) = (Arc::clone(&client), Arc::clone(&delays));
            let start = next;
            queue.0.push_back(tokio::spawn(async move {
                let _permit = permit;
                let mut reader = Resumable::range(client.as_ref(), info, start, end, &delays);
                let mut buf = vec![0u8; (end - start) as usize];
                let mut len = 0;
                while len < buf.len() {
                    match reader.read(&mut buf[len..]).await? {
                        0 => break,
                        n => len += n,
                    }
                }
                buf.truncate(len);
                Ok::<_, RestoreError>(buf)
            }));
            next = end;
        }
        let Some(task) = queue.0.pop_front() else {
            let _ = tx.send(Ok(Vec::new())).await;
            return;
        };
        let item = match task.await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(e) => Err(io::Error::other(format!("a ranged read stopped: {e}"))),
        };
        let sent = match item {
            Ok(bytes) => {
                let mut ok = true;
                for piece in bytes.chunks(STREAM_CHUNK) {
                    if tx.send(Ok(piece.to_vec())).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                ok
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                false
            }
        };
        if !sent {
            return;
        }
    }
}

/// Ranged reads in flight, in file order; dropping it (the restore stopped,
/// or the stream ended early) aborts them.
#[derive(Default)]
struct Ranges(std::collections::VecDeque<tokio::task::JoinHandle<Result<Vec<u8>>>>);

impl Drop for Ranges {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
