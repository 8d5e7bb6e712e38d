//! The streaming decoder: verifies structure, page order, the page index and
//! the file checksum while handing out decompressed pages.

use std::io::{BufReader, Read};

/// Read buffer of a decoder made by [`Decoder::new`].
pub(crate) const DEFAULT_BUFFER: usize = 128 * 1024;

use lz4_flex::block::{decompress_into, get_maximum_output_size};

use crate::checksum::Crc64;
use crate::error::{Error, Result};
use crate::frame::decode_frame;
use crate::header::{Header, Trailer};
use crate::index::get_uvarint;
use crate::types::{Checksum, lock_pgno};
use crate::{HEADER_SIZE, PAGE_FLAG_SIZE_FOLLOWS, PAGE_HEADER_SIZE, TRAILER_SIZE};

/// Which page-frame encoding a file uses (LTX.md §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageEncoding {
    /// A 4-byte size and an LZ4 block (ltx ≥ 0.5.2, Litestream ≥ 0.5.16).
    Block,
    /// One LZ4 frame per page (Litestream 0.5.0–0.5.15).
    LegacyFrame,
}

/// A reader that counts the bytes it hands out and turns a short read into
/// [`Error::Truncated`] naming the offset.
#[derive(Debug)]
pub(crate) struct Input<R: Read> {
    inner: BufReader<R>,
    offset: u64,
}

impl<R: Read> Input<R> {
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::Truncated {
                offset: self.offset,
                what,
            }),
            Err(e) => Err(Error::Io(e)),
        }
    }

    fn read_byte(&mut self, what: &'static str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b, what)?;
        Ok(b[0])
    }

    fn at_eof(&mut self) -> Result<bool> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(n) => return Ok(n == 0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pages,
    Index,
}

/// Reads one LTX file from `R` (LTX.md §2), accepting both page encodings.
///
/// Stricter than Go's decoder (LTX.md §13): pages must be strictly ascending,
/// within `commit`, never the lock page; a snapshot must hold exactly pages
/// 1..=commit (lock page excepted); each page must decompress to exactly the
/// page size; the page index must describe exactly the frames that were read
/// and its stored length must be right; nothing may follow the trailer.
///
/// The index is checked in constant memory: each frame's (pgno, offset, size)
/// is folded into a digest that the parsed index must reproduce.
#[derive(Debug)]
pub struct Decoder<R: Read> {
    input: Input<R>,
    header: Header,
    crc: Crc64,
    state: State,
    lock_pgno: u32,
    last_pgno: u32,
    page_count: u64,
    frames_digest: Crc64,
    encoding: Option<PageEncoding>,
    compressed: Vec<u8>,
    max_compressed: usize,
    index_start: u64,
}

impl<R: Read> Decoder<R> {
    /// Reads and validates the header (LTX.md §3.2).
    pub fn new(reader: R) -> Result<Decoder<R>> {
        Decoder::with_buffer(DEFAULT_BUFFER, reader)
    }

    /// [`new`](Self::new) with a read buffer of `capacity` bytes, for
    /// callers holding many decoders at once.
    pub fn with_buffer(capacity: usize, reader: R) -> Result<Decoder<R>> {
        let mut input = Input {
            inner: BufReader::with_capacity(capacity, reader),
            offset: 0,
        };
        let mut bytes = [0u8; HEADER_SIZE];
        input.read_exact(&mut bytes, "a 100-byte header")?;
        let header = Header::from_bytes(&bytes)?;
        let mut crc = Crc64::new();
        crc.update(&bytes);
        let max_compressed = get_maximum_output_size(header.page_size as usize).max(
            // pierrec's worst-case bound, which may exceed lz4_flex's.
            header.page_size as usize + header.page_size as usize / 255 + 16,
        );
        Ok(Decoder {
            input,
            crc,
            state: State::Pages,
            lock_pgno: lock_pgno(header.page_size),
            header,
            last_pgno: 0,
            page_count: 0,
            frames_digest: Crc64::new(),
            encoding: None,
            compressed: Vec::with_capacity(max_compressed),
            max_compressed,
            index_start: 0,
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The page encoding seen so far (`None` before the first page).
    pub fn encoding(&self) -> Option<PageEncoding> {
        self.encoding
    }

    /// Pages read so far.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }

    /// Decodes the next page into `page` (exactly `page_size` bytes) and
    /// returns its number, or `None` at the end of the page block.
    pub fn next_page(&mut self, page: &mut [u8]) -> Result<Option<u32>> {
        if self.state != State::Pages {
            return Ok(None);
        }
        if page.len() != self.header.page_size as usize {
            return Err(Error::Usage("page buffer must be exactly the page size"));
        }
        let frame_offset = self.input.offset();
        let bad = |reason: String| Error::InvalidPage {
            offset: frame_offset,
            reason,
        };

        let mut head = [0u8; PAGE_HEADER_SIZE + 4];
        self.input
            .read_exact(&mut head[..PAGE_HEADER_SIZE], "a page header")?;
        if head[..PAGE_HEADER_SIZE] == [0u8; PAGE_HEADER_SIZE] {
            self.crc.update(&head[..PAGE_HEADER_SIZE]);
            self.finish_pages(frame_offset)?;
            return Ok(None);
        }
        let pgno = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = u16::from_be_bytes([head[4], head[5]]);
        if pgno == 0 {
            return Err(bad("page number required (0 with non-zero flags)".into()));
        }
        if flags & !PAGE_FLAG_SIZE_FOLLOWS != 0 {
            return Err(bad(format!("invalid page header flags {flags:#06x}")));
        }
        self.check_order(pgno, frame_offset)?;

        let head_len;
        let encoding;
        if flags & PAGE_FLAG_SIZE_FOLLOWS != 0 {
            encoding = PageEncoding::Block;
            self.input
                .read_exact(&mut head[PAGE_HEADER_SIZE..], "a page size field")?;
            head_len = PAGE_HEADER_SIZE + 4;
            let n = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
            if n > self.max_compressed {
                return Err(bad(format!(
                    "compressed size {n} exceeds the LZ4 bound for {}-byte pages",
                    self.header.page_size
                )));
            }
            self.compressed.resize(n, 0);
            self.input
                .read_exact(&mut self.compressed, "an LZ4 page block")?;
            let got = decompress_into(&self.compressed, page)
                .map_err(|e| bad(format!("page {pgno}: LZ4 block does not decode: {e}")))?;
            if got != page.len() {
                return Err(bad(format!(
                    "page {pgno}: LZ4 block decodes to {got} bytes, expected {}",
                    page.len()
                )));
            }
        } else {
            encoding = PageEncoding::LegacyFrame;
            head_len = PAGE_HEADER_SIZE;
            decode_frame(&mut self.input, page, &mut self.compressed)?;
        }
        if self.encoding.is_some_and(|e| e != encoding) {
            return Err(bad("page encodings are mixed within one file".into()));
        }
        self.encoding = Some(encoding);

        self.crc.update(&head[..head_len]);
        self.crc.update(page);
        let size = self.input.offset() - frame_offset;
        fold_entry(&mut self.frames_digest, pgno, frame_offset, size);
        self.last_pgno = pgno;
        self.page_count += 1;
        Ok(Some(pgno))
    }

    fn check_order(&self, pgno: u32, offset: u64) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidPage { offset, reason });
        let h = &self.header;
        if pgno > h.commit {
            return bad(format!(
                "page {pgno} is past the commit size of {} pages",
                h.commit
            ));
        }
        if pgno == self.lock_pgno {
            return bad(format!(
                "page {pgno} is the lock page and must not be stored"
            ));
        }
        if h.is_snapshot() {
            let want = self.next_snapshot_pgno();
            if pgno != want {
                return bad(format!(
                    "snapshot is missing pages: got page {pgno}, expected {want}"
                ));
            }
        } else if pgno <= self.last_pgno {
            return bad(format!(
                "page {pgno} after page {}: pages must be strictly ascending",
                self.last_pgno
            ));
        }
        Ok(())
    }

    fn next_snapshot_pgno(&self) -> u32 {
        let next = self.last_pgno + 1;
        if next == self.lock_pgno {
            next + 1
        } else {
            next
        }
    }

    fn finish_pages(&mut self, marker_offset: u64) -> Result<()> {
        if self.header.is_snapshot() && self.next_snapshot_pgno() <= self.header.commit {
            return Err(Error::InvalidPage {
                offset: marker_offset,
                reason: format!(
                    "snapshot ends after page {} but the database has {} pages",
                    self.last_pgno, self.header.commit
                ),
            });
        }
        self.state = State::Index;
        Ok(())
    }

    /// Reads whatever pages remain (discarding them), then the page index and
    /// trailer, and verifies the index and the file checksum. Returns the
    /// trailer. Until this succeeds, no page handed out may be trusted.
    pub fn finish(mut self) -> Result<Trailer> {
        if self.state == State::Pages {
            let mut page = vec![0u8; self.header.page_size as usize];
            while self.next_page(&mut page)?.is_some() {}
        }
        self.read_index()?;

        let mut len = [0u8; 8];
        let len_offset = self.input.offset();
        self.input.read_exact(&mut len, "the page index length")?;
        self.crc.update(&len);
        let mut tb = [0u8; TRAILER_SIZE];
        self.input.read_exact(&mut tb, "the 16-byte trailer")?;
        let trailer = Trailer::from_bytes(&tb);
        self.crc.update(&tb[..8]);

        let index_len = u64::from_be_bytes(len);
        let parsed_len = len_offset - self.index_start;
        if index_len != parsed_len {
            return Err(Error::InvalidIndex {
                offset: len_offset,
                reason: format!(
                    "stored index length is {index_len} bytes but the index is {parsed_len} bytes"
                ),
            });
        }
        let computed = Checksum::FLAG | self.crc.value();
        if trailer.file_checksum.get() != computed {
            return Err(Error::ChecksumMismatch {
                stored: trailer.file_checksum.get(),
                computed,
            });
        }
        trailer.validate(self.header.flags)?;
        if !self.input.at_eof()? {
            return Err(Error::TrailingData {
                offset: self.input.offset(),
            });
        }
        Ok(trailer)
    }

    fn read_index(&mut self) -> Result<()> {
        self.index_start = self.input.offset();
        let mut digest = Crc64::new();
        let mut expected_offset = HEADER_SIZE as u64;
        let mut count = 0u64;
        let mut buf = [0u8; 10];
        loop {
            let entry_offset = self.input.offset();
            let pgno = self.read_varint(&mut buf)?;
            if pgno == 0 {
                break;
            }
            let offset = self.read_varint(&mut buf)?;
            let size = self.read_varint(&mut buf)?;
            let bad = |reason: String| Error::InvalidIndex {
                offset: entry_offset,
                reason,
            };
            let pgno =
                u32::try_from(pgno).map_err(|_| bad(format!("page number {pgno} overflows")))?;
            if offset != expected_offset {
                return Err(bad(format!(
                    "entry for page {pgno} says offset {offset}, but the frame is at {expected_offset}"
                )));
            }
            expected_offset = offset.saturating_add(size);
            fold_entry(&mut digest, pgno, offset, size);
            count += 1;
        }
        if count != self.page_count || digest.value() != self.frames_digest.value() {
            return Err(Error::InvalidIndex {
                offset: self.index_start,
                reason: format!(
                    "index lists {count} pages that disagree with the {} frames in the file",
                    self.page_count
                ),
            });
        }
        Ok(())
    }

    /// Reads one varint byte by byte (the input is buffered), feeding the
    /// file checksum.
    fn read_varint(&mut self, buf: &mut [u8; 10]) -> Result<u64> {
        for i in 0..10 {
            buf[i] = self.input.read_byte("a page index varint")?;
            if buf[i] & 0x80 == 0 {
                self.crc.update(&buf[..=i]);
                let mut pos = 0;
                return get_uvarint(&buf[..=i], &mut pos, self.input.offset() - i as u64 - 1);
            }
        }
        Err(Error::InvalidIndex {
            offset: self.input.offset() - 10,
            reason: "varint longer than 10 bytes".into(),
        })
    }
}

fn fold_entry(digest: &mut Crc64, pgno: u32, offset: u64, size: u64) {
    digest.update(&pgno.to_be_bytes());
    digest.update(&offset.to_be_bytes());
    digest.update(&size.to_be_bytes());
}
