//! The page map a scan produces: page number → offset of its newest
//! committed frame (REPLICATION.md §3 rules 3–5).
//!
//! Representation: one `u64` per page, `pgno << 32 | frame index`, in a
//! sorted `Vec`. A WAL of millions of frames costs 8 bytes per distinct page,
//! and the LTX writer gets pages in ascending order (LTX.md requires it) by
//! walking the vector. A `HashMap` would need about twice the memory and a
//! sort at the end anyway; a `BTreeMap` pays a node allocation per few pages
//! and pointer chasing on every insert.
//!
//! While scanning, the builder appends one entry per frame: frame offsets
//! only grow, so "newest wins" is decided once, when the entries are sorted,
//! and promoting a transaction at its commit frame is just moving a
//! watermark. To keep memory proportional to distinct pages when a few hot
//! pages are rewritten many times, the committed entries are sorted and
//! deduplicated whenever they have doubled since the last time, which keeps
//! the total work at O(frames · log frames).

use super::header::FIRST_FRAME;

/// Entries to accumulate before the first in-scan deduplication.
const COMPACT_MIN: usize = 1 << 16;

/// Committed pages of a scan and where their newest frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMap {
    /// `pgno << 32 | frame index`, ascending, one entry per page.
    entries: Vec<u64>,
    /// Frame size of the WAL, to turn a frame index into an offset.
    frame_size: u64,
}

impl PageMap {
    /// Number of distinct pages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no page was committed in the scanned range.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Offset of the newest committed frame of `pgno`, if the range has one.
    pub fn get(&self, pgno: u32) -> Option<u64> {
        let i = self.entries.partition_point(|&e| pgno_of(e) < pgno);
        let e = *self.entries.get(i)?;
        (pgno_of(e) == pgno).then(|| self.offset_of(e))
    }

    /// Whether `pgno` has a committed frame in the range.
    pub fn contains(&self, pgno: u32) -> bool {
        self.get(pgno).is_some()
    }

    /// `(pgno, frame offset)` in ascending page order: the order LTX files
    /// store pages in.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, u64)> + DoubleEndedIterator + '_ {
        self.entries
            .iter()
            .map(|&e| (pgno_of(e), self.offset_of(e)))
    }

    /// The largest page number in the map.
    pub fn max_pgno(&self) -> Option<u32> {
        self.entries.last().map(|&e| pgno_of(e))
    }

    fn offset_of(&self, e: u64) -> u64 {
        FIRST_FRAME + (e & u64::from(u32::MAX)) * self.frame_size
    }
}

fn pgno_of(e: u64) -> u32 {
    (e >> 32) as u32
}

/// Collects frames during a scan; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct PageMapBuilder {
    /// One entry per accepted frame (fewer after a compaction).
    entries: Vec<u64>,
    /// Entries up to here belong to committed transactions.
    committed: usize,
    /// Length right after the last compaction.
    compacted: usize,
}

impl PageMapBuilder {
    /// Records a frame of the current (not yet committed) transaction.
    pub(crate) fn push(&mut self, pgno: u32, frame_index: u32) {
        self.entries
            .push(u64::from(pgno) << 32 | u64::from(frame_index));
    }

    /// Promotes the current transaction's frames (REPLICATION.md §3 rule 3).
    pub(crate) fn commit(&mut self) {
        self.committed = self.entries.len();
        if self.committed >= COMPACT_MIN.max(2 * self.compacted) {
            sort_newest(&mut self.entries);
            self.committed = self.entries.len();
            self.compacted = self.committed;
        }
    }

    /// Drops frames after the last commit (§3 rule 3) and pages beyond the
    /// final database size (§3 rule 4), and sorts what remains.
    pub(crate) fn finish(mut self, commit: u32, frame_size: u64) -> PageMap {
        self.entries.truncate(self.committed);
        sort_newest(&mut self.entries);
        let keep = self.entries.partition_point(|&e| pgno_of(e) <= commit);
        self.entries.truncate(keep);
        PageMap {
            entries: self.entries,
            frame_size,
        }
    }
}

/// Sorts entries by page and keeps, per page, the one with the highest frame
/// index (the newest frame).
fn sort_newest(entries: &mut Vec<u64>) {
    entries.sort_unstable();
    let mut kept = 0;
    for i in 0..entries.len() {
        let last_of_page = entries
            .get(i + 1)
            .is_none_or(|&next| pgno_of(next) != pgno_of(entries[i]));
        if last_of_page {
            entries[kept] = entries[i];
            kept += 1;
        }
    }
    entries.truncate(kept);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn newest_committed_frame_wins_and_tail_is_dropped() {
        let mut b = PageMapBuilder::default();
        b.push(5, 0);
        b.push(2, 1);
        b.push(5, 2);
        b.commit();
        b.push(2, 3);
        b.push(9, 4);
        b.commit();
        b.push(1, 5); // never committed
        let m = b.finish(9, 100);
        let got: Vec<_> = m.iter().collect();
        assert_eq!(got, vec![(2, 32 + 300), (5, 32 + 200), (9, 32 + 400)]);
        assert_eq!(m.get(5), Some(232));
        assert_eq!(m.get(1), None);
        assert_eq!(m.get(10), None);
        assert!(m.contains(9));
        assert_eq!(m.max_pgno(), Some(9));
    }

    #[test]
    fn pages_beyond_the_final_size_are_dropped() {
        let mut b = PageMapBuilder::default();
        for (i, p) in [1, 7, 8, 3].into_iter().enumerate() {
            b.push(p, i as u32);
        }
        b.commit();
        let m = b.finish(7, 10);
        assert_eq!(m.iter().map(|(p, _)| p).collect::<Vec<_>>(), vec![1, 3, 7]);
    }

    #[test]
    fn compaction_during_the_scan_keeps_the_newest_frames() {
        // Enough hot-page rewrites to trigger several compactions.
        let mut b = PageMapBuilder::default();
        let mut model = BTreeMap::new();
        let mut idx = 0u32;
        for tx in 0..2000u32 {
            for k in 0..100u32 {
                let pgno = 1 + (tx * 31 + k * 17) % 700;
                b.push(pgno, idx);
                model.insert(pgno, idx);
                idx += 1;
            }
            b.commit();
        }
        assert!(b.entries.len() < COMPACT_MIN, "{}", b.entries.len());
        let m = b.finish(u32::MAX, 1);
        let want: Vec<_> = model
            .iter()
            .map(|(&p, &i)| (p, 32 + u64::from(i)))
            .collect();
        assert_eq!(m.iter().collect::<Vec<_>>(), want);
    }
}
