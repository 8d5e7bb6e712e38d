//! SQLite's WAL checksum (REPLICATION.md §3): not a CRC but a cumulative pair
//! of 32-bit sums, chained from the header through every frame.
//!
//! This runs over every byte of WAL we replicate, so the loop reads whole
//! 8-byte units as two `u32` with the byte order fixed outside the loop (one
//! monomorphised loop per order), does no per-byte work, and splits blocks
//! into independent lanes (see [`Mat`]).

/// Order of the 32-bit words the checksum reads, chosen by the WAL magic
/// (REPLICATION.md §3). Header fields are big-endian either way; only the
/// checksum words follow this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Magic `0x377f0682`, written by little-endian hosts.
    Little,
    /// Magic `0x377f0683`, written by big-endian hosts.
    Big,
}

/// The running checksum pair `(s0, s1)` (REPLICATION.md §3).
///
/// Each frame stores the value after covering its own bytes, and the next
/// frame continues from it, which is why a resumed scan seeds the pair from
/// the stored checksum of the frame before it (§3 rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Checksum {
    /// First word (`checksum-1` on disk).
    pub s0: u32,
    /// Second word (`checksum-2` on disk).
    pub s1: u32,
}

impl Checksum {
    /// The starting value for the header checksum.
    pub const ZERO: Checksum = Checksum { s0: 0, s1: 0 };

    /// Continues the checksum over `data`, whose length must be a multiple of
    /// 8 (true of every range SQLite checksums: 24 header bytes, 8 frame
    /// header bytes, pages of 512..65536). A trailing partial unit is ignored,
    /// as it can never match a checksum SQLite wrote.
    #[must_use]
    pub fn update(self, order: ByteOrder, data: &[u8]) -> Checksum {
        debug_assert_eq!(data.len() % 8, 0, "checksummed ranges are 8-byte units");
        let (units, _) = data.as_chunks::<8>();
        let (s0, s1) = match order {
            ByteOrder::Little => sum_units(self.s0, self.s1, units, u32::from_le_bytes),
            ByteOrder::Big => sum_units(self.s0, self.s1, units, u32::from_be_bytes),
        };
        Checksum { s0, s1 }
    }
}

/// The checksum recurrence as a step of a linear map over `u32` pairs,
/// wrapping: `x ← M·x + (a, a + b)` with `M = [[1, 1], [1, 2]]`, since
/// `s0' = s0 + s1 + a` and `s1' = s1 + s0' + b = s0 + 2·s1 + a + b`.
///
/// So the pair after ranges X then Y is `M^|Y| · (pair after X) + (pair over
/// Y started from zero)`. The straightforward loop is one dependency chain
/// (two additions per 8 bytes); splitting each 512-byte block (every page
/// size is a multiple) into four independent 16-unit lanes and combining
/// them with the constant powers below lets the CPU run the lanes in
/// parallel: about twice as fast as the single chain on cached data.
type Mat = [[u32; 2]; 2];

const fn mat_mul(x: Mat, y: Mat) -> Mat {
    let mut r = [[0u32; 2]; 2];
    let mut i = 0;
    while i < 4 {
        let (row, col) = (i / 2, i % 2);
        r[row][col] = x[row][0]
            .wrapping_mul(y[0][col])
            .wrapping_add(x[row][1].wrapping_mul(y[1][col]));
        i += 1;
    }
    r
}

const fn mat_pow(n: u32) -> Mat {
    let mut r = [[1, 0], [0, 1]];
    let mut i = 0;
    while i < n {
        r = mat_mul(r, [[1, 1], [1, 2]]);
        i += 1;
    }
    r
}

/// Units per lane and lanes per block (4 × 16 × 8 bytes = 512).
const LANE: usize = 16;
const BLOCK: usize = 4 * LANE;
/// `M^16`, to append a lane, and `M^64`, to append a block.
const M_LANE: Mat = mat_pow(LANE as u32);
const M_BLOCK: Mat = mat_pow(BLOCK as u32);

/// `m·x + d`, wrapping.
#[inline(always)]
fn advance(m: &Mat, x: (u32, u32), d: (u32, u32)) -> (u32, u32) {
    let row = |r: [u32; 2]| r[0].wrapping_mul(x.0).wrapping_add(r[1].wrapping_mul(x.1));
    (row(m[0]).wrapping_add(d.0), row(m[1]).wrapping_add(d.1))
}

/// One unit of the recurrence: `s0 += a + s1; s1 += b + s0`.
#[inline(always)]
fn step(x: &mut (u32, u32), u: &[u8; 8], word: &impl Fn([u8; 4]) -> u32) {
    x.0 =
        x.0.wrapping_add(word([u[0], u[1], u[2], u[3]]))
            .wrapping_add(x.1);
    x.1 =
        x.1.wrapping_add(word([u[4], u[5], u[6], u[7]]))
            .wrapping_add(x.0);
}

/// Runs the recurrence over `units` from `(s0, s1)`, block by block.
#[inline(always)]
fn sum_units(s0: u32, s1: u32, units: &[[u8; 8]], word: impl Fn([u8; 4]) -> u32) -> (u32, u32) {
    let mut x = (s0, s1);
    let (blocks, rest) = units.as_chunks::<BLOCK>();
    for b in blocks {
        let mut lanes = [(0u32, 0u32); 4];
        for i in 0..LANE {
            for (j, lane) in lanes.iter_mut().enumerate() {
                step(lane, &b[j * LANE + i], &word);
            }
        }
        let [l0, l1, l2, l3] = lanes;
        let d = advance(&M_LANE, advance(&M_LANE, advance(&M_LANE, l0, l1), l2), l3);
        x = advance(&M_BLOCK, x, d);
    }
    for u in rest {
        step(&mut x, u, &word);
    }
    x
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The recurrence one unit at a time, as the spec states it, to check
    /// the blocked loop against.
    fn slow(order: ByteOrder, seed: Checksum, data: &[u8]) -> Checksum {
        let (mut s0, mut s1) = (seed.s0, seed.s1);
        let mut i = 0;
        while i + 8 <= data.len() {
            let w = |j: usize| {
                let b = [data[j], data[j + 1], data[j + 2], data[j + 3]];
                match order {
                    ByteOrder::Little => u32::from_le_bytes(b),
                    ByteOrder::Big => u32::from_be_bytes(b),
                }
            };
            s0 = s0.wrapping_add(w(i)).wrapping_add(s1);
            s1 = s1.wrapping_add(w(i + 4)).wrapping_add(s0);
            i += 8;
        }
        Checksum { s0, s1 }
    }

    #[test]
    fn known_answer() {
        // Little-endian words a = 1, b = 2: s0 = 0 + 1 + 0 = 1, s1 = 0 + 2 + 1 = 3;
        // then a = 3, b = 4: s0 = 1 + 3 + 3 = 7, s1 = 3 + 4 + 7 = 14.
        let data = [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0];
        let c = Checksum::ZERO.update(ByteOrder::Little, &data);
        assert_eq!(c, Checksum { s0: 7, s1: 14 });
        // The same bytes as big-endian words are 1 << 24, 2 << 24, ...
        let c = Checksum::ZERO.update(ByteOrder::Big, &data);
        assert_eq!(
            c,
            Checksum {
                s0: 7 << 24,
                s1: 14 << 24
            }
        );
    }

    #[test]
    fn wraps_instead_of_overflowing() {
        let data = [0xff; 64];
        let c = Checksum::ZERO.update(ByteOrder::Little, &data);
        assert_eq!(c, slow(ByteOrder::Little, Checksum::ZERO, &data));
        assert_ne!(c, Checksum::ZERO);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let whole = Checksum::ZERO.update(order, &data);
            let split = Checksum::ZERO
                .update(order, &data[..8])
                .update(order, &data[8..1032])
                .update(order, &data[1032..]);
            assert_eq!(whole, split);
            assert_eq!(whole, slow(order, Checksum::ZERO, &data));
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_the_slow_transcription(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..2200),
            s0 in proptest::num::u32::ANY,
            s1 in proptest::num::u32::ANY,
            big in proptest::bool::ANY,
        ) {
            let order = if big { ByteOrder::Big } else { ByteOrder::Little };
            let data = &data[..data.len() / 8 * 8];
            let seed = Checksum { s0, s1 };
            proptest::prop_assert_eq!(seed.update(order, data), slow(order, seed, data));
        }
    }
}
