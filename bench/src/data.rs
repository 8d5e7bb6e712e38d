//! Reproducible SQLite data: a seeded generator of rows with mixed
//! compressibility, the database builder, and the marker row every writer
//! transaction updates so the lag poller can tell which commit a replica file
//! contains.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, params};

/// The prefix of the marker blob; the big-endian sequence number follows.
pub(crate) const MARKER_MAGIC: &[u8; 8] = b"FRSHTSEQ";

/// SplitMix64: tiny, fast, and the same sequence on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator whose output depends only on `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `out` with a row: about half text from a small vocabulary
    /// (compresses well, like names and JSON), half random bytes (like
    /// hashes, ids and already-compressed values).
    pub(crate) fn fill_row(&mut self, out: &mut Vec<u8>, len: usize) {
        const WORDS: [&[u8]; 16] = [
            b"user",
            b"order",
            b"status",
            b"pending",
            b"shipped",
            b"amount",
            b"currency",
            b"EUR",
            b"created_at",
            b"2026-11-22",
            b"address",
            b"street",
            b"city",
            b"name",
            b"{\"id\":",
            b"},",
        ];
        out.clear();
        let text = len / 2;
        while out.len() < text {
            let w = WORDS[(self.next_u64() % WORDS.len() as u64) as usize];
            out.extend_from_slice(w);
            out.push(b' ');
        }
        out.truncate(text);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
    }
}

/// The marker blob for sequence number `seq`.
pub(crate) fn marker(seq: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(MARKER_MAGIC);
    m[8..].copy_from_slice(&seq.to_be_bytes());
    m
}

/// The page holding the marker row: the `marker` table's root, a single
/// leaf while it has one small row.
pub(crate) fn marker_page(db: &Path) -> Result<u32> {
    let conn = Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    let root: u32 = conn.query_row(
        "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'marker'",
        [],
        |r| r.get(0),
    )?;
    Ok(root)
}

/// The largest marker sequence number in a page, if any.
pub(crate) fn find_marker(page: &[u8]) -> Option<u64> {
    let mut best = None;
    let mut from = 0;
    while from + 16 <= page.len() {
        let hay = &page[from..];
        // Cheap first-byte scan before the 8-byte comparison.
        let Some(i) = hay.iter().position(|&b| b == MARKER_MAGIC[0]) else {
            break;
        };
        let at = from + i;
        if at + 16 <= page.len() && &page[at..at + 8] == MARKER_MAGIC {
            let mut n = [0u8; 8];
            n.copy_from_slice(&page[at + 8..at + 16]);
            let seq = u64::from_be_bytes(n);
            best = Some(best.map_or(seq, |b: u64| b.max(seq)));
        }
        from = at + 1;
    }
    best
}

/// Opens a database the way an application would: WAL mode, synchronous
/// NORMAL (Litestream's recommendation), a busy timeout for the moments a
/// replicator holds the write lock.
pub(crate) fn open_app(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("open database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    Ok(conn)
}

/// Creates a database with the bench schema and about `size` bytes of seeded
/// rows, checkpointed into the main file (no `-wal` left behind).
pub(crate) fn build_database(path: &Path, page_size: u32, size: u64, seed: u64) -> Result<()> {
    let conn =
        Connection::open(path).with_context(|| format!("create database {}", path.display()))?;
    conn.pragma_update(None, "page_size", page_size)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "off")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS marker (id INTEGER PRIMARY KEY, v BLOB NOT NULL);",
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO marker (id, v) VALUES (1, ?1)",
        params![&marker(0)[..]],
    )?;
    let mut rng = Rng::new(seed);
    let mut row = Vec::new();
    let mut written = 0u64;
    // Rows of 300..1300 bytes: several per page, a few overflow at 512-byte pages.
    while written < size {
        let tx = conn.unchecked_transaction()?;
        {
            let mut ins = tx.prepare_cached("INSERT INTO t (v) VALUES (?1)")?;
            for _ in 0..2000 {
                let len = 300 + (rng.next_u64() % 1000) as usize;
                rng.fill_row(&mut row, len);
                ins.execute(params![&row])?;
                written += len as u64 + 8;
            }
        }
        tx.commit()?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    Ok(())
}

/// A digest of the bench tables' rows: equal digests mean equal contents.
pub(crate) fn content_digest(conn: &Connection) -> Result<(u64, u64)> {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    let mut rows = 0u64;
    for table in ["t", "marker"] {
        let mut stmt = conn.prepare(&format!("SELECT id, v FROM {table} ORDER BY id"))?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let id: i64 = r.get(0)?;
            let v: Vec<u8> = r.get(1)?;
            h.write_i64(id);
            h.write_usize(v.len());
            h.write(&v);
            rows += 1;
        }
    }
    Ok((rows, h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_found_and_the_newest_wins() {
        let mut page = vec![0u8; 4096];
        page[100..116].copy_from_slice(&marker(7));
        page[3000..3016].copy_from_slice(&marker(42));
        page[4090] = b'F';
        assert_eq!(find_marker(&page), Some(42));
        assert_eq!(find_marker(&[0u8; 4096]), None);
    }

    #[test]
    fn digests_tell_databases_apart() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let digest = |name: &str, seed: u64| -> Result<(u64, u64)> {
            let p = dir.path().join(name);
            build_database(&p, 4096, 200_000, seed)?;
            content_digest(&open_app(&p)?)
        };
        let a = digest("a.db", 1)?;
        assert_eq!(a, digest("b.db", 1)?, "same seed, same rows");
        assert_ne!(a, digest("c.db", 2)?, "another seed, other rows");
        let conn = open_app(&dir.path().join("a.db"))?;
        conn.execute("UPDATE t SET v = x'00' WHERE id = 7", [])?;
        assert_ne!(a, content_digest(&conn)?, "one changed row");
        Ok(())
    }

    #[test]
    fn rows_are_reproducible() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Rng::new(1).fill_row(&mut a, 500);
        Rng::new(1).fill_row(&mut b, 500);
        assert_eq!(a, b);
        Rng::new(2).fill_row(&mut b, 500);
        assert_ne!(a, b);
    }
}
