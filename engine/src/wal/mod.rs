//! SQLite WAL reader (REPLICATION.md §3): finds the committed frames a sync
//! step turns into an LTX file, and answers the continuity check's questions
//! about the WAL (§4.2).
//!
//! - [`ReadAt`] is the only I/O it does: positional reads from a
//!   [`std::fs::File`] (a scan keeps several 1 MiB reads in flight through
//!   io_uring when the kernel allows it), a byte slice, or another source.
//! - [`Header`] / [`read_header`] validate the 32-byte header; [`Checksum`]
//!   is SQLite's cumulative checksum in either [`ByteOrder`].
//! - [`Reader`] positions at the first frame ([`Reader::open`]) or after
//!   frames already replicated ([`Reader::resume`]); [`Reader::scan`] follows
//!   salts and the checksum chain to the end of valid data and returns a
//!   [`Scan`]: a [`PageMap`] of newest committed frames, the end offset,
//!   the database size, and the [`Stop`] reason.
//! - [`read_frame`] and [`salt_generations`] serve the "last page check" and
//!   the restarted-WAL check of §4.2 steps 7–8.
//!
//! A torn or corrupt tail is not an error: valid data ends there, as it does
//! for SQLite's own recovery. Errors ([`Error`]) are I/O failures, headers no
//! SQLite writes, and offsets that cannot be resumed from.
//!
//! ```
//! use engine::wal::{ByteOrder, Checksum, MAGIC_LITTLE, Reader, Stop, VERSION};
//!
//! // A WAL holding only its header (page size 4096, salts 0x1234/0x5678).
//! let mut wal = Vec::new();
//! for word in [MAGIC_LITTLE, VERSION, 4096, 0, 0x1234, 0x5678] {
//!     wal.extend_from_slice(&word.to_be_bytes());
//! }
//! let c = Checksum::ZERO.update(ByteOrder::Little, &wal);
//! wal.extend_from_slice(&c.s0.to_be_bytes());
//! wal.extend_from_slice(&c.s1.to_be_bytes());
//!
//! let reader = Reader::open(&wal)?.ok_or("no valid WAL")?;
//! let scan = reader.scan(None, &mut Vec::new())?;
//! assert!(scan.pages.is_empty());
//! assert_eq!((scan.commit, scan.wal_size()), (0, 0));
//! assert_eq!(scan.stop, Stop::EndOfFile { offset: 32 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checksum;
mod error;
mod frame;
mod header;
mod page_map;
mod scan;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod io_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod model_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod sqlite_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod testutil;

pub use checksum::{ByteOrder, Checksum};
pub use error::{Error, Result};
pub use frame::{Frame, SaltGenerations, read_frame, salt_generations};
/// Re-exported from `freshet_io`, where the io_uring reader lives.
pub use freshet_io::ReadAt;
pub use header::{
    FRAME_HEADER_SIZE, FrameHeader, HEADER_SIZE, Header, MAGIC_BIG, MAGIC_LITTLE, Salts, VERSION,
    frame_size, is_valid_page_size, read_header,
};
pub use page_map::PageMap;
pub use scan::{Reader, Scan, Stop};
