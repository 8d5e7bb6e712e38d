//! `freshet replicate` and `freshet restore` against an S3 server (s3s-fs,
//! which checks SigV4 signatures), through
//! `s3://bucket/path?endpoint=…&region=us-east-1&forcePathStyle=true` URLs
//! with the keys in `LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`,
//! and interop with the real Litestream in both directions: each side
//! restores what the other replicated, byte for byte, integrity ok. The
//! databases carry a 12 MB incompressible table so their snapshots go up as
//! multipart uploads on both sides.
//!
//! s3s-fs is started by each test on 127.0.0.1 with a free port and killed
//! when the test ends; a missing s3s-fs fails the test (run
//! scripts/setup.sh).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs::{self, File};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::{
    Source, assert_restored_equals, checkpointed_copy, digest_file, freshet_bin, litestream_bin, s,
    wait_for, wal_end,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

const ACCESS_KEY: &str = "e2e-access-key";
const SECRET_KEY: &str = "e2e-secret-key";
const BUCKET: &str = "backups";

/// A running s3s-fs, killed (only it) when dropped.
struct S3sFs {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl S3sFs {
    fn start() -> S3sFs {
        let bin = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "s3s-fs is not installed; run scripts/setup.sh (it runs \
                     `cargo install s3s-fs --version 0.14.1 --features binary --locked`)"
                )
            });
        let data = tempfile::tempdir().unwrap();
        fs::create_dir(data.path().join(BUCKET)).unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(data.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start s3s-fs");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return S3sFs { child, port, data };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    fn url(&self, path: &str) -> String {
        format!(
            "s3://{BUCKET}/{path}?endpoint=http://127.0.0.1:{}&region=us-east-1&forcePathStyle=true",
            self.port
        )
    }

    /// Where s3s-fs keeps level `level` of replica `path`
    /// (REPLICA_LAYOUT.md §3: `<path>/<level %04x>/`).
    fn level_dir(&self, path: &str, level: u8) -> PathBuf {
        self.data
            .path()
            .join(BUCKET)
            .join(path)
            .join(format!("{level:04x}"))
    }

    /// Headers of the LTX files of one level, in TXID order.
    fn level_headers(&self, path: &str, level: u8) -> Vec<(ltx::Header, u64)> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.level_dir(path, level))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if ltx::parse_file_name(&name).is_none() {
                continue;
            }
            let mut head = [0u8; ltx::HEADER_SIZE];
            let Ok(mut f) = File::open(e.path()) else {
                continue;
            };
            if f.read_exact(&mut head).is_err() {
                continue;
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if let Ok(h) = ltx::Header::from_bytes(&head) {
                out.push((h, size));
            }
        }
        out.sort_by_key(|(h, _)| (h.min_txid, h.max_txid));
        out
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program args` with the S3 keys in the environment (and no AWS keys or
/// CA bundle that could take precedence or upset Litestream).
fn command(program: &Path, args: &[&str], secret: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LITESTREAM_ACCESS_KEY_ID", ACCESS_KEY)
        .env("LITESTREAM_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("LITESTREAM_CONFIG")
        .env_remove("LOG_LEVEL")
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// Runs a one-shot command to completion (killed after 120 s).
fn run(program: &Path, args: &[&str], secret: &str) -> Output {
    let mut child = command(program, args, secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            panic!(
                "`{} {}` did not finish in 120 s",
                program.display(),
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args, SECRET_KEY);
    assert!(
        out.status.success(),
        "`{} {}` failed with {}:\n{}{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `replicate` daemon in its own process group, killed when dropped.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(program: &Path, args: &[&str], log: &Path) -> Daemon {
        let file = File::create(log).unwrap();
        let child = command(program, args, SECRET_KEY)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("replicate exited early with {status}; log:\n{}", self.log());
        }
    }

    /// SIGTERM, then waits up to 40 s.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                panic!("replicate did not stop within 40 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Adds 12 MB of incompressible data, so a snapshot is a multipart upload
/// (5 MiB parts).
fn add_padding(src: &Source) {
    src.conn()
        .execute_batch(
            "CREATE TABLE pad(b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             INSERT INTO pad SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
}

/// Waits until the newest level-0 object ends where the source's WAL ends.
fn wait_caught_up(server: &S3sFs, path: &str, db: &Path, d: &mut Daemon) -> u64 {
    let log = d.log.clone();
    wait_for(
        Duration::from_secs(60),
        || {
            format!(
                "the S3 replica catching up with {} (WAL end {:?}); log:\n{}",
                db.display(),
                wal_end(db),
                fs::read_to_string(&log).unwrap_or_default()
            )
        },
        || {
            d.assert_running();
            let (s1, s2, end) = wal_end(db)?;
            let (h, _) = server.level_headers(path, 0).pop()?;
            (h.wal_salt1 == s1 && h.wal_salt2 == s2 && (h.wal_offset + h.wal_size) as u64 == end)
                .then(|| h.max_txid.get())
        },
    )
}

fn wait_first_file(server: &S3sFs, path: &str, d: &mut Daemon) {
    let log = d.log.clone();
    wait_for(
        Duration::from_secs(30),
        || {
            format!(
                "a first level-0 object under {path}; log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        },
        || {
            d.assert_running();
            (!server.level_headers(path, 0).is_empty()).then_some(())
        },
    );
}

#[test]
fn freshet_replicates_to_s3_and_both_tools_restore() {
    let server = S3sFs::start();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    let mut src = Source::create(&db, 4096, 0x53, 20);
    add_padding(&src);
    let url = server.url("freshet/app");

    let mut d = Daemon::start(
        &freshet_bin(),
        &["replicate", s(&db), &url],
        &tmp.path().join("freshet.log"),
    );
    wait_first_file(&server, "freshet/app", &mut d);
    src.run(150, Duration::from_millis(5));
    let txid = wait_caught_up(&server, "freshet/app", &db, &mut d);
    let status = d.stop();
    assert!(
        status.success(),
        "freshet replicate exited with {status}; log:\n{}",
        d.log()
    );

    // Layout: `<path>/<level %04x>/`, no `ltx/` segment; the snapshot went
    // up in parts and arrived whole.
    let l0 = server.level_headers("freshet/app", 0);
    assert!(
        l0.first().is_some_and(|(_, size)| *size > 5 * 1024 * 1024),
        "the first L0 object should exceed one part: {l0:?}"
    );
    assert!(
        !server
            .data
            .path()
            .join(BUCKET)
            .join("freshet/app/ltx")
            .exists()
    );
    assert!(l0.last().is_some_and(|(h, _)| h.max_txid.get() >= txid));

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let ours = tmp.path().join("restored-by-freshet.db");
    run_ok(&freshet_bin(), &["restore", "-o", s(&ours), &url]);
    assert_restored_equals(&expected, &ours);
    assert_eq!(digest_file(&ours).0, src.digest());

    let theirs = tmp.path().join("restored-by-litestream.db");
    run_ok(&litestream_bin(), &["restore", "-o", s(&theirs), &url]);
    assert_restored_equals(&expected, &theirs);

    // Litestream lists what we wrote, with our metadata timestamps.
    let listing = run_ok(&litestream_bin(), &["ltx", &url]);
    assert!(
        listing.contains("0000000000000001"),
        "litestream ltx:\n{listing}"
    );
}

#[test]
fn litestream_replicates_to_s3_and_freshet_restores() {
    let server = S3sFs::start();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    let mut src = Source::create(&db, 4096, 0x54, 20);
    add_padding(&src);
    let url = server.url("litestream/app");

    let mut d = Daemon::start(
        &litestream_bin(),
        &["replicate", s(&db), &url],
        &tmp.path().join("litestream.log"),
    );
    wait_first_file(&server, "litestream/app", &mut d);
    src.run(150, Duration::from_millis(5));
    wait_caught_up(&server, "litestream/app", &db, &mut d);
    let status = d.stop();
    assert!(
        status.success(),
        "litestream replicate exited with {status}; log:\n{}",
        d.log()
    );
    let l0 = server.level_headers("litestream/app", 0);
    assert!(
        l0.first().is_some_and(|(_, size)| *size > 5 * 1024 * 1024),
        "Litestream's first L0 object: {l0:?}"
    );

    let expected = tmp.path().join("expected.db");
    checkpointed_copy(&db, &expected);
    let out = tmp.path().join("restored.db");
    run_ok(&freshet_bin(), &["restore", "-o", s(&out), &url]);
    assert_restored_equals(&expected, &out);
    assert_eq!(digest_file(&out).0, src.digest());

    // Point-in-time listing reads Litestream's timestamp metadata.
    let listing = run_ok(&freshet_bin(), &["ltx", &url]);
    assert!(
        listing.contains("0000000000000001"),
        "freshet ltx:\n{listing}"
    );
}

#[test]
fn a_wrong_secret_is_reported_as_an_authentication_failure() {
    let server = S3sFs::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &freshet_bin(),
        &[
            "restore",
            "-o",
            s(&tmp.path().join("x.db")),
            &server.url("nothing"),
        ],
        "definitely-wrong-secret",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "restore with a wrong secret succeeded:\n{stderr}"
    );
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(stderr.contains("LITESTREAM_SECRET_ACCESS_KEY"), "{stderr}");
    assert!(
        !stderr.contains("definitely-wrong-secret"),
        "the secret leaked:\n{stderr}"
    );
}
