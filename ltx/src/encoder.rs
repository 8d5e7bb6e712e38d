//! The streaming encoder: header, pages as LZ4 blocks, index, trailer.

use std::io::Write;

use lz4_flex::block::{compress_into, get_maximum_output_size};

use crate::checksum::Crc64;
use crate::error::{Error, Result};
use crate::header::{Header, Trailer};
use crate::index::put_uvarint;
use crate::types::{Checksum, lock_pgno};
use crate::{HEADER_SIZE, PAGE_FLAG_SIZE_FOLLOWS, PAGE_HEADER_SIZE, PAGE_SIZE_FIELD_SIZE};

/// Writes one LTX file to `W`, page by page (LTX.md §2).
///
/// Pages are taken by reference and compressed into one reusable buffer, so
/// encoding allocates nothing per page. The page index is kept as runs of
/// consecutive page numbers plus one `u32` frame size per page (4 bytes a
/// page), since offsets follow from the sizes. Wrap unbuffered writers in a
/// [`std::io::BufWriter`]: each page is two `write_all` calls.
#[derive(Debug)]
pub struct Encoder<W: Write> {
    out: W,
    header: Header,
    crc: Crc64,
    written: u64,
    lock_pgno: u32,
    last_pgno: u32,
    /// Runs of consecutive page numbers: (first, count).
    runs: Vec<(u32, u32)>,
    /// Frame size of every page, in page order.
    sizes: Vec<u32>,
    compressed: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    /// Validates `header` (LTX.md §3.2) and writes it.
    pub fn new(mut out: W, header: &Header) -> Result<Encoder<W>> {
        header.validate()?;
        let bytes = header.to_bytes();
        out.write_all(&bytes)?;
        let mut crc = Crc64::new();
        crc.update(&bytes);
        let page_size = header.page_size as usize;
        Ok(Encoder {
            out,
            header: *header,
            crc,
            written: HEADER_SIZE as u64,
            lock_pgno: lock_pgno(header.page_size),
            last_pgno: 0,
            runs: Vec::new(),
            sizes: Vec::new(),
            compressed: vec![0; get_maximum_output_size(page_size)],
        })
    }

    /// The header this encoder writes.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The page number the next snapshot page must have (LTX.md §5.4 rule 4).
    fn next_snapshot_pgno(&self) -> u32 {
        self.snapshot_pgno_after(self.last_pgno)
    }

    fn snapshot_pgno_after(&self, last: u32) -> u32 {
        let next = last + 1;
        if next == self.lock_pgno {
            next + 1
        } else {
            next
        }
    }

    /// Checks that page `pgno` may follow page `last` (LTX.md §5.4):
    /// ascending, never the lock page, never past `commit`, consecutive in a
    /// snapshot.
    fn check_next(&self, last: u32, pgno: u32) -> Result<()> {
        let page_size = self.header.page_size;
        if pgno == 0 {
            return Err(Error::Encode("page number 0 is not a page".into()));
        }
        if pgno > self.header.commit {
            return Err(Error::Encode(format!(
                "page {pgno} is past the commit size of {} pages",
                self.header.commit
            )));
        }
        if pgno == self.lock_pgno {
            return Err(Error::Encode(format!(
                "page {pgno} is the lock page for {page_size}-byte pages and is never stored"
            )));
        }
        if self.header.is_snapshot() {
            let want = self.snapshot_pgno_after(last);
            if pgno != want {
                return Err(Error::Encode(format!(
                    "snapshot pages must be consecutive: got page {pgno}, expected {want}"
                )));
            }
        } else if pgno <= last {
            return Err(Error::Encode(format!(
                "pages must be strictly ascending: page {pgno} after page {last}"
            )));
        }
        Ok(())
    }

    /// Records page `pgno` with a frame of `size` bytes in the index.
    fn note_page(&mut self, pgno: u32, size: u32) {
        self.written += u64::from(size);
        self.sizes.push(size);
        match self.runs.last_mut() {
            Some((first, count)) if *first + *count == pgno => *count += 1,
            _ => self.runs.push((pgno, 1)),
        }
        self.last_pgno = pgno;
    }

    /// Compresses and writes page `pgno`. Pages must come in ascending order,
    /// never the lock page, never past `commit`; a snapshot must hold every
    /// page from 1 (LTX.md §5.4).
    pub fn encode_page(&mut self, pgno: u32, data: &[u8]) -> Result<()> {
        let page_size = self.header.page_size;
        if data.len() != page_size as usize {
            return Err(Error::Encode(format!(
                "page {pgno} has {} bytes, expected the page size {page_size}",
                data.len()
            )));
        }
        self.check_next(self.last_pgno, pgno)?;

        let n = compress_into(data, &mut self.compressed)
            .map_err(|e| Error::Encode(format!("LZ4 compression of page {pgno} failed: {e}")))?;
        let mut head = [0u8; PAGE_HEADER_SIZE + PAGE_SIZE_FIELD_SIZE];
        head[0..4].copy_from_slice(&pgno.to_be_bytes());
        head[4..6].copy_from_slice(&PAGE_FLAG_SIZE_FOLLOWS.to_be_bytes());
        head[6..10].copy_from_slice(&(n as u32).to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&self.compressed[..n])?;
        // The checksum covers the decompressed page, not the payload (§8.1).
        self.crc.update(&head);
        self.crc.update(data);

        self.note_page(pgno, (head.len() + n) as u32);
        Ok(())
    }

    /// Writes frames compressed elsewhere (typically on another thread), as
    /// if each page of `batch` had gone through [`encode_page`](Self::encode_page):
    /// the output is byte-for-byte the same. The same ordering rules apply
    /// across batches; nothing is written if any page is out of order.
    pub fn encode_batch(&mut self, batch: &FrameBatch) -> Result<()> {
        if batch.page_size != self.header.page_size {
            return Err(Error::Encode(format!(
                "a batch of {}-byte pages cannot go into a file of {}-byte pages",
                batch.page_size, self.header.page_size
            )));
        }
        // Check the whole batch before writing any of it.
        let mut last = self.last_pgno;
        for &(pgno, _) in &batch.pages {
            self.check_next(last, pgno)?;
            last = pgno;
        }
        for &(pgno, size) in &batch.pages {
            self.note_page(pgno, size);
        }
        self.out.write_all(&batch.bytes)?;
        self.crc.combine(&batch.crc);
        Ok(())
    }

    /// Writes the end marker, the page index and the trailer, and returns the
    /// writer with the trailer written. `post_apply` must be
    /// [`Checksum::ZERO`] under NoChecksum (LTX.md §9.4).
    pub fn finish(mut self, post_apply: Checksum) -> Result<(W, Trailer)> {
        let h = &self.header;
        if h.is_snapshot() && self.next_snapshot_pgno() <= h.commit {
            return Err(Error::Encode(format!(
                "snapshot ends at page {} but the database has {} pages",
                self.last_pgno, h.commit
            )));
        }
        if h.commit == 0 && post_apply.get() != Checksum::FLAG {
            return Err(Error::Encode(
                "an empty (0-page) database cannot be encoded with NoChecksum (LTX.md §9.4)".into(),
            ));
        }
        let mut tail = Vec::with_capacity(64 * 1024);
        let end_marker = [0u8; PAGE_HEADER_SIZE];
        tail.extend_from_slice(&end_marker);
        let mut offset = HEADER_SIZE as u64;
        let mut index_len: u64 = 0;
        let (runs, sizes) = (
            std::mem::take(&mut self.runs),
            std::mem::take(&mut self.sizes),
        );
        let mut sizes = sizes.iter();
        for &(first, count) in &runs {
            for pgno in first..first + count {
                let size = u64::from(*sizes.next().ok_or(Error::Usage("index out of step"))?);
                let before = tail.len();
                put_uvarint(&mut tail, u64::from(pgno));
                put_uvarint(&mut tail, offset);
                put_uvarint(&mut tail, size);
                index_len += (tail.len() - before) as u64;
                offset += size;
                if tail.len() >= 60 * 1024 {
                    self.flush_tail(&mut tail)?;
                }
            }
        }
        tail.push(0);
        index_len += 1;
        tail.extend_from_slice(&index_len.to_be_bytes());
        tail.extend_from_slice(&post_apply.get().to_be_bytes());
        self.flush_tail(&mut tail)?;

        let trailer = Trailer {
            post_apply_checksum: post_apply,
            file_checksum: Checksum::new(Checksum::FLAG | self.crc.value()),
        };
        trailer.validate(self.header.flags)?;
        self.out
            .write_all(&trailer.file_checksum.get().to_be_bytes())?;
        self.out.flush()?;
        self.written += 8;
        Ok((self.out, trailer))
    }

    fn flush_tail(&mut self, tail: &mut Vec<u8>) -> Result<()> {
        self.out.write_all(tail)?;
        self.crc.update(tail);
        self.written += tail.len() as u64;
        tail.clear();
        Ok(())
    }
}

/// Page frames compressed away from an [`Encoder`], to be written by
/// [`Encoder::encode_batch`] in order. It keeps the encoded frames, each
/// page's number and frame size, and the CRC-64 of the batch's logical
/// content (LTX.md §8.1: frame headers and uncompressed pages), which the
/// encoder folds into the file checksum without seeing the pages again.
#[derive(Clone, Debug)]
pub struct FrameBatch {
    page_size: u32,
    bytes: Vec<u8>,
    pages: Vec<(u32, u32)>,
    crc: Crc64,
}

impl FrameBatch {
    /// An empty batch of `page_size`-byte pages.
    pub fn new(page_size: u32) -> FrameBatch {
        FrameBatch {
            page_size,
            bytes: Vec::new(),
            pages: Vec::new(),
            crc: Crc64::new(),
        }
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pages.clear();
        self.crc = Crc64::new();
    }

    /// Pages in the batch.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether the batch holds no page.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Encoded bytes in the batch.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// Compresses page `pgno` onto the end of the batch. Order and the lock
    /// page are checked when the batch is written.
    pub fn push(&mut self, pgno: u32, data: &[u8]) -> Result<()> {
        if data.len() != self.page_size as usize {
            return Err(Error::Encode(format!(
                "page {pgno} has {} bytes, expected the page size {}",
                data.len(),
                self.page_size
            )));
        }
        let start = self.bytes.len();
        let head_len = PAGE_HEADER_SIZE + PAGE_SIZE_FIELD_SIZE;
        self.bytes
            .resize(start + head_len + get_maximum_output_size(data.len()), 0);
        let n = compress_into(data, &mut self.bytes[start + head_len..])
            .map_err(|e| Error::Encode(format!("LZ4 compression of page {pgno} failed: {e}")))?;
        self.bytes.truncate(start + head_len + n);
        let head = &mut self.bytes[start..start + head_len];
        head[0..4].copy_from_slice(&pgno.to_be_bytes());
        head[4..6].copy_from_slice(&PAGE_FLAG_SIZE_FOLLOWS.to_be_bytes());
        head[6..10].copy_from_slice(&(n as u32).to_be_bytes());
        self.crc.update(head);
        self.crc.update(data);
        self.pages.push((pgno, (head_len + n) as u32));
        Ok(())
    }
}
