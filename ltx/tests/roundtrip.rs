//! Property tests: whole files round-trip at every page size, compaction
//! equals applying files in order, and corruption never yields wrong pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{decode, encode, header, page};
use ltx::{Compactor, HeaderFlags, lock_pgno};
use proptest::prelude::*;

fn page_size() -> impl Strategy<Value = u32> {
    (9u32..=16).prop_map(|shift| 1 << shift)
}

/// A file: header plus pages (pgno ascending), snapshot or incremental.
fn file(
    page_size: u32,
    min: u64,
    max: u64,
) -> impl Strategy<Value = (ltx::Header, Vec<(u32, Vec<u8>)>)> {
    let max_commit: u32 = if page_size >= 32768 { 8 } else { 40 };
    (
        1u32..=max_commit,
        any::<u8>(),
        proptest::collection::vec(any::<bool>(), 40),
    )
        .prop_map(move |(commit, seed, keep)| {
            let h = header(page_size, commit, min, max);
            let pages = (1..=commit)
                .filter(|&p| h.is_snapshot() || keep[p as usize - 1])
                .map(|p| (p, page(page_size, p, seed)))
                .collect();
            (h, pages)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn files_round_trip(
        (h, pages) in page_size().prop_flat_map(|ps| prop_oneof![file(ps, 1, 1), file(ps, 2, 9)]),
        timestamp: i64,
        salts: (u32, u32),
    ) {
        let h = ltx::Header { timestamp, wal_offset: 32, wal_size: 4128, wal_salt1: salts.0, wal_salt2: salts.1, ..h };
        let bytes = encode(&h, &pages);
        let (got_header, got_pages) = decode(&bytes).unwrap();
        prop_assert_eq!(got_header, h);
        prop_assert_eq!(got_pages, pages);
    }

    #[test]
    fn any_single_byte_change_is_caught_or_harmless(
        (h, pages) in page_size().prop_flat_map(|ps| file(ps, 3, 3)),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let mut bytes = encode(&h, &pages);
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        // A flipped bit inside an LZ4 match can decode to the same page;
        // what must never happen is a different page passing verification.
        if let Ok((got_header, got_pages)) = decode(&bytes) {
            prop_assert_eq!(got_header, h);
            prop_assert_eq!(got_pages, pages);
        }
    }

    #[test]
    fn every_truncation_is_an_error((h, pages) in page_size().prop_flat_map(|ps| file(ps, 1, 1)), at in any::<prop::sample::Index>()) {
        let bytes = encode(&h, &pages);
        let cut = at.index(bytes.len());
        prop_assert!(decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn compaction_equals_applying_in_order(
        ps in prop_oneof![Just(512u32), Just(4096u32)],
        increments in proptest::collection::vec((1u32..30, any::<u8>(), proptest::collection::vec(any::<bool>(), 30)), 1..6),
        split in any::<prop::sample::Index>(),
    ) {
        // A snapshot at TXID 1, then one increment per element.
        let mut files = vec![];
        let snap = header(ps, 20, 1, 1);
        files.push(encode(&snap, &(1..=20).map(|p| (p, page(ps, p, 0))).collect::<Vec<_>>()));
        let mut model: BTreeMap<u32, Vec<u8>> = (1..=20).map(|p| (p, page(ps, p, 0))).collect();
        let mut prev_commit = 20;
        for (i, (commit, seed, keep)) in increments.iter().enumerate() {
            let txid = i as u64 + 2;
            let h = header(ps, *commit, txid, txid);
            // Growth pages must be present, as in an L0 file (REPLICATION.md §4.4).
            let pages: Vec<_> = (1..=*commit)
                .filter(|&p| keep[p as usize - 1] || p > prev_commit)
                .map(|p| (p, page(ps, p, *seed)))
                .collect();
            model.retain(|&p, _| p <= *commit);
            for (p, d) in &pages { model.insert(*p, d.clone()); }
            files.push(encode(&h, &pages));
            prev_commit = *commit;
        }
        // Compact in two stages at a random split, as levels do.
        let k = split.index(files.len()) + 1;
        let (head, tail) = files.split_at(k);
        let c = Compactor::new(head.iter().map(|f| f.as_slice()).collect(), HeaderFlags::NO_CHECKSUM).unwrap();
        let (first, _) = c.compact(Vec::new()).unwrap();
        let mut inputs = vec![first.as_slice()];
        inputs.extend(tail.iter().map(|f| f.as_slice()));
        let c = Compactor::new(inputs, HeaderFlags::NO_CHECKSUM).unwrap();
        let (merged, _) = c.compact(Vec::new()).unwrap();
        let (h, pages) = decode(&merged).unwrap();
        prop_assert!(h.is_snapshot());
        prop_assert_eq!(pages, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn snapshot_across_the_lock_page_skips_it() {
    // 64 KiB pages give the lock page its smallest number: 16,385 (1 GiB).
    let ps = 65536;
    let lock = lock_pgno(ps);
    let commit = lock + 2;
    let cheap = |p: u32| vec![p as u8; ps as usize];
    let h = header(ps, commit, 1, 1);
    let mut enc = ltx::Encoder::new(Vec::new(), &h).unwrap();
    for p in (1..=commit).filter(|&p| p != lock) {
        enc.encode_page(p, &cheap(p)).unwrap();
    }
    let (bytes, _) = enc.finish(ltx::Checksum::ZERO).unwrap();
    let mut dec = ltx::Decoder::new(bytes.as_slice()).unwrap();
    let mut buf = vec![0u8; ps as usize];
    let mut count = 0;
    while let Some(p) = dec.next_page(&mut buf).unwrap() {
        assert_ne!(p, lock);
        assert_eq!(buf[0], p as u8);
        count += 1;
    }
    dec.finish().unwrap();
    assert_eq!(count, commit - 1);

    let inc = header(ps, commit, 2, 2);
    let mut enc = ltx::Encoder::new(Vec::new(), &inc).unwrap();
    assert!(
        enc.encode_page(lock, &cheap(lock)).is_err(),
        "the lock page is refused"
    );
    enc.encode_page(lock + 1, &cheap(lock + 1)).unwrap();
}
