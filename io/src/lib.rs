//! freshet's I/O layer: how bytes move between files and memory.
//!
//! - [`durable`]: the one way freshet writes a file that must survive a
//!   crash — temp file, fsync, rename, directory fsync.
//! - [`ReadAt`]: positional reads, the WAL reader's only I/O. On a [`File`]
//!   (std) [`ReadAt::read_chunks`] keeps several 1 MiB reads in flight
//!   through io_uring, so reads waiting for the disk proceed while the
//!   caller checksums the chunk before them.
//! - [`SeqWriter`]: writes a file front to back with positional writes,
//!   batched through io_uring (restore output).
//! - [`Ring`]: the blocking driver under both — a pool of aligned buffers,
//!   batched submission, fsync.
//! - [`shard`]: the async face — one OS thread per core, each with a
//!   current-thread tokio runtime woken by its ring's eventfd, so
//!   `read_at`/`write_at` are futures.
//! - [`mode`]: io_uring when the kernel allows it, positional reads and
//!   writes otherwise; `FRESHET_IO=sync|uring|auto` overrides.
//!
//! `unsafe` is allowed in this crate only: io_uring takes raw buffer
//! addresses. Every block says why the buffer outlives the kernel's use of
//! it; the rule is that the driver, never a caller or a future, owns a buffer
//! until its completion arrives.
//!
//! [`File`]: std::fs::File
#![deny(missing_docs)]

pub mod buf;
pub mod durable;
pub mod mode;
mod read_at;
mod ring;
pub mod shard;
mod writer;

pub use buf::AlignedBuf;
pub use mode::{ENV_VAR, Engine, IoMode, engine};
pub use read_at::{ReadAt, read_chunks_with};
pub use ring::{BUF_SIZE, DEPTH, Ring, RingOptions};
pub use shard::{AsyncFile, ShardGone, Shards};
pub use writer::SeqWriter;
