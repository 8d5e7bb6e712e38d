//! Damaged input, tried by the hundred: a real replica (written by
//! `freshet replicate` under a workload, with compacted levels and a
//! snapshot) is copied and damaged in one way per trial — each LTX file
//! truncated at several points, bytes flipped across each file, a file
//! removed (a gap), a file swapped for one of another database's replica,
//! files under wrong names — and `freshet restore` runs on the copy.
//!
//! Every trial ends in one of two ways: the restore fails, naming what is
//! wrong, and leaves no output file; or it succeeds (the damage was in a
//! file the plan did not need) and the output passes `integrity_check` and
//! is exactly the state after some number of workload transactions. Never a
//! corrupt database.
//!
//! And `freshet replicate` never uploads garbage: a WAL frame damaged after
//! its commit is where SQLite itself stops reading, and so does freshet.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{
    Daemon, Rng, Source, assert_integrity, assert_restored_equals, checkpointed_copy, digest_file,
    expected_digests, file_url, freshet, freshet_ok, level_files, s, sibling, wait_caught_up,
    write_config,
};
use nix::sys::signal::Signal;

const CONFIG: &str = "\
levels:
  - interval: 1s
  - interval: 2s
snapshot:
  interval: 3s
  retention: 1h
l0-retention: 1h
";

/// Replicates `seed`'s workload for about 5 s into `replica`.
fn make_replica(tmp: &Path, name: &str, seed: u64) -> PathBuf {
    let db = tmp.join(format!("{name}.db"));
    let replica = tmp.join(format!("{name}-replica"));
    let cfg = write_config(&tmp.join(format!("{name}.yml")), &db, &replica, CONFIG, &[]);
    let src = Source::create(&db, 4096, seed, 20);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.join(format!("{name}.log")),
    );
    let bg = src.background(Duration::from_millis(15));
    std::thread::sleep(Duration::from_secs(5));
    let _src = bg.stop();
    wait_caught_up(&db, &replica, &mut d);
    std::thread::sleep(Duration::from_millis(2500)); // one more compaction round
    let status = d.stop_with(Signal::SIGTERM);
    assert!(status.success());
    replica
}

fn ltx_files(replica: &Path) -> Vec<PathBuf> {
    (0..=9u8)
        .flat_map(|l| level_files(replica, l))
        .map(|f| f.path)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let status = std::process::Command::new("cp")
        .args(["-a", s(from), s(to)])
        .status()
        .unwrap();
    assert!(status.success());
}

/// How a trial may end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The damaged file is in the plan and the damage is detectable: the
    /// restore must fail, naming it.
    Refused,
    /// Either a refusal naming the file, or a correct restore through
    /// other files.
    RefusedOrCorrect,
    /// A bit flipped in a file the plan needs: refused, unless every page
    /// still decompresses the same (a match offset moved within a run of
    /// equal bytes, say); the checksums cover the pages, not the
    /// compressed bytes (LTX.md §8.1), so then the restore must be exactly
    /// the undamaged one.
    RefusedOrUnchanged,
    /// Another database's full snapshot restored on its own: nothing links
    /// it to this database, so a sound restore of it is all one can ask.
    RefusedOrSound,
}

/// The outcome of one trial: a restored file to check, or a refusal.
struct Trial {
    what: String,
    restored: Option<PathBuf>,
}

/// Restores the damaged copy at `replica` (at `txid`) into a fresh path
/// under `out_dir` and checks the outcome is allowed.
fn try_restore(
    replica: &Path,
    out_dir: &Path,
    txid: Option<u64>,
    what: String,
    names: &[String],
    expect: Expect,
) -> Trial {
    let out = out_dir.join(format!(
        "trial-{}.db",
        names.len() + what.len() * 1000 + rand_suffix()
    ));
    let t = txid.map(|t| format!("{t:016x}"));
    let mut args = vec!["restore", "-o", s(&out)];
    if let Some(t) = &t {
        args.extend(["-txid", t.as_str()]);
    }
    let url = file_url(replica);
    args.push(&url);
    let o = freshet(&args);
    if o.status.success() {
        assert!(
            expect != Expect::Refused,
            "{what}: the restore succeeded although a file it needs is damaged"
        );
        assert_integrity(&out);
        let checked = matches!(
            expect,
            Expect::RefusedOrCorrect | Expect::RefusedOrUnchanged
        );
        return Trial {
            what,
            restored: checked.then_some(out),
        };
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !out.exists(),
        "{what}: the failed restore left {} behind",
        out.display()
    );
    assert!(
        names.iter().any(|d| err.contains(d.as_str()))
            || err.contains("gap")
            || err.contains("no backup")
            || err.contains("no matching backup files"),
        "{what}: the error does not say what is wrong: {err}"
    );
    Trial {
        what,
        restored: None,
    }
}

fn rand_suffix() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The `(level, file name)` pairs `freshet restore -dry-run` plans for
/// `txid`.
fn plan(replica: &Path, txid: u64) -> Vec<(String, String)> {
    let t = format!("{txid:016x}");
    let out = freshet_ok(&[
        "restore",
        "-dry-run",
        "-txid",
        &t,
        "-o",
        "/nonexistent/x.db",
        &file_url(replica),
    ]);
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (level, name) = (w.next()?, w.next()?);
            (level.parse::<u8>().is_ok() && name.ends_with(".ltx"))
                .then(|| (level.to_owned(), name.to_owned()))
        })
        .collect()
}

#[test]
fn damaged_replicas_never_restore_to_a_corrupt_database() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = 0xbad1;
    let replica = make_replica(tmp.path(), "app", seed);
    let other = make_replica(tmp.path(), "other", 0xbad2);
    let all = ltx_files(&replica);
    assert!(
        all.len() >= 8 && all.iter().any(|f| f.to_string_lossy().contains("/ltx/9/")),
        "the replica should have several levels and a snapshot: {all:?}"
    );
    // Every compacted file and snapshot, and every third level-0 file.
    let files: Vec<&PathBuf> = all
        .iter()
        .enumerate()
        .filter(|(i, f)| !f.to_string_lossy().contains("/ltx/0/") || i % 3 == 0)
        .map(|(_, f)| f)
        .collect();
    let scratch = tmp.path().join("scratch");
    let outs = tmp.path().join("outs");
    fs::create_dir_all(&outs).unwrap();
    let mut rng = Rng::new(seed);
    let mut trials = Vec::new();
    let mut refused_in_plan = std::collections::BTreeMap::<String, usize>::new();

    for (i, file) in files.iter().enumerate() {
        let rel = file.strip_prefix(&replica).unwrap().to_path_buf();
        let level = file.parent().map(file_name).unwrap();
        let name = file_name(file);
        let (_, max) = ltx::parse_file_name(&name).unwrap();
        let txid = max.get();
        let in_plan = plan(&replica, txid).contains(&(level.clone(), name.clone()));
        let detectable = if in_plan {
            Expect::Refused
        } else {
            Expect::RefusedOrCorrect
        };
        let len = fs::metadata(file).unwrap().len();
        let mut damage = |what: String, f: &dyn Fn(&Path), expect: Expect, names: &[String]| {
            copy_dir(&replica, &scratch);
            f(&scratch.join(&rel));
            let t = try_restore(&scratch, &outs, Some(txid), what, names, expect);
            let refused = t.restored.is_none();
            if expect == Expect::Refused || expect == Expect::RefusedOrUnchanged && refused {
                *refused_in_plan.entry(level.clone()).or_default() += 1;
            }
            trials.push(t);
        };
        let own = std::slice::from_ref(&name);
        // Truncations: empty, in the middle, one byte short.
        for cut in [0, len / 2, len - 1] {
            let what = format!(
                "{} truncated to {cut} of {len} bytes (restore at {txid})",
                rel.display()
            );
            damage(
                what,
                &|p| {
                    fs::OpenOptions::new()
                        .write(true)
                        .open(p)
                        .unwrap()
                        .set_len(cut)
                        .unwrap()
                },
                detectable,
                own,
            );
        }
        // Bit flips at random offsets: header, pages, index or trailer.
        for _ in 0..3 {
            let at = rng.range(0, len - 1) as usize;
            let bit = 1u8 << rng.range(0, 7);
            let what = format!(
                "{} with bit {bit:#04x} flipped at byte {at} (restore at {txid})",
                rel.display()
            );
            damage(
                what,
                &|p| {
                    let mut bytes = fs::read(p).unwrap();
                    bytes[at] ^= bit;
                    fs::write(p, &bytes).unwrap();
                },
                match detectable {
                    Expect::Refused => Expect::RefusedOrUnchanged,
                    other => other,
                },
                own,
            );
        }
        // A gap: the file removed; another path may still reach the TXID.
        let what = format!("{} removed (restore at {txid})", rel.display());
        damage(
            what,
            &|p| fs::remove_file(p).unwrap(),
            Expect::RefusedOrCorrect,
            own,
        );
        // Another database's file of the same level under this name.
        let foreign: Vec<PathBuf> = ltx_files(&other)
            .into_iter()
            .filter(|f| f.parent().map(file_name) == file.parent().map(file_name))
            .collect();
        if let Some(f) = foreign.get(i % foreign.len().max(1)) {
            let what = format!(
                "{} replaced by another database's {} (restore at {txid})",
                rel.display(),
                file_name(f)
            );
            let names = [name.clone(), file_name(f)];
            // Same name, starting at TXID 1: a complete database on its own.
            let lone_snapshot = file_name(f) == name
                && ltx::parse_file_name(&name).is_some_and(|(min, _)| min.get() == 1);
            let expect = if lone_snapshot {
                Expect::RefusedOrSound
            } else {
                Expect::RefusedOrCorrect
            };
            damage(
                what,
                &|p| {
                    fs::copy(f, p).unwrap();
                },
                expect,
                &names,
            );
        }
    }
    // Wrongly named files next to the real ones are ignored.
    copy_dir(&replica, &scratch);
    let l0 = scratch.join("ltx/0");
    for junk in [
        "0000000000000005-0000000000000003.ltx",
        "xyz.ltx",
        "00000001-00000002.ltx",
        "0000000000000001-0000000000000001.ltx.tmp",
    ] {
        fs::write(l0.join(junk), b"not an LTX file").unwrap();
    }
    let junk = try_restore(
        &scratch,
        &outs,
        None,
        "junk files in level 0".into(),
        &[],
        Expect::RefusedOrCorrect,
    );
    assert!(
        junk.restored.is_some(),
        "wrongly named files must be ignored"
    );
    trials.push(junk);

    let restored: Vec<&Trial> = trials.iter().filter(|t| t.restored.is_some()).collect();
    let found: Vec<(u64, u64)> = restored
        .iter()
        .map(|t| digest_file(t.restored.as_ref().unwrap()))
        .collect();
    let ks: Vec<u64> = found.iter().map(|(_, k)| *k).collect();
    let want = expected_digests(seed, &ks);
    let wrong: Vec<&String> = restored
        .iter()
        .zip(&found)
        .filter(|(_, (digest, k))| want[k] != *digest)
        .map(|(t, _)| &t.what)
        .collect();
    assert!(
        wrong.is_empty(),
        "restores that succeeded with the wrong content: {wrong:?}"
    );
    eprintln!(
        "bad input: {} damaged replicas tried; {} refused ({refused_in_plan:?} with the damaged file in the plan), \
         {} restored correctly through other files (transactions {:?}..={:?})",
        trials.len(),
        trials.len() - restored.len(),
        restored.len(),
        ks.iter().min(),
        ks.iter().max()
    );
    assert!(trials.len() >= 100, "only {} trials", trials.len());
    for level in ["0", "1", "9"] {
        assert!(
            refused_in_plan.get(level).is_some_and(|n| *n >= 6),
            "too few trials damaged a level-{level} file the plan needed: {refused_in_plan:?}; {:?}",
            restored.iter().map(|t| &t.what).collect::<Vec<_>>()
        );
    }
}

/// A committed WAL frame damaged while freshet is stopped: SQLite treats
/// the WAL as ending before it, and freshet uploads exactly that much.
#[test]
fn a_damaged_wal_frame_is_where_replication_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x3a1f, 20);
    src.conn()
        .execute_batch("PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("f.log"),
    );
    wait_caught_up(&db, &replica, &mut d);
    assert!(d.stop_with(Signal::SIGTERM).success());

    // More commits while stopped, then damage a frame in their middle.
    let wal = sibling(&db, "-wal");
    let before = fs::metadata(&wal).unwrap().len();
    src.run(20, Duration::ZERO);
    let after = fs::metadata(&wal).unwrap().len();
    let mut bytes = fs::read(&wal).unwrap();
    let at = (before + (after - before) / 2) as usize;
    bytes[at] ^= 0x40;
    // The application goes away (its last close checkpoints the WAL into
    // the database file): put back the files as they were, with the damage.
    let db_bytes = fs::read(&db).unwrap();
    drop(src);
    fs::write(&db, &db_bytes).unwrap();
    fs::write(&wal, &bytes).unwrap();
    let _ = fs::remove_file(sibling(&db, "-shm"));

    // What SQLite sees: the WAL up to the damaged frame's transaction.
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    freshet_ok(&["replicate", "-config", s(&cfg), "-once"]);
    let restored = tmp.path().join("restored.db");
    freshet_ok(&["restore", "-o", s(&restored), &file_url(&replica)]);
    assert_restored_equals(&expected, &restored);
}
