//! Restore's error type: each variant says which file, TXID or path is
//! involved and what the user can do about it.

use std::path::PathBuf;

use backends::FileId;
use ltx::TxId;

use super::{IntegrityCheck, Target};

/// A result with a [`RestoreError`].
pub type Result<T, E = RestoreError> = std::result::Result<T, E>;

/// Why a restore (or its plan) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The options contradict each other or are out of range.
    #[error("invalid restore options: {0}")]
    InvalidOptions(String),

    /// The output path exists; restore never overwrites a database.
    #[error(
        "cannot restore: {} already exists; restore never overwrites a database \
         (remove it, choose another output path, or pass -force)", path.display()
    )]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },

    /// The output path is a directory.
    #[error("cannot restore: output path {} is a directory", path.display())]
    OutputIsDirectory {
        /// The output path.
        path: PathBuf,
    },

    /// A SQLite sidecar of the output exists: it belongs to another
    /// database, and SQLite would apply a `-wal` or `-journal` to the
    /// restored one.
    #[error(
        "cannot restore: SQLite sidecar {} already exists and belongs to another database \
         (remove it, or pass -force)", path.display()
    )]
    SidecarExists {
        /// The `-wal`, `-shm` or `-journal` path.
        path: PathBuf,
    },

    /// The replica has no file that matches the target (Litestream's
    /// "transaction not available"; the CLI prints "no matching backup files
    /// available").
    #[error("no matching backup files available: {}", no_backup_detail(target, *listed))]
    NoBackups {
        /// What was asked for.
        target: Target,
        /// How many LTX files the replica listed, all levels together.
        listed: usize,
    },

    /// No chain of files ends exactly at the requested TXID.
    #[error(
        "no matching backup files available: TXID {txid} cannot be restored; the files not \
         past it reach only TXID {reached}. A TXID restore needs a file ending exactly at it \
         (usually its level-0 file, which retention may have removed): list the replica's \
         files and pick the MaxTXID of one of them"
    )]
    TxNotAvailable {
        /// The requested TXID.
        txid: TxId,
        /// The last TXID the eligible files reach.
        reached: TxId,
    },

    /// Restoring the latest state would skip transactions.
    #[error(
        "non-contiguous ltx files: have up to {have} but next file starts at {next} \
         (level {level}); the files in between are missing from the replica. Restore with \
         -txid {have} for the newest state before the gap"
    )]
    NonContiguous {
        /// The last TXID the chain reaches.
        have: TxId,
        /// The MinTXID of the first file that cannot be reached.
        next: TxId,
        /// That file's level.
        level: u8,
    },

    /// The chain does not begin with a snapshot, so it cannot produce a whole
    /// database.
    #[error(
        "cannot restore: the files do not start with a snapshot (TXID 1): the first file, \
         {first}, starts at TXID {min_txid}; the replica has no level-9 snapshot or level-0/1 \
         file from TXID 1 that is old enough for this target"
    )]
    NotASnapshot {
        /// The first planned file.
        first: FileId,
        /// Its MinTXID.
        min_txid: TxId,
    },

    /// A planned file is too small to be an LTX file.
    #[error(
        "invalid ltx file {file}: {size} bytes is smaller than an LTX header ({min} bytes); \
         the replica file is damaged"
    )]
    FileTooSmall {
        /// The file.
        file: FileId,
        /// Its listed size.
        size: u64,
        /// The minimum size.
        min: u64,
    },

    /// A file's header disagrees with its name.
    #[error(
        "{file}: its header says TXIDs {min_txid}-{max_txid}; the file was renamed or \
         damaged and cannot be used"
    )]
    HeaderMismatch {
        /// The file.
        file: FileId,
        /// MinTXID in the header.
        min_txid: TxId,
        /// MaxTXID in the header.
        max_txid: TxId,
    },

    /// Listing a level of the replica failed.
    #[error("listing level {level} of the replica: {source}")]
    List {
        /// The level.
        level: u8,
        /// The backend's error.
        #[source]
        source: backends::Error,
    },

    /// Reading a file from the replica failed (after retries where allowed).
    #[error("reading {file} from the replica at byte {offset}: {reason}")]
    Fetch {
        /// The file.
        file: FileId,
        /// How far it had been read.
        offset: u64,
        /// What went wrong, including the retries made.
        reason: String,
    },

    /// A file failed to decode or verify: it is damaged.
    #[error("{file} is damaged: {source}; restore to an earlier TXID, or from another replica")]
    Corrupt {
        /// The damaged file.
        file: FileId,
        /// The decoder's finding.
        #[source]
        source: ltx::Error,
    },

    /// The planned files do not fit together (page sizes or TXID ranges).
    #[error("the planned files do not fit together: {source}")]
    Chain {
        /// The compactor's finding.
        #[source]
        source: ltx::Error,
    },

    /// The merged files leave a page of the database out.
    #[error(
        "cannot restore: no planned file holds page {pgno} of the {commit}-page database at \
         TXID {txid}; the replica is incomplete"
    )]
    MissingPage {
        /// The missing page.
        pgno: u32,
        /// The database size in pages.
        commit: u32,
        /// The TXID being restored.
        txid: TxId,
    },

    /// Follow mode cannot continue from the state it finds.
    #[error("{0}")]
    Follow(String),

    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The restored database failed its integrity check and was removed.
    #[error(
        "restored database {} failed PRAGMA {} and was removed: {result}",
        path.display(), mode.pragma()
    )]
    IntegrityFailed {
        /// The output path.
        path: PathBuf,
        /// The check that failed.
        mode: IntegrityCheck,
        /// The first row SQLite returned, or the error.
        result: String,
    },

    /// The replica holds only v0.3 ("generations") data.
    #[error(
        "{} holds a Litestream v0.3 replica (generations/) and no LTX files; restoring \
         v0.3 replicas is not supported yet: use `litestream restore` (0.5) for it",
        root.display()
    )]
    V3NotSupported {
        /// The replica root.
        root: PathBuf,
    },

    /// A target time outside the replica's history.
    #[error(
        "timestamp does not exist: the replica's files were created from {earliest} to {latest}"
    )]
    TimestampOutOfRange {
        /// Creation time of the oldest file (RFC 3339).
        earliest: String,
        /// Creation time of the newest file (RFC 3339).
        latest: String,
    },

    /// A task of the restore panicked.
    #[error("a restore task failed: {0}")]
    Task(String),

    /// The restore was cancelled before the output appeared.
    #[error("restore cancelled; nothing was written to the output path")]
    Cancelled,
}

fn no_backup_detail(target: &Target, listed: usize) -> String {
    match target {
        _ if listed == 0 => "the replica holds no LTX files".into(),
        Target::Latest => format!(
            "none of its {listed} LTX files is a level-9 snapshot or starts at TXID 1; \
             the replica's history was pruned or it is incomplete"
        ),
        Target::TxId(x) => {
            format!("no snapshot or file chain from TXID 1 ends at or before TXID {x}")
        }
        Target::Time(t) => format!(
            "no snapshot or file chain from TXID 1 was created before {}",
            super::output::format_rfc3339(*t)
        ),
    }
}

impl RestoreError {
    /// Whether this is Litestream's "transaction not available": nothing in
    /// the replica matches. `-if-replica-exists` and
    /// `replicate -restore-if-db-not-exists` treat it as "no backup", not as a
    /// failure (RESTORE.md §8, §9).
    pub fn is_no_backup(&self) -> bool {
        matches!(
            self,
            RestoreError::NoBackups { .. } | RestoreError::TxNotAvailable { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RestoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
