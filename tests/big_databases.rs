//! `freshet replicate` on databases larger than 1 GiB, where SQLite's lock
//! page (the page holding byte 0x40000000, never written by SQLite) sits in
//! the middle of the file: a first snapshot of 1.1 GB, writes on both sides
//! of the lock page, then restores with freshet and with the real Litestream,
//! byte for byte against the checkpointed source.
//!
//! CI runs page sizes 4 KiB and 64 KiB. `scripts/big-databases.sh` runs
//! every page size from 4 KiB to 64 KiB (`FRESHET_BIG_PAGE_SIZES`) and, with
//! `FRESHET_BIG_FULL=1`, a database that shrinks back below 1 GiB and grows
//! past it again in one 1 GiB transaction. Skipped with `FRESHET_SKIP_BIG=1`
//! unless `CI` is set.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{
    Daemon, Rng, assert_restored_equals, checkpointed_copy, file_url, freshet_ok, litestream_ok, s,
    wait_caught_up, wait_for, write_config,
};
use nix::sys::signal::Signal;
use rusqlite::{Connection, params};

/// Rows of 4000 bytes (3000 random, 1000 zero): 1.1 GB of them.
const ROWS: u64 = 275_000;

fn big_tests_enabled() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if std::env::var("FRESHET_SKIP_BIG").is_ok_and(|v| v == "1") && !ci {
        eprintln!("SKIPPED: FRESHET_SKIP_BIG=1 (big tests always run when CI is set)");
        return false;
    }
    true
}

/// The database's size in pages, as SQLite sees it (WAL included).
fn page_count(path: &Path) -> u64 {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

fn lock_pgno(page_size: u32) -> u64 {
    0x4000_0000 / u64::from(page_size) + 1
}

/// Builds the database fast (no journal, no syncs) and turns on WAL mode.
fn build(path: &Path, page_size: u32) -> Connection {
    let started = Instant::now();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO items (k, v) SELECT i, randomblob(3000) || zeroblob(1000) FROM n;
         COMMIT;"
    ))
    .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 1000")
        .unwrap();
    let pages = page_count(path);
    assert!(
        pages > lock_pgno(page_size) + 100,
        "{pages} pages of {page_size} do not pass the lock page"
    );
    eprintln!(
        "page size {page_size}: built {pages} pages ({} bytes) in {:.1?}",
        pages * u64::from(page_size),
        started.elapsed()
    );
    conn
}

/// Updates rows on both sides of the lock page and appends some.
fn write_around_the_lock_page(conn: &Connection, rng: &mut Rng, rounds: u64) {
    for i in 0..rounds {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..20 {
            let id = if i % 2 == 0 {
                rng.range(ROWS * 9 / 10, ROWS)
            } else {
                rng.range(1, 1000)
            };
            tx.execute(
                "UPDATE items SET v = randomblob(2000) WHERE id = ?1",
                params![id as i64],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO items (k, v) VALUES (?1, randomblob(3000))",
            params![-(i as i64)],
        )
        .unwrap();
        tx.commit().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn replicate_big(page_size: u32, full: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("big.db"), tmp.path().join("replica"));
    let conn = build(&db, page_size);
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let started = Instant::now();
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("f.log"),
    );
    wait_for(
        Duration::from_secs(600),
        || format!("the first snapshot; log:\n{}", d.log()),
        || (!e2e::level_files(&replica, 0).is_empty()).then_some(()),
    );
    eprintln!(
        "page size {page_size}: first snapshot in {:.1?}",
        started.elapsed()
    );
    let mut rng = Rng::new(u64::from(page_size));
    write_around_the_lock_page(&conn, &mut rng, 30);
    if full {
        // Below 1 GiB: delete the newest third of the rows (whole pages at
        // any page size) and give the pages back.
        conn.execute(
            "DELETE FROM items WHERE id > (SELECT max(id) FROM items) * 2 / 3",
            [],
        )
        .unwrap();
        // Each step of the pragma frees one page: run it to the end.
        let mut vacuum = conn.prepare("PRAGMA incremental_vacuum").unwrap();
        let mut steps = vacuum.query([]).unwrap();
        while steps.next().unwrap().is_some() {}
        drop(steps);
        drop(vacuum);
        let pages = page_count(&db);
        eprintln!("page size {page_size}: shrunk to {pages} pages");
        assert!(
            pages < lock_pgno(page_size),
            "{pages} pages of {page_size} bytes are not below the lock page"
        );
        wait_caught_up(&db, &replica, &mut d);
        // Past it again in a single 1 GiB transaction.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 262144)
             INSERT INTO items (k, v) SELECT -i, randomblob(3000) || zeroblob(1096) FROM n;",
        )
        .unwrap();
        eprintln!(
            "page size {page_size}: grew to {} pages in one transaction",
            page_count(&db)
        );
        write_around_the_lock_page(&conn, &mut rng, 10);
    }
    let caught_up = Instant::now();
    wait_caught_up(&db, &replica, &mut d);
    eprintln!(
        "page size {page_size}: caught up {:.1?} after the last write",
        caught_up.elapsed()
    );
    let status = d.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "replicate exited with {status}:\n{}",
        d.log()
    );
    drop(conn);

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(e2e::sibling(&db, "-wal"));
    for tool in ["freshet", "litestream"] {
        let out = tmp.path().join(format!("{tool}.db"));
        let t = Instant::now();
        let args = ["restore", "-o", s(&out), &file_url(&replica)];
        if tool == "freshet" {
            freshet_ok(&args);
        } else {
            litestream_ok(&args);
        }
        eprintln!(
            "page size {page_size}: {tool} restore in {:.1?}",
            t.elapsed()
        );
        assert_restored_equals(&expected, &out);
        std::fs::remove_file(&out).unwrap();
    }
}

fn page_sizes() -> Vec<u32> {
    std::env::var("FRESHET_BIG_PAGE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![4096, 65536])
}

#[test]
fn big_databases_replicate_and_restore_across_the_lock_page() {
    if !big_tests_enabled() {
        return;
    }
    let full = std::env::var("FRESHET_BIG_FULL").is_ok_and(|v| v == "1");
    for page_size in page_sizes() {
        replicate_big(page_size, full);
    }
}
