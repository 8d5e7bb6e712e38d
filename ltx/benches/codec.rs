//! Encode and decode throughput of the codec, in MB/s of page data, for
//! 4 KiB pages that are random (incompressible) or compressible (SQLite-like
//! pages: a header, mostly-ASCII cells and free space).
//!
//! Goals (issue #2): encode ≥ 500 MB/s and decode+verify ≥ 1.5 GB/s per core
//! on random pages. Run: `cargo bench -p ltx --bench codec`.
#![allow(clippy::expect_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ltx::{Checksum, Decoder, Encoder, Header, HeaderFlags, TxId};

const PAGE_SIZE: usize = 4096;
const PAGES: u32 = 4096; // 16 MiB of page data per iteration

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn random_pages() -> Vec<u8> {
    let mut s = 0x2545_f491_4f6c_dd1d;
    (0..PAGES as usize * PAGE_SIZE / 8)
        .flat_map(|_| xorshift(&mut s).to_le_bytes())
        .collect()
}

fn compressible_pages() -> Vec<u8> {
    let mut s = 0x9e37_79b9_7f4a_7c15;
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "delta ",
        "user@example.com ",
        "2026-11-22 ",
    ];
    let mut out = Vec::with_capacity(PAGES as usize * PAGE_SIZE);
    for _ in 0..PAGES {
        let start = out.len();
        // Cells fill about 70% of the page; the rest is free space (zeros).
        while out.len() - start < PAGE_SIZE * 7 / 10 {
            let r = xorshift(&mut s);
            out.extend_from_slice(&(r as u32).to_be_bytes());
            out.extend_from_slice(words[(r >> 32) as usize % words.len()].as_bytes());
        }
        out.resize(start + PAGE_SIZE, 0);
    }
    out
}

fn header() -> Header {
    Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size: PAGE_SIZE as u32,
        commit: PAGES,
        min_txid: TxId::new(1),
        max_txid: TxId::new(1),
        timestamp: 1_700_000_000_000,
        ..Header::default()
    }
}

fn encode(pages: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut enc = Encoder::new(out, &header()).expect("header");
    for (i, page) in pages.chunks_exact(PAGE_SIZE).enumerate() {
        enc.encode_page(i as u32 + 1, page).expect("page");
    }
    enc.finish(Checksum::ZERO).expect("finish");
}

fn decode(file: &[u8], page: &mut [u8]) {
    let mut dec = Decoder::new(file).expect("header");
    while dec.next_page(page).expect("page").is_some() {}
    dec.finish().expect("verify");
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("ltx");
    group.throughput(Throughput::Bytes(u64::from(PAGES) * PAGE_SIZE as u64));
    group.sample_size(20);
    for (name, pages) in [
        ("random", random_pages()),
        ("compressible", compressible_pages()),
    ] {
        let mut file = Vec::with_capacity(pages.len() * 2);
        group.bench_with_input(BenchmarkId::new("encode", name), &pages, |b, p| {
            b.iter(|| encode(p, &mut file))
        });
        encode(&pages, &mut file);
        let mut page = vec![0u8; PAGE_SIZE];
        group.bench_with_input(BenchmarkId::new("decode+verify", name), &file, |b, f| {
            b.iter(|| decode(f, &mut page))
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
