//! End-to-end tests of the local side: real SQLite writes, our syncs, and a
//! database rebuilt from the staged L0 files compared with the source.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    app: Connection,
}

fn fixture(page_size: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let app = Connection::open(&path).unwrap();
    app.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);"
    ))
    .unwrap();
    Fixture {
        _dir: dir,
        path,
        app,
    }
}

fn write(app: &Connection, from: i64, n: i64, size: usize) {
    let tx = app.unchecked_transaction().unwrap();
    for i in from..from + n {
        let v: Vec<u8> = (0..size).map(|j| (i as usize * 31 + j) as u8).collect();
        tx.execute(
            "INSERT OR REPLACE INTO t (id, v) VALUES (?1, ?2)",
            rusqlite::params![i, v],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The database as SQLite sees it now: db + WAL copied aside and
/// checkpointed there, so the source is left alone.
fn logical_bytes(path: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(path, &copy).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        let mut cw = copy.as_os_str().to_owned();
        cw.push("-wal");
        std::fs::copy(&wal, &cw).unwrap();
    }
    let c = Connection::open(&copy).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    std::fs::read(&copy).unwrap()
}

/// Applies every local L0 file in TXID order.
fn rebuild(db: &Db) -> Vec<u8> {
    let txids = db.meta().l0_txids().unwrap();
    let files: Vec<Vec<u8>> = txids
        .iter()
        .map(|t| std::fs::read(db.meta().l0_path(*t)).unwrap())
        .collect();
    // Restore starts from the newest snapshot in level 0.
    let start = files
        .iter()
        .rposition(|f| ltx::Decoder::new(f.as_slice()).unwrap().header().commit > 0 && is_full(f))
        .unwrap();
    let inputs: Vec<&[u8]> = files[start..].iter().map(Vec::as_slice).collect();
    let c = ltx::Compactor::new(inputs, ltx::HeaderFlags::NO_CHECKSUM).unwrap();
    let page_size = c.header().page_size as usize;
    let commit = c.header().commit as usize;
    let mut out = vec![0u8; page_size * commit];
    c.merge_pages(|pgno, page| {
        let at = (pgno as usize - 1) * page_size;
        out[at..at + page_size].copy_from_slice(page);
        Ok(())
    })
    .unwrap();
    out
}

/// Whether an L0 file holds every page (a snapshot L0).
fn is_full(file: &[u8]) -> bool {
    let mut d = ltx::Decoder::new(file).unwrap();
    let commit = d.header().commit;
    let lock = ltx::lock_pgno(d.header().page_size);
    let mut buf = vec![0u8; d.header().page_size as usize];
    let mut n = 0;
    while d.next_page(&mut buf).unwrap().is_some() {
        n += 1;
    }
    n == commit - u32::from(commit >= lock)
}

fn opts(path: &Path) -> DbOptions {
    let mut o = DbOptions::new(path);
    o.checkpoint.interval = None;
    o
}

#[test]
fn first_sync_is_a_snapshot_then_increments_rebuild_the_database() {
    for page_size in [1024, 4096] {
        let f = fixture(page_size);
        write(&f.app, 0, 50, 300);
        let mut db = Db::new(opts(&f.path));
        let r = db.sync().unwrap();
        assert_eq!(r.written.len(), 1);
        assert_eq!(r.written[0].snapshot, Some(SnapshotReason::NoPosition));
        assert_eq!(db.txid(), ltx::TxId::new(1));
        assert_eq!(db.sync().unwrap().written.len(), 0, "nothing new, no file");
        for round in 0..5 {
            write(&f.app, round * 20, 30, 500 + round as usize * 100);
            let r = db.sync().unwrap();
            assert_eq!(r.written.len(), 1);
            assert_eq!(
                r.written[0].snapshot, None,
                "round {round} should be incremental"
            );
        }
        assert_eq!(db.txid(), ltx::TxId::new(6));
        assert_eq!(
            rebuild(&db),
            logical_bytes(&f.path),
            "page size {page_size}"
        );
    }
}

#[test]
fn our_passive_checkpoint_keeps_the_chain_incremental() {
    let f = fixture(4096);
    let mut o = opts(&f.path);
    o.checkpoint.min_page_count = 20;
    let mut db = Db::new(o);
    db.sync().unwrap();
    let (mut snapshots, mut checkpoints) = (0, 0);
    for round in 0..10 {
        write(&f.app, round * 40, 40, 1000);
        let r = db.sync().unwrap();
        checkpoints += r.checkpoints.len();
        snapshots += r.written.iter().filter(|w| w.snapshot.is_some()).count();
    }
    assert_eq!(snapshots, 0, "a PASSIVE checkpoint never forces a snapshot");
    assert!(
        checkpoints >= 5,
        "40 pages a round past a 20-page threshold: {checkpoints} checkpoints"
    );
    let wal_len = std::fs::metadata(format!("{}-wal", f.path.display()))
        .unwrap()
        .len();
    assert!(
        wal_len < 40 * 4096 * 10,
        "the WAL was restarted by checkpoints ({wal_len} bytes)"
    );
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

#[test]
fn checkpoints_under_an_application_that_keeps_committing_stay_incremental() {
    let f = fixture(4096);
    let mut o = opts(&f.path);
    o.checkpoint.min_page_count = 100;
    o.checkpoint.interval = None;
    o.busy_timeout = std::time::Duration::from_secs(10);
    let mut db = Db::new(o);
    write(&f.app, 0, 10, 1000);
    db.sync().unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (f.path.clone(), stop.clone());
        std::thread::spawn(move || {
            // The application checkpoints on its own too (SQLite's default).
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut i = 10;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write(&c, i, 4, 1500);
                i += 4;
            }
        })
    };
    let (mut checkpoints, mut snapshots) = (0, Vec::new());
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(15));
        let r = db.sync().unwrap();
        checkpoints += r.checkpoints.len();
        snapshots.extend(r.written.iter().filter_map(|w| w.snapshot));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    while !db.sync().unwrap().written.is_empty() {}

    assert!(checkpoints >= 5, "{checkpoints} checkpoints");
    // The application's own checkpoints race ours, and its commits after
    // each restart overwrite the old generation's tail: neither is a
    // reason for a full snapshot.
    assert_eq!(snapshots, [], "the chain stays incremental");
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

#[test]
fn the_restart_after_our_checkpoint_is_followed_even_once_our_tail_is_overwritten() {
    let f = fixture(4096);
    let mut o = opts(&f.path);
    o.checkpoint.min_page_count = 20;
    let mut db = Db::new(o);
    write(&f.app, 0, 30, 3000);
    db.sync().unwrap();
    let path = f.path.clone();
    let mut next = 1000;
    db.after_restart = Some(Box::new(move || {
        // The application, quicker than us, fills the new generation past
        // where the old one ended: our last frame is gone.
        let app = Connection::open(&path).unwrap();
        write(&app, next, 80, 3000);
        next += 80;
    }));
    let mut snapshots = Vec::new();
    for round in 0..3 {
        write(&f.app, round * 40, 40, 3000);
        let r = db.sync().unwrap();
        assert!(!r.checkpoints.is_empty(), "round {round}: no checkpoint");
        snapshots.extend(r.written.iter().filter_map(|w| w.snapshot));
    }
    db.after_restart = None;
    while !db.sync().unwrap().written.is_empty() {}
    assert_eq!(snapshots, [], "a restart of our own needs no snapshot");
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

#[test]
fn a_truncate_by_another_process_is_answered_with_a_snapshot() {
    let f = fixture(4096);
    let mut db = Db::new(opts(&f.path));
    write(&f.app, 0, 30, 800);
    db.sync().unwrap();
    write(&f.app, 30, 30, 800);
    db.sync().unwrap();
    // Our read transaction blocks a full checkpoint past it, so release it
    // the way a restart would: close and reopen around the foreign checkpoint.
    drop(db);
    write(&f.app, 60, 30, 800);
    f.app
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    write(&f.app, 90, 10, 800);
    let mut db = Db::new(opts(&f.path));
    let r = db.sync().unwrap();
    assert_eq!(r.written.len(), 1);
    assert_eq!(r.written[0].snapshot, Some(SnapshotReason::WalTruncated));
    write(&f.app, 100, 10, 800);
    let r = db.sync().unwrap();
    assert_eq!(r.written[0].snapshot, None);
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

#[test]
fn a_restart_resumes_without_a_snapshot() {
    let f = fixture(4096);
    let mut db = Db::new(opts(&f.path));
    write(&f.app, 0, 30, 800);
    db.sync().unwrap();
    write(&f.app, 30, 30, 800);
    let closing = db.close().unwrap();
    assert_eq!(closing.written.len(), 1, "close does a final sync");
    write(&f.app, 60, 30, 800);
    let mut db = Db::new(opts(&f.path));
    let r = db.sync().unwrap();
    assert_eq!(r.written.len(), 1);
    assert_eq!(r.written[0].snapshot, None, "resumed incrementally");
    assert_eq!(db.txid(), ltx::TxId::new(3));
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

/// While we are stopped the application commits, a checkpoint copies
/// everything into the database file, and the next commit restarts the WAL
/// at offset 32. The new generation is short, so the last frame we synced
/// survives: the WAL looks like a plain restart, yet the commits between our
/// position and the checkpoint are gone from it. Only a snapshot is correct.
#[test]
fn unsynced_commits_checkpointed_while_stopped_force_a_snapshot() {
    for mode in ["PASSIVE", "RESTART", "FULL"] {
        let f = fixture(4096);
        write(&f.app, 0, 40, 800);
        let mut db = Db::new(opts(&f.path));
        db.sync().unwrap();
        write(&f.app, 40, 40, 800);
        db.close().unwrap();

        write(&f.app, 80, 5, 800); // never synced
        let (busy, log, done): (i64, i64, i64) = f
            .app
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((busy, log), (0, done), "{mode} checkpoint incomplete");
        write(&f.app, 200, 1, 10); // restarts the WAL: two frames

        let mut db = Db::new(opts(&f.path));
        let r = db.sync().unwrap();
        assert_eq!(r.written.len(), 1, "{mode}");
        assert_eq!(
            r.written[0].snapshot,
            Some(SnapshotReason::UnsyncedCommitsCheckpointed),
            "{mode}"
        );
        assert_eq!(rebuild(&db), logical_bytes(&f.path), "{mode}");
    }
}

/// The race behind the previous test: when the check runs, the WAL still
/// holds the old generation (fully checkpointed, so our read transaction
/// does not pin it); before the frames are read, the application restarts
/// the WAL and overwrites our last frame. The unsynced commits are in the
/// database file only: the step must become a snapshot, not an increment
/// from the new generation's first frame.
#[test]
fn a_wal_restarted_between_check_and_read_forces_a_snapshot() {
    let f = fixture(4096);
    write(&f.app, 0, 40, 800);
    let mut db = Db::new(opts(&f.path));
    db.sync().unwrap();
    write(&f.app, 40, 40, 800);
    db.close().unwrap();
    write(&f.app, 80, 5, 800); // never synced
    let (busy, log, done): (i64, i64, i64) = f
        .app
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((busy, log), (0, done), "checkpoint incomplete");

    let mut db = Db::new(opts(&f.path));
    assert!(db.ensure_open().unwrap());
    let path = f.path.clone();
    db.after_check = Some(Box::new(move || {
        let app = Connection::open(&path).unwrap();
        // A new generation, one frame or more per commit, well past our
        // last frame.
        for i in 0..200 {
            write(&app, 300 + i, 1, 800);
        }
    }));
    let r = db.sync().unwrap();
    db.after_check = None;
    assert_eq!(
        r.written.first().map(|w| w.snapshot),
        Some(Some(SnapshotReason::WalOverwritten)),
        "{:?}",
        r.written
    );
    db.sync().unwrap();
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

/// The same restart without commits after our position stays incremental:
/// only our own synced frames were checkpointed.
#[test]
fn a_wal_restart_after_only_synced_commits_stays_incremental() {
    let f = fixture(4096);
    write(&f.app, 0, 40, 800);
    let mut db = Db::new(opts(&f.path));
    db.sync().unwrap();
    write(&f.app, 40, 40, 800);
    db.close().unwrap();
    f.app
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    write(&f.app, 200, 1, 10);
    let mut db = Db::new(opts(&f.path));
    let r = db.sync().unwrap();
    assert_eq!(r.written.len(), 1);
    assert_eq!(r.written[0].snapshot, None, "resumed in the new generation");
    assert_eq!(rebuild(&db), logical_bytes(&f.path));
}

#[test]
fn level9_snapshot_matches_the_synced_position() {
    let f = fixture(1024);
    let mut db = Db::new(opts(&f.path));
    write(&f.app, 0, 40, 700);
    db.sync().unwrap();
    write(&f.app, 40, 40, 700);
    db.sync().unwrap();
    let expected = logical_bytes(&f.path);
    write(&f.app, 80, 40, 700); // not synced: must not appear in the snapshot
    let (h, out) = db.write_snapshot(|_| Ok(Vec::new())).unwrap().unwrap();
    assert_eq!((h.min_txid.get(), h.max_txid.get()), (1, 2));
    let mut d = ltx::Decoder::new(out.as_slice()).unwrap();
    let ps = d.header().page_size as usize;
    let mut bytes = vec![0u8; d.header().commit as usize * ps];
    let mut page = vec![0u8; ps];
    while let Some(p) = d.next_page(&mut page).unwrap() {
        bytes[(p as usize - 1) * ps..p as usize * ps].copy_from_slice(&page);
    }
    d.finish().unwrap();
    assert_eq!(bytes, expected);
}
