//! Errors of compaction and retention.

use std::path::PathBuf;

use backends::FileId;

/// What [`CompactionTarget::write_snapshot`](super::CompactionTarget::write_snapshot)
/// returns on failure: the replication side's own error, boxed because this
/// module does not know its type.
pub type SnapshotError = Box<dyn std::error::Error + Send + Sync>;

/// A compaction, snapshot or retention step failed. Each variant names the
/// level and file or path involved; the scheduler logs it and retries at the
/// next boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// A replica operation failed.
    #[error("{op} at level {level}: {source}")]
    Backend {
        /// What was being done: "list", "open", "write", "delete".
        op: &'static str,
        /// The level involved.
        level: u8,
        /// The backend's error.
        #[source]
        source: backends::Error,
    },

    /// Two consecutive source files do not chain: the second starts after the
    /// first's end + 1 (a gap) or does not extend it (LTX.md §12 step 2).
    #[error(
        "cannot compact into level {dst_level}: {prev} and {next} are not contiguous \
         (the second must start at or before the first's MaxTXID + 1 and end after it)"
    )]
    NotContiguous {
        /// The level being written.
        dst_level: u8,
        /// The earlier source file.
        prev: FileId,
        /// The file that does not follow it.
        next: FileId,
    },

    /// Reading or merging the LTX inputs failed (corrupt or truncated file,
    /// checksum mismatch, header contradicting its name).
    #[error("merging {count} file(s) of level {src_level} from {first}: {source}")]
    Merge {
        /// The level read.
        src_level: u8,
        /// The first input.
        first: FileId,
        /// How many inputs were merged.
        count: usize,
        /// The codec's error.
        #[source]
        source: ltx::Error,
    },

    /// A file in the local metadata directory could not be read or removed.
    #[error("{op} {}: {source}", path.display())]
    Local {
        /// The operation: "open", "stat", "delete".
        op: &'static str,
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The compaction worker thread stopped without an answer (it panicked
    /// or the runtime is shutting down).
    #[error("compaction worker for level {level} stopped: {reason}")]
    Worker {
        /// The level being written.
        level: u8,
        /// Why, as the runtime reports it.
        reason: String,
    },

    /// Writing a level-9 snapshot failed on the replication side.
    #[error("writing a snapshot: {0}")]
    Snapshot(#[source] SnapshotError),

    /// The level number or interval given is not a valid compaction level.
    #[error("{0}")]
    Config(String),
}

impl CompactError {
    pub(crate) fn backend(op: &'static str, level: u8) -> impl FnOnce(backends::Error) -> Self {
        move |source| CompactError::Backend { op, level, source }
    }
}
