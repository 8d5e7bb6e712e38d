//! Soak: `freshet replicate` under a write profile for a while, sampled
//! every 250 ms, asserting what a long-running replicator must keep:
//!
//! - the WAL stays bounded (checkpoints keep up);
//! - the replicator's memory stays bounded (peak RSS);
//! - no snapshot is taken after the first one: an ordinary checkpoint never
//!   costs a full copy of the database;
//! - the replica restores byte for byte to the source at the end.
//!
//! Profiles (`FRESHET_SOAK_PROFILE`): `low` (10 writes/s), `high` (a wave
//! between 0 and 1,000 writes/s, 500 on average), `burst` (1,000 writes/s
//! for 2 s in every 10 s), `max` (as fast as the machine commits), and
//! `mixed` (a quarter of the time each, the default). `FRESHET_SOAK_SECONDS`
//! sets the length (120 by default, the CI run); `scripts/soak.sh PROFILE
//! DURATION` runs long ones.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::time::{Duration, Instant};

use e2e::{
    Daemon, Rng, assert_restored_equals, checkpointed_copy, file_url, freshet_ok, s, sibling,
    wait_caught_up, write_config,
};
use nix::sys::signal::Signal;
use rusqlite::{Connection, params};

/// WAL bound under the paced profiles: the checkpoint threshold (1,000
/// pages of 4 KiB) many times over.
const MAX_WAL_BYTES: u64 = 64 << 20;
/// WAL bound at the maximum write rate: below the emergency TRUNCATE
/// threshold (`truncate-page-n`, 121,359 pages of 4 KiB), which must never
/// be needed.
const MAX_WAL_BYTES_AT_MAX_RATE: u64 = 121_359 * 4096;
/// Peak RSS bound of the replicator (a debug build, with its allocator's
/// slack).
const MAX_RSS_BYTES: u64 = 128 << 20;

#[derive(Clone, Copy, Debug)]
enum Profile {
    Low,
    High,
    Burst,
    Max,
}

impl Profile {
    /// The delay before the next write at `t` into the profile, or `None`
    /// for "write now, as fast as possible".
    fn pause(self, t: Duration) -> Option<Duration> {
        let per_second = match self {
            Profile::Low => 10.0,
            Profile::High => {
                let phase = t.as_secs_f64() * std::f64::consts::TAU / 20.0;
                (500.0 + 500.0 * phase.sin()).max(5.0)
            }
            Profile::Burst => {
                if t.as_secs() % 10 < 2 {
                    1000.0
                } else {
                    2.0
                }
            }
            Profile::Max => return None,
        };
        Some(Duration::from_secs_f64(1.0 / per_second))
    }
}

fn profiles() -> Vec<Profile> {
    match std::env::var("FRESHET_SOAK_PROFILE").as_deref() {
        Ok("low") => vec![Profile::Low],
        Ok("high") => vec![Profile::High],
        Ok("burst") => vec![Profile::Burst],
        Ok("max") => vec![Profile::Max],
        Ok("mixed") | Err(_) => vec![Profile::Low, Profile::High, Profile::Burst, Profile::Max],
        Ok(other) => {
            panic!("unknown FRESHET_SOAK_PROFILE {other:?}: low, high, burst, max or mixed")
        }
    }
}

/// Resident set size of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Commits one write: a row of 100–1,000 random bytes; every 100th write
/// also deletes old rows so the database stops growing.
fn write_one(conn: &Connection, rng: &mut Rng, n: u64) {
    let len = rng.range(100, 1000) as usize;
    conn.execute(
        "INSERT INTO soak (n, v) VALUES (?1, ?2)",
        params![n as i64, rng.bytes(len)],
    )
    .unwrap();
    if n % 100 == 99 && n > 20_000 {
        conn.execute(
            "DELETE FROM soak WHERE n < ?1",
            params![(n - 20_000) as i64],
        )
        .unwrap();
    }
}

#[test]
fn soak() {
    let seconds: u64 = std::env::var("FRESHET_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let profiles = profiles();
    let slice = Duration::from_secs(seconds) / profiles.len() as u32;
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("soak.db"), tmp.path().join("replica"));
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE soak (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, v BLOB NOT NULL);",
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let cfg = write_config(&tmp.path().join("l.yml"), &db, &replica, "", &[]);
    let log = tmp.path().join("f.log");
    let mut d = Daemon::freshet(&["replicate", "-config", s(&cfg)], &log);
    wait_caught_up(&db, &replica, &mut d);
    let pid = d.id();

    let wal = sibling(&db, "-wal");
    let mut rng = Rng::new(0x50a4);
    let mut n = 0u64;
    let mut peak_rss = 0u64;
    let mut report = Vec::new();
    for profile in &profiles {
        let started = Instant::now();
        let mut next_sample = started;
        let mut next_write = started;
        let first = n;
        let mut peak_wal = 0u64;
        while started.elapsed() < slice {
            let now = Instant::now();
            if now >= next_sample {
                d.assert_running();
                peak_wal = peak_wal.max(fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
                peak_rss = peak_rss.max(rss(pid));
                next_sample = now + Duration::from_millis(250);
            }
            match profile.pause(started.elapsed()) {
                None => {
                    write_one(&conn, &mut rng, n);
                    n += 1;
                }
                Some(pause) => {
                    if now >= next_write {
                        write_one(&conn, &mut rng, n);
                        n += 1;
                        next_write += pause;
                    } else {
                        std::thread::sleep((next_write - now).min(Duration::from_millis(50)));
                    }
                }
            }
        }
        report.push(format!(
            "{profile:?}: {} writes in {:.0?} ({:.0}/s), peak WAL {:.1} MiB",
            n - first,
            slice,
            (n - first) as f64 / slice.as_secs_f64(),
            peak_wal as f64 / f64::from(1 << 20)
        ));
        let bound = match profile {
            Profile::Max => MAX_WAL_BYTES_AT_MAX_RATE,
            _ => MAX_WAL_BYTES,
        };
        assert!(
            peak_wal <= bound,
            "{profile:?}: the WAL reached {peak_wal} bytes (bound {bound})"
        );
    }
    wait_caught_up(&db, &replica, &mut d);
    let status = d.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "replicate exited with {status}:\n{}",
        d.log()
    );
    let text = d.log();
    let snapshots: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("wrote snapshot"))
        .collect();
    eprintln!(
        "soak {seconds} s: {}; peak RSS {:.1} MiB, {} snapshot(s)",
        report.join("; "),
        peak_rss as f64 / f64::from(1 << 20),
        snapshots.len()
    );
    assert!(
        peak_rss > 0 && peak_rss <= MAX_RSS_BYTES,
        "replicate's RSS peaked at {peak_rss} bytes (bound {MAX_RSS_BYTES})"
    );
    assert!(
        snapshots.len() == 1,
        "snapshots after the first one (an ordinary checkpoint must not cost one):\n{}",
        snapshots.join("\n")
    );
    drop(conn);
    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let restored = tmp.path().join("restored.db");
    freshet_ok(&["restore", "-o", s(&restored), &file_url(&replica)]);
    assert_restored_equals(&expected, &restored);
}
