//! Errors of a replicated database's local side: SQLite, the WAL, the
//! metadata directory.

use std::path::{Path, PathBuf};

/// A result with a [`DbError`].
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// Something went wrong on the database side of replication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A file operation failed.
    #[error("{op} {}: {source}{}", path.display(), io_hint(source))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A local LTX file does not decode: the position cannot be trusted.
    #[error(
        "local LTX file {} is corrupt ({source}); remove the metadata directory's ltx/ \
         folder (or run `freshet reset`) to start over with a fresh snapshot",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder found.
        #[source]
        source: ltx::Error,
    },

    /// SQLite refused an operation.
    #[error("sqlite: {op}: {source}")]
    Sqlite {
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The WAL could not be read.
    #[error("reading the WAL: {0}")]
    Wal(#[from] crate::wal::Error),

    /// Encoding an LTX file failed.
    #[error("encoding LTX: {0}")]
    Ltx(#[from] ltx::Error),

    /// The database cannot be replicated as it is.
    #[error("{0}")]
    Unsupported(String),

    /// Streaming a file into the replica failed; the replica shows nothing
    /// of it (a backend write is whole or nothing) and the next attempt
    /// starts over.
    #[error("streaming {what} to the replica: {message}")]
    Replica {
        /// Which file.
        what: String,
        /// The backend's or the encoder's error.
        message: String,
    },

    /// An invariant of this module broke; a bug.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What a user can do about an I/O error that is not a bug.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(28) | Some(122) => {
            "; free space on that file system (local LTX files wait there until they \
             are uploaded; replication resumes by itself)"
        }
        Some(30) => "; the file system is read-only: remount it read-write",
        Some(13) => "; check the permissions of the file and its directory",
        _ => "",
    }
}

impl DbError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> DbError {
        DbError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, source: ltx::Error) -> DbError {
        DbError::Corrupt {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
        move |source| DbError::Sqlite { op, source }
    }

    /// Whether the error is a full disk (REPLICATION.md §11 cleans `*.tmp`
    /// files after three of these).
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            DbError::Io { source, .. } => Some(source),
            DbError::Ltx(ltx::Error::Io(e)) => Some(e),
            _ => None,
        };
        io.is_some_and(|e| {
            e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
        })
    }

    /// Whether SQLite reported the database busy or locked.
    pub fn is_busy(&self) -> bool {
        matches!(self, DbError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}
