//! Feeds arbitrary bytes to the LTX decoder. It must never panic, and any
//! file it accepts must survive a re-encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut dec) = ltx::Decoder::new(data) else {
        return;
    };
    let header = *dec.header();
    let mut page = vec![0u8; header.page_size as usize];
    let mut pages = Vec::new();
    loop {
        match dec.next_page(&mut page) {
            Ok(Some(pgno)) => pages.push((pgno, page.clone())),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let Ok(trailer) = dec.finish() else { return };

    let mut again = Vec::new();
    let mut enc = ltx::Encoder::new(&mut again, &header).expect("accepted header re-encodes");
    for (pgno, data) in &pages {
        enc.encode_page(*pgno, data)
            .expect("accepted pages re-encode");
    }
    enc.finish(trailer.post_apply_checksum)
        .expect("accepted trailer re-encodes");
    let mut dec = ltx::Decoder::new(again.as_slice()).expect("re-encoded header");
    for (pgno, data) in &pages {
        assert_eq!(
            dec.next_page(&mut page).expect("re-encoded page"),
            Some(*pgno)
        );
        assert_eq!(&page, data);
    }
    assert_eq!(dec.next_page(&mut page).expect("end"), None);
    dec.finish().expect("re-encoded file verifies");
});
