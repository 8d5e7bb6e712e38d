//! The S3 backend against real servers, started by the tests on 127.0.0.1
//! with a free port and stopped when they end (also on failure): s3s-fs,
//! which checks SigV4 signatures, and moto, a differently built S3
//! emulator; the same suite runs against both (`s3s_fs::…`, `moto::…`),
//! plus a fault-injecting proxy in front of each. Fetched credentials
//! (`creds`) run against moto's STS and S3 and against fake metadata and
//! container endpoints (`endpoint`). A missing server fails the tests
//! rather than skipping them.

mod creds;
mod endpoint;
mod faults;
mod ops;
mod proxy;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{RetryPolicy, S3Replica, S3Settings, SecretString};
use crate::ByteStream;

pub(super) const ACCESS_KEY: &str = "freshet-test-access-key";
pub(super) const SECRET_KEY: &str = "freshet-test-secret-key";
pub(super) const BUCKET: &str = "bucket";

/// Which S3 implementation a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `s3s-fs` (Rust; objects as files; verifies signatures).
    S3sFs,
    /// `moto_server` (Python; in memory; accepts any credentials).
    Moto,
}

/// A running S3 server; killed (only its process) when dropped.
pub(super) struct Server {
    pub(super) kind: Kind,
    child: Child,
    pub(super) port: u16,
    data: tempfile::TempDir,
    _log: tempfile::TempDir,
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

impl Server {
    /// Starts a server of `kind` with [`BUCKET`] created.
    pub(super) fn start(kind: Kind) -> Server {
        let (name, install) = match kind {
            Kind::S3sFs => (
                "s3s-fs",
                "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            ),
            Kind::Moto => ("moto_server", "python3 -m pip install 'moto[server]'"),
        };
        let bin = find_binary(name).unwrap_or_else(|| {
            panic!("{name} is not installed; run scripts/setup.sh (it runs `{install}`)")
        });
        let data = tempfile::tempdir().expect("data dir");
        let log = tempfile::tempdir().expect("log dir");
        let log_path = log.path().join("server.log");
        for _ in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log_path).expect("log file");
            let mut cmd = Command::new(&bin);
            match kind {
                Kind::S3sFs => cmd
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(data.path()),
                Kind::Moto => cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {name}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another
                }
                if TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok() {
                    let server = Server {
                        kind,
                        child,
                        port,
                        data,
                        _log: log,
                    };
                    server.create_bucket(BUCKET);
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("{name} did not start; its log:\n{text}");
    }

    /// Creates a bucket: a directory for s3s-fs, `CreateBucket` for moto
    /// (which does not check the signature, so the request is plain).
    pub(super) fn create_bucket(&self, name: &str) {
        match self.kind {
            Kind::S3sFs => std::fs::create_dir(self.data.path().join(name)).expect("bucket dir"),
            Kind::Moto => {
                let mut s =
                    TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect to moto");
                write!(
                    s,
                    "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.port
                )
                .expect("send CreateBucket");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                assert!(
                    answer.starts_with("HTTP/1.1 200"),
                    "CreateBucket {name}: {answer}"
                );
            }
        }
    }

    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings for `path` in [`BUCKET`], retrying quickly.
    pub(super) fn settings(&self, path: &str) -> S3Settings {
        settings_for(&self.endpoint(), BUCKET, path)
    }

    /// Multipart uploads still open in [`BUCKET`]: for moto from
    /// `ListMultipartUploads`; s3s-fs does not implement that call, so from
    /// the upload state it keeps in its data directory (`.upload-*`,
    /// `.upload_id-*` files).
    pub(super) async fn open_uploads(&self) -> Vec<String> {
        match self.kind {
            Kind::Moto => {
                let r = replica(self.settings(""));
                r.inner
                    .list_uploads("")
                    .await
                    .expect("ListMultipartUploads")
                    .into_iter()
                    .map(|u| format!("{} {}", u.key, u.upload_id))
                    .collect()
            }
            Kind::S3sFs => {
                let mut out = Vec::new();
                let mut stack = vec![self.data.path().to_path_buf()];
                while let Some(dir) = stack.pop() {
                    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if entry.path().is_dir() {
                            stack.push(entry.path());
                        } else if name.contains(".upload") {
                            out.push(name);
                        }
                    }
                }
                out
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs each named `async fn(&Server)` of the enclosing module once against
/// s3s-fs (`s3s_fs::<name>`) and once against moto (`moto::<name>`).
macro_rules! on_every_server {
    ($($name:ident),* $(,)?) => {
        mod s3s_fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = super::Server::start(super::Kind::S3sFs);
                    super::$name(&server).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = super::Server::start(super::Kind::Moto);
                    super::$name(&server).await;
                }
            )*
        }
    };
}
use on_every_server;

pub(super) fn settings_for(endpoint: &str, bucket: &str, path: &str) -> S3Settings {
    let mut s = S3Settings::new(bucket, path);
    s.endpoint = Some(endpoint.to_owned());
    s.region = Some("us-east-1".to_owned());
    s.force_path_style = true;
    s.access_key_id = Some(ACCESS_KEY.to_owned());
    s.secret_access_key = Some(SecretString::new(SECRET_KEY));
    s.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
    };
    s
}

pub(super) fn replica(s: S3Settings) -> S3Replica {
    S3Replica::new(s).expect("S3 client")
}

/// Deterministic pseudo-random bytes: byte `i` of stream `seed`.
pub(super) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut g = Generator::new(seed, len as u64, usize::MAX);
    let mut out = vec![0; len];
    g.fill(&mut out);
    out
}

/// An `AsyncRead` of `len` pseudo-random bytes, made on the fly (nothing
/// held in memory) and handed out `chunk` bytes at most per read, like a
/// stream arriving from elsewhere.
pub(super) struct Generator {
    state: u64,
    /// The current 8 random bytes and how many were handed out.
    word: [u8; 8],
    used: usize,
    left: u64,
    chunk: usize,
}

impl Generator {
    pub(super) fn new(seed: u64, len: u64, chunk: usize) -> Generator {
        Generator {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            word: [0; 8],
            used: 8,
            left: len,
            chunk,
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            if self.used == 8 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
        self.left -= out.len() as u64;
    }

    pub(super) fn stream(self) -> ByteStream {
        Box::pin(self)
    }
}

impl AsyncRead for Generator {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let n = (buf.remaining() as u64)
            .min(this.left)
            .min(this.chunk as u64) as usize;
        let dst = buf.initialize_unfilled_to(n);
        this.fill(dst);
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

pub(super) async fn read_all(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read object");
    out
}

pub(super) fn bytes_stream(data: Vec<u8>) -> ByteStream {
    Box::pin(std::io::Cursor::new(data))
}

/// Resident memory of this process, from /proc.
pub(super) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
