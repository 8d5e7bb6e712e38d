//! Helpers for restore tests: real SQLite databases whose state is recorded
//! at every TXID, and replicas built from them with the LTX encoder the way
//! Litestream lays them out.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backends::file::FileReplica;
use backends::{FileId, ReplicaClient};
use ltx::{Compactor, Encoder, Header, HeaderFlags, TxId, lock_pgno};
use rusqlite::Connection;

/// Header timestamp (ms) of TXID `t`: one second apart, from a fixed start.
pub(crate) fn ts_ms(txid: u64) -> i64 {
    1_700_000_000_000 + txid as i64 * 1000
}

/// A tiny deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A rollback-journal database (so the main file holds every commit) and a
/// copy of the file after each TXID.
pub(crate) struct History {
    pub(crate) page_size: u32,
    pub(crate) db: PathBuf,
    pub(crate) conn: Connection,
    dir: PathBuf,
    /// `states[t - 1]` is the file as of TXID `t`.
    pub(crate) states: Vec<PathBuf>,
}

impl History {
    pub(crate) fn create(dir: &Path, page_size: u32) -> History {
        let db = dir.join("source.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA journal_mode = DELETE;
             CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
             CREATE INDEX items_k ON items (k);"
        ))
        .unwrap();
        let states_dir = dir.join("states");
        std::fs::create_dir_all(&states_dir).unwrap();
        let mut h = History {
            page_size,
            db,
            conn,
            dir: states_dir,
            states: Vec::new(),
        };
        h.commit();
        h
    }

    /// Records the current file as the next TXID's state; returns that TXID.
    pub(crate) fn commit(&mut self) -> u64 {
        let t = self.states.len() as u64 + 1;
        let path = self.dir.join(format!("state-{t}.db"));
        std::fs::copy(&self.db, &path).unwrap();
        self.states.push(path);
        t
    }

    pub(crate) fn last_txid(&self) -> u64 {
        self.states.len() as u64
    }

    pub(crate) fn state(&self, txid: u64) -> &Path {
        &self.states[txid as usize - 1]
    }

    pub(crate) fn pages(&self, txid: u64) -> u32 {
        (std::fs::metadata(self.state(txid)).unwrap().len() / u64::from(self.page_size)) as u32
    }

    /// Inserts `n` rows with blobs of `lo..hi` bytes in one transaction.
    pub(crate) fn insert(&mut self, rng: &mut Rng, n: u64, lo: u64, hi: u64) -> u64 {
        let tx = self.conn.transaction().unwrap();
        for _ in 0..n {
            let len = rng.range(lo, hi) as usize;
            let mut v = vec![0u8; len];
            for chunk in v.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            tx.execute(
                "INSERT INTO items (k, v) VALUES (?1, ?2)",
                rusqlite::params![rng.next() as i64 >> 1, v],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        self.commit()
    }

    /// Rewrites the key of every `every`-th row.
    pub(crate) fn update(&mut self, rng: &mut Rng, every: u64) -> u64 {
        self.conn
            .execute(
                "UPDATE items SET k = k + ?1 WHERE id % ?2 = 0",
                rusqlite::params![rng.range(1, 1000) as i64, every as i64],
            )
            .unwrap();
        self.commit()
    }

    /// Deletes most rows and vacuums, shrinking the file.
    pub(crate) fn shrink(&mut self, keep_every: u64) -> u64 {
        self.conn
            .execute(
                "DELETE FROM items WHERE id % ?1 != 0",
                rusqlite::params![keep_every as i64],
            )
            .unwrap();
        self.conn.execute_batch("VACUUM").unwrap();
        self.commit()
    }
}

fn header(page_size: u32, commit: u32, min: u64, max: u64) -> Header {
    Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size,
        commit,
        min_txid: TxId::new(min),
        max_txid: TxId::new(max),
        timestamp: ts_ms(max),
        ..Header::default()
    }
}

fn read_page(f: &File, page_size: u32, pgno: u32, buf: &mut [u8]) {
    f.read_exact_at(buf, u64::from(pgno - 1) * u64::from(page_size))
        .unwrap();
}

/// A snapshot (MinTXID 1) of the database file at `path`, as of TXID `max`.
pub(crate) fn encode_snapshot(path: &Path, page_size: u32, max: u64) -> Vec<u8> {
    let f = File::open(path).unwrap();
    let commit = (f.metadata().unwrap().len() / u64::from(page_size)) as u32;
    let mut out = Vec::new();
    let mut enc =
        Encoder::new(BufWriter::new(&mut out), &header(page_size, commit, 1, max)).unwrap();
    let mut page = vec![0u8; page_size as usize];
    for pgno in 1..=commit {
        if pgno == lock_pgno(page_size) {
            continue;
        }
        read_page(&f, page_size, pgno, &mut page);
        enc.encode_page(pgno, &page).unwrap();
    }
    let (w, _) = enc.finish(ltx::Checksum::ZERO).unwrap();
    drop(w);
    out
}

/// An L0 file for TXID `txid`: the pages of `cur` that differ from `prev`
/// or are new, with `cur`'s size as the commit.
pub(crate) fn encode_diff(prev: &Path, cur: &Path, page_size: u32, txid: u64) -> Vec<u8> {
    let (p, c) = (File::open(prev).unwrap(), File::open(cur).unwrap());
    let prev_pages = (p.metadata().unwrap().len() / u64::from(page_size)) as u32;
    let commit = (c.metadata().unwrap().len() / u64::from(page_size)) as u32;
    let mut out = Vec::new();
    let mut enc = Encoder::new(
        BufWriter::new(&mut out),
        &header(page_size, commit, txid, txid),
    )
    .unwrap();
    let mut a = vec![0u8; page_size as usize];
    let mut b = vec![0u8; page_size as usize];
    for pgno in 1..=commit {
        if pgno == lock_pgno(page_size) {
            continue;
        }
        read_page(&c, page_size, pgno, &mut b);
        if pgno <= prev_pages {
            read_page(&p, page_size, pgno, &mut a);
            if a == b {
                continue;
            }
        }
        enc.encode_page(pgno, &b).unwrap();
    }
    let (w, _) = enc.finish(ltx::Checksum::ZERO).unwrap();
    drop(w);
    out
}

/// The L0 file of TXID `t` (a full snapshot for TXID 1, as Litestream
/// writes it).
pub(crate) fn encode_l0(h: &History, t: u64) -> Vec<u8> {
    if t == 1 {
        encode_snapshot(h.state(1), h.page_size, 1)
    } else {
        encode_diff(h.state(t - 1), h.state(t), h.page_size, t)
    }
}

/// Merges LTX files with the codec's compactor, as compaction does.
pub(crate) fn compact(files: &[Vec<u8>]) -> Vec<u8> {
    let c = Compactor::new(
        files.iter().map(|f| f.as_slice()).collect(),
        HeaderFlags::NO_CHECKSUM,
    )
    .unwrap();
    let (out, _) = c.compact(Vec::new()).unwrap();
    out
}

/// Writes an LTX file into a replica through the backend, which records
/// the header timestamp as its creation time.
pub(crate) async fn put(replica: &FileReplica, level: u8, bytes: Vec<u8>) -> FileId {
    let h = Header::from_bytes(bytes[..ltx::HEADER_SIZE].try_into().unwrap()).unwrap();
    let id = FileId::new(level, h.min_txid, h.max_txid);
    replica
        .write(id, h.timestamp, Box::pin(std::io::Cursor::new(bytes)))
        .await
        .unwrap();
    id
}

/// A file replica in `dir` as a shared client.
pub(crate) fn replica(dir: &Path) -> (FileReplica, Arc<dyn ReplicaClient>) {
    let r = FileReplica::new(dir);
    (r.clone(), Arc::new(r))
}

/// Fails unless the files at `a` and `b` are byte-identical, naming the
/// first differing page.
pub(crate) fn assert_same_file(expected: &Path, actual: &Path, page_size: u32, what: &str) {
    let (mut a, mut b) = (File::open(expected).unwrap(), File::open(actual).unwrap());
    let (la, lb) = (a.metadata().unwrap().len(), b.metadata().unwrap().len());
    assert_eq!(la, lb, "{what}: sizes differ ({la} vs {lb} bytes)");
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = a.read(&mut ba).unwrap();
        if n == 0 {
            break;
        }
        b.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            let at = offset + i as u64;
            panic!(
                "{what}: first difference at byte {at} (page {})",
                at / u64::from(page_size) + 1
            );
        }
        offset += n as u64;
    }
}

/// The first row of `PRAGMA integrity_check`.
pub(crate) fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Names of the entries in `dir`, sorted.
pub(crate) fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
