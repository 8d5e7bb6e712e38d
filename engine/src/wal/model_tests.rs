//! Property tests: the reader against a direct model of REPLICATION.md §3
//! rules 2–7, on crafted WALs with random transactions, stale frames of an
//! older generation, truncation, a flipped byte and a byte limit.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::testutil::WalWriter;
use super::*;

const PS: u32 = 512;
const FS: u64 = 24 + PS as u64;
const SALTS: Salts = Salts {
    salt1: 0x1111_2222,
    salt2: 0x3333_4444,
};
const STALE: Salts = Salts {
    salt1: 0x1111_2221,
    salt2: 0x5555_6666,
};

#[derive(Debug, Clone)]
struct Tx {
    pages: Vec<(u32, u8)>,
    commit: u32,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    offset: u64,
    pgno: u32,
    commit: u32,
    stale: bool,
}

#[derive(Debug, Clone)]
struct Case {
    big: bool,
    txs: Vec<Tx>,
    tail: Vec<(u32, u8)>,
    stale: usize,
    /// Fraction of the WAL kept, in 1/1000.
    keep: u32,
    /// Position of a flipped bit after the header, in 1/1000 of the frames,
    /// and which bit.
    flip: Option<(u32, u8)>,
    limit: Option<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    let tx = (
        prop::collection::vec((1u32..24, any::<u8>()), 1..6),
        1u32..30,
    )
        .prop_map(|(pages, commit)| Tx { pages, commit });
    (
        any::<bool>(),
        prop::collection::vec(tx, 0..25),
        prop::collection::vec((1u32..24, any::<u8>()), 0..4),
        0usize..4,
        prop_oneof![Just(1000u32), 0u32..1000],
        prop::option::of((0u32..1000, 0u8..8)),
        prop::option::of(prop_oneof![0u64..40 * FS, (0u64..40).prop_map(|k| k * FS)]),
    )
        .prop_map(|(big, txs, tail, stale, keep, flip, limit)| Case {
            big,
            txs,
            tail,
            stale,
            keep,
            flip,
            limit,
        })
}

/// Builds the WAL of a case (before damage) and the list of its frames.
fn build(c: &Case) -> (Vec<u8>, Vec<Rec>) {
    let order = if c.big {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let mut w = WalWriter::new(order, PS, SALTS);
    let mut recs = Vec::new();
    let page = |pgno: u32, fill: u8| {
        let mut p = vec![fill; PS as usize];
        p[..4].copy_from_slice(&pgno.to_be_bytes());
        p
    };
    let mut push = |w: &mut WalWriter, pgno, commit, fill, stale: bool| {
        let offset = if stale {
            w.stale_frame(pgno, STALE, &page(pgno, fill))
        } else {
            w.frame(pgno, commit, &page(pgno, fill))
        };
        recs.push(Rec {
            offset,
            pgno,
            commit,
            stale,
        });
    };
    for tx in &c.txs {
        for (i, &(pgno, fill)) in tx.pages.iter().enumerate() {
            let commit = if i + 1 == tx.pages.len() {
                tx.commit
            } else {
                0
            };
            push(&mut w, pgno, commit, fill, false);
        }
    }
    for &(pgno, fill) in &c.tail {
        push(&mut w, pgno, 0, fill, false);
    }
    for i in 0..c.stale {
        push(&mut w, 1 + i as u32, 0, 0xee, true);
    }
    (w.bytes, recs)
}

/// Applies truncation and the flipped bit; returns the damaged WAL and where
/// the flip is (offset, mask).
fn damage(c: &Case, mut wal: Vec<u8>) -> (Vec<u8>, Option<(u64, u8)>) {
    let body = wal.len() as u64 - 32;
    let len = 32 + body * u64::from(c.keep) / 1000;
    wal.truncate(len as usize);
    let mut flipped = None;
    if let Some((pos, bit)) = c.flip
        && len > 32
    {
        let at = 32 + (len - 32) * u64::from(pos) / 1000;
        wal[at as usize] ^= 1 << bit;
        flipped = Some((at, 1 << bit));
    }
    (wal, flipped)
}

#[derive(Debug, PartialEq, Eq)]
struct Expect {
    pages: Vec<(u32, u64)>,
    end: u64,
    commit: u32,
    frames: u64,
    transactions: u64,
    uncommitted: u64,
    stop: Stop,
}

/// REPLICATION.md §3 rules 2–6 written out directly over the frame list.
fn model(
    recs: &[Rec],
    start: u64,
    len: u64,
    flip: Option<(u64, u8)>,
    limit: Option<u64>,
) -> Expect {
    let mut committed = BTreeMap::new();
    let mut pending = Vec::new();
    let (mut end, mut commit, mut frames, mut txs) = (start, 0, 0, 0);
    let mut stop = None;
    for r in recs.iter().filter(|r| r.offset >= start) {
        let o = r.offset;
        let flipped = flip
            .filter(|&(f, _)| f >= o && f < o + FS)
            .map(|(f, mask)| (f - o, mask));
        stop = if o + FS > len {
            Some(match len - o {
                0 => Stop::EndOfFile { offset: o },
                n => Stop::TornFrame {
                    offset: o,
                    len: n as usize,
                },
            })
        } else if r.stale || flipped.is_some_and(|(at, _)| (8..16).contains(&at)) {
            // A stale frame carries the old salts; a flip inside the salts
            // (of a stale frame too) changes what the reader finds.
            let base = if r.stale { STALE } else { SALTS };
            let mut found = [base.salt1.to_be_bytes(), base.salt2.to_be_bytes()].concat();
            if let Some((at, mask)) = flipped.filter(|(at, _)| (8..16).contains(at)) {
                found[at as usize - 8] ^= mask;
            }
            Some(Stop::SaltMismatch {
                offset: o,
                found: Salts {
                    salt1: u32::from_be_bytes([found[0], found[1], found[2], found[3]]),
                    salt2: u32::from_be_bytes([found[4], found[5], found[6], found[7]]),
                },
            })
        } else if flipped.is_some() {
            Some(Stop::ChecksumMismatch { offset: o })
        } else {
            None
        };
        if stop.is_some() {
            break;
        }
        pending.push((r.pgno, o));
        if r.commit != 0 {
            frames += pending.len() as u64;
            committed.extend(pending.drain(..));
            commit = r.commit;
            end = o + FS;
            txs += 1;
            if limit.is_some_and(|l| end - start >= l) {
                stop = Some(Stop::ByteLimit { offset: end });
                break;
            }
        }
    }
    let stop = stop.unwrap_or(Stop::EndOfFile { offset: len });
    committed.retain(|&p, _| p <= commit);
    Expect {
        pages: committed.into_iter().collect(),
        end,
        commit,
        frames,
        transactions: txs,
        uncommitted: pending.len() as u64,
        stop,
    }
}

fn got(s: &Scan) -> Expect {
    Expect {
        pages: s.pages.iter().collect(),
        end: s.end,
        commit: s.commit,
        frames: s.frames,
        transactions: s.transactions,
        uncommitted: s.uncommitted,
        stop: s.stop,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scan_agrees_with_the_model(c in case()) {
        let (wal, recs) = build(&c);
        let (wal, flip) = damage(&c, wal);
        let mut buf = Vec::new();
        let s = Reader::open(&wal).unwrap().unwrap().scan(c.limit, &mut buf).unwrap();
        prop_assert_eq!(got(&s), model(&recs, 32, wal.len() as u64, flip, c.limit));
        prop_assert_eq!(s.wal_size(), s.end - 32);
    }

    #[test]
    fn resume_at_any_commit_agrees_with_the_model(c in case(), pick in any::<prop::sample::Index>()) {
        let (wal, recs) = build(&c);
        let commits: Vec<u64> = recs
            .iter()
            .filter(|r| r.commit != 0 && !r.stale)
            .map(|r| r.offset + FS)
            .collect();
        prop_assume!(!commits.is_empty());
        let at = commits[pick.index(commits.len())];
        let s = Reader::resume(&wal, at, SALTS).unwrap().unwrap().scan(c.limit, &mut Vec::new()).unwrap();
        prop_assert_eq!(got(&s), model(&recs, at, wal.len() as u64, None, c.limit));
    }

    #[test]
    fn garbage_after_a_valid_header_is_no_frames(
        big in any::<bool>(),
        junk in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let order = if big { ByteOrder::Big } else { ByteOrder::Little };
        let mut wal = WalWriter::new(order, PS, SALTS).bytes;
        wal.extend_from_slice(&junk);
        let s = Reader::open(&wal).unwrap().unwrap().scan(None, &mut Vec::new()).unwrap();
        prop_assert!(s.pages.is_empty());
        prop_assert_eq!((s.end, s.commit, s.transactions), (32, 0, 0));
        let _ = salt_generations(&wal, PS, SALTS).unwrap();
    }

    #[test]
    fn a_damaged_header_is_no_wal_or_bad_magic(at in 0usize..32, bit in 0u8..8) {
        let mut wal = WalWriter::new(ByteOrder::Little, PS, SALTS).bytes;
        wal[at] ^= 1 << bit;
        match Reader::open(&wal) {
            Ok(None) | Err(Error::BadMagic { .. }) => {}
            other => prop_assert!(false, "unexpected {:?}", other.map(|r| r.is_some())),
        }
    }
}
