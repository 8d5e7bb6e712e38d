//! Deciding where the next level-0 file starts and whether it must be a full
//! snapshot (REPLICATION.md §4.2). Every path that cannot prove the WAL still
//! continues the previous file ends in a snapshot: never a gap.

use std::fmt;

use crate::wal::{self, Salts};

/// Why a sync step writes every page instead of the changed ones
/// (REPLICATION.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotReason {
    /// Nothing was synced before (or local state was reset).
    NoPosition,
    /// The newest local file was not made from this WAL (written by another
    /// tool, or downloaded from the replica after local state loss).
    ForeignPosition,
    /// The WAL shrank without us having synced to its end: another process
    /// checkpointed and truncated it.
    WalTruncated,
    /// The WAL header has new salts at a point where continuity cannot be
    /// proven.
    SaltReset,
    /// The last frame we synced is gone or changed.
    WalOverwritten,
    /// Frames of a WAL generation we never saw: a checkpoint by someone else.
    UnknownGeneration,
    /// The WAL restarted after commits we had not synced yet: another
    /// process checkpointed them into the database file while we were not
    /// holding the WAL (typically while stopped).
    UnsyncedCommitsCheckpointed,
    /// Our own TRUNCATE (or a racing) checkpoint (§5 step 12).
    CheckpointBoundary,
    /// The database file was deleted and created again (a new inode).
    DatabaseReplaced,
}

impl fmt::Display for SnapshotReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotReason::NoPosition => "no local position",
            SnapshotReason::ForeignPosition => "local position was not written from this WAL",
            SnapshotReason::WalTruncated => "wal truncated by another process",
            SnapshotReason::SaltReset => "wal header salt reset",
            SnapshotReason::WalOverwritten => "wal overwritten by another process",
            SnapshotReason::UnknownGeneration => {
                "wal generation missed (checkpoint by another process)"
            }
            SnapshotReason::UnsyncedCommitsCheckpointed => {
                "wal restarted after unsynced commits (checkpoint by another process)"
            }
            SnapshotReason::CheckpointBoundary => "checkpoint boundary snapshot",
            SnapshotReason::DatabaseReplaced => {
                "the database file was replaced (deleted and created again)"
            }
        })
    }
}

/// Where the next step reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Start {
    /// WAL offset of the first frame to read.
    pub offset: u64,
    /// Salts the frames must carry.
    pub salts: Salts,
    /// Database size after the previous file (0 if none).
    pub prev_commit: u32,
    /// `Some` when the step must write every page.
    pub snapshot: Option<SnapshotReason>,
}

/// What the continuity check needs to know about the previous L0 file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Previous {
    /// Its header.
    pub header: ltx::Header,
    /// Whether the last sync ended exactly at the end of the WAL file (an
    /// in-memory fact, false after a restart).
    pub synced_to_wal_end: bool,
    /// The WAL restarted right after a checkpoint we ran under the seal:
    /// every frame of this generation was synced before it, and our read
    /// transaction, open since, stops any further restart (it either sits
    /// on a frame, or reads the database file alone and so blocks every
    /// checkpoint from copying the new generation).
    pub restarted_after_seal: bool,
}

/// Answers "is page `pgno` with these bytes in the previous L0 file?"
/// (§4.2 step 7); the caller may use a cache or decode the file.
pub(super) trait LastPageCheck {
    /// Whether the previous file holds exactly this page.
    fn holds(&mut self, pgno: u32, page: &[u8]) -> super::Result<bool>;
}

/// Runs §4.2 against the current WAL. `header` is the WAL's current header
/// (`None`: no valid WAL yet), `wal_len` its file size.
pub(super) fn check<R: wal::ReadAt + ?Sized>(
    wal_file: &R,
    header: Option<&wal::Header>,
    wal_len: u64,
    prev: Option<Previous>,
    last_page: &mut dyn LastPageCheck,
) -> super::Result<Start> {
    const FIRST: u64 = wal::HEADER_SIZE as u64;
    let current = header.map(|h| h.salts).unwrap_or_default();
    let snapshot_from_start = |reason| Start {
        offset: FIRST,
        salts: current,
        prev_commit: 0,
        snapshot: Some(reason),
    };

    let Some(prev) = prev else {
        return Ok(snapshot_from_start(SnapshotReason::NoPosition));
    };
    let h = prev.header;
    if h.wal_offset < FIRST as i64 {
        return Ok(snapshot_from_start(SnapshotReason::ForeignPosition));
    }
    let salts = Salts {
        salt1: h.wal_salt1,
        salt2: h.wal_salt2,
    };
    let offset = (h.wal_offset + h.wal_size) as u64;
    let prev_commit = h.commit;
    let incremental = |offset, salts| Start {
        offset,
        salts,
        prev_commit,
        snapshot: None,
    };

    if prev.restarted_after_seal
        && let Some(now) = header
        && now.page_size == h.page_size
        && now.salts.salt1 == salts.salt1.wrapping_add(1)
    {
        // The restart that followed our sealed checkpoint (a restart adds
        // one to salt-1): nothing of our generation is unsynced, and the
        // new one's frames may already be overwriting our old tail, which
        // the checks below would take for a lost generation.
        return Ok(incremental(FIRST, now.salts));
    }

    if offset > wal_len {
        return Ok(if prev.synced_to_wal_end {
            // Our own checkpoint truncated it: continue in the new WAL.
            incremental(FIRST, current)
        } else {
            snapshot_from_start(SnapshotReason::WalTruncated)
        });
    }
    let Some(header) = header else {
        // No valid header while frames should exist: treat as a reset.
        return Ok(snapshot_from_start(SnapshotReason::SaltReset));
    };
    if header.page_size != h.page_size {
        return Ok(snapshot_from_start(SnapshotReason::SaltReset));
    }
    let salt_match = header.salts == salts;
    if offset == FIRST {
        return Ok(if salt_match {
            incremental(offset, salts)
        } else {
            snapshot_from_start(SnapshotReason::SaltReset)
        });
    }
    let frame = wal::frame_size(h.page_size);
    let Some(prev_off) = offset.checked_sub(frame).filter(|&p| p >= FIRST) else {
        return Err(super::DbError::Unsupported(format!(
            "the newest local LTX file ends at WAL offset {offset}, before the first frame; \
             reset the local state to continue"
        )));
    };
    if prev_off == FIRST {
        return Ok(if salt_match {
            incremental(offset, salts)
        } else {
            snapshot_from_start(SnapshotReason::SaltReset)
        });
    }

    // §4.2 step 7: the last frame we consumed must still be there, unchanged.
    let mut buf = vec![0u8; frame as usize];
    let still_there = match wal::read_frame(wal_file, h.page_size, prev_off, &mut buf)? {
        Some(f) if f.header.salts == salts => last_page.holds(f.header.pgno, f.page)?,
        _ => false,
    };
    if !still_there {
        return Ok(snapshot_from_start(SnapshotReason::WalOverwritten));
    }
    if !salt_match {
        // Restarted WAL whose old tail survived. The old generation may go
        // on past our position with commits we never synced: the restart
        // means they were checkpointed into the database file, and the new
        // generation does not carry them. REPLICATION.md §4.2 step 8 does
        // not look there (nor does Litestream 0.5.17), which loses them.
        if old_generation_has_commits_after(wal_file, offset, salts)? {
            return Ok(snapshot_from_start(
                SnapshotReason::UnsyncedCommitsCheckpointed,
            ));
        }
        // Otherwise fine unless a generation we never saw sits between
        // (§4.2 step 8).
        let gens = wal::salt_generations(wal_file, h.page_size, salts)?;
        let unknown = gens.salts.iter().any(|s| *s != salts && *s != current);
        return Ok(if unknown {
            snapshot_from_start(SnapshotReason::UnknownGeneration)
        } else {
            incremental(FIRST, current)
        });
    }
    Ok(incremental(offset, salts))
}

/// Whether the WAL generation with `salts` holds a valid commit frame at or
/// after `offset`, following its checksum chain from the frame before
/// `offset` (which the caller has just matched against the previous L0
/// file). Frames the new generation overwrote end the chain, as does a
/// torn or uncommitted tail. If that frame is gone by now (the WAL changed
/// since the caller looked), the answer is yes: nothing proves otherwise.
fn old_generation_has_commits_after<R: wal::ReadAt + ?Sized>(
    wal_file: &R,
    offset: u64,
    salts: Salts,
) -> super::Result<bool> {
    let reader = match wal::Reader::resume(wal_file, offset, salts) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(true),
        Err(e) if e.is_prev_frame_mismatch() => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let scan = reader.scan(None, &mut Vec::new())?;
    Ok(scan.transactions > 0)
}
