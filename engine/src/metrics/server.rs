//! The HTTP listener of `addr` (CLI_CONFIG.md §3.2): `GET /metrics` returns
//! the exposition text, every other path a 404 naming `/metrics`. Started
//! after the databases (§2.1 start-up order), stopped with the daemon.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{CONTENT_TYPE, Metrics};

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `addr` is not `host:port`.
    #[error("addr {addr:?}: {reason}")]
    Addr {
        /// The configured value.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Binding failed (a port in use, a host that does not resolve).
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The configured value.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Splits `host:port` (`[v6]:port` too); an empty host means every
/// interface, a port is required.
pub fn parse_addr(addr: &str) -> Result<(String, u16), ServerError> {
    let bad = |reason| ServerError::Addr {
        addr: addr.to_owned(),
        reason,
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("no port; write host:port, or :port for all interfaces"))?;
    if port.is_empty() {
        return Err(bad("no port; write host:port, or :port for all interfaces"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6,
        None if host.contains(':') => {
            return Err(bad("write an IPv6 host in brackets: [::1]:port"));
        }
        None => host,
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_owned(), port))
}

/// A running listener.
#[derive(Debug)]
pub struct MetricsServer {
    local: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` until [`stop`](Self::stop). Must
    /// run inside a tokio runtime.
    pub async fn start(addr: &str, metrics: Arc<Metrics>) -> Result<MetricsServer, ServerError> {
        let (host, port) = parse_addr(addr)?;
        let bind_err = |source| ServerError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept(listener, metrics, stop_rx));
        Ok(MetricsServer { local, stop, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting connections; a scrape in progress finishes.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.wait_for(|&s| s) => return,
        };
        let stream = match conn {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather
                // than spin, the listener itself stays valid.
                tracing::warn!(error = %e, "metrics server: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let m = m.clone();
                async move { Ok::<_, Infallible>(respond(&req, &m)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics server: connection ended with an error");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status, content_type, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = header::HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: metrics are served at /metrics\n".to_owned(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed: use GET /metrics\n".to_owned(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    reply(StatusCode::OK, CONTENT_TYPE, metrics.render())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn addresses() {
        assert_eq!(parse_addr(":9090").unwrap(), ("0.0.0.0".into(), 9090));
        assert_eq!(parse_addr("127.0.0.1:1").unwrap(), ("127.0.0.1".into(), 1));
        assert_eq!(parse_addr("[::1]:80").unwrap(), ("::1".into(), 80));
        assert_eq!(
            parse_addr("localhost:80").unwrap(),
            ("localhost".into(), 80)
        );
        for bad in ["localhost", "host:", "host:99999", "host:http", "::1:80"] {
            let e = parse_addr(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("addr {bad:?}: ")), "{e}");
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_404_elsewhere_and_refuses_a_busy_port() {
        let m = Metrics::new();
        m.registry().counter("test_total", "t").inc();
        let server = MetricsServer::start("127.0.0.1:0", m.clone())
            .await
            .unwrap();
        let addr = server.local_addr();

        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("content-type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.contains("\r\n\r\n# HELP "), "{ok}");
        assert!(ok.contains("\ntest_total 1\n"), "{ok}");
        assert!(ok.contains("\nprocess_open_fds "), "{ok}");

        let missing = get(addr, "/").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        assert!(missing.ends_with("\r\n\r\nnot found: metrics are served at /metrics\n"));

        let busy = MetricsServer::start(&addr.to_string(), m)
            .await
            .unwrap_err();
        let msg = busy.to_string();
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("in use"),
            "{msg}"
        );

        server.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
