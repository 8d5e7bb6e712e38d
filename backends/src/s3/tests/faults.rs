//! Writes and reads through a proxy that injects 500s, `SlowDown`s, resets,
//! cut and stalled bodies and stalls into a chosen fraction of requests:
//! retries and resumed downloads make every operation succeed, and no
//! multipart upload is left open.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::Method;
use ltx::TxId;

use super::proxy::{Fault, FaultProxy, Seen, Stats};
use super::*;
use crate::s3::config::MIN_PART_SIZE;
use crate::{ByteRange, FileId, ReplicaClient};

fn id(level: u8, min: u64, max: u64) -> FileId {
    FileId::new(level, TxId::new(min), TxId::new(max))
}

/// A well-mixed hash of the request number, for reproducible choices.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Faults for about a quarter of the requests, every kind in turn.
fn quarter_faulty(seen: &Seen<'_>) -> Option<Fault> {
    if seen.n % 97 == 40 {
        return Some(Fault::Stall(Duration::from_millis(1500)));
    }
    let h = mix(seen.n);
    if h % 100 >= 25 {
        return None;
    }
    let fault = match (h / 100) % 6 {
        0 => Fault::InternalError,
        1 => Fault::SlowDown,
        2 => Fault::ResetBefore,
        3 => Fault::ResetAfter,
        4 => Fault::TruncateBody,
        _ => Fault::StallBody,
    };
    // A CreateMultipartUpload whose answer is lost opens an upload only
    // ListMultipartUploads can find, which s3s-fs does not implement.
    if fault == Fault::ResetAfter
        && *seen.method == Method::POST
        && seen.path_and_query.ends_with("?uploads")
    {
        return Some(Fault::ResetBefore);
    }
    Some(fault)
}

async fn operations_succeed_through_injected_faults(server: &Server) {
    let proxy = FaultProxy::start(server.port, quarter_faulty).await;
    let mut s = settings_for(
        &format!("http://127.0.0.1:{}", proxy.port),
        BUCKET,
        "faulty",
    );
    s.request_timeout = Duration::from_secs(1);
    s.read_idle_timeout = Duration::from_millis(500);
    s.concurrency = 4;
    s.list_max_keys = Some(10);
    let r = replica(s);
    let ts = 1_700_000_000_000;

    let small = 40u64;
    for i in 1..=small {
        let info = r
            .write(
                id(0, i, i),
                ts + i as i64,
                bytes_stream(pattern(i, 5000 + i as usize)),
            )
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert_eq!(info.size, 5000 + i);
    }
    let big_len = 3 * MIN_PART_SIZE + 777;
    for n in 0..2 {
        r.write(
            id(9, 1, 40 + n),
            ts,
            Generator::new(100 + n, big_len, 50_000).stream(),
        )
        .await
        .unwrap_or_else(|e| panic!("multipart write {n}: {e}"));
    }

    let files = r.list(0, TxId::ZERO).await.unwrap();
    assert_eq!(files.len(), small as usize);
    let exact = r.list_with_exact_times(0, TxId::new(30)).await.unwrap();
    assert_eq!(exact.len(), 11);
    for i in 1..=small {
        let got = read_all(r.open(id(0, i, i), ByteRange::ALL).await.unwrap()).await;
        assert!(got == pattern(i, 5000 + i as usize), "file {i} differs");
        let range = ByteRange {
            offset: 1000,
            len: Some(3000),
        };
        let got = read_all(r.open(id(0, i, i), range).await.unwrap()).await;
        assert!(
            got == pattern(i, 5000 + i as usize)[1000..4000],
            "range of file {i} differs"
        );
    }
    for n in 0..2 {
        let got = read_all(r.open(id(9, 1, 40 + n), ByteRange::ALL).await.unwrap()).await;
        assert_eq!(got.len() as u64, big_len);
        assert!(
            got == pattern(100 + n, big_len as usize),
            "multipart object {n} differs"
        );
    }
    let gone: Vec<FileId> = (1..=10).map(|i| id(0, i, i)).collect();
    r.delete(&gone).await.unwrap();
    assert_eq!(r.list(0, TxId::ZERO).await.unwrap().len(), 30);

    let st = &proxy.stats;
    println!(
        "fault injection: {} requests, {} faults (500: {}, SlowDown: {}, reset before: {}, reset after: {}, \
         cut bodies: {}, stalled bodies: {}, stalls: {})",
        Stats::get(&st.requests),
        st.injected(),
        Stats::get(&st.internal_error),
        Stats::get(&st.slow_down),
        Stats::get(&st.reset_before),
        Stats::get(&st.reset_after),
        Stats::get(&st.truncated),
        Stats::get(&st.stalled_body),
        Stats::get(&st.stalled),
    );
    let counters: [&AtomicU64; 7] = [
        &st.internal_error,
        &st.slow_down,
        &st.reset_before,
        &st.reset_after,
        &st.truncated,
        &st.stalled_body,
        &st.stalled,
    ];
    assert!(
        counters.iter().all(|c| Stats::get(c) > 0),
        "every fault kind was injected: {st:?}"
    );
    assert!(
        server.open_uploads().await.is_empty(),
        "open uploads: {:?}",
        server.open_uploads().await
    );

    r.delete_all().await.unwrap();
    assert!(r.list(9, TxId::ZERO).await.unwrap().is_empty());
}

async fn a_part_that_keeps_failing_aborts_the_upload(server: &Server) {
    let proxy = FaultProxy::start(server.port, |seen: &Seen<'_>| {
        (*seen.method == Method::PUT && seen.path_and_query.contains("partNumber=2&"))
            .then_some(Fault::InternalError)
    })
    .await;
    let r = replica(settings_for(
        &format!("http://127.0.0.1:{}", proxy.port),
        BUCKET,
        "doomed",
    ));
    let err = r
        .write(
            id(0, 1, 1),
            0,
            Generator::new(1, 3 * MIN_PART_SIZE, 65536).stream(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("upload part s3://bucket/doomed/0000/0000000000000001-0000000000000001.ltx"),
        "{err}"
    );
    assert!(err.contains("HTTP 500 InternalError"), "{err}");
    assert!(err.contains("after 10 attempts"), "{err}");
    assert_eq!(Stats::get(&proxy.stats.internal_error), 10);
    assert!(r.list(0, TxId::ZERO).await.unwrap().is_empty());
    assert!(
        server.open_uploads().await.is_empty(),
        "open uploads: {:?}",
        server.open_uploads().await
    );
}

async fn throttling_is_retried_until_the_attempts_run_out(server: &Server) {
    let proxy = FaultProxy::start(server.port, |_: &Seen<'_>| Some(Fault::SlowDown)).await;
    let r = replica(settings_for(
        &format!("http://127.0.0.1:{}", proxy.port),
        BUCKET,
        "slow",
    ));
    let err = r.list(0, TxId::ZERO).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "list s3://bucket/slow/0000/: HTTP 503 SlowDown: injected by the test proxy"
        ),
        "{text}"
    );
    assert!(text.contains("after 10 attempts"), "{text}");
    assert_eq!(Stats::get(&proxy.stats.requests), 10);
}

super::on_every_server!(
    operations_succeed_through_injected_faults,
    a_part_that_keeps_failing_aborts_the_upload,
    throttling_is_retried_until_the_attempts_run_out,
);

/// A `CreateMultipartUpload` whose answer is lost opens an upload the
/// client never hears of; after its retry the writer finds and aborts it
/// through `ListMultipartUploads` (moto implements that call, s3s-fs not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_leaves_no_stray_upload() {
    let server = Server::start(Kind::Moto);
    let lost = std::sync::atomic::AtomicBool::new(false);
    let proxy = FaultProxy::start(server.port, move |seen: &Seen<'_>| {
        let create = *seen.method == Method::POST && seen.path_and_query.ends_with("?uploads");
        (create && !lost.swap(true, std::sync::atomic::Ordering::SeqCst))
            .then_some(Fault::ResetAfter)
    })
    .await;
    let r = replica(settings_for(
        &format!("http://127.0.0.1:{}", proxy.port),
        BUCKET,
        "stray",
    ));
    let len = 2 * MIN_PART_SIZE + 1;
    r.write(id(0, 1, 1), 0, Generator::new(9, len, 65536).stream())
        .await
        .unwrap();
    assert_eq!(Stats::get(&proxy.stats.reset_after), 1);
    assert_eq!(
        read_all(r.open(id(0, 1, 1), ByteRange::ALL).await.unwrap()).await,
        pattern(9, len as usize)
    );
    assert!(
        server.open_uploads().await.is_empty(),
        "open uploads: {:?}",
        server.open_uploads().await
    );
}
