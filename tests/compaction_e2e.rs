//! Compaction, snapshots and retention of a running `freshet replicate`
//! (REPLICA_LAYOUT.md §6–7), seen from the replica, with short intervals:
//! levels every 2 s and 4 s, snapshots every 6 s, L0 retention 1 s.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use e2e::{
    Daemon, Listed, Source, assert_restored_equals, checkpointed_copy, file_url, freshet_ok,
    level_files, litestream_ok, ltx_list, s, wait_caught_up, wait_for, write_config,
};
use nix::sys::signal::Signal;

const CONFIG: &str = "\
levels:
  - interval: 2s
  - interval: 4s
snapshot:
  interval: 6s
  retention: 1h
l0-retention: 1s
l0-retention-check-interval: 1s
";

/// Checks that the files of a level cover `1..=` their last TXID without a
/// gap or overlap.
fn assert_contiguous_from_1(level: u8, files: &[Listed]) {
    assert!(!files.is_empty(), "level {level} is empty");
    assert_eq!(files[0].min, 1, "level {level} starts at {:?}", files[0]);
    for w in files.windows(2) {
        assert_eq!(
            w[1].min,
            w[0].max + 1,
            "level {level}: {:?} does not follow {:?}",
            w[1],
            w[0]
        );
    }
}

/// Milliseconds from `ms` to the next multiple of `period_ms` (0 if on one).
fn to_next_boundary(ms: i64, period_ms: i64) -> i64 {
    (period_ms - ms.rem_euclid(period_ms)) % period_ms
}

/// A 15 s workload under `freshet replicate` with the short schedule, then
/// the replica's levels as `freshet ltx -level all -json` lists them:
///
/// - L1 and L2 hold contiguous ranges from TXID 1; every L2 range ends
///   where an L1 range ends (L2 merges L1); the L1 files made during the
///   workload end just before 2 s wall-clock boundaries;
/// - every L9 file starts at 1, those taken on schedule just after a 6 s
///   boundary;
/// - L0 was trimmed (on the replica and locally) but still reaches back to
///   the end of L1 and holds the newest TXID.
///
/// The replica restores exactly with both tools. Restores at four times
/// across the run and at four TXIDs that end L1 files (most L0 files are
/// gone by then) give identical bytes with both tools, each the state after
/// a whole number of transactions, never fewer for a later time. A replica
/// reduced to its L9 and L1 files still restores the final state exactly.
#[test]
fn compaction_levels_snapshots_and_l0_retention_follow_the_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, CONFIG, &[]);
    let src = Source::create(&db, 4096, 0xc0c0, 20);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    let started = Instant::now();
    let bg = src.background(Duration::from_millis(20));
    while started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(250));
        d.assert_running();
    }
    let src = bg.stop();
    let newest = wait_caught_up(&db, &replica, &mut d);

    // Let L1 take in the last L0 file, so L9 + L1 alone are the database.
    let by_level = wait_for(
        Duration::from_secs(10),
        || {
            format!(
                "level 1 to reach TXID {newest}: {:?}; log:\n{}",
                ltx_list(&replica, "1").last(),
                d.log()
            )
        },
        || {
            let mut by_level: BTreeMap<u8, Vec<Listed>> = BTreeMap::new();
            for f in ltx_list(&replica, "all") {
                by_level.entry(f.level).or_default().push(f);
            }
            let l1_max = by_level.get(&1)?.last()?.max;
            (l1_max == newest).then_some(by_level)
        },
    );
    let status = d.stop_with(Signal::SIGTERM);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let count = |l: u8| by_level.get(&l).map_or(0, Vec::len);
    eprintln!(
        "{} transactions; TXID {newest}; files per level: L0 {}, L1 {}, L2 {}, L9 {}",
        src.next,
        count(0),
        count(1),
        count(2),
        count(9)
    );
    let levels: Vec<u8> = by_level.keys().copied().collect();
    assert_eq!(levels, vec![0, 1, 2, 9], "levels with files");

    // L1 and L2.
    let (l1, l2) = (&by_level[&1], &by_level[&2]);
    assert_contiguous_from_1(1, l1);
    assert_contiguous_from_1(2, l2);
    assert!(
        l1.len() >= 6,
        "a 15 s run at 2 s should make 6+ L1 files: {l1:?}"
    );
    assert!(
        l2.len() >= 3,
        "a 15 s run at 4 s should make 3+ L2 files: {l2:?}"
    );
    for f in l2 {
        assert!(
            l1.iter().any(|g| g.max == f.max),
            "L2 file {f:?} does not end where an L1 file ends"
        );
    }
    // Header timestamps (ms) of the L1 files made during the workload: the
    // newest input of each was written just before a 2 s boundary.
    let l1_files = level_files(&replica, 1);
    for f in &l1_files[1..l1_files.len() - 1] {
        let gap = to_next_boundary(f.header.timestamp, 2000);
        assert!(
            gap < 1000,
            "L1 file {}-{} ends {gap} ms before a 2 s boundary: not compacted on schedule",
            f.header.min_txid,
            f.header.max_txid
        );
    }

    // L9: every snapshot starts at 1; the scheduled ones (all but the one
    // taken at startup) were taken right after a 6 s boundary.
    let l9 = level_files(&replica, 9);
    assert!(
        (3..=5).contains(&l9.len()),
        "startup plus one snapshot per 6 s: {} files",
        l9.len()
    );
    for (i, f) in l9.iter().enumerate() {
        assert_eq!(f.header.min_txid.get(), 1, "L9 file {}", f.path.display());
        if i > 0 {
            let since = f.header.timestamp.rem_euclid(6000);
            assert!(
                since < 1000,
                "L9 file {}-{} taken {since} ms after a 6 s boundary",
                f.header.min_txid,
                f.header.max_txid
            );
            assert!(f.header.max_txid > l9[i - 1].header.max_txid);
        }
    }

    // L0: trimmed, contiguous, reaching back to the end of L1, newest kept.
    let l0 = &by_level[&0];
    let l1_max = l1.last().unwrap().max;
    assert!(l0[0].min > 1, "L0 was never trimmed: starts at {:?}", l0[0]);
    assert!(
        l0[0].min <= l1_max + 1,
        "gap between L1 (to {l1_max}) and L0 (from {})",
        l0[0].min
    );
    assert_eq!(l0.last().unwrap().max, newest, "the newest L0 file is kept");
    for w in l0.windows(2) {
        assert_eq!(w[1].min, w[0].max + 1, "L0 gap: {:?} {:?}", w[0], w[1]);
    }
    let meta = tmp.path().join(".app.db-litestream");
    let local = level_files(&meta, 0);
    assert!(
        !local.is_empty() && local[0].header.min_txid.get() > 1,
        "local L0 copies were not trimmed: {} files from TXID {:?}",
        local.len(),
        local.first().map(|f| f.header.min_txid)
    );

    // Restores.
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let url = file_url(&replica);
    let out = tmp.path().join("freshet.db");
    freshet_ok(&["restore", "-o", s(&out), &url]);
    assert_restored_equals(&expected, &out);
    let out = tmp.path().join("litestream.db");
    litestream_ok(&["restore", "-o", s(&out), &url]);
    assert_restored_equals(&expected, &out);

    // Points in time inside the run, where L0 is mostly gone: freshet and
    // Litestream pick the same files (identical bytes), and each result is
    // the state after some number of whole transactions, later for later
    // times. Likewise for every TXID that ends an L1 file.
    let first_ms = level_files(&replica, 9)[0].header.timestamp;
    let last_ms = level_files(&replica, 0).last().unwrap().header.timestamp;
    let mut restored = Vec::new();
    let step = ((last_ms - first_ms) / 5).max(1);
    let mut probes: Vec<(String, Vec<String>)> = (1..5)
        .map(|i| {
            let t = e2e::rfc3339_ms(e2e::from_ms(first_ms + i * step));
            (format!("t{i}"), vec!["-timestamp".into(), t])
        })
        .collect();
    let n = l1.len();
    let mut ends: Vec<u64> = [0, n / 3, 2 * n / 3, n - 1]
        .iter()
        .map(|&i| l1[i].max)
        .collect();
    ends.dedup();
    probes.extend(
        ends.iter()
            .map(|m| (format!("x{m}"), vec!["-txid".into(), format!("{m:016x}")])),
    );
    for (name, flags) in &probes {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut outs = Vec::new();
        for tool in ["freshet", "litestream"] {
            let out = tmp.path().join(format!("{name}-{tool}.db"));
            let mut args = vec!["restore", "-o", s(&out)];
            args.extend_from_slice(&flags);
            args.push(&url);
            match tool {
                "freshet" => freshet_ok(&args),
                _ => litestream_ok(&args),
            };
            outs.push(out);
        }
        e2e::assert_same_bytes(&outs[1], &outs[0]);
        e2e::assert_integrity(&outs[0]);
        restored.push(outs.swap_remove(0));
    }
    let ks = e2e::assert_consistent_prefixes(&restored, src.seed());
    let by_time = &ks[..4];
    assert!(
        by_time.windows(2).all(|w| w[0] <= w[1]),
        "later times restored fewer transactions: {by_time:?}"
    );

    // Only L9 and L1 left.
    for level in ["0", "2"] {
        fs::remove_dir_all(replica.join("ltx").join(level)).unwrap();
    }
    let out = tmp.path().join("l9-l1-freshet.db");
    freshet_ok(&["restore", "-o", s(&out), &url]);
    assert_restored_equals(&expected, &out);
    let out = tmp.path().join("l9-l1-litestream.db");
    litestream_ok(&["restore", "-o", s(&out), &url]);
    assert_restored_equals(&expected, &out);
}
