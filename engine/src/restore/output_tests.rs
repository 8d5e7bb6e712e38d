//! Output preparation, the dry-run report, v0.3 detection and time formats.

use std::fs;
use std::time::{Duration, SystemTime};

use backends::{FileId, FileInfo};
use ltx::TxId;

use super::*;
use crate::restore::IntegrityCheck;
use crate::restore::plan::Plan;

#[test]
fn prepare_output_follows_the_force_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");

    // Nothing there: nothing to do.
    prepare_output(&db, false).unwrap();

    // A directory is always refused.
    fs::create_dir(&db).unwrap();
    assert!(matches!(
        prepare_output(&db, true),
        Err(RestoreError::OutputIsDirectory { .. })
    ));
    fs::remove_dir(&db).unwrap();

    // A 0-byte file is removed without -force.
    fs::write(&db, b"").unwrap();
    prepare_output(&db, false).unwrap();
    assert!(!db.exists());

    // A non-empty file needs -force.
    fs::write(&db, b"data").unwrap();
    let err = prepare_output(&db, false).unwrap_err();
    assert!(matches!(err, RestoreError::OutputExists { .. }), "{err}");
    assert!(err.to_string().contains("-force"), "{err}");
    assert_eq!(fs::read(&db).unwrap(), b"data", "untouched without -force");

    // A sidecar needs -force, even without the database.
    fs::remove_file(&db).unwrap();
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = sibling(&db, suffix);
        fs::write(&side, b"x").unwrap();
        let err = prepare_output(&db, false).unwrap_err();
        assert!(
            matches!(err, RestoreError::SidecarExists { .. }),
            "{suffix}: {err}"
        );
        fs::remove_file(&side).unwrap();
    }

    // -force removes the database and every sidecar.
    fs::write(&db, b"data").unwrap();
    for suffix in ["-wal", "-shm", "-journal"] {
        fs::write(sibling(&db, suffix), b"x").unwrap();
    }
    prepare_output(&db, true).unwrap();
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn output_exists_counts_anything_but_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    assert!(!output_exists(&db));
    fs::write(&db, b"").unwrap();
    assert!(output_exists(&db), "even a 0-byte file");
    fs::remove_file(&db).unwrap();
    fs::create_dir(&db).unwrap();
    assert!(output_exists(&db), "a directory");
}

#[test]
fn v3_only_replicas_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    check_v3_replica(root).unwrap();

    fs::create_dir_all(root.join("generations/notagen")).unwrap();
    check_v3_replica(root).unwrap();

    fs::create_dir_all(root.join("generations/0123456789abcdef/snapshots")).unwrap();
    let err = check_v3_replica(root).unwrap_err();
    assert!(matches!(err, RestoreError::V3NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("v0.3"), "{err}");

    fs::create_dir_all(root.join("ltx/0")).unwrap();
    fs::write(root.join("ltx/0/junk.txt"), b"").unwrap();
    assert!(check_v3_replica(root).is_err(), "no LTX file yet");
    fs::write(
        root.join("ltx/0/0000000000000001-0000000000000001.ltx"),
        b"",
    )
    .unwrap();
    check_v3_replica(root).unwrap();
}

fn sample() -> DryRun {
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let f = |level, min, max, size, t| FileInfo {
        id: FileId::new(level, TxId::new(min), TxId::new(max)),
        size,
        created_at: at(t),
    };
    DryRun {
        source: "file:///tmp/r&d".into(),
        target_path: "/tmp/out.db".into(),
        replica: "file".into(),
        plan: Plan {
            files: vec![
                f(9, 1, 0x2a, 1_234_567, 1_700_000_000),
                f(0, 0x2b, 0x2b, 4321, 1_700_000_061),
            ],
        },
    }
}

#[test]
fn dry_run_text_is_tab_aligned_like_go() {
    let want = "\
Restore plan:
  source: file:///tmp/r&d
  target: /tmp/out.db
  replica: file
  txid range: 0000000000000001 - 000000000000002b

Files to fetch:
level  file                                   min_txid          max_txid          size     timestamp
9      0000000000000001-000000000000002a.ltx  0000000000000001  000000000000002a  1234567  2023-11-14T22:13:20Z
0      000000000000002b-000000000000002b.ltx  000000000000002b  000000000000002b  4321     2023-11-14T22:14:21Z
";
    assert_eq!(sample().to_text(), want);
}

#[test]
fn dry_run_json_is_indented_and_escaped_like_go() {
    let want = r#"{
  "source": "file:///tmp/r\u0026d",
  "target_path": "/tmp/out.db",
  "replica": "file",
  "min_txid": "0000000000000001",
  "max_txid": "000000000000002b",
  "files": [
    {
      "level": 9,
      "name": "0000000000000001-000000000000002a.ltx",
      "min_txid": "0000000000000001",
      "max_txid": "000000000000002a",
      "size": 1234567,
      "timestamp": "2023-11-14T22:13:20Z"
    },
    {
      "level": 0,
      "name": "000000000000002b-000000000000002b.ltx",
      "min_txid": "000000000000002b",
      "max_txid": "000000000000002b",
      "size": 4321,
      "timestamp": "2023-11-14T22:14:21Z"
    }
  ]
}"#;
    assert_eq!(sample().to_json(), want);
}

#[test]
fn rfc3339_formats_and_parses() {
    let at = |s: u64, ns: u32| SystemTime::UNIX_EPOCH + Duration::new(s, ns);
    for (t, text) in [
        (at(0, 0), "1970-01-01T00:00:00Z"),
        (at(951_782_400, 999_999_999), "2000-02-29T00:00:00Z"),
        (at(1_700_000_000, 0), "2023-11-14T22:13:20Z"),
        (at(4_107_542_399, 0), "2100-02-28T23:59:59Z"),
        (
            SystemTime::UNIX_EPOCH - Duration::from_millis(1),
            "1969-12-31T23:59:59Z",
        ),
    ] {
        assert_eq!(format_rfc3339(t), text);
    }
    for (text, t) in [
        ("2023-11-14T22:13:20Z", at(1_700_000_000, 0)),
        ("2023-11-14T22:13:20.5Z", at(1_700_000_000, 500_000_000)),
        (
            "2023-11-14T23:13:20.123456789+01:00",
            at(1_700_000_000, 123_456_789),
        ),
        ("2023-11-14T20:43:20-01:30", at(1_700_000_000, 0)),
        ("2000-02-29T00:00:00Z", at(951_782_400, 0)),
    ] {
        assert_eq!(parse_rfc3339(text).unwrap(), t, "{text}");
    }
    for bad in [
        "",
        "2023-11-14",
        "2023-11-14 22:13:20Z",
        "2023-11-14T22:13:20",
        "2023-13-14T22:13:20Z",
        "2023-02-29T22:13:20Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+0100",
        "2023-11-14T22:13:20Zjunk",
    ] {
        assert!(parse_rfc3339(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_result_json_has_litestreams_fields() {
    let json = result_json(
        std::path::Path::new("/data/a<b>.db"),
        "s3",
        Some(TxId::new(0x1f)),
        Duration::from_millis(1234),
        IntegrityCheck::Quick,
    );
    let want = r#"{
  "db_path": "/data/a\u003cb\u003e.db",
  "replica": "s3",
  "txid": "000000000000001f",
  "duration_ms": 1234,
  "integrity_check": "quick"
}"#;
    assert_eq!(json, want);
    let json = result_json(
        std::path::Path::new("x"),
        "file",
        None,
        Duration::ZERO,
        IntegrityCheck::None,
    );
    assert!(json.contains("\"txid\": \"\""), "{json}");
}
