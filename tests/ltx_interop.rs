//! Golden interop tests between the `ltx` codec and the real Litestream
//! (the release pinned in `scripts/lib.sh`), through file replicas:
//!
//! - Litestream writes, we read: `litestream replicate` streams a write
//!   workload to a replica; our decoder verifies every LTX file it wrote and
//!   our compactor rebuilds the database from level 0, which must equal the
//!   source byte for byte.
//! - We write, Litestream reads: snapshots, incremental chains and compacted
//!   files from our encoder restore with `litestream restore` to
//!   byte-identical databases.
//!
//! Both directions run at page sizes 1024, 4096 and 65536, and on a database
//! larger than 1 GiB, which has a lock page (LTX.md §6). The big tests are
//! skipped with `FRESHET_SKIP_BIG=1` unless `CI` is set. A missing
//! `litestream` fails the tests: run `bash scripts/setup.sh`.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    Context, Decoded, Failure, LtxFile, Replicator, Rng, TestResult, big_tests_enabled,
    checkpoint_truncate, compare_files, create_database, database_layout, decode_file,
    encode_incremental, encode_snapshot, ensure_integrity, ensure_lock_page_zero, file_url,
    list_level, litestream, litestream_restore, read_header, rebuild_database, wait_for, wal_end,
    write_replica_file,
};
use ltx::{Compactor, HeaderFlags, PageEncoding, TxId, lock_pgno};
use rusqlite::{Connection, TransactionBehavior, params};

// ---------------------------------------------------------------------------
// Litestream writes, we read
// ---------------------------------------------------------------------------

#[test]
fn litestream_replica_rebuilds_with_our_decoder_1k() -> TestResult {
    replicate_and_rebuild(1024, 0x1001)
}

#[test]
fn litestream_replica_rebuilds_with_our_decoder_4k() -> TestResult {
    replicate_and_rebuild(4096, 0x4004)
}

#[test]
fn litestream_replica_rebuilds_with_our_decoder_64k() -> TestResult {
    replicate_and_rebuild(65536, 0x6464)
}

/// Runs a few hundred transactions of mixed sizes (small updates, bulk
/// inserts that grow the file, large overflow blobs, deletes, incremental
/// vacuums that shrink it) under `litestream replicate`, then checks the
/// replica with our decoder and compactor.
fn replicate_and_rebuild(page_size: u32, seed: u64) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("source.db");
    let replica = tmp.path().join("replica");
    let mut rng = Rng::new(seed);

    let mut conn = create_database(&db, page_size)?;
    insert_rows(&mut conn, &mut rng, 300, 100, 800)?;
    let pages_at_start = page_count(&conn)?;

    let mut lit = Replicator::start(&db, &replica, &tmp.path().join("litestream.log"))?;
    wait_for_first_file(&mut lit, &replica, Duration::from_secs(60))?;

    let stats = run_workload(&mut conn, &mut rng, 400)?;
    ensure!(
        stats.max_pages > pages_at_start && stats.shrinks > 0,
        "the workload should grow and shrink the file: {pages_at_start} pages at start, \
         at most {} during, {} shrinking vacuums",
        stats.max_pages,
        stats.shrinks
    );

    let caught_up = wait_for_wal_end(&mut lit, &db, &replica, Duration::from_secs(60))?;
    let status = lit.stop(Duration::from_secs(60))?;
    let outcome = check_replica(&conn, &db, &replica, tmp.path(), caught_up, 3)?;
    eprintln!(
        "page size {page_size}: {} transactions, litestream exited with {status}; {outcome}",
        stats.transactions
    );
    Ok(())
}

/// What [`check_replica`] verified, for the test log.
struct ReplicaOutcome {
    l0_files: usize,
    final_txid: TxId,
    pages: u32,
    bytes: u64,
    other_levels: usize,
}

impl std::fmt::Display for ReplicaOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} L0 files (TXID 1..={}) and {} files of other levels decoded; \
             rebuilt {} pages = {} bytes, identical to the source",
            self.l0_files,
            self.final_txid.get(),
            self.other_levels,
            self.pages,
            self.bytes
        )
    }
}

/// After Litestream has exited: every L0 TXID from 1 is present and decodes
/// with a valid checksum, the newest covers the end of the source's WAL,
/// every file of the other levels decodes too, and the L0 files merged by our
/// compactor give exactly the checkpointed source database (and so does
/// `litestream restore`). The workload must have produced at least
/// `min_files` L0 files.
fn check_replica(
    conn: &Connection,
    db: &Path,
    replica: &Path,
    work: &Path,
    caught_up: TxId,
    min_files: usize,
) -> TestResult<ReplicaOutcome> {
    let files = list_level(replica, 0)?;
    let final_txid = check_l0_sequence(&files)?;
    ensure!(
        final_txid >= caught_up,
        "the replica's newest L0 file is TXID {final_txid}, older than TXID {caught_up} seen before the stop"
    );
    ensure!(
        files.len() >= min_files,
        "expected at least {min_files} L0 files, got {}",
        files.len()
    );

    // The newest file must end exactly where the source's WAL ends.
    let newest = read_header(&files[files.len() - 1].path)?;
    let end = wal_end(db)?.ok_or_else(|| Failure("the source has no WAL after the stop".into()))?;
    let newest_end = (newest.wal_offset + newest.wal_size) as u64;
    ensure!(
        (newest.wal_salt1, newest.wal_salt2, newest_end) == (end.salt1, end.salt2, end.end),
        "L0 TXID {final_txid} ends at WAL offset {newest_end} (salts {:08x}/{:08x}) but the source's \
         WAL holds commits up to {} (salts {:08x}/{:08x})",
        newest.wal_salt1,
        newest.wal_salt2,
        end.end,
        end.salt1,
        end.salt2
    );

    for f in &files {
        let d = decode_file(&f.path)?;
        check_litestream_header(f, &d)?;
    }
    let mut other_levels = 0;
    for level in 1..=9 {
        for f in list_level(replica, level)? {
            let d = decode_file(&f.path)?;
            check_litestream_header(&f, &d)?;
            other_levels += 1;
        }
    }

    checkpoint_truncate(conn)?;
    let (page_size, pages) = database_layout(db)?;
    let rebuilt = work.join("rebuilt.db");
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let merged = rebuild_database(&paths, &rebuilt)?;
    ensure!(
        merged.max_txid == final_txid && merged.commit == pages && merged.page_size == page_size,
        "merged L0 TXID {}..={}, {} pages of {}; the source has {pages} pages of {page_size}, \
         final TXID {final_txid}",
        merged.min_txid,
        merged.max_txid,
        merged.commit,
        merged.page_size
    );
    compare_files(db, &rebuilt, page_size).ctx("source vs rebuilt from L0 by our compactor")?;
    ensure_integrity(&rebuilt)?;
    ensure_lock_page_zero(&rebuilt, page_size)?;

    let restored = work.join("restored.db");
    litestream_restore(replica, &restored, None)?;
    compare_files(db, &restored, page_size).ctx("source vs litestream restore")?;
    let bytes = fs::metadata(db)?.len();
    fs::remove_file(&rebuilt)?;
    fs::remove_file(&restored)?;
    Ok(ReplicaOutcome {
        l0_files: files.len(),
        final_txid,
        pages,
        bytes,
        other_levels,
    })
}

/// L0 holds TXIDs 1, 2, …, N, one per file; returns N.
fn check_l0_sequence(files: &[LtxFile]) -> TestResult<TxId> {
    ensure!(!files.is_empty(), "the replica has no L0 files");
    for (i, f) in files.iter().enumerate() {
        let want = TxId::new(i as u64 + 1);
        ensure!(
            f.min == want && f.max == want,
            "L0 file #{} is TXID {}..={}, expected {want}; L0 holds {:?}",
            i + 1,
            f.min,
            f.max,
            files
                .iter()
                .map(|f| (f.min.get(), f.max.get()))
                .collect::<Vec<_>>()
        );
    }
    Ok(files[files.len() - 1].max)
}

/// The fields Litestream 0.5.17 always writes: NoChecksum with a zero
/// pre-apply checksum, node 0, current (block) page frames; a snapshot holds
/// every page but the lock page.
fn check_litestream_header(f: &LtxFile, d: &Decoded) -> TestResult {
    let h = &d.header;
    ensure!(
        h.flags == HeaderFlags::NO_CHECKSUM && h.pre_apply_checksum.get() == 0 && h.node_id == 0,
        "{}: unexpected header {h:?}",
        f.path.display()
    );
    ensure!(
        d.encoding.is_none_or(|e| e == PageEncoding::Block),
        "{}: Litestream 0.5.17 should write block frames, found {:?}",
        f.path.display(),
        d.encoding
    );
    if h.is_snapshot() {
        let lock = u64::from(h.commit >= lock_pgno(h.page_size));
        ensure!(
            d.pages == u64::from(h.commit) - lock,
            "{}: snapshot of {} pages stores {} pages",
            f.path.display(),
            h.commit,
            d.pages
        );
    }
    Ok(())
}

/// Waits until Litestream has written TXID 1 to the replica's L0.
fn wait_for_first_file(lit: &mut Replicator, replica: &Path, timeout: Duration) -> TestResult {
    wait_for(timeout, "TXID 1 in the replica's level 0", || {
        lit.check_running()?;
        Ok(list_level(replica, 0)?.first().map(|_| ()))
    })
    .map_err(|e| Failure(format!("{e:?}; litestream log:\n{}", lit.log_tail())))
}

/// Waits until the newest L0 file in the replica ends where the committed
/// content of the source's WAL ends (same salts, same offset): everything
/// committed is replicated. Returns that file's TXID.
fn wait_for_wal_end(
    lit: &mut Replicator,
    db: &Path,
    replica: &Path,
    timeout: Duration,
) -> TestResult<TxId> {
    let mut last = String::from("no L0 file yet");
    let result = wait_for(timeout, "the replica to reach the end of the WAL", || {
        lit.check_running()?;
        let Some(end) = wal_end(db)? else {
            last = "the source has no WAL header".into();
            return Ok(None);
        };
        let files = list_level(replica, 0)?;
        let Some(f) = files.last() else {
            return Ok(None);
        };
        let h = read_header(&f.path)?;
        let file_end = (h.wal_offset + h.wal_size) as u64;
        last = format!(
            "newest L0 TXID {} ends at {file_end} (salts {:08x}/{:08x}); WAL commits end at {} \
             (salts {:08x}/{:08x})",
            f.max, h.wal_salt1, h.wal_salt2, end.end, end.salt1, end.salt2
        );
        let done = (h.wal_salt1, h.wal_salt2, file_end) == (end.salt1, end.salt2, end.end);
        Ok(done.then_some(f.max))
    });
    result.map_err(|e| {
        Failure(format!(
            "{e:?}: {last}; litestream log:\n{}",
            lit.log_tail()
        ))
    })
}

/// Counts from [`run_workload`].
struct WorkloadStats {
    transactions: usize,
    max_pages: u32,
    shrinks: usize,
}

/// `transactions` write transactions with pauses, so that Litestream's
/// once-a-second sync sees them in several batches: mostly small
/// inserts/updates/deletes, with bulk inserts, large overflow blobs, bulk
/// deletes and incremental vacuums (which shrink the file) mixed in.
fn run_workload(
    conn: &mut Connection,
    rng: &mut Rng,
    transactions: usize,
) -> TestResult<WorkloadStats> {
    let mut stats = WorkloadStats {
        transactions: 0,
        max_pages: 0,
        shrinks: 0,
    };
    for i in 0..transactions {
        let mut step = || -> TestResult {
            match i % 50 {
                10 => {
                    let rows = rng.range(40, 120);
                    insert_rows(conn, rng, rows, 1000, 6000)?;
                }
                20 if i % 100 == 20 => insert_rows(conn, rng, 1, 256 << 10, 1 << 20)?,
                30 => {
                    let n = conn.execute(
                        "DELETE FROM items WHERE (id * 7919 + ?1) % 4 = 0",
                        params![rng.range(0, 4) as i64],
                    )?;
                    ensure!(n > 0, "transaction {i}: the bulk delete removed nothing");
                }
                40 => {
                    let before = page_count(conn)?;
                    incremental_vacuum(conn, None)?;
                    if page_count(conn)? < before {
                        stats.shrinks += 1;
                    }
                }
                _ => {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let max_id: i64 =
                        tx.query_row("SELECT coalesce(max(id), 0) FROM items", [], |r| r.get(0))?;
                    for _ in 0..rng.range(1, 4) {
                        let len = rng.range(20, 600) as usize;
                        tx.execute(
                            "INSERT INTO items (k, v) VALUES (?1, ?2)",
                            params![rng.next_u64() as i64 >> 8, rng.bytes(len)],
                        )?;
                    }
                    for _ in 0..2 {
                        let len = rng.range(20, 1500) as usize;
                        tx.execute(
                            "UPDATE items SET k = ?1, v = ?2 WHERE id = ?3",
                            params![
                                rng.next_u64() as i64 >> 8,
                                rng.bytes(len),
                                rng.range(1, max_id as u64 + 2) as i64
                            ],
                        )?;
                    }
                    if i % 7 == 0 {
                        tx.execute(
                            "DELETE FROM items WHERE id = ?1",
                            params![rng.range(1, max_id as u64 + 2) as i64],
                        )?;
                    }
                    tx.commit()?;
                }
            }
            Ok(())
        };
        step().ctx(format!("workload transaction {i}"))?;
        stats.transactions += 1;
        stats.max_pages = stats.max_pages.max(page_count(conn)?);
        std::thread::sleep(Duration::from_millis(5));
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    Ok(stats)
}

/// Inserts `n` rows with blobs of `lo..hi` bytes in one transaction.
fn insert_rows(conn: &mut Connection, rng: &mut Rng, n: u64, lo: u64, hi: u64) -> TestResult {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for _ in 0..n {
        let len = rng.range(lo, hi) as usize;
        tx.execute(
            "INSERT INTO items (k, v) VALUES (?1, ?2)",
            params![rng.next_u64() as i64 >> 8, rng.bytes(len)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `PRAGMA incremental_vacuum(N)`: moves up to `pages` (all if `None`) free
/// pages to the end of the file and truncates it. The pragma frees one page
/// per step, so it is stepped to completion.
fn incremental_vacuum(conn: &Connection, pages: Option<u32>) -> TestResult {
    let sql = match pages {
        Some(n) => format!("PRAGMA incremental_vacuum({n})"),
        None => "PRAGMA incremental_vacuum".to_owned(),
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn page_count(conn: &Connection) -> TestResult<u32> {
    Ok(conn.query_row("PRAGMA page_count", [], |r| r.get(0))?)
}

// ---------------------------------------------------------------------------
// We write, Litestream reads
// ---------------------------------------------------------------------------

#[test]
fn our_snapshot_restores_with_litestream_1k() -> TestResult {
    snapshot_restores(1024, 0x51)
}

#[test]
fn our_snapshot_restores_with_litestream_4k() -> TestResult {
    snapshot_restores(4096, 0x54)
}

#[test]
fn our_snapshot_restores_with_litestream_64k() -> TestResult {
    snapshot_restores(65536, 0x564)
}

/// A database of a few thousand rows (with overflow pages and a freelist)
/// encoded by us as TXID 1 in a file replica restores byte for byte.
fn snapshot_restores(page_size: u32, seed: u64) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("source.db");
    let replica = tmp.path().join("replica");
    let mut rng = Rng::new(seed);
    {
        let mut conn = create_database(&db, page_size)?;
        insert_rows(&mut conn, &mut rng, 3000, 10, 1500)?;
        insert_rows(&mut conn, &mut rng, 3, 100 << 10, 300 << 10)?;
        conn.execute("DELETE FROM items WHERE id % 3 = 0", [])?;
        checkpoint_truncate(&conn)?;
    }
    let (header, path, stored) = encode_snapshot(&db, &replica)?;
    let decoded = decode_file(&path)?;
    ensure!(
        decoded.pages == stored && u64::from(header.commit) == stored,
        "stored {stored} pages of a {}-page database, decoder saw {}",
        header.commit,
        decoded.pages
    );

    let listing = litestream(&["ltx", &file_url(&replica)])?;
    ensure!(
        listing.lines().any(|l| l.split_whitespace().take(3).eq([
            "0",
            "0000000000000001",
            "0000000000000001"
        ])),
        "`litestream ltx` does not list our L0 file TXID 1:\n{listing}"
    );

    let out = tmp.path().join("restored.db");
    litestream_restore(&replica, &out, None)?;
    compare_files(&db, &out, page_size)?;
    ensure_integrity(&out)?;
    eprintln!(
        "page size {page_size}: {} pages, {} bytes of LTX, restored identical",
        header.commit,
        fs::metadata(&path)?.len()
    );
    Ok(())
}

#[test]
fn our_incremental_chain_restores_with_litestream_1k() -> TestResult {
    chain_restores(1024, 0xc1)
}

#[test]
fn our_incremental_chain_restores_with_litestream_4k() -> TestResult {
    chain_restores(4096, 0xc4)
}

#[test]
fn our_incremental_chain_restores_with_litestream_64k() -> TestResult {
    chain_restores(65536, 0xc64)
}

/// A snapshot (TXID 1) and two incremental files from our encoder: TXID 2
/// grows the database, TXID 3 shrinks it. `litestream restore` gives each
/// state exactly (latest, `-txid 2`, `-txid 1`), and so does a single level-1
/// file made by our compactor from the three.
fn chain_restores(page_size: u32, seed: u64) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("source.db");
    let replica = tmp.path().join("replica");
    let mut rng = Rng::new(seed);
    let mut conn = create_database(&db, page_size)?;

    insert_rows(&mut conn, &mut rng, 1000, 10, 1200)?;
    checkpoint_truncate(&conn)?;
    let v1 = fs::read(&db)?;
    encode_snapshot(&db, &replica)?;

    conn.execute(
        "UPDATE items SET v = randomblob(length(v) / 2 + 7) WHERE id % 10 = 1",
        [],
    )?;
    insert_rows(&mut conn, &mut rng, 2000, 100, 2500)?;
    checkpoint_truncate(&conn)?;
    let v2 = fs::read(&db)?;
    let (h2, pages2) = encode_incremental(&replica, 2, page_size, &v1, &v2)?;

    conn.execute("DELETE FROM items WHERE id % 5 <> 0", [])?;
    incremental_vacuum(&conn, None)?;
    checkpoint_truncate(&conn)?;
    let v3 = fs::read(&db)?;
    let (h3, pages3) = encode_incremental(&replica, 3, page_size, &v2, &v3)?;
    drop(conn);
    ensure!(
        v1.len() < v2.len() && v3.len() < v2.len(),
        "expected growth then shrinkage: {} -> {} -> {} bytes",
        v1.len(),
        v2.len(),
        v3.len()
    );

    let states = [(1u64, &v1), (2, &v2), (3, &v3)];
    for (txid, image) in states {
        let expected = tmp.path().join(format!("expected-{txid}.db"));
        fs::write(&expected, image)?;
        let out = tmp.path().join(format!("restored-{txid}.db"));
        let target = (txid != 3).then_some(TxId::new(txid));
        litestream_restore(&replica, &out, target)?;
        compare_files(&expected, &out, page_size).ctx(format!("restore at TXID {txid}"))?;
        ensure_integrity(&out)?;
    }

    // Our compactor's output, alone at level 1, restores to the last state.
    let compacted = tmp.path().join("compacted");
    let inputs = list_level(&replica, 0)?;
    let mut readers = Vec::new();
    for f in &inputs {
        readers.push(fs::File::open(&f.path)?);
    }
    let compactor = Compactor::new(readers, HeaderFlags::NO_CHECKSUM)?;
    let header = *compactor.header();
    let path = write_replica_file(&compacted, 1, &header, |out| {
        compactor.compact(out)?;
        Ok(())
    })?;
    ensure!(
        header.min_txid == TxId::new(1)
            && header.max_txid == TxId::new(3)
            && header.commit == h3.commit,
        "compacted header {header:?}"
    );
    decode_file(&path)?;
    let out = tmp.path().join("restored-compacted.db");
    litestream_restore(&compacted, &out, None)?;
    let expected = tmp.path().join("expected-3.db");
    compare_files(&expected, &out, page_size).ctx("restore of our compacted file")?;

    eprintln!(
        "page size {page_size}: {} -> {} -> {} pages; TXID 2 stored {} pages (commit {}), \
         TXID 3 stored {} pages (commit {}); all states and the compacted file restored identical",
        v1.len() / page_size as usize,
        v2.len() / page_size as usize,
        v3.len() / page_size as usize,
        pages2.len(),
        h2.commit,
        pages3.len(),
        h3.commit
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Databases larger than 1 GiB (past the lock page)
// ---------------------------------------------------------------------------

/// Rows of ~4000 bytes (3000 random, 1000 zero) at 4096-byte pages: one row
/// per page, so this many rows pass the lock page (262145) by ~8000 pages.
const BIG_ROWS: u64 = 270_000;
const BIG_PAGE_SIZE: u32 = 4096;

/// Builds the big database fast: no journal, no syncs, blobs made by SQLite.
fn build_big_database(path: &Path) -> TestResult<Connection> {
    let started = Instant::now();
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = {BIG_PAGE_SIZE};
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BIG_ROWS})
         INSERT INTO items (k, v) SELECT i, randomblob(3000) || zeroblob(1000) FROM n;
         COMMIT;"
    ))?;
    let pages = page_count(&conn)?;
    let lock = lock_pgno(BIG_PAGE_SIZE);
    ensure!(
        pages > lock + 1000,
        "the big database has {pages} pages, not past lock page {lock}"
    );
    eprintln!(
        "built {pages} pages ({} bytes) in {:.1?}",
        u64::from(pages) * u64::from(BIG_PAGE_SIZE),
        started.elapsed()
    );
    Ok(conn)
}

#[test]
fn big_database_our_snapshot_restores_with_litestream() -> TestResult {
    if !big_tests_enabled("big_database_our_snapshot_restores_with_litestream") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("big.db");
    let replica = tmp.path().join("replica");
    drop(build_big_database(&db)?);

    let t = Instant::now();
    let (header, path, stored) = encode_snapshot(&db, &replica)?;
    let lock = lock_pgno(BIG_PAGE_SIZE);
    ensure!(
        header.commit > lock && stored == u64::from(header.commit) - 1,
        "{} pages, lock page {lock}: expected all but the lock page stored, got {stored}",
        header.commit
    );
    let ltx_size = fs::metadata(&path)?.len();
    eprintln!(
        "encoded {stored} pages into {ltx_size} bytes in {:.1?}",
        t.elapsed()
    );

    let t = Instant::now();
    let out = tmp.path().join("restored.db");
    litestream_restore(&replica, &out, None)?;
    eprintln!("litestream restore took {:.1?}", t.elapsed());
    compare_files(&db, &out, BIG_PAGE_SIZE)?;
    ensure!(
        ensure_lock_page_zero(&out, BIG_PAGE_SIZE)?,
        "restored file does not reach the lock page"
    );
    let t = Instant::now();
    ensure_integrity(&out)?;
    eprintln!(
        "restored {} pages identical (lock page {lock} zero); integrity_check ok in {:.1?}",
        header.commit,
        t.elapsed()
    );
    Ok(())
}

#[test]
fn big_database_litestream_replica_rebuilds_with_our_decoder() -> TestResult {
    if !big_tests_enabled("big_database_litestream_replica_rebuilds_with_our_decoder") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("big.db");
    let replica = tmp.path().join("replica");
    let conn = build_big_database(&db)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    ensure!(mode == "wal", "journal_mode is {mode}, expected wal");
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;

    let t = Instant::now();
    let mut lit = Replicator::start(&db, &replica, &tmp.path().join("litestream.log"))?;
    wait_for_first_file(&mut lit, &replica, Duration::from_secs(300))?;
    eprintln!("litestream's first snapshot took {:.1?}", t.elapsed());

    // Writes on both sides of the lock page: rows near the end live past it.
    let mut rng = Rng::new(0xb16);
    for i in 0..40u64 {
        match i % 10 {
            3 => {
                conn.execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                     INSERT INTO items (k, v) SELECT -i, randomblob(3000) || zeroblob(1000) FROM n;",
                )?;
            }
            6 if i == 26 => {
                conn.execute("DELETE FROM items WHERE id BETWEEN 100000 AND 101999", [])?;
                incremental_vacuum(&conn, Some(1000))?;
            }
            _ => {
                for _ in 0..20 {
                    conn.execute(
                        "UPDATE items SET v = randomblob(2000) WHERE id = ?1",
                        params![rng.range(BIG_ROWS - 8000, BIG_ROWS + 1) as i64],
                    )?;
                }
                conn.execute(
                    "UPDATE items SET v = randomblob(1000) WHERE id = ?1",
                    params![rng.range(1, 1000) as i64],
                )?;
            }
        }
        std::thread::sleep(Duration::from_millis(30));
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }

    let caught_up = wait_for_wal_end(&mut lit, &db, &replica, Duration::from_secs(120))?;
    let status = lit.stop(Duration::from_secs(120))?;
    let t = Instant::now();
    // Litestream's first level-9 snapshot of the whole database can hold
    // back syncs for a while, so expect fewer L0 files than above.
    let outcome = check_replica(&conn, &db, &replica, tmp.path(), caught_up, 2)?;
    ensure!(
        outcome.pages > lock_pgno(BIG_PAGE_SIZE),
        "the database shrank below the lock page: {} pages",
        outcome.pages
    );
    eprintln!(
        "litestream exited with {status}; {outcome}; checked in {:.1?}",
        t.elapsed()
    );
    Ok(())
}
