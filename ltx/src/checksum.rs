//! CRC-64/GO-ISO (LTX.md §8.1) and the rolling database checksum (§9).

use crc_fast::{CrcAlgorithm, Digest};

use crate::types::{Checksum, lock_pgno};

/// A running CRC-64 with Go's ISO table: `crc64.New(crc64.MakeTable(crc64.ISO))`.
/// Not ECMA-182, not XZ (LTX.md §8.1); check value of `"123456789"` is
/// `0xb90956c775a41001`.
///
/// Digests fed on other threads join with [`combine`](Self::combine), which
/// costs a few hundred word operations whatever the lengths (the general
/// combination squares 64×64 bit matrices for every call, ~0.2 ms each,
/// once per batch of a snapshot).
#[derive(Clone, Copy, Debug)]
pub struct Crc64 {
    /// CRC of the first `len - tail_len` bytes.
    head: u64,
    /// What was fed after them.
    tail: Digest,
    tail_len: u64,
    len: u64,
}

impl Crc64 {
    /// A fresh digest.
    pub fn new() -> Crc64 {
        Crc64 {
            head: 0,
            tail: Digest::new(CrcAlgorithm::Crc64GoIso),
            tail_len: 0,
            len: 0,
        }
    }

    /// Feeds `data`.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        self.tail.update(data);
        self.tail_len += data.len() as u64;
        self.len += data.len() as u64;
    }

    /// Continues this CRC with the content `other` was fed, as if it had
    /// been fed here after what this one has seen.
    pub fn combine(&mut self, other: &Crc64) {
        self.head = concat(self.value(), other.value(), other.len);
        self.tail = Digest::new(CrcAlgorithm::Crc64GoIso);
        self.tail_len = 0;
        self.len += other.len;
    }

    /// The CRC of everything fed so far (the digest stays usable).
    pub fn value(&self) -> u64 {
        if self.tail_len == 0 {
            self.head
        } else {
            concat(self.head, self.tail.finalize(), self.tail_len)
        }
    }
}

/// Go's ISO polynomial, bit-reversed (the register shifts right).
const POLY_REVERSED: u64 = 0xD800_0000_0000_0000;

/// The CRC of `a ‖ b` from the CRCs of `a` and `b` and the length of `b`.
/// With the register starting and ending inverted, the CRC of the empty
/// string is 0 and `crc(a ‖ b) = Z(crc(a)) ^ crc(b)`, where `Z` runs
/// `b_len` zero bytes through the register: a linear map, applied here as
/// the product of precomputed maps for 2^k zero bytes.
fn concat(a: u64, b: u64, b_len: u64) -> u64 {
    let zeros = zero_operators();
    let mut crc = a;
    let mut n = b_len;
    let mut k = 0;
    while n != 0 {
        if n & 1 == 1 {
            crc = apply(&zeros[k], crc);
        }
        n >>= 1;
        k += 1;
    }
    crc ^ b
}

/// A 64×64 matrix over GF(2), one column per input bit.
type Matrix = [u64; 64];

/// `zero_operators()[k]`: the register map of 2^k zero bytes.
fn zero_operators() -> &'static [Matrix; 64] {
    static ZEROS: std::sync::OnceLock<Box<[Matrix; 64]>> = std::sync::OnceLock::new();
    ZEROS.get_or_init(|| {
        // One zero bit: shift right, folding the polynomial in when the
        // bit shifted out was set.
        let mut bit = [0u64; 64];
        bit[0] = POLY_REVERSED;
        for (j, col) in bit.iter_mut().enumerate().skip(1) {
            *col = 1 << (j - 1);
        }
        let mut m = square(&square(&square(&bit)));
        let mut all = Box::new([[0u64; 64]; 64]);
        for op in all.iter_mut() {
            *op = m;
            m = square(&m);
        }
        all
    })
}

fn apply(m: &Matrix, v: u64) -> u64 {
    let mut out = 0;
    let mut v = v;
    let mut j = 0;
    while v != 0 {
        if v & 1 == 1 {
            out ^= m[j];
        }
        v >>= 1;
        j += 1;
    }
    out
}

fn square(m: &Matrix) -> Matrix {
    let mut out = [0u64; 64];
    for (o, col) in out.iter_mut().zip(m) {
        *o = apply(m, *col);
    }
    out
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

    proptest::proptest! {
        #[test]
        fn combined_digests_equal_one_fed_everything(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..20_000),
            cuts in proptest::collection::vec(0usize..20_000, 0..6),
        ) {
            let mut whole = Crc64::new();
            whole.update(&data);
            // Split at the cuts; every second piece goes through its own
            // digest and is combined, the others are fed directly.
            let mut at: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            at.push(0);
            at.push(data.len());
            at.sort_unstable();
            let mut joined = Crc64::new();
            for (i, w) in at.windows(2).enumerate() {
                let piece = &data[w[0]..w[1]];
                if i % 2 == 0 {
                    let mut part = Crc64::new();
                    part.update(piece);
                    joined.combine(&part);
                } else {
                    joined.update(piece);
                }
            }
            proptest::prop_assert_eq!(joined.value(), whole.value());
            let mut general = Digest::new(CrcAlgorithm::Crc64GoIso);
            general.update(&data);
            proptest::prop_assert_eq!(general.finalize(), whole.value());
        }
    }

    #[test]
    fn a_combine_of_empty_digests_is_the_empty_crc() {
        let mut a = Crc64::new();
        a.combine(&Crc64::new());
        assert_eq!(a.value(), 0);
        a.update(b"123456789");
        a.combine(&Crc64::new());
        assert_eq!(a.value(), 0xb909_56c7_75a4_1001);
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
