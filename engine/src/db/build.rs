//! Turning WAL frames and database pages into one level-0 LTX file
//! (REPLICATION.md §4.3–4.4).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use ltx::{Checksum, Encoder, Header, HeaderFlags, TxId, lock_pgno};

use super::error::{DbError, Result};
use crate::wal::{self, PageMap, ReadAt, Salts};

/// Everything a level-0 file is made from.
pub(super) struct L0Source<'a> {
    /// The database file (read-only descriptor kept for the process' life).
    pub db_file: &'a File,
    /// Its path, for errors.
    pub db_path: &'a Path,
    /// The `-wal` file.
    pub wal_file: &'a File,
    /// Its path, for errors.
    pub wal_path: &'a Path,
    /// Page size.
    pub page_size: u32,
    /// Database size in pages after this file.
    pub commit: u32,
    /// Newest committed frame of each page read from the WAL (`None`: no
    /// WAL frames at all).
    pub pages: Option<&'a PageMap>,
    /// Write every page (`true`) or the changed and grown ones.
    pub snapshot: bool,
    /// Database size after the previous file; pages above it that the WAL
    /// did not carry are read from the database file (§4.4 "growth pages").
    pub prev_commit: u32,
}

/// Header fields that describe where the pages came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct L0Origin {
    /// First TXID covered (the file's own TXID, or 1 for a level-9 snapshot).
    pub min_txid: TxId,
    /// The TXID of the file (its last).
    pub txid: TxId,
    /// Wall clock in ms.
    pub timestamp: i64,
    /// WAL offset of the first frame read.
    pub wal_offset: u64,
    /// WAL bytes covered.
    pub wal_size: u64,
    /// Salts of the frames.
    pub salts: Salts,
}

/// Counts of what went into a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct L0Stats {
    /// Pages written.
    pub pages: u64,
    /// Of those, pages read from the database file.
    pub from_db: u64,
    /// Bytes of the LTX file.
    pub bytes: u64,
}

/// Encodes the file into `out`. Pages go from the read buffer straight into
/// the compressor; the lock page is never read or written (LTX.md §6).
pub(super) fn write_l0<W: Write>(src: &L0Source<'_>, origin: &L0Origin, out: W) -> Result<L0Stats> {
    let header = l0_header(src, origin);
    let mut enc = Encoder::new(out, &header)?;
    let mut stats = L0Stats::default();
    if src.snapshot {
        // Every page: compressed in parallel (see `snapshot`).
        let (pages, from_db) =
            super::snapshot::encode_all_pages(src, &mut enc, super::snapshot::default_workers())?;
        stats.pages = pages;
        stats.from_db = from_db;
        stats.bytes = enc.bytes_written();
        enc.finish(Checksum::ZERO)?;
        return Ok(stats);
    }
    let mut page = vec![0u8; src.page_size as usize];
    let lock = lock_pgno(src.page_size);
    let mut put = |pgno: u32, stats: &mut L0Stats, enc: &mut Encoder<W>| -> Result<()> {
        if pgno == lock {
            return Ok(());
        }
        match src.pages.and_then(|m| m.get(pgno)) {
            Some(frame_offset) => read_wal_page(src, frame_offset, &mut page)?,
            None => {
                read_db_page(src, pgno, &mut page)?;
                stats.from_db += 1;
            }
        }
        enc.encode_page(pgno, &page)?;
        stats.pages += 1;
        Ok(())
    };
    // Changed pages and growth pages, merged in ascending order.
    let mut changed = src
        .pages
        .into_iter()
        .flat_map(|m| m.iter().map(|(p, _)| p))
        .peekable();
    let mut growth = (src.prev_commit.saturating_add(1)..=src.commit).peekable();
    loop {
        let next = match (changed.peek(), growth.peek()) {
            (Some(&c), Some(&g)) => c.min(g),
            (Some(&c), None) => c,
            (None, Some(&g)) => g,
            (None, None) => break,
        };
        while changed.next_if(|&c| c == next).is_some() {}
        while growth.next_if(|&g| g == next).is_some() {}
        if next <= src.commit {
            put(next, &mut stats, &mut enc)?;
        }
    }
    stats.bytes = enc.bytes_written();
    enc.finish(Checksum::ZERO)?;
    Ok(stats)
}

/// The header of the file `src` and `origin` describe (REPLICATION.md §4.4).
pub(super) fn l0_header(src: &L0Source<'_>, origin: &L0Origin) -> Header {
    Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size: src.page_size,
        commit: src.commit,
        min_txid: origin.min_txid,
        max_txid: origin.txid,
        timestamp: origin.timestamp,
        pre_apply_checksum: Checksum::ZERO,
        wal_offset: origin.wal_offset as i64,
        wal_size: origin.wal_size as i64,
        wal_salt1: if origin.wal_offset == 0 {
            0
        } else {
            origin.salts.salt1
        },
        wal_salt2: if origin.wal_offset == 0 {
            0
        } else {
            origin.salts.salt2
        },
        node_id: 0,
    }
}

pub(super) fn read_wal_page(src: &L0Source<'_>, frame_offset: u64, page: &mut [u8]) -> Result<()> {
    let at = frame_offset + wal::FRAME_HEADER_SIZE as u64;
    let n = src
        .wal_file
        .read_full_at(page, at)
        .map_err(|e| DbError::io("read", src.wal_path, e))?;
    if n != page.len() {
        return Err(DbError::Unsupported(format!(
            "the WAL was truncated while frame at offset {frame_offset} was being read; \
             the next sync takes a snapshot"
        )));
    }
    Ok(())
}

/// Reads a page from the database file. Past the end of the file the page
/// reads as zeros, as SQLite itself treats a short read.
fn read_db_page(src: &L0Source<'_>, pgno: u32, page: &mut [u8]) -> Result<()> {
    let at = u64::from(pgno - 1) * u64::from(src.page_size);
    let n = src
        .db_file
        .read_full_at(page, at)
        .map_err(|e| DbError::io("read", src.db_path, e))?;
    page[n..].fill(0);
    Ok(())
}
