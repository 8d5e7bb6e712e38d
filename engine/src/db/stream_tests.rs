//! Full-snapshot L0 files handed to a [`SnapshotSink`] instead of being
//! staged: the metadata directory never holds the base copy, the position
//! survives a restart, and the files still rebuild the database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::*;

type Files = Arc<Mutex<Vec<Vec<u8>>>>;

/// Collects streamed files in memory; records the largest file in the
/// metadata directory while each one is being written.
struct MemSink {
    files: Files,
    meta: PathBuf,
    accept: bool,
    fail: bool,
    largest_meta_file: Arc<Mutex<u64>>,
}

impl SnapshotSink for MemSink {
    fn stream_l0(
        &mut self,
        _header: &Header,
        fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
    ) -> Result<bool> {
        if !self.accept {
            return Ok(false);
        }
        let mut out = Vec::new();
        fill(&mut out)?;
        let mut largest = self.largest_meta_file.lock().unwrap();
        *largest = (*largest).max(largest_file(&self.meta));
        if self.fail {
            return Err(DbError::Replica {
                what: "test".into(),
                message: "the replica went away".into(),
            });
        }
        self.files.lock().unwrap().push(out);
        Ok(true)
    }
}

fn largest_file(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                largest_file(&e.path())
            } else {
                m.len()
            }
        })
        .max()
        .unwrap_or(0)
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    app: Connection,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let app = Connection::open(&path).unwrap();
    app.execute_batch(
        "PRAGMA page_size=4096; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    Fixture {
        _dir: dir,
        path,
        app,
    }
}

/// Rows of barely compressible bytes.
fn write(app: &Connection, from: i64, n: i64, size: usize) {
    let tx = app.unchecked_transaction().unwrap();
    for i in from..from + n {
        let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
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
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut cw = copy.as_os_str().to_owned();
    cw.push("-wal");
    std::fs::copy(&wal, &cw).unwrap();
    let c = Connection::open(&copy).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    std::fs::read(&copy).unwrap()
}

/// Applies `files` (a snapshot first) in order.
fn rebuild(files: &[Vec<u8>]) -> Vec<u8> {
    let inputs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let c = ltx::Compactor::new(inputs, ltx::HeaderFlags::NO_CHECKSUM).unwrap();
    let ps = c.header().page_size as usize;
    let mut out = vec![0u8; ps * c.header().commit as usize];
    c.merge_pages(|pgno, page| {
        let at = (pgno as usize - 1) * ps;
        out[at..at + ps].copy_from_slice(page);
        Ok(())
    })
    .unwrap();
    out
}

fn db_with(f: &Fixture, files: &Files, accept: bool, fail: bool) -> (Db, Arc<Mutex<u64>>) {
    let mut o = DbOptions::new(&f.path);
    // No checkpoints: the restart must resume from the streamed file itself.
    o.checkpoint.interval = None;
    o.checkpoint.min_page_count = u32::MAX;
    o.checkpoint.truncate_page_n = 0;
    let meta = o.meta_path.clone();
    let largest = Arc::new(Mutex::new(0));
    let mut db = Db::new(o);
    db.set_snapshot_sink(Box::new(MemSink {
        files: files.clone(),
        meta,
        accept,
        fail,
        largest_meta_file: largest.clone(),
    }));
    (db, largest)
}

#[test]
fn a_streamed_snapshot_is_never_staged_and_a_restart_resumes_from_its_record() {
    let f = fixture();
    write(&f.app, 0, 1500, 3000); // about 6 MB
    let files = Files::default();
    let (mut db, largest) = db_with(&f, &files, true, false);
    let r = db.sync().unwrap();
    assert_eq!(r.written.len(), 1, "{:?}", r.written);
    let w = r.written[0];
    assert_eq!(w.snapshot, Some(SnapshotReason::NoPosition));
    assert!(w.streamed, "the snapshot went to the sink");
    assert!(w.file_bytes > 4 << 20, "snapshot of {} bytes", w.file_bytes);
    let biggest = *largest.lock().unwrap();
    assert!(
        biggest < 64 * 1024,
        "a {biggest}-byte file sat in the metadata directory during a {}-byte snapshot",
        w.file_bytes
    );
    assert!(db.meta().l0_txids().unwrap().is_empty(), "nothing staged");
    assert_eq!(db.txid(), ltx::TxId::new(1));
    drop(db);

    // A restart continues the chain from the record, without a snapshot.
    write(&f.app, 1500, 20, 3000);
    let (mut db, _) = db_with(&f, &files, true, false);
    let r = db.sync().unwrap();
    assert_eq!(r.written.len(), 1, "{:?}", r.written);
    assert_eq!(
        r.written[0].snapshot, None,
        "continuity proven after restart"
    );
    assert!(!r.written[0].streamed);
    assert_eq!(db.txid(), ltx::TxId::new(2));
    assert_eq!(files.lock().unwrap().len(), 1);

    let mut all = files.lock().unwrap().clone();
    all.push(std::fs::read(db.meta().l0_path(ltx::TxId::new(2))).unwrap());
    assert!(
        rebuild(&all) == logical_bytes(&f.path),
        "rebuilt database differs"
    );
}

#[test]
fn a_declining_sink_leaves_the_snapshot_staged() {
    let f = fixture();
    write(&f.app, 0, 50, 3000);
    let files = Files::default();
    let (mut db, _) = db_with(&f, &files, false, false);
    let r = db.sync().unwrap();
    assert!(!r.written[0].streamed);
    assert_eq!(db.meta().l0_txids().unwrap(), vec![ltx::TxId::new(1)]);
    assert!(files.lock().unwrap().is_empty());
    let staged = std::fs::read(db.meta().l0_path(ltx::TxId::new(1))).unwrap();
    assert!(rebuild(&[staged]) == logical_bytes(&f.path));
}

#[test]
fn a_failed_stream_does_not_move_the_position_and_is_redone() {
    let f = fixture();
    write(&f.app, 0, 200, 3000);
    let files = Files::default();
    let (mut db, _) = db_with(&f, &files, true, true);
    let err = db.sync().unwrap_err();
    assert!(err.to_string().contains("went away"), "{err}");
    assert_eq!(db.txid(), ltx::TxId::ZERO);
    assert!(
        !db.meta().streamed_path().exists(),
        "no record without the file"
    );
    drop(db);

    let (mut db, _) = db_with(&f, &files, true, false);
    let r = db.sync().unwrap();
    assert_eq!(r.written[0].snapshot, Some(SnapshotReason::NoPosition));
    assert_eq!(r.written[0].txid, ltx::TxId::new(1));
    assert!(rebuild(&files.lock().unwrap()) == logical_bytes(&f.path));
}

/// The level-9 file, compressed on worker threads from the database file
/// and the WAL, is byte for byte what the serial encoder makes of the same
/// pages.
#[test]
fn a_parallel_snapshot_equals_the_serial_encoding_byte_for_byte() {
    let f = fixture();
    write(&f.app, 0, 1200, 3000);
    // Half the pages in the database file, the newer half in the WAL.
    f.app
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    write(&f.app, 600, 1200, 3000);
    let files = Files::default();
    let (mut db, _) = db_with(&f, &files, true, false);
    db.sync().unwrap();
    let (header, parallel) = db.write_snapshot(|_| Ok(Vec::new())).unwrap().unwrap();
    assert!(
        header.commit > 4 * 128,
        "{} pages: several batches",
        header.commit
    );

    let logical = logical_bytes(&f.path);
    let ps = header.page_size as usize;
    assert_eq!(logical.len(), header.commit as usize * ps);
    let mut serial = Vec::new();
    let mut enc = ltx::Encoder::new(&mut serial, &header).unwrap();
    for (i, page) in logical.chunks(ps).enumerate() {
        let pgno = i as u32 + 1;
        if pgno != ltx::lock_pgno(header.page_size) {
            enc.encode_page(pgno, page).unwrap();
        }
    }
    enc.finish(ltx::Checksum::ZERO).unwrap();
    assert_eq!(serial.len(), parallel.len());
    assert!(
        serial == parallel,
        "parallel snapshot differs from serial encoding"
    );
}

/// Our own TRUNCATE checkpoints end in a full snapshot (§5 step 12) taken
/// under the read transaction only, while another connection keeps
/// committing: the files still rebuild the database exactly.
#[test]
fn truncate_boundary_snapshots_taken_while_writers_commit_stay_consistent() {
    let f = fixture();
    write(&f.app, 0, 200, 3000);
    let files = Files::default();
    let mut o = DbOptions::new(&f.path);
    o.checkpoint.interval = None;
    o.checkpoint.min_page_count = u32::MAX;
    o.checkpoint.truncate_page_n = 300;
    o.busy_timeout = std::time::Duration::from_secs(10);
    let meta = o.meta_path.clone();
    let mut db = Db::new(o);
    db.set_snapshot_sink(Box::new(MemSink {
        files: files.clone(),
        meta,
        accept: true,
        fail: false,
        largest_meta_file: Arc::default(),
    }));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (f.path.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut i = 200;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write(&c, i, 5, 3000);
                i += 5;
            }
        })
    };
    // Syncs, the policy's own TRUNCATEs when the WAL passes 300 pages, and
    // an explicit TRUNCATE every fifth round (whether the policy's PASSIVE
    // attempt leaves work for a TRUNCATE depends on timing), until a few
    // boundaries happened, and at least 30 rounds.
    let mut boundaries = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut round = 0;
    while (round < 30 || boundaries < 3) && std::time::Instant::now() < deadline {
        round += 1;
        let mut r = db.sync().unwrap();
        if round % 5 == 0 {
            match db.checkpoint(CheckpointMode::Truncate, &mut r) {
                Ok(_) => {}
                Err(e) if e.is_busy() => {}
                Err(e) => panic!("TRUNCATE checkpoint: {e}"),
            }
        }
        boundaries += r
            .written
            .iter()
            .filter(|w| w.snapshot == Some(SnapshotReason::CheckpointBoundary))
            .count();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    while !db.sync().unwrap().written.is_empty() {}
    assert!(boundaries >= 1, "no TRUNCATE checkpoint happened");

    // Every file by TXID, streamed or staged; replay from the newest
    // full snapshot.
    let mut all: Vec<(ltx::TxId, Vec<u8>)> = files
        .lock()
        .unwrap()
        .iter()
        .map(|b| {
            (
                ltx::Decoder::new(b.as_slice()).unwrap().header().max_txid,
                b.clone(),
            )
        })
        .collect();
    for t in db.meta().l0_txids().unwrap() {
        all.push((t, std::fs::read(db.meta().l0_path(t)).unwrap()));
    }
    all.sort_by_key(|(t, _)| *t);
    let txids: Vec<u64> = all.iter().map(|(t, _)| t.get()).collect();
    assert_eq!(txids, (1..=db.txid().get()).collect::<Vec<_>>(), "no gap");
    let last_streamed = files.lock().unwrap().len();
    assert!(last_streamed >= 2, "boundary snapshots went to the sink");
    let is_full = |b: &[u8]| {
        let mut d = ltx::Decoder::new(b).unwrap();
        let commit = d.header().commit;
        let mut page = vec![0u8; d.header().page_size as usize];
        let mut n = 0;
        while d.next_page(&mut page).unwrap().is_some() {
            n += 1;
        }
        n == commit
    };
    // Replaying from any full snapshot (each boundary snapshot taken while
    // the writer ran) must reach the final state.
    let expected = logical_bytes(&f.path);
    let mut replays = 0;
    for start in 0..all.len() {
        if !is_full(&all[start].1) {
            continue;
        }
        let tail: Vec<Vec<u8>> = all[start..].iter().map(|(_, b)| b.clone()).collect();
        let t = all[start].0;
        assert!(
            rebuild(&tail) == expected,
            "replay from snapshot {t} differs"
        );
        replays += 1;
    }
    assert!(replays >= 2, "{replays} full snapshots");
}
