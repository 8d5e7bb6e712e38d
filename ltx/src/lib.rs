//! A pure codec for LTX, the file format in which Litestream 0.5 (and freshet)
//! ship SQLite pages to a replica.
//!
//! An LTX file moves a database from one transaction position to another: a
//! 100-byte [`Header`], one LZ4-compressed frame per page, a page index, and a
//! 16-byte [`Trailer`] with a CRC-64 checksum of the file's logical content
//! (`../shared/spec/LTX.md` §2). This crate only transforms bytes: it does no
//! file or network I/O of its own, spawns nothing and reads no clock. Callers
//! hand it any [`std::io::Write`] or [`std::io::Read`].
//!
//! - [`Encoder`] streams pages (by reference, no per-page allocation) into the
//!   current frame encoding: a 4-byte size and an LZ4 block (LTX.md §5.2).
//!   [`FrameBatch`] compresses runs of pages elsewhere (on worker threads)
//!   for [`Encoder::encode_batch`], with byte-for-byte the same output.
//! - [`Decoder`] reads both that and the legacy LZ4-frame pages written by
//!   Litestream ≤ 0.5.15 (§5.3), verifies the file checksum (§8.1) and checks
//!   the page index against the frames it saw (§7). It is stricter than the
//!   Go decoder (§13): every accepted file is one the Go encoder could write.
//! - [`Compactor`] merges contiguous files into one (§12); restore uses it to
//!   collapse a snapshot and its increments.
//! - [`page_checksum`] and [`DatabaseChecksum`] compute the rolling database
//!   checksum (§9), which Litestream files leave at zero.
//!
//! ```
//! use ltx::{Decoder, Encoder, Header, HeaderFlags, TxId};
//!
//! let header = Header {
//!     flags: HeaderFlags::NO_CHECKSUM,
//!     page_size: 512,
//!     commit: 2,
//!     min_txid: TxId::new(1),
//!     max_txid: TxId::new(1),
//!     timestamp: 1_700_000_000_000,
//!     ..Header::default()
//! };
//! let mut file = Vec::new();
//! let mut enc = Encoder::new(&mut file, &header)?;
//! enc.encode_page(1, &[0u8; 512])?;
//! enc.encode_page(2, &[7u8; 512])?;
//! enc.finish(ltx::Checksum::ZERO)?;
//!
//! let mut dec = Decoder::new(file.as_slice())?;
//! let mut page = vec![0u8; 512];
//! assert_eq!(dec.next_page(&mut page)?, Some(1));
//! assert_eq!(dec.next_page(&mut page)?, Some(2));
//! assert_eq!(page, [7u8; 512]);
//! assert_eq!(dec.next_page(&mut page)?, None);
//! dec.finish()?;
//! # Ok::<(), ltx::Error>(())
//! ```
#![deny(missing_docs)]

mod checksum;
mod compactor;
mod decoder;
mod encoder;
mod error;
mod frame;
mod header;
mod index;
mod types;

pub use checksum::{Crc64, DatabaseChecksum, page_checksum};
pub use compactor::Compactor;
pub use decoder::{Decoder, PageEncoding};
pub use encoder::{Encoder, FrameBatch};
pub use error::{Error, Result};
pub use header::{Header, HeaderFlags, Trailer};
pub use index::{PageIndexEntry, TailIndex, read_page_index};
pub use types::{
    Checksum, PENDING_BYTE, TxId, file_name, is_valid_page_size, lock_pgno, parse_file_name,
};

/// The four magic bytes every LTX file starts with (LTX.md §3).
pub const MAGIC: [u8; 4] = *b"LTX1";
/// Size of the file header in bytes (LTX.md §3).
pub const HEADER_SIZE: usize = 100;
/// Size of a page header (page number and flags) in bytes (LTX.md §5.1).
pub const PAGE_HEADER_SIZE: usize = 6;
/// Size of the compressed-size field that follows a current page header.
pub const PAGE_SIZE_FIELD_SIZE: usize = 4;
/// Size of the trailer in bytes (LTX.md §8).
pub const TRAILER_SIZE: usize = 16;
/// Page-header flag: a 4-byte size and an LZ4 block follow (LTX.md §5.1).
pub const PAGE_FLAG_SIZE_FOLLOWS: u16 = 0x0001;
