//! Feeds arbitrary bytes to every parser of S3's XML answers (listings,
//! multipart, delete results, error documents) and round-trips the request
//! bodies the client writes for keys made from the same bytes.
#![no_main]

use backends::s3::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzzing::parse_responses(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    // XML 1.0 cannot carry control characters, and element text loses
    // surrounding whitespace: such keys are never produced by freshet.
    let keys: Vec<&str> = text
        .split('\n')
        .filter(|k| !k.is_empty() && k.trim() == *k && !k.chars().any(char::is_control))
        .take(1000)
        .collect();
    if let Err(e) = fuzzing::request_bodies_round_trip(&keys) {
        panic!("{e}");
    }
});
