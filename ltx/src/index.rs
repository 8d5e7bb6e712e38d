//! The page index: unsigned LEB128 varint triples, a zero terminator and a
//! big-endian 8-byte length (LTX.md §7).

use crate::error::{Error, Result};

/// One page-index entry: where a page's frame sits in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageIndexEntry {
    /// Page number (never 0).
    pub pgno: u32,
    /// Absolute offset of the frame's 6-byte page header.
    pub offset: u64,
    /// Bytes of the whole frame: page header, size field (if any) and payload.
    pub size: u64,
}

/// Appends `v` as a Go `binary.AppendUvarint` varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from `buf` at `*pos`, advancing it. `base` is the file
/// offset of `buf[0]`, for error messages.
pub(crate) fn get_uvarint(buf: &[u8], pos: &mut usize, base: u64) -> Result<u64> {
    let start = *pos;
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&byte) = buf.get(*pos) else {
            return Err(invalid(
                base + start as u64,
                "varint runs past the end of the index",
            ));
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(invalid(base + start as u64, "varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid(base + start as u64, "varint longer than 10 bytes"))
}

/// Serializes `entries` plus terminator and length (LTX.md §7).
#[cfg(test)]
pub(crate) fn encode_index(entries: &[PageIndexEntry], out: &mut Vec<u8>) {
    let start = out.len();
    for e in entries {
        put_uvarint(out, u64::from(e.pgno));
        put_uvarint(out, e.offset);
        put_uvarint(out, e.size);
    }
    out.push(0);
    let len = (out.len() - start) as u64;
    out.extend_from_slice(&len.to_be_bytes());
}

/// Parses the index body (entries and terminator, without the 8-byte length)
/// found at file offset `base`.
fn decode_index(body: &[u8], base: u64) -> Result<Vec<PageIndexEntry>> {
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let pgno = get_uvarint(body, &mut pos, base)?;
        if pgno == 0 {
            break;
        }
        let at = base + pos as u64;
        let pgno = u32::try_from(pgno).map_err(|_| invalid(at, "page number exceeds 32 bits"))?;
        let offset = get_uvarint(body, &mut pos, base)?;
        let size = get_uvarint(body, &mut pos, base)?;
        entries.push(PageIndexEntry { pgno, offset, size });
    }
    if pos != body.len() {
        return Err(invalid(
            base + pos as u64,
            "bytes between the terminator and the length",
        ));
    }
    Ok(entries)
}

/// What the last bytes of a file say about its page index (LTX.md §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailIndex {
    /// The whole index was inside the bytes given.
    Complete(Vec<PageIndexEntry>),
    /// The index starts before the bytes given: fetch the file from this
    /// offset and call [`read_page_index`] again.
    StartsAt(u64),
}

/// Reads the page index from `tail`, the last `tail.len()` bytes of a file of
/// `file_size` bytes, as a ranged reader does: the 8-byte index length sits
/// just before the 16-byte trailer (LTX.md §7). Used to read single pages of a
/// remote file without downloading it whole.
pub fn read_page_index(tail: &[u8], file_size: u64) -> Result<TailIndex> {
    let trailer_and_len = 8 + crate::TRAILER_SIZE;
    let tail_start = file_size
        .checked_sub(tail.len() as u64)
        .ok_or(Error::Usage("the tail given is longer than the file"))?;
    if tail.len() < trailer_and_len {
        return Err(Error::Truncated {
            offset: tail_start,
            what: "the index length and trailer",
        });
    }
    let at = tail.len() - trailer_and_len;
    let len = u64::from_be_bytes(tail[at..at + 8].try_into().unwrap_or_default());
    let index_start = (tail_start + at as u64)
        .checked_sub(len)
        .filter(|&s| s >= (crate::HEADER_SIZE + crate::PAGE_HEADER_SIZE) as u64)
        .ok_or_else(|| {
            invalid(
                tail_start + at as u64,
                "index length points before the pages",
            )
        })?;
    if index_start < tail_start {
        return Ok(TailIndex::StartsAt(index_start));
    }
    let from = (index_start - tail_start) as usize;
    decode_index(&tail[from..at], index_start).map(TailIndex::Complete)
}

fn invalid(offset: u64, reason: &str) -> Error {
    Error::InvalidIndex {
        offset,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_match_go_examples() {
        let mut out = Vec::new();
        put_uvarint(&mut out, 100);
        put_uvarint(&mut out, 135);
        assert_eq!(out, [0x64, 0x87, 0x01]);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let buf = [0xffu8; 11];
        assert!(get_uvarint(&buf, &mut 0, 0).is_err());
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert!(get_uvarint(&ten, &mut 0, 0).is_err());
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: u64) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            let mut pos = 0;
            prop_assert_eq!(get_uvarint(&out, &mut pos, 0).ok(), Some(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn index_round_trip(raw in proptest::collection::vec((1u32.., any::<u64>(), any::<u64>()), 0..50)) {
            let entries: Vec<_> = raw.iter().map(|&(pgno, offset, size)| PageIndexEntry { pgno, offset, size }).collect();
            let mut out = Vec::new();
            encode_index(&entries, &mut out);
            let len = u64::from_be_bytes(out[out.len() - 8..].try_into().unwrap_or_default());
            prop_assert_eq!(len as usize, out.len() - 8);
            prop_assert_eq!(decode_index(&out[..out.len() - 8], 0).ok(), Some(entries));
        }
    }
}
