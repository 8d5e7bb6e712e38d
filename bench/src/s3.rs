//! A local S3 server (s3s-fs on 127.0.0.1, a free port) and a counting
//! HTTP proxy in front of it, so that every request a replicator sends to
//! storage is counted with its bytes while the harness reads the server's
//! data directory directly (uncounted).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Bucket every replica goes to (a sub-directory of the data directory).
pub(crate) const BUCKET: &str = "bench";
/// Credentials s3s-fs checks (SigV4).
pub(crate) const ACCESS_KEY: &str = "freshet-bench-access";
/// Secret of [`ACCESS_KEY`].
pub(crate) const SECRET_KEY: &str = "freshet-bench-secret-key";

/// A running s3s-fs process; stopped (by PID) when dropped.
pub(crate) struct S3Server {
    child: Child,
    /// Port it listens on.
    pub(crate) port: u16,
    /// Its data directory: `<data>/<bucket>/<key>` is object `key`.
    pub(crate) data: PathBuf,
}

/// Finds the s3s-fs binary: the flag, PATH, then ~/.cargo/bin.
pub(crate) fn find_s3s_fs(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .context(
            "s3s-fs is not installed; run scripts/setup.sh (it runs \
             `cargo install s3s-fs --version 0.14.1 --features binary --locked`) \
             or pass --s3s-fs PATH",
        )
}

impl S3Server {
    /// Starts s3s-fs on a free port with `data` as its data directory.
    pub(crate) fn start(bin: &Path, data: &Path, log: &Path) -> Result<S3Server> {
        std::fs::create_dir_all(data.join(BUCKET))
            .with_context(|| format!("create {}", data.display()))?;
        for _ in 0..5 {
            let port = free_port()?;
            let out = std::fs::File::create(log)?;
            let mut child = Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(data)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .process_group(0)
                .spawn()
                .with_context(|| format!("start {}", bin.display()))?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    crate::measure::track(child.id());
                    return Ok(S3Server {
                        child,
                        port,
                        data: data.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        bail!("s3s-fs did not start listening (log: {})", log.display())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        crate::measure::untrack(self.child.id());
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Request and byte counters of the proxy.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot of the proxy's counters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct Traffic {
    /// HTTP requests sent to storage.
    pub(crate) requests: u64,
    /// Bytes sent to storage (request heads and bodies).
    pub(crate) bytes_up: u64,
    /// Bytes received from storage.
    pub(crate) bytes_down: u64,
    /// Requests per kind (`PUT`, `GET`, `LIST`, `DELETE`, `POST`, ...).
    pub(crate) by_kind: BTreeMap<String, u64>,
}

impl Traffic {
    /// `self - earlier`, counter by counter.
    pub(crate) fn since(&self, earlier: &Traffic) -> Traffic {
        let mut by_kind = self.by_kind.clone();
        for (k, v) in &earlier.by_kind {
            if let Some(x) = by_kind.get_mut(k) {
                *x = x.saturating_sub(*v);
            }
        }
        by_kind.retain(|_, v| *v > 0);
        Traffic {
            requests: self.requests.saturating_sub(earlier.requests),
            bytes_up: self.bytes_up.saturating_sub(earlier.bytes_up),
            bytes_down: self.bytes_down.saturating_sub(earlier.bytes_down),
            by_kind,
        }
    }
}

/// An HTTP/1.1 proxy that forwards bytes unchanged and counts requests by
/// parsing only the request framing (head, then a Content-Length or chunked
/// body); responses are copied as they come.
pub(crate) struct CountingProxy {
    /// Port the replicators connect to.
    pub(crate) port: u16,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    /// Listens on a free port and forwards to `127.0.0.1:upstream`.
    pub(crate) fn start(upstream: u16) -> Result<CountingProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the proxy")?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = conn else { continue };
                    let counters = Arc::clone(&counters);
                    std::thread::spawn(move || {
                        let _ = serve(client, upstream, &counters);
                    });
                }
            });
        }
        Ok(CountingProxy {
            port,
            counters,
            stop,
        })
    }

    /// The counters now.
    pub(crate) fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.counters.requests.load(Ordering::SeqCst),
            bytes_up: self.counters.bytes_up.load(Ordering::SeqCst),
            bytes_down: self.counters.bytes_down.load(Ordering::SeqCst),
            by_kind: self
                .counters
                .by_method
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn serve(client: TcpStream, upstream: u16, counters: &Counters) -> Result<()> {
    let server = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut server_r, mut client_w) = (server.try_clone()?, client.try_clone()?);
    std::thread::scope(|s| {
        // Responses: copied as they come, until the server closes.
        s.spawn(|| {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = server_r.read(&mut buf) {
                if n == 0 || client_w.write_all(&buf[..n]).is_err() {
                    break;
                }
                counters.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = client_w.shutdown(Shutdown::Write);
        });
        // A broken connection ends the exchange like a close does.
        let _ = forward_requests(&client, &server, counters);
        let _ = server.shutdown(Shutdown::Write);
    });
    Ok(())
}

/// Copies requests from `client` to `server`, one at a time, counting them.
fn forward_requests(client: &TcpStream, server: &TcpStream, counters: &Counters) -> Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, client);
    let mut w = server;
    let mut line = String::new();
    loop {
        // Head: request line and headers up to the empty line.
        let mut head = Vec::new();
        let mut content_length = 0u64;
        let mut chunked = false;
        let mut first = true;
        let mut kind = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(line.as_bytes());
            let l = line.trim_end();
            if first {
                first = false;
                kind = request_kind(l);
                continue;
            }
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = counters.by_method.lock() {
            *m.entry(kind).or_default() += 1;
        }
        w.write_all(&head)?;
        let mut sent = head.len() as u64;
        if chunked {
            sent += copy_chunked(&mut r, &mut w)?;
        } else {
            sent += std::io::copy(&mut (&mut r).take(content_length), &mut w)?;
        }
        counters.bytes_up.fetch_add(sent, Ordering::Relaxed);
    }
}

/// A chunked body, trailers included; returns the bytes copied.
fn copy_chunked(r: &mut impl BufRead, w: &mut impl Write) -> Result<u64> {
    let mut line = String::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        w.write_all(line.as_bytes())?;
        sent += line.len() as u64;
        let size_hex = line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            // Trailers up to the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    return Ok(sent);
                }
                w.write_all(line.as_bytes())?;
                sent += line.len() as u64;
                if line.trim().is_empty() {
                    return Ok(sent);
                }
            }
        }
        // Data plus its CRLF.
        sent += std::io::copy(&mut r.take(size + 2), w)?;
    }
}

/// `PUT`, `GET`, `LIST` (a GET with `list-type` or on a bucket), `DELETE`,
/// `HEAD`, `POST` (multipart create/complete, DeleteObjects).
fn request_kind(request_line: &str) -> String {
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("?").to_owned();
    let target = parts.next().unwrap_or("");
    if method == "GET" && (target.contains("list-type") || target.contains("?prefix")) {
        return "LIST".to_owned();
    }
    if method == "PUT" && target.contains("partNumber=") {
        return "PUT part".to_owned();
    }
    method
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kinds() {
        assert_eq!(request_kind("GET /b?list-type=2&prefix=x HTTP/1.1"), "LIST");
        assert_eq!(request_kind("PUT /b/k HTTP/1.1"), "PUT");
        assert_eq!(
            request_kind("PUT /b/k?partNumber=1&uploadId=x HTTP/1.1"),
            "PUT part"
        );
        assert_eq!(request_kind("GET /b/k HTTP/1.1"), "GET");
    }

    #[test]
    fn chunked_bodies_are_copied_whole() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut r = BufReader::new(&body[..]);
        let mut out = Vec::new();
        let n = copy_chunked(&mut r, &mut out).ok();
        assert_eq!(out, &body[..body.len() - 4]);
        assert_eq!(n, Some(out.len() as u64));
    }
}
