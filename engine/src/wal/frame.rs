//! Single-frame reads for the continuity check (REPLICATION.md §4.2 steps 7
//! and 8): these look at frames without following the checksum chain.

use std::collections::HashSet;

use super::error::{Error, Result};
use super::header::{
    FIRST_FRAME, FRAME_HEADER_SIZE, FrameHeader, Salts, frame_size, is_frame_offset,
    is_valid_page_size,
};
use freshet_io::ReadAt;

/// One frame read by [`read_frame`]: its header and a view of its page in
/// the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame header, not validated.
    pub header: FrameHeader,
    /// The page bytes.
    pub page: &'a [u8],
}

/// Reads the frame at `offset` into `buf` (at least `24 + page_size` bytes)
/// for the "last page check" of §4.2 step 7: the caller compares its salts
/// and page with the previous LTX file. Salts and checksum are not verified
/// here; that comparison is the verification.
///
/// `Ok(None)` when the WAL ends before the frame does. An offset that is not
/// a frame boundary is an error (§4.2 step 6 errors on `prev < 32`).
pub fn read_frame<'b, R: ReadAt + ?Sized>(
    src: &R,
    page_size: u32,
    offset: u64,
    buf: &'b mut [u8],
) -> Result<Option<Frame<'b>>> {
    let fs = check_geometry(page_size, offset)?;
    let need = FRAME_HEADER_SIZE + page_size as usize;
    let len = buf.len();
    let Some(buf) = buf.get_mut(..need) else {
        return Err(Error::BufferSize { offset, len, need });
    };
    debug_assert_eq!(need as u64, fs);
    let n = src.read_full_at(buf, offset).map_err(Error::io(offset))?;
    if n < need {
        return Ok(None);
    }
    let buf: &'b [u8] = buf;
    let Some((head, page)) = buf.split_first_chunk::<FRAME_HEADER_SIZE>() else {
        return Ok(None);
    };
    Ok(Some(Frame {
        header: FrameHeader::parse(head),
        page,
    }))
}

/// Salt pairs found by [`salt_generations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaltGenerations {
    /// Distinct salt pairs of the frames before the stop, in order of first
    /// appearance.
    pub salts: Vec<Salts>,
    /// Offset of the first frame carrying the salts searched for, if one
    /// was found.
    pub found_at: Option<u64>,
}

/// Lists the salt pairs of complete frames from offset 32 up to the first
/// frame carrying `until` (§4.2 step 8).
///
/// The caller has seen the WAL restart (header salts differ from the recorded
/// ones) while the last replicated frame survived. Removing the recorded and
/// the current pairs from the result leaves the generations it never saw; any
/// left means a checkpoint it missed, so a snapshot is needed. Only frame
/// headers are read: frames of other generations do not continue the
/// current checksum chain, so no checksum is checked.
pub fn salt_generations<R: ReadAt + ?Sized>(
    src: &R,
    page_size: u32,
    until: Salts,
) -> Result<SaltGenerations> {
    let fs = check_geometry(page_size, FIRST_FRAME)?;
    let size = src.size().map_err(Error::io(0))?;
    let mut seen = HashSet::new();
    let mut salts = Vec::new();
    let mut off = FIRST_FRAME;
    let mut bytes = [0u8; FRAME_HEADER_SIZE];
    while off + fs <= size {
        let n = src.read_full_at(&mut bytes, off).map_err(Error::io(off))?;
        if n < FRAME_HEADER_SIZE {
            break;
        }
        let frame = FrameHeader::parse(&bytes);
        if frame.salts == until {
            return Ok(SaltGenerations {
                salts,
                found_at: Some(off),
            });
        }
        if seen.insert(frame.salts) {
            salts.push(frame.salts);
        }
        off += fs;
    }
    Ok(SaltGenerations {
        salts,
        found_at: None,
    })
}

/// Validates a page size and a frame offset; returns the frame size.
fn check_geometry(page_size: u32, offset: u64) -> Result<u64> {
    if !is_valid_page_size(page_size) {
        return Err(Error::BadPageSize { page_size });
    }
    let fs = frame_size(page_size);
    if !is_frame_offset(offset, fs) {
        return Err(Error::Misaligned { offset, page_size });
    }
    Ok(fs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::wal::ByteOrder;
    use crate::wal::testutil::WalWriter;

    fn salts(n: u32) -> Salts {
        Salts {
            salt1: n,
            salt2: n * 1000,
        }
    }

    #[test]
    fn salt_generations_lists_distinct_pairs_until_the_searched_one() {
        let page = vec![3u8; 512];
        let mut w = WalWriter::new(ByteOrder::Little, 512, salts(5));
        w.frame(1, 1, &page);
        w.frame(2, 2, &page);
        w.stale_frame(1, salts(3), &page);
        w.stale_frame(1, salts(5), &page);
        let old = w.stale_frame(1, salts(4), &page);
        w.stale_frame(1, salts(2), &page);
        let g = salt_generations(&w.bytes, 512, salts(4)).unwrap();
        assert_eq!(g.salts, vec![salts(5), salts(3)]);
        assert_eq!(g.found_at, Some(old));
        let g = salt_generations(&w.bytes, 512, salts(9)).unwrap();
        assert_eq!(g.salts, vec![salts(5), salts(3), salts(4), salts(2)]);
        assert_eq!(g.found_at, None);
        // A partial last frame is not looked at.
        let cut = &w.bytes[..w.bytes.len() - 1];
        assert_eq!(
            salt_generations(cut, 512, salts(9)).unwrap().salts,
            vec![salts(5), salts(3), salts(4)]
        );
    }

    #[test]
    fn read_frame_returns_header_and_page() {
        let mut w = WalWriter::new(ByteOrder::Big, 512, salts(1));
        w.frame(4, 0, &[1u8; 512]);
        let at = w.frame(9, 12, &[2u8; 512]);
        let mut buf = vec![0u8; 536];
        let f = read_frame(&w.bytes, 512, at, &mut buf).unwrap().unwrap();
        assert_eq!(
            (f.header.pgno, f.header.commit, f.header.salts),
            (9, 12, salts(1))
        );
        assert_eq!(f.page, &[2u8; 512][..]);
        let short = &w.bytes[..w.bytes.len() - 1];
        assert_eq!(read_frame(short, 512, at, &mut buf).unwrap(), None);
    }
}
