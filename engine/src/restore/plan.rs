//! Choosing the files to restore from (RESTORE.md §4).
//!
//! [`choose`] is the whole algorithm over in-memory listings, with no I/O,
//! so it can be tested on synthetic replicas; [`plan`] lists the replica and
//! calls it.

use std::cmp::Ordering;
use std::time::SystemTime;

use backends::{FileInfo, MAX_LEVEL, ReplicaClient, SNAPSHOT_LEVEL};
use ltx::TxId;

use super::Target;
use super::error::{RestoreError, Result};

/// The files a restore applies, in order: usually a level-9 snapshot, then
/// files of levels 8..0 that extend it. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The files, oldest first; each starts at or before the previous one's
    /// MaxTXID + 1 and ends after it.
    pub files: Vec<FileInfo>,
}

impl Plan {
    /// MinTXID of the first file (1 for a restorable plan).
    pub fn min_txid(&self) -> TxId {
        self.files.first().map_or(TxId::ZERO, |f| f.id.min_txid)
    }

    /// MaxTXID of the last file: the TXID the restored database will be at.
    pub fn max_txid(&self) -> TxId {
        self.files.last().map_or(TxId::ZERO, |f| f.id.max_txid)
    }

    /// Total listed size of the files, in bytes.
    pub fn fetch_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Lists the replica's levels (with exact creation times when the target is
/// a time, as Litestream does for S3) and chooses the files for `target`.
pub async fn plan(client: &dyn ReplicaClient, target: Target) -> Result<Plan> {
    target.validate()?;
    let mut levels = Vec::with_capacity(usize::from(MAX_LEVEL) + 1);
    for level in 0..=MAX_LEVEL {
        let listed = match target {
            Target::Time(_) => client.list_with_exact_times(level, TxId::ZERO).await,
            _ => client.list(level, TxId::ZERO).await,
        };
        levels.push(listed.map_err(|source| RestoreError::List { level, source })?);
    }
    choose(&levels, target)
}

/// The planning algorithm of RESTORE.md §4 over listings: `levels[l]` holds
/// level `l`'s files (missing entries are empty levels). Each listing is
/// taken in (MinTXID, MaxTXID) order, as backends return it.
///
/// 1. The base is the last eligible level-9 snapshot.
/// 2. Then, repeatedly, every level 8..0 offers its best eligible file that
///    starts at or before the current TXID + 1 and ends after it; the best
///    offer (see [`better`]) is appended. Each level walks its listing once,
///    so a file passed over is never reconsidered.
/// 3. Without a target, a file that could not be reached is a gap: restoring
///    "latest" must not silently stop early.
pub fn choose(levels: &[Vec<FileInfo>], target: Target) -> Result<Plan> {
    target.validate()?;
    let listing = |level: u8| -> Vec<FileInfo> {
        let mut files = levels.get(usize::from(level)).cloned().unwrap_or_default();
        files.sort_by_key(|f| (f.id.min_txid, f.id.max_txid));
        files
    };
    let mut files = Vec::new();

    let snapshot = listing(SNAPSHOT_LEVEL)
        .into_iter()
        .rfind(|f| target.admits(f));
    let mut cur = TxId::ZERO;
    if let Some(s) = snapshot {
        cur = s.id.max_txid;
        files.push(s);
    }
    if target.reached(cur) {
        return Ok(Plan { files });
    }

    let mut cursors: Vec<Cursor> = (0..SNAPSHOT_LEVEL)
        .rev()
        .map(|level| Cursor::new(listing(level)))
        .collect();
    loop {
        let mut best: Option<(usize, FileInfo)> = None;
        for (i, cursor) in cursors.iter_mut().enumerate() {
            cursor.refresh(cur, target);
            if let Some(c) = cursor.candidate
                && best.as_ref().is_none_or(|(_, b)| better(&c, b))
            {
                best = Some((i, c));
            }
        }
        let Some((i, file)) = best else { break };
        cursors[i].candidate = None;
        if file.id.max_txid <= cur {
            continue;
        }
        cur = file.id.max_txid;
        files.push(file);
        if target.reached(cur) {
            break;
        }
    }

    if !files.is_empty() && target == Target::Latest {
        for cursor in &cursors {
            if let Some(next) = cursor.next()
                && next.id.min_txid.get() > cur.get().saturating_add(1)
            {
                return Err(RestoreError::NonContiguous {
                    have: cur,
                    next: next.id.min_txid,
                    level: next.id.level,
                });
            }
        }
    }
    if files.is_empty() {
        let listed = levels.iter().map(Vec::len).sum();
        return Err(RestoreError::NoBackups { target, listed });
    }
    if let Target::TxId(x) = target
        && cur < x
    {
        return Err(RestoreError::TxNotAvailable {
            txid: x,
            reached: cur,
        });
    }
    Ok(Plan { files })
}

/// Whether `a` is preferable to `b` as the next file: it reaches further
/// (larger MaxTXID), then covers more (smaller MinTXID), then is more
/// compacted (higher level), then is older (earlier creation time).
pub fn better(a: &FileInfo, b: &FileInfo) -> bool {
    let key = |f: &FileInfo| (f.id.max_txid, std::cmp::Reverse(f.id.min_txid), f.id.level);
    match key(a).cmp(&key(b)) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => a.created_at < b.created_at,
    }
}

/// One level's walk through its listing.
struct Cursor {
    files: Vec<FileInfo>,
    /// Index of the next file not yet looked at.
    pos: usize,
    /// The best eligible file seen that extends the chain.
    candidate: Option<FileInfo>,
}

impl Cursor {
    fn new(files: Vec<FileInfo>) -> Cursor {
        Cursor {
            files,
            pos: 0,
            candidate: None,
        }
    }

    fn next(&self) -> Option<&FileInfo> {
        self.files.get(self.pos)
    }

    /// Drops a candidate the chain has passed, then looks at every file that
    /// starts at or before `cur + 1`, keeping the best that is eligible and
    /// ends after `cur`.
    fn refresh(&mut self, cur: TxId, target: Target) {
        if self.candidate.is_some_and(|c| c.id.max_txid <= cur) {
            self.candidate = None;
        }
        while let Some(&f) = self.files.get(self.pos) {
            if f.id.min_txid.get() > cur.get().saturating_add(1) {
                break;
            }
            self.pos += 1;
            if f.id.max_txid <= cur || !target.admits(&f) {
                continue;
            }
            if self.candidate.is_none_or(|c| better(&f, &c)) {
                self.candidate = Some(f);
            }
        }
    }
}

impl Target {
    /// Whether `f` may be part of a plan for this target: it does not end
    /// after the target TXID, and was created strictly before the target
    /// time.
    fn admits(&self, f: &FileInfo) -> bool {
        match *self {
            Target::Latest => true,
            Target::TxId(x) => f.id.max_txid <= x,
            Target::Time(t) => f.created_at < t,
        }
    }

    /// Whether a chain reaching `cur` is complete for this target.
    fn reached(&self, cur: TxId) -> bool {
        matches!(*self, Target::TxId(x) if cur >= x)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Target::TxId(x) if x == TxId::ZERO => Err(RestoreError::InvalidOptions(
                "TXID 0 is not a transaction; TXIDs start at 1".into(),
            )),
            Target::Time(t) if t <= SystemTime::UNIX_EPOCH => Err(RestoreError::InvalidOptions(
                "the target time must be after 1970-01-01T00:00:00Z".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
