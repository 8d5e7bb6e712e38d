//! The databases compaction serves, as the schedules see them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use backends::{FileInfo, ReplicaClient};
use ltx::TxId;

use super::error::SnapshotError;
use super::level::NewestFiles;

/// A replicated database as the schedules see it. The replication side
/// implements it.
#[async_trait]
pub trait CompactionTarget: Send + Sync + fmt::Debug {
    /// The database file, to name it in logs.
    fn db_path(&self) -> &Path;

    /// Its replica.
    fn client(&self) -> Arc<dyn ReplicaClient>;

    /// The metadata directory's `ltx/0`, where level-0 files are staged
    /// before upload (REPLICA_LAYOUT.md §8), if there is one.
    fn local_l0_dir(&self) -> Option<PathBuf>;

    /// Whether the database is initialised (its page size is known).
    fn is_ready(&self) -> bool;

    /// The TXID of the newest level-0 file written; [`TxId::ZERO`] before
    /// the first one.
    fn current_txid(&self) -> TxId;

    /// The newest level-0 TXID known to be whole on the replica, with every
    /// file before it, or `None` when the replica's own listing is the only
    /// authority. Level 1 compacts no further: a directory listing taken
    /// while uploads land may show a file without an earlier one.
    fn replicated_txid(&self) -> Option<TxId>;

    /// Writes a full snapshot of the live database at its current position
    /// to level 9 (REPLICATION.md §8) and returns the file written.
    async fn write_snapshot(&self) -> Result<FileInfo, SnapshotError>;

    /// Told the outcome of each level-0 retention scan, for the
    /// `litestream_l0_retention_files_total` gauge (CLI_CONFIG.md §6).
    fn record_l0_retention(&self, _scan: &super::L0Scan) {}
}

/// A database in a [`TargetSet`] with its cache of newest files per level.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) target: Arc<dyn CompactionTarget>,
    pub(crate) newest: Arc<NewestFiles>,
    /// Held by every step that lists or changes levels 1..=9 of this
    /// replica (compaction, retention), so no listing sees another step's
    /// files half-written or half-deleted.
    pub(crate) levels: Arc<tokio::sync::Mutex<()>>,
}

/// The databases the schedules serve; shared, so databases can come and go
/// while the schedules run.
#[derive(Clone, Debug, Default)]
pub struct TargetSet {
    // The current entries; held only to copy or edit the list, never across
    // an await.
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl TargetSet {
    /// An empty set.
    pub fn new() -> TargetSet {
        TargetSet::default()
    }

    /// Adds a database, replacing one with the same path.
    pub fn insert(&self, target: Arc<dyn CompactionTarget>) {
        let mut entries = self.lock();
        entries.retain(|e| e.target.db_path() != target.db_path());
        entries.push(Entry {
            target,
            newest: Arc::default(),
            levels: Arc::default(),
        });
    }

    /// Removes the database at `db_path`; whether it was there.
    pub fn remove(&self, db_path: &Path) -> bool {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|e| e.target.db_path() != db_path);
        entries.len() != before
    }

    /// The databases now in the set.
    pub fn targets(&self) -> Vec<Arc<dyn CompactionTarget>> {
        self.lock().iter().map(|e| e.target.clone()).collect()
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::Clock;
    use crate::compact::testutil::{Fixture, ManualClock, TestTarget, secs};

    #[test]
    fn the_target_set_replaces_and_removes_by_path() {
        let fx = Fixture::new();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(secs(0)));
        let set = TargetSet::new();
        set.insert(TestTarget::new(&fx, clock.clone()));
        set.insert(TestTarget::new(&fx, clock));
        assert_eq!(set.targets().len(), 1);
        assert!(set.remove(&fx.root().join("db.sqlite")));
        assert!(!set.remove(&fx.root().join("db.sqlite")));
        assert!(set.targets().is_empty());
    }
}
