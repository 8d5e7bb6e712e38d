//! Feeds arbitrary bytes to the WAL reader as a `-wal` file. It must never
//! panic, and what it reports must be self-consistent: committed pages only,
//! none past the database size, every frame offset inside the committed
//! range, and resuming at the end finds nothing more.
#![no_main]

use engine::wal::{self, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(reader)) = Reader::open(data) else { return };
    let mut buf = Vec::new();
    let limit = data.first().map(|&b| u64::from(b) * 97);
    for limit in [None, limit] {
        let Ok(scan) = reader.scan(limit, &mut buf) else { return };
        assert!(scan.end as usize <= data.len());
        assert!(scan.end >= scan.start);
        let frame = wal::frame_size(scan.page_size);
        assert_eq!((scan.end - scan.start) % frame, 0);
        let mut prev = 0;
        for (pgno, offset) in scan.pages.iter() {
            assert!(pgno > prev && pgno <= scan.commit);
            assert!(offset >= scan.start && offset + frame <= scan.end);
            prev = pgno;
        }
        if scan.transactions > 0 && limit.is_none() {
            if let Ok(Some(again)) = Reader::resume(data, scan.end, scan.salts) {
                let rest = again.scan(None, &mut buf).expect("resume scan");
                assert!(rest.pages.is_empty(), "nothing after the end of valid data");
            }
        }
    }
});
