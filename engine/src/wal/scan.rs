//! Reading the committed frames of a WAL into a page map (REPLICATION.md §3
//! rules 2–7, used by §4.3).

use std::fmt;
use std::io;
use std::ops::ControlFlow;

use super::checksum::{ByteOrder, Checksum};
use super::error::{Error, Result};
use super::header::{FIRST_FRAME, FRAME_HEADER_SIZE, FrameHeader, Header, Salts, read_header};
use super::page_map::{PageMap, PageMapBuilder};
use freshet_io::ReadAt;

/// Bytes asked for per read while scanning: whole frames, about 1 MiB, so a
/// 64 MiB sync step costs 64 reads rather than 16k.
const READ_CHUNK: usize = 1 << 20;

/// A WAL positioned at the first frame to read, with the salts frames must
/// carry and the checksum the first of them continues from.
///
/// [`Reader::open`] starts at the first frame of the current generation;
/// [`Reader::resume`] continues after frames an earlier step already turned
/// into an LTX file.
#[derive(Debug)]
pub struct Reader<'a, R: ?Sized> {
    src: &'a R,
    header: Header,
    salts: Salts,
    start: u64,
    seed: Checksum,
}

impl<'a, R: ReadAt + ?Sized> Reader<'a, R> {
    /// Positions at offset 32 with the header's salts and checksum.
    /// `Ok(None)` when there is no valid WAL (§3 rule 1).
    pub fn open(src: &'a R) -> Result<Option<Self>> {
        let Some(header) = read_header(src)? else {
            return Ok(None);
        };
        Ok(Some(Reader {
            src,
            header,
            salts: header.salts,
            start: FIRST_FRAME,
            seed: header.checksum,
        }))
    }

    /// Positions at frame-aligned `offset`, expecting frames with `salts`,
    /// the ones recorded in the previous LTX file (§3 rule 7).
    ///
    /// The header supplies only page size and byte order: it may already
    /// belong to a newer generation. The frame before `offset` must be
    /// complete and carry `salts`; its stored checksum, deliberately not
    /// re-verified, seeds the running checksum. Otherwise
    /// [`Error::PrevFrameMismatch`], which the caller answers by reading from
    /// offset 32 (§4.3 step 3). At offset 32 the header plays the previous
    /// frame's part. `Ok(None)` when there is no valid WAL header.
    pub fn resume(src: &'a R, offset: u64, salts: Salts) -> Result<Option<Self>> {
        let Some(header) = read_header(src)? else {
            return Ok(None);
        };
        if !header.is_frame_aligned(offset) {
            return Err(Error::Misaligned {
                offset,
                page_size: header.page_size,
            });
        }
        let mismatch = |reason| Error::PrevFrameMismatch { offset, reason };
        let seed = if offset == FIRST_FRAME {
            if header.salts != salts {
                return Err(mismatch("the WAL header carries other salts"));
            }
            header.checksum
        } else {
            let prev = offset - header.frame_size();
            if src.size().map_err(Error::io(prev))? < offset {
                return Err(mismatch("the frame before it is missing or incomplete"));
            }
            let mut bytes = [0u8; FRAME_HEADER_SIZE];
            let n = src
                .read_full_at(&mut bytes, prev)
                .map_err(Error::io(prev))?;
            if n < FRAME_HEADER_SIZE {
                return Err(mismatch("the frame before it is missing or incomplete"));
            }
            let frame = FrameHeader::parse(&bytes);
            if frame.salts != salts {
                return Err(mismatch("the frame before it carries other salts"));
            }
            frame.checksum
        };
        Ok(Some(Reader {
            src,
            header,
            salts,
            start: offset,
            seed,
        }))
    }

    /// The WAL header read when positioning.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Salts frames must carry: the header's, or the recorded ones when
    /// resuming. LTX files record these as WALSalt1/2 (§4.4).
    pub fn salts(&self) -> Salts {
        self.salts
    }

    /// Offset of the first frame this reader reads.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Reads frames until the end of valid data and returns the committed
    /// ones (§3 rules 2–6).
    ///
    /// `limit` bounds the bytes consumed, checked after each commit frame
    /// only, so one large transaction can exceed it (§3 rule 6; `Some(0)`
    /// stops after the first transaction). `buf` is scratch space for reads,
    /// grown once to about 1 MiB and reused by later calls, so a scan does
    /// not allocate per frame. Page data is not kept: the map holds offsets,
    /// and pages are read again when the LTX file is written.
    pub fn scan(&self, limit: Option<u64>, buf: &mut Vec<u8>) -> Result<Scan> {
        let frame_size = self.header.frame_size();
        let fsz = frame_size as usize;
        let want = (READ_CHUNK / fsz).max(1) * fsz;
        let order = self.header.byte_order;
        let mut pages = PageMapBuilder::default();
        let mut cksum = self.seed;
        let mut off = self.start;
        let mut index = (self.start - FIRST_FRAME) / frame_size;
        let mut counts = Counts::default();
        let mut end = self.start;
        let mut commit = 0;
        let mut stop = None;
        let mut fail = None;

        // Chunks of whole frames, in order from `start`: a chunk shorter
        // than `want` is the end of the file (§3 rule 2).
        let mut visit = |chunk: &[u8]| {
            let n = chunk.len();
            for frame in chunk[..n - n % fsz].chunks_exact(fsz) {
                // Always splits: a frame is longer than its header.
                let Some((head, page)) = frame.split_first_chunk::<FRAME_HEADER_SIZE>() else {
                    stop = Some(Stop::TornFrame {
                        offset: off,
                        len: 0,
                    });
                    return ControlFlow::Break(());
                };
                let fh = FrameHeader::parse(head);
                if fh.salts != self.salts {
                    stop = Some(Stop::SaltMismatch {
                        offset: off,
                        found: fh.salts,
                    });
                    return ControlFlow::Break(());
                }
                let next = frame_checksum(cksum, order, head, page);
                if next != fh.checksum {
                    stop = Some(Stop::ChecksumMismatch { offset: off });
                    return ControlFlow::Break(());
                }
                if fh.pgno == 0 {
                    stop = Some(Stop::ZeroPage { offset: off });
                    return ControlFlow::Break(());
                }
                let Ok(idx) = u32::try_from(index) else {
                    fail = Some(Error::TooManyFrames { offset: off });
                    return ControlFlow::Break(());
                };
                cksum = next;
                pages.push(fh.pgno, idx);
                counts.pending += 1;
                index += 1;
                off += frame_size;
                if fh.is_commit() {
                    pages.commit();
                    counts.promote();
                    commit = fh.commit;
                    end = off;
                    if limit.is_some_and(|l| end - self.start >= l) {
                        stop = Some(Stop::ByteLimit { offset: end });
                        return ControlFlow::Break(());
                    }
                }
            }
            if n < want {
                stop = Some(match n % fsz {
                    0 => Stop::EndOfFile { offset: off },
                    len => Stop::TornFrame { offset: off, len },
                });
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        };
        let read = self.src.read_chunks(self.start, want, buf, &mut visit);
        if let Some(e) = fail {
            return Err(e);
        }
        read.map_err(Error::io(off))?;
        let Some(stop) = stop else {
            // `read_chunks` ends only at a short chunk or when told to.
            return Err(Error::io(off)(io::Error::other(
                "the WAL reader stopped before the end of the file",
            )));
        };

        Ok(Scan {
            page_size: self.header.page_size,
            salts: self.salts,
            start: self.start,
            end,
            commit,
            pages: pages.finish(commit, frame_size),
            frames: counts.committed,
            transactions: counts.transactions,
            uncommitted: counts.pending,
            stop,
        })
    }
}

/// Checksum through the end of a frame: its header's first 8 bytes, then the
/// page (§3).
fn frame_checksum(
    seed: Checksum,
    order: ByteOrder,
    head: &[u8; FRAME_HEADER_SIZE],
    page: &[u8],
) -> Checksum {
    seed.update(order, &head[..8]).update(order, page)
}

#[derive(Default)]
struct Counts {
    committed: u64,
    transactions: u64,
    pending: u64,
}

impl Counts {
    fn promote(&mut self) {
        self.committed += self.pending;
        self.pending = 0;
        self.transactions += 1;
    }
}

/// The outcome of [`Reader::scan`] (§3 rule 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Page size from the WAL header.
    pub page_size: u32,
    /// Salts of the frames read.
    pub salts: Salts,
    /// Offset the scan started at.
    pub start: u64,
    /// End of the last commit frame read; `start` when none was.
    ///
    /// The spec reports 0 for "no commit"; `start` keeps `end - start` the
    /// number of bytes consumed in every case (see [`Scan::wal_size`]).
    pub end: u64,
    /// Database size in pages after the last commit read; 0 when none was.
    pub commit: u32,
    /// Committed pages and their newest frames, pages ≤ `commit` only.
    pub pages: PageMap,
    /// Committed frames read, rewrites of a page included.
    pub frames: u64,
    /// Commit frames read.
    pub transactions: u64,
    /// Valid frames after the last commit frame, discarded (§3 rule 3).
    pub uncommitted: u64,
    /// Why reading stopped.
    pub stop: Stop,
}

impl Scan {
    /// Bytes of WAL the committed frames span: the WALSize of an LTX file
    /// (§4.3 step 6).
    pub fn wal_size(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the byte limit cut the scan short (§3 rule 6), so the caller
    /// should run another step.
    pub fn is_limited(&self) -> bool {
        matches!(self.stop, Stop::ByteLimit { .. })
    }
}

/// Why a scan stopped reading: where valid data ended, or the byte limit.
/// Every variant names the offset of the first frame not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The file ends on a frame boundary.
    EndOfFile {
        /// File length (a frame boundary).
        offset: u64,
    },
    /// The file ends inside a frame: a writer is appending, or crashed
    /// mid-write (§3 rule 2).
    TornFrame {
        /// Start of the partial frame.
        offset: u64,
        /// Bytes of it present.
        len: usize,
    },
    /// A frame of another generation: stale frames beyond the end of a
    /// restarted WAL (§3 rule 2).
    SaltMismatch {
        /// Start of the frame.
        offset: u64,
        /// The salts it carries.
        found: Salts,
    },
    /// A frame whose checksum does not continue the chain: a partly written
    /// or corrupted frame (§3 rule 2).
    ChecksumMismatch {
        /// Start of the frame.
        offset: u64,
    },
    /// A frame with valid salts and checksum but page number 0, which SQLite
    /// never writes and treats as the end of the log.
    ZeroPage {
        /// Start of the frame.
        offset: u64,
    },
    /// The byte limit was reached at a commit boundary (§3 rule 6).
    ByteLimit {
        /// End of the commit frame where the scan stopped.
        offset: u64,
    },
}

impl Stop {
    /// Offset of the first frame the scan did not take.
    pub fn offset(&self) -> u64 {
        match *self {
            Stop::EndOfFile { offset }
            | Stop::TornFrame { offset, .. }
            | Stop::SaltMismatch { offset, .. }
            | Stop::ChecksumMismatch { offset }
            | Stop::ZeroPage { offset }
            | Stop::ByteLimit { offset } => offset,
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::EndOfFile { offset } => write!(f, "end of WAL at byte {offset}"),
            Stop::TornFrame { offset, len } => {
                write!(f, "partial frame at byte {offset} ({len} bytes present)")
            }
            Stop::SaltMismatch { offset, found } => write!(
                f,
                "frame of another WAL generation at byte {offset} (salts {:#010x}/{:#010x})",
                found.salt1, found.salt2
            ),
            Stop::ChecksumMismatch { offset } => {
                write!(f, "frame checksum mismatch at byte {offset}")
            }
            Stop::ZeroPage { offset } => write!(f, "frame for page 0 at byte {offset}"),
            Stop::ByteLimit { offset } => write!(f, "byte limit reached at byte {offset}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::wal::testutil::WalWriter;
    use std::io;

    const SALTS: Salts = Salts {
        salt1: 7,
        salt2: 0xdead_beef,
    };

    fn page(fill: u8) -> Vec<u8> {
        vec![fill; 1024]
    }

    fn writer() -> WalWriter {
        WalWriter::new(ByteOrder::Little, 1024, SALTS)
    }

    #[test]
    fn a_zero_page_number_ends_valid_data() {
        let mut w = writer();
        w.frame(1, 1, &page(1));
        let bad = w.frame(0, 1, &page(2));
        w.frame(1, 1, &page(3));
        let s = Reader::open(&w.bytes)
            .unwrap()
            .unwrap()
            .scan(None, &mut Vec::new())
            .unwrap();
        assert_eq!(s.stop, Stop::ZeroPage { offset: bad });
        assert_eq!(s.stop.offset(), bad);
        assert_eq!(s.pages.iter().collect::<Vec<_>>(), vec![(1, 32)]);
    }

    #[test]
    fn an_uncommitted_tail_at_the_end_is_counted_and_dropped() {
        let mut w = writer();
        w.frame(1, 0, &page(1));
        w.frame(2, 2, &page(2));
        w.frame(3, 0, &page(3));
        w.frame(1, 0, &page(4));
        let s = Reader::open(&w.bytes)
            .unwrap()
            .unwrap()
            .scan(None, &mut Vec::new())
            .unwrap();
        assert_eq!(
            s.stop,
            Stop::EndOfFile {
                offset: w.bytes.len() as u64
            }
        );
        assert_eq!((s.transactions, s.frames, s.uncommitted), (1, 2, 2));
        assert_eq!(s.end, 32 + 2 * 1048);
        assert_eq!(
            s.pages.iter().collect::<Vec<_>>(),
            vec![(1, 32), (2, 32 + 1048)]
        );
    }

    #[test]
    fn no_valid_header_is_none_for_open_and_resume() {
        let w = writer();
        assert!(Reader::open(&w.bytes[..20]).unwrap().is_none());
        assert!(Reader::resume(&w.bytes[..20], 32, SALTS).unwrap().is_none());
        let mut torn = w.bytes.clone();
        torn[30] ^= 1;
        assert!(Reader::open(&torn).unwrap().is_none());
    }

    #[test]
    fn the_read_buffer_is_reused() {
        let mut w = writer();
        for i in 1..=40 {
            w.frame(i, i, &page(i as u8));
        }
        let r = Reader::open(&w.bytes).unwrap().unwrap();
        let mut buf = Vec::new();
        let first = r.scan(None, &mut buf).unwrap();
        let (ptr, len) = (buf.as_ptr(), buf.len());
        assert!((1048..=READ_CHUNK).contains(&len));
        assert_eq!(r.scan(None, &mut buf).unwrap(), first);
        assert_eq!((buf.as_ptr(), buf.len()), (ptr, len));
        assert_eq!(first.transactions, 40);
    }

    /// Serves a few byte ranges of an otherwise zero-filled, huge file.
    struct Sparse {
        parts: Vec<(u64, Vec<u8>)>,
        size: u64,
    }

    impl ReadAt for Sparse {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = buf.len().min(self.size.saturating_sub(offset) as usize);
            buf[..n].fill(0);
            for (at, bytes) in &self.parts {
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    let pos = offset + i as u64;
                    if pos >= *at && pos < at + bytes.len() as u64 {
                        *b = bytes[(pos - at) as usize];
                    }
                }
            }
            Ok(n)
        }

        fn size(&self) -> io::Result<u64> {
            Ok(self.size)
        }
    }

    #[test]
    fn frame_indexes_beyond_u32_are_an_error() {
        // Two valid frames placed so the second has frame index 2^32.
        let mut w = writer();
        w.frame(1, 0, &page(1));
        w.frame(2, 2, &page(2));
        let fs = 1048u64;
        let at = 32 + (1u64 << 32) * fs;
        let src = Sparse {
            parts: vec![
                (0, w.bytes[..32].to_vec()),
                (at - fs, w.bytes[32..].to_vec()),
            ],
            size: at + fs,
        };
        let r = Reader::resume(&src, at, SALTS).unwrap().unwrap();
        let err = r.scan(None, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, Error::TooManyFrames { offset } if offset == at),
            "{err}"
        );
    }

    #[test]
    fn stop_reasons_read_well_in_logs() {
        let found = Salts { salt1: 1, salt2: 2 };
        let cases = [
            (Stop::EndOfFile { offset: 32 }, "end of WAL at byte 32"),
            (
                Stop::TornFrame { offset: 32, len: 5 },
                "partial frame at byte 32 (5 bytes present)",
            ),
            (
                Stop::SaltMismatch { offset: 64, found },
                "frame of another WAL generation at byte 64 (salts 0x00000001/0x00000002)",
            ),
            (
                Stop::ChecksumMismatch { offset: 9 },
                "frame checksum mismatch at byte 9",
            ),
            (Stop::ZeroPage { offset: 9 }, "frame for page 0 at byte 9"),
            (
                Stop::ByteLimit { offset: 9 },
                "byte limit reached at byte 9",
            ),
        ];
        for (stop, text) in cases {
            assert_eq!(stop.to_string(), text);
        }
    }
}
