//! Test support: real WALs from SQLite, SQLite itself as the oracle, and a
//! small WAL writer for crafted cases.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::checksum::{ByteOrder, Checksum};
use super::header::{FRAME_HEADER_SIZE, FrameHeader, HEADER_SIZE, Header, MAGIC_BIG, Salts};
use super::scan::Scan;

/// A database in WAL mode with automatic checkpoints off. The connection
/// stays open so SQLite neither checkpoints nor deletes the WAL.
pub(crate) struct LiveDb {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) conn: Connection,
    pub(crate) page_size: u32,
    /// Write transactions committed through [`LiveDb::tx`].
    pub(crate) commits: u64,
    rng: u64,
}

impl LiveDb {
    pub(crate) fn new(page_size: u32) -> LiveDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA page_size = {page_size};"))
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = wal", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let mut db = LiveDb {
            _dir: dir,
            path,
            conn,
            page_size,
            commits: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(page_size),
        };
        db.tx("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", &[]);
        db
    }

    /// Deterministic pseudo-random bytes, so failures reproduce.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng as u8
            })
            .collect()
    }

    /// Runs statements in one write transaction; `blobs` bind `?1` of every
    /// statement in turn.
    pub(crate) fn tx(&mut self, sql: &str, blobs: &[Vec<u8>]) {
        let t = self.conn.transaction().unwrap();
        if blobs.is_empty() {
            t.execute_batch(sql).unwrap();
        } else {
            for b in blobs {
                t.execute(sql, [b]).unwrap();
            }
        }
        t.commit().unwrap();
        self.commits += 1;
    }

    /// Inserts `rows` rows of `size` random bytes in one transaction.
    pub(crate) fn insert(&mut self, rows: usize, size: usize) {
        let blobs: Vec<_> = (0..rows).map(|_| self.bytes(size)).collect();
        self.tx("INSERT INTO t (v) VALUES (?1)", &blobs);
    }

    /// Rewrites the blob of every `step`-th row and of the last row (so the
    /// transaction always writes) in one transaction.
    pub(crate) fn update_every(&mut self, step: i64, size: usize) {
        let v = self.bytes(size);
        let sql =
            format!("UPDATE t SET v = ?1 WHERE id % {step} = 0 OR id = (SELECT max(id) FROM t)");
        self.tx(&sql, &[v]);
    }

    /// Deletes most rows and vacuums: a transaction that shrinks the file.
    pub(crate) fn shrink(&mut self) {
        self.tx("DELETE FROM t WHERE id % 4 != 0", &[]);
        self.conn.execute_batch("VACUUM").unwrap();
        self.commits += 1;
    }

    /// A mixed workload: small and multi-page transactions, growth, a
    /// shrinking VACUUM, and growth again.
    pub(crate) fn mixed_workload(&mut self, txs: usize) {
        let ps = self.page_size as usize;
        for i in 0..txs {
            match i % 5 {
                0 => self.insert(1, 40),
                1 => self.insert(3, ps * 2),
                2 => self.update_every(7, 100),
                3 => self.insert(20, ps / 8),
                _ => self.tx(
                    "INSERT INTO t (v) VALUES (x'00'); DELETE FROM t WHERE id % 11 = 3",
                    &[],
                ),
            }
            if i == txs / 2 {
                self.shrink();
            }
        }
    }

    pub(crate) fn page_count(&self) -> u32 {
        self.conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap()
    }

    pub(crate) fn wal_path(&self) -> PathBuf {
        wal_path(&self.path)
    }

    /// Copies of the database file and the WAL as they are now.
    pub(crate) fn files(&self) -> (Vec<u8>, Vec<u8>) {
        (
            std::fs::read(&self.path).unwrap(),
            std::fs::read(self.wal_path()).unwrap(),
        )
    }

    /// Runs a checkpoint and asserts it completed.
    pub(crate) fn checkpoint(&self, mode: &str) {
        let (busy, log, done): (i64, i64, i64) = self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((busy, log), (0, done), "checkpoint {mode} incomplete");
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// What SQLite makes of `db` + `wal`: both are copied to a fresh directory,
/// opened (SQLite recovers the WAL by its own rules), fully checkpointed,
/// and the resulting database file is returned.
pub(crate) fn sqlite_checkpointed(db: &[u8], wal: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.sqlite");
    std::fs::write(&path, db).unwrap();
    std::fs::write(wal_path(&path), wal).unwrap();
    let conn = Connection::open(&path).unwrap();
    let (busy, log, done): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((busy, log), (0, done), "oracle checkpoint incomplete");
    drop(conn);
    std::fs::read(&path).unwrap()
}

/// The database our scan says SQLite should end up with: `db` overlaid with
/// the page of every frame in the map, cut to the commit size.
pub(crate) fn overlay(db: &[u8], wal: &[u8], scan: &Scan) -> Vec<u8> {
    let ps = scan.page_size as usize;
    let mut out = db.to_vec();
    if scan.commit != 0 {
        out.resize(scan.commit as usize * ps, 0);
    }
    for (pgno, off) in scan.pages.iter() {
        let at = (pgno as usize - 1) * ps;
        let page = &wal[off as usize + FRAME_HEADER_SIZE..][..ps];
        out[at..at + ps].copy_from_slice(page);
    }
    out
}

/// Asserts that the scan of `wal` describes exactly what SQLite recovers
/// from `db` + `wal`: each mapped frame's page equals the checkpointed page,
/// and the whole checkpointed file equals `db` overlaid with those pages.
pub(crate) fn assert_matches_sqlite(db: &[u8], wal: &[u8], scan: &Scan) {
    let ps = scan.page_size as usize;
    let sqlite = sqlite_checkpointed(db, wal);
    if scan.commit != 0 {
        assert_eq!(sqlite.len(), scan.commit as usize * ps, "database size");
    }
    for (pgno, off) in scan.pages.iter() {
        let at = (pgno as usize - 1) * ps;
        let page = &wal[off as usize + FRAME_HEADER_SIZE..][..ps];
        assert!(
            sqlite.get(at..at + ps) == Some(page),
            "page {pgno} (frame at byte {off}) differs from SQLite's"
        );
    }
    let ours = overlay(db, wal, scan);
    assert_eq!(ours.len(), sqlite.len(), "database length");
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != sqlite[i]) {
        panic!("database differs from SQLite's at page {}", i / ps + 1);
    }
}

/// Offsets just past each commit frame of a WAL known to be clean: every
/// complete frame with the header's salts is taken as valid.
pub(crate) fn commit_ends(wal: &[u8]) -> Vec<u64> {
    let ps = u32::from_be_bytes([wal[8], wal[9], wal[10], wal[11]]) as usize;
    let fs = FRAME_HEADER_SIZE + ps;
    let mut ends = Vec::new();
    let mut off = HEADER_SIZE;
    while off + fs <= wal.len() && wal[off + 8..off + 16] == wal[16..24] {
        if wal[off + 4..off + 8] != [0; 4] {
            ends.push((off + fs) as u64);
        }
        off += fs;
    }
    ends
}

/// Rewrites a little-endian WAL as a big-endian host would have written it:
/// magic `0x377f0683` and every checksum recomputed over big-endian words.
/// Only the valid frames are converted; the first invalid one and all after
/// it are copied unchanged.
pub(crate) fn to_big_endian(wal: &[u8]) -> Vec<u8> {
    let mut out = wal.to_vec();
    let head: &[u8; HEADER_SIZE] = wal[..HEADER_SIZE].try_into().unwrap();
    let mut h = Header::parse(head).unwrap().unwrap();
    assert_eq!(h.byte_order, ByteOrder::Little);
    h.byte_order = ByteOrder::Big;
    let new_head = h.encode();
    out[..HEADER_SIZE].copy_from_slice(&new_head);
    let fs = h.frame_size() as usize;
    let mut le = Header::parse(head).unwrap().unwrap().checksum;
    let mut be = Header::parse(&new_head).unwrap().unwrap().checksum;
    let mut off = HEADER_SIZE;
    while off + fs <= wal.len() {
        let frame = &wal[off..off + fs];
        let mut fh = FrameHeader::parse(frame[..FRAME_HEADER_SIZE].try_into().unwrap());
        let next_le = le
            .update(ByteOrder::Little, &frame[..8])
            .update(ByteOrder::Little, &frame[FRAME_HEADER_SIZE..]);
        if fh.salts != h.salts || fh.checksum != next_le {
            break;
        }
        le = next_le;
        be = be
            .update(ByteOrder::Big, &frame[..8])
            .update(ByteOrder::Big, &frame[FRAME_HEADER_SIZE..]);
        fh.checksum = be;
        out[off..off + FRAME_HEADER_SIZE].copy_from_slice(&fh.encode());
        off += fs;
    }
    assert_eq!(
        u32::from_be_bytes([out[0], out[1], out[2], out[3]]),
        MAGIC_BIG
    );
    out
}

/// Writes WALs frame by frame with correct checksums, for crafted cases.
pub(crate) struct WalWriter {
    pub(crate) bytes: Vec<u8>,
    pub(crate) header: Header,
    cksum: Checksum,
}

impl WalWriter {
    pub(crate) fn new(order: ByteOrder, page_size: u32, salts: Salts) -> WalWriter {
        let mut header = Header {
            byte_order: order,
            page_size,
            checkpoint_seq: 0,
            salts,
            checksum: Checksum::ZERO,
        };
        let bytes = header.encode().to_vec();
        header.checksum = Checksum {
            s0: u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
            s1: u32::from_be_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]),
        };
        WalWriter {
            bytes,
            cksum: header.checksum,
            header,
        }
    }

    /// Appends a valid frame and returns its offset.
    pub(crate) fn frame(&mut self, pgno: u32, commit: u32, page: &[u8]) -> u64 {
        assert_eq!(page.len(), self.header.page_size as usize);
        let order = self.header.byte_order;
        let mut fh = FrameHeader {
            pgno,
            commit,
            salts: self.header.salts,
            checksum: Checksum::ZERO,
        };
        self.cksum = self
            .cksum
            .update(order, &fh.encode()[..8])
            .update(order, page);
        fh.checksum = self.cksum;
        self.append(fh, page)
    }

    /// Appends a frame of another generation (its checksum chains from
    /// nothing in particular).
    pub(crate) fn stale_frame(&mut self, pgno: u32, salts: Salts, page: &[u8]) -> u64 {
        let fh = FrameHeader {
            pgno,
            commit: 0,
            salts,
            checksum: Checksum { s0: 1, s1: 2 },
        };
        self.append(fh, page)
    }

    fn append(&mut self, fh: FrameHeader, page: &[u8]) -> u64 {
        let off = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&fh.encode());
        self.bytes.extend_from_slice(page);
        off
    }
}
