//! Storage that fails under a running `freshet replicate`, while the
//! application keeps writing:
//!
//! - the meta directory's file system fills up (a 6 MiB tmpfs, topped up
//!   with a filler file), then space comes back;
//! - the replica directory turns read-only (a tmpfs remounted `ro`), then
//!   writable again;
//! - the S3 server goes away for a minute, then comes back on the same port.
//!
//! Each time freshet keeps running, says what is wrong in words a user can
//! act on, resumes by itself once the fault is gone, and loses nothing: the
//! replica then restores byte for byte to the source.
//!
//! The tmpfs tests mount file systems, which needs root (or CAP_SYS_ADMIN);
//! without it they say so and pass, except under CI where they fail.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::s3::{ACCESS_KEY, S3sFs, SECRET_KEY};
use e2e::{
    Daemon, Source, assert_restored_equals, checkpointed_copy, file_url, freshet_ok, s,
    wait_caught_up, wait_for, wal_end,
};
use nix::sys::signal::Signal;

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `6m`) on `dir`; `None` when this
    /// process may not mount (and we are not under CI).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(dir),
            ])
            .output()
            .expect("run mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs on {} under CI: {why}",
                dir.display()
            );
            eprintln!("skipped: mounting a tmpfs needs root or CAP_SYS_ADMIN ({why})");
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, mode: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{mode}"), s(&self.dir)])
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount {mode} {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", s(&self.dir)]).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until writes fail.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        match std::io::Write::write_all(&mut f, &chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let _ = f.sync_all();
    filler
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

/// The daemon's output so far (stdout, then stderr).
fn read_log(log: &Path) -> String {
    let err = fs::read_to_string(e2e::sibling(log, ".err")).unwrap_or_default();
    fs::read_to_string(log).unwrap_or_default() + &err
}

/// Waits until the daemon's log (at `log`) contains `needle`.
fn wait_log(d: &mut Daemon, log: &Path, needle: &str, timeout: Duration) -> String {
    wait_for(
        timeout,
        || format!("`{needle}` in the log:\n{}", read_log(log)),
        || {
            d.assert_running();
            let log = d.log();
            log.contains(needle).then_some(log)
        },
    )
}

/// Stops the daemon (the replica has caught up with the source), and
/// checks the replica restores (`freshet restore -o OUT SOURCE...`) to the
/// source byte for byte, every committed transaction included.
fn stop_and_verify(src: Source, db: &Path, source: &[&str], tmp: &Path, d: &mut Daemon) {
    let status = d.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "replicate exited with {status}:
{}",
        d.log()
    );
    let expected = tmp.join("expected.db");
    let restored = tmp.join("restored.db");
    checkpointed_copy(db, &expected);
    let mut args = vec!["restore", "-o", s(&restored)];
    args.extend_from_slice(source);
    freshet_ok(&args);
    assert_restored_equals(&expected, &restored);
    assert_eq!(e2e::digest_file(&restored).1, src.next);
}

#[test]
fn a_full_meta_directory_is_reported_and_replication_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(meta) = Tmpfs::mount(&tmp.path().join("meta"), "6m") else {
        return;
    };
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let cfg = e2e::write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        "",
        &[&format!("meta-path: {}", meta.dir.join("app").display())],
    );
    let mut src = Source::create(&db, 4096, 0xd15c, 20);
    let log = tmp.path().join("f.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_caught_up(&db, &replica, &mut d);

    let filler = fill(&meta.dir);
    // Big transactions: their L0 files no longer fit.
    src.run(40, Duration::from_millis(10));
    let text = wait_log(
        &mut d,
        &log,
        "No space left on device",
        Duration::from_secs(30),
    );
    assert!(
        text.contains(&meta.dir.display().to_string()),
        "the error should name the meta directory {}:\n{text}",
        meta.dir.display()
    );
    src.run(40, Duration::from_millis(10));
    d.assert_running();

    fs::remove_file(&filler).unwrap();
    src.run(40, Duration::from_millis(10));
    wait_caught_up(&db, &replica, &mut d);
    stop_and_verify(src, &db, &[&file_url(&replica)], tmp.path(), &mut d);
}

#[test]
fn a_read_only_replica_is_reported_and_replication_resumes_when_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = Tmpfs::mount(&tmp.path().join("store"), "256m") else {
        return;
    };
    let replica = store.dir.join("replica");
    let db = tmp.path().join("app.db");
    let cfg = e2e::write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let mut src = Source::create(&db, 4096, 0x0ead, 20);
    let log = tmp.path().join("f.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_caught_up(&db, &replica, &mut d);

    store.remount("ro");
    src.run(60, Duration::from_millis(10));
    let text = wait_log(
        &mut d,
        &log,
        "Read-only file system",
        Duration::from_secs(30),
    );
    assert!(
        text.contains(&replica.display().to_string()),
        "the error should name the replica {}:\n{text}",
        replica.display()
    );
    src.run(30, Duration::from_millis(10));
    d.assert_running();

    store.remount("rw");
    wait_caught_up(&db, &replica, &mut d);
    stop_and_verify(src, &db, &[&file_url(&replica)], tmp.path(), &mut d);
}

/// The S3 server is down for `FRESHET_OUTAGE_SECONDS` (60 by default)
/// while the application writes; freshet keeps the WAL bounded (it stages
/// L0 files and checkpoints), reports the outage, and uploads everything
/// once the server is back.
#[test]
fn an_s3_outage_of_a_minute_loses_nothing() {
    let outage = Duration::from_secs(
        std::env::var("FRESHET_OUTAGE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let mut server = S3sFs::start();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    let url = server.url("outage/app");
    let cfg = tmp.path().join("l.yml");
    fs::write(
        &cfg,
        format!(
            "access-key-id: {ACCESS_KEY}\nsecret-access-key: {SECRET_KEY}\n\
             dbs:\n  - path: {}\n    monitor-interval: 100ms\n    \
             min-checkpoint-page-count: 200\n    replica:\n      url: \"{url}\"\n      \
             sync-interval: 100ms\n",
            db.display()
        ),
    )
    .unwrap();
    let mut src = Source::create(&db, 4096, 0x0a7a, 20);
    let log = tmp.path().join("f.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_for(
        Duration::from_secs(30),
        || format!("a first object; log:\n{}", d.log()),
        || (!server.level_headers("outage/app", 0).is_empty()).then_some(()),
    );

    server.stop();
    let down = Instant::now();
    let mut peak_wal = 0u64;
    let wal = e2e::sibling(&db, "-wal");
    while down.elapsed() < outage {
        src.run(5, Duration::from_millis(20));
        peak_wal = peak_wal.max(fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        d.assert_running();
    }
    let text = d.log();
    assert!(
        text.contains("127.0.0.1") && text.to_lowercase().contains("connect"),
        "the log should say the S3 endpoint cannot be reached:\n{text}"
    );
    eprintln!(
        "outage of {outage:?}: {} transactions committed, WAL peaked at {peak_wal} bytes",
        src.next
    );
    server.restart();
    wait_for(
        Duration::from_secs(90),
        || {
            format!(
                "the replica catching up after the outage; log:\n{}",
                read_log(&log)
            )
        },
        || {
            d.assert_running();
            let (s1, s2, end) = wal_end(&db)?;
            let (h, _) = server.level_headers("outage/app", 0).pop()?;
            (h.wal_salt1 == s1 && h.wal_salt2 == s2 && (h.wal_offset + h.wal_size) as u64 == end)
                .then_some(())
        },
    );
    stop_and_verify(src, &db, &["-config", s(&cfg), s(&db)], tmp.path(), &mut d);
}
