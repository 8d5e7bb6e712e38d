//! Small value types shared by the codec: TXIDs, checksums, page sizes, names.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The byte offset SQLite reserves for file locking (1 GiB); the page that
/// holds it is never stored (LTX.md §6).
pub const PENDING_BYTE: u64 = 0x4000_0000;

/// A transaction id: in Litestream 0.5 a sequence number, one per level-0 file
/// (LTX.md §1). Its text form is exactly 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId(u64);

impl TxId {
    /// The zero TXID, meaning "no position yet". Never stored in a header.
    pub const ZERO: TxId = TxId(0);

    /// Wraps a raw TXID.
    pub const fn new(value: u64) -> TxId {
        TxId(value)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next TXID, or `None` on overflow.
    pub fn next(self) -> Option<TxId> {
        self.0.checked_add(1).map(TxId)
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for TxId {
    type Err = Error;

    /// Parses exactly 16 hex digits (either case), as Litestream's
    /// `-txid` flag and file names do (LTX.md §1).
    fn from_str(s: &str) -> Result<TxId, Error> {
        parse_hex16(s)
            .map(TxId)
            .ok_or_else(|| Error::InvalidTxId(s.to_owned()))
    }
}

/// A 64-bit checksum (CRC-64/GO-ISO based, LTX.md §8.1, §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Checksum(u64);

impl Checksum {
    /// Bit 63, set on every non-zero checksum stored in a file.
    pub const FLAG: u64 = 1 << 63;
    /// The zero checksum, as Litestream writes in every database checksum
    /// field (LTX.md §9.4).
    pub const ZERO: Checksum = Checksum(0);

    /// Wraps a raw value.
    pub const fn new(value: u64) -> Checksum {
        Checksum(value)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether bit 63 is set, as on every non-zero stored checksum.
    pub const fn has_flag(self) -> bool {
        self.0 & Self::FLAG != 0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Whether `size` is a valid SQLite page size: a power of two from 512 to
/// 65536 (LTX.md §3).
pub const fn is_valid_page_size(size: u32) -> bool {
    size >= 512 && size <= 65536 && size.is_power_of_two()
}

/// The page number of the lock page for `page_size`: the page holding byte
/// [`PENDING_BYTE`] (LTX.md §6). `page_size` must be non-zero.
pub const fn lock_pgno(page_size: u32) -> u32 {
    (PENDING_BYTE / page_size as u64) as u32 + 1
}

/// The file name of an LTX file covering `min..=max`:
/// `<min as %016x>-<max as %016x>.ltx` (LTX.md §10).
pub fn file_name(min: TxId, max: TxId) -> String {
    format!("{min}-{max}.ltx")
}

/// Parses an LTX file name into its TXID range. Only the exact lowercase form
/// matches, as in Litestream's listings (LTX.md §10); anything else (such as a
/// `.ltx.tmp` staging file) is `None`.
pub fn parse_file_name(name: &str) -> Option<(TxId, TxId)> {
    let rest = name.strip_suffix(".ltx")?;
    let (min, max) = rest.split_once('-')?;
    let lower = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower(min) || !lower(max) {
        return None;
    }
    Some((TxId(parse_hex16(min)?), TxId(parse_hex16(max)?)))
}

fn parse_hex16(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_page_numbers_match_the_spec_table() {
        let table = [
            (512, 2_097_153),
            (1024, 1_048_577),
            (2048, 524_289),
            (4096, 262_145),
            (8192, 131_073),
            (16384, 65_537),
            (32768, 32_769),
            (65536, 16_385),
        ];
        for (size, pgno) in table {
            assert_eq!(lock_pgno(size), pgno, "page size {size}");
        }
    }

    #[test]
    fn file_names_round_trip_and_reject_near_misses() {
        let name = file_name(TxId::new(1), TxId::new(0x1f4));
        assert_eq!(name, "0000000000000001-00000000000001f4.ltx");
        assert_eq!(
            parse_file_name(&name),
            Some((TxId::new(1), TxId::new(0x1f4)))
        );
        for bad in [
            "0000000000000001-00000000000001F4.ltx",
            "0000000000000001-00000000000001f4.ltx.tmp",
            "000000000000001-00000000000001f4.ltx",
            "0000000000000001_00000000000001f4.ltx",
            "+000000000000001-00000000000001f4.ltx",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn txid_text_form_is_sixteen_hex_digits() {
        assert_eq!(TxId::new(255).to_string(), "00000000000000ff");
        assert_eq!(
            "00000000000000FF".parse::<TxId>().ok(),
            Some(TxId::new(255))
        );
        assert!("ff".parse::<TxId>().is_err());
        assert!("+0000000000000ff".parse::<TxId>().is_err());
    }

    #[test]
    fn page_sizes() {
        for ok in [512, 1024, 4096, 65536] {
            assert!(is_valid_page_size(ok));
        }
        for bad in [0, 256, 1000, 131072] {
            assert!(!is_valid_page_size(bad));
        }
    }
}
