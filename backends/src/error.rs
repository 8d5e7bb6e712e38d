//! Errors of every backend, in one enum so the engine can tell "not found"
//! and "try again" apart without knowing the backend.

use std::path::PathBuf;

/// A result with a backend [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A backend operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file or object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (a path or key).
        what: String,
    },

    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "write", "list".
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The stream being uploaded failed.
    #[error("reading the data to upload for {what}: {source}")]
    Body {
        /// The file being written.
        what: String,
        /// The error from the stream.
        #[source]
        source: std::io::Error,
    },

    /// The backend is configured wrongly; the message says how to fix it.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// Whether the error means the file does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
