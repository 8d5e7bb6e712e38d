//! How far SQLite's WAL has run ahead of the last sync, read from the
//! shared-memory WAL index (`-shm`) without taking any lock, so a monitor
//! woken by a write can tell a commit from a flood.
//!
//! The answer is a hint: the index header may be mid-update when read (it
//! only decides whether to sync now rather than at the next interval), and
//! no data is ever read from it.

use std::fs::File;
use std::path::PathBuf;

use super::Db;
use crate::wal::{self, ReadAt};

/// Offset of `mxFrame` (the number of valid frames) in SQLite's WAL index
/// header, in the host's byte order.
const MX_FRAME: usize = 16;
/// Offset of the WAL header's two salts, copied verbatim (big-endian).
const SALTS: usize = 32;
/// One copy of the index header.
const HEADER_LEN: usize = 48;

impl Db {
    /// Committed WAL frames SQLite holds beyond what the last sync
    /// converted, per the WAL index; `None` when it cannot be read (no
    /// `-shm` yet, or not open).
    pub fn unsynced_frames_hint(&mut self) -> Option<u64> {
        let page_size = self.page_size()?;
        if self.shm.is_none() {
            let mut path = PathBuf::from(self.path().as_os_str());
            path.as_mut_os_string().push("-shm");
            self.shm = File::open(path).ok();
        }
        let shm = self.shm.as_ref()?;
        let mut hdr = [0u8; HEADER_LEN];
        match shm.read_at(&mut hdr, 0) {
            Ok(n) if n == HEADER_LEN => {}
            _ => {
                // Recreated or truncated by SQLite: reopen next time.
                self.shm = None;
                return None;
            }
        }
        let mx_frame = u64::from(u32::from_ne_bytes(
            hdr[MX_FRAME..MX_FRAME + 4].try_into().ok()?,
        ));
        let salt1 = u32::from_be_bytes(hdr[SALTS..SALTS + 4].try_into().ok()?);
        let salt2 = u32::from_be_bytes(hdr[SALTS + 4..SALTS + 8].try_into().ok()?);
        let synced = match (self.pos, self.synced_wal_offset()) {
            (Some(pos), Some(offset)) if (pos.wal_salt1, pos.wal_salt2) == (salt1, salt2) => {
                offset.saturating_sub(wal::HEADER_SIZE as u64) / wal::frame_size(page_size)
            }
            // Another generation: all of it is new.
            _ => 0,
        };
        Some(mx_frame.saturating_sub(synced))
    }

    /// Whether enough has been committed since the last sync that the
    /// checkpoint policy (REPLICATION.md §5) wants a sync now rather than
    /// at the next interval: waiting would let the WAL grow by whatever the
    /// application writes in the meantime.
    pub fn sync_is_urgent(&mut self) -> bool {
        let threshold = u64::from(self.opts.checkpoint.min_page_count);
        self.unsynced_frames_hint()
            .is_some_and(|frames| frames >= threshold)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rusqlite::Connection;

    use super::super::{Db, DbOptions};

    #[test]
    fn the_hint_counts_frames_committed_since_the_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let app = Connection::open(&path).unwrap();
        app.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x BLOB);",
        )
        .unwrap();
        let mut o = DbOptions::new(&path);
        o.meta_path = dir.path().join("meta");
        o.checkpoint.min_page_count = 50;
        o.checkpoint.interval = None;
        let mut db = Db::new(o);
        assert_eq!(db.unsynced_frames_hint(), None, "not open yet");
        db.sync().unwrap();
        assert_eq!(db.unsynced_frames_hint(), Some(0));
        assert!(!db.sync_is_urgent());

        // Each row fills a page of its own: one frame per row and a few
        // b-tree pages.
        for _ in 0..10 {
            app.execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .unwrap();
        }
        let small = db.unsynced_frames_hint().unwrap();
        assert!((10..30).contains(&small), "{small} frames");
        assert!(!db.sync_is_urgent());
        for _ in 0..60 {
            app.execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .unwrap();
        }
        assert!(db.sync_is_urgent(), "{:?}", db.unsynced_frames_hint());

        // The sync takes it all (and checkpoints: the WAL restarts).
        db.sync().unwrap();
        assert_eq!(db.unsynced_frames_hint(), Some(0));
        app.execute("INSERT INTO t VALUES (zeroblob(3000))", [])
            .unwrap();
        let after = db.unsynced_frames_hint().unwrap();
        assert!(
            (1..5).contains(&after),
            "{after} frames in the new generation"
        );
    }
}
