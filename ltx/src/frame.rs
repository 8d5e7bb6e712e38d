//! Legacy page payloads: one LZ4 *frame* per page, as written by Litestream
//! 0.5.0–0.5.15 (LTX.md §5.3). Read-only: new files never use this form.

use std::io::Read;

use lz4_flex::block::decompress_into_with_dict;
use twox_hash::XxHash32;

use crate::decoder::Input;
use crate::error::{Error, Result};

const FRAME_MAGIC: u32 = 0x184D_2204;

/// Decodes exactly one LZ4 frame from `input` into `page`, which it must fill
/// exactly. `scratch` holds compressed blocks. Returns the frame's length.
/// Accepts any valid frame (a superset of what Go reads), verifying the
/// header, block and content checksums the frame carries.
pub(crate) fn decode_frame<R: Read>(
    input: &mut Input<R>,
    page: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<u64> {
    let start = input.offset();
    let bad = |reason: String| Error::InvalidPage {
        offset: start,
        reason,
    };

    let mut fixed = [0u8; 6];
    input.read_exact(&mut fixed, "LZ4 frame header")?;
    let magic = u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
    if magic != FRAME_MAGIC {
        return Err(bad(format!(
            "page flags 0 mean an LZ4 frame, but the magic is {magic:#010x}"
        )));
    }
    let (flg, bd) = (fixed[4], fixed[5]);
    if flg >> 6 != 0b01 || flg & 0b10 != 0 || bd & 0x8f != 0 {
        return Err(bad(format!(
            "unsupported LZ4 frame descriptor {flg:#04x} {bd:#04x}"
        )));
    }
    let independent = flg & 0x20 != 0;
    let block_checksums = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    if flg & 0x01 != 0 {
        return Err(bad(
            "LZ4 frames with a dictionary are not used by LTX".into()
        ));
    }
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        other => return Err(bad(format!("invalid LZ4 block maximum size code {other}"))),
    };

    let mut descriptor = [0u8; 11];
    descriptor[..2].copy_from_slice(&[flg, bd]);
    let mut desc_len = 2;
    if content_size {
        input.read_exact(&mut descriptor[2..10], "LZ4 frame content size")?;
        desc_len = 10;
        let size = u64::from_le_bytes(descriptor[2..10].try_into().unwrap_or_default());
        if size != page.len() as u64 {
            return Err(bad(format!(
                "LZ4 frame content size {size} is not the page size"
            )));
        }
    }
    let mut hc = [0u8; 1];
    input.read_exact(&mut hc, "LZ4 frame header checksum")?;
    let expected_hc = (XxHash32::oneshot(0, &descriptor[..desc_len]) >> 8) as u8;
    if hc[0] != expected_hc {
        return Err(bad("LZ4 frame header checksum mismatch".into()));
    }

    let mut filled = 0usize;
    loop {
        let mut word = [0u8; 4];
        input.read_exact(&mut word, "LZ4 block size")?;
        let raw = u32::from_le_bytes(word);
        if raw == 0 {
            break;
        }
        let stored = raw & 0x8000_0000 != 0;
        let len = (raw & 0x7fff_ffff) as usize;
        if len > max_block {
            return Err(bad(format!(
                "LZ4 block of {len} bytes exceeds the frame's maximum"
            )));
        }
        scratch.resize(len, 0);
        input.read_exact(scratch, "LZ4 block")?;
        if block_checksums {
            input.read_exact(&mut word, "LZ4 block checksum")?;
            if u32::from_le_bytes(word) != XxHash32::oneshot(0, scratch) {
                return Err(bad("LZ4 block checksum mismatch".into()));
            }
        }
        let (done, rest) = page.split_at_mut(filled);
        let n = if stored {
            let dst = rest
                .get_mut(..len)
                .ok_or_else(|| bad("LZ4 frame holds more than one page".into()))?;
            dst.copy_from_slice(scratch);
            len
        } else {
            // Dependent blocks may refer back up to 64 KiB into earlier output.
            let dict: &[u8] = if independent {
                &[]
            } else {
                &done[done.len().saturating_sub(64 << 10)..]
            };
            decompress_into_with_dict(scratch, rest, dict)
                .map_err(|e| bad(format!("LZ4 block does not decode to a page: {e}")))?
        };
        filled += n;
    }
    if filled != page.len() {
        return Err(bad(format!(
            "LZ4 frame decodes to {filled} bytes, expected the page size {}",
            page.len()
        )));
    }
    if content_checksum {
        let mut word = [0u8; 4];
        input.read_exact(&mut word, "LZ4 content checksum")?;
        if u32::from_le_bytes(word) != XxHash32::oneshot(0, page) {
            return Err(bad("LZ4 frame content checksum mismatch".into()));
        }
    }
    Ok(input.offset() - start)
}
