//! The 32-byte WAL header and the 24-byte frame header (REPLICATION.md §3).

use super::checksum::{ByteOrder, Checksum};
use super::error::{Error, Result};
use freshet_io::ReadAt;

/// Size of the WAL header; the first frame starts here.
pub const HEADER_SIZE: usize = 32;
/// Size of the header in front of every page in the WAL.
pub const FRAME_HEADER_SIZE: usize = 24;
/// Magic of a WAL whose checksum words are little-endian.
pub const MAGIC_LITTLE: u32 = 0x377f_0682;
/// Magic of a WAL whose checksum words are big-endian.
pub const MAGIC_BIG: u32 = 0x377f_0683;
/// The only WAL format version SQLite has written (3.7.0).
pub const VERSION: u32 = 3_007_000;

/// Offset of the first frame, as a `u64` for offset arithmetic.
pub(crate) const FIRST_FRAME: u64 = HEADER_SIZE as u64;

/// Reads a big-endian `u32` at `at` of a fixed-size buffer.
fn be32<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The salt pair SQLite draws for each WAL generation.
///
/// A frame belongs to the current generation only if it carries the header's
/// salts, so a changed pair is how a WAL restart is detected
/// (REPLICATION.md §4.2 steps 4–8). LTX files record it as WALSalt1/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Salts {
    /// salt-1: incremented by SQLite on every WAL restart.
    pub salt1: u32,
    /// salt-2: a fresh random value on every WAL restart.
    pub salt2: u32,
}

/// A valid WAL header: it decides the page size, the checksum byte order, the
/// current generation's salts and the checksum frame 0 continues from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Checksum word order, from the magic.
    pub byte_order: ByteOrder,
    /// Page size in bytes; the WAL stores 65536 as 65536 (unlike the database
    /// header's 1).
    pub page_size: u32,
    /// Checkpoint sequence number, incremented on each WAL restart.
    pub checkpoint_seq: u32,
    /// Salts of the current generation.
    pub salts: Salts,
    /// Checksum of header bytes 0..24: the seed for frame 0.
    pub checksum: Checksum,
}

impl Header {
    /// Parses and validates a header (REPLICATION.md §3 rule 1).
    ///
    /// `Ok(None)` when the checksum does not match: SQLite may be rewriting
    /// the header at this moment, which is "no valid WAL", not corruption.
    /// An unknown magic or version is an error (checked before and after the
    /// checksum respectively, as the reference reader does), and so is a
    /// page size no SQLite could write.
    pub fn parse(bytes: &[u8; HEADER_SIZE]) -> Result<Option<Header>> {
        let byte_order = match be32(bytes, 0) {
            MAGIC_LITTLE => ByteOrder::Little,
            MAGIC_BIG => ByteOrder::Big,
            magic => return Err(Error::BadMagic { magic }),
        };
        let stored = Checksum {
            s0: be32(bytes, 24),
            s1: be32(bytes, 28),
        };
        if Checksum::ZERO.update(byte_order, &bytes[..24]) != stored {
            return Ok(None);
        }
        let version = be32(bytes, 4);
        if version != VERSION {
            return Err(Error::BadVersion { version });
        }
        let page_size = be32(bytes, 8);
        if !is_valid_page_size(page_size) {
            return Err(Error::BadPageSize { page_size });
        }
        Ok(Some(Header {
            byte_order,
            page_size,
            checkpoint_seq: be32(bytes, 12),
            salts: Salts {
                salt1: be32(bytes, 16),
                salt2: be32(bytes, 20),
            },
            checksum: stored,
        }))
    }

    /// Bytes per frame: frame header plus one page.
    pub fn frame_size(&self) -> u64 {
        frame_size(self.page_size)
    }

    /// Whether `offset` is the start of a frame (at or after the first one).
    pub fn is_frame_aligned(&self, offset: u64) -> bool {
        is_frame_offset(offset, self.frame_size())
    }

    /// Encodes the header, computing its checksum; used to craft WALs in
    /// tests.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        let magic = match self.byte_order {
            ByteOrder::Little => MAGIC_LITTLE,
            ByteOrder::Big => MAGIC_BIG,
        };
        b[0..4].copy_from_slice(&magic.to_be_bytes());
        b[4..8].copy_from_slice(&VERSION.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.checkpoint_seq.to_be_bytes());
        b[16..20].copy_from_slice(&self.salts.salt1.to_be_bytes());
        b[20..24].copy_from_slice(&self.salts.salt2.to_be_bytes());
        let c = Checksum::ZERO.update(self.byte_order, &b[..24]);
        b[24..28].copy_from_slice(&c.s0.to_be_bytes());
        b[28..32].copy_from_slice(&c.s1.to_be_bytes());
        b
    }
}

/// Bytes per frame for `page_size`: `24 + page_size` (REPLICATION.md §1).
pub fn frame_size(page_size: u32) -> u64 {
    FRAME_HEADER_SIZE as u64 + u64::from(page_size)
}

/// Whether `offset` starts a frame when frames are `frame_size` bytes.
pub(crate) fn is_frame_offset(offset: u64, frame_size: u64) -> bool {
    offset >= FIRST_FRAME && (offset - FIRST_FRAME).is_multiple_of(frame_size)
}

/// Whether SQLite could use `page_size`: a power of two in 512..=65536.
pub fn is_valid_page_size(page_size: u32) -> bool {
    page_size.is_power_of_two() && (512..=65536).contains(&page_size)
}

/// Reads and validates the header at the start of `src` (REPLICATION.md §3
/// rule 1): `Ok(None)` when it is shorter than 32 bytes or fails its checksum.
pub fn read_header<R: ReadAt + ?Sized>(src: &R) -> Result<Option<Header>> {
    let mut bytes = [0u8; HEADER_SIZE];
    let n = src.read_full_at(&mut bytes, 0).map_err(Error::io(0))?;
    if n < HEADER_SIZE {
        return Ok(None);
    }
    Header::parse(&bytes)
}

/// The 24-byte header of one frame (REPLICATION.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Page number the frame carries (SQLite never writes 0).
    pub pgno: u32,
    /// Database size in pages after this commit; 0 for non-commit frames.
    pub commit: u32,
    /// Salts of the generation that wrote the frame.
    pub salts: Salts,
    /// Cumulative checksum through the end of this frame.
    pub checksum: Checksum,
}

impl FrameHeader {
    /// Decodes a frame header. Nothing is validated here: salts and checksum
    /// only mean something relative to the frames before.
    pub fn parse(bytes: &[u8; FRAME_HEADER_SIZE]) -> FrameHeader {
        FrameHeader {
            pgno: be32(bytes, 0),
            commit: be32(bytes, 4),
            salts: Salts {
                salt1: be32(bytes, 8),
                salt2: be32(bytes, 12),
            },
            checksum: Checksum {
                s0: be32(bytes, 16),
                s1: be32(bytes, 20),
            },
        }
    }

    /// Whether this frame ends a transaction.
    pub fn is_commit(&self) -> bool {
        self.commit != 0
    }

    /// Encodes the header as stored; used to craft WALs in tests.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; FRAME_HEADER_SIZE] {
        let mut b = [0u8; FRAME_HEADER_SIZE];
        let words = [
            self.pgno,
            self.commit,
            self.salts.salt1,
            self.salts.salt2,
            self.checksum.s0,
            self.checksum.s1,
        ];
        for (i, w) in words.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        b
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample(order: ByteOrder) -> Header {
        Header {
            byte_order: order,
            page_size: 4096,
            checkpoint_seq: 7,
            salts: Salts {
                salt1: 0x0102_0304,
                salt2: 0xa0b0_c0d0,
            },
            checksum: Checksum::ZERO,
        }
    }

    #[test]
    fn round_trips_both_byte_orders() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let bytes = sample(order).encode();
            let h = Header::parse(&bytes).unwrap().unwrap();
            assert_eq!(h.byte_order, order);
            assert_eq!(h.page_size, 4096);
            assert_eq!(h.checkpoint_seq, 7);
            assert_eq!(h.salts, sample(order).salts);
            assert_eq!(h.checksum, Checksum::ZERO.update(order, &bytes[..24]));
            assert_eq!(h.frame_size(), 4120);
        }
    }

    #[test]
    fn checksum_mismatch_is_no_wal_not_an_error() {
        let mut bytes = sample(ByteOrder::Little).encode();
        bytes[17] ^= 1;
        assert_eq!(Header::parse(&bytes).unwrap(), None);
        let mut bytes = sample(ByteOrder::Little).encode();
        bytes[31] ^= 1;
        assert_eq!(Header::parse(&bytes).unwrap(), None);
    }

    #[test]
    fn short_header_is_no_wal() {
        let bytes = sample(ByteOrder::Little).encode();
        assert_eq!(read_header(&bytes[..31]).unwrap(), None);
        assert_eq!(read_header(&[][..]).unwrap(), None);
        assert!(read_header(&bytes[..]).unwrap().is_some());
    }

    #[test]
    fn unknown_magic_is_an_error_even_with_a_bad_checksum() {
        let mut bytes = sample(ByteOrder::Little).encode();
        bytes[3] = 0x84;
        assert!(matches!(
            Header::parse(&bytes),
            Err(Error::BadMagic { magic: 0x377f_0684 })
        ));
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut h = sample(ByteOrder::Big).encode();
        h[4..8].copy_from_slice(&3_007_001u32.to_be_bytes());
        let c = Checksum::ZERO.update(ByteOrder::Big, &h[..24]);
        h[24..28].copy_from_slice(&c.s0.to_be_bytes());
        h[28..32].copy_from_slice(&c.s1.to_be_bytes());
        assert!(matches!(
            Header::parse(&h),
            Err(Error::BadVersion { version: 3_007_001 })
        ));
    }

    #[test]
    fn page_sizes() {
        for ok in [512, 1024, 4096, 32768, 65536] {
            assert!(is_valid_page_size(ok), "{ok}");
            let mut h = sample(ByteOrder::Little);
            h.page_size = ok;
            assert_eq!(Header::parse(&h.encode()).unwrap().unwrap().page_size, ok);
        }
        for bad in [0, 1, 256, 1000, 4095, 131_072] {
            assert!(!is_valid_page_size(bad), "{bad}");
            let mut h = sample(ByteOrder::Little);
            h.page_size = bad;
            assert!(matches!(
                Header::parse(&h.encode()),
                Err(Error::BadPageSize { page_size }) if page_size == bad
            ));
        }
    }

    #[test]
    fn frame_alignment() {
        let h = sample(ByteOrder::Little);
        assert!(h.is_frame_aligned(32));
        assert!(h.is_frame_aligned(32 + 4120 * 3));
        assert!(!h.is_frame_aligned(0));
        assert!(!h.is_frame_aligned(33));
        assert!(!h.is_frame_aligned(32 + 4096));
    }

    #[test]
    fn frame_header_round_trip() {
        let f = FrameHeader {
            pgno: 3,
            commit: 9,
            salts: Salts { salt1: 1, salt2: 2 },
            checksum: Checksum { s0: 5, s1: 6 },
        };
        assert_eq!(FrameHeader::parse(&f.encode()), f);
        assert!(f.is_commit());
    }
}
