//! CRC-64/GO-ISO (LTX.md §8.1) and the rolling database checksum (§9).

use crc_fast::{CrcAlgorithm, Digest};

use crate::types::{Checksum, lock_pgno};

/// A running CRC-64 with Go's ISO table: `crc64.New(crc64.MakeTable(crc64.ISO))`.
/// Not ECMA-182, not XZ (LTX.md §8.1); check value of `"123456789"` is
/// `0xb90956c775a41001`.
#[derive(Clone, Copy, Debug)]
pub struct Crc64(Digest);

impl Crc64 {
    /// A fresh digest.
    pub fn new() -> Crc64 {
        Crc64(Digest::new(CrcAlgorithm::Crc64GoIso))
    }

    /// Feeds `data`.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Continues this CRC with the content `other` was fed, as if it had
    /// been fed here after what this one has seen.
    pub fn combine(&mut self, other: &Crc64) {
        self.0.combine(&other.0);
    }

    /// The CRC of everything fed so far (the digest stays usable).
    pub fn value(&self) -> u64 {
        self.0.finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Crc64 {
        Crc64::new()
    }
}

/// The checksum of one page: `FLAG | crc64(be32(pgno) ‖ data)` (LTX.md §9.1).
pub fn page_checksum(pgno: u32, data: &[u8]) -> Checksum {
    let mut crc = Crc64::new();
    crc.update(&pgno.to_be_bytes());
    crc.update(data);
    Checksum::new(Checksum::FLAG | crc.value())
}

/// The rolling database checksum (LTX.md §9.2): page checksums XORed
/// together, lock page excluded, bit 63 set once any page was folded.
///
/// Because XOR is its own inverse the sum updates incrementally: replacing a
/// page is [`remove`](Self::remove) of the old content then
/// [`add`](Self::add) of the new.
#[derive(Clone, Copy, Debug)]
pub struct DatabaseChecksum {
    page_size: u32,
    value: u64,
}

impl DatabaseChecksum {
    /// An empty database of `page_size`-byte pages.
    pub fn new(page_size: u32) -> DatabaseChecksum {
        DatabaseChecksum {
            page_size,
            value: 0,
        }
    }

    /// Folds in page `pgno`; the lock page is ignored (LTX.md §6).
    pub fn add(&mut self, pgno: u32, data: &[u8]) {
        if pgno != lock_pgno(self.page_size) {
            self.value = Checksum::FLAG | (self.value ^ page_checksum(pgno, data).get());
        }
    }

    /// Folds out page `pgno` (the same operation as [`add`](Self::add), kept
    /// separate for readability at call sites).
    pub fn remove(&mut self, pgno: u32, data: &[u8]) {
        self.add(pgno, data);
    }

    /// The current checksum.
    pub fn value(&self) -> Checksum {
        Checksum::new(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_go_iso_not_ecma() {
        let mut crc = Crc64::new();
        crc.update(b"123456789");
        assert_eq!(crc.value(), 0xb909_56c7_75a4_1001);
    }

    #[test]
    fn page_checksum_matches_spec_example() {
        // LTX.md §9.1: page 1, 512 zero bytes.
        assert_eq!(page_checksum(1, &[0u8; 512]).get(), 0xefb1_f44f_ecd9_9000);
    }

    #[test]
    fn database_checksum_is_order_independent_and_skips_lock_page() {
        let a = [1u8; 512];
        let b = [2u8; 512];
        let mut x = DatabaseChecksum::new(512);
        x.add(1, &a);
        x.add(2, &b);
        let mut y = DatabaseChecksum::new(512);
        y.add(2, &b);
        y.add(1, &a);
        y.add(lock_pgno(512), &a);
        assert_eq!(x.value(), y.value());
        y.remove(2, &b);
        y.add(2, &a);
        assert_ne!(x.value(), y.value());
        assert!(x.value().has_flag());
    }
}
