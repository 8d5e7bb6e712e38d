//! The decoder refuses what Go's decoder lets through (LTX.md §13) and what
//! no Litestream writer produces. Each case is built with a correct file
//! checksum, so only the rule under test can reject it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RawFrame, decode, header, page, raw_file};
use ltx::{Error, lock_pgno};

fn pages(ps: u32, pgnos: &[u32]) -> Vec<RawFrame> {
    pgnos
        .iter()
        .map(|&p| RawFrame::block(p, &page(ps, p, 3)))
        .collect()
}

fn assert_rejected(file: &[u8], needle: &str) {
    match decode(file) {
        Ok(_) => panic!("accepted a file that breaks: {needle}"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "error {e:?} should mention {needle:?}"
        ),
    }
}

#[test]
fn well_formed_control_case_decodes() {
    let h = header(512, 5, 2, 2);
    let file = raw_file(&h, &pages(512, &[1, 3, 5]), None, 0);
    assert_eq!(decode(&file).unwrap().1.len(), 3);
}

#[test]
fn out_of_order_and_duplicate_pages_are_rejected() {
    let h = header(512, 5, 2, 2);
    assert_rejected(
        &raw_file(&h, &pages(512, &[3, 1]), None, 0),
        "strictly ascending",
    );
    assert_rejected(
        &raw_file(&h, &pages(512, &[2, 2]), None, 0),
        "strictly ascending",
    );
}

#[test]
fn pages_past_commit_are_rejected() {
    let h = header(512, 2, 2, 2);
    assert_rejected(
        &raw_file(&h, &pages(512, &[1, 3]), None, 0),
        "past the commit",
    );
}

#[test]
fn the_lock_page_is_rejected() {
    let ps = 65536;
    let lock = lock_pgno(ps);
    let h = header(ps, lock + 1, 2, 2);
    let frames = vec![RawFrame::block(lock, &vec![0u8; ps as usize])];
    assert_rejected(&raw_file(&h, &frames, None, 0), "lock page");
}

#[test]
fn incomplete_snapshots_are_rejected() {
    let h = header(512, 3, 1, 1);
    assert_rejected(
        &raw_file(&h, &pages(512, &[1, 3]), None, 0),
        "missing pages",
    );
    assert_rejected(
        &raw_file(&h, &pages(512, &[1, 2]), None, 0),
        "database has 3 pages",
    );
}

#[test]
fn short_decompression_is_rejected() {
    let h = header(512, 1, 2, 2);
    let short = RawFrame {
        pgno: 1,
        flags: 1,
        payload: lz4_flex::block::compress(&[9u8; 500]),
        data: vec![9u8; 512],
    };
    assert_rejected(&raw_file(&h, &[short], None, 0), "decodes to 500 bytes");
    let legacy_short = RawFrame {
        pgno: 1,
        flags: 0,
        payload: common::lz4_frame(&[9u8; 500]),
        data: vec![9u8; 512],
    };
    assert_rejected(
        &raw_file(&h, &[legacy_short], None, 0),
        "decodes to 500 bytes",
    );
}

#[test]
fn an_index_that_disagrees_with_the_frames_is_rejected() {
    let h = header(512, 5, 2, 2);
    let frames = pages(512, &[1, 3]);
    let good = raw_file(&h, &frames, None, 0);
    let ltx::TailIndex::Complete(entries) = ltx::read_page_index(&good, good.len() as u64).unwrap()
    else {
        panic!("index should be complete")
    };
    let e: Vec<_> = entries.iter().map(|e| (e.pgno, e.offset, e.size)).collect();
    let wrong_pgno = vec![e[0], (4, e[1].1, e[1].2)];
    assert_rejected(&raw_file(&h, &frames, Some(wrong_pgno), 0), "disagree");
    let wrong_size = vec![e[0], (e[1].0, e[1].1, e[1].2 + 1)];
    assert_rejected(&raw_file(&h, &frames, Some(wrong_size), 0), "disagree");
    let wrong_offset = vec![(e[0].0, e[0].1 + 1, e[0].2), e[1]];
    assert_rejected(&raw_file(&h, &frames, Some(wrong_offset), 0), "offset");
    assert_rejected(&raw_file(&h, &frames, Some(vec![e[0]]), 0), "disagree");
}

#[test]
fn bad_page_flags_and_page_zero_are_rejected() {
    let h = header(512, 2, 2, 2);
    let mut f = RawFrame::block(1, &page(512, 1, 0));
    f.flags = 3;
    assert_rejected(&raw_file(&h, &[f], None, 0), "page header flags");
    let mut z = RawFrame::block(1, &page(512, 1, 0));
    z.pgno = 0;
    assert_rejected(&raw_file(&h, &[z], None, 0), "page number required");
}

#[test]
fn post_apply_checksum_under_no_checksum_is_rejected() {
    let h = header(512, 1, 1, 1);
    let file = raw_file(&h, &pages(512, &[1]), None, (1 << 63) | 5);
    assert_rejected(&file, "post-apply checksum");
}

#[test]
fn trailing_bytes_and_mixed_encodings_are_rejected() {
    let h = header(512, 2, 2, 2);
    let mut file = raw_file(&h, &pages(512, &[1]), None, 0);
    file.push(0);
    assert!(matches!(
        decode(&file),
        Err(Error::ChecksumMismatch { .. } | Error::TrailingData { .. })
    ));
    let mixed = vec![
        RawFrame::block(1, &page(512, 1, 0)),
        RawFrame::legacy(2, &page(512, 2, 0)),
    ];
    assert_rejected(&raw_file(&h, &mixed, None, 0), "mixed");
}

#[test]
fn errors_name_the_offset() {
    let h = header(512, 5, 2, 2);
    let file = raw_file(&h, &pages(512, &[3, 1]), None, 0);
    let Err(Error::InvalidPage { offset, .. }) = decode(&file) else {
        panic!("expected InvalidPage")
    };
    assert!(
        offset > 100,
        "offset {offset} should point at the second frame"
    );
}
