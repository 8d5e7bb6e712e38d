//! The reader against WALs written by real SQLite, with SQLite's own recovery
//! and checkpoint as the oracle (REPLICATION.md §3, §4.2–4.3).

use std::fs::File;

use super::testutil::{LiveDb, assert_matches_sqlite, commit_ends, to_big_endian};
use super::*;

const PAGE_SIZES: [u32; 3] = [1024, 4096, 65536];

fn scan(wal: &[u8]) -> Scan {
    Reader::open(wal)
        .unwrap()
        .expect("valid WAL header")
        .scan(None, &mut Vec::new())
        .unwrap()
}

fn frame_size_of(scan: &Scan) -> u64 {
    frame_size(scan.page_size)
}

/// A live database with a mixed workload, and copies of its files.
fn workload(page_size: u32, txs: usize) -> (LiveDb, Vec<u8>, Vec<u8>) {
    let mut db = LiveDb::new(page_size);
    db.mixed_workload(txs);
    let (d, w) = db.files();
    (db, d, w)
}

#[test]
fn many_transactions_match_sqlite() {
    for ps in PAGE_SIZES {
        let txs = if ps == 65536 { 40 } else { 150 };
        let (db, dbf, wal) = workload(ps, txs);
        let header = read_header(&wal).unwrap().unwrap();
        assert_eq!(
            header.page_size, ps,
            "WAL header stores the page size verbatim"
        );
        let s = scan(&wal);
        assert_eq!(s.page_size, ps);
        assert_eq!(s.salts, header.salts);
        assert_eq!(
            s.stop,
            Stop::EndOfFile {
                offset: wal.len() as u64
            }
        );
        assert_eq!(s.end, wal.len() as u64);
        assert_eq!(s.transactions, db.commits, "page size {ps}");
        assert_eq!(s.frames, (wal.len() as u64 - 32) / frame_size_of(&s));
        assert_eq!(s.uncommitted, 0);
        assert_eq!(s.commit, db.page_count());
        assert!(s.pages.len() > 10);
        assert!(s.pages.max_pgno() <= Some(s.commit));
        assert_matches_sqlite(&dbf, &wal, &s);
    }
}

#[test]
fn shrinking_transaction_drops_pages_beyond_the_new_size() {
    let mut db = LiveDb::new(1024);
    db.insert(200, 900);
    let grown = db.page_count();
    db.shrink();
    let shrunk = db.page_count();
    assert!(shrunk < grown / 2, "{shrunk} vs {grown}");
    let (dbf, wal) = db.files();
    let s = scan(&wal);
    assert_eq!(s.commit, shrunk);
    assert!(s.pages.iter().all(|(p, _)| p <= shrunk));
    assert!(s.pages.max_pgno().is_some_and(|m| m <= shrunk));
    // The growing transaction did write pages beyond the final size.
    let ends = commit_ends(&wal);
    let first = Reader::open(&wal[..ends[1] as usize])
        .unwrap()
        .unwrap()
        .scan(None, &mut Vec::new())
        .unwrap();
    assert_eq!(first.commit, grown);
    assert!(first.pages.max_pgno().is_some_and(|m| m > shrunk));
    assert_matches_sqlite(&dbf, &wal, &s);
}

#[test]
fn reads_the_live_wal_file() {
    let (db, _, wal) = workload(4096, 30);
    let file = File::open(db.wal_path()).unwrap();
    let from_file = Reader::open(&file)
        .unwrap()
        .unwrap()
        .scan(None, &mut Vec::new())
        .unwrap();
    assert_eq!(from_file, scan(&wal));
}

#[test]
fn torn_last_frame_yields_the_committed_prefix() {
    for ps in PAGE_SIZES {
        let (_db, dbf, wal) = workload(ps, 25);
        let full = scan(&wal);
        let fs = frame_size_of(&full);
        let ends = commit_ends(&wal);
        let last = wal.len() as u64 - fs;
        let torn = &wal[..(last + fs / 2) as usize];
        let s = scan(torn);
        assert_eq!(
            s.stop,
            Stop::TornFrame {
                offset: last,
                len: (fs / 2) as usize
            }
        );
        assert_eq!(s.end, ends[ends.len() - 2]);
        assert_eq!(s.transactions, full.transactions - 1);
        assert_matches_sqlite(&dbf, torn, &s);
    }
}

#[test]
fn torn_multi_frame_transaction_is_discarded() {
    let mut db = LiveDb::new(4096);
    db.insert(5, 100);
    db.insert(10, 3000);
    let (dbf, wal) = db.files();
    let ends = commit_ends(&wal);
    let (a, b) = (ends[ends.len() - 2], ends[ends.len() - 1]);
    assert!(
        b - a > 3 * 4120,
        "the last transaction spans several frames"
    );
    let cut = &wal[..(a + 2 * 4120 + 100) as usize];
    let s = scan(cut);
    assert_eq!(s.end, a);
    assert_eq!(s.uncommitted, 2);
    assert_eq!(
        s.stop,
        Stop::TornFrame {
            offset: a + 2 * 4120,
            len: 100
        }
    );
    assert_matches_sqlite(&dbf, cut, &s);
}

#[test]
fn flipped_byte_stops_before_its_transaction() {
    for ps in PAGE_SIZES {
        let (_db, dbf, mut wal) = workload(ps, 30);
        let full = scan(&wal);
        let fs = frame_size_of(&full);
        let ends = commit_ends(&wal);
        // A transaction of several frames in the middle; corrupt its second.
        let k = (ends.len() / 2..ends.len())
            .find(|&k| ends[k] - ends[k - 1] >= 3 * fs)
            .expect("a multi-frame transaction");
        let bad = ends[k - 1] + fs;
        wal[(bad + 24 + u64::from(ps) / 2) as usize] ^= 0x40;
        let s = scan(&wal);
        assert_eq!(s.stop, Stop::ChecksumMismatch { offset: bad });
        assert_eq!(s.end, ends[k - 1]);
        assert_eq!(s.transactions, k as u64);
        assert_eq!(s.uncommitted, 1);
        assert!(s.pages.iter().all(|(_, off)| off < ends[k - 1]));
        assert_matches_sqlite(&dbf, &wal, &s);
    }
}

#[test]
fn restarted_wal_counts_only_the_new_generation() {
    for ps in PAGE_SIZES {
        let mut db = LiveDb::new(ps);
        db.mixed_workload(20);
        let old = read_header(&std::fs::read(db.wal_path()).unwrap())
            .unwrap()
            .unwrap();
        let old_scan = scan(&std::fs::read(db.wal_path()).unwrap());
        db.checkpoint("PASSIVE");
        db.insert(1, 10);
        db.insert(2, 20);
        let (dbf, wal) = db.files();
        let new = read_header(&wal).unwrap().unwrap();
        assert_ne!(new.salts, old.salts, "SQLite restarted the WAL");
        assert_eq!(new.salts.salt1, old.salts.salt1.wrapping_add(1));
        assert_eq!(wal.len() as u64, old_scan.end, "old frames remain beyond");

        let s = scan(&wal);
        assert_eq!(s.transactions, 2);
        assert_eq!(s.salts, new.salts);
        let Stop::SaltMismatch { offset, found } = s.stop else {
            panic!("stopped by {}", s.stop);
        };
        assert_eq!((offset, found), (s.end, old.salts));
        assert_matches_sqlite(&dbf, &wal, &s);

        // §4.2 step 8: only the new generation precedes the old frames.
        let gens = salt_generations(&wal, ps, old.salts).unwrap();
        assert_eq!(gens.salts, vec![new.salts]);
        assert_eq!(gens.found_at, Some(s.end));
        let none = salt_generations(&wal, ps, Salts { salt1: 1, salt2: 2 }).unwrap();
        assert_eq!(none.salts, vec![new.salts, old.salts]);
        assert_eq!(none.found_at, None);

        // §4.2 step 7: the last frame of the old generation is still there.
        let mut buf = vec![0u8; frame_size(ps) as usize];
        let last = old_scan.end - frame_size(ps);
        let f = read_frame(&wal, ps, last, &mut buf).unwrap().unwrap();
        assert_eq!(f.header.salts, old.salts);
        assert_eq!(f.header.commit, old_scan.commit);
        assert_eq!(Some(last), old_scan.pages.get(f.header.pgno));

        // Resuming after the old generation's frames still works from the
        // recorded salts (the header's are new), and finds nothing new.
        let r = Reader::resume(&wal, old_scan.end, old.salts)
            .unwrap()
            .unwrap();
        assert_eq!(r.salts(), old.salts);
        let tail = r.scan(None, &mut Vec::new()).unwrap();
        assert!(tail.pages.is_empty());
        assert_eq!(
            tail.stop,
            Stop::EndOfFile {
                offset: old_scan.end
            }
        );
        let err = Reader::resume(&wal, s.end, old.salts).unwrap_err();
        assert!(err.is_prev_frame_mismatch(), "{err}");
    }
}

#[test]
fn big_endian_checksums_read_the_same() {
    for ps in PAGE_SIZES {
        let (_db, dbf, wal) = workload(ps, 20);
        let be = to_big_endian(&wal);
        assert_ne!(be, wal);
        assert_eq!(
            read_header(&be).unwrap().unwrap().byte_order,
            ByteOrder::Big
        );
        let (le_scan, be_scan) = (scan(&wal), scan(&be));
        assert_eq!(be_scan, le_scan);
        assert_eq!(
            be_scan.stop,
            Stop::EndOfFile {
                offset: be.len() as u64
            }
        );
        // SQLite accepts the rewritten WAL too, and recovers the same pages.
        assert_matches_sqlite(&dbf, &be, &be_scan);
        // A big-endian WAL read as little-endian fails the header checksum.
        let mut swapped = be.clone();
        swapped[3] = 0x82;
        assert_eq!(read_header(&swapped).unwrap(), None);
    }
}

#[test]
fn resume_equals_the_tail_of_a_full_scan() {
    for ps in PAGE_SIZES {
        let (_db, _, wal) = workload(ps, 30);
        let full = scan(&wal);
        let ends = commit_ends(&wal);
        let picks = [
            0,
            1,
            ends.len() / 3,
            ends.len() / 2,
            ends.len() - 2,
            ends.len() - 1,
        ];
        for &i in &picks {
            let at = ends[i];
            let r = Reader::resume(&wal, at, full.salts).unwrap().unwrap();
            assert_eq!(r.start(), at);
            let tail = r.scan(None, &mut Vec::new()).unwrap();
            let want: Vec<_> = full.pages.iter().filter(|&(_, off)| off >= at).collect();
            assert_eq!(
                tail.pages.iter().collect::<Vec<_>>(),
                want,
                "resume at {at}"
            );
            assert_eq!(tail.end, full.end);
            assert_eq!(tail.stop, full.stop);
            assert_eq!(tail.transactions, (ends.len() - 1 - i) as u64);
            let head = Reader::open(&wal[..at as usize])
                .unwrap()
                .unwrap()
                .scan(None, &mut Vec::new())
                .unwrap();
            assert_eq!(head.frames + tail.frames, full.frames);
            if tail.transactions > 0 {
                assert_eq!(tail.commit, full.commit);
            } else {
                assert_eq!(tail.wal_size(), 0);
            }
        }
        // Resuming at offset 32 is reading from the start.
        let r = Reader::resume(&wal, 32, full.salts).unwrap().unwrap();
        assert_eq!(r.scan(None, &mut Vec::new()).unwrap(), full);
    }
}

#[test]
fn resume_rejects_what_it_cannot_continue() {
    let (_db, _, wal) = workload(4096, 10);
    let full = scan(&wal);
    let ends = commit_ends(&wal);
    let other = Salts {
        salt1: full.salts.salt1 ^ 1,
        salt2: full.salts.salt2,
    };
    let err = Reader::resume(&wal, ends[2], other).unwrap_err();
    assert!(err.is_prev_frame_mismatch(), "{err}");
    let err = Reader::resume(&wal, 32, other).unwrap_err();
    assert!(err.is_prev_frame_mismatch(), "{err}");
    let beyond = wal.len() as u64 + 4120;
    let err = Reader::resume(&wal, beyond, full.salts).unwrap_err();
    assert!(err.is_prev_frame_mismatch(), "{err}");
    let err = Reader::resume(&wal[..ends[2] as usize - 1], ends[2], full.salts).unwrap_err();
    assert!(err.is_prev_frame_mismatch(), "{err}");
    for bad in [0, 31, ends[2] + 8] {
        let err = Reader::resume(&wal, bad, full.salts).unwrap_err();
        assert!(
            matches!(err, Error::Misaligned { offset, .. } if offset == bad),
            "{err}"
        );
    }
}

#[test]
fn byte_limit_stops_at_the_first_commit_boundary_past_it() {
    for ps in PAGE_SIZES {
        let (_db, dbf, wal) = workload(ps, 30);
        let full = scan(&wal);
        let fs = frame_size_of(&full);
        let ends = commit_ends(&wal);
        let exact = [ends[3] - 32, ends[ends.len() - 1] - 32];
        for limit in [0, 1, fs, 5 * fs + 1, (wal.len() as u64 - 32) / 2, u64::MAX]
            .into_iter()
            .chain(exact)
        {
            let r = Reader::open(&wal).unwrap().unwrap();
            let s = r.scan(Some(limit), &mut Vec::new()).unwrap();
            match ends.iter().find(|&&e| e - 32 >= limit) {
                Some(&end) => {
                    assert_eq!(s.end, end, "limit {limit}");
                    assert_eq!(s.stop, Stop::ByteLimit { offset: end });
                    assert!(s.is_limited());
                    assert_eq!(s.uncommitted, 0);
                    assert_matches_sqlite(&dbf, &wal[..end as usize], &s);
                }
                None => {
                    assert_eq!(s, full, "limit {limit}");
                    assert!(!s.is_limited());
                }
            }
        }
    }
}

#[test]
fn limited_steps_chained_by_resume_cover_the_whole_wal() {
    let (_db, _, wal) = workload(4096, 40);
    let full = scan(&wal);
    let limit = 8 * 4120;
    let mut merged = std::collections::BTreeMap::new();
    let mut buf = Vec::new();
    let mut s = Reader::open(&wal)
        .unwrap()
        .unwrap()
        .scan(Some(limit), &mut buf)
        .unwrap();
    let mut steps = 1;
    let mut commit = 0;
    loop {
        assert!(s.wal_size() >= limit || !s.is_limited());
        merged.extend(s.pages.iter());
        if s.transactions > 0 {
            commit = s.commit;
        }
        if !s.is_limited() {
            break;
        }
        let r = Reader::resume(&wal, s.end, s.salts).unwrap().unwrap();
        s = r.scan(Some(limit), &mut buf).unwrap();
        steps += 1;
    }
    assert!(steps > 3, "{steps} steps");
    assert_eq!(s.end, full.end);
    assert_eq!(commit, full.commit);
    merged.retain(|&p, _| p <= full.commit);
    assert_eq!(
        merged.into_iter().collect::<Vec<_>>(),
        full.pages.iter().collect::<Vec<_>>()
    );
}

#[test]
fn read_frame_returns_the_newest_page() {
    let (_db, dbf, wal) = workload(4096, 20);
    let s = scan(&wal);
    let sqlite = super::testutil::sqlite_checkpointed(&dbf, &wal);
    let mut buf = vec![0u8; 4120 + 10];
    let last = s.end - 4120;
    let f = read_frame(&wal, 4096, last, &mut buf).unwrap().unwrap();
    assert_eq!(f.header.commit, s.commit);
    assert_eq!(f.header.salts, s.salts);
    let at = (f.header.pgno as usize - 1) * 4096;
    assert_eq!(f.page, &sqlite[at..at + 4096]);
    assert_eq!(read_frame(&wal, 4096, s.end, &mut buf).unwrap(), None);
    let err = read_frame(&wal, 4096, last, &mut buf[..4119]).unwrap_err();
    assert!(matches!(err, Error::BufferSize { need: 4120, .. }), "{err}");
    let err = read_frame(&wal, 4096, 16, &mut buf).unwrap_err();
    assert!(matches!(err, Error::Misaligned { offset: 16, .. }), "{err}");
    let err = read_frame(&wal, 4000, 32, &mut buf).unwrap_err();
    assert!(
        matches!(err, Error::BadPageSize { page_size: 4000 }),
        "{err}"
    );
}

/// Scan throughput on a ~200 MB WAL written by SQLite. Run with
/// `cargo test --release -p freshet-engine wal::sqlite_tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run in release mode"]
fn throughput() {
    use std::time::Instant;
    let mut db = LiveDb::new(4096);
    let blob = db.bytes(3500);
    while std::fs::metadata(db.wal_path()).map_or(0, |m| m.len()) < 200 << 20 {
        let blobs = vec![blob.clone(); 64];
        db.tx("INSERT INTO t (v) VALUES (?1)", &blobs);
    }
    let file = File::open(db.wal_path()).unwrap();
    let wal = std::fs::read(db.wal_path()).unwrap();
    let mb = wal.len() as f64 / 1e6;
    let mut buf = Vec::new();
    let best = |f: &mut dyn FnMut() -> Scan| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let s = f();
                assert_eq!(s.end, wal.len() as u64);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let file_s = best(&mut || {
        Reader::open(&file)
            .unwrap()
            .unwrap()
            .scan(None, &mut buf)
            .unwrap()
    });
    let mut buf = Vec::new();
    let mem_s = best(&mut || {
        Reader::open(&wal)
            .unwrap()
            .unwrap()
            .scan(None, &mut buf)
            .unwrap()
    });
    let mut c = Checksum::ZERO;
    let ck_s = (0..5)
        .map(|_| {
            let t = Instant::now();
            c = Checksum::ZERO.update(ByteOrder::Little, &wal[..wal.len() / 8 * 8]);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    let s = scan(&wal);
    println!(
        "WAL {mb:.0} MB, {} frames, {} transactions, {} pages (checksum {:08x})",
        s.frames,
        s.transactions,
        s.pages.len(),
        c.s0
    );
    println!("scan from file (page cache): {:.0} MB/s", mb / file_s);
    println!("scan from memory:            {:.0} MB/s", mb / mem_s);
    println!("checksum alone:              {:.0} MB/s", mb / ck_s);
}
