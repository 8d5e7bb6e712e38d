//! A [`ReplicaClient`] that counts what passes through it
//! (`litestream_replica_operation_*`, CLI_CONFIG.md §6), so no backend
//! needs code of its own for metrics. Operations map to the HTTP method an
//! object store would use: `list` → LIST, `open` → GET, `write` → PUT,
//! `delete`/`delete_all` → DELETE.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use backends::{ByteRange, ByteStream, FileId, FileInfo, ReplicaClient};
use ltx::TxId;
use tokio::io::{AsyncRead, ReadBuf};

use super::registry::{Counter, CounterVec, Histogram};

/// The operation label values.
const OPS: [&str; 4] = ["PUT", "GET", "DELETE", "LIST"];

/// The series of one operation of one replica type.
#[derive(Debug, Clone)]
struct Op {
    name: &'static str,
    total: Arc<Counter>,
    /// Only operations that move file contents (PUT, GET) count bytes.
    bytes: Option<Arc<Counter>>,
    duration: Arc<Histogram>,
}

/// The replica-operation series of one replica type.
#[derive(Debug, Clone)]
pub struct ReplicaOps {
    kind: &'static str,
    ops: Vec<Op>,
    errors: CounterVec,
}

impl ReplicaOps {
    pub(crate) fn new(m: &super::Metrics, kind: &'static str) -> ReplicaOps {
        let f = &m.replica;
        let ops = OPS
            .iter()
            .map(|&name| Op {
                name,
                total: f.total.with(&[kind, name]),
                bytes: matches!(name, "PUT" | "GET").then(|| f.bytes.with(&[kind, name])),
                duration: f.duration.with(&[kind, name]),
            })
            .collect();
        ReplicaOps {
            kind,
            ops,
            errors: f.errors.clone(),
        }
    }

    fn op(&self, name: &str) -> Option<&Op> {
        self.ops.iter().find(|o| o.name == name)
    }

    /// Counts one finished operation.
    fn record<T>(&self, name: &str, started: Instant, r: &backends::Result<T>) {
        let Some(op) = self.op(name) else { return };
        op.total.inc();
        op.duration.observe(started.elapsed().as_secs_f64());
        if let Err(e) = r {
            self.errors.with(&[self.kind, name, &code(e)]).inc();
        }
    }
}

/// A short, stable code for an error (the `code` label): the kind of the
/// failure, never its message (which holds paths and keys).
fn code(e: &backends::Error) -> String {
    if e.is_not_found() {
        return "NotFound".to_owned();
    }
    match e {
        backends::Error::Io { source, .. } | backends::Error::Body { source, .. } => {
            format!("{:?}", source.kind())
        }
        backends::Error::Config(_) => "Config".to_owned(),
        _ => "Other".to_owned(),
    }
}

/// Wraps a client and counts its operations.
#[derive(Debug)]
pub struct MeteredClient {
    inner: Arc<dyn ReplicaClient>,
    ops: ReplicaOps,
}

impl MeteredClient {
    /// `inner`, counted into `ops`.
    pub fn new(inner: Arc<dyn ReplicaClient>, ops: ReplicaOps) -> MeteredClient {
        MeteredClient { inner, ops }
    }
}

#[async_trait]
impl ReplicaClient for MeteredClient {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn list(&self, level: u8, seek: TxId) -> backends::Result<Vec<FileInfo>> {
        let started = Instant::now();
        let r = self.inner.list(level, seek).await;
        self.ops.record("LIST", started, &r);
        r
    }

    async fn list_with_exact_times(
        &self,
        level: u8,
        seek: TxId,
    ) -> backends::Result<Vec<FileInfo>> {
        let started = Instant::now();
        let r = self.inner.list_with_exact_times(level, seek).await;
        self.ops.record("LIST", started, &r);
        r
    }

    async fn open(&self, id: FileId, range: ByteRange) -> backends::Result<ByteStream> {
        let started = Instant::now();
        let r = self.inner.open(id, range).await;
        self.ops.record("GET", started, &r);
        let bytes = self.ops.op("GET").and_then(|o| o.bytes.clone());
        match (r, bytes) {
            (Ok(stream), Some(bytes)) => Ok(Box::pin(Counting {
                inner: stream,
                bytes,
            })),
            (r, _) => r,
        }
    }

    async fn write(
        &self,
        id: FileId,
        timestamp_ms: i64,
        body: ByteStream,
    ) -> backends::Result<FileInfo> {
        let started = Instant::now();
        let r = self.inner.write(id, timestamp_ms, body).await;
        self.ops.record("PUT", started, &r);
        if let (Ok(info), Some(bytes)) = (&r, self.ops.op("PUT").and_then(|o| o.bytes.as_ref())) {
            bytes.inc_by(info.size as f64);
        }
        r
    }

    async fn delete(&self, ids: &[FileId]) -> backends::Result<()> {
        let started = Instant::now();
        let r = self.inner.delete(ids).await;
        self.ops.record("DELETE", started, &r);
        r
    }

    async fn delete_all(&self) -> backends::Result<()> {
        let started = Instant::now();
        let r = self.inner.delete_all().await;
        self.ops.record("DELETE", started, &r);
        r
    }
}

/// A read stream that adds the bytes read to a counter.
struct Counting {
    inner: ByteStream,
    bytes: Arc<Counter>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.bytes.inc_by(n as f64);
        }
        r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use backends::file::FileReplica;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn counts_operations_bytes_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::default();
        let inner: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(dir.path()));
        let c = MeteredClient::new(inner, m.replica_ops("file"));
        let id = FileId::new(0, TxId::new(1), TxId::new(1));
        let body: ByteStream = Box::pin(std::io::Cursor::new(vec![7u8; 100]));
        c.write(id, 0, body).await.unwrap();
        let mut s = c.open(id, ByteRange::ALL).await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(c.list(0, TxId::ZERO).await.unwrap().len(), 1);
        let missing = FileId::new(0, TxId::new(2), TxId::new(2));
        assert!(c.open(missing, ByteRange::ALL).await.is_err());
        c.delete(&[id]).await.unwrap();

        let text = m.render();
        for want in [
            "litestream_replica_operation_total{replica_type=\"file\",operation=\"PUT\"} 1\n",
            "litestream_replica_operation_total{replica_type=\"file\",operation=\"GET\"} 2\n",
            "litestream_replica_operation_total{replica_type=\"file\",operation=\"LIST\"} 1\n",
            "litestream_replica_operation_total{replica_type=\"file\",operation=\"DELETE\"} 1\n",
            "litestream_replica_operation_bytes{replica_type=\"file\",operation=\"PUT\"} 100\n",
            "litestream_replica_operation_bytes{replica_type=\"file\",operation=\"GET\"} 100\n",
            "litestream_replica_operation_errors_total{replica_type=\"file\",operation=\"GET\",code=\"NotFound\"} 1\n",
            "litestream_replica_operation_duration_seconds_count{replica_type=\"file\",operation=\"PUT\"} 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains(
            "litestream_replica_operation_bytes{replica_type=\"file\",operation=\"LIST\"}"
        ));
    }
}
