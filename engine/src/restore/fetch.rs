//! Fetching the planned files (RESTORE.md §5 step 2), with bounded
//! parallelism and bounded memory.
//!
//! The compactor reads all its inputs at once, page number by page number,
//! so every file must be readable when the merge starts. How each one gets
//! there:
//!
//! - The first file (normally the level-9 snapshot, by far the largest) is
//!   streamed: a task reads it from the replica into a small bounded channel
//!   ([`STREAM_DEPTH`] × [`STREAM_CHUNK`], 4 MiB) that the merge drains. It
//!   is never stored whole, so a 1 TB database needs no spool of its
//!   snapshot; the read-ahead lets the download start before the merge.
//! - Every other file is fetched whole before the merge: into memory if it
//!   is at most [`MEMORY_FILE_MAX`] and the running total stays within
//!   [`MEMORY_BUDGET`], otherwise into an unnamed temporary file in the
//!   output's directory (created already unlinked, or unlinked at once, so
//!   the kernel frees it when it is closed, even after a crash).
//!
//! So the fetched bytes held in memory stay below `MEMORY_BUDGET`, plus
//! 4 MiB of read-ahead and a 256 KiB buffer per running fetch, whatever the
//! plan (the merge adds about 130 KiB and two pages per file for its
//! decoders); disk use is at most the size of the spooled increments.
//!
//! At most `parallelism` fetches run at once. The snapshot's stream takes
//! its slot last, after every other fetch has one, so a stream waiting on
//! the merge can never starve the fetches the merge waits for (with
//! `parallelism` 1 the fetches simply run one after another).
//!
//! A first file larger than [`RANGE_SIZE`] is read as consecutive ranged
//! reads of that size, several at once when fetch slots are free (at most
//! [`RANGES_AHEAD`], each holding a slot beyond the stream's own), and
//! handed to the merge in order: one slow connection no longer sets the
//! pace of a large snapshot, and at most `RANGES_AHEAD × RANGE_SIZE` bytes
//! wait in memory.
//!
//! Each read is resumable as in Litestream: on a read error, or on EOF
//! before the listed size, the file is reopened with a ranged read from the
//! current offset, at most [`RETRY_DELAYS`]`.len()` times per file, after
//! 250 ms, 500 ms and 1 s. "Not found" is never retried.

use std::io::{self, Read, Seek};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backends::{ByteRange, ByteStream, FileId, FileInfo, ReplicaClient};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinError, JoinSet};

use super::error::{RestoreError, Result};

/// The largest file kept in memory rather than spooled to disk (64 MiB).
pub(crate) const MEMORY_FILE_MAX: u64 = 64 << 20;
/// The most bytes of fetched files kept in memory at once (256 MiB).
pub(crate) const MEMORY_BUDGET: u64 = 256 << 20;
/// Size of one chunk of the streamed file (256 KiB).
const STREAM_CHUNK: usize = 256 << 10;
/// Chunks of the streamed file buffered ahead of the merge.
const STREAM_DEPTH: usize = 16;
/// Size of one ranged read of a large streamed file (4 MiB).
pub(crate) const RANGE_SIZE: u64 = 4 << 20;
/// Ranged reads of the streamed file in flight at most.
pub(crate) const RANGES_AHEAD: usize = 4;
/// Read size while spooling a file (256 KiB).
const SPOOL_CHUNK: usize = 256 << 10;
/// Waits before the first, second and third reopen of a file whose read
/// failed (Litestream's schedule).
pub(crate) const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// How files are fetched.
#[derive(Clone, Debug)]
pub(crate) struct FetchConfig {
    /// Fetches running at once (at least 1).
    pub(crate) parallelism: usize,
    /// Where spooled files go: the output's directory.
    pub(crate) spool_dir: PathBuf,
    /// Waits before each reopen; their count is the retry limit.
    pub(crate) retry_delays: Vec<Duration>,
    /// See [`MEMORY_FILE_MAX`].
    pub(crate) memory_file_max: u64,
    /// See [`MEMORY_BUDGET`].
    pub(crate) memory_budget: u64,
    /// See [`RANGE_SIZE`].
    pub(crate) range_size: u64,
}

impl FetchConfig {
    pub(crate) fn new(parallelism: usize, spool_dir: PathBuf) -> FetchConfig {
        FetchConfig {
            parallelism: parallelism.max(1),
            spool_dir,
            retry_delays: RETRY_DELAYS.to_vec(),
            memory_file_max: MEMORY_FILE_MAX,
            memory_budget: MEMORY_BUDGET,
            range_size: RANGE_SIZE,
        }
    }
}

/// One fetched file, readable by the compactor.
#[derive(Debug)]
pub(crate) enum Input {
    /// Held in memory.
    Memory(io::Cursor<SharedBytes>),
    /// Spooled to an anonymous temporary file.
    Spooled(std::fs::File),
    /// Arriving from a fetch task.
    Stream(ChannelReader),
}

impl Input {
    /// A second reader of the same bytes from the start, for finding which
    /// file is damaged after a failed merge; `None` for a stream.
    pub(crate) fn reread(&self) -> io::Result<Option<Input>> {
        Ok(match self {
            Input::Memory(c) => Some(Input::Memory(io::Cursor::new(c.get_ref().clone()))),
            Input::Spooled(f) => {
                let mut f = f.try_clone()?;
                f.rewind()?;
                Some(Input::Spooled(f))
            }
            Input::Stream(_) => None,
        })
    }
}

impl Input {
    /// Fills `buf` from the start of the file and leaves the reader at the
    /// start again.
    pub(crate) fn peek(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Input::Memory(c) => {
                c.read_exact(buf)?;
                c.rewind()
            }
            Input::Spooled(f) => {
                f.read_exact(buf)?;
                f.rewind()
            }
            Input::Stream(s) => s.peek(buf),
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Memory(c) => c.read(buf),
            Input::Spooled(f) => f.read(buf),
            Input::Stream(s) => s.read(buf),
        }
    }
}

/// Bytes shared between the compactor's reader and a re-reader.
#[derive(Clone, Debug)]
pub(crate) struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The fetched files in plan order, and the task still streaming the first.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) inputs: Vec<Input>,
    /// Dropping it stops the stream.
    pub(crate) tasks: JoinSet<()>,
}

/// Fetches `files` (RESTORE.md §5 step 2) as the module documentation
/// describes; returns once every file but the first is complete.
pub(crate) async fn fetch_all(
    client: Arc<dyn ReplicaClient>,
    files: &[FileInfo],
    config: &FetchConfig,
) -> Result<Fetched> {
    let Some((&base, rest)) = files.split_first() else {
        return Ok(Fetched {
            inputs: Vec::new(),
            tasks: JoinSet::new(),
        });
    };
    let slots = Arc::new(Semaphore::new(config.parallelism.max(1)));
    let mut pending: JoinSet<Result<(usize, Input)>> = JoinSet::new();
    let mut done: Vec<Option<Input>> = (0..files.len()).map(|_| None).collect();
    let mut in_memory = 0u64;

    for (i, &info) in rest.iter().enumerate() {
        let memory = info.size <= config.memory_file_max
            && in_memory.saturating_add(info.size) <= config.memory_budget;
        if memory {
            in_memory += info.size;
        }
        let permit = acquire(&slots, &mut pending, &mut done).await?;
        let (client, config) = (Arc::clone(&client), config.clone());
        pending.spawn(async move {
            let _permit = permit;
            let input = spool(client.as_ref(), info, memory, &config).await?;
            Ok((i + 1, input))
        });
    }

    let permit = acquire(&slots, &mut pending, &mut done).await?;
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    let mut tasks = JoinSet::new();
    let delays = config.retry_delays.clone();
    let range_size = config.range_size.max(1);
    let stream_slots = Arc::clone(&slots);
    tasks.spawn(async move {
        let _permit = permit;
        if base.size > range_size {
            ranges::stream_ranges(client, base, delays, range_size, stream_slots, tx).await;
        } else {
            stream(client.as_ref(), base, &delays, tx).await;
        }
    });
    done[0] = Some(Input::Stream(ChannelReader::new(base.id, rx)));

    while let Some(joined) = pending.join_next().await {
        store(joined, &mut done)?;
    }
    let inputs = done
        .into_iter()
        .zip(files)
        .map(|(input, f)| {
            input.ok_or_else(|| RestoreError::Fetch {
                file: f.id,
                offset: 0,
                reason: "the fetch task ended without a result".into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Fetched { inputs, tasks })
}

/// Waits for a fetch slot, collecting finished fetches meanwhile so that a
/// failure stops the restore without waiting for the others.
async fn acquire(
    slots: &Arc<Semaphore>,
    pending: &mut JoinSet<Result<(usize, Input)>>,
    done: &mut [Option<Input>],
) -> Result<OwnedSemaphorePermit> {
    loop {
        tokio::select! {
            biased;
            Some(joined) = pending.join_next(), if !pending.is_empty() => store(joined, done)?,
            permit = Arc::clone(slots).acquire_owned() => {
                return permit.map_err(|_| RestoreError::Cancelled);
            }
        }
    }
}

fn store(
    joined: std::result::Result<Result<(usize, Input)>, JoinError>,
    done: &mut [Option<Input>],
) -> Result<()> {
    let (i, input) = joined.map_err(|e| {
        if e.is_cancelled() {
            RestoreError::Cancelled
        } else {
            RestoreError::Task(format!("fetching: {e}"))
        }
    })??;
    if let Some(slot) = done.get_mut(i) {
        *slot = Some(input);
    }
    Ok(())
}

/// Fetches one whole file into memory or into an anonymous temporary file.
async fn spool(
    client: &dyn ReplicaClient,
    info: FileInfo,
    memory: bool,
    config: &FetchConfig,
) -> Result<Input> {
    let mut reader = Resumable::new(client, info, &config.retry_delays);
    if memory {
        // Exactly the listed size, so the buffer never doubles; reads go
        // through a chunk one byte longer than the file, to see its end.
        let size = usize::try_from(info.size).unwrap_or(0);
        let mut buf = Vec::with_capacity(size);
        let mut chunk = vec![0u8; SPOOL_CHUNK.min(size.saturating_add(1))];
        loop {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(Input::Memory(io::Cursor::new(SharedBytes(Arc::new(buf)))));
    }

    let dir = config.spool_dir.clone();
    let spool_err =
        |e: io::Error| RestoreError::io("spool a replica file in", &config.spool_dir, e);
    let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
        .await
        .map_err(|e| spool_err(io::Error::other(e)))?
        .map_err(spool_err)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut chunk = vec![0u8; SPOOL_CHUNK];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        file.write_all(&chunk[..n]).await.map_err(spool_err)?;
    }
    file.flush().await.map_err(spool_err)?;
    let mut file = file.into_std().await;
    tokio::task::spawn_blocking(move || file.rewind().map(|()| file))
        .await
        .map_err(|e| spool_err(io::Error::other(e)))?
        .map(Input::Spooled)
        .map_err(spool_err)
}

/// Streams one file into `tx` in chunks; an empty chunk marks the end, an
/// error is sent in its place. Stops quietly when the reader has gone.
async fn stream(
    client: &dyn ReplicaClient,
    info: FileInfo,
    delays: &[Duration],
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let mut reader = Resumable::new(client, info, delays);
    loop {
        let mut chunk = vec![0u8; STREAM_CHUNK];
        let mut len = 0;
        let result = loop {
            match reader.read(&mut chunk[len..]).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    len += n;
                    if len == chunk.len() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(len);
        let last = len == 0;
        let item = match result {
            Ok(()) => Ok(chunk),
            Err(e) => Err(io::Error::other(e)),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || last || failed {
            return;
        }
    }
}

/// The merge's end of a streamed file.
#[derive(Debug)]
pub(crate) struct ChannelReader {
    file: FileId,
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl ChannelReader {
    fn new(file: FileId, rx: mpsc::Receiver<io::Result<Vec<u8>>>) -> ChannelReader {
        ChannelReader {
            file,
            rx,
            chunk: Vec::new(),
            pos: 0,
            eof: false,
        }
    }
}

impl ChannelReader {
    /// Fills `buf` with the next bytes and puts them back.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact(buf)?;
        let mut chunk = buf.to_vec();
        chunk.extend_from_slice(&self.chunk[self.pos..]);
        self.chunk = chunk;
        self.pos = 0;
        Ok(())
    }
}

impl Read for ChannelReader {
    /// Blocks for the next chunk: call it only from a blocking thread.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.pos);
                buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) if chunk.is_empty() => self.eof = true,
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::other(RestoreError::Fetch {
                        file: self.file,
                        offset: 0,
                        reason: "the download stopped before the end of the file".into(),
                    }));
                }
            }
        }
    }
}

/// A replica file read from start to end, reopened from the current offset
/// after a failed read.
struct Resumable<'a> {
    client: &'a dyn ReplicaClient,
    info: FileInfo,
    offset: u64,
    /// Where the read ends: the file's size, or the end of a range.
    end: u64,
    stream: Option<ByteStream>,
    retries: usize,
    delays: &'a [Duration],
}

impl<'a> Resumable<'a> {
    fn new(client: &'a dyn ReplicaClient, info: FileInfo, delays: &'a [Duration]) -> Self {
        Resumable {
            client,
            info,
            offset: 0,
            end: info.size,
            stream: None,
            retries: 0,
            delays,
        }
    }

    /// Bytes `start..end` of a file.
    fn range(
        client: &'a dyn ReplicaClient,
        info: FileInfo,
        start: u64,
        end: u64,
        delays: &'a [Duration],
    ) -> Self {
        Resumable {
            offset: start,
            end,
            ..Resumable::new(client, info, delays)
        }
    }

    /// Reads the next bytes into `buf` (non-empty); 0 means the end.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if self.end < self.info.size && self.offset >= self.end {
                return Ok(0);
            }
            let stream = match &mut self.stream {
                Some(s) => s,
                None => {
                    let range = ByteRange {
                        offset: self.offset,
                        len: (self.end < self.info.size).then(|| self.end - self.offset),
                    };
                    match self.client.open(self.info.id, range).await {
                        Ok(s) => self.stream.insert(s),
                        Err(e) if e.is_not_found() => {
                            return Err(self.fail(format!(
                                "{e} (was it deleted by retention during the restore? \
                                 plan again and retry)"
                            )));
                        }
                        Err(e) => {
                            self.retry(format!("open: {e}")).await?;
                            continue;
                        }
                    }
                }
            };
            match tokio::io::AsyncReadExt::read(stream, buf).await {
                Ok(0) if self.offset < self.end => {
                    self.stream = None;
                    let why = format!(
                        "the file ended at byte {} of {} listed",
                        self.offset, self.end
                    );
                    self.retry(why).await?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stream = None;
                    self.retry(format!("read: {e}")).await?;
                }
            }
        }
    }

    /// Waits before the next reopen, or fails once the retries are used up.
    async fn retry(&mut self, why: String) -> Result<()> {
        let Some(&delay) = self.delays.get(self.retries) else {
            let tries = self.retries;
            return Err(self.fail(format!("{why}; gave up after {tries} retries")));
        };
        self.retries += 1;
        tracing::warn!(
            file = %self.info.id,
            offset = self.offset,
            attempt = self.retries,
            "reading a replica file failed ({why}); reopening in {delay:?}"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn fail(&self, reason: String) -> RestoreError {
        RestoreError::Fetch {
            file: self.info.id,
            offset: self.offset,
            reason,
        }
    }
}

#[path = "fetch_ranges.rs"]
mod ranges;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "fetch_tests.rs"]
mod tests;
