//! Merges contiguous LTX files into one (LTX.md §12).

use std::io::{Read, Write};

use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::header::{Header, HeaderFlags, Trailer};

/// Bytes of read buffers shared by a compactor's inputs.
const INPUT_BUFFER_BUDGET: usize = 8 << 20;
/// Smallest read buffer of one input.
const MIN_INPUT_BUFFER: usize = 16 * 1024;

/// Merges an ordered list of LTX streams (oldest first) into one file.
///
/// The newest version of each page wins; pages past the last input's commit
/// are dropped; each input's checksum and index are verified after its pages
/// (LTX.md §12 step 5). Memory: one page buffer per input plus the output's
/// page index, and read buffers sharing 8 MiB (16 KiB each at least). The
/// output is not to be trusted unless [`compact`](Self::compact) returns
/// `Ok`.
#[derive(Debug)]
pub struct Compactor<R: Read> {
    inputs: Vec<Decoder<R>>,
    header: Header,
}

struct Cursor<R: Read> {
    dec: Decoder<R>,
    pgno: Option<u32>,
    page: Vec<u8>,
}

impl<R: Read> Compactor<R> {
    /// Reads every input's header and checks page sizes and TXID contiguity:
    /// each file must start at or before the previous end + 1 and extend it
    /// (LTX.md §12 step 2). The output carries `flags` (Litestream:
    /// NoChecksum).
    pub fn new(readers: Vec<R>, flags: HeaderFlags) -> Result<Compactor<R>> {
        // Every input is open at once: their read buffers share a budget.
        let buffer = (INPUT_BUFFER_BUDGET / readers.len().max(1))
            .clamp(MIN_INPUT_BUFFER, crate::decoder::DEFAULT_BUFFER);
        let inputs = readers
            .into_iter()
            .map(|r| Decoder::with_buffer(buffer, r))
            .collect::<Result<Vec<_>>>()?;
        let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
            return Err(Error::Usage("the compactor needs at least one input"));
        };
        for pair in inputs.windows(2) {
            let (prev, cur) = (pair[0].header(), pair[1].header());
            if prev.page_size != cur.page_size {
                return Err(Error::PageSizeMismatch(prev.page_size, cur.page_size));
            }
            let contiguous = cur.min_txid.get() <= prev.max_txid.get().saturating_add(1)
                && cur.max_txid > prev.max_txid;
            if !contiguous {
                return Err(Error::NotContiguous {
                    prev_min: prev.min_txid,
                    prev_max: prev.max_txid,
                    min: cur.min_txid,
                    max: cur.max_txid,
                });
            }
        }
        let (f, l) = (first.header(), last.header());
        let header = Header {
            flags,
            page_size: f.page_size,
            commit: l.commit,
            min_txid: f.min_txid,
            max_txid: l.max_txid,
            timestamp: l.timestamp,
            pre_apply_checksum: f.pre_apply_checksum,
            wal_offset: 0,
            wal_size: 0,
            wal_salt1: 0,
            wal_salt2: 0,
            node_id: 0,
        };
        header.validate()?;
        Ok(Compactor { inputs, header })
    }

    /// The header the output will have.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Streams the merged file into `out` and returns the writer and the
    /// output trailer. The trailer is written only after every input has been
    /// verified, so a failed compaction never leaves a valid-looking file.
    pub fn compact<W: Write>(self, out: W) -> Result<(W, Trailer)> {
        let mut enc = Encoder::new(out, &self.header)?;
        let post = self.merge_pages(|pgno, page| enc.encode_page(pgno, page))?;
        enc.finish(post)
    }

    /// Calls `sink` with every page of the merged result in ascending page
    /// order (newest version of each page, none past the output commit), then
    /// verifies every input. Returns the last input's post-apply checksum.
    ///
    /// Restore uses this directly to write pages into a database file
    /// without re-encoding them.
    pub fn merge_pages<F>(self, mut sink: F) -> Result<crate::Checksum>
    where
        F: FnMut(u32, &[u8]) -> Result<()>,
    {
        let page_size = self.header.page_size as usize;
        let commit = self.header.commit;
        let mut cursors = Vec::with_capacity(self.inputs.len());
        for mut dec in self.inputs {
            let mut page = vec![0u8; page_size];
            let pgno = dec.next_page(&mut page)?;
            cursors.push(Cursor { dec, pgno, page });
        }
        while let Some(min) = cursors.iter().filter_map(|c| c.pgno).min() {
            // Among inputs holding this page, the latest in the list wins.
            let winner = cursors.iter().rposition(|c| c.pgno == Some(min));
            if let Some(w) = winner
                && min <= commit
            {
                sink(min, &cursors[w].page)?;
            }
            for c in cursors.iter_mut().filter(|c| c.pgno == Some(min)) {
                c.pgno = c.dec.next_page(&mut c.page)?;
            }
        }
        let mut post = crate::Checksum::ZERO;
        for c in cursors {
            post = c.dec.finish()?.post_apply_checksum;
        }
        Ok(post)
    }
}
