//! Other processes doing what applications do to a SQLite database while
//! `freshet replicate` runs:
//!
//! - FULL checkpoints, VACUUM and long read transactions (held for seconds)
//!   in between commits;
//! - switching the database out of WAL mode (`PRAGMA journal_mode=DELETE`),
//!   which freshet's read transaction refuses, and which freshet reports if
//!   it ever gets through;
//! - the database deleted and created again under the same name.
//!
//! Each time the replica ends up restoring, byte for byte, to the source.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{
    Daemon, Source, assert_l0_contiguous, assert_restored_equals, checkpointed_copy, file_url,
    freshet_ok, litestream_ok, s, sibling, wait_caught_up, write_config,
};
use nix::sys::signal::Signal;
use rusqlite::Connection;

/// Stops the daemon and checks both tools restore the replica to the
/// source byte for byte.
fn stop_and_verify(db: &Path, replica: &Path, tmp: &Path, d: &mut Daemon) {
    wait_caught_up(db, replica, d);
    let status = d.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "replicate exited with {status}:\n{}",
        d.log()
    );
    let expected = tmp.join("expected.db");
    checkpointed_copy(db, &expected);
    let by_freshet = tmp.join("freshet.db");
    freshet_ok(&["restore", "-o", s(&by_freshet), &file_url(replica)]);
    assert_restored_equals(&expected, &by_freshet);
    let by_litestream = tmp.join("litestream.db");
    litestream_ok(&["restore", "-o", s(&by_litestream), &file_url(replica)]);
    assert_restored_equals(&expected, &by_litestream);
}

/// FULL checkpoints, VACUUMs and 2-second read transactions by other
/// connections, interleaved with a running workload.
#[test]
fn full_checkpoints_vacuum_and_long_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        "",
        &["min-checkpoint-page-count: 100"],
    );
    let src = Source::create(&db, 4096, 0xf011, 20);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("f.log"),
    );
    wait_caught_up(&db, &replica, &mut d);

    let bg = src.background(Duration::from_millis(3));
    let other = Connection::open(&db).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut full = Vec::new();
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(200));
        let r: (i64, i64, i64) = other
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        full.push(r);
        // A reader that stays for 2 s: writes go on, the WAL grows past it.
        let reader = Connection::open(&db).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert!(n > 0);
        std::thread::sleep(Duration::from_secs(2));
        reader.execute_batch("COMMIT").unwrap();
        if round % 2 == 1 {
            // VACUUM needs the write lock: the workload pauses for it.
            other.execute_batch("VACUUM").unwrap();
        }
        d.assert_running();
    }
    let src = bg.stop();
    eprintln!("FULL checkpoints {full:?}; {} transactions", src.next);
    stop_and_verify(&db, &replica, tmp.path(), &mut d);
    assert_l0_contiguous(&replica);
}

/// `PRAGMA journal_mode=DELETE` from another connection while freshet
/// replicates: it cannot take effect while freshet holds its read
/// transaction, so the database stays in WAL mode and replication goes on.
#[test]
fn leaving_wal_mode_is_refused_while_replicating() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x3a1, 20);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("f.log"),
    );
    wait_caught_up(&db, &replica, &mut d);

    let other = Connection::open(&db).unwrap();
    let mut answers = Vec::new();
    for _ in 0..10 {
        src.run(5, Duration::from_millis(5));
        let mode: rusqlite::Result<String> =
            other.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0));
        answers.push(mode.unwrap_or_else(|e| format!("error: {e}")));
    }
    drop(other);
    eprintln!("journal_mode=DELETE answered {answers:?}");
    assert!(
        answers.iter().all(|a| a != "delete"),
        "the database left WAL mode under freshet: {answers:?}"
    );
    let mode: String = src
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    src.run(20, Duration::from_millis(5));
    stop_and_verify(&db, &replica, tmp.path(), &mut d);
}

/// The database file (and its WAL) is deleted and a new database created
/// at the same path while freshet runs. freshet notices, says so, and
/// replicates the new database from a fresh snapshot: the replica then
/// restores to the new database.
#[test]
fn a_database_deleted_and_recreated_is_replicated_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0xde1, 20);
    let log = tmp.path().join("f.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    src.run(30, Duration::from_millis(5));
    wait_caught_up(&db, &replica, &mut d);
    drop(src);

    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sibling(&db, suffix));
    }
    let mut src = Source::create(&db, 4096, 0xde2, 40);
    src.run(30, Duration::from_millis(5));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        src.run(2, Duration::from_millis(20));
        d.assert_running();
    }
    stop_and_verify(&db, &replica, tmp.path(), &mut d);
    drop(src);
    let text = d.log();
    assert!(
        text.contains("replaced") || text.contains("recreated") || text.contains("new database"),
        "the log should say the database file was replaced:\n{text}"
    );
}
