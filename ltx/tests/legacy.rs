//! Files in the legacy page encoding (one LZ4 frame per page, Litestream
//! 0.5.0–0.5.15; LTX.md §5.3), checked in under `tests/fixtures/`.
//!
//! The fixtures were built by [`build_fixtures`] with lz4_flex's frame
//! encoder configured as those releases wrote frames. Regenerate with
//! `FRESHET_WRITE_FIXTURES=1 cargo test -p ltx --test legacy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{RawFrame, decode, header, page, raw_file};
use ltx::{Compactor, HeaderFlags, PageEncoding};

/// (file name, page size, commit, min TXID, max TXID, pages, seed).
type Fixture = (&'static str, u32, u32, u64, u64, &'static [u32], u8);

const FIXTURES: &[Fixture] = &[
    ("legacy-snapshot-4096.ltx", 4096, 4, 1, 1, &[1, 2, 3, 4], 11),
    ("legacy-incremental-4096.ltx", 4096, 6, 2, 2, &[2, 5, 6], 12),
    ("legacy-snapshot-65536.ltx", 65536, 2, 1, 1, &[1, 2], 13),
    ("legacy-snapshot-512.ltx", 512, 3, 1, 1, &[1, 2, 3], 14),
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn build(ps: u32, commit: u32, min: u64, max: u64, pgnos: &[u32], seed: u8) -> Vec<u8> {
    let frames: Vec<_> = pgnos
        .iter()
        .map(|&p| RawFrame::legacy(p, &page(ps, p, seed)))
        .collect();
    raw_file(&header(ps, commit, min, max), &frames, None, 0)
}

#[test]
fn build_fixtures() {
    if std::env::var_os("FRESHET_WRITE_FIXTURES").is_none() {
        return;
    }
    for &(name, ps, commit, min, max, pgnos, seed) in FIXTURES {
        std::fs::write(
            fixture_dir().join(name),
            build(ps, commit, min, max, pgnos, seed),
        )
        .unwrap();
    }
}

#[test]
fn checked_in_legacy_files_decode_to_their_pages() {
    for &(name, ps, _, min, max, pgnos, seed) in FIXTURES {
        let bytes = std::fs::read(fixture_dir().join(name)).unwrap();
        let mut dec = ltx::Decoder::new(bytes.as_slice()).unwrap();
        assert_eq!(
            (dec.header().min_txid.get(), dec.header().max_txid.get()),
            (min, max),
            "{name}"
        );
        let mut buf = vec![0u8; ps as usize];
        for &p in pgnos {
            assert_eq!(dec.next_page(&mut buf).unwrap(), Some(p), "{name}");
            assert_eq!(buf, page(ps, p, seed), "{name} page {p}");
        }
        assert_eq!(dec.encoding(), Some(PageEncoding::LegacyFrame));
        assert_eq!(dec.next_page(&mut buf).unwrap(), None);
        dec.finish().unwrap();
    }
}

#[test]
fn legacy_and_current_files_compact_into_the_current_encoding() {
    let snap = std::fs::read(fixture_dir().join(FIXTURES[0].0)).unwrap();
    let inc = std::fs::read(fixture_dir().join(FIXTURES[1].0)).unwrap();
    let current = common::encode(&header(4096, 6, 3, 3), &[(4, page(4096, 4, 99))]);
    let c = Compactor::new(
        vec![snap.as_slice(), inc.as_slice(), current.as_slice()],
        HeaderFlags::NO_CHECKSUM,
    )
    .unwrap();
    let (out, _) = c.compact(Vec::new()).unwrap();
    let mut dec = ltx::Decoder::new(out.as_slice()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = vec![];
    while let Some(p) = dec.next_page(&mut buf).unwrap() {
        got.push((p, buf.clone()));
    }
    assert_eq!(dec.encoding(), Some(PageEncoding::Block));
    dec.finish().unwrap();
    let want = vec![
        (1, page(4096, 1, 11)),
        (2, page(4096, 2, 12)),
        (3, page(4096, 3, 11)),
        (4, page(4096, 4, 99)),
        (5, page(4096, 5, 12)),
        (6, page(4096, 6, 12)),
    ];
    assert_eq!(got, want);
    assert!(decode(&out).is_ok());
}

#[test]
fn a_corrupted_legacy_frame_is_rejected() {
    let mut bytes = build(4096, 4, 1, 1, &[1, 2, 3, 4], 11);
    // Inside the first frame's content checksum (last 4 bytes of the frame).
    let ltx::TailIndex::Complete(idx) = ltx::read_page_index(&bytes, bytes.len() as u64).unwrap()
    else {
        panic!()
    };
    let end = (idx[0].offset + idx[0].size) as usize;
    bytes[end - 1] ^= 0x40;
    let err = decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
}
