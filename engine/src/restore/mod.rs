//! Restore: rebuild a SQLite database from a replica's LTX files
//! (RESTORE.md §4, §5, §8), byte for byte what Litestream 0.5 restores.
//!
//! - [`plan`] lists the replica and chooses the files (§4): the newest
//!   eligible level-9 snapshot, then the files of levels 8..0 that extend it
//!   furthest, up to a [`Target`]. [`choose`] is the same algorithm over
//!   in-memory listings.
//! - [`restore`] applies a plan (§5): it fetches the files with bounded
//!   parallelism and Litestream's resumable retries, verifies every input
//!   while merging them with [`ltx::Compactor::merge_pages`], writes exactly
//!   `commit × page_size` bytes to `<output>.tmp` (the lock page zero),
//!   fsyncs, links it into place without ever replacing a file, fsyncs the
//!   directory, and optionally runs an [`IntegrityCheck`].
//! - [`restore_with`] adds the CLI's conditions (`-if-db-not-exists`,
//!   `-if-replica-exists`, `-force`) as [`Outcome`]s rather than errors;
//!   [`prepare_output`], [`dry_run`] and [`check_timestamp`] are the other
//!   pieces `freshet restore` needs.
//!
//! - [`follow`] keeps a restored database up to date (`restore -f`, §7).
//!
//! Not yet: v0.3 "generations" replicas (§6), which [`check_v3_replica`]
//! detects on file replicas so the user gets a clear error.

mod apply;
mod error;
mod fetch;
mod follow;
mod integrity;
mod output;
mod plan;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod e2e_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod oracle_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod testutil;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use backends::ReplicaClient;
use ltx::TxId;

pub use error::{RestoreError, Result};
pub use follow::{FollowOptions, follow, txid_path};
pub use integrity::IntegrityCheck;
pub use output::{
    DryRun, check_timestamp, check_v3_replica, dry_run, format_rfc3339, output_exists,
    parse_rfc3339, prepare_output, result_json,
};
pub use plan::{Plan, better, choose, plan};

/// How many files are fetched at once unless told otherwise (`-parallelism`).
pub const DEFAULT_PARALLELISM: usize = 8;

/// The state to restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// The newest state the replica holds; a gap in its history is an error.
    #[default]
    Latest,
    /// Exactly this TXID: the chain must end at it (`-txid`).
    TxId(TxId),
    /// The newest state whose files were all created strictly before this
    /// time (`-timestamp`).
    Time(SystemTime),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Latest => f.write_str("the latest state"),
            Target::TxId(x) => write!(f, "TXID {x}"),
            Target::Time(t) => write!(f, "the state before {}", format_rfc3339(*t)),
        }
    }
}

/// What to restore and where.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Where the database is written; it must not exist yet, nor its `-wal`
    /// or `-journal`. Missing parent directories are created.
    pub output: PathBuf,
    /// Which state.
    pub target: Target,
    /// How many replica files are fetched at once; 0 counts as 1. Litestream
    /// accepts the flag and ignores it; freshet honours it.
    pub parallelism: usize,
    /// The check run on the result.
    pub integrity: IntegrityCheck,
}

impl RestoreOptions {
    /// Options to restore the latest state into `output`, with the default
    /// parallelism and no integrity check.
    pub fn new(output: impl Into<PathBuf>) -> RestoreOptions {
        RestoreOptions {
            output: output.into(),
            target: Target::Latest,
            parallelism: DEFAULT_PARALLELISM,
            integrity: IntegrityCheck::None,
        }
    }
}

/// What a successful restore produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The TXID the database is at: the plan's last MaxTXID.
    pub txid: TxId,
    /// Page size of the database.
    pub page_size: u32,
    /// Database size in pages.
    pub pages: u32,
    /// Bytes written: `pages × page_size`.
    pub bytes: u64,
    /// How many replica files were applied.
    pub files: usize,
    /// Their total size, as fetched.
    pub fetched_bytes: u64,
}

/// The CLI's conditions around a restore (RESTORE.md §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `-if-db-not-exists`: do nothing if the output path exists in any form.
    pub if_db_not_exists: bool,
    /// `-if-replica-exists`: do nothing if no backup matches the target.
    pub if_replica_exists: bool,
    /// `-force`: replace an existing non-empty output and its sidecars.
    pub force: bool,
}

/// What [`restore_with`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The database was restored.
    Restored(RestoreOutcome),
    /// `-if-db-not-exists` and the output exists: nothing was done
    /// (Litestream logs "database already exists, skipping").
    SkippedDatabaseExists,
    /// `-if-replica-exists` and no backup matches: nothing was done
    /// (Litestream logs "no matching backups found").
    SkippedNoBackup,
}

/// Restores `opts.target` from `client` into `opts.output`.
///
/// Fails without touching anything if the output, its `-wal` or its
/// `-journal` exists. On any error the temporary `<output>.tmp` is removed and nothing
/// appears at the output path; if the restore future is dropped, the merge
/// stops at the next page and the same holds.
pub async fn restore(
    client: Arc<dyn ReplicaClient>,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    output::ensure_absent(&opts.output)?;
    let plan = plan(client.as_ref(), opts.target).await?;
    restore_plan(client, &plan, opts).await
}

/// Applies a plan made by [`plan`] (the CLI plans first to report the TXID).
pub async fn restore_plan(
    client: Arc<dyn ReplicaClient>,
    plan: &Plan,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    run_plan(client, plan, opts, |_| {}).await
}

/// [`restore_plan`] with the fetch settings adjusted by `tune` (tests use
/// it to force spooling to disk or shorten the retry waits).
pub(crate) async fn run_plan(
    client: Arc<dyn ReplicaClient>,
    plan: &Plan,
    opts: &RestoreOptions,
    tune: impl FnOnce(&mut fetch::FetchConfig),
) -> Result<RestoreOutcome> {
    output::ensure_absent(&opts.output)?;
    for f in &plan.files {
        if f.size < ltx::HEADER_SIZE as u64 {
            return Err(RestoreError::FileTooSmall {
                file: f.id,
                size: f.size,
                min: ltx::HEADER_SIZE as u64,
            });
        }
    }
    let dir = output::create_parent_dir(&opts.output).await?;
    tracing::info!(
        output = %opts.output.display(),
        files = plan.files.len(),
        bytes = plan.fetch_bytes(),
        txid = %plan.max_txid(),
        "restoring"
    );

    let cancel = CancelOnDrop::default();
    let mut config = fetch::FetchConfig::new(opts.parallelism, dir);
    tune(&mut config);
    let fetched = fetch::fetch_all(client, &plan.files, &config).await?;
    let output = opts.output.clone();
    let files = plan.files.clone();
    let flag = Arc::clone(&cancel.0);
    let written = tokio::task::spawn_blocking(move || {
        apply::write_database(&output, fetched.inputs, &files, &flag)
    })
    .await
    .map_err(|e| RestoreError::Task(format!("writing the database: {e}")))??;
    drop(fetched.tasks);

    integrity::run(&opts.output, opts.integrity).await?;
    cancel.disarm();
    tracing::info!(
        output = %opts.output.display(),
        txid = %written.txid,
        pages = written.pages,
        page_size = written.page_size,
        "restored"
    );
    Ok(RestoreOutcome {
        txid: written.txid,
        page_size: written.page_size,
        pages: written.pages,
        bytes: written.bytes,
        files: plan.files.len(),
        fetched_bytes: plan.fetch_bytes(),
    })
}

/// A restore with the CLI's conditions: `-if-db-not-exists` and
/// `-if-replica-exists` become [`Outcome`]s, and `-force` output
/// preparation ([`prepare_output`]) is done, after planning, so a failed
/// plan never deletes anything.
pub async fn restore_with(
    client: Arc<dyn ReplicaClient>,
    opts: &RestoreOptions,
    when: Conditions,
) -> Result<Outcome> {
    if when.if_db_not_exists && output_exists(&opts.output) {
        return Ok(Outcome::SkippedDatabaseExists);
    }
    output::check_output(&opts.output, when.force)?;
    let plan = match plan(client.as_ref(), opts.target).await {
        Ok(p) => p,
        Err(e) if e.is_no_backup() && when.if_replica_exists => {
            return Ok(Outcome::SkippedNoBackup);
        }
        Err(e) => return Err(e),
    };
    prepare_output(&opts.output, when.force)?;
    restore_plan(client, &plan, opts)
        .await
        .map(Outcome::Restored)
}

/// Sets its flag when dropped unless disarmed: the blocking merge polls the
/// flag, so dropping the restore future stops it before the rename.
#[derive(Default)]
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.1 = true;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}
