//! Test fixtures: a file replica in a temporary directory, LTX files built
//! with the real encoder, a model of the database they describe, and clocks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use backends::file::FileReplica;
use backends::{FileId, FileInfo, ReplicaClient};
use ltx::{Checksum, Decoder, Encoder, Header, HeaderFlags, TxId};

use super::{Clock, CompactionTarget, SnapshotError};

/// Page size of every test database.
pub(crate) const PAGE_SIZE: u32 = 512;
/// 2023-11-14T00:00:00Z, a UTC midnight: a boundary of every default
/// interval.
pub(crate) const MIDNIGHT_MS: i64 = 1_699_920_000_000;

/// Unix milliseconds as a time.
pub(crate) fn at(ms: i64) -> SystemTime {
    backends::time_from_millis(ms)
}

/// Seconds after [`MIDNIGHT_MS`] as a time.
pub(crate) fn secs(s: u64) -> SystemTime {
    at(MIDNIGHT_MS) + Duration::from_secs(s)
}

/// Seconds after [`MIDNIGHT_MS`] in Unix milliseconds.
pub(crate) fn secs_ms(s: u64) -> i64 {
    MIDNIGHT_MS + (s as i64) * 1000
}

/// A page whose first four bytes are its number and the rest noise seeded
/// by (`pgno`, `fill`): distinct per version and barely compressible.
pub(crate) fn page(pgno: u32, fill: u8) -> Vec<u8> {
    let mut x = (u64::from(pgno) << 8 | u64::from(fill)) ^ 0x9e37_79b9_7f4a_7c15;
    let mut p: Vec<u8> = (0..PAGE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    p[..4].copy_from_slice(&pgno.to_be_bytes());
    p
}

/// An LTX file as Litestream writes it (NoChecksum) with `pages` (sorted).
pub(crate) fn ltx_bytes(min: u64, max: u64, commit: u32, ts: i64, pages: &[(u32, u8)]) -> Vec<u8> {
    let header = Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size: PAGE_SIZE,
        commit,
        min_txid: TxId::new(min),
        max_txid: TxId::new(max),
        timestamp: ts,
        ..Header::default()
    };
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, &header).unwrap();
    for &(pgno, fill) in pages {
        enc.encode_page(pgno, &page(pgno, fill)).unwrap();
    }
    enc.finish(Checksum::ZERO).unwrap();
    out
}

/// Decodes a whole file, verifying it.
pub(crate) fn decode(bytes: &[u8]) -> (Header, BTreeMap<u32, Vec<u8>>) {
    let mut dec = Decoder::new(bytes).unwrap();
    let header = *dec.header();
    let mut pages = BTreeMap::new();
    let mut buf = vec![0u8; header.page_size as usize];
    while let Some(pgno) = dec.next_page(&mut buf).unwrap() {
        pages.insert(pgno, buf.clone());
    }
    dec.finish().unwrap();
    (header, pages)
}

/// A level/min/max triple.
pub(crate) fn fid(level: u8, min: u64, max: u64) -> FileId {
    FileId::new(level, TxId::new(min), TxId::new(max))
}

struct Commit {
    changed: BTreeSet<u32>,
    state: BTreeMap<u32, u8>,
    commit: u32,
}

/// A database replicated to a [`FileReplica`], its L0 files also staged in a
/// local `ltx/0` directory, with a model of every TXID's contents.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    pub(crate) replica: Arc<FileReplica>,
    pub(crate) local_l0: PathBuf,
    history: Vec<Commit>,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let replica = Arc::new(FileReplica::new(dir.path().join("replica")));
        let local_l0 = dir.path().join("meta").join("ltx").join("0");
        std::fs::create_dir_all(&local_l0).unwrap();
        Fixture {
            dir,
            replica,
            local_l0,
            history: Vec::new(),
        }
    }

    /// The temporary directory everything lives in.
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub(crate) fn client(&self) -> &dyn ReplicaClient {
        self.replica.as_ref()
    }

    /// The next TXID to be committed.
    pub(crate) fn next_txid(&self) -> u64 {
        self.history.len() as u64 + 1
    }

    /// Commits `changes` as the next TXID: the first one is a snapshot of
    /// pages 1..=N, later ones change or add pages. Uploads the L0 file with
    /// timestamp `ts` and stages a local copy.
    pub(crate) async fn commit(&mut self, changes: &[(u32, u8)], ts: i64) -> FileId {
        let (id, bytes) = self.build(changes, ts);
        std::fs::write(self.local_l0.join(id.file_name()), &bytes).unwrap();
        self.upload(id, ts, bytes).await;
        id
    }

    /// Like [`commit`](Self::commit) with no local copy.
    pub(crate) async fn commit_remote_only(&mut self, changes: &[(u32, u8)], ts: i64) -> FileId {
        let (id, bytes) = self.build(changes, ts);
        self.upload(id, ts, bytes).await;
        id
    }

    fn build(&mut self, changes: &[(u32, u8)], ts: i64) -> (FileId, Vec<u8>) {
        let txid = self.next_txid();
        let (mut state, old_commit) = match self.history.last() {
            Some(c) => (c.state.clone(), c.commit),
            None => (BTreeMap::new(), 0),
        };
        for &(pgno, fill) in changes {
            state.insert(pgno, fill);
        }
        let commit = state.keys().copied().max().unwrap_or(0).max(old_commit);
        let pages: Vec<(u32, u8)> = if txid == 1 {
            assert!(
                state.keys().copied().eq(1..=commit),
                "a snapshot needs 1..N"
            );
            state.iter().map(|(&p, &f)| (p, f)).collect()
        } else {
            let changed: BTreeSet<u32> = changes.iter().map(|c| c.0).collect();
            changed.iter().map(|&p| (p, state[&p])).collect()
        };
        let bytes = ltx_bytes(txid, txid, commit, ts, &pages);
        self.history.push(Commit {
            changed: pages.iter().map(|p| p.0).collect(),
            state,
            commit,
        });
        (fid(0, txid, txid), bytes)
    }

    async fn upload(&self, id: FileId, ts: i64, bytes: Vec<u8>) -> FileInfo {
        self.replica
            .write(id, ts, Box::pin(std::io::Cursor::new(bytes)))
            .await
            .unwrap()
    }

    /// Uploads a small valid file at any level, e.g. for retention tests.
    pub(crate) async fn put(&self, level: u8, min: u64, max: u64, ts: i64) -> FileId {
        let id = fid(level, min, max);
        self.upload(id, ts, ltx_bytes(min, max, 1, ts, &[(1, level)]))
            .await;
        id
    }

    /// The pages a merge of TXIDs `min..=max` must hold: every page changed
    /// in that range, as of `max`, within its commit.
    pub(crate) fn expected(&self, min: u64, max: u64) -> BTreeMap<u32, Vec<u8>> {
        let last = &self.history[max as usize - 1];
        let mut pages = BTreeMap::new();
        for c in &self.history[min as usize - 1..max as usize] {
            for &p in c.changed.iter().filter(|&&p| p <= last.commit) {
                pages.insert(p, page(p, last.state[&p]));
            }
        }
        pages
    }

    /// The file names of a level, in listing order.
    pub(crate) async fn list(&self, level: u8) -> Vec<FileId> {
        let files = self.replica.list(level, TxId::ZERO).await.unwrap();
        files.iter().map(|f| f.id).collect()
    }

    /// The bytes of a replica file.
    pub(crate) fn read(&self, id: FileId) -> Vec<u8> {
        std::fs::read(self.replica.path(id)).unwrap()
    }

    /// The names of the local level-0 copies, sorted.
    pub(crate) fn local_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.local_l0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Level-0 ids `min..=max`.
pub(crate) fn l0_ids(min: u64, max: u64) -> Vec<FileId> {
    (min..=max).map(|t| fid(0, t, t)).collect()
}

/// A clock that only moves when told to; `sleep` moves it forward.
#[derive(Debug)]
pub(crate) struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub(crate) fn new(now: SystemTime) -> ManualClock {
        ManualClock(Mutex::new(now))
    }

    pub(crate) fn set(&self, now: SystemTime) {
        *self.0.lock().unwrap() = now;
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += duration;
    }
}

/// Wall-clock time that follows tokio's (pausable) clock from `base`.
#[derive(Debug)]
pub(crate) struct TokioClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be called inside the runtime whose clock it follows.
    pub(crate) fn new(base: SystemTime) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A database for the schedules: a [`Fixture`]'s replica, a TXID the
/// test sets, and snapshots written as small valid files.
#[derive(Debug)]
pub(crate) struct TestTarget {
    pub(crate) path: PathBuf,
    replica: Arc<FileReplica>,
    local: PathBuf,
    clock: Arc<dyn Clock>,
    /// `is_ready` answers false this many times first.
    pub(crate) not_ready_for: u32,
    pub(crate) ready_calls: AtomicU32,
    txid: AtomicU64,
    pub(crate) snapshots: AtomicU32,
}

impl TestTarget {
    pub(crate) fn new(fx: &Fixture, clock: Arc<dyn Clock>) -> Arc<TestTarget> {
        Arc::new(TestTarget {
            path: fx.root().join("db.sqlite"),
            replica: fx.replica.clone(),
            local: fx.local_l0.clone(),
            clock,
            not_ready_for: 0,
            ready_calls: AtomicU32::new(0),
            txid: AtomicU64::new(0),
            snapshots: AtomicU32::new(0),
        })
    }

    pub(crate) fn set_txid(&self, txid: u64) {
        self.txid.store(txid, Ordering::SeqCst);
    }
}

#[async_trait]
impl CompactionTarget for TestTarget {
    fn db_path(&self) -> &Path {
        &self.path
    }

    fn client(&self) -> Arc<dyn ReplicaClient> {
        self.replica.clone()
    }

    fn local_l0_dir(&self) -> Option<PathBuf> {
        Some(self.local.clone())
    }

    fn is_ready(&self) -> bool {
        self.ready_calls.fetch_add(1, Ordering::SeqCst) >= self.not_ready_for
    }

    fn current_txid(&self) -> TxId {
        TxId::new(self.txid.load(Ordering::SeqCst))
    }

    fn replicated_txid(&self) -> Option<TxId> {
        None
    }

    async fn write_snapshot(&self) -> Result<FileInfo, SnapshotError> {
        self.snapshots.fetch_add(1, Ordering::SeqCst);
        let max = self.txid.load(Ordering::SeqCst);
        let ts = backends::FileInfo {
            id: fid(9, 1, max),
            size: 0,
            created_at: self.clock.now(),
        };
        let ms = ts
            .created_at
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let body = ltx_bytes(1, max, 1, ms, &[(1, 9)]);
        Ok(self
            .replica
            .write(ts.id, ms, Box::pin(std::io::Cursor::new(body)))
            .await?)
    }
}
