//! Resumable reads and the parallelism bound, against a file replica whose
//! reads fail or stall on purpose.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use backends::file::FileReplica;
use backends::{ByteRange, ByteStream, FileId, FileInfo, ReplicaClient};
use ltx::TxId;
use tokio::io::{AsyncRead, ReadBuf};

use super::*;

/// What the next open of the faulty file does.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The open itself fails (not "not found").
    Open,
    /// The stream fails after this many bytes.
    ErrorAfter(u64),
    /// The stream ends early after this many bytes.
    EofAfter(u64),
}

#[derive(Debug)]
struct Faulty {
    inner: FileReplica,
    target: FileId,
    faults: Mutex<Vec<Fault>>,
    opens: Mutex<Vec<(FileId, u64)>>,
    live: Arc<AtomicUsize>,
    max_live: Arc<AtomicUsize>,
    stall: Duration,
}

impl Faulty {
    fn new(inner: FileReplica, target: FileId, faults: &[Fault]) -> Faulty {
        Faulty {
            inner,
            target,
            faults: Mutex::new(faults.iter().rev().copied().collect()),
            opens: Mutex::new(Vec::new()),
            live: Arc::default(),
            max_live: Arc::default(),
            stall: Duration::ZERO,
        }
    }
}

#[async_trait]
impl ReplicaClient for Faulty {
    fn kind(&self) -> &'static str {
        "faulty"
    }
    async fn list(&self, level: u8, seek: TxId) -> backends::Result<Vec<FileInfo>> {
        self.inner.list(level, seek).await
    }
    async fn open(&self, id: FileId, range: ByteRange) -> backends::Result<ByteStream> {
        self.opens.lock().unwrap().push((id, range.offset));
        let fault = if id == self.target {
            self.faults.lock().unwrap().pop()
        } else {
            None
        };
        if let Some(Fault::Open) = fault {
            return Err(backends::Error::Config(
                "connection reset (injected)".into(),
            ));
        }
        let inner = self.inner.open(id, range).await?;
        let n = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_live.fetch_max(n, Ordering::SeqCst);
        Ok(Box::pin(Flaky {
            inner,
            fault,
            served: 0,
            stall: Some(Box::pin(tokio::time::sleep(self.stall))),
            live: Arc::clone(&self.live),
        }))
    }
    async fn write(&self, id: FileId, ts: i64, body: ByteStream) -> backends::Result<FileInfo> {
        self.inner.write(id, ts, body).await
    }
    async fn delete(&self, ids: &[FileId]) -> backends::Result<()> {
        self.inner.delete(ids).await
    }
    async fn delete_all(&self) -> backends::Result<()> {
        self.inner.delete_all().await
    }
}

struct Flaky {
    inner: ByteStream,
    fault: Option<Fault>,
    served: u64,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    live: Arc<AtomicUsize>,
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Flaky {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(stall) = self.stall.as_mut() {
            ready!(stall.as_mut().poll(cx));
            self.stall = None;
        }
        let limit = match self.fault {
            Some(Fault::ErrorAfter(n) | Fault::EofAfter(n)) => n - self.served,
            _ => u64::MAX,
        };
        if limit == 0 {
            return Poll::Ready(match self.fault {
                Some(Fault::ErrorAfter(_)) => Err(io::Error::other("connection reset (injected)")),
                _ => Ok(()),
            });
        }
        let want = buf
            .remaining()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut tmp = vec![0u8; want];
        let mut rb = ReadBuf::new(&mut tmp);
        ready!(self.inner.as_mut().poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        buf.put_slice(rb.filled());
        self.served += n as u64;
        Poll::Ready(Ok(()))
    }
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn setup(files: &[(u64, usize)]) -> (tempfile::TempDir, FileReplica, Vec<FileInfo>) {
    let tmp = tempfile::tempdir().unwrap();
    let r = FileReplica::new(tmp.path().join("replica"));
    let mut infos = Vec::new();
    for &(txid, len) in files {
        let id = FileId::new(0, TxId::new(txid), TxId::new(txid));
        let body = Box::pin(io::Cursor::new(content(len, txid as u8)));
        infos.push(r.write(id, 1_700_000_000_000, body).await.unwrap());
    }
    (tmp, r, infos)
}

fn quick(dir: &std::path::Path) -> FetchConfig {
    let mut c = FetchConfig::new(4, dir.to_path_buf());
    c.retry_delays = vec![Duration::from_millis(1); 3];
    c
}

fn read_input(mut input: Input) -> Vec<u8> {
    let mut out = Vec::new();
    input.read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn reads_resume_from_the_current_offset() {
    let (tmp, r, infos) = setup(&[(1, 300_000)]).await;
    let faults = [Fault::ErrorAfter(1000), Fault::EofAfter(5000), Fault::Open];
    let client = Faulty::new(r, infos[0].id, &faults);
    for memory in [true, false] {
        *client.faults.lock().unwrap() = faults.iter().rev().copied().collect();
        client.opens.lock().unwrap().clear();
        let input = spool(&client, infos[0], memory, &quick(tmp.path()))
            .await
            .unwrap();
        assert_eq!(read_input(input), content(300_000, 1), "memory {memory}");
        let offsets: Vec<u64> = client.opens.lock().unwrap().iter().map(|o| o.1).collect();
        assert_eq!(offsets, [0, 1000, 6000, 6000], "memory {memory}");
    }
}

#[tokio::test]
async fn reads_give_up_after_three_retries() {
    let (tmp, r, infos) = setup(&[(1, 10_000)]).await;
    let faults = [Fault::ErrorAfter(100); 4];
    let client = Faulty::new(r, infos[0].id, &faults);
    let err = spool(&client, infos[0], true, &quick(tmp.path()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RestoreError::Fetch { offset: 400, .. }),
        "{text}"
    );
    assert!(text.contains("gave up after 3 retries"), "{text}");
    assert!(
        text.contains("0000000000000001-0000000000000001.ltx"),
        "{text}"
    );
    assert_eq!(client.opens.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let (tmp, r, infos) = setup(&[(1, 1000)]).await;
    r.delete(&[infos[0].id]).await.unwrap();
    let client = Faulty::new(r, infos[0].id, &[]);
    let err = spool(&client, infos[0], true, &quick(tmp.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(client.opens.lock().unwrap().len(), 1, "no retry");
}

#[tokio::test]
async fn the_streamed_first_file_resumes_too() {
    let (tmp, r, infos) = setup(&[(1, 2_000_000), (2, 5000), (3, 7000)]).await;
    let client = Arc::new(Faulty::new(
        r,
        infos[0].id,
        &[Fault::ErrorAfter(300_000), Fault::EofAfter(600_000)],
    ));
    let fetched = fetch_all(client.clone(), &infos, &quick(tmp.path()))
        .await
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        fetched
            .inputs
            .into_iter()
            .map(read_input)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(got[0], content(2_000_000, 1));
    assert_eq!(got[1], content(5000, 2));
    assert_eq!(got[2], content(7000, 3));
}

#[tokio::test]
async fn at_most_parallelism_files_are_read_at_once() {
    let files: Vec<(u64, usize)> = (1..=9).map(|t| (t, 20_000)).collect();
    let (tmp, r, infos) = setup(&files).await;
    for parallelism in [1, 3] {
        let mut client = Faulty::new(r.clone(), infos[0].id, &[]);
        client.stall = Duration::from_millis(30);
        let client = Arc::new(client);
        let mut config = quick(tmp.path());
        config.parallelism = parallelism;
        config.memory_budget = 50_000; // the rest is spooled to disk
        let fetched = fetch_all(client.clone(), &infos, &config).await.unwrap();
        let got = tokio::task::spawn_blocking(move || {
            fetched
                .inputs
                .into_iter()
                .map(read_input)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, content(20_000, i as u8 + 1), "file {i}");
        }
        assert_eq!(
            client.max_live.load(Ordering::SeqCst),
            parallelism,
            "parallelism {parallelism}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_first_file_is_read_as_parallel_ranges_in_order() {
    let (tmp, r, infos) = setup(&[(1, 1_000_003), (2, 5000)]).await;
    // A failure inside one range resumes within that range.
    let mut client = Faulty::new(r, infos[0].id, &[Fault::ErrorAfter(30_000)]);
    client.stall = Duration::from_millis(5);
    let client = Arc::new(client);
    let mut config = quick(tmp.path());
    config.parallelism = 4;
    config.range_size = 100_000;
    let fetched = fetch_all(client.clone(), &infos, &config).await.unwrap();
    let got = tokio::task::spawn_blocking(move || {
        fetched
            .inputs
            .into_iter()
            .map(read_input)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(got[0] == content(1_000_003, 1), "first file differs");
    assert_eq!(got[1], content(5000, 2));
    let mut offsets: Vec<u64> = client
        .opens
        .lock()
        .unwrap()
        .iter()
        .filter(|o| o.0 == infos[0].id)
        .map(|o| o.1)
        .collect();
    // Whichever range met the fault resumed 30 kB into itself.
    let (resumed, starts): (Vec<u64>, Vec<u64>) =
        offsets.iter().partition(|&&o| o % 100_000 == 30_000);
    offsets = starts;
    offsets.sort();
    let want: Vec<u64> = (0..=10).map(|i| i * 100_000).collect();
    assert_eq!(offsets, want, "one ranged read per 100 kB");
    assert_eq!(resumed.len(), 1, "one resumed read: {resumed:?}");
    let most = client.max_live.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} reads at once with 4 fetch slots"
    );
}
