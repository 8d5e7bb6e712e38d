//! The codec's error type: every variant names what was wrong and, when
//! decoding, the byte offset where it was found.

use crate::types::TxId;

/// A result with the codec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong encoding, decoding or compacting LTX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading from or writing to the caller's stream failed.
    #[error("LTX stream I/O: {0}")]
    Io(#[from] std::io::Error),

    /// The stream ended before the structure at `offset` was complete.
    #[error("LTX file truncated at byte {offset}: expected {what}")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: u64,
        /// The structure being read.
        what: &'static str,
    },

    /// The file does not start with `LTX1`.
    #[error("not an LTX file: magic is {found:02x?}, expected \"LTX1\"")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },

    /// A header field breaks the rules of LTX.md §3.2.
    #[error("invalid LTX header: {0}")]
    InvalidHeader(String),

    /// A trailer field breaks the rules of LTX.md §8.
    #[error("invalid LTX trailer: {0}")]
    InvalidTrailer(String),

    /// A page frame at `offset` is malformed (LTX.md §5).
    #[error("invalid page frame at byte {offset}: {reason}")]
    InvalidPage {
        /// Offset of the frame's page header.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The page index is malformed or disagrees with the frames (LTX.md §7).
    #[error("invalid page index at byte {offset}: {reason}")]
    InvalidIndex {
        /// Offset of the offending index bytes.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The stored file checksum does not match the content (LTX.md §8.1).
    #[error("LTX file checksum mismatch: stored {stored:016x}, computed {computed:016x}")]
    ChecksumMismatch {
        /// The checksum in the trailer.
        stored: u64,
        /// The checksum of what was read.
        computed: u64,
    },

    /// Bytes follow the trailer.
    #[error("unexpected data after the LTX trailer at byte {offset}")]
    TrailingData {
        /// Offset of the first extra byte.
        offset: u64,
    },

    /// The caller broke an encoder rule (LTX.md §5.4).
    #[error("LTX encoder: {0}")]
    Encode(String),

    /// A TXID text is not exactly 16 hex digits.
    #[error("invalid TXID {0:?}: expected exactly 16 hex digits")]
    InvalidTxId(String),

    /// Compactor inputs do not form a contiguous chain (LTX.md §12 step 2).
    #[error("LTX files are not contiguous: {prev_min}-{prev_max} is followed by {min}-{max}")]
    NotContiguous {
        /// Earlier file's MinTXID.
        prev_min: TxId,
        /// Earlier file's MaxTXID.
        prev_max: TxId,
        /// Later file's MinTXID.
        min: TxId,
        /// Later file's MaxTXID.
        max: TxId,
    },

    /// Compactor inputs disagree on the page size.
    #[error("LTX files have different page sizes: {0} and {1}")]
    PageSizeMismatch(u32, u32),

    /// The caller used the codec in a way its contract forbids.
    #[error("LTX usage: {0}")]
    Usage(&'static str),
}
