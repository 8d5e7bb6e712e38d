//! WAL scan and restore throughput on the two I/O engines (release build).
//!
//!     cargo run --release -p freshet-engine --example io_engines -- wal [MB]
//!     FRESHET_IO=sync cargo run --release -p freshet-engine --example io_engines -- restore [MB]
//!     cargo run --release -p freshet-engine --example io_engines -- restore [MB]
//!
//! `wal` writes a WAL of about MB megabytes with SQLite and scans it from the
//! file through each engine (best of 5, page cache warm). `restore` encodes a
//! level-9 snapshot of an MB-megabyte database (4 KiB pages, half random,
//! half compressible) into a file replica and restores it (best of 3); the
//! engine is the process's, so run it once per `FRESHET_IO` value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{self, BufWriter};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use engine::restore::{RestoreOptions, restore};
use engine::wal::{ReadAt, Reader};
use freshet_io::{Engine, read_chunks_with};
use ltx::{Encoder, Header, TxId, lock_pgno};

struct On(Engine, File);

impl ReadAt for On {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.1, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.1.metadata()?.len())
    }

    fn read_chunks(
        &self,
        offset: u64,
        chunk: usize,
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        read_chunks_with(self.0, &self.1, offset, chunk, scratch, f)
    }
}

fn wal(mb: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = wal; PRAGMA wal_autocheckpoint = 0; \
         CREATE TABLE t (v BLOB)",
    )
    .unwrap();
    let wal_path = dir.path().join("db-wal");
    let blob: Vec<u8> = (0..3500u32).map(|i| (i * 7 % 251) as u8).collect();
    while std::fs::metadata(&wal_path).map_or(0, |m| m.len()) < mb << 20 {
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..64 {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [&blob])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let len = std::fs::metadata(&wal_path).unwrap().len();
    for engine in [Engine::Sync, Engine::Uring] {
        let src = On(engine, File::open(&wal_path).unwrap());
        let mut buf = Vec::new();
        let secs = (0..5)
            .map(|_| {
                let t = Instant::now();
                let s = Reader::open(&src)
                    .unwrap()
                    .unwrap()
                    .scan(None, &mut buf)
                    .unwrap();
                assert_eq!(s.end, len);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        println!(
            "WAL scan {:.0} MB, {engine:?}: {:.0} MB/s",
            len as f64 / 1e6,
            len as f64 / 1e6 / secs
        );
    }
}

fn restore_bench(mb: u64) {
    let engine = freshet_io::engine().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page_size = 4096u32;
    let commit = u32::try_from((mb << 20) / u64::from(page_size)).unwrap();
    let level = dir.path().join("replica/ltx/9");
    std::fs::create_dir_all(&level).unwrap();
    let name = level.join(format!("{:016x}-{:016x}.ltx", 1, 1));
    let header = Header {
        page_size,
        commit,
        min_txid: TxId::new(1),
        max_txid: TxId::new(1),
        timestamp: 1_700_000_000_000,
        ..Header::default()
    };
    let mut enc = Encoder::new(BufWriter::new(File::create(&name).unwrap()), &header).unwrap();
    let mut page = vec![0u8; page_size as usize];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for pgno in 1..=commit {
        if pgno == lock_pgno(page_size) {
            continue;
        }
        // Half of each page random, half a repeating pattern.
        for (i, b) in page.iter_mut().enumerate() {
            *b = if i < page_size as usize / 2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                (i % 16) as u8
            };
        }
        enc.encode_page(pgno, &page).unwrap();
    }
    enc.finish(ltx::Checksum::ZERO).unwrap();
    let bytes = u64::from(commit) * u64::from(page_size);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(backends::file::FileReplica::new(dir.path().join("replica")));
    let secs = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("out-{i}.db"));
            let t = Instant::now();
            let done = rt
                .block_on(restore(client.clone(), &RestoreOptions::new(&out)))
                .unwrap();
            assert_eq!(std::fs::metadata(&out).unwrap().len(), bytes);
            assert_eq!(done.txid, TxId::new(1));
            let secs = t.elapsed().as_secs_f64();
            std::fs::remove_file(&out).unwrap();
            secs
        })
        .fold(f64::MAX, f64::min);
    println!(
        "restore {:.0} MB database, {engine:?}: {:.0} MB/s ({secs:.2} s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let mb: u64 = args.next().map_or(300, |a| a.parse().expect("size in MB"));
    match what.as_str() {
        "wal" => wal(mb),
        "restore" => restore_bench(mb),
        _ => eprintln!("usage: io_engines wal|restore [MB]"),
    }
}
