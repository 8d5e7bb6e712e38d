//! Writing one object from a stream (S3_PROTOCOL.md §2.3–2.4): a body that
//! ends within the first part goes up with one `PutObject`; a longer one as a
//! multipart upload whose parts are read from the stream as it arrives (no
//! temporary file) and sent `concurrency` at a time, so memory stays within
//! about `(concurrency + 1) × part size`. Complete on success; on any
//! failure, a cancelled write included, the upload is aborted so no parts
//! are left behind.
//!
//! The total size is unknown up front, so the part size grows instead: it
//! doubles every [`PARTS_PER_DOUBLING`] parts, capped at S3's 5 GiB, which
//! fits more than 5 TiB (S3's object limit) into 10,000 parts from a 5 MiB
//! start. Objects below 900 parts (4.4 GiB at 5 MiB) use one size
//! throughout, which providers requiring equal parts (R2) need.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::Inner;
use super::config::{MAX_PART_SIZE, MAX_PARTS, ObjectKey};
use super::error::{ErrorKind, S3Error};
use crate::ByteStream;

/// Parts of one size before the size doubles.
pub(crate) const PARTS_PER_DOUBLING: u32 = 900;

/// Size of part `number` (1-based) for a configured part size `base`.
pub(crate) fn part_size(base: u64, number: u32) -> u64 {
    let doublings = number.saturating_sub(1) / PARTS_PER_DOUBLING;
    if doublings >= 32 {
        return MAX_PART_SIZE;
    }
    base.saturating_mul(1u64 << doublings)
        .min(MAX_PART_SIZE)
        .max(base)
}

/// Writes `body` to `key`; returns the bytes sent.
pub(crate) async fn write(
    inner: &Arc<Inner>,
    key: &ObjectKey,
    timestamp: &str,
    mut body: ByteStream,
) -> Result<u64, S3Error> {
    let base = inner.settings.part_size;
    let body_error = |e| S3Error::new("put", inner.target(key.as_str()), ErrorKind::Body(e));
    let first = read_part(&mut body, part_size(base, 1))
        .await
        .map_err(body_error)?;
    if (first.len() as u64) < base {
        let size = first.len() as u64;
        inner.put_object(key, timestamp, first).await?;
        return Ok(size);
    }
    let second = read_part(&mut body, part_size(base, 2))
        .await
        .map_err(body_error)?;
    if second.is_empty() {
        // Exactly one part's worth: no need for a multipart upload.
        let size = first.len() as u64;
        inner.put_object(key, timestamp, first).await?;
        return Ok(size);
    }
    let (upload_id, create_retried) = inner.create_upload(key, timestamp).await?;
    let mut guard = AbortOnDrop {
        inner: Some(Arc::clone(inner)),
        key: key.clone(),
        upload_id: upload_id.clone(),
    };
    let outcome = async {
        let (parts, size) = send_parts(
            inner,
            key,
            &upload_id,
            VecDeque::from([first, second]),
            body,
        )
        .await?;
        inner.complete_upload(key, &upload_id, &parts, size).await?;
        tracing::debug!(
            key = key.as_str(),
            parts = parts.len(),
            size,
            "multipart upload complete"
        );
        Ok(size)
    }
    .await;
    guard.inner = None;
    if let Err(e) = &outcome {
        tracing::debug!(key = key.as_str(), error = %e, "multipart upload failed; aborting it");
        if let Err(abort) = inner.abort_upload(key, &upload_id).await {
            tracing::warn!(key = key.as_str(), %upload_id, error = %abort, "could not abort a failed multipart upload");
        }
    }
    if create_retried {
        // Best effort, and bounded: the upload itself has already succeeded.
        if tokio::time::timeout(STRAY_CLEANUP_TIMEOUT, abort_strays(inner, key, &upload_id))
            .await
            .is_err()
        {
            tracing::debug!(
                key = key.as_str(),
                "gave up looking for stray multipart uploads"
            );
        }
    }
    outcome
}

/// Reads and uploads the parts; returns `(number, ETag)` in order and the
/// total size.
async fn send_parts(
    inner: &Arc<Inner>,
    key: &ObjectKey,
    upload_id: &str,
    mut ready: VecDeque<Bytes>,
    mut body: ByteStream,
) -> Result<(Vec<(u32, String)>, u64), S3Error> {
    let base = inner.settings.part_size;
    let concurrency = inner.settings.concurrency.max(1);
    let mut tasks: JoinSet<Result<(u32, String), S3Error>> = JoinSet::new();
    let mut done = Vec::new();
    let mut size = 0u64;
    let mut number = 0u32;
    loop {
        let part = match ready.pop_front() {
            Some(p) => p,
            None => read_part(&mut body, part_size(base, number + 1))
                .await
                .map_err(|e| S3Error::new("put", inner.target(key.as_str()), ErrorKind::Body(e)))?,
        };
        if part.is_empty() {
            break;
        }
        if number == MAX_PARTS {
            return Err(S3Error::new(
                "put",
                inner.target(key.as_str()),
                ErrorKind::Invalid(format!(
                    "the data does not fit into {MAX_PARTS} parts starting at a part size of {base} bytes; \
                     raise part-size"
                )),
            ));
        }
        while tasks.len() >= concurrency {
            collect(&mut tasks, &mut done, inner, key).await?;
        }
        number += 1;
        size += part.len() as u64;
        let (inner, key, upload_id) = (Arc::clone(inner), key.clone(), upload_id.to_owned());
        tasks.spawn(async move {
            let etag = inner.upload_part(&key, &upload_id, number, part).await?;
            Ok((number, etag))
        });
    }
    while !tasks.is_empty() {
        collect(&mut tasks, &mut done, inner, key).await?;
    }
    done.sort_by_key(|(n, _)| *n);
    Ok((done, size))
}

/// Waits for one part upload; its failure stops the upload (the remaining
/// tasks are aborted when the set is dropped).
async fn collect(
    tasks: &mut JoinSet<Result<(u32, String), S3Error>>,
    done: &mut Vec<(u32, String)>,
    inner: &Inner,
    key: &ObjectKey,
) -> Result<(), S3Error> {
    match tasks.join_next().await {
        Some(Ok(Ok(part))) => {
            done.push(part);
            Ok(())
        }
        Some(Ok(Err(e))) => Err(e),
        Some(Err(join)) => Err(S3Error::new(
            "upload part",
            inner.target(key.as_str()),
            ErrorKind::Invalid(format!("part upload task failed: {join}")),
        )),
        None => Ok(()),
    }
}

/// Fills a buffer of `size` bytes from the stream; shorter only at its end.
async fn read_part(body: &mut ByteStream, size: u64) -> std::io::Result<Bytes> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        let room = size - buf.len();
        let mut limited = (&mut buf).limit(room);
        if body.read_buf(&mut limited).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Aborts uploads of `key` other than ours: left by a
/// `CreateMultipartUpload` attempt whose answer was lost.
/// How long a completed upload may spend looking for strays.
const STRAY_CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn abort_strays(inner: &Inner, key: &ObjectKey, ours: &str) {
    match inner.list_uploads(key.as_str()).await {
        Ok(uploads) => {
            for u in uploads
                .iter()
                .filter(|u| u.key == key.as_str() && u.upload_id != ours)
            {
                if let Err(e) = inner.abort_upload(key, &u.upload_id).await {
                    tracing::warn!(key = key.as_str(), upload_id = %u.upload_id, error = %e, "could not abort a stray multipart upload");
                }
            }
        }
        Err(e) => {
            tracing::debug!(key = key.as_str(), error = %e, "could not list multipart uploads")
        }
    }
}

/// Aborts the upload if the write is dropped (cancelled) before it decided.
struct AbortOnDrop {
    inner: Option<Arc<Inner>>,
    key: ObjectKey,
    upload_id: String,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = self.key.as_str(), upload_id = %self.upload_id, "cancelled multipart upload left open: no runtime to abort it");
            return;
        };
        let key = self.key.clone();
        let upload_id = std::mem::take(&mut self.upload_id);
        runtime.spawn(async move {
            if let Err(e) = inner.abort_upload(&key, &upload_id).await {
                tracing::warn!(key = key.as_str(), %upload_id, error = %e, "could not abort a cancelled multipart upload");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::MIN_PART_SIZE;
    use super::*;

    const TIB: u64 = 1 << 40;

    #[test]
    fn part_sizes_reach_5_tib_in_10000_parts() {
        for base in [MIN_PART_SIZE, 8 << 20, 64 << 20, 1 << 30, MAX_PART_SIZE] {
            let total: u64 = (1..=MAX_PARTS).map(|n| part_size(base, n)).sum();
            assert!(total >= 5 * TIB, "base {base}: {total}");
            for n in 1..=MAX_PARTS {
                let p = part_size(base, n);
                assert!(
                    (base..=MAX_PART_SIZE).contains(&p),
                    "base {base} part {n}: {p}"
                );
                assert!(n == 1 || p >= part_size(base, n - 1), "sizes never shrink");
            }
        }
        assert_eq!(part_size(MIN_PART_SIZE, 1), MIN_PART_SIZE);
        assert_eq!(part_size(MIN_PART_SIZE, PARTS_PER_DOUBLING), MIN_PART_SIZE);
        assert_eq!(
            part_size(MIN_PART_SIZE, PARTS_PER_DOUBLING + 1),
            2 * MIN_PART_SIZE
        );
        assert_eq!(part_size(MIN_PART_SIZE, MAX_PARTS), MAX_PART_SIZE);
    }

    #[tokio::test]
    async fn parts_are_filled_from_short_reads() {
        // A reader that hands out 3 bytes at a time.
        struct Trickle(u8);
        impl tokio::io::AsyncRead for Trickle {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n = buf.remaining().min(3).min(usize::from(self.0));
                buf.put_slice(&vec![7u8; n]);
                self.0 -= n as u8;
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut body: ByteStream = Box::pin(Trickle(20));
        assert_eq!(read_part(&mut body, 8).await.unwrap().len(), 8);
        assert_eq!(read_part(&mut body, 8).await.unwrap().len(), 8);
        assert_eq!(read_part(&mut body, 8).await.unwrap().len(), 4);
        assert!(read_part(&mut body, 8).await.unwrap().is_empty());
    }
}
