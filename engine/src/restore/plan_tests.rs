//! Table tests of the planning algorithm (RESTORE.md §4) over synthetic
//! listings.

use std::time::{Duration, SystemTime};

use backends::{FileId, FileInfo};
use ltx::TxId;

use super::{Plan, better, choose};
use crate::restore::Target;
use crate::restore::error::RestoreError;

/// A file of `level` covering `min..=max`, created at second `t`.
fn f(level: u8, min: u64, max: u64, t: u64) -> FileInfo {
    FileInfo {
        id: FileId::new(level, TxId::new(min), TxId::new(max)),
        size: 4096,
        created_at: at(t),
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn levels(files: &[FileInfo]) -> Vec<Vec<FileInfo>> {
    let mut out = vec![Vec::new(); 10];
    for file in files {
        out[usize::from(file.id.level)].push(*file);
    }
    out
}

/// The plan as (level, min, max) triples, or the error's text.
fn run(files: &[FileInfo], target: Target) -> Result<Vec<(u8, u64, u64)>, String> {
    choose(&levels(files), target)
        .map(|p: Plan| {
            p.files
                .iter()
                .map(|f| (f.id.level, f.id.min_txid.get(), f.id.max_txid.get()))
                .collect()
        })
        .map_err(|e| e.to_string())
}

fn txid(x: u64) -> Target {
    Target::TxId(TxId::new(x))
}

struct Case {
    name: &'static str,
    files: Vec<FileInfo>,
    target: Target,
    want: Result<Vec<(u8, u64, u64)>, &'static str>,
}

#[test]
fn plans_match_the_spec_algorithm() {
    let l0 = |a: u64, b: u64| (a..=b).map(|t| f(0, t, t, t)).collect::<Vec<_>>();
    let with = |mut base: Vec<FileInfo>, more: &[FileInfo]| {
        base.extend_from_slice(more);
        base
    };
    let cases = vec![
        Case {
            name: "snapshot only",
            files: vec![f(9, 1, 7, 10)],
            target: Target::Latest,
            want: Ok(vec![(9, 1, 7)]),
        },
        Case {
            name: "newest snapshot wins",
            files: vec![f(9, 1, 3, 5), f(9, 1, 7, 10), f(9, 1, 5, 8)],
            target: Target::Latest,
            want: Ok(vec![(9, 1, 7)]),
        },
        Case {
            name: "snapshot + L1 + L0",
            files: with(l0(1, 12), &[f(9, 1, 4, 4), f(1, 1, 6, 6), f(1, 7, 10, 10)]),
            target: Target::Latest,
            want: Ok(vec![
                (9, 1, 4),
                (1, 1, 6),
                (1, 7, 10),
                (0, 11, 11),
                (0, 12, 12),
            ]),
        },
        Case {
            name: "overlapping compacted files: the one reaching furthest wins",
            files: with(
                l0(1, 9),
                &[
                    f(9, 1, 2, 2),
                    f(1, 3, 5, 5),
                    f(2, 1, 6, 6),
                    f(1, 6, 8, 8),
                    f(3, 2, 8, 8),
                ],
            ),
            target: Target::Latest,
            // At 2: L1 3-5, L2 1-6 and L3 2-8 start in time; 2-8 reaches
            // furthest. At 8 only L0 9 is left.
            want: Ok(vec![(9, 1, 2), (3, 2, 8), (0, 9, 9)]),
        },
        Case {
            name: "no snapshot, L0 from TXID 1",
            files: l0(1, 4),
            target: Target::Latest,
            want: Ok(vec![(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4)]),
        },
        Case {
            name: "no snapshot and nothing from TXID 1",
            files: l0(3, 4),
            target: Target::Latest,
            want: Err("none of its 2 LTX files is a level-9 snapshot or starts at TXID 1"),
        },
        Case {
            name: "snapshot newer than some L1 files",
            files: with(l0(9, 12), &[f(1, 1, 4, 4), f(1, 5, 8, 8), f(9, 1, 6, 6)]),
            target: Target::Latest,
            want: Ok(vec![
                (9, 1, 6),
                (1, 5, 8),
                (0, 9, 9),
                (0, 10, 10),
                (0, 11, 11),
                (0, 12, 12),
            ]),
        },
        Case {
            name: "target TXID exactly at an L0 file",
            files: with(l0(1, 10), &[f(9, 1, 4, 4), f(1, 5, 8, 8)]),
            target: txid(6),
            want: Ok(vec![(9, 1, 4), (0, 5, 5), (0, 6, 6)]),
        },
        Case {
            name: "target TXID at a compacted file's end",
            files: with(l0(9, 10), &[f(9, 1, 4, 4), f(1, 5, 8, 8)]),
            target: txid(8),
            want: Ok(vec![(9, 1, 4), (1, 5, 8)]),
        },
        Case {
            name: "target TXID covered only by a compacted file ending after it",
            files: with(l0(9, 10), &[f(9, 1, 4, 4), f(1, 5, 8, 8)]),
            target: txid(6),
            want: Err(
                "TXID 0000000000000006 cannot be restored; the files not past it reach only TXID 0000000000000004",
            ),
        },
        Case {
            name: "target TXID below every snapshot and no L0 from 1",
            files: vec![f(9, 1, 4, 4)],
            target: txid(2),
            want: Err(
                "no snapshot or file chain from TXID 1 ends at or before TXID 0000000000000002",
            ),
        },
        Case {
            name: "target TXID equal to a snapshot: the snapshot alone",
            files: with(l0(1, 6), &[f(9, 1, 4, 4)]),
            target: txid(4),
            want: Ok(vec![(9, 1, 4)]),
        },
        Case {
            name: "target TXID beyond the replica",
            files: with(l0(5, 6), &[f(9, 1, 4, 4)]),
            target: txid(9),
            want: Err("the files not past it reach only TXID 0000000000000006"),
        },
        Case {
            name: "target time: files created strictly before it",
            // Snapshot at t=4 (TXID 4), L0 5..10 at t=5..10.
            files: with(l0(5, 10), &[f(9, 1, 4, 4), f(9, 1, 8, 8)]),
            target: Target::Time(at(7)),
            want: Ok(vec![(9, 1, 4), (0, 5, 5), (0, 6, 6)]),
        },
        Case {
            name: "target time before every file",
            files: with(l0(5, 10), &[f(9, 1, 4, 4)]),
            target: Target::Time(at(4)),
            want: Err("no snapshot or file chain from TXID 1 was created before"),
        },
        Case {
            name: "target time skips a compacted file created later",
            // L1 5-8 was written at t=20, after the target.
            files: with(l0(5, 8), &[f(9, 1, 4, 4), f(1, 5, 8, 20)]),
            target: Target::Time(at(9)),
            want: Ok(vec![(9, 1, 4), (0, 5, 5), (0, 6, 6), (0, 7, 7), (0, 8, 8)]),
        },
        Case {
            name: "gap in L0 without a target",
            files: vec![f(9, 1, 4, 4), f(0, 5, 5, 5), f(0, 7, 7, 7)],
            target: Target::Latest,
            want: Err(
                "non-contiguous ltx files: have up to 0000000000000005 but next file starts at 0000000000000007",
            ),
        },
        Case {
            name: "gap after the snapshot in L1",
            files: vec![f(9, 1, 4, 4), f(1, 9, 12, 12)],
            target: Target::Latest,
            want: Err(
                "have up to 0000000000000004 but next file starts at 0000000000000009 (level 1)",
            ),
        },
        Case {
            name: "a gap is no error with a target TXID before it",
            files: vec![f(9, 1, 4, 4), f(0, 5, 5, 5), f(0, 7, 7, 7)],
            target: txid(5),
            want: Ok(vec![(9, 1, 4), (0, 5, 5)]),
        },
        Case {
            name: "a gap is no error with a target time",
            files: vec![f(9, 1, 4, 4), f(0, 5, 5, 5), f(0, 7, 7, 7)],
            target: Target::Time(at(100)),
            want: Ok(vec![(9, 1, 4), (0, 5, 5)]),
        },
        Case {
            name: "files entirely behind the snapshot are ignored, no gap",
            files: with(l0(1, 4), &[f(9, 1, 6, 6)]),
            target: Target::Latest,
            want: Ok(vec![(9, 1, 6)]),
        },
        Case {
            name: "empty replica",
            files: vec![],
            target: Target::Latest,
            want: Err("no matching backup files available: the replica holds no LTX files"),
        },
        Case {
            name: "tie on MaxTXID: the smaller MinTXID wins",
            files: vec![f(9, 1, 2, 2), f(1, 2, 8, 8), f(2, 3, 8, 8)],
            target: Target::Latest,
            want: Ok(vec![(9, 1, 2), (1, 2, 8)]),
        },
        Case {
            name: "tie on MaxTXID and MinTXID: the higher level wins",
            files: vec![f(9, 1, 2, 2), f(1, 3, 8, 8), f(3, 3, 8, 9), f(2, 3, 8, 1)],
            target: Target::Latest,
            want: Ok(vec![(9, 1, 2), (3, 3, 8)]),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = run(&case.files, case.target);
        let ok = match (&got, &case.want) {
            (Ok(g), Ok(w)) => g == w,
            (Err(g), Err(w)) => g.contains(w),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {got:?}, want {:?}", case.name, case.want));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn better_orders_by_max_then_min_then_level_then_age() {
    let base = f(1, 5, 8, 10);
    assert!(better(&f(0, 9, 9, 10), &base), "larger MaxTXID");
    assert!(
        !better(&f(3, 1, 7, 1), &base),
        "smaller MaxTXID loses whatever else"
    );
    assert!(better(&f(1, 4, 8, 10), &base), "smaller MinTXID");
    assert!(better(&f(2, 5, 8, 10), &base), "higher level");
    assert!(
        !better(&f(0, 5, 8, 1), &base),
        "lower level loses even if older"
    );
    assert!(better(&f(1, 5, 8, 9), &base), "earlier creation time");
    assert!(!better(&base, &base), "not better than itself");
}

#[test]
fn target_txid_zero_and_epoch_are_rejected() {
    let files = levels(&[f(9, 1, 4, 4)]);
    assert!(matches!(
        choose(&files, Target::TxId(TxId::ZERO)),
        Err(RestoreError::InvalidOptions(_))
    ));
    assert!(matches!(
        choose(&files, Target::Time(SystemTime::UNIX_EPOCH)),
        Err(RestoreError::InvalidOptions(_))
    ));
}

#[test]
fn listing_order_does_not_matter() {
    let mut files = vec![f(0, 3, 3, 3), f(9, 1, 2, 2), f(0, 5, 5, 5), f(0, 4, 4, 4)];
    files.reverse();
    assert_eq!(
        run(&files, Target::Latest),
        Ok(vec![(9, 1, 2), (0, 3, 3), (0, 4, 4), (0, 5, 5)])
    );
}

#[test]
fn plan_accessors() {
    let plan = choose(&levels(&[f(9, 1, 4, 4), f(0, 5, 5, 5)]), Target::Latest).unwrap();
    assert_eq!(plan.min_txid(), TxId::new(1));
    assert_eq!(plan.max_txid(), TxId::new(5));
    assert_eq!(plan.fetch_bytes(), 8192);
}
