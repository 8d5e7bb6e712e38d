//! `freshet replicate -exec` and `-once` end to end (CLI_CONFIG.md §2.1, §7):
//! exit statuses, the final sync after the child exits, signal forwarding,
//! shell operators, and the files a one-shot run leaves on the replica.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{
    Daemon, Source, assert_restored_equals, checkpointed_copy, digest_file, file_url, freshet,
    freshet_ok, level_files, litestream_ok, page_count, s, wait_for, write_config,
};
use nix::sys::signal::Signal;

/// `(min, max)` TXIDs of the files of one replica level.
fn ranges(replica: &Path, level: u8) -> Vec<(u64, u64)> {
    level_files(replica, level)
        .iter()
        .map(|f| (f.header.min_txid.get(), f.header.max_txid.get()))
        .collect()
}

/// A failing `-exec` child makes `replicate` exit 1 with `Error: ` naming
/// the child's status, but only after a final sync: with background syncs
/// effectively off (`monitor-interval: 1h`), the 20 transactions committed
/// while the child ran reach the replica through the final sync alone.
#[test]
fn exec_child_failure_exits_1_after_a_final_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        "",
        &["monitor-interval: 1h"],
    );
    let mut src = Source::create(&db, 4096, 0xe1, 10);
    let go = tmp.path().join("go");
    let cmd = format!(
        "sh -c 'while [ ! -e {} ]; do sleep 0.02; done; exit 3'",
        go.display()
    );
    let mut d = Daemon::freshet(
        &["replicate", "-exec", &cmd, "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_for(
        Duration::from_secs(20),
        || format!("the startup sync; log:\n{}", d.log()),
        || (!level_files(&replica, 0).is_empty()).then_some(()),
    );
    src.run(20, Duration::from_millis(2));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        ranges(&replica, 0),
        vec![(1, 1)],
        "no background sync should run with monitor-interval: 1h"
    );

    fs::write(&go, b"").unwrap();
    let status = d.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "log:\n{}", d.log());
    let err = d.stderr();
    assert!(
        err.lines()
            .any(|l| l.starts_with("Error: ") && l.contains("exit status") && l.contains('3')),
        "stderr should say `Error: ...exit status...3`:\n{err}"
    );
    let l0 = ranges(&replica, 0);
    assert_eq!(l0.last(), Some(&(2, 2)), "the final sync's file: {l0:?}");
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("restored.db");
    freshet_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
    assert_restored_equals(&expected, &out);
    assert_eq!(digest_file(&out), (src.digest(), 30));
}

/// The brief form from the documentation: `sh -c 'sleep 1; exit 3'` ends
/// replication after about a second with exit status 1.
#[test]
fn exec_sh_c_sleep_then_exit_3_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let _src = Source::create(&db, 4096, 0xe2, 5);
    let started = Instant::now();
    let out = freshet(&[
        "replicate",
        "-exec",
        "sh -c 'sleep 1; exit 3'",
        "-config",
        s(&cfg),
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        took >= Duration::from_secs(1),
        "exited after {took:?}, before the child"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Error: "), "stderr:\n{err}");
    assert_eq!(ranges(&replica, 0), vec![(1, 1)]);
}

/// A command with `&&` runs through `/bin/sh`, so both parts run (where
/// Litestream would silently drop everything from `&&` on); a failing first
/// part skips the second and fails the run.
#[test]
fn exec_with_shell_operators_runs_every_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let _src = Source::create(&db, 4096, 0xe3, 5);
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );

    let cmd = format!("touch {} && echo second > {}", a.display(), b.display());
    let out = freshet(&["replicate", "-exec", &cmd, "-config", s(&cfg)]);
    assert!(
        out.status.success(),
        "exit {}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(a.exists(), "the first part did not run");
    assert_eq!(fs::read_to_string(&b).unwrap(), "second\n");

    let cmd = format!("false && touch {}", c.display());
    let out = freshet(&["replicate", "-exec", &cmd, "-config", s(&cfg)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!c.exists(), "the second part ran after a failure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error: "));
}

/// SIGTERM to `replicate -exec` is forwarded to the child; when it exits 0,
/// replication shuts down cleanly and exits 0.
#[test]
fn exec_forwards_sigterm_to_the_child() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let _src = Source::create(&db, 4096, 0xe4, 5);
    let (ready, got) = (tmp.path().join("ready"), tmp.path().join("got-term"));
    let cmd = format!(
        "sh -c 'trap \"touch {}; exit 0\" TERM; touch {}; while :; do sleep 0.02; done'",
        got.display(),
        ready.display()
    );
    let mut d = Daemon::freshet(
        &["replicate", "-exec", &cmd, "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    wait_for(
        Duration::from_secs(20),
        || format!("the child to start; log:\n{}", d.log()),
        || ready.exists().then_some(()),
    );
    let status = d.stop_with(Signal::SIGTERM);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    assert!(got.exists(), "the child did not get SIGTERM");
}

/// `replicate -once -force-snapshot` syncs, writes a level-9 snapshot and
/// exits 0; a second run after more commits adds an incremental L0 file and
/// a newer snapshot. Each state restores exactly, also from the level-9
/// file alone. `-once` with `-exec` is refused.
#[test]
fn once_force_snapshot_writes_l0_and_l9_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x0ce, 60);
    let once = ["replicate", "-once", "-force-snapshot", "-config", s(&cfg)];

    freshet_ok(&once);
    assert_eq!(ranges(&replica, 0), vec![(1, 1)]);
    assert_eq!(ranges(&replica, 9), vec![(1, 1)]);
    let check = |name: &str| {
        let expected = tmp.path().join(format!("{name}-expected.db"));
        checkpointed_copy(&db, &expected);
        let out = tmp.path().join(format!("{name}-litestream.db"));
        litestream_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
        assert_restored_equals(&expected, &out);
        expected
    };
    check("first");

    src.run(40, Duration::ZERO);
    freshet_ok(&once);
    // TXID 2 holds the new commits; the WAL has passed 1000 pages, so the
    // sync also checkpoints and syncs the bookkeeping commit that restarts
    // the WAL (TXID 3, REPLICATION.md §5).
    let l0 = ranges(&replica, 0);
    let last = l0.last().unwrap().1;
    assert!(
        (2..=3).contains(&last) && l0 == (1..=last).map(|t| (t, t)).collect::<Vec<_>>(),
        "level 0 after the second run: {l0:?}"
    );
    assert_eq!(ranges(&replica, 9), vec![(1, 1), (1, last)]);
    let second = &level_files(&replica, 0)[1];
    assert!(
        page_count(&second.path) < u64::from(second.header.commit),
        "TXID 2 should be incremental ({} pages of {})",
        page_count(&second.path),
        second.header.commit
    );
    let expected = check("second");

    // The newest snapshot alone is the whole database.
    fs::remove_dir_all(replica.join("ltx").join("0")).unwrap();
    fs::remove_file(
        replica
            .join("ltx")
            .join("9")
            .join("0000000000000001-0000000000000001.ltx"),
    )
    .unwrap();
    assert_eq!(ranges(&replica, 9), vec![(1, last)]);
    let out = tmp.path().join("from-l9.db");
    freshet_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
    assert_restored_equals(&expected, &out);

    // Without -force-snapshot no level-9 file is added.
    src.run(5, Duration::ZERO);
    freshet_ok(&["replicate", "-once", "-config", s(&cfg)]);
    assert_eq!(ranges(&replica, 9), vec![(1, last)]);
    // Level 0 was deleted above: the uploader re-sends the staged files
    // before the new one (it positions itself by listing the replica). TXID
    // 1, the first full snapshot, went straight to the replica without a
    // local copy, so it cannot come back; the level-9 file covers it.
    assert_eq!(
        ranges(&replica, 0),
        (2..=last + 1).map(|t| (t, t)).collect::<Vec<_>>()
    );
    let expected = tmp.path().join("after-loss-expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("after-loss.db");
    freshet_ok(&["restore", "-o", s(&out), &file_url(&replica)]);
    assert_restored_equals(&expected, &out);

    let out = freshet(&["replicate", "-once", "-exec", "true", "-config", s(&cfg)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: ") && err.contains("-once") && err.contains("-exec"),
        "stderr:\n{err}"
    );
}
