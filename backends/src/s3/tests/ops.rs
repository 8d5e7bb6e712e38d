//! Every operation against s3s-fs, which checks SigV4 signatures.

use std::time::{Duration, SystemTime};

use ltx::TxId;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::*;
use crate::s3::config::{MIN_PART_SIZE, ObjectKey};
use crate::{ByteRange, Error, FileId, ReplicaClient};

fn id(level: u8, min: u64, max: u64) -> FileId {
    FileId::new(level, TxId::new(min), TxId::new(max))
}

const TS: i64 = 1_700_000_000_123;

async fn every_operation_round_trips(server: &Server) {
    let r = replica(server.settings("db"));
    assert_eq!(r.kind(), "s3");
    assert!(
        r.list(0, TxId::ZERO).await.unwrap().is_empty(),
        "empty level"
    );

    for (level, min, max) in [(0, 2, 2), (0, 1, 1), (0, 3, 4), (1, 1, 4), (9, 1, 4)] {
        let data = pattern(min * 10 + max, 1000 + min as usize);
        let info = r
            .write(id(level, min, max), TS + min as i64, bytes_stream(data))
            .await
            .unwrap();
        assert_eq!(info.size, 1000 + min);
        assert_eq!(info.created_at, crate::time_from_millis(TS + min as i64));
    }
    // Layout of REPLICA_LAYOUT.md §3: no `ltx/`, level as %04x.
    let junk = crate::s3::S3Replica::new(server.settings("db")).unwrap();
    let keys: Vec<String> = junk
        .inner
        .list_objects("db/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    for key in [
        "db/0000/0000000000000001-0000000000000001.ltx",
        "db/0001/0000000000000001-0000000000000004.ltx",
        "db/0009/0000000000000001-0000000000000004.ltx",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    // Foreign names under a level are skipped.
    junk.inner
        .put_object(
            &ObjectKey::new("db/0000/notes.txt"),
            "2020-01-01T00:00:00Z",
            b"x"[..].into(),
        )
        .await
        .unwrap();

    let before = SystemTime::now() - Duration::from_secs(600);
    let files = r.list(0, TxId::new(2)).await.unwrap();
    let ids: Vec<_> = files.iter().map(|f| f.id).collect();
    assert_eq!(ids, vec![id(0, 2, 2), id(0, 3, 4)]);
    assert_eq!(files[0].size, 1002);
    assert!(
        files.iter().all(|f| f.created_at > before),
        "LastModified is the upload time"
    );
    assert_eq!(r.list(1, TxId::ZERO).await.unwrap().len(), 1);

    // The metadata timestamp, exactly, through HEAD.
    let exact = r.list_with_exact_times(0, TxId::ZERO).await.unwrap();
    assert_eq!(exact.len(), 3);
    for f in &exact {
        assert_eq!(
            f.created_at,
            crate::time_from_millis(TS + f.id.min_txid.get() as i64),
            "{}",
            f.id
        );
    }
    let head = r
        .inner
        .head_object(&ObjectKey::new(r.key(id(0, 1, 1))))
        .await
        .unwrap();
    assert_eq!(
        head.get("x-amz-meta-litestream-timestamp")
            .and_then(|v| v.to_str().ok()),
        Some("2023-11-14T22:13:20.124Z")
    );

    // Reads: whole, a range, the tail, past the end, nothing.
    let want = pattern(34, 1003);
    assert_eq!(
        read_all(r.open(id(0, 3, 4), ByteRange::ALL).await.unwrap()).await,
        want
    );
    let mid = ByteRange {
        offset: 100,
        len: Some(50),
    };
    assert_eq!(
        read_all(r.open(id(0, 3, 4), mid).await.unwrap()).await,
        want[100..150]
    );
    let tail = ByteRange {
        offset: 1000,
        len: None,
    };
    assert_eq!(
        read_all(r.open(id(0, 3, 4), tail).await.unwrap()).await,
        want[1000..]
    );
    let past = ByteRange {
        offset: 5000,
        len: None,
    };
    assert!(
        read_all(r.open(id(0, 3, 4), past).await.unwrap())
            .await
            .is_empty()
    );
    let none = ByteRange {
        offset: 0,
        len: Some(0),
    };
    assert!(
        read_all(r.open(id(0, 3, 4), none).await.unwrap())
            .await
            .is_empty()
    );

    let Err(missing) = r.open(id(0, 7, 7), ByteRange::ALL).await else {
        panic!("opened a missing object")
    };
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        missing
            .to_string()
            .contains("s3://bucket/db/0000/0000000000000007-0000000000000007.ltx"),
        "{missing}"
    );

    // Writing an existing name replaces it.
    r.write(id(0, 1, 1), TS, bytes_stream(vec![9; 10]))
        .await
        .unwrap();
    assert_eq!(
        read_all(r.open(id(0, 1, 1), ByteRange::ALL).await.unwrap()).await,
        vec![9; 10]
    );

    // Deleting, including names already gone.
    r.delete(&[id(0, 1, 1), id(0, 8, 8)]).await.unwrap();
    assert_eq!(r.list(0, TxId::ZERO).await.unwrap().len(), 2);
    r.delete_all().await.unwrap();
    for level in [0, 1, 9] {
        assert!(r.list(level, TxId::ZERO).await.unwrap().is_empty());
    }
    assert!(
        junk.inner.list_objects("db/").await.unwrap().is_empty(),
        "foreign keys deleted too"
    );
}

async fn listings_follow_continuation_tokens_and_deletes_batch(server: &Server) {
    let r = replica(server.settings("many"));
    // 1,050 objects: more than one default page (1000) and one delete batch.
    let n = 1050u64;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(35) {
        let (r, chunk) = (r.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                r.write(id(1, i, i), TS, bytes_stream(vec![1; 3]))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let files = r.list(1, TxId::ZERO).await.unwrap();
    assert_eq!(files.len(), n as usize);
    assert!(
        files
            .windows(2)
            .all(|w| w[0].id.min_txid < w[1].id.min_txid),
        "sorted"
    );
    let from = r.list(1, TxId::new(1001)).await.unwrap();
    assert_eq!(from.len(), 50);

    // Small pages: 7 keys each.
    let mut small = server.settings("many");
    small.list_max_keys = Some(7);
    let small = replica(small);
    assert_eq!(small.list(1, TxId::new(990)).await.unwrap().len(), 61);

    let ids: Vec<FileId> = files.iter().map(|f| f.id).collect();
    r.delete(&ids).await.unwrap();
    assert!(r.list(1, TxId::ZERO).await.unwrap().is_empty());
}

async fn multipart_round_trips_byte_for_byte(server: &Server) {
    let mut s = server.settings("mp");
    s.concurrency = 3;
    let r = replica(s);
    // 3 full parts and a short one, arriving in odd-sized chunks.
    let len = 3 * MIN_PART_SIZE + 12_345;
    let info = r
        .write(id(9, 1, 100), TS, Generator::new(42, len, 7919).stream())
        .await
        .unwrap();
    assert_eq!(info.size, len);
    let want = pattern(42, len as usize);
    let got = read_all(r.open(id(9, 1, 100), ByteRange::ALL).await.unwrap()).await;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "multipart object differs from what was sent");
    let head = r
        .inner
        .head_object(&ObjectKey::new(r.key(id(9, 1, 100))))
        .await
        .unwrap();
    assert_eq!(crate::s3::ops::content_length(&head), Some(len));
    // A range across the first part boundary.
    let at = MIN_PART_SIZE - 10;
    let range = ByteRange {
        offset: at,
        len: Some(20),
    };
    assert_eq!(
        read_all(r.open(id(9, 1, 100), range).await.unwrap()).await,
        want[at as usize..at as usize + 20]
    );
    let files = r.list_with_exact_times(9, TxId::ZERO).await.unwrap();
    assert_eq!(files[0].size, len);
    assert_eq!(
        files[0].created_at,
        crate::time_from_millis(TS),
        "metadata set on multipart uploads too"
    );

    // Exactly one part's worth goes up with one PUT.
    let info = r
        .write(
            id(9, 1, 101),
            TS,
            Generator::new(7, MIN_PART_SIZE, 65536).stream(),
        )
        .await
        .unwrap();
    assert_eq!(info.size, MIN_PART_SIZE);
    assert_eq!(
        read_all(r.open(id(9, 1, 101), ByteRange::ALL).await.unwrap()).await,
        pattern(7, MIN_PART_SIZE as usize)
    );
    assert!(
        server.open_uploads().await.is_empty(),
        "{:?}",
        server.open_uploads().await
    );
}

/// A source that fails after `.1` bytes.
struct FailAfter(Generator, u64);

impl tokio::io::AsyncRead for FailAfter {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.1 == 0 {
            return Poll::Ready(Err(std::io::Error::other("the source went away")));
        }
        let n = (buf.remaining() as u64).min(this.1).min(65536) as usize;
        let mut tmp = vec![0; n];
        this.0.fill(&mut tmp);
        buf.put_slice(&tmp);
        this.1 -= n as u64;
        Poll::Ready(Ok(()))
    }
}

async fn a_failing_source_aborts_the_upload(server: &Server) {
    let r = replica(server.settings("fail"));
    let body = FailAfter(Generator::new(1, u64::MAX, 65536), 2 * MIN_PART_SIZE + 100);
    let err = r.write(id(0, 1, 1), TS, Box::pin(body)).await.unwrap_err();
    assert!(matches!(err, Error::Body { .. }), "{err}");
    assert!(err.to_string().contains("the source went away"), "{err}");
    assert!(
        r.list(0, TxId::ZERO).await.unwrap().is_empty(),
        "nothing visible"
    );
    assert!(
        server.open_uploads().await.is_empty(),
        "aborted: {:?}",
        server.open_uploads().await
    );
}

async fn a_cancelled_upload_is_aborted(server: &Server) {
    let r = replica(server.settings("cancel"));
    // Never ends: the write is cancelled mid-upload.
    let body = Generator::new(3, u64::MAX, 65536).stream();
    let write = r.write(id(0, 1, 1), TS, body);
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), write)
            .await
            .is_err()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.open_uploads().await.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.open_uploads().await.is_empty(),
        "{:?}",
        server.open_uploads().await
    );
    assert!(r.list(0, TxId::ZERO).await.unwrap().is_empty());
}

async fn unsigned_payloads_and_sha256_delete_checksums_work(server: &Server) {
    let mut s = server.settings("unsigned");
    s.sign_payload = false;
    s.require_content_md5 = false;
    let r = replica(s);
    let len = MIN_PART_SIZE + 1;
    r.write(id(0, 1, 1), TS, Generator::new(5, len, 100_000).stream())
        .await
        .unwrap();
    r.write(id(0, 2, 2), TS, bytes_stream(vec![2; 10]))
        .await
        .unwrap();
    assert_eq!(
        read_all(r.open(id(0, 1, 1), ByteRange::ALL).await.unwrap()).await,
        pattern(5, len as usize)
    );
    r.delete(&[id(0, 1, 1), id(0, 2, 2)]).await.unwrap();
    assert!(r.list(0, TxId::ZERO).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_authentication_error() {
    let server = Server::start(Kind::S3sFs);
    let mut s = server.settings("auth");
    s.secret_access_key = Some(SecretString::new("not-the-secret"));
    let r = replica(s);
    for err in [
        r.list(0, TxId::ZERO).await.unwrap_err(),
        r.write(id(0, 1, 1), TS, bytes_stream(vec![1; 10]))
            .await
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{text}");
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{text}");
        assert!(text.contains("s3://bucket/auth"), "{text}");
        assert!(
            !text.contains("not-the-secret"),
            "the secret leaked: {text}"
        );
    }
}

async fn a_missing_bucket_is_a_clear_error(server: &Server) {
    let r = replica(settings_for(&server.endpoint(), "no-such-bucket", "db"));
    // (s3s-fs creates a missing bucket on PutObject, so only reads are
    // checked here.)
    for err in [
        r.list(0, TxId::ZERO).await.unwrap_err(),
        r.list_with_exact_times(3, TxId::ZERO).await.unwrap_err(),
        r.delete_all().await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{text}");
        assert!(!err.is_not_found(), "{text}");
        assert!(
            text.contains("bucket \"no-such-bucket\" does not exist"),
            "{text}"
        );
        assert!(text.contains("NoSuchBucket"), "{text}");
    }
}

/// Peak resident memory while streaming 200 MB through a multipart upload
/// (5 MiB parts, 5 at a time) stays far below the object's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_multipart_upload_streams_in_bounded_memory() {
    let server = Server::start(Kind::S3sFs);
    let r = replica(server.settings("big"));
    let len: u64 = 200_000_000;
    let baseline = rss_bytes();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let info = r
        .write(
            id(9, 1, 2),
            TS,
            Generator::new(11, len, 256 * 1024).stream(),
        )
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert_eq!(info.size, len);
    let growth = peak.saturating_sub(baseline);
    println!(
        "200 MB multipart upload: RSS baseline {} MiB, peak {} MiB, growth {} MiB",
        baseline >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(
        growth < 150 << 20,
        "RSS grew by {} MiB for a {len}-byte upload",
        growth >> 20
    );

    // Byte for byte, compared by hash while streaming back.
    let mut want = Sha256::new();
    let mut gen_stream = Generator::new(11, len, 1 << 20).stream();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = gen_stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        want.update(&buf[..n]);
    }
    let mut got = Sha256::new();
    let mut s = r.open(id(9, 1, 2), ByteRange::ALL).await.unwrap();
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        got.update(&buf[..n]);
    }
    assert_eq!(total, len);
    assert_eq!(got.finalize(), want.finalize());
    assert!(server.open_uploads().await.is_empty());
}

super::on_every_server!(
    every_operation_round_trips,
    listings_follow_continuation_tokens_and_deletes_batch,
    multipart_round_trips_byte_for_byte,
    a_failing_source_aborts_the_upload,
    a_cancelled_upload_is_aborted,
    unsigned_payloads_and_sha256_delete_checksums_work,
    a_missing_bucket_is_a_clear_error,
);
