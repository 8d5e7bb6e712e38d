//! Downloads as a byte stream that survives dropped connections: when the
//! body fails, stalls past the idle timeout or ends early, the rest is
//! requested again from the current offset (`Range: bytes=<pos>-…`,
//! `If-Match` on the first response's ETag so a replaced object is never
//! spliced). S3_PROTOCOL.md §2.2 describes the same resumption for
//! Litestream's restore and compaction streams.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::Inner;
use super::client::{Streaming, error_chain};
use super::config::ObjectKey;
use super::error::S3Error;
use crate::{ByteRange, ByteStream};

type Reopen = Pin<Box<dyn Future<Output = Result<Option<Streaming>, S3Error>> + Send>>;

enum State {
    /// Reading a body; the permit counts the connection until dropped.
    Body {
        body: Incoming,
        _permit: OwnedSemaphorePermit,
    },
    Reopening(Reopen),
    Done,
}

/// A ranged object body being read, resumable.
struct RangeReader {
    inner: Arc<Inner>,
    key: ObjectKey,
    etag: Option<String>,
    /// Absolute offset of the next byte handed out.
    pos: u64,
    /// Exclusive end of the range, once known.
    end: Option<u64>,
    /// Bytes still to drop because the server ignored `Range` (200).
    skip: u64,
    chunk: Bytes,
    state: State,
    /// Consecutive failures without a byte of progress.
    stalls: u32,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

/// Opens `range` of an object for reading.
pub(crate) async fn open(
    inner: Arc<Inner>,
    key: ObjectKey,
    range: ByteRange,
) -> Result<ByteStream, S3Error> {
    if range.len == Some(0) {
        // Nothing to read, but a missing object must still be reported.
        inner.head_object(&key).await?;
        return Ok(Box::pin(tokio::io::empty()));
    }
    let end_inclusive = range.len.map(|len| range.offset.saturating_add(len - 1));
    let Some(first) = inner
        .get_object(&key, range.offset, end_inclusive, None)
        .await?
    else {
        // The range starts at or past the end: nothing there, like a
        // file read past its end.
        return Ok(Box::pin(tokio::io::empty()));
    };
    let etag = first
        .response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let idle_timeout = inner.settings.read_idle_timeout;
    let mut reader = RangeReader {
        inner,
        key,
        etag,
        pos: range.offset,
        end: end_inclusive.map(|e| e + 1),
        skip: 0,
        chunk: Bytes::new(),
        state: State::Done,
        stalls: 0,
        idle_timeout,
        idle: Box::pin(tokio::time::sleep(idle_timeout)),
    };
    reader.start_body(first);
    Ok(Box::pin(reader))
}

impl RangeReader {
    /// Takes a (re)opened response: learns the range's end, whether the
    /// server honoured `Range`, and starts reading its body.
    fn start_body(&mut self, s: Streaming) {
        let (parts, body) = s.response.into_parts();
        let content_length = super::ops::content_length(&parts.headers);
        if parts.status == StatusCode::PARTIAL_CONTENT {
            self.skip = 0;
            if let Some(range_end) = parts
                .headers
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_end)
            {
                self.end = Some(self.end.map_or(range_end, |e| e.min(range_end)));
            }
        } else {
            // The whole object from byte 0.
            self.skip = self.pos;
            if let Some(total) = content_length {
                self.end = Some(self.end.map_or(total, |e| e.min(total)));
            }
        }
        self.reset_idle();
        self.state = State::Body {
            body,
            _permit: s.permit,
        };
    }

    fn reset_idle(&mut self) {
        let deadline = Instant::now() + self.idle_timeout;
        self.idle.as_mut().reset(deadline);
    }

    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.pos >= end)
    }

    /// After a failed or short body: ask again for the rest, or give up.
    fn reopen(&mut self, why: String) -> Result<(), io::Error> {
        self.stalls += 1;
        let policy = *self.inner.transport.retry_policy();
        if self.stalls >= policy.max_attempts {
            return Err(io::Error::other(format!(
                "reading {}: {why} (gave up after {} attempts without progress)",
                self.inner.target(self.key.as_str()),
                self.stalls
            )));
        }
        tracing::debug!(key = self.key.as_str(), pos = self.pos, %why, "S3 download interrupted; resuming");
        let delay = self.inner.transport.backoff(self.stalls);
        let inner = Arc::clone(&self.inner);
        let key = self.key.clone();
        let etag = self.etag.clone();
        let (pos, end) = (self.pos, self.end);
        self.state = State::Reopening(Box::pin(async move {
            tokio::time::sleep(delay).await;
            inner
                .get_object(&key, pos, end.map(|e| e - 1), etag.as_deref())
                .await
        }));
        Ok(())
    }
}

/// The exclusive end from `Content-Range: bytes <first>-<last>/<total>`.
fn content_range_end(v: &str) -> Option<u64> {
    let range = v.strip_prefix("bytes ")?.split('/').next()?;
    let (_, last) = range.split_once('-')?;
    last.trim().parse::<u64>().ok()?.checked_add(1)
}

impl AsyncRead for RangeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(out.remaining());
                out.put_slice(&this.chunk.split_to(n));
                this.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.done() {
                // The whole range was handed out; whatever else the server
                // sends is not ours.
                this.state = State::Done;
                return Poll::Ready(Ok(()));
            }
            match &mut this.state {
                State::Done => return Poll::Ready(Ok(())),
                State::Reopening(fut) => match ready!(fut.as_mut().poll(cx)) {
                    Ok(Some(s)) => this.start_body(s),
                    Ok(None) if this.end.is_none_or(|end| this.pos >= end) => {
                        this.state = State::Done
                    }
                    Ok(None) => {
                        this.state = State::Done;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "reading {}: the object ended at byte {} of {}",
                                this.inner.target(this.key.as_str()),
                                this.pos,
                                this.end.unwrap_or_default()
                            ),
                        )));
                    }
                    Err(e) => {
                        this.state = State::Done;
                        let kind = if e.is_missing_object() {
                            io::ErrorKind::NotFound
                        } else {
                            io::ErrorKind::Other
                        };
                        return Poll::Ready(Err(io::Error::new(kind, e.to_string())));
                    }
                },
                State::Body { body, .. } => match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue; // trailers
                        };
                        this.reset_idle();
                        if this.skip > 0 {
                            let drop = this.skip.min(data.len() as u64) as usize;
                            let _ = data.split_to(drop);
                            this.skip -= drop as u64;
                        }
                        if let Some(end) = this.end {
                            let left = end.saturating_sub(this.pos);
                            if (data.len() as u64) > left {
                                data.truncate(left as usize);
                            }
                        }
                        if !data.is_empty() {
                            this.stalls = 0;
                            this.chunk = data;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        let why = error_chain(&e);
                        this.reopen(why)?;
                    }
                    Poll::Ready(None) => {
                        if this.end.is_some() && !this.done() {
                            let why = format!("connection closed at byte {}", this.pos);
                            this.reopen(why)?;
                        } else {
                            this.state = State::Done;
                        }
                    }
                    Poll::Pending => {
                        ready!(this.idle.as_mut().poll(cx));
                        let why = format!("no data for {:?}", this.idle_timeout);
                        this.reopen(why)?;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(content_range_end("bytes 0-9/100"), Some(10));
        assert_eq!(content_range_end("bytes 90-99/100"), Some(100));
        assert_eq!(content_range_end("bytes 0-9/*"), Some(10));
        assert_eq!(content_range_end("bytes */100"), None);
        assert_eq!(content_range_end("items 0-9/100"), None);
    }
}
