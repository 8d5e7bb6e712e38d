//! The reader on real files through both I/O engines (io_uring read-ahead
//! and `pread`), and a WAL truncated by another process in mid-scan.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;

use freshet_io::{Engine, IoMode, read_chunks_with};

use super::testutil::LiveDb;
use super::*;

/// A WAL file read through one engine; `after_first_chunk` runs once, after
/// the scan has consumed its first chunk and while later ones are in flight.
struct OnEngine {
    engine: Engine,
    file: File,
    after_first_chunk: Option<Box<dyn Fn()>>,
}

impl ReadAt for OnEngine {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_chunks(
        &self,
        offset: u64,
        chunk: usize,
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        let mut first = true;
        read_chunks_with(self.engine, &self.file, offset, chunk, scratch, &mut |c| {
            let flow = f(c);
            if std::mem::take(&mut first)
                && let Some(hook) = &self.after_first_chunk
            {
                hook();
            }
            flow
        })
    }
}

fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sync];
    if let Ok(e) = freshet_io::mode::select(IoMode::Uring) {
        v.push(e);
    }
    v
}

fn open(engine: Engine, path: &PathBuf) -> OnEngine {
    OnEngine {
        engine,
        file: File::open(path).unwrap(),
        after_first_chunk: None,
    }
}

/// A WAL of about 10 MiB: many read chunks, so read-ahead wraps around its
/// buffers several times.
fn big_wal() -> LiveDb {
    let mut db = LiveDb::new(4096);
    for _ in 0..25 {
        db.insert(100, 4000);
    }
    let len = std::fs::metadata(db.wal_path()).unwrap().len();
    assert!(
        len > 8 << 20,
        "WAL of {len} bytes is too small for the test"
    );
    db
}

#[test]
fn file_scans_match_in_memory_scans_on_every_engine() {
    let db = big_wal();
    let wal = std::fs::read(db.wal_path()).unwrap();
    let reference = Reader::open(&wal)
        .unwrap()
        .unwrap()
        .scan(None, &mut Vec::new())
        .unwrap();
    let limited = Reader::open(&wal)
        .unwrap()
        .unwrap()
        .scan(Some(3 << 20), &mut Vec::new())
        .unwrap();
    assert!(limited.is_limited());
    for engine in engines() {
        let src = open(engine, &db.wal_path());
        let r = Reader::open(&src).unwrap().unwrap();
        assert_eq!(
            r.scan(None, &mut Vec::new()).unwrap(),
            reference,
            "{engine:?}"
        );
        assert_eq!(r.scan(Some(3 << 20), &mut Vec::new()).unwrap(), limited);
        // Resuming where the limited scan stopped reads the rest.
        let rest = Reader::resume(&src, limited.end, limited.salts)
            .unwrap()
            .unwrap()
            .scan(None, &mut Vec::new())
            .unwrap();
        assert_eq!(rest.end, reference.end, "{engine:?}");
        assert_eq!(
            rest.transactions + limited.transactions,
            reference.transactions
        );
    }
}

/// The WAL is read with positional reads, never mapped, so a truncation by
/// another process (as `PRAGMA wal_checkpoint(TRUNCATE)` does) can only
/// shorten what a scan sees; it must never crash the process (SIGBUS) or
/// yield frames that were not there.
#[test]
fn a_wal_truncated_by_another_process_mid_scan_stops_the_scan_cleanly() {
    for engine in engines() {
        let db = big_wal();
        let path = db.wal_path();
        let wal = std::fs::read(&path).unwrap();
        let full = Reader::open(&wal)
            .unwrap()
            .unwrap()
            .scan(None, &mut Vec::new())
            .unwrap();
        let cut = 2_000_000u64;
        let mut src = open(engine, &path);
        let target = path.clone();
        src.after_first_chunk = Some(Box::new(move || {
            let status = Command::new("truncate")
                .arg("-s")
                .arg(cut.to_string())
                .arg(&target)
                .status()
                .unwrap();
            assert!(status.success());
        }));
        let r = Reader::open(&src).unwrap().unwrap();
        let s = r.scan(None, &mut Vec::new()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), cut);
        assert!(
            matches!(s.stop, Stop::EndOfFile { .. } | Stop::TornFrame { .. }),
            "{engine:?}: {}",
            s.stop
        );
        // Frames read ahead before the truncation may still count, but the
        // scan ends before the original end and agrees with the original
        // bytes on every page it took.
        assert!(s.end < full.end, "{engine:?}: scanned past the cut");
        let prefix = Reader::open(&wal[..s.end as usize])
            .unwrap()
            .unwrap()
            .scan(None, &mut Vec::new())
            .unwrap();
        assert_eq!(s.pages, prefix.pages, "{engine:?}");
        assert_eq!(
            (s.commit, s.transactions),
            (prefix.commit, prefix.transactions)
        );
        // A scan after the truncation sees only what is left.
        let again = Reader::open(&src).unwrap().unwrap();
        let after = again.scan(None, &mut Vec::new()).unwrap();
        assert!(after.end <= cut, "{engine:?}: {} > {cut}", after.end);
    }
}
