//! Builders shared by the codec's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ltx::{Crc64, Header, HeaderFlags, TxId};

/// A NoChecksum header as Litestream writes it.
pub fn header(page_size: u32, commit: u32, min: u64, max: u64) -> Header {
    Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size,
        commit,
        min_txid: TxId::new(min),
        max_txid: TxId::new(max),
        timestamp: 1_700_000_000_000,
        ..Header::default()
    }
}

/// Pages whose content depends on the page number and a seed, partly
/// compressible.
pub fn page(page_size: u32, pgno: u32, seed: u8) -> Vec<u8> {
    let mut x = (u64::from(pgno) << 8 | u64::from(seed)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..page_size)
        .map(|i| {
            if i % 64 < 32 {
                seed
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

/// Encodes `pages` (pgno, data) with the current encoder.
pub fn encode(h: &Header, pages: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = ltx::Encoder::new(&mut out, h).unwrap();
    for (pgno, data) in pages {
        enc.encode_page(*pgno, data).unwrap();
    }
    enc.finish(ltx::Checksum::ZERO).unwrap();
    out
}

/// Decodes a whole file, returning its pages.
/// Page number and content, in file order.
pub type Pages = Vec<(u32, Vec<u8>)>;

pub fn decode(file: &[u8]) -> ltx::Result<(Header, Pages)> {
    let mut dec = ltx::Decoder::new(file)?;
    let h = *dec.header();
    let mut pages = Vec::new();
    let mut buf = vec![0u8; h.page_size as usize];
    while let Some(pgno) = dec.next_page(&mut buf)? {
        pages.push((pgno, buf.clone()));
    }
    dec.finish()?;
    Ok((h, pages))
}

/// One frame for [`raw_file`]: page number, page-header flags, the payload
/// as stored, and the decompressed page the checksum covers.
pub struct RawFrame {
    pub pgno: u32,
    pub flags: u16,
    pub payload: Vec<u8>,
    pub data: Vec<u8>,
}

impl RawFrame {
    /// A current-encoding frame (LZ4 block with a size field).
    pub fn block(pgno: u32, data: &[u8]) -> RawFrame {
        RawFrame {
            pgno,
            flags: 1,
            payload: lz4_flex::block::compress(data),
            data: data.to_vec(),
        }
    }

    /// A legacy frame (one LZ4 frame, page flags 0).
    pub fn legacy(pgno: u32, data: &[u8]) -> RawFrame {
        RawFrame {
            pgno,
            flags: 0,
            payload: lz4_frame(data),
            data: data.to_vec(),
        }
    }
}

/// Builds a file frame by frame with a correct checksum, whatever rules the
/// frames break, so tests can check the decoder's own rules. `index` replaces
/// the generated page index entries when given; `post` is the trailer's
/// post-apply checksum.
pub fn raw_file(
    h: &Header,
    frames: &[RawFrame],
    index: Option<Vec<(u32, u64, u64)>>,
    post: u64,
) -> Vec<u8> {
    let mut out = h.to_bytes().to_vec();
    let mut crc = Crc64::new();
    crc.update(&out);
    let mut entries = Vec::new();
    for f in frames {
        let offset = out.len() as u64;
        let mut head = f.pgno.to_be_bytes().to_vec();
        head.extend_from_slice(&f.flags.to_be_bytes());
        if f.flags & 1 != 0 {
            head.extend_from_slice(&(f.payload.len() as u32).to_be_bytes());
        }
        crc.update(&head);
        crc.update(&f.data);
        out.extend_from_slice(&head);
        out.extend_from_slice(&f.payload);
        entries.push((f.pgno, offset, (head.len() + f.payload.len()) as u64));
    }
    let mut tail = vec![0u8; 6];
    let start = tail.len();
    for (pgno, offset, size) in index.unwrap_or(entries) {
        uvarint(&mut tail, u64::from(pgno));
        uvarint(&mut tail, offset);
        uvarint(&mut tail, size);
    }
    tail.push(0);
    let len = (tail.len() - start) as u64;
    tail.extend_from_slice(&len.to_be_bytes());
    tail.extend_from_slice(&post.to_be_bytes());
    crc.update(&tail);
    out.extend_from_slice(&tail);
    out.extend_from_slice(&((1u64 << 63) | crc.value()).to_be_bytes());
    out
}

/// Builds a file in the legacy encoding (LTX.md §5.3) from each page's
/// frame bytes and content.
pub fn legacy_file(h: &Header, frames: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let frames: Vec<_> = frames
        .iter()
        .map(|(pgno, payload, data)| RawFrame {
            pgno: *pgno,
            flags: 0,
            payload: payload.clone(),
            data: data.clone(),
        })
        .collect();
    raw_file(h, &frames, None, 0)
}

/// An LZ4 frame as Litestream ≤ 0.5.15 wrote it: 64 KiB independent
/// blocks, content checksum.
pub fn lz4_frame(data: &[u8]) -> Vec<u8> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    use std::io::Write;
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .content_checksum(true);
    let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
