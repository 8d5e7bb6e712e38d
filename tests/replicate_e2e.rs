//! End-to-end tests of `freshet replicate` and `freshet restore` against the
//! real Litestream (the release pinned in `scripts/lib.sh`), through file
//! replicas:
//!
//! - interop both ways: a replica freshet writes under a live workload
//!   restores with `litestream restore`, and one Litestream writes restores
//!   with `freshet restore`, byte-identical to the checkpointed source, with
//!   the ad-hoc `replicate DB URL` form and with `-config`;
//! - point-in-time restores by TXID and by timestamp;
//! - checkpoints run by another process while freshet replicates, and
//!   while it is stopped;
//! - stop and restart (SIGTERM and `kill -9`).
//!
//! A missing `litestream` fails the tests: run `bash scripts/setup.sh`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::path::Path;
use std::time::{Duration, SystemTime};

use e2e::{
    Daemon, Source, assert_consistent_prefix, assert_integrity, assert_l0_contiguous,
    assert_restored_equals, checkpointed_copy, digest_file, file_url, freshet_ok, level_files,
    litestream_ok, ltx_list, replica_txid, rfc3339_ms, s, wait_caught_up, wait_for, write_config,
};
use nix::sys::signal::Signal;

/// Waits until the replica holds at least one level-0 file.
fn wait_first_file(replica: &Path, daemon: &mut Daemon) {
    wait_for(
        Duration::from_secs(20),
        || format!("a first level-0 file in {}", replica.display()),
        || {
            daemon.assert_running();
            (!level_files(replica, 0).is_empty()).then_some(())
        },
    );
}

/// Stops a daemon with `sig` and checks it exited 0.
fn stop_ok(daemon: &mut Daemon, sig: Signal) {
    let status = daemon.stop_with(sig);
    assert!(
        status.success(),
        "replicate exited with {status} after {sig}; log:\n{}",
        daemon.log()
    );
}

// ---------------------------------------------------------------------------
// Interop
// ---------------------------------------------------------------------------

/// `freshet replicate DB file://DIR` (1 s default intervals) under a
/// workload of 300 transactions that more than doubles the file, then a
/// delete and VACUUM that shrinks it; after SIGTERM, `litestream restore`
/// reproduces the checkpointed source byte for byte.
#[test]
fn freshet_replica_restores_with_litestream() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let mut src = Source::create(&db, 4096, 0xf1, 20);
    let pages_at_start = src.page_count();

    let mut d = Daemon::freshet(
        &["replicate", s(&db), &file_url(&replica)],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&replica, &mut d);
    src.run(300, Duration::from_millis(6));
    assert!(
        src.page_count() > 2 * pages_at_start,
        "the workload should grow the file: {pages_at_start} -> {} pages",
        src.page_count()
    );
    let grown = src.page_count();
    src.conn()
        .execute_batch("DELETE FROM items WHERE id % 3 <> 0; VACUUM;")
        .unwrap();
    assert!(
        src.page_count() < grown * 2 / 3,
        "VACUUM should shrink the file: {grown} -> {} pages",
        src.page_count()
    );
    let txid = wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);
    assert!(
        d.log().contains("replica is up to date"),
        "no final-sync report in the log:\n{}",
        d.log()
    );

    let (first, last) = assert_l0_contiguous(&replica);
    assert_eq!(first, 1);
    assert!(last >= txid && last >= 3, "only {last} level-0 files");
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("restored.db");
    litestream_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
    assert_restored_equals(&expected, &out);
    assert_eq!(digest_file(&out).0, src.digest());
}

/// `litestream replicate DB file://DIR` under the same kind of workload;
/// `freshet restore` reproduces the checkpointed source byte for byte.
#[test]
fn litestream_replica_restores_with_freshet() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let mut src = Source::create(&db, 4096, 0x11, 20);

    let mut d = Daemon::litestream(
        &["replicate", s(&db), &file_url(&replica)],
        &tmp.path().join("litestream.log"),
    );
    wait_first_file(&replica, &mut d);
    src.run(300, Duration::from_millis(6));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("restored.db");
    freshet_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
    assert_restored_equals(&expected, &out);
    assert_eq!(digest_file(&out).0, src.digest());
}

/// Both directions again through `litestream.yml` files and `-config`, for
/// replicating and for restoring by database path, at page sizes 1024
/// (freshet writes) and 65536 (Litestream writes). freshet is stopped with
/// SIGINT here.
#[test]
fn config_file_interop_both_ways() {
    let tmp = tempfile::tempdir().unwrap();

    // freshet writes, Litestream restores.
    let (db, replica) = (tmp.path().join("a.db"), tmp.path().join("replica-a"));
    let cfg = write_config(&tmp.path().join("a.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 1024, 0xa1, 10);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&replica, &mut d);
    src.run(250, Duration::from_millis(4));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGINT);
    let expected = tmp.path().join("a-expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("a-restored.db");
    litestream_ok(&["restore", "-config", s(&cfg), "-o", s(&out), s(&db)]);
    assert_restored_equals(&expected, &out);
    let out2 = tmp.path().join("a-restored-by-freshet.db");
    freshet_ok(&["restore", "-config", s(&cfg), "-o", s(&out2), s(&db)]);
    assert_restored_equals(&expected, &out2);

    // Litestream writes, freshet restores.
    let (db, replica) = (tmp.path().join("b.db"), tmp.path().join("replica-b"));
    let cfg = write_config(&tmp.path().join("b.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 65536, 0xb2, 10);
    let mut d = Daemon::litestream(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("litestream.log"),
    );
    wait_first_file(&replica, &mut d);
    src.run(250, Duration::from_millis(4));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);
    let expected = tmp.path().join("b-expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("b-restored.db");
    freshet_ok(&["restore", "-config", s(&cfg), "-o", s(&out), s(&db)]);
    assert_restored_equals(&expected, &out);
}

/// The same database, metadata directory and replica, replicated in turns by
/// Litestream, freshet, Litestream and freshet (stopped with SIGTERM each
/// time, the application connection open throughout). Each tool resumes
/// from the other's staged L0 files without a new snapshot, level 0 stays
/// gapless, and both tools restore the final state byte for byte.
#[test]
fn switching_tools_mid_stream_resumes_incrementally() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x5e1c, 100);
    src.conn()
        .execute_batch("PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    let mut turns = Vec::new();
    for (i, tool) in ["litestream", "freshet", "litestream", "freshet"]
        .into_iter()
        .enumerate()
    {
        let log = tmp.path().join(format!("{i}-{tool}.log"));
        let args = ["replicate", "-config", s(&cfg)];
        let mut d = match tool {
            "freshet" => Daemon::freshet(&args, &log),
            _ => Daemon::litestream(&args, &log),
        };
        src.run(40, Duration::from_millis(3));
        let txid = wait_caught_up(&db, &replica, &mut d);
        stop_ok(&mut d, Signal::SIGTERM);
        turns.push((tool, txid));
    }
    let files = level_files(&replica, 0);
    let full: Vec<u64> = files
        .iter()
        .filter(|f| is_full_snapshot(f))
        .map(|f| f.header.max_txid.get())
        .collect();
    assert_eq!(
        full,
        vec![1],
        "full-snapshot L0 files after the turns {turns:?} (the database has {} pages)",
        src.page_count()
    );
    assert_l0_contiguous(&replica);
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    for tool in ["freshet", "litestream"] {
        let out = restore_with(tool, &replica, &tmp.path().join(format!("{tool}.db")), &[]);
        assert_restored_equals(&expected, &out);
    }
}

// ---------------------------------------------------------------------------
// Point in time
// ---------------------------------------------------------------------------

/// A state of the source recorded while freshet had replicated all of it.
#[derive(Debug)]
struct Mark {
    txid: u64,
    digest: u64,
    progress: u64,
    time: SystemTime,
}

/// Restores with `tool` (`freshet` or `litestream`) and extra flags into a
/// fresh file; returns the restored file.
fn restore_with(tool: &str, replica: &Path, out: &Path, flags: &[&str]) -> std::path::PathBuf {
    let url = file_url(replica);
    let mut args = vec!["restore", "-o", s(out)];
    args.extend_from_slice(flags);
    args.push(&url);
    match tool {
        "freshet" => freshet_ok(&args),
        _ => litestream_ok(&args),
    };
    assert_integrity(out);
    out.to_path_buf()
}

/// Four phases of 60 transactions (and two short ones after the last
/// mark); after each, once the replica has caught up, the content and the
/// replica's TXID (from `freshet ltx -json`) are recorded with a time stamp
/// between the phases. Restoring each TXID with `-txid`, and each time with
/// `-timestamp`, gives exactly that content, with freshet and with
/// Litestream. At the millisecond boundary a file's own header timestamp
/// excludes it ("created strictly before") and one millisecond later
/// includes it.
#[test]
fn point_in_time_restores_by_txid_and_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x9171, 10);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&replica, &mut d);

    let mut marks = Vec::new();
    for _ in 0..4 {
        src.run(60, Duration::from_millis(3));
        wait_caught_up(&db, &replica, &mut d);
        let txid = replica_txid(&replica);
        std::thread::sleep(Duration::from_millis(15));
        let time = SystemTime::now();
        std::thread::sleep(Duration::from_millis(15));
        marks.push(Mark {
            txid,
            digest: src.digest(),
            progress: src.next,
            time,
        });
    }
    // At least two files after the last mark, so the times probed below
    // lie inside the replica's time range (both tools refuse a later one).
    for _ in 0..2 {
        src.run(20, Duration::from_millis(3));
        wait_caught_up(&db, &replica, &mut d);
    }
    stop_ok(&mut d, Signal::SIGTERM);

    let l0 = level_files(&replica, 0);
    let listed: Vec<u64> = ltx_list(&replica, "0").iter().map(|f| f.max).collect();
    for (i, m) in marks.iter().enumerate() {
        assert!(listed.contains(&m.txid), "TXID {} not listed", m.txid);
        let txid = format!("{:016x}", m.txid);
        let ts = rfc3339_ms(m.time);
        for tool in ["freshet", "litestream"] {
            for (flag, value) in [("-txid", &txid), ("-timestamp", &ts)] {
                let out = tmp.path().join(format!("{tool}-{i}{flag}.db"));
                restore_with(tool, &replica, &out, &[flag, value]);
                let (digest, progress) = digest_file(&out);
                assert_eq!(
                    (digest, progress),
                    (m.digest, m.progress),
                    "{tool} restore {flag} {value} (mark {i}: {m:?}) gave the wrong content"
                );
            }
        }

        // The file after the mark: its own timestamp excludes it, one
        // millisecond later includes it (and every file up to the last one
        // stamped before that).
        let next = l0
            .iter()
            .find(|f| f.header.max_txid.get() == m.txid + 1)
            .unwrap_or_else(|| panic!("no level-0 file after TXID {}", m.txid));
        let at = next.header.timestamp;
        let newest_before = |t: i64| {
            l0.iter()
                .filter(|f| f.header.timestamp < t)
                .map(|f| f.header.max_txid.get())
                .max()
                .unwrap()
        };
        for (t, label) in [(at, "at"), (at + 1, "after")] {
            let want_txid = newest_before(t);
            let by_time = restore_with(
                "freshet",
                &replica,
                &tmp.path().join(format!("edge-{i}-{label}.db")),
                &["-timestamp", &rfc3339_ms(e2e::from_ms(t))],
            );
            let by_txid = restore_with(
                "freshet",
                &replica,
                &tmp.path().join(format!("edge-{i}-{label}-txid.db")),
                &["-txid", &format!("{want_txid:016x}")],
            );
            assert_eq!(
                digest_file(&by_time),
                digest_file(&by_txid),
                "-timestamp {t} ms ({label} the header timestamp of TXID {}) should restore TXID {want_txid}",
                m.txid + 1
            );
            if label == "at" {
                assert!(want_txid <= m.txid);
            } else {
                assert!(want_txid > m.txid);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Foreign checkpoints
// ---------------------------------------------------------------------------

/// While freshet replicates a running workload (about 600 transactions in
/// 3.6 s), another connection runs PASSIVE, RESTART and TRUNCATE
/// checkpoints every 100 ms, 36 in all. Replication goes on; the final
/// restore equals the source byte for byte, and level 0 has no gap.
#[test]
fn foreign_checkpoints_during_replication() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    // freshet checkpoints too (every 100 pages), so the foreign checkpoints
    // meet every phase of its cycle, WAL restarts included.
    let cfg = write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        "",
        &["min-checkpoint-page-count: 100"],
    );
    let src = Source::create(&db, 4096, 0xc4, 20);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&replica, &mut d);

    let bg = src.background(Duration::from_millis(3));
    let ck = rusqlite::Connection::open(&db).unwrap();
    ck.busy_timeout(Duration::from_millis(100)).unwrap();
    let mut tally = std::collections::BTreeMap::new();
    for round in 0..36 {
        std::thread::sleep(Duration::from_millis(100));
        let mode = ["PASSIVE", "RESTART", "TRUNCATE"][round % 3];
        let r: rusqlite::Result<(i64, i64, i64)> =
            ck.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        let outcome = match r {
            Ok((0, log, done)) if log == done => "complete",
            Ok((0, _, done)) if done > 0 => "copied some",
            Ok((0, _, _)) => "copied none",
            Ok(_) => "busy",
            Err(_) => "error",
        };
        *tally.entry((mode, outcome)).or_insert(0u32) += 1;
        d.assert_running();
    }
    drop(ck);
    let src = bg.stop();
    eprintln!("foreign checkpoints: {tally:?}; {} transactions", src.next);
    // freshet's read transaction (begun after its own checkpoints, when the
    // WAL is fully copied) lets no checkpoint copy frames it has not
    // replicated, so these mostly copy nothing; but every one must run.
    assert!(
        !tally.keys().any(|(_, o)| *o == "error"),
        "foreign checkpoints failed: {tally:?}"
    );
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);

    assert_l0_contiguous(&replica);
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    for tool in ["freshet", "litestream"] {
        let out = restore_with(tool, &replica, &tmp.path().join(format!("{tool}.db")), &[]);
        assert_restored_equals(&expected, &out);
    }
}

/// While freshet is stopped the application commits, checkpoints the WAL
/// completely (PASSIVE, RESTART or TRUNCATE, nothing holds it back now) and
/// commits a little more, so the WAL starts over. After the restart freshet
/// must notice that the frames after its position were checkpointed away
/// and take a snapshot; the restore must hold every commit.
#[test]
fn foreign_checkpoint_while_stopped_is_detected_on_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x5707, 20);
    src.conn()
        .execute_batch("PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    let log = tmp.path().join("freshet.log");

    for (round, mode) in ["PASSIVE", "RESTART", "TRUNCATE"].into_iter().enumerate() {
        let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
        if round == 0 {
            wait_first_file(&replica, &mut d);
        }
        src.run(80, Duration::from_millis(2));
        let synced = wait_caught_up(&db, &replica, &mut d);
        stop_ok(&mut d, Signal::SIGTERM);

        // Freshet is gone: commit, checkpoint everything, commit a little.
        let salts_before = e2e::wal_end(&db).map(|(a, b, _)| (a, b));
        src.run(5, Duration::ZERO);
        let (busy, log_frames, done): (i64, i64, i64) = src
            .conn()
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (busy, log_frames),
            (0, done),
            "{mode} checkpoint should complete with no reader"
        );
        src.run(1, Duration::ZERO);
        let salts_after = e2e::wal_end(&db).map(|(a, b, _)| (a, b));
        assert_ne!(salts_before, salts_after, "the WAL should have restarted");

        let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
        wait_caught_up(&db, &replica, &mut d);
        stop_ok(&mut d, Signal::SIGTERM);

        let out = restore_with(
            "freshet",
            &replica,
            &tmp.path().join(format!("after-{mode}.db")),
            &["-txid", &format!("{:016x}", replica_txid(&replica))],
        );
        let (digest, progress) = digest_file(&out);
        assert_eq!(
            (digest, progress),
            (src.digest(), src.next),
            "after a {mode} checkpoint while stopped (freshet had synced TXID {synced}), \
             the restore holds {progress} of {} transactions or different content",
            src.next
        );
        let first_after = level_files(&replica, 0)
            .into_iter()
            .find(|f| f.header.max_txid.get() == synced + 1)
            .unwrap();
        assert_eq!(
            e2e::page_count(&first_after.path),
            u64::from(first_after.header.commit),
            "TXID {} (first after the restart) should be a full snapshot",
            synced + 1
        );
    }
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = restore_with("litestream", &replica, &tmp.path().join("final.db"), &[]);
    assert_restored_equals(&expected, &out);
}

// ---------------------------------------------------------------------------
// Stop and restart
// ---------------------------------------------------------------------------

/// The TXID the final-sync line of a freshet log reports.
fn reported_txid(log: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("replica is up to date"))
        .unwrap_or_else(|| panic!("no final-sync line in the log:\n{log}"));
    let at = line.find("txid=").expect("txid= in the final-sync line") + 5;
    u64::from_str_radix(&line[at..at + 16], 16).expect("16 hex digits")
}

/// Whether an L0 file holds every page of the database (a full snapshot).
fn is_full_snapshot(f: &e2e::ReplicaFile) -> bool {
    e2e::page_count(&f.path) == u64::from(f.header.commit)
}

/// SIGTERM while the workload keeps committing: the final sync covers at
/// least every transaction that had committed when the signal was sent, the
/// TXID it reports is the replica's newest, and the replica then holds
/// exactly the state after some number of whole transactions.
#[test]
fn sigterm_final_sync_covers_every_commit_before_the_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let src = Source::create(&db, 4096, 0x7e7e, 30);
    let seed = src.seed();
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&replica, &mut d);
    let bg = src.background(Duration::from_millis(2));
    std::thread::sleep(Duration::from_millis(1500));
    let before_signal = bg.committed();
    let status = d.stop_with(Signal::SIGTERM);
    let src = bg.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());

    let reported = reported_txid(&d.log());
    assert_eq!(
        reported,
        replica_txid(&replica),
        "the final sync reported TXID {reported}"
    );
    let out = restore_with("freshet", &replica, &tmp.path().join("r.db"), &[]);
    let k = assert_consistent_prefix(&out, seed);
    assert!(
        k >= before_signal,
        "the replica holds {k} transactions but {before_signal} had committed before SIGTERM \
         ({} by the time the writer stopped)",
        src.next
    );
    eprintln!(
        "{before_signal} committed before SIGTERM, {k} replicated (TXID {reported}), {} in all",
        src.next
    );
}

/// SIGTERM, a few commits while stopped, restart: replication resumes in the
/// same WAL with an incremental file, so the whole run has exactly one
/// full-snapshot L0 file (TXID 1); the restore equals the source.
#[test]
fn restart_after_sigterm_resumes_without_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x4e57, 150);
    // No checkpoint by the application while freshet is away: then the WAL
    // still holds everything after freshet's position.
    src.conn()
        .execute_batch("PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    let log = tmp.path().join("freshet.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_first_file(&replica, &mut d);
    src.run(100, Duration::from_millis(3));
    let before = wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);

    src.run(10, Duration::ZERO);
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    src.run(50, Duration::from_millis(3));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);

    let files = level_files(&replica, 0);
    let first_after = files
        .iter()
        .find(|f| f.header.max_txid.get() == before + 1)
        .expect("a file after the restart");
    assert!(
        first_after.header.wal_offset > 32,
        "TXID {} should continue the WAL at the old position, not at offset {}",
        before + 1,
        first_after.header.wal_offset
    );
    let full: Vec<u64> = files
        .iter()
        .filter(|f| is_full_snapshot(f))
        .map(|f| f.header.max_txid.get())
        .collect();
    assert_eq!(
        full,
        vec![1],
        "full-snapshot L0 files (the database has {} pages)",
        src.page_count()
    );
    assert_l0_contiguous(&replica);
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = restore_with("litestream", &replica, &tmp.path().join("r.db"), &[]);
    assert_restored_equals(&expected, &out);
}

/// `kill -9` in the middle of the workload. What the replica holds then is a
/// whole-transaction prefix that includes every commit made well before its
/// newest file was created. The writer keeps going (its own automatic
/// checkpoints may run while nothing holds the WAL); after a restart freshet
/// catches up, level 0 has no gap, and the final restore equals the source.
#[test]
fn kill9_then_restart_keeps_everything_replicated() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let src = Source::create(&db, 4096, 0x9999, 30);
    let seed = src.seed();
    let log = tmp.path().join("freshet.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_first_file(&replica, &mut d);
    let bg = src.background(Duration::from_millis(2));
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let mut src = bg.stop();

    // The replica as the kill left it.
    let newest = level_files(&replica, 0).pop().expect("level-0 files");
    let made_at = e2e::from_ms(newest.header.timestamp);
    let out = restore_with("freshet", &replica, &tmp.path().join("killed.db"), &[]);
    let k = assert_consistent_prefix(&out, seed);
    let margin = Duration::from_millis(250);
    let surely_synced = src
        .commit_times
        .iter()
        .take_while(|t| **t + margin < made_at)
        .count() as u64;
    assert!(
        k >= surely_synced,
        "TXID {} (created {:?}) holds {k} transactions, but {surely_synced} had committed \
         more than {margin:?} before it was created",
        newest.header.max_txid,
        made_at
    );

    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    src.run(50, Duration::from_millis(3));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);
    let (first, last) = assert_l0_contiguous(&replica);
    eprintln!(
        "killed at TXID {} with {k} of {} transactions replicated; L0 {first}..={last} after restart",
        newest.header.max_txid, src.next
    );
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    for tool in ["freshet", "litestream"] {
        let out = restore_with(tool, &replica, &tmp.path().join(format!("{tool}.db")), &[]);
        assert_restored_equals(&expected, &out);
    }
}

/// The database and its metadata directory are lost; `replicate
/// -restore-if-db-not-exists` restores the database from the replica and
/// replicates on, continuing the replica's TXIDs with a snapshot (no TXID
/// is reused) so that the replica restores the newest state.
#[test]
fn restore_if_db_not_exists_then_replication_continues_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x4e5, 20);
    let seed = src.seed();
    let log = tmp.path().join("freshet.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_first_file(&replica, &mut d);
    src.run(100, Duration::from_millis(2));
    let before = wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);
    drop(src);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(e2e::sibling(&db, suffix));
    }
    std::fs::remove_dir_all(tmp.path().join(".app.db-litestream")).unwrap();

    let mut d = Daemon::freshet(
        &["replicate", "-restore-if-db-not-exists", "-config", s(&cfg)],
        &log,
    );
    wait_for(
        Duration::from_secs(20),
        || format!("TXID {} on the replica", before + 1),
        || {
            d.assert_running();
            (replica_txid(&replica) > before).then_some(())
        },
    );
    let mut src = Source::open(&db, seed);
    assert_eq!(
        src.next, 120,
        "the restored database holds every transaction"
    );
    src.run(50, Duration::from_millis(2));
    wait_caught_up(&db, &replica, &mut d);
    stop_ok(&mut d, Signal::SIGTERM);

    assert_l0_contiguous(&replica);
    let files = level_files(&replica, 0);
    let resumed = files
        .iter()
        .find(|f| f.header.max_txid.get() == before + 1)
        .unwrap();
    assert!(
        is_full_snapshot(resumed),
        "TXID {} continues after a lost local state: it must be a full snapshot",
        before + 1
    );
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = restore_with("litestream", &replica, &tmp.path().join("r.db"), &[]);
    assert_restored_equals(&expected, &out);
    assert_eq!(assert_consistent_prefix(&out, seed), 170);
}

/// Uploads fail (the replica directory is replaced by a plain file), so
/// SIGTERM ends with exit status 1 once `shutdown-sync-timeout` (1 s) has
/// passed, leaving staged L0 files behind. A restart must upload them even
/// if the database never changes again, and only then report the replica
/// as up to date.
#[test]
fn restart_uploads_staged_files_without_new_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        "shutdown-sync-timeout: 1s",
        &[],
    );
    let mut src = Source::create(&db, 4096, 0x0f1e, 10);
    let log = tmp.path().join("freshet.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_first_file(&replica, &mut d);
    let away = tmp.path().join("replica.away");
    std::fs::rename(&replica, &away).unwrap();
    std::fs::write(&replica, b"not a directory").unwrap();
    src.run(20, Duration::from_millis(2));
    let meta = tmp.path().join(".app.db-litestream");
    let staged = wait_for(
        Duration::from_secs(20),
        || "the new commits staged locally".into(),
        || {
            let t = level_files(&meta, 0).last()?.header.max_txid.get();
            (t >= 2).then_some(t)
        },
    );
    let status = d.stop_with(Signal::SIGTERM);
    assert_eq!(
        status.code(),
        Some(1),
        "uploads cannot have finished; log:\n{}",
        d.log()
    );
    let err = d.stderr();
    assert!(
        err.starts_with("Error: shutdown incomplete") && err.contains("uploads did not finish"),
        "stderr should say why: {err}"
    );
    std::fs::remove_file(&replica).unwrap();
    std::fs::rename(&away, &replica).unwrap();
    assert_eq!(replica_txid(&replica), 1);

    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_for(
        Duration::from_secs(20),
        || format!("TXID {staged} uploaded after the restart"),
        || {
            d.assert_running();
            (replica_txid(&replica) >= staged).then_some(())
        },
    );
    stop_ok(&mut d, Signal::SIGTERM);
    assert_eq!(reported_txid(&d.log()), replica_txid(&replica));
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = restore_with("freshet", &replica, &tmp.path().join("r.db"), &[]);
    assert_restored_equals(&expected, &out);
}
