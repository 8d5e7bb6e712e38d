//! Bad configurations and command lines are refused with exit status 1 and
//! one clear `Error: ` line on stderr, naming file, line and column where
//! the problem is in the file.
//!
//! The corpus is `tests/fixtures/config/*.yml`. Each file starts with a
//! comment saying what is wrong, then `# expect: ` lines, each text that
//! must appear on stderr (`{file}` stands for the fixture's path),
//! optionally `# expect-stdout: ` lines for the log and `# forbid: ` lines,
//! text that must appear in neither (a secret). Adding a case means adding
//! a file.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::fs;
use std::path::{Path, PathBuf};

use e2e::{freshet, freshet_bin, s};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

/// What a fixture expects.
struct Expect {
    stderr: Vec<String>,
    stdout: Vec<String>,
    forbid: Vec<String>,
}

/// The `# expect: `, `# expect-stdout: ` and `# forbid: ` texts of a
/// fixture.
fn expectations(path: &Path) -> Expect {
    let text = fs::read_to_string(path).unwrap();
    let file = path.display().to_string();
    let grab = |prefix: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|e| e.replace("{file}", &file))
            .collect()
    };
    Expect {
        stderr: grab("# expect: "),
        stdout: grab("# expect-stdout: "),
        forbid: grab("# forbid: "),
    }
}

/// What went wrong with one command on one fixture, if anything.
fn check(cmd: &[&str], want: &Expect) -> Option<String> {
    let out = freshet(cmd);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let mut problems = Vec::new();
    if out.status.code() != Some(1) {
        problems.push(format!("exit status {} instead of 1", out.status));
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    if errors.len() != 1 {
        problems.push(format!("{} `Error: ` lines instead of one", errors.len()));
    }
    for w in &want.stderr {
        if !stderr.contains(w.as_str()) {
            problems.push(format!("stderr lacks {w:?}"));
        }
    }
    for w in &want.stdout {
        if !stdout.contains(w.as_str()) {
            problems.push(format!("stdout lacks {w:?}"));
        }
    }
    for w in &want.forbid {
        if stdout.contains(w.as_str()) || stderr.contains(w.as_str()) {
            problems.push(format!("the output shows {w:?}"));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "`freshet {}`: {}\n  stdout: {stdout}\n  stderr: {stderr}",
            cmd.join(" "),
            problems.join("; ")
        )
    })
}

/// Every fixture makes `replicate -once` fail before touching anything,
/// with its expected message; those the configuration itself rejects
/// (located messages) fail `databases` the same way.
#[test]
fn every_bad_config_is_refused_with_a_located_message() {
    let files = corpus();
    assert!(files.len() >= 40, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let want = expectations(path);
        if want.stderr.is_empty() {
            failures.push(format!("{}: no `# expect: ` line", path.display()));
            continue;
        }
        let p = s(path);
        if let Some(f) = check(&["replicate", "-once", "-config", p], &want) {
            failures.push(f);
        }
        // The configuration itself rejects the located ones: so must every
        // command that reads it.
        if want.stderr.iter().any(|w| w.contains(&format!("{p}:"))) {
            let want = Expect {
                stdout: Vec::new(),
                ..want
            };
            if let Some(f) = check(&["databases", "-config", p], &want) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures misbehaved:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The corpus is not passing by accident: the same shape of file, made
/// valid, is accepted.
#[test]
fn a_valid_config_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("litestream.yml");
    let db = tmp.path().join("app.db");
    fs::write(
        &cfg,
        format!(
            "levels:\n  - interval: 30s\nsnapshot:\n  interval: 24h\n  retention: 168h\n\
             l0-retention: 5m\ndbs:\n  - path: {}\n    monitor-interval: 1s\n    replica:\n      \
             type: file\n      path: {}\n      sync-interval: 1s\n",
            db.display(),
            tmp.path().join("replica").display()
        ),
    )
    .unwrap();
    let out = freshet(&["databases", "-config", s(&cfg)]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(s(&db)) && stdout.contains("file"),
        "{stdout}"
    );
}

/// Command-line mistakes: exit 1, one `Error: ` line saying what to do.
#[test]
fn command_line_errors_exit_1_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.yml");
    let url = format!("file://{}", tmp.path().join("replica").display());
    let cfg = tmp.path().join("l.yml");
    fs::write(
        &cfg,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      path: {}\n",
            tmp.path().join("app.db").display(),
            tmp.path().join("replica").display()
        ),
    )
    .unwrap();
    let m = s(&missing);
    let c = s(&cfg);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["replicate", "-config", m],
            format!("Error: config file not found: {m}"),
        ),
        (
            vec!["databases", "-config", m],
            format!("Error: config file not found: {m}"),
        ),
        (
            vec!["replicate", "/srv/app.db"],
            "Error: must specify at least one replica URL for /srv/app.db".into(),
        ),
        (
            vec!["replicate", "/srv/app.db", &url, &url],
            "Error: multiple replicas on a single database are no longer supported".into(),
        ),
        (
            vec!["replicate", "-config", c, "/srv/app.db", &url],
            "Error: cannot specify a replica URL and the -config flag".into(),
        ),
        (
            vec!["restore", "-config", c, "-o", "/srv/out.db", &url],
            "Error: cannot specify a replica URL and the -config flag".into(),
        ),
        (
            vec!["restore", &url],
            "Error: must specify -o OUTPUT when restoring from a replica URL".into(),
        ),
        (
            vec!["restore", "-o", "/srv/out.db", "-txid", "12", &url],
            "Error: invalid -txid \"12\"".into(),
        ),
        (
            vec![
                "restore",
                "-o",
                "/srv/out.db",
                "-txid",
                "0000000000000001",
                "-timestamp",
                "2024-01-01T00:00:00Z",
                &url,
            ],
            "Error: cannot specify both -txid and -timestamp".into(),
        ),
        (
            vec![
                "restore",
                "-o",
                "/srv/out.db",
                "-timestamp",
                "yesterday",
                &url,
            ],
            "invalid -timestamp \"yesterday\": expected RFC 3339".into(),
        ),
        (
            vec![
                "restore",
                "-o",
                "/srv/out.db",
                "-integrity-check",
                "deep",
                &url,
            ],
            "Error: invalid -integrity-check \"deep\": use none, quick or full".into(),
        ),
        (
            vec![
                "restore",
                "-config",
                c,
                "-o",
                "/srv/out.db",
                "/srv/other.db",
            ],
            "Error: database not found in config: /srv/other.db".into(),
        ),
        (
            vec!["ltx", "-level", "10", &url],
            "Error: invalid -level \"10\"".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (cmd, want) in cases {
        let want = Expect {
            stderr: vec![want],
            stdout: Vec::new(),
            forbid: Vec::new(),
        };
        if let Some(f) = check(&cmd, &want) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An invalid `FRESHET_IO` is refused up front by both commands that do
/// I/O, naming the valid values (docs/IO.md).
#[test]
fn an_invalid_io_mode_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("restored.db");
    let db = dir.path().join("app.db");
    let url = format!("file://{}", s(&dir.path().join("replica")));
    for args in [
        vec!["restore", "-o", s(&out), url.as_str()],
        vec!["replicate", "-once", s(&db), url.as_str()],
    ] {
        let o = std::process::Command::new(freshet_bin())
            .args(&args)
            .env("FRESHET_IO", "turbo")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr
                .contains("FRESHET_IO=\"turbo\" is not a valid I/O mode: use auto, sync or uring"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!out.exists() && !db.exists());
}
