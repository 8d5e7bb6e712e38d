//! A local S3 server for the end-to-end tests: s3s-fs (which checks SigV4
//! signatures) on 127.0.0.1 with a free port and a temporary data
//! directory, started by the test and killed when it ends. A missing s3s-fs
//! fails the test (run scripts/setup.sh).

use std::fs::{self, File};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const ACCESS_KEY: &str = "e2e-access-key";
pub(crate) const SECRET_KEY: &str = "e2e-secret-key";
pub(crate) const BUCKET: &str = "backups";

/// A running s3s-fs, killed (only it) when dropped.
pub(crate) struct S3sFs {
    child: Child,
    bin: PathBuf,
    pub(crate) port: u16,
    pub(crate) data: tempfile::TempDir,
}

impl S3sFs {
    pub(crate) fn start() -> S3sFs {
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
            if let Some(child) = spawn(&bin, port, data.path()) {
                return S3sFs {
                    child,
                    bin,
                    port,
                    data,
                };
            }
        }
        panic!("s3s-fs did not start");
    }

    /// Kills the server: the endpoint refuses connections until
    /// [`S3sFs::restart`].
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same data.
    pub(crate) fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = spawn(&self.bin, self.port, self.data.path()) {
                self.child = child;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not start again on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "s3://{BUCKET}/{path}?endpoint=http://127.0.0.1:{}&region=us-east-1&forcePathStyle=true",
            self.port
        )
    }

    /// Where s3s-fs keeps level `level` of replica `path`
    /// (REPLICA_LAYOUT.md §3: `<path>/<level %04x>/`).
    pub(crate) fn level_dir(&self, path: &str, level: u8) -> PathBuf {
        self.data
            .path()
            .join(BUCKET)
            .join(path)
            .join(format!("{level:04x}"))
    }

    /// Headers of the LTX files of one level, in TXID order.
    pub(crate) fn level_headers(&self, path: &str, level: u8) -> Vec<(ltx::Header, u64)> {
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

/// Starts s3s-fs on `port` serving `data`; `None` if it exits or does not
/// listen within 20 s.
fn spawn(bin: &Path, port: u16, data: &Path) -> Option<Child> {
    let mut child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `program args` with the S3 keys in the environment (and no AWS keys or
/// CA bundle that could take precedence or upset Litestream).
pub(crate) fn command(program: &Path, args: &[&str], secret: &str) -> Command {
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
