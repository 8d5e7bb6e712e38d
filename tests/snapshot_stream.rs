//! Full snapshots stream from the database into the replica: the metadata
//! directory never holds a copy of the database (the first L0 file and the
//! level-9 file go straight to the backend), and both `freshet restore` and
//! the real `litestream restore` rebuild the database from them exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e::{
    assert_restored_equals, checkpointed_copy, file_url, freshet_ok, level_files, litestream_ok,
    page_count, s, write_config,
};
use rusqlite::Connection;

/// Largest regular file under `dir`, recursively (0 when absent).
fn largest_file(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => largest_file(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

/// About `mb` MB of incompressible rows, half checkpointed into the database
/// file and half left in the WAL (the snapshot reads both).
fn build_db(path: &Path, mb: usize) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    let rows = mb * 256;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for half in 0..2 {
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..rows / 2 {
            let v: Vec<u8> = (0..4000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            tx.execute(
                "INSERT INTO t (id, v) VALUES (?1, ?2)",
                rusqlite::params![(half * rows / 2 + i) as i64, v],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        if half == 0 {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
    }
    c
}

#[test]
fn snapshots_stream_to_the_replica_and_restore_with_both_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let meta = tmp.path().join(".app.db-litestream");
    let app = build_db(&db, 24);
    let pages: i64 = app
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let db_bytes = pages as u64 * 4096;
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);

    // Watch the metadata directory while the snapshot runs.
    let stop = Arc::new(AtomicBool::new(false));
    let largest = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, largest, meta) = (stop.clone(), largest.clone(), meta.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                largest.fetch_max(largest_file(&meta), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    freshet_ok(&["replicate", "-once", "-force-snapshot", "-config", s(&cfg)]);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let largest = largest.load(Ordering::Relaxed).max(largest_file(&meta));
    assert!(
        largest < 1 << 20,
        "a {largest}-byte file appeared in the metadata directory while a \
         {db_bytes}-byte database was snapshotted"
    );

    let l0 = level_files(&replica, 0);
    let l9 = level_files(&replica, 9);
    // The first L0 file is the snapshot; a checkpoint may add a small one.
    assert!(!l0.is_empty(), "no L0 file");
    assert_eq!(l9.len(), 1, "one level-9 file");
    for f in [&l0[0], &l9[0]] {
        assert_eq!(
            page_count(&f.path),
            u64::from(f.header.commit),
            "{} holds every page",
            f.path.display()
        );
        assert!(
            std::fs::metadata(&f.path).unwrap().len() > db_bytes / 2,
            "{} is a whole copy of the database",
            f.path.display()
        );
    }

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let ours = tmp.path().join("freshet.db");
    freshet_ok(&["restore", "-o", s(&ours), &file_url(&replica)]);
    assert_restored_equals(&expected, &ours);
    let theirs = tmp.path().join("litestream.db");
    litestream_ok(&["restore", "-o", s(&theirs), &file_url(&replica)]);
    assert_restored_equals(&expected, &theirs);
    drop(app);
}
