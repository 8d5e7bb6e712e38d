//! One sync step (REPLICATION.md §4): the continuity check, the frames to
//! convert, the L0 file (staged, or streamed when it is a full snapshot)
//! and the position it leaves.

use std::fs::File;

use ltx::Header;

use super::build::{self, L0Origin, L0Source};
use super::continuity::{self, LastPageCheck, Previous, SnapshotReason};
use super::error::{DbError, Result};
use super::{Db, LastFrame, MetaDir, Written, now_ms};
use crate::wal::{self, Salts};

impl Db {
    /// One step: §4.2 continuity, §4.3 frames, §4.4 the file, §4.5 state.
    pub(super) fn sync_step(
        &mut self,
        limit: Option<u64>,
        force: Option<SnapshotReason>,
    ) -> Result<Step> {
        let open = self
            .open
            .as_ref()
            .ok_or(DbError::Internal("sync before open"))?;
        let page_size = open.page_size;
        let wal_file =
            File::open(&self.wal_path).map_err(|e| DbError::io("open", &self.wal_path, e))?;
        let wal_len =
            wal::ReadAt::size(&wal_file).map_err(|e| DbError::io("stat", &self.wal_path, e))?;
        let header = wal::read_header(&wal_file)?;

        let restarted_after_seal = std::mem::take(&mut self.restarted_after_seal);
        let prev = self.pos.map(|header| Previous {
            header,
            synced_to_wal_end: self.synced_to_wal_end,
            restarted_after_seal,
        });
        let mut check = PageCheck {
            meta: &self.meta,
            pos: self.pos,
            cache: self.last_frame,
        };
        let mut start = continuity::check(&wal_file, header.as_ref(), wal_len, prev, &mut check)?;
        #[cfg(test)]
        if let Some(hook) = self.after_check.as_mut() {
            hook();
        }
        if force.is_some() {
            start = continuity::Start {
                offset: wal::HEADER_SIZE as u64,
                salts: header.map(|h| h.salts).unwrap_or_default(),
                prev_commit: 0,
                snapshot: force,
            };
        }
        let Some(header) = header else {
            // No WAL yet: nothing committed since the database file itself.
            if start.snapshot.is_none() {
                return Ok(Step::nothing(true));
            }
            return self.write_step(page_size, &wal_file, None, start, wal_len);
        };

        let reader = if start.offset == wal::HEADER_SIZE as u64 {
            wal::Reader::open(&wal_file)?
        } else {
            match wal::Reader::resume(&wal_file, start.offset, start.salts) {
                Ok(r) => r,
                Err(e) if e.is_prev_frame_mismatch() => {
                    // The WAL restarted and was overwritten since the check
                    // above (possible while our read transaction sits on a
                    // fully checkpointed WAL). Commits of the old generation
                    // past our position may have been checkpointed with it:
                    // nothing proves continuity any more (§4.2).
                    start = continuity::Start {
                        offset: wal::HEADER_SIZE as u64,
                        salts: header.salts,
                        prev_commit: 0,
                        snapshot: Some(SnapshotReason::WalOverwritten),
                    };
                    wal::Reader::open(&wal_file)?
                }
                Err(e) => return Err(e.into()),
            }
        };
        let Some(reader) = reader else {
            return Ok(Step::nothing(true));
        };
        let limit = if start.snapshot.is_some() {
            None
        } else {
            limit
        };
        let scan = reader.scan(limit, &mut self.scratch)?;
        let _ = header;
        self.write_step(page_size, &wal_file, Some(scan), start, wal_len)
    }

    fn write_step(
        &mut self,
        page_size: u32,
        wal_file: &File,
        scan: Option<wal::Scan>,
        start: continuity::Start,
        wal_len: u64,
    ) -> Result<Step> {
        let open = self
            .open
            .as_ref()
            .ok_or(DbError::Internal("sync before open"))?;
        let db_len = wal::ReadAt::size(&open.db_file)
            .map_err(|e| DbError::io("stat", &self.opts.path, e))?;
        let (pages, wal_size, scan_commit, limited, salts) = match &scan {
            Some(s) => (
                Some(&s.pages),
                if s.pages.is_empty() { 0 } else { s.wal_size() },
                s.commit,
                s.is_limited(),
                s.salts,
            ),
            None => (None, 0, 0, false, Salts::default()),
        };
        let commit = if scan_commit > 0 {
            scan_commit
        } else {
            (db_len / u64::from(page_size)) as u32
        };
        let end = start.offset + wal_size;
        if start.snapshot.is_none() && wal_size == 0 {
            self.synced_to_wal_end = end == wal_len;
            return Ok(Step::nothing(self.synced_to_wal_end));
        }
        if commit == 0 {
            return Ok(Step::nothing(true));
        }
        let txid = self
            .txid()
            .next()
            .ok_or(DbError::Internal("TXID overflow"))?;
        let origin = L0Origin {
            min_txid: txid,
            txid,
            timestamp: now_ms(),
            wal_offset: if scan.is_some() { start.offset } else { 0 },
            wal_size,
            salts,
        };
        let src = L0Source {
            db_file: &open.db_file,
            db_path: &self.opts.path,
            wal_file,
            wal_path: &self.wal_path,
            page_size,
            commit,
            pages,
            snapshot: start.snapshot.is_some(),
            prev_commit: start.prev_commit,
        };
        let mut streamed = None;
        if start.snapshot.is_some()
            && let Some(sink) = self.sink.as_mut()
        {
            let header = build::l0_header(&src, &origin);
            let mut stats = None;
            let taken = sink.stream_l0(&header, &mut |w| {
                stats = Some(build::write_l0(&src, &origin, w)?);
                Ok(())
            })?;
            if taken {
                let stats = stats.ok_or(DbError::Internal("streamed L0 without stats"))?;
                streamed = Some((header, stats));
            }
        }
        let (header, stats) = match streamed {
            Some(s) => s,
            None => {
                let stats = self
                    .meta
                    .write_l0(txid, |w| build::write_l0(&src, &origin, w))?;
                (self.meta.read_l0_header(txid)?, stats)
            }
        };
        let is_streamed = streamed.is_some();

        // Remember the last frame for the next continuity check.
        self.last_frame = None;
        if wal_size > 0 {
            let frame_off = end - wal::frame_size(page_size);
            let mut buf = vec![0u8; wal::frame_size(page_size) as usize];
            if let Some(f) = wal::read_frame(wal_file, page_size, frame_off, &mut buf)? {
                let mut crc = ltx::Crc64::new();
                crc.update(f.page);
                self.last_frame = Some(LastFrame {
                    txid,
                    pgno: f.header.pgno,
                    crc: crc.value(),
                });
            }
        }
        if is_streamed {
            // Only now, with the file whole on the replica, does it count.
            self.meta
                .write_streamed(&header, self.last_frame.map(|f| (f.pgno, f.crc)))?;
        }
        self.pos = Some(header);
        self.last_synced_wal_offset = Some(if scan.is_some() {
            end
        } else {
            wal::HEADER_SIZE as u64
        });
        self.synced_to_wal_end = end == wal_len;
        self.synced_since_checkpoint = true;
        Ok(Step {
            written: Some(Written {
                txid,
                snapshot: start.snapshot,
                pages: stats.pages,
                wal_bytes: wal_size,
                file_bytes: stats.bytes,
                streamed: is_streamed,
            }),
            limited,
            at_wal_end: self.synced_to_wal_end,
        })
    }
}

pub(super) struct Step {
    pub(super) written: Option<Written>,
    pub(super) limited: bool,
    pub(super) at_wal_end: bool,
}

impl Step {
    fn nothing(at_wal_end: bool) -> Step {
        Step {
            written: None,
            limited: false,
            at_wal_end,
        }
    }
}

struct PageCheck<'a> {
    meta: &'a MetaDir,
    pos: Option<Header>,
    cache: Option<LastFrame>,
}

impl LastPageCheck for PageCheck<'_> {
    fn holds(&mut self, pgno: u32, page: &[u8]) -> Result<bool> {
        let Some(pos) = self.pos else {
            return Ok(false);
        };
        if let Some(c) = self.cache
            && c.txid == pos.max_txid
            && c.pgno == pgno
        {
            let mut crc = ltx::Crc64::new();
            crc.update(page);
            return Ok(crc.value() == c.crc);
        }
        if !self.meta.l0_path(pos.max_txid).exists() {
            // Streamed or adopted from the replica without its last page
            // known: continuity cannot be proven.
            return Ok(false);
        }
        Ok(self
            .meta
            .find_page(pos.max_txid, pgno)?
            .is_some_and(|p| p == page))
    }
}
