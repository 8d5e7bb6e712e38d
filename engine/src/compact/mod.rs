//! Compaction levels, level-9 snapshot scheduling and retention
//! (REPLICA_LAYOUT.md §1, §6, §7).
//!
//! Level 0 holds one LTX file per sync. Every configured level L (1..=8)
//! periodically merges the files of level L-1 that it does not cover yet into
//! one file; level 9 holds full snapshots that the replication side writes on
//! request. Retention then removes what no restore point needs any more.
//!
//! - [`CompactionConfig`] and [`CompactionLevel`]: the levels and their
//!   intervals, retention durations, with Litestream's defaults.
//! - [`clock`]: the injected [`Clock`] and the wall-clock alignment of every
//!   schedule to multiples of the interval since 0001-01-01 UTC (§6 step 1).
//! - [`compact_one_level`]: one compaction step for one database and level
//!   (§6), streaming the merge from the inputs into the upload.
//! - [`enforce_snapshot_retention`] and [`enforce_l0_retention`]: §7.1 and
//!   §7.2, each returning a [`RetentionReport`].
//! - [`Scheduler`]: the per-level tasks over a set of [`CompactionTarget`]s,
//!   stopped through a `tokio::sync::watch` channel.

pub mod clock;
mod config;
mod error;
mod level;
mod retention;
mod schedule;
mod stream;
mod target;
#[cfg(test)]
mod testutil;

pub use clock::{Clock, SystemClock, next_boundary, prev_boundary};
pub use config::{
    CompactionConfig, CompactionLevel, DEFAULT_L0_RETENTION, DEFAULT_L0_RETENTION_CHECK_INTERVAL,
    DEFAULT_LEVEL_INTERVALS, DEFAULT_SNAPSHOT_INTERVAL, DEFAULT_SNAPSHOT_RETENTION,
    MAX_COMPACTION_LEVEL,
};
pub use error::{CompactError, SnapshotError};
pub use level::{LevelOutcome, NewestFiles, compact_one_level};
pub use retention::{L0Scan, RetentionReport, enforce_l0_retention, enforce_snapshot_retention};
pub use schedule::{NOT_READY_RETRIES, NOT_READY_RETRY_DELAY, Scheduler};
pub use target::{CompactionTarget, TargetSet};
