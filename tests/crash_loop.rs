//! The crash loop: a writer commits the e2e workload without pause while
//! `freshet replicate` is killed with SIGKILL at random moments (mid-sync,
//! mid-upload, mid-checkpoint, mid-compaction, mid-snapshot: the intervals
//! below make each happen several times a second) and restarted, over and
//! over. After every kill the replica, as the dead process left it, is
//! restored and checked:
//!
//! - the restore succeeds and passes `integrity_check`;
//! - it holds exactly the first `k` workload transactions (no torn or mixed
//!   state), with `k` never smaller than after the previous kill: what was
//!   acknowledged stays acknowledged;
//! - at the end, every kill's TXID still restores to the same `k` (history is
//!   never rewritten by restarts or compaction), level 0 has no gap, and
//!   after a clean stop the replica restores byte for byte to the source, with
//!   freshet and with the real Litestream: every committed transaction
//!   survived.
//!
//! `FRESHET_CRASH_CYCLES` sets the number of kills (50 by default;
//! `scripts/crash-loop.sh` runs thousands) and `FRESHET_CRASH_SEED` the
//! random schedule (printed, to replay a failure).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{
    Daemon, Rng, Source, assert_integrity, assert_l0_contiguous, assert_restored_equals,
    checkpointed_copy, digest_file, expected_digests, file_url, freshet_ok, litestream_ok,
    ltx_list, s, wait_caught_up_within, write_config,
};
use nix::sys::signal::Signal;

/// Short level, snapshot and checkpoint intervals so that a process living
/// a fraction of a second compacts, snapshots and checkpoints. L0 files are
/// kept for an hour so every kill's TXID stays restorable exactly.
const CONFIG: &str = "\
levels:
  - interval: 1s
  - interval: 2s
snapshot:
  interval: 3s
  retention: 1h
l0-retention: 1h
";

const DB_EXTRA: &[&str] = &[
    "monitor-interval: 20ms",
    "checkpoint-interval: 300ms",
    "min-checkpoint-page-count: 64",
    "truncate-page-n: 4000",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One kill: the replica's TXID then, and what a restore of it held.
struct Kill {
    txid: u64,
    k: u64,
    digest: u64,
}

/// Restores the replica (at `txid`, or its newest state) into `out` with
/// freshet and checks its integrity.
fn restore(replica: &Path, out: &Path, txid: Option<u64>) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(e2e::sibling(out, suffix));
    }
    let url = file_url(replica);
    let txid = txid.map(|t| format!("{t:016x}"));
    let mut args = vec!["restore", "-o", s(out)];
    if let Some(t) = &txid {
        args.extend(["-txid", t.as_str()]);
    }
    args.push(&url);
    freshet_ok(&args);
    assert_integrity(out);
}

#[test]
fn replication_survives_repeated_sigkill() {
    let cycles = env_u64("FRESHET_CRASH_CYCLES", 50);
    let seed = env_u64(
        "FRESHET_CRASH_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("crash loop: {cycles} cycles, FRESHET_CRASH_SEED={seed}");
    let mut schedule = Rng::new(seed);

    // FRESHET_CRASH_KEEP=1 keeps the directory (database, replica, log) to
    // inspect a failure.
    let keep = std::env::var_os("FRESHET_CRASH_KEEP").is_some();
    let tmp = tempfile::Builder::new()
        .prefix("crash-loop")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("crash loop: keeping {}", tmp.path().display());
    }
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, CONFIG, DB_EXTRA);
    let log = tmp.path().join("freshet.log");
    let restored = tmp.path().join("restored.db");
    let workload =
        Source::create(&db, 4096, seed ^ 0xc7a5, 20).background(Duration::from_millis(4));

    let mut kills: Vec<Kill> = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
        // Mostly short lives (the start-up path: catch-up, continuity
        // checks, first uploads), some long enough to compact and snapshot.
        let life = if schedule.range(0, 3) == 0 {
            schedule.range(1000, 3500)
        } else {
            schedule.range(5, 800)
        };
        std::thread::sleep(Duration::from_millis(life));
        d.kill9();
        if !replica.exists() {
            continue;
        }
        // What a restore of "latest" reaches: a level-9 snapshot is taken at
        // the local position and may be ahead of the level-0 uploads.
        let txid = ltx_list(&replica, "all")
            .iter()
            .map(|f| f.max)
            .max()
            .unwrap_or(0);
        if keep {
            // Hard links keep each kill's files even when later replaced.
            let snap = tmp.path().join(format!("kill-{}", kills.len()));
            let ok = std::process::Command::new("cp")
                .args(["-al", s(&replica), s(&snap)])
                .status()
                .is_ok_and(|st| st.success());
            assert!(ok, "copying the replica for inspection");
        }
        restore(&replica, &restored, None);
        let (digest, k) = digest_file(&restored);
        if let Some(prev) = kills.last() {
            assert!(
                txid >= prev.txid && k >= prev.k,
                "cycle {cycle} (seed {seed}): the replica went back from TXID {} ({} transactions) to TXID {txid} ({k})",
                prev.txid,
                prev.k
            );
        }
        kills.push(Kill { txid, k, digest });
    }
    let src = workload.stop();
    eprintln!(
        "crash loop: {} kills in {:.1?}; the workload committed {} transactions; replica at TXID {}",
        kills.len(),
        started.elapsed(),
        src.next,
        kills.last().map_or(0, |k| k.txid)
    );
    let levels: Vec<(&str, usize)> = ["1", "2", "9"]
        .into_iter()
        .map(|l| (l, ltx_list(&replica, l).len()))
        .collect();
    // Level-1 writes finished or cut off by a kill (the file backend's
    // temporary files): the first compaction of a process merges level 0
    // from the previous level-1 file on, snapshots written at restarts
    // included, and may well be killed every time.
    let l1_writes = std::fs::read_dir(replica.join("ltx/1")).map_or(0, |d| d.count());
    eprintln!(
        "crash loop: files by level after the kills: {levels:?}; level-1 writes started: {l1_writes}"
    );
    assert!(
        l1_writes > 0 || cycles < 20,
        "no compaction started between kills: the loop did not exercise it"
    );
    assert!(
        kills.len() as u64 >= cycles * 9 / 10,
        "the replica did not appear early enough: only {} of {cycles} kills checked",
        kills.len()
    );

    // Every restored state was exactly the first k transactions.
    let ks: Vec<u64> = kills.iter().map(|k| k.k).collect();
    let want = expected_digests(src.seed(), &ks);
    for (i, kill) in kills.iter().enumerate() {
        assert_eq!(
            kill.digest, want[&kill.k],
            "kill {i} (seed {seed}): the restore claims {} transactions but differs from that state",
            kill.k
        );
    }

    // A clean run catches up with everything the workload committed (a
    // snapshot of the database first if it was checkpointed while freshet
    // was down: long runs make it big).
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_caught_up_within(&db, &replica, &mut d, Duration::from_secs(600));
    let status = d.stop_with(Signal::SIGTERM);
    assert!(status.success(), "final replicate exited with {status}");
    let (first, _) = assert_l0_contiguous(&replica);
    assert_eq!(first, 1, "level 0 lost its start");

    // History is stable: each kill's TXID restores to what it held then.
    for (i, kill) in kills.iter().enumerate() {
        if i > 0 && kills[i - 1].txid == kill.txid {
            continue;
        }
        restore(&replica, &restored, Some(kill.txid));
        let (digest, k) = digest_file(&restored);
        assert_eq!(
            (k, digest),
            (kill.k, kill.digest),
            "kill {i} (seed {seed}): TXID {} now restores to {k} transactions instead of {}",
            kill.txid,
            kill.k
        );
    }

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    restore(&replica, &restored, None);
    assert_restored_equals(&expected, &restored);
    assert_eq!(digest_file(&restored).1, src.next);
    let by_litestream = tmp.path().join("litestream.db");
    litestream_ok(&["restore", "-o", s(&by_litestream), &file_url(&replica)]);
    assert_restored_equals(&expected, &by_litestream);
}
