//! freshet's engine: everything between a SQLite database and a replica.
//!
//! - [`wal`] reads SQLite's write-ahead log: headers, frames, checksums, and
//!   the committed prefix (REPLICATION.md §3).
//! - [`config`] reads `litestream.yml` as Litestream does (CLI_CONFIG.md §3–5).
#![forbid(unsafe_code)]

pub mod compact;
pub mod config;
pub mod db;
pub mod metrics;
pub mod replicate;
pub mod restore;
pub mod setup;
pub mod wal;
