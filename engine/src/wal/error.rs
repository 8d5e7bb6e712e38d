//! Errors of the WAL reader.
//!
//! Only conditions the caller must act on are errors. A torn or
//! checksum-failing tail is the normal end of valid data (REPLICATION.md §3
//! rules 1–2) and is reported in [`crate::wal::Scan::stop`] instead.

use std::io;

/// What went wrong while reading a WAL; every variant names the byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read of the WAL failed.
    #[error("WAL read at byte {offset}: {source}")]
    Io {
        /// Offset of the failed read.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },

    /// The header's magic is neither `0x377f0682` nor `0x377f0683` (§3 rule 1).
    #[error("not a SQLite WAL: magic at byte 0 is {magic:#010x}")]
    BadMagic {
        /// The first four bytes, big-endian.
        magic: u32,
    },

    /// The header's format version is not 3007000 (§3 rule 1).
    #[error("unsupported WAL format version {version} at byte 4 (expected 3007000)")]
    BadVersion {
        /// The version found.
        version: u32,
    },

    /// The header passed its checksum but its page size is not a power of
    /// two in 512..=65536, so no frame offset can be computed.
    #[error("invalid WAL page size {page_size} at byte 8")]
    BadPageSize {
        /// The page size found.
        page_size: u32,
    },

    /// An offset handed to the reader is before the first frame or not on a
    /// frame boundary (REPLICATION.md §3 rule 7, §4.2 step 6).
    #[error("WAL offset {offset} is not a frame boundary for {page_size}-byte pages")]
    Misaligned {
        /// The offset asked for.
        offset: u64,
        /// The WAL's page size.
        page_size: u32,
    },

    /// Resuming at `offset` failed because the frame before it is missing or
    /// carries other salts than the ones recorded (REPLICATION.md §3 rule 7).
    /// The caller restarts from offset 32 (§4.3 step 3).
    #[error("previous WAL frame mismatch before byte {offset}: {reason}")]
    PrevFrameMismatch {
        /// The resume offset.
        offset: u64,
        /// Why the frame before it does not qualify.
        reason: &'static str,
    },

    /// A frame buffer does not have the length `24 + page size`.
    #[error("frame buffer of {len} bytes for the frame at byte {offset}; need {need}")]
    BufferSize {
        /// Offset of the frame being read.
        offset: u64,
        /// Length of the buffer given.
        len: usize,
        /// Length required.
        need: usize,
    },

    /// The WAL has more frames than the page map can index (2³² frames,
    /// 16 TiB of WAL at 4 KiB pages).
    #[error("WAL frame at byte {offset} is beyond the 2^32 frames the reader indexes")]
    TooManyFrames {
        /// Offset of the first frame that does not fit.
        offset: u64,
    },
}

/// Result of WAL reader operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the offset it happened at.
    pub(crate) fn io(offset: u64) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { offset, source }
    }

    /// Whether this is [`Error::PrevFrameMismatch`], which callers answer by
    /// reading from the start of the WAL (REPLICATION.md §4.3 step 3).
    pub fn is_prev_frame_mismatch(&self) -> bool {
        matches!(self, Error::PrevFrameMismatch { .. })
    }
}
