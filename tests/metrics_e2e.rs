//! The metrics endpoint of `freshet replicate` (`addr`, CLI_CONFIG.md §3.2,
//! §6), scraped over plain HTTP while the daemon replicates to a file
//! replica: Litestream's series follow the local and replica positions, and
//! `freshet_replication_lag_seconds` is 0 when the replica is caught up and
//! grows while uploads fail. A busy port or a malformed address fails
//! start-up with a message naming it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use e2e::{Daemon, Source, freshet, level_files, s, wait_caught_up, wait_for, write_config};
use nix::sys::signal::Signal;

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over a fresh connection: `(status line, body)`, or `None`
/// while nothing listens.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.lines().next().unwrap_or_default().to_owned();
    Some((status, body.to_owned()))
}

/// The body of `GET /metrics`, which must succeed.
fn scrape(port: u16) -> String {
    let (status, body) = get(port, "/metrics").expect("the metrics server is listening");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The value of the first sample of `name` whose labels contain every one
/// of `labels` (e.g. `operation="PUT"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        if !labels.iter().all(|want| rest.contains(want)) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

fn value(text: &str, name: &str) -> f64 {
    sample(text, name, &[]).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn metrics_follow_the_local_and_replica_positions_and_the_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, replica) = (tmp.path().join("app.db"), tmp.path().join("replica"));
    let port = free_port();
    let cfg = write_config(
        &tmp.path().join("l.yml"),
        &db,
        &replica,
        &format!("addr: 127.0.0.1:{port}\n"),
        &[],
    );
    let mut src = Source::create(&db, 4096, 0x3e7, 5);
    let mut d = Daemon::freshet(
        &["replicate", "-config", s(&cfg)],
        &tmp.path().join("freshet.log"),
    );
    let log = |d: &Daemon| format!("log:\n{}", d.log());
    wait_for(
        Duration::from_secs(20),
        || format!("the metrics server on port {port}; {}", log(&d)),
        || get(port, "/metrics"),
    );
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("/metrics"), "{body}");

    // Caught up: local and replica at the replica's newest L0 TXID, no lag.
    // (Compared within one poll: a later sync may add a file meanwhile.)
    src.run(30, Duration::from_millis(5));
    wait_caught_up(&db, &replica, &mut d);
    let text = wait_for(
        Duration::from_secs(10),
        || {
            format!(
                "metrics at the replica's TXID with no lag:\n{}",
                scrape(port)
            )
        },
        || {
            let t = scrape(port);
            let newest = level_files(&replica, 0).last()?.header.max_txid.get() as f64;
            (value(&t, "litestream_txid") == newest
                && value(&t, "freshet_replica_txid") == newest
                && value(&t, "freshet_replication_lag_seconds") == 0.0)
                .then_some(t)
        },
    );
    let l0_files = level_files(&replica, 0).len() as f64;
    let puts = sample(
        &text,
        "litestream_replica_operation_total",
        &["operation=\"PUT\""],
    )
    .unwrap();
    assert!(
        puts >= l0_files,
        "{puts} PUTs for {l0_files} L0 files:\n{text}"
    );
    assert!(value(&text, "litestream_total_wal_bytes") > 0.0, "{text}");
    assert!(value(&text, "litestream_db_size") >= 4096.0, "{text}");
    assert!(value(&text, "freshet_wal_bytes") > 0.0, "{text}");
    let latency = value(&text, "freshet_replication_latency_seconds_count");
    assert!(latency >= 1.0, "{text}");
    for series in [
        "litestream_wal_size",
        "litestream_sync_seconds",
        "litestream_sync_error_count",
        "litestream_disk_full",
        "litestream_compaction_verify_error_count",
        "litestream_replica_operation_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
    ] {
        assert!(
            sample(&text, series, &[]).is_some(),
            "no {series} in:\n{text}"
        );
    }
    let syncs = value(&text, "litestream_sync_count");
    wait_for(
        Duration::from_secs(10),
        || format!("litestream_sync_count above {syncs}; {}", log(&d)),
        || (value(&scrape(port), "litestream_sync_count") > syncs).then_some(()),
    );
    println!("--- /metrics when caught up ---\n{text}");

    // Level 0 of the replica becomes a plain file: every upload fails, and
    // the lag of the next commit grows past a second.
    let l0 = replica.join("ltx").join("0");
    let aside = tmp.path().join("l0-aside");
    fs::rename(&l0, &aside).unwrap();
    fs::write(&l0, b"not a directory").unwrap();
    src.run(1, Duration::ZERO);
    let text = wait_for(
        Duration::from_secs(20),
        || format!("the lag past 1 s:\n{}\n{}", scrape(port), log(&d)),
        || {
            let t = scrape(port);
            (value(&t, "freshet_replication_lag_seconds") > 1.0).then_some(t)
        },
    );
    assert!(
        value(&text, "litestream_txid") > value(&text, "freshet_replica_txid"),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "litestream_replica_operation_errors_total",
            &["operation=\"PUT\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    println!("--- /metrics while uploads fail ---\n{text}");

    // Writable again: the replica catches up and the lag is back to 0.
    fs::remove_file(&l0).unwrap();
    fs::rename(&aside, &l0).unwrap();
    wait_caught_up(&db, &replica, &mut d);
    wait_for(
        Duration::from_secs(20),
        || format!("no lag after recovery:\n{}", scrape(port)),
        || {
            let t = scrape(port);
            let newest = level_files(&replica, 0).last()?.header.max_txid.get() as f64;
            (value(&t, "freshet_replica_txid") == newest
                && value(&t, "litestream_txid") == newest
                && value(&t, "freshet_replication_lag_seconds") == 0.0
                && value(&t, "freshet_replication_latency_seconds_count") > latency)
                .then_some(())
        },
    );

    assert!(d.stop_with(Signal::SIGTERM).success(), "{}", log(&d));
    assert!(
        get(port, "/metrics").is_none(),
        "still listening after exit"
    );
}

/// Runs `replicate -config` with `addr` set to `addr` and expects start-up
/// to fail; returns stderr.
fn failed_start(dir: &Path, addr: &str) -> String {
    let (db, replica) = (dir.join("app.db"), dir.join("replica"));
    let cfg = write_config(
        &dir.join("l.yml"),
        &db,
        &replica,
        &format!("addr: \"{addr}\"\n"),
        &[],
    );
    let out = freshet(&["replicate", "-config", s(&cfg)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn a_busy_port_fails_start_up_naming_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let stderr = failed_start(tmp.path(), &addr);
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn a_port_that_is_not_a_number_fails_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = failed_start(tmp.path(), "127.0.0.1:metrics");
    assert!(
        stderr.contains("addr \"127.0.0.1:metrics\": the port is not a number"),
        "{stderr}"
    );
}
