//! Feeds arbitrary text to the `litestream.yml` parser, the replica URL
//! parser and the duration/size parsers. None may panic; every refusal must
//! carry a message, and a configuration that parses must parse again to the
//! same thing (the parser holds no hidden state).
#![no_main]

use std::path::{Path, PathBuf};

use engine::config::{self, Environment};
use libfuzzer_sys::fuzz_target;

fn var(name: &str) -> Option<String> {
    match name {
        "PID" => Some("4242".into()),
        "HOME" => Some("/home/fuzz".into()),
        "BUCKET" => Some("bkt".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = Environment {
        vars: &var,
        home: Some(PathBuf::from("/home/fuzz")),
        cwd: Some(PathBuf::from("/srv/app")),
    };
    let origin = Path::new("litestream.yml");
    for expand in [false, true] {
        match config::parse_str(text, origin, &env, expand) {
            Ok(first) => {
                let again = config::parse_str(text, origin, &env, expand)
                    .expect("a configuration that parsed once parses again");
                assert_eq!(format!("{first:?}"), format!("{again:?}"));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    for line in text.lines().take(4) {
        if let Err(e) = config::parse_replica_url_in(line, &env) {
            assert!(!e.to_string().is_empty());
        }
        let _ = config::parse_duration(line);
        let _ = config::parse_byte_size(line);
    }
});
