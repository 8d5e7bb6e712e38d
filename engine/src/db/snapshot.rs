//! Full snapshots of large databases (ARCHITECTURE.md "Snapshots of very
//! large databases"): pages are read and LZ4-compressed on worker threads
//! and written in page order by the calling thread, with bounded queues so
//! memory stays flat whatever the database size.
//!
//! Batch `b` covers pages `b * per_batch + 1 ..`; worker `k` takes batches
//! `k, k + n, k + 2n, …` and hands them over on its own queue, so the
//! writer, taking batch `b` from worker `b % n`, gets them in order without
//! a reorder buffer. At most `workers × (QUEUE_DEPTH + 1)` batches exist at
//! once.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ltx::{Encoder, FrameBatch, Header, TxId, lock_pgno};

use super::build::{self, L0Origin, L0Source, read_wal_page};
use super::error::{DbError, Result};
use super::{Db, now_ms};
use crate::wal::{self, ReadAt, Salts};

/// Uncompressed bytes per batch: large enough for one efficient positional
/// read, small enough that the pipeline stays a few MB.
const BATCH_BYTES: usize = 512 * 1024;
/// Finished batches a worker may queue ahead of the writer.
const QUEUE_DEPTH: usize = 1;
/// Compression threads at most; more cores rarely help once the writer or
/// the backend is the bottleneck, and each costs a few batches of memory.
const MAX_WORKERS: usize = 8;
/// Databases below this many pages are encoded on the calling thread.
const PARALLEL_MIN_PAGES: u32 = 64;

impl Db {
    /// Streams a full snapshot of the database at the local position, as a
    /// level-9 file covering TXIDs 1..=position (REPLICATION.md §8), into the
    /// writer `open` returns for the file's header: WAL frames only up to
    /// what was synced, so the snapshot never runs ahead of level 0. Pages
    /// come from the database file and the WAL under our read transaction,
    /// so writers are never blocked. Returns the header and the writer,
    /// or `Ok(None)` before the first sync.
    pub fn write_snapshot<W: Write>(
        &mut self,
        open: impl FnOnce(&Header) -> Result<W>,
    ) -> Result<Option<(Header, W)>> {
        let Some(pos) = self.pos else { return Ok(None) };
        let open_db = self
            .open
            .as_ref()
            .ok_or(DbError::Internal("snapshot before open"))?;
        let page_size = open_db.page_size;
        let wal_file =
            File::open(&self.wal_path).map_err(|e| DbError::io("open", &self.wal_path, e))?;
        let first = wal::HEADER_SIZE as u64;
        let wal_end = match self.last_synced_wal_offset {
            Some(o) => o,
            None => {
                let header = wal::read_header(&wal_file)?;
                let same = header.is_some_and(|h| {
                    h.salts
                        == Salts {
                            salt1: pos.wal_salt1,
                            salt2: pos.wal_salt2,
                        }
                });
                if same {
                    (pos.wal_offset + pos.wal_size) as u64
                } else {
                    first
                }
            }
        };
        let scan = match wal::Reader::open(&wal_file)? {
            Some(r) if wal_end > first => Some(r.scan(Some(wal_end - first), &mut self.scratch)?),
            _ => None,
        };
        let db_len = wal::ReadAt::size(&open_db.db_file)
            .map_err(|e| DbError::io("stat", &self.opts.path, e))?;
        let (pages, commit, end, salts) = match &scan {
            Some(s) if s.commit > 0 => (Some(&s.pages), s.commit, s.end, s.salts),
            Some(s) => (None, (db_len / u64::from(page_size)) as u32, first, s.salts),
            None => (
                None,
                (db_len / u64::from(page_size)) as u32,
                first,
                Salts::default(),
            ),
        };
        let frame = wal::frame_size(page_size);
        let wal_offset = end.saturating_sub(frame).max(first);
        let origin = L0Origin {
            min_txid: TxId::new(1),
            txid: pos.max_txid,
            timestamp: now_ms(),
            wal_offset: if scan.is_some() { wal_offset } else { 0 },
            wal_size: if scan.is_some() { end - wal_offset } else { 0 },
            salts,
        };
        let src = L0Source {
            db_file: &open_db.db_file,
            db_path: &self.opts.path,
            wal_file: &wal_file,
            wal_path: &self.wal_path,
            page_size,
            commit,
            pages,
            snapshot: true,
            prev_commit: 0,
        };
        let header = build::l0_header(&src, &origin);
        let mut out = open(&header)?;
        build::write_l0(&src, &origin, &mut out)?;
        Ok(Some((header, out)))
    }
}

/// How many compression threads a snapshot uses here.
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_WORKERS)
}

/// Writes every page `1..=src.commit` (never the lock page, LTX.md §6) into
/// `enc`, reading from the database file with the WAL overlay of
/// `src.pages`. Returns (pages written, pages read from the database file).
pub(super) fn encode_all_pages<W: Write>(
    src: &L0Source<'_>,
    enc: &mut Encoder<W>,
    workers: usize,
) -> Result<(u64, u64)> {
    let per_batch = (BATCH_BYTES / src.page_size as usize).max(1) as u32;
    let batches = src.commit.div_ceil(per_batch);
    let workers = if src.commit < PARALLEL_MIN_PAGES {
        1
    } else {
        workers.clamp(1, batches.max(1) as usize)
    };
    if workers == 1 {
        let mut buf = Vec::new();
        let mut batch = FrameBatch::new(src.page_size);
        let (mut pages, mut from_db) = (0, 0);
        for b in 0..batches {
            from_db += fill_batch(src, b, per_batch, &mut buf, &mut batch)?;
            pages += batch.len() as u64;
            enc.encode_batch(&batch)?;
        }
        return Ok((pages, from_db));
    }

    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut queues: Vec<Receiver<Result<(FrameBatch, u64)>>> = Vec::with_capacity(workers);
        for k in 0..workers {
            let (tx, rx) = sync_channel(QUEUE_DEPTH);
            queues.push(rx);
            let failed = &failed;
            scope.spawn(move || {
                worker(
                    src,
                    k as u32,
                    workers as u32,
                    batches,
                    per_batch,
                    tx,
                    failed,
                )
            });
        }
        let result = (|| {
            let (mut pages, mut from_db) = (0, 0);
            for b in 0..batches {
                let queue = &queues[(b as usize) % workers];
                let (batch, db) = queue
                    .recv()
                    .map_err(|_| DbError::Internal("snapshot worker stopped early"))??;
                pages += batch.len() as u64;
                from_db += db;
                enc.encode_batch(&batch)?;
            }
            Ok((pages, from_db))
        })();
        if result.is_err() {
            // Wake workers blocked on a full queue, then let them see the flag.
            failed.store(true, Ordering::Relaxed);
        }
        drop(queues);
        result
    })
}

fn worker(
    src: &L0Source<'_>,
    first: u32,
    step: u32,
    batches: u32,
    per_batch: u32,
    tx: SyncSender<Result<(FrameBatch, u64)>>,
    failed: &AtomicBool,
) {
    let mut buf = Vec::new();
    let mut b = first;
    while b < batches && !failed.load(Ordering::Relaxed) {
        let mut batch = FrameBatch::new(src.page_size);
        let r = fill_batch(src, b, per_batch, &mut buf, &mut batch).map(|db| (batch, db));
        let stop = r.is_err();
        if tx.send(r).is_err() || stop {
            return;
        }
        b += step;
    }
}

/// Reads and compresses batch `b` into `batch`; returns how many of its
/// pages came from the database file rather than the WAL.
fn fill_batch(
    src: &L0Source<'_>,
    b: u32,
    per_batch: u32,
    buf: &mut Vec<u8>,
    batch: &mut FrameBatch,
) -> Result<u64> {
    batch.clear();
    let ps = src.page_size as usize;
    let first = b * per_batch + 1;
    let last = first.saturating_add(per_batch - 1).min(src.commit);
    let count = (last - first + 1) as usize;
    // One positional read for the whole run; past the end of the file pages
    // read as zeros, as SQLite treats a short read.
    buf.resize(count * ps, 0);
    let at = u64::from(first - 1) * u64::from(src.page_size);
    let n = src
        .db_file
        .read_full_at(buf, at)
        .map_err(|e| DbError::io("read", src.db_path, e))?;
    buf[n..].fill(0);
    let lock = lock_pgno(src.page_size);
    let mut from_db = 0;
    for (i, pgno) in (first..=last).enumerate() {
        if pgno == lock {
            continue;
        }
        let page = &mut buf[i * ps..(i + 1) * ps];
        match src.pages.and_then(|m| m.get(pgno)) {
            Some(frame_offset) => read_wal_page(src, frame_offset, page)?,
            None => from_db += 1,
        }
        batch.push(pgno, page)?;
    }
    Ok(from_db)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;

    use ltx::{Checksum, Encoder, Header, HeaderFlags, TxId};

    use super::*;

    /// Encodes every page of `file` with `workers` threads.
    fn encode(file: &File, path: &std::path::Path, commit: u32, workers: usize) -> Vec<u8> {
        let src = L0Source {
            db_file: file,
            db_path: path,
            wal_file: file,
            wal_path: path,
            page_size: 1024,
            commit,
            pages: None,
            snapshot: true,
            prev_commit: 0,
        };
        let header = Header {
            flags: HeaderFlags::NO_CHECKSUM,
            page_size: 1024,
            commit,
            min_txid: TxId::new(1),
            max_txid: TxId::new(1),
            timestamp: 1_700_000_000_000,
            ..Header::default()
        };
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, &header).unwrap();
        let (pages, from_db) = encode_all_pages(&src, &mut enc, workers).unwrap();
        assert_eq!((pages, from_db), (u64::from(commit), u64::from(commit)));
        enc.finish(Checksum::ZERO).unwrap();
        out
    }

    #[test]
    fn any_number_of_workers_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pages");
        let mut f = File::create(&path).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        // 2000 pages, the last 30 past the end of the file (read as zeros).
        for i in 0..1970u32 {
            let page: Vec<u8> = (0..1024)
                .map(|j| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if (i + j) % 3 == 0 { 0 } else { x as u8 }
                })
                .collect();
            f.write_all(&page).unwrap();
        }
        drop(f);
        let file = File::open(&path).unwrap();
        let serial = encode(&file, &path, 2000, 1);
        for workers in [2, 3, 8] {
            let parallel = encode(&file, &path, 2000, workers);
            assert!(serial == parallel, "{workers} workers differ from one");
        }
        let mut dec = ltx::Decoder::new(serial.as_slice()).unwrap();
        let mut page = vec![0u8; 1024];
        let mut last = 0;
        while let Some(p) = dec.next_page(&mut page).unwrap() {
            last = p;
        }
        dec.finish().unwrap();
        assert_eq!((last, page), (2000, vec![0u8; 1024]));
    }
}
