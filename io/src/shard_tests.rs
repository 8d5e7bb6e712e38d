use super::*;
use crate::mode::{IoMode, select};
use std::time::Duration;

fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sync];
    if let Ok(e) = select(IoMode::Uring) {
        v.push(e);
    }
    v
}

#[tokio::test]
async fn work_for_one_key_always_runs_on_the_same_shard() {
    let shards = Shards::with_engine(3, Engine::Sync).unwrap();
    assert_eq!(shards.len(), 3);
    let mut names = Vec::new();
    for key in 0..6u64 {
        let name = shards
            .run(key, || async {
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(name, format!("freshet-shard-{}", shards.shard_of(key)));
        names.push(name);
    }
    assert_eq!(names[0], names[3]);
    assert_ne!(names[0], names[1]);
    // A panic in the work is reported, and the shard keeps serving.
    let gone = shards.run(1, || async { panic!("work failed") }).await;
    assert_eq!(gone.unwrap_err().shard, 1);
    assert_eq!(shards.run(1, || async { 7 }).await.unwrap(), 7);
}

#[tokio::test]
async fn concurrent_reads_and_writes_round_trip_on_every_engine() {
    for engine in engines() {
        let shards = Shards::with_engine(2, engine).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let out = shards
            .run(0, move || async move {
                let file = AsyncFile::new(
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)
                        .unwrap(),
                );
                // 64 writes of 64 KiB in flight at once.
                let mut tasks = Vec::new();
                for i in 0..64u64 {
                    let f = file.clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        let buf = vec![i as u8; 65536];
                        let (res, buf) = f.write_all_at(buf, i * 65536).await;
                        res.unwrap();
                        assert_eq!(buf.len(), 65536, "the buffer comes back");
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                file.sync_all().await.unwrap();
                let mut reads = Vec::new();
                for i in (0..64u64).rev() {
                    let f = file.clone();
                    reads.push(tokio::task::spawn_local(async move {
                        let (res, buf) = f.read_at(vec![0xff; 65536], i * 65536).await;
                        assert_eq!(res.unwrap(), 65536);
                        buf.iter().all(|&b| b == i as u8)
                    }));
                }
                let mut ok = 0;
                for r in reads {
                    ok += usize::from(r.await.unwrap());
                }
                let (res, _) = file.read_at(vec![0; 10], 64 * 65536).await;
                (ok, res.unwrap(), Driver::inflight_here())
            })
            .await
            .unwrap();
        assert_eq!(out, (64, 0, 0), "{engine:?}");
        assert_eq!(
            std::fs::metadata(dir.path().join("data")).unwrap().len(),
            64 << 16
        );
    }
}

#[tokio::test]
async fn a_dropped_read_leaves_its_buffer_with_the_driver() {
    let Ok(engine) = select(IoMode::Uring) else {
        return;
    };
    let shards = Shards::with_engine(1, engine).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, vec![3u8; 32 << 20]).unwrap();
    let ok = shards
        .run(0, move || async move {
            let file = AsyncFile::new(File::open(&path).unwrap());
            // Start large reads and drop their futures before completion.
            for _ in 0..8 {
                let read = file.read_at(vec![0; 32 << 20], 0);
                let _ = tokio::time::timeout(Duration::ZERO, read).await;
            }
            // Later operations reuse the slots once the kernel is done.
            let (res, buf) = file.read_at(vec![0; 4096], 4096).await;
            assert_eq!(res.unwrap(), 4096);
            tokio::time::sleep(Duration::from_millis(50)).await;
            buf.iter().all(|&b| b == 3)
        })
        .await
        .unwrap();
    assert!(ok);
    // Dropping the pool waits for anything still in flight.
    drop(shards);
}

#[tokio::test]
async fn off_shard_calls_use_positional_io() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello world").unwrap();
    let file = AsyncFile::new(File::open(&path).unwrap());
    let (res, buf) = file.read_at(vec![0; 5], 6).await;
    assert_eq!(res.unwrap(), 5);
    assert_eq!(&buf, b"world");
    let (res, _) = file.write_at(b"x".to_vec(), 0).await;
    assert!(res.is_err(), "the file is read-only");
}
