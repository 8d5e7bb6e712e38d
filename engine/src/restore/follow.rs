//! Follow mode (`restore -f`, RESTORE.md §7): keep a restored database up to
//! date by applying new LTX files as they appear on the replica, so it can
//! serve as a read replica.
//!
//! Unlike Litestream, each file is fully downloaded and verified (checksum,
//! structure) before its first page touches the database: a damaged file is
//! refused, never half applied.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backends::{ByteRange, FileInfo, MAX_LEVEL, ReplicaClient};
use freshet_io::durable::{self, AtomicOptions};
use ltx::TxId;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::{IntegrityCheck, RestoreError, RestoreOptions, Result, Target};

/// Settings of follow mode.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// The database kept up to date.
    pub output: PathBuf,
    /// How often the replica is polled (`-follow-interval`).
    pub interval: Duration,
    /// Files fetched at once for the initial restore.
    pub parallelism: usize,
    /// The check run after the initial restore.
    pub integrity: IntegrityCheck,
}

/// `<output>-txid`: the TXID the database is at (16 hex digits and a
/// newline), so a restarted follower resumes where it stopped.
pub fn txid_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push("-txid");
    PathBuf::from(s)
}

/// Restores (if needed) and then follows the replica until `stop` turns
/// true. Returns the TXID reached.
pub async fn follow(
    client: Arc<dyn ReplicaClient>,
    opts: &FollowOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<TxId> {
    let mut cur = if opts.output.exists() {
        let cur = read_txid(&opts.output)?;
        check_not_reset(client.as_ref(), cur).await?;
        cur
    } else {
        let ro = RestoreOptions {
            output: opts.output.clone(),
            target: Target::Latest,
            parallelism: opts.parallelism,
            integrity: opts.integrity,
        };
        let done = super::restore(client.clone(), &ro).await?;
        set_rollback_mode(&opts.output)?;
        write_txid(&opts.output, done.txid)?;
        tracing::info!(path = %opts.output.display(), txid = %done.txid, "restored; following the replica");
        done.txid
    };
    let page_size = read_page_size(&opts.output)?;
    loop {
        match poll(client.as_ref(), &opts.output, page_size, cur).await {
            Ok(next) if next > cur => {
                cur = next;
                write_txid(&opts.output, cur)?;
                tracing::debug!(txid = %cur, "applied new files");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "follow: applying new files failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ok(cur);
        }
    }
}

/// One poll: applies every file that continues `cur`, from level 0 and,
/// across gaps there, from the compacted levels. Returns the new TXID.
async fn poll(
    client: &dyn ReplicaClient,
    output: &Path,
    page_size: u32,
    mut cur: TxId,
) -> Result<TxId> {
    let l0 = list(client, 0, next(cur)?).await?;
    if l0.is_empty() {
        return bridge(client, output, page_size, cur).await;
    }
    for f in l0 {
        if f.id.max_txid <= cur {
            continue;
        }
        if f.id.min_txid > next(cur)? {
            cur = bridge(client, output, page_size, cur).await?;
            if f.id.min_txid > next(cur)? {
                break;
            }
            if f.id.max_txid <= cur {
                continue;
            }
        }
        apply(client, output, page_size, &f).await?;
        cur = f.id.max_txid;
    }
    Ok(cur)
}

/// Closes a gap in level 0 with files of levels 1..=8 (RESTORE.md §7
/// step 3): returns as soon as one level made progress.
async fn bridge(
    client: &dyn ReplicaClient,
    output: &Path,
    page_size: u32,
    mut cur: TxId,
) -> Result<TxId> {
    for level in 1..MAX_LEVEL {
        let start = cur;
        for f in list(client, level, TxId::ZERO).await? {
            if f.id.min_txid > next(cur)? {
                break;
            }
            if f.id.max_txid <= cur {
                continue;
            }
            apply(client, output, page_size, &f).await?;
            cur = f.id.max_txid;
        }
        if cur > start {
            return Ok(cur);
        }
    }
    Ok(cur)
}

fn next(t: TxId) -> Result<TxId> {
    t.next()
        .ok_or_else(|| RestoreError::Follow("TXID overflow".into()))
}

async fn list(client: &dyn ReplicaClient, level: u8, seek: TxId) -> Result<Vec<FileInfo>> {
    client
        .list(level, seek)
        .await
        .map_err(|source| RestoreError::List { level, source })
}

/// Downloads `f`, verifies it completely, then writes its pages into the
/// database under SQLite's own locks.
async fn apply(
    client: &dyn ReplicaClient,
    output: &Path,
    page_size: u32,
    f: &FileInfo,
) -> Result<()> {
    let mut body = Vec::with_capacity(f.size as usize);
    let mut stream = client
        .open(f.id, ByteRange::ALL)
        .await
        .map_err(|e| RestoreError::Fetch {
            file: f.id,
            offset: 0,
            reason: e.to_string(),
        })?;
    stream
        .read_to_end(&mut body)
        .await
        .map_err(|e| RestoreError::Fetch {
            file: f.id,
            offset: body.len() as u64,
            reason: e.to_string(),
        })?;
    let output = output.to_path_buf();
    let id = f.id;
    tokio::task::spawn_blocking(move || apply_bytes(&output, page_size, id, &body))
        .await
        .map_err(|e| RestoreError::Follow(format!("applying {id}: {e}")))?
}

fn apply_bytes(output: &Path, page_size: u32, id: backends::FileId, body: &[u8]) -> Result<()> {
    let corrupt = |source| RestoreError::Corrupt { file: id, source };
    // Pass 1: verify everything before writing anything.
    let dec = ltx::Decoder::new(body).map_err(corrupt)?;
    let header = *dec.header();
    if header.page_size != page_size {
        return Err(RestoreError::Follow(format!(
            "{id} has {}-byte pages but the database has {page_size}-byte pages; the replica was \
             replaced: restore again into a new file",
            header.page_size
        )));
    }
    if header.min_txid != id.min_txid || header.max_txid != id.max_txid {
        return Err(RestoreError::HeaderMismatch {
            file: id,
            min_txid: header.min_txid,
            max_txid: header.max_txid,
        });
    }
    dec.finish().map_err(corrupt)?;

    // Pass 2: apply.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(output)
        .map_err(|e| RestoreError::io("open", output, e))?;
    let _lock = SqliteWriteLock::acquire(&file).map_err(|e| RestoreError::io("lock", output, e))?;
    let mut dec = ltx::Decoder::new(body).map_err(corrupt)?;
    let mut page = vec![0u8; page_size as usize];
    while let Some(pgno) = dec.next_page(&mut page).map_err(corrupt)? {
        if pgno == 1 {
            // Rollback-journal mode, so readers do not look for a WAL, and a
            // new change counter so they drop their caches (RESTORE.md §7).
            page[18] = 1;
            page[19] = 1;
            let counter =
                u32::from_be_bytes([page[24], page[25], page[26], page[27]]).wrapping_add(1);
            page[24..28].copy_from_slice(&counter.to_be_bytes());
        }
        let at = u64::from(pgno - 1) * u64::from(page_size);
        file.write_all_at(&page, at)
            .map_err(|e| RestoreError::io("write", output, e))?;
    }
    dec.finish().map_err(corrupt)?;
    if header.commit > 0 {
        file.set_len(u64::from(header.commit) * u64::from(page_size))
            .map_err(|e| RestoreError::io("truncate", output, e))?;
    }
    file.sync_all()
        .map_err(|e| RestoreError::io("fsync", output, e))?;
    Ok(())
}

/// SQLite's write locks on the database file (the PENDING byte and the
/// SHARED range, the bytes SQLite locks on Unix), held while pages change so
/// no SQLite reader sees a half-applied file. Released on drop (closing the
/// descriptor would release them too).
struct SqliteWriteLock<'a> {
    file: &'a File,
}

const PENDING_BYTE: i64 = 0x4000_0000;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

impl<'a> SqliteWriteLock<'a> {
    fn acquire(file: &'a File) -> std::io::Result<SqliteWriteLock<'a>> {
        set_lock(file, nix::libc::F_WRLCK as i16, PENDING_BYTE, 1)?;
        if let Err(e) = set_lock(file, nix::libc::F_WRLCK as i16, SHARED_FIRST, SHARED_SIZE) {
            let _ = set_lock(file, nix::libc::F_UNLCK as i16, PENDING_BYTE, 1);
            return Err(e);
        }
        Ok(SqliteWriteLock { file })
    }
}

impl Drop for SqliteWriteLock<'_> {
    fn drop(&mut self) {
        let _ = set_lock(
            self.file,
            nix::libc::F_UNLCK as i16,
            SHARED_FIRST,
            SHARED_SIZE,
        );
        let _ = set_lock(self.file, nix::libc::F_UNLCK as i16, PENDING_BYTE, 1);
    }
}

fn set_lock(file: &File, kind: i16, start: i64, len: i64) -> std::io::Result<()> {
    let lock = nix::libc::flock {
        l_type: kind,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETLKW(&lock))
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Marks the database as a rollback-journal database (header bytes 18 and
/// 19), so SQLite readers of the follower never look for a WAL that will not
/// exist; every applied page 1 keeps it so.
fn set_rollback_mode(output: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(output)
        .map_err(|e| RestoreError::io("open", output, e))?;
    file.write_all_at(&[1, 1], 18)
        .map_err(|e| RestoreError::io("write", output, e))?;
    file.sync_all()
        .map_err(|e| RestoreError::io("fsync", output, e))
}

/// The page size from the database header (offset 16, big-endian; 1 means
/// 65536).
fn read_page_size(output: &Path) -> Result<u32> {
    let mut f = File::open(output).map_err(|e| RestoreError::io("open", output, e))?;
    let mut b = [0u8; 2];
    f.seek(SeekFrom::Start(16))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|e| RestoreError::io("read", output, e))?;
    Ok(match u16::from_be_bytes(b) {
        1 => 65536,
        n => u32::from(n),
    })
}

fn read_txid(output: &Path) -> Result<TxId> {
    let path = txid_path(output);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RestoreError::Follow(format!(
                "database {} exists but no -txid file found ({}); follow mode only resumes a \
                 database it restored itself: restore into a new path",
                output.display(),
                path.display()
            )));
        }
        Err(e) => return Err(RestoreError::io("read", &path, e)),
    };
    text.trim()
        .parse()
        .map_err(|_| RestoreError::Follow(format!("{} does not hold a TXID", path.display())))
}

fn write_txid(output: &Path, txid: TxId) -> Result<()> {
    let path = txid_path(output);
    durable::write_atomic(
        &path,
        AtomicOptions {
            mode: Some(0o644),
            no_replace: false,
        },
        |f| f.write_all(format!("{txid}\n").as_bytes()),
    )
    .map_err(|e| RestoreError::io("write", &path, e))
}

/// A replica whose newest TXID is below ours was reset or replaced: applying
/// its files would corrupt the database.
async fn check_not_reset(client: &dyn ReplicaClient, cur: TxId) -> Result<()> {
    let mut newest = TxId::ZERO;
    for level in 0..=MAX_LEVEL {
        for f in list(client, level, TxId::ZERO).await? {
            newest = newest.max(f.id.max_txid);
        }
    }
    if newest < cur {
        return Err(RestoreError::Follow(format!(
            "the replica's newest TXID is {newest} but the database is at {cur}: the replica was \
             reset or replaced; restore again into a new path"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;
    use crate::replicate::{DbSpec, ReplicateOptions, Replicator};
    use backends::file::FileReplica;
    use rusqlite::Connection;

    fn rows(path: &Path) -> Vec<(i64, String)> {
        let c =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut s = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_keeps_up_and_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.db");
        let replica = dir.path().join("replica");
        let app = Connection::open(&src).unwrap();
        app.execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        let insert = |from: i64, n: i64| {
            for i in from..from + n {
                app.execute(
                    "INSERT INTO t (id, v) VALUES (?1, ?2)",
                    rusqlite::params![i, "v".repeat(i as usize % 300)],
                )
                .unwrap();
            }
        };
        insert(0, 50);

        let mut spec = DbSpec::new(DbOptions::new(&src), Arc::new(FileReplica::new(&replica)));
        spec.monitor_interval = Some(Duration::from_millis(30));
        spec.sync_interval = Duration::from_millis(30);
        let opts = ReplicateOptions {
            dbs: vec![spec],
            compaction: None,
            shutdown_sync_timeout: Duration::from_secs(5),
            shutdown_sync_interval: Duration::from_millis(50),
            metrics: Default::default(),
        };
        let rep = Replicator::start(opts).unwrap();
        assert!(rep.wait_replicated(Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let out = dir.path().join("follower.db");
        let fopts = FollowOptions {
            output: out.clone(),
            interval: Duration::from_millis(30),
            parallelism: 4,
            integrity: IntegrityCheck::None,
        };
        let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&replica));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn({
            let (client, fopts) = (client.clone(), fopts.clone());
            async move { follow(client, &fopts, stop_rx).await }
        });
        for round in 1..5 {
            insert(round * 100, 40);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let _ = rep.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send_replace(true);
        let reached = task.await.unwrap().unwrap();
        assert_eq!(rows(&out), rows(&src), "the follower has every row");
        assert_eq!(read_txid(&out).unwrap(), reached);
        let c = Connection::open(&out).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(c);

        // A restarted follower resumes from the -txid file.
        let (_stop, stop_rx) = watch::channel(true);
        let again = follow(client, &fopts, stop_rx).await.unwrap();
        assert_eq!(again, reached);
    }

    #[tokio::test]
    async fn an_existing_database_without_a_txid_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("db");
        std::fs::write(&out, b"x").unwrap();
        let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(dir.path().join("r")));
        let fopts = FollowOptions {
            output: out.clone(),
            interval: Duration::from_millis(10),
            parallelism: 1,
            integrity: IntegrityCheck::None,
        };
        let (_s, rx) = watch::channel(true);
        let err = follow(client, &fopts, rx).await.unwrap_err().to_string();
        assert!(err.contains("no -txid file"), "{err}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"x",
            "the database is untouched"
        );
    }
}
