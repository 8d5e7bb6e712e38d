//! Frames compressed in batches (off the encoder's thread) must give the
//! same file, byte for byte, as pages fed one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{decode, encode, header, page};
use ltx::{Checksum, Encoder, FrameBatch, lock_pgno};
use proptest::prelude::*;

/// Encodes `pages` through batches of at most `per_batch` pages.
fn encode_batched(h: &ltx::Header, pages: &[(u32, Vec<u8>)], per_batch: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, h).unwrap();
    for chunk in pages.chunks(per_batch.max(1)) {
        let mut batch = FrameBatch::new(h.page_size);
        for (pgno, data) in chunk {
            batch.push(*pgno, data).unwrap();
        }
        enc.encode_batch(&batch).unwrap();
    }
    enc.finish(Checksum::ZERO).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batched_output_equals_serial_output(
        shift in 9u32..=16,
        commit in 1u32..60,
        seed: u8,
        per_batch in 1usize..17,
        snapshot: bool,
        keep in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let ps = 1u32 << shift;
        let h = if snapshot { header(ps, commit, 1, 5) } else { header(ps, commit, 5, 5) };
        let pages: Vec<_> = (1..=commit)
            .filter(|&p| snapshot || keep[p as usize - 1])
            .map(|p| (p, page(ps, p, seed)))
            .collect();
        let serial = encode(&h, &pages);
        let batched = encode_batched(&h, &pages, per_batch);
        prop_assert_eq!(&serial, &batched);
        let (_, got) = decode(&batched).unwrap();
        prop_assert_eq!(got, pages);
    }
}

#[test]
fn batches_skip_the_lock_page_like_the_serial_encoder() {
    // 512-byte pages put the lock page at 2097153 (LTX.md §6); a snapshot
    // around it with batches that straddle it.
    let ps = 512;
    let lock = lock_pgno(ps);
    let commit = lock + 3;
    let h = header(ps, commit, 1, 1);
    let pages: Vec<_> = (1..=commit)
        .filter(|&p| p != lock)
        .map(|p| {
            (
                p,
                if p + 5 > lock {
                    page(ps, p, 3)
                } else {
                    vec![0; ps as usize]
                },
            )
        })
        .collect();
    let serial = encode(&h, &pages);
    let batched = encode_batched(&h, &pages, 1000);
    assert_eq!(serial.len(), batched.len());
    assert!(
        serial == batched,
        "batched snapshot differs from the serial one"
    );
}

#[test]
fn a_batch_out_of_order_is_refused_and_writes_nothing() {
    let ps = 1024;
    let h = header(ps, 4, 1, 1);
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, &h).unwrap();
    let mut first = FrameBatch::new(ps);
    first.push(1, &page(ps, 1, 1)).unwrap();
    enc.encode_batch(&first).unwrap();
    let before = enc.bytes_written();
    let mut bad = FrameBatch::new(ps);
    bad.push(2, &page(ps, 2, 1)).unwrap();
    bad.push(4, &page(ps, 4, 1)).unwrap();
    let err = enc.encode_batch(&bad).unwrap_err();
    assert!(err.to_string().contains("consecutive"), "{err}");
    assert_eq!(enc.bytes_written(), before);
    // The encoder is still usable: the right pages finish the file.
    let mut rest = FrameBatch::new(ps);
    for p in 2..=4 {
        rest.push(p, &page(ps, p, 1)).unwrap();
    }
    enc.encode_batch(&rest).unwrap();
    enc.finish(Checksum::ZERO).unwrap();
    let (_, got) = decode(&out).unwrap();
    assert_eq!(got.len(), 4);
}

#[test]
fn a_batch_of_another_page_size_is_refused() {
    let h = header(4096, 2, 1, 1);
    let mut enc = Encoder::new(Vec::new(), &h).unwrap();
    let mut batch = FrameBatch::new(1024);
    batch.push(1, &[0; 1024]).unwrap();
    assert!(enc.encode_batch(&batch).is_err());
    assert!(batch.push(2, &[0; 4096]).is_err());
}
