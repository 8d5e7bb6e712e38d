//! A small HTTP proxy in front of s3s-fs that, for the requests a rule
//! picks, answers 500 `InternalError` or 503 `SlowDown`, drops the
//! connection before or after forwarding, cuts or stalls a response body
//! halfway, or stalls the response past the client's timeout. It forwards
//! requests unchanged (the `Host` header too), so signatures still verify.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// 500 with an `InternalError` body, not forwarded.
    InternalError,
    /// 503 with a `SlowDown` body, not forwarded.
    SlowDown,
    /// Close the connection without forwarding.
    ResetBefore,
    /// Forward, then close the connection instead of answering.
    ResetAfter,
    /// Forward; send half of the response body, then break the connection.
    TruncateBody,
    /// Forward; send half of the response body, then nothing more.
    StallBody,
    /// Wait this long, then close the connection without forwarding.
    Stall(Duration),
    /// Answer with this status and S3 error code, not forwarded.
    Reject(u16, &'static str),
}

/// A request as the rule sees it.
pub(super) struct Seen<'a> {
    pub(super) method: &'a Method,
    pub(super) path_and_query: &'a str,
    /// 0-based number of the request at this proxy.
    pub(super) n: u64,
    /// The access key id the request was signed with.
    pub(super) access_key_id: Option<&'a str>,
}

type Rule = Box<dyn Fn(&Seen<'_>) -> Option<Fault> + Send + Sync>;

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) requests: AtomicU64,
    pub(super) internal_error: AtomicU64,
    pub(super) slow_down: AtomicU64,
    pub(super) reset_before: AtomicU64,
    pub(super) reset_after: AtomicU64,
    pub(super) truncated: AtomicU64,
    pub(super) stalled_body: AtomicU64,
    pub(super) stalled: AtomicU64,
}

impl Stats {
    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn injected(&self) -> u64 {
        [
            &self.internal_error,
            &self.slow_down,
            &self.reset_before,
            &self.reset_after,
            &self.truncated,
            &self.stalled_body,
            &self.stalled,
        ]
        .into_iter()
        .map(Stats::get)
        .sum()
    }
}

struct Shared {
    upstream: u16,
    rule: Rule,
    stats: Arc<Stats>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The running proxy; stops (with its connections) when dropped.
pub(super) struct FaultProxy {
    pub(super) port: u16,
    pub(super) stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Proxies to `127.0.0.1:upstream`, faulting where `rule` says.
    pub(super) async fn start(
        upstream: u16,
        rule: impl Fn(&Seen<'_>) -> Option<Fault> + Send + Sync + 'static,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            upstream,
            rule: Box::new(rule),
            stats: Arc::clone(&stats),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        });
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        FaultProxy { port, stats, task }
    }
}

fn s3_error(status: u16, code: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
    );
    let mut r = Response::new(ProxyBody::full(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Serves one request. Returning an error makes hyper drop the connection
/// without answering: that is how resets are injected.
async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, io::Error> {
    let n = shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let access_key_id = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .map(str::to_owned);
    let fault = (shared.rule)(&Seen {
        method: req.method(),
        path_and_query: &path_and_query,
        n,
        access_key_id: access_key_id.as_deref(),
    });
    let count = |c: &AtomicU64| {
        c.fetch_add(1, Ordering::Relaxed);
    };
    let st = &shared.stats;
    let (parts, body) = req.into_parts();
    // Read the request first, as S3 does before answering an error.
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    match fault {
        Some(Fault::InternalError) => {
            count(&st.internal_error);
            return Ok(s3_error(500, "InternalError"));
        }
        Some(Fault::SlowDown) => {
            count(&st.slow_down);
            return Ok(s3_error(503, "SlowDown"));
        }
        Some(Fault::Reject(status, code)) => return Ok(s3_error(status, code)),
        Some(Fault::ResetBefore) => {
            count(&st.reset_before);
            return Err(io::Error::other("injected reset"));
        }
        Some(Fault::Stall(d)) => {
            count(&st.stalled);
            tokio::time::sleep(d).await;
            return Err(io::Error::other("injected stall"));
        }
        _ => {}
    }
    let mut up = Request::builder().method(parts.method.clone()).uri(format!(
        "http://127.0.0.1:{}{path_and_query}",
        shared.upstream
    ));
    for (name, value) in &parts.headers {
        up = up.header(name, value);
    }
    let up = up.body(Full::new(body)).map_err(io::Error::other)?;
    let resp = shared.client.request(up).await.map_err(io::Error::other)?;
    let (rparts, rbody) = resp.into_parts();
    let rbody = rbody.collect().await.map_err(io::Error::other)?.to_bytes();
    let body = match fault {
        Some(Fault::ResetAfter) => {
            count(&st.reset_after);
            return Err(io::Error::other("injected reset after forwarding"));
        }
        Some(Fault::TruncateBody) if rbody.len() > 1 && parts.method == Method::GET => {
            count(&st.truncated);
            ProxyBody::cut(rbody.slice(..rbody.len() / 2), false)
        }
        Some(Fault::StallBody) if rbody.len() > 1 && parts.method == Method::GET => {
            count(&st.stalled_body);
            ProxyBody::cut(rbody.slice(..rbody.len() / 2), true)
        }
        _ => ProxyBody::full(rbody),
    };
    let mut out = Response::builder().status(rparts.status);
    for (name, value) in &rparts.headers {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
            out = out.header(name, value);
        }
    }
    out.body(body).map_err(io::Error::other)
}

/// A response body: whole, or cut short (then an error, or silence).
pub(super) struct ProxyBody {
    data: Option<Bytes>,
    cut: bool,
    stall: bool,
}

impl ProxyBody {
    fn full(data: Bytes) -> ProxyBody {
        ProxyBody {
            data: Some(data),
            cut: false,
            stall: false,
        }
    }

    fn cut(data: Bytes, stall: bool) -> ProxyBody {
        ProxyBody {
            data: Some(data),
            cut: true,
            stall,
        }
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(d) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if this.cut {
            if this.stall {
                return Poll::Pending;
            }
            this.cut = false;
            return Poll::Ready(Some(Err(io::Error::other("injected: body cut short"))));
        }
        Poll::Ready(None)
    }
}
