//! The 100-byte header (LTX.md §3) and the 16-byte trailer (§8).

use crate::error::{Error, Result};
use crate::types::{Checksum, TxId, is_valid_page_size};
use crate::{HEADER_SIZE, MAGIC, TRAILER_SIZE};

/// Header flag bits (LTX.md §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeaderFlags(u32);

impl HeaderFlags {
    /// No flags: database checksums are tracked.
    pub const NONE: HeaderFlags = HeaderFlags(0);
    /// Database checksums are not tracked; both must be zero. Litestream 0.5
    /// sets it on every file it writes (LTX.md §3.1, §9.4).
    pub const NO_CHECKSUM: HeaderFlags = HeaderFlags(0x0000_0002);
    const KNOWN: u32 = Self::NO_CHECKSUM.0;

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits, including unknown ones (validation rejects those).
    pub const fn from_bits(bits: u32) -> HeaderFlags {
        HeaderFlags(bits)
    }

    /// Whether database checksums are off.
    pub const fn no_checksum(self) -> bool {
        self.0 & Self::NO_CHECKSUM.0 != 0
    }
}

/// An LTX file header (LTX.md §3). All integers are big-endian on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Flag bits; Litestream always writes [`HeaderFlags::NO_CHECKSUM`].
    pub flags: HeaderFlags,
    /// SQLite page size in bytes.
    pub page_size: u32,
    /// Database size in pages after this file is applied.
    pub commit: u32,
    /// First TXID covered (1 for a snapshot).
    pub min_txid: TxId,
    /// Last TXID covered.
    pub max_txid: TxId,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Rolling database checksum before applying (0 under NoChecksum).
    pub pre_apply_checksum: Checksum,
    /// Offset in the source WAL where this file's frames began (0 = none).
    pub wal_offset: i64,
    /// WAL bytes covered (whole frames).
    pub wal_size: i64,
    /// Salt-1 of the source WAL header.
    pub wal_salt1: u32,
    /// Salt-2 of the source WAL header.
    pub wal_salt2: u32,
    /// Writer node id; Litestream writes 0.
    pub node_id: u64,
}

impl Default for Header {
    /// A NoChecksum header with every other field zero (not yet valid: the
    /// caller must set page size and TXIDs).
    fn default() -> Header {
        Header {
            flags: HeaderFlags::NO_CHECKSUM,
            page_size: 0,
            commit: 0,
            min_txid: TxId::ZERO,
            max_txid: TxId::ZERO,
            timestamp: 0,
            pre_apply_checksum: Checksum::ZERO,
            wal_offset: 0,
            wal_size: 0,
            wal_salt1: 0,
            wal_salt2: 0,
            node_id: 0,
        }
    }
}

impl Header {
    /// Whether this file is a snapshot: it starts at TXID 1 and so holds
    /// every page of the database (LTX.md §3.2 rule 7, §5.4 rule 4).
    pub fn is_snapshot(&self) -> bool {
        self.min_txid == TxId::new(1)
    }

    /// Checks the rules of LTX.md §3.2, which both the encoder and the
    /// decoder enforce.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidHeader(msg));
        if self.flags.bits() & !HeaderFlags::KNOWN != 0 {
            return bad(format!("unknown flags {:#010x}", self.flags.bits()));
        }
        if !is_valid_page_size(self.page_size) {
            return bad(format!(
                "page size {} is not a power of two from 512 to 65536",
                self.page_size
            ));
        }
        if self.min_txid == TxId::ZERO || self.max_txid == TxId::ZERO {
            return bad("min and max TXID must be non-zero".into());
        }
        if self.min_txid > self.max_txid {
            return bad(format!(
                "min TXID {} is after max TXID {}",
                self.min_txid, self.max_txid
            ));
        }
        if self.wal_offset < 0 || self.wal_size < 0 {
            return bad(format!(
                "negative WAL offset {} or size {}",
                self.wal_offset, self.wal_size
            ));
        }
        if (self.wal_salt1 != 0 || self.wal_salt2 != 0) && self.wal_offset == 0 {
            return bad("WAL salts are set but the WAL offset is zero".into());
        }
        if self.wal_offset == 0 && self.wal_size != 0 {
            return bad("WAL size is set but the WAL offset is zero".into());
        }
        let pre = self.pre_apply_checksum;
        if self.is_snapshot() || self.flags.no_checksum() {
            if pre != Checksum::ZERO {
                return bad(format!("pre-apply checksum {pre} must be zero here"));
            }
        } else if !pre.has_flag() {
            return bad(format!(
                "pre-apply checksum {pre} must be non-zero with bit 63 set"
            ));
        }
        Ok(())
    }

    /// The 100 bytes of this header as stored (LTX.md §3).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.flags.bits().to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.commit.to_be_bytes());
        b[16..24].copy_from_slice(&self.min_txid.get().to_be_bytes());
        b[24..32].copy_from_slice(&self.max_txid.get().to_be_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_be_bytes());
        b[40..48].copy_from_slice(&self.pre_apply_checksum.get().to_be_bytes());
        b[48..56].copy_from_slice(&self.wal_offset.to_be_bytes());
        b[56..64].copy_from_slice(&self.wal_size.to_be_bytes());
        b[64..68].copy_from_slice(&self.wal_salt1.to_be_bytes());
        b[68..72].copy_from_slice(&self.wal_salt2.to_be_bytes());
        b[72..80].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    /// Parses and validates a stored header. Reserved bytes 80..100 are
    /// ignored, as in Go (they are still covered by the file checksum).
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Result<Header> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let header = Header {
            flags: HeaderFlags::from_bits(be_u32(b, 4)),
            page_size: be_u32(b, 8),
            commit: be_u32(b, 12),
            min_txid: TxId::new(be_u64(b, 16)),
            max_txid: TxId::new(be_u64(b, 24)),
            timestamp: be_u64(b, 32) as i64,
            pre_apply_checksum: Checksum::new(be_u64(b, 40)),
            wal_offset: be_u64(b, 48) as i64,
            wal_size: be_u64(b, 56) as i64,
            wal_salt1: be_u32(b, 64),
            wal_salt2: be_u32(b, 68),
            node_id: be_u64(b, 72),
        };
        header.validate()?;
        Ok(header)
    }
}

/// The 16-byte trailer (LTX.md §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    /// Rolling database checksum after applying (0 under NoChecksum).
    pub post_apply_checksum: Checksum,
    /// `FLAG | crc64` of the file's logical content (LTX.md §8.1).
    pub file_checksum: Checksum,
}

impl Trailer {
    /// The 16 bytes as stored.
    pub fn to_bytes(&self) -> [u8; TRAILER_SIZE] {
        let mut b = [0u8; TRAILER_SIZE];
        b[0..8].copy_from_slice(&self.post_apply_checksum.get().to_be_bytes());
        b[8..16].copy_from_slice(&self.file_checksum.get().to_be_bytes());
        b
    }

    /// Parses stored bytes (no validation; see [`Trailer::validate`]).
    pub fn from_bytes(b: &[u8; TRAILER_SIZE]) -> Trailer {
        Trailer {
            post_apply_checksum: Checksum::new(be_u64(b, 0)),
            file_checksum: Checksum::new(be_u64(b, 8)),
        }
    }

    /// Checks the trailer against the header flags (LTX.md §8): under
    /// NoChecksum the post-apply checksum must be zero, otherwise non-zero
    /// with bit 63 set; the file checksum always has bit 63 set.
    pub fn validate(&self, flags: HeaderFlags) -> Result<()> {
        let post = self.post_apply_checksum;
        if flags.no_checksum() {
            if post != Checksum::ZERO {
                return Err(Error::InvalidTrailer(format!(
                    "post-apply checksum {post} is not allowed with the NoChecksum flag"
                )));
            }
        } else if !post.has_flag() {
            return Err(Error::InvalidTrailer(format!(
                "post-apply checksum {post} must have bit 63 set"
            )));
        }
        if !self.file_checksum.has_flag() {
            return Err(Error::InvalidTrailer(format!(
                "file checksum {} must have bit 63 set",
                self.file_checksum
            )));
        }
        Ok(())
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of LTX.md §4, byte for byte.
    #[test]
    fn header_matches_spec_worked_example() {
        let h = Header {
            flags: HeaderFlags::NO_CHECKSUM,
            page_size: 512,
            commit: 1,
            min_txid: TxId::new(1),
            max_txid: TxId::new(1),
            timestamp: 1_700_000_000_000,
            wal_offset: 32,
            wal_size: 536,
            wal_salt1: 0x0102_0304,
            wal_salt2: 0x0506_0708,
            ..Header::default()
        };
        let expected: [u8; 72] = [
            0x4c, 0x54, 0x58, 0x31, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 0, 1, //
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, //
            0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 2, 0x18, //
            1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..72], &expected);
        assert!(bytes[72..].iter().all(|&b| b == 0));
        assert_eq!(Header::from_bytes(&bytes).ok(), Some(h));
    }

    #[test]
    fn validation_rejects_each_rule() {
        let ok = Header {
            page_size: 4096,
            min_txid: TxId::new(2),
            max_txid: TxId::new(3),
            ..Header::default()
        };
        assert!(ok.validate().is_ok());
        let cases: Vec<(&str, Header)> = vec![
            (
                "flags",
                Header {
                    flags: HeaderFlags::from_bits(1),
                    ..ok
                },
            ),
            (
                "page size",
                Header {
                    page_size: 4095,
                    ..ok
                },
            ),
            (
                "zero min",
                Header {
                    min_txid: TxId::ZERO,
                    ..ok
                },
            ),
            (
                "min > max",
                Header {
                    min_txid: TxId::new(4),
                    ..ok
                },
            ),
            (
                "neg offset",
                Header {
                    wal_offset: -1,
                    ..ok
                },
            ),
            ("salt no offset", Header { wal_salt1: 1, ..ok }),
            ("size no offset", Header { wal_size: 10, ..ok }),
            (
                "pre-apply",
                Header {
                    pre_apply_checksum: Checksum::new(Checksum::FLAG | 1),
                    ..ok
                },
            ),
            (
                "checksummed without flag",
                Header {
                    flags: HeaderFlags::NONE,
                    pre_apply_checksum: Checksum::new(1),
                    ..ok
                },
            ),
        ];
        for (name, h) in cases {
            assert!(h.validate().is_err(), "{name} should be rejected");
        }
    }

    #[test]
    fn bad_magic_is_reported() {
        let mut b = [0u8; HEADER_SIZE];
        b[..4].copy_from_slice(b"LTX0");
        assert!(matches!(
            Header::from_bytes(&b),
            Err(Error::BadMagic { .. })
        ));
    }
}
