//! Replica backends: where LTX files are kept.
//!
//! Every backend implements [`ReplicaClient`], a deliberately small trait: list
//! the files of a level, open one (or a byte range of it), write one whole,
//! delete some or all. Retries, compaction and restore planning live in the
//! engine, once, on top of it. The layout of files inside each backend is
//! Litestream's (REPLICA_LAYOUT.md), so a replica written by either tool reads
//! with the other.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod calendar;
mod error;
pub mod file;
pub mod s3;

use std::fmt;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use ltx::TxId;
use tokio::io::AsyncRead;

pub use error::{Error, Result};

/// The level that holds full snapshots (REPLICA_LAYOUT.md §1).
pub const SNAPSHOT_LEVEL: u8 = 9;
/// Highest level number a replica can hold.
pub const MAX_LEVEL: u8 = 9;

/// A byte stream read from or written to a backend.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

/// Names one LTX file of a replica: its level and TXID range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Level 0–9.
    pub level: u8,
    /// First TXID covered.
    pub min_txid: TxId,
    /// Last TXID covered.
    pub max_txid: TxId,
}

impl FileId {
    /// A file of `level` covering `min..=max`.
    pub fn new(level: u8, min_txid: TxId, max_txid: TxId) -> FileId {
        FileId {
            level,
            min_txid,
            max_txid,
        }
    }

    /// The file's name, `<min>-<max>.ltx` (LTX.md §10).
    pub fn file_name(&self) -> String {
        ltx::file_name(self.min_txid, self.max_txid)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {}/{}", self.level, self.file_name())
    }
}

/// One LTX file as a listing reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Which file.
    pub id: FileId,
    /// Size in bytes.
    pub size: u64,
    /// When it was created: the LTX header timestamp where the backend stores
    /// it (file mtime, S3 metadata), else the upload time (REPLICA_LAYOUT.md
    /// §4). Restore-by-timestamp and retention use it.
    pub created_at: SystemTime,
}

/// A byte range of a file: `len` bytes from `offset`, or to the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// How many bytes; `None` for the rest of the file.
    pub len: Option<u64>,
}

impl ByteRange {
    /// The whole file.
    pub const ALL: ByteRange = ByteRange {
        offset: 0,
        len: None,
    };
}

/// A replica's storage.
///
/// Contract, for every implementation:
/// - [`list`](Self::list) returns the files of one level whose MinTXID is at
///   least `seek`, sorted by (MinTXID, MaxTXID); a level that does not exist
///   is empty, not an error. Names that are not LTX file names are skipped.
/// - [`open`](Self::open) of a missing file fails with an error for which
///   [`Error::is_not_found`] is true.
/// - [`write`](Self::write) makes the file visible whole or not at all; after
///   an error or a cancellation nothing, or the complete file, is visible.
///   Writing an existing name replaces it.
/// - [`delete`](Self::delete) ignores files that are already gone.
#[async_trait]
pub trait ReplicaClient: Send + Sync + fmt::Debug {
    /// The backend's type as a config names it: `file`, `s3`, …
    fn kind(&self) -> &'static str;

    /// Lists level `level` from MinTXID `seek` on.
    async fn list(&self, level: u8, seek: TxId) -> Result<Vec<FileInfo>>;

    /// Like [`list`](Self::list), but `created_at` is the LTX header
    /// timestamp even where that costs extra requests (S3: one HEAD per
    /// file). Used only for restore to a point in time.
    async fn list_with_exact_times(&self, level: u8, seek: TxId) -> Result<Vec<FileInfo>> {
        self.list(level, seek).await
    }

    /// Opens `range` of a file for reading.
    async fn open(&self, id: FileId, range: ByteRange) -> Result<ByteStream>;

    /// Writes a whole file from `body`; `timestamp_ms` is its LTX header
    /// timestamp, recorded as its creation time.
    async fn write(&self, id: FileId, timestamp_ms: i64, body: ByteStream) -> Result<FileInfo>;

    /// Deletes files.
    async fn delete(&self, ids: &[FileId]) -> Result<()>;

    /// Deletes the whole replica.
    async fn delete_all(&self) -> Result<()>;
}

/// Milliseconds since the Unix epoch as a [`SystemTime`] (negative values
/// count back from the epoch).
pub fn time_from_millis(ms: i64) -> SystemTime {
    let d = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}
