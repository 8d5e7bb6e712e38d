//! Throughput of the I/O engines on a page-cached file: chunked reads with a
//! WAL-checksum-like pass over each chunk (sync `pread`, io_uring with and
//! without registered buffers or worker punting), and sequential writes of
//! the same size followed by fsync (sync vs io_uring).
//!
//!     cargo run --release -p freshet-io --example io_bench -- [MiB] [rounds] [dir]
//!
//! Prints one line per variant: the median over the rounds of the best of 2
//! runs, in MB/s, and the range.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::time::Instant;

use freshet_io::{Engine, Ring, RingOptions, SeqWriter, read_chunks_with};

/// Roughly what the WAL checksum costs per byte: two dependent sums per
/// 8 bytes.
fn work(chunk: &[u8], acc: &mut (u32, u32)) {
    for w in chunk.chunks_exact(8) {
        let a = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let b = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        acc.0 = acc.0.wrapping_add(a).wrapping_add(acc.1);
        acc.1 = acc.1.wrapping_add(b).wrapping_add(acc.0);
    }
}

fn best(bytes: u64, mut f: impl FnMut()) -> f64 {
    let secs = (0..2)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    bytes as f64 / 1e6 / secs
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(512, |a| a.parse().expect("size in MiB"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("rounds"));
    let dir = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(dir).unwrap();
    let path = dir.path().join("data");
    let bytes = mib << 20;
    {
        let mut f = File::create(&path).unwrap();
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..mib {
            f.write_all(&block).unwrap();
        }
        f.sync_all().unwrap();
    }
    let file = File::open(&path).unwrap();
    // Whole WAL frames of 4 KiB pages, as the scanner asks for.
    let chunk = (1 << 20) / 4120 * 4120;
    let mut acc = (0u32, 0u32);
    let mut scratch = Vec::new();
    let variants = [(false, false), (true, false), (false, true), (true, true)];
    let mut rings: Vec<Ring> = variants
        .iter()
        .map(|&(register, punt)| {
            Ring::new(RingOptions {
                register,
                punt,
                ..RingOptions::default()
            })
            .expect("io_uring is available")
        })
        .collect();
    let page: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
    let out = dir.path().join("out");
    let write = |engine: Engine, acc: &mut (u32, u32)| {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&out)
            .unwrap();
        let mut w = SeqWriter::with_engine(engine, &f, 0);
        for _ in 0..bytes / 65536 {
            work(&page, acc);
            w.write_all(&page).unwrap();
        }
        w.finish().unwrap();
        f.sync_all().unwrap();
    };

    // Rounds alternate the variants so that load from other processes
    // spreads over all of them; each line is the median of the rounds.
    let mut rates: Vec<(String, Vec<f64>)> = Vec::new();
    let mut record = |name: String, rate: f64| match rates.iter_mut().find(|r| r.0 == name) {
        Some(r) => r.1.push(rate),
        None => rates.push((name, vec![rate])),
    };
    for _ in 0..rounds {
        let rate = best(bytes, || {
            read_chunks_with(Engine::Sync, &file, 0, chunk, &mut scratch, &mut |c| {
                work(c, &mut acc);
                ControlFlow::Continue(())
            })
            .unwrap();
        });
        record("read  + checksum, sync pread".into(), rate);
        for (ring, (_, punt)) in rings.iter_mut().zip(variants) {
            let registered = ring.is_registered();
            let rate = best(bytes, || {
                ring.read_chunks(&file, 0, chunk, &mut |c| {
                    work(c, &mut acc);
                    ControlFlow::Continue(())
                })
                .unwrap();
            });
            record(
                format!("read  + checksum, uring registered={registered} punt={punt}"),
                rate,
            );
        }
        let rate = best(bytes, || {
            read_chunks_with(Engine::Sync, &file, 0, chunk, &mut scratch, &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        });
        record("read  only, sync pread".into(), rate);
        for (ring, (_, punt)) in rings.iter_mut().zip(variants) {
            let registered = ring.is_registered();
            let rate = best(bytes, || {
                ring.read_chunks(&file, 0, chunk, &mut |_| ControlFlow::Continue(()))
                    .unwrap();
            });
            record(
                format!("read  only, uring registered={registered} punt={punt}"),
                rate,
            );
        }
        // Cold: the file's pages dropped from the page cache before each
        // run, so the reads go to the disk.
        let evict = || {
            // SAFETY: posix_fadvise only takes the descriptor and a range.
            let rc =
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0);
        };
        let rate = best(bytes, || {
            evict();
            read_chunks_with(Engine::Sync, &file, 0, chunk, &mut scratch, &mut |c| {
                work(c, &mut acc);
                ControlFlow::Continue(())
            })
            .unwrap();
        });
        record("cold read + checksum, sync pread".into(), rate);
        for (ring, (_, punt)) in rings.iter_mut().zip(variants) {
            let registered = ring.is_registered();
            let rate = best(bytes, || {
                evict();
                ring.read_chunks(&file, 0, chunk, &mut |c| {
                    work(c, &mut acc);
                    ControlFlow::Continue(())
                })
                .unwrap();
            });
            record(
                format!("cold read + checksum, uring registered={registered} punt={punt}"),
                rate,
            );
        }
        for engine in [Engine::Sync, Engine::Uring] {
            let rate = best(bytes, || write(engine, &mut acc));
            record(format!("write + fsync, {engine:?}"), rate);
        }
    }
    for (name, mut r) in rates {
        r.sort_by(f64::total_cmp);
        println!(
            "{name:<50} {:>6.0} MB/s  (range {:.0}-{:.0})",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
    std::hint::black_box(acc);
}
