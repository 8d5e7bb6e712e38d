//! The worked examples of LTX.md, byte for byte. Each was accepted by (or
//! produced by) the reference Go implementation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{decode, header, legacy_file};
use ltx::{Compactor, HeaderFlags, PageEncoding, TxId};

/// LTX.md §11: the complete 156-byte file.
const SPEC_FILE: [u8; 156] = [
    0x4c, 0x54, 0x58, 0x31, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x18,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x1f, 0x00,
    0x01, 0x00, 0xff, 0xe8, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x64, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xd1, 0x3a, 0xbb, 0xbc, 0x84, 0x44, 0x18, 0x70,
];

#[test]
fn decodes_the_spec_file_and_verifies_its_checksum() {
    let mut dec = ltx::Decoder::new(&SPEC_FILE[..]).unwrap();
    let h = *dec.header();
    assert_eq!(
        (h.page_size, h.commit, h.min_txid, h.max_txid),
        (512, 1, TxId::new(1), TxId::new(1))
    );
    assert_eq!(
        (h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2),
        (32, 536, 0x0102_0304, 0x0506_0708)
    );
    let mut page = vec![1u8; 512];
    assert_eq!(dec.next_page(&mut page).unwrap(), Some(1));
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(dec.encoding(), Some(PageEncoding::Block));
    assert_eq!(dec.next_page(&mut page).unwrap(), None);
    let trailer = dec.finish().unwrap();
    assert_eq!(trailer.file_checksum.get(), 0xd13a_bbbc_8444_1870);
}

#[test]
fn reading_the_index_from_the_tail_finds_the_frame() {
    let index = ltx::read_page_index(&SPEC_FILE[100..], 156).unwrap();
    assert_eq!(
        index,
        ltx::TailIndex::Complete(vec![ltx::PageIndexEntry {
            pgno: 1,
            offset: 100,
            size: 22
        }])
    );
    assert_eq!(
        ltx::read_page_index(&SPEC_FILE[130..], 156).unwrap(),
        ltx::TailIndex::StartsAt(128)
    );
}

/// LTX.md §11, second paragraph: the Go encoder's 24-byte block for the same
/// page gives a 168-byte file with checksum 0xd11b0942cae6cc70.
#[test]
fn decodes_the_go_encoders_block_for_the_same_page() {
    let block = [
        0x1f, 0x00, 0x01, 0x00, 0xff, 0xda, 0x00, 0x02, 0x00, 0x00, 0x02, 0x00, 0xb0, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let mut file = SPEC_FILE[..100].to_vec();
    file.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 24]);
    file.extend_from_slice(&block);
    file.extend_from_slice(&[0; 6]);
    file.extend_from_slice(&[1, 100, 34, 0]);
    file.extend_from_slice(&4u64.to_be_bytes());
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&0xd11b_0942_cae6_cc70u64.to_be_bytes());
    assert_eq!(file.len(), 168);
    let (_, pages) = decode(&file).unwrap();
    assert_eq!(pages, vec![(1, vec![0u8; 512])]);
}

/// LTX.md §5.3: the legacy frame for a 512-byte page of 0x07 bytes.
#[test]
fn decodes_the_spec_legacy_frame() {
    let frame = vec![
        0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0x18, 0x00, 0x00, 0x00, 0x1f, 0x07, 0x01, 0x00,
        0xff, 0xda, 0x00, 0x02, 0x00, 0x00, 0x02, 0x00, 0xb0, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07,
        0x07, 0x07, 0x07, 0x07, 0x07, 0x00, 0x00, 0x00, 0x00, 0x73, 0xb4, 0xc5, 0xe4,
    ];
    assert_eq!(frame.len(), 43);
    let h = header(512, 1, 1, 1);
    let file = legacy_file(&h, &[(1, frame, vec![7u8; 512])]);
    let mut dec = ltx::Decoder::new(file.as_slice()).unwrap();
    let mut page = vec![0u8; 512];
    assert_eq!(dec.next_page(&mut page).unwrap(), Some(1));
    assert_eq!(page, vec![7u8; 512]);
    assert_eq!(dec.encoding(), Some(PageEncoding::LegacyFrame));
    assert_eq!(dec.next_page(&mut page).unwrap(), None);
    dec.finish().unwrap();
}

/// LTX.md §12: compacting the §11 file with an increment that rewrites
/// page 1 and adds page 2.
#[test]
fn compacts_the_spec_example() {
    let mut p1 = vec![0u8; 512];
    p1[0] = 0xaa;
    let mut inc = header(512, 2, 2, 2);
    inc.timestamp = 1_700_000_001_000;
    let b = common::encode(&inc, &[(1, p1.clone()), (2, vec![0x42; 512])]);

    let c = Compactor::new(vec![&SPEC_FILE[..], b.as_slice()], HeaderFlags::NO_CHECKSUM).unwrap();
    let out_header = *c.header();
    let (out, _) = c.compact(Vec::new()).unwrap();
    assert_eq!(out_header.commit, 2);
    assert_eq!(
        (out_header.min_txid, out_header.max_txid),
        (TxId::new(1), TxId::new(2))
    );
    assert_eq!(
        out_header.timestamp, 1_700_000_001_000,
        "the newest input's timestamp"
    );
    assert_eq!(
        (
            out_header.wal_offset,
            out_header.wal_size,
            out_header.wal_salt1
        ),
        (0, 0, 0)
    );
    let (_, pages) = decode(&out).unwrap();
    assert_eq!(pages, vec![(1, p1), (2, vec![0x42; 512])]);
}
