//! Retention: which files no restore point needs any more
//! (REPLICA_LAYOUT.md §7).
//!
//! With retention disabled nothing is deleted from the replica (bucket
//! lifecycle rules take over), but local copies in the metadata directory are
//! still removed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backends::{FileId, FileInfo, ReplicaClient, SNAPSHOT_LEVEL};
use ltx::TxId;

use super::error::CompactError;

/// What a retention pass removed, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files deleted from the replica.
    pub remote: Vec<FileId>,
    /// Files that would have been deleted from the replica had retention
    /// been enabled.
    pub kept_remote: Vec<FileId>,
    /// Local copies removed from the metadata directory.
    pub local: Vec<PathBuf>,
    /// Snapshot retention only: lower-level files ending below this TXID
    /// were eligible for deletion (0: none).
    pub floor: Option<TxId>,
    /// Level-0 retention only: how the listed files stood.
    pub l0_scan: Option<L0Scan>,
}

/// Level-0 files by retention status at one scan (§7.2), as Litestream's
/// `litestream_l0_retention_files_total` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L0Scan {
    /// Marked for deletion: covered by level 1 and old enough.
    pub eligible: usize,
    /// Old enough but not yet covered by level 1.
    pub not_compacted: usize,
    /// Newer than the retention threshold.
    pub too_recent: usize,
}

impl RetentionReport {
    /// Whether nothing was removed or would have been.
    pub fn is_empty(&self) -> bool {
        self.remote.is_empty() && self.kept_remote.is_empty() && self.local.is_empty()
    }
}

/// Snapshot retention and the lower-level floor (§7.1):
///
/// 1. Snapshots (level 9) created before `now - retention` are marked,
///    except the last one listed, which always stays.
/// 2. The floor is 0 if the first unmarked snapshot is the first listed,
///    else the MaxTXID of the snapshot listed just before it: files a restore
///    from that newest deleted snapshot could still have needed are kept.
/// 3. Marked snapshots are deleted (replica, then local copies).
/// 4. In levels 1..=`max_level`, files whose MaxTXID is below the floor are
///    deleted, never the last listed file of a level. Level 0 is left alone.
///
/// `local_l0` is the metadata directory's `ltx/0`; copies at other levels
/// would sit next to it (`ltx/<level>`) and are removed if present.
pub async fn enforce_snapshot_retention(
    client: &dyn ReplicaClient,
    retention: Duration,
    max_level: u8,
    now: SystemTime,
    remote_enabled: bool,
    local_l0: Option<&Path>,
) -> Result<RetentionReport, CompactError> {
    let mut report = RetentionReport::default();
    let snapshots = list(client, SNAPSHOT_LEVEL).await?;
    let Some((_, older)) = snapshots.split_last() else {
        return Ok(report);
    };
    let cutoff = now.checked_sub(retention);
    let expired = |f: &FileInfo| cutoff.is_some_and(|c| f.created_at < c);
    let marked: Vec<FileId> = older.iter().filter(|f| expired(f)).map(|f| f.id).collect();
    let first_kept = snapshots.iter().position(|f| !marked.contains(&f.id));
    let floor = match first_kept {
        Some(i) if i > 0 => snapshots[i - 1].id.max_txid,
        _ => TxId::ZERO,
    };
    report.floor = Some(floor);

    let local_ltx = local_l0.and_then(Path::parent);
    remove(client, &marked, remote_enabled, local_ltx, &mut report).await?;

    for level in 1..=max_level {
        let files = list(client, level).await?;
        let Some((_, older)) = files.split_last() else {
            continue;
        };
        let below: Vec<FileId> = older
            .iter()
            .filter(|f| f.id.max_txid < floor)
            .map(|f| f.id)
            .collect();
        remove(client, &below, remote_enabled, local_ltx, &mut report).await?;
    }
    Ok(report)
}

/// Level-0 retention (§7.2): level-0 files go once level 1 covers them
/// (MaxTXID ≤ level 1's highest MaxTXID) and they are older than
/// `now - l0_retention`.
///
/// The replica's level-0 listing is walked in order and the walk stops at
/// the first file newer than that threshold, so the files kept stay
/// contiguous. A file whose listing carries no creation time (the Unix epoch
/// or earlier) is dated by its local copy's mtime, or taken as exactly the
/// threshold when there is none. If the walk reaches the end, the last
/// listed file is kept: the newest level-0 file always survives. Nothing
/// happens when `l0_retention` is zero or level 1 is empty.
///
/// Deletes from the replica when `remote_enabled`, and always removes the
/// local copies in `local_l0`.
pub async fn enforce_l0_retention(
    client: &dyn ReplicaClient,
    l0_retention: Duration,
    now: SystemTime,
    remote_enabled: bool,
    local_l0: Option<&Path>,
) -> Result<RetentionReport, CompactError> {
    let mut report = RetentionReport::default();
    if l0_retention.is_zero() {
        return Ok(report);
    }
    let l1 = list(client, 1).await?;
    let Some(max_l1) = l1.iter().map(|f| f.id.max_txid).max() else {
        return Ok(report);
    };
    let Some(threshold) = now.checked_sub(l0_retention) else {
        return Ok(report);
    };

    let l0 = list(client, 0).await?;
    let mut marked = Vec::new();
    let mut scan = L0Scan::default();
    let mut walked_to_end = true;
    for (i, file) in l0.iter().enumerate() {
        let created = if file.created_at > UNIX_EPOCH {
            file.created_at
        } else {
            local_mtime(local_l0, file.id).await.unwrap_or(threshold)
        };
        if created > threshold {
            // The walk stops here: this file and every later one wait.
            scan.too_recent = l0.len() - i;
            walked_to_end = false;
            break;
        }
        if file.id.max_txid <= max_l1 {
            marked.push(file.id);
        } else {
            scan.not_compacted += 1;
        }
    }
    if walked_to_end && marked.last() == l0.last().map(|f| &f.id) {
        // The newest file always stays; it is in none of the counts.
        marked.pop();
    }
    scan.eligible = marked.len();
    report.l0_scan = Some(scan);

    let local_ltx = local_l0.and_then(Path::parent);
    remove(client, &marked, remote_enabled, local_ltx, &mut report).await?;
    Ok(report)
}

async fn list(client: &dyn ReplicaClient, level: u8) -> Result<Vec<FileInfo>, CompactError> {
    client
        .list(level, TxId::ZERO)
        .await
        .map_err(CompactError::backend("list", level))
}

async fn local_mtime(local_l0: Option<&Path>, id: FileId) -> Option<SystemTime> {
    let path = local_l0?.join(id.file_name());
    tokio::fs::metadata(path).await.ok()?.modified().ok()
}

/// Deletes `ids` (all of one level) from the replica if enabled, then their
/// local copies under `local_ltx/<level>/`. A local copy that cannot be
/// removed is logged and left: the replica's copy is what matters.
async fn remove(
    client: &dyn ReplicaClient,
    ids: &[FileId],
    remote_enabled: bool,
    local_ltx: Option<&Path>,
    report: &mut RetentionReport,
) -> Result<(), CompactError> {
    let Some(level) = ids.first().map(|id| id.level) else {
        return Ok(());
    };
    if remote_enabled {
        client
            .delete(ids)
            .await
            .map_err(CompactError::backend("delete", level))?;
        report.remote.extend_from_slice(ids);
    } else {
        report.kept_remote.extend_from_slice(ids);
    }
    let Some(dir) = local_ltx.map(|d| d.join(level.to_string())) else {
        return Ok(());
    };
    for id in ids {
        let path = dir.join(id.file_name());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => report.local.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let e = CompactError::Local {
                    op: "delete",
                    path,
                    source: e,
                };
                tracing::warn!("retention: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::{Fixture, fid, l0_ids, ltx_bytes, secs, secs_ms};

    const HOUR: u64 = 3600;
    const DAY: Duration = Duration::from_secs(24 * HOUR);

    /// "Now" for the snapshot cases: three days after the fixture's midnight.
    const NOW: u64 = 3 * 24 * HOUR;

    struct Case {
        name: &'static str,
        /// (MaxTXID, age in hours) in listing order.
        snapshots: &'static [(u64, u64)],
        deleted: &'static [u64],
        floor: Option<u64>,
        /// MaxTXIDs of the level-1 files left (level 1 starts as 1-5, 6-10,
        /// …, 21-25).
        l1_left: &'static [u64],
    }

    const CASES: &[Case] = &[
        Case {
            name: "no snapshot: nothing to do",
            snapshots: &[],
            deleted: &[],
            floor: None,
            l1_left: &[5, 10, 15, 20, 25],
        },
        Case {
            name: "a lone old snapshot is the last listed: kept",
            snapshots: &[(10, 48)],
            deleted: &[],
            floor: Some(0),
            l1_left: &[5, 10, 15, 20, 25],
        },
        Case {
            name: "all recent: nothing deleted, floor 0",
            snapshots: &[(10, 2), (20, 1)],
            deleted: &[],
            floor: Some(0),
            l1_left: &[5, 10, 15, 20, 25],
        },
        Case {
            name: "one expired: floor is its MaxTXID",
            snapshots: &[(10, 48), (20, 2)],
            deleted: &[10],
            floor: Some(10),
            l1_left: &[10, 15, 20, 25],
        },
        Case {
            name: "two expired: floor is the newest deleted one's MaxTXID",
            snapshots: &[(10, 48), (20, 30), (30, 2)],
            deleted: &[10, 20],
            floor: Some(20),
            l1_left: &[20, 25],
        },
        Case {
            name: "all expired: the last listed stays",
            snapshots: &[(10, 72), (20, 48), (30, 30)],
            deleted: &[10, 20],
            floor: Some(20),
            l1_left: &[20, 25],
        },
        Case {
            name: "floor past every level-1 file: the last one stays",
            snapshots: &[(10, 48), (30, 30), (40, 1)],
            deleted: &[10, 30],
            floor: Some(30),
            l1_left: &[25],
        },
        Case {
            name: "first listed is recent: floor 0 though a later one expires",
            snapshots: &[(10, 2), (20, 48), (30, 1)],
            deleted: &[20],
            floor: Some(0),
            l1_left: &[5, 10, 15, 20, 25],
        },
    ];

    async fn snapshot_fixture(case: &Case) -> Fixture {
        let fx = Fixture::new();
        for &(max, age) in case.snapshots {
            fx.put(9, 1, max, secs_ms(NOW - age * HOUR)).await;
        }
        for min in [1, 6, 11, 16, 21] {
            fx.put(1, min, min + 4, secs_ms(min)).await;
        }
        fx.put(2, 1, 15, secs_ms(100)).await;
        fx.put(2, 16, 25, secs_ms(200)).await;
        fx.put(3, 1, 5, secs_ms(300)).await; // beyond the configured levels
        for t in 1..=3 {
            fx.put(0, t, t, secs_ms(t)).await;
        }
        fx
    }

    fn maxes(ids: &[FileId]) -> Vec<u64> {
        ids.iter().map(|id| id.max_txid.get()).collect()
    }

    #[tokio::test]
    async fn snapshot_retention_floor_rule() {
        for case in CASES {
            let fx = snapshot_fixture(case).await;
            let report = enforce_snapshot_retention(fx.client(), DAY, 2, secs(NOW), true, None)
                .await
                .unwrap();
            let name = case.name;
            assert_eq!(report.floor.map(TxId::get), case.floor, "{name}");
            let deleted_snaps: Vec<FileId> = report
                .remote
                .iter()
                .copied()
                .filter(|id| id.level == 9)
                .collect();
            assert_eq!(maxes(&deleted_snaps), case.deleted, "{name}");
            let left: Vec<u64> = case
                .snapshots
                .iter()
                .map(|s| s.0)
                .filter(|m| !case.deleted.contains(m))
                .collect();
            assert_eq!(maxes(&fx.list(9).await), left, "{name}");
            assert_eq!(maxes(&fx.list(1).await), case.l1_left, "{name}");
            // Level 2: 1-15 goes when the floor passes 15; 16-25 is last.
            let l2_left: &[u64] = if case.floor.unwrap_or(0) > 15 {
                &[25]
            } else {
                &[15, 25]
            };
            assert_eq!(maxes(&fx.list(2).await), l2_left, "{name}");
            assert_eq!(
                fx.list(3).await,
                [fid(3, 1, 5)],
                "{name}: level 3 is not configured"
            );
            assert_eq!(
                fx.list(0).await,
                l0_ids(1, 3),
                "{name}: level 0 is not touched"
            );
            assert!(
                report.kept_remote.is_empty() && report.local.is_empty(),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn snapshot_retention_disabled_keeps_remote_files_but_removes_local_copies() {
        let case = &CASES[4]; // two expired, floor 20
        let fx = snapshot_fixture(case).await;
        let ltx = fx.local_l0.parent().unwrap().to_path_buf();
        for (level, id) in [(9, fid(9, 1, 10)), (1, fid(1, 1, 5))] {
            std::fs::create_dir_all(ltx.join(level.to_string())).unwrap();
            std::fs::write(ltx.join(level.to_string()).join(id.file_name()), b"x").unwrap();
        }
        let report =
            enforce_snapshot_retention(fx.client(), DAY, 2, secs(NOW), false, Some(&fx.local_l0))
                .await
                .unwrap();
        assert!(report.remote.is_empty());
        assert_eq!(
            report.kept_remote,
            [
                fid(9, 1, 10),
                fid(9, 1, 20),
                fid(1, 1, 5),
                fid(1, 6, 10),
                fid(1, 11, 15),
                fid(2, 1, 15)
            ]
        );
        assert_eq!(
            report.local,
            [
                ltx.join("9").join(fid(9, 1, 10).file_name()),
                ltx.join("1").join(fid(1, 1, 5).file_name())
            ]
        );
        assert_eq!(maxes(&fx.list(9).await), [10, 20, 30]);
        assert_eq!(fx.list(1).await.len(), 5);
        assert_eq!(fx.list(2).await.len(), 2);
    }

    /// L0 TXIDs 1..=10 created at 100 s × TXID after midnight, each with a
    /// local copy; level 1 covers 1..=`l1_max`.
    async fn l0_fixture(l1_max: Option<u64>) -> Fixture {
        let fx = Fixture::new();
        for t in 1..=10 {
            let ts = secs_ms(100 * t);
            fx.put(0, t, t, ts).await;
            let bytes = ltx_bytes(t, t, 1, ts, &[(1, 0)]);
            std::fs::write(fx.local_l0.join(fid(0, t, t).file_name()), bytes).unwrap();
        }
        if let Some(max) = l1_max {
            fx.put(1, 1, max, secs_ms(100 * max)).await;
        }
        fx
    }

    fn local_l0_names(ids: &[FileId]) -> Vec<String> {
        ids.iter().map(FileId::file_name).collect()
    }

    /// Five minutes of retention at 1000 s: the threshold is 700 s (TXID 7).
    const RETAIN: Duration = Duration::from_secs(300);

    async fn l0_retention(fx: &Fixture, enabled: bool) -> RetentionReport {
        enforce_l0_retention(fx.client(), RETAIN, secs(1000), enabled, Some(&fx.local_l0))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn l0_files_go_once_compacted_and_old_enough() {
        // Level 1 covers 1..=6; TXID 7 (700 s) is exactly at the threshold,
        // 8 is newer: the walk stops there.
        let fx = l0_fixture(Some(6)).await;
        let report = l0_retention(&fx, true).await;
        assert_eq!(report.remote, l0_ids(1, 6));
        assert_eq!(report.local.len(), 6);
        assert_eq!(fx.list(0).await, l0_ids(7, 10));
        assert_eq!(fx.local_names(), local_l0_names(&l0_ids(7, 10)));
    }

    #[tokio::test]
    async fn uncompacted_l0_files_stay_however_old() {
        let fx = l0_fixture(Some(3)).await;
        let report = l0_retention(&fx, true).await;
        assert_eq!(report.remote, l0_ids(1, 3));
        assert_eq!(fx.list(0).await, l0_ids(4, 10));
        // 1..=3 go, 4..=7 are old enough but not in level 1, 8..=10 are
        // newer than the threshold (the litestream_l0_retention_files_total
        // gauge, CLI_CONFIG.md §6).
        let scan = L0Scan {
            eligible: 3,
            not_compacted: 4,
            too_recent: 3,
        };
        assert_eq!(report.l0_scan, Some(scan));
    }

    #[tokio::test]
    async fn recent_l0_files_stay_though_compacted() {
        let fx = l0_fixture(Some(10)).await;
        let report = enforce_l0_retention(
            fx.client(),
            Duration::from_secs(950),
            secs(1000),
            true,
            Some(&fx.local_l0),
        )
        .await
        .unwrap();
        // Threshold 50 s: even TXID 1 (100 s) is too recent.
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(fx.list(0).await, l0_ids(1, 10));
    }

    #[tokio::test]
    async fn the_newest_l0_file_always_survives() {
        // Everything is compacted and old: all but the last go.
        let fx = l0_fixture(Some(10)).await;
        let report =
            enforce_l0_retention(fx.client(), RETAIN, secs(10_000), true, Some(&fx.local_l0))
                .await
                .unwrap();
        assert_eq!(report.remote, l0_ids(1, 9));
        assert_eq!(fx.list(0).await, l0_ids(10, 10));
        assert_eq!(fx.local_names(), local_l0_names(&l0_ids(10, 10)));
    }

    #[tokio::test]
    async fn nothing_happens_without_level_1_or_with_zero_retention() {
        let fx = l0_fixture(None).await;
        assert!(l0_retention(&fx, true).await.is_empty());
        let fx = l0_fixture(Some(6)).await;
        let report = enforce_l0_retention(
            fx.client(),
            Duration::ZERO,
            secs(1000),
            true,
            Some(&fx.local_l0),
        )
        .await
        .unwrap();
        assert!(report.is_empty());
        assert_eq!(fx.list(0).await, l0_ids(1, 10));
        assert_eq!(fx.local_names().len(), 10);
    }

    #[tokio::test]
    async fn l0_retention_disabled_keeps_remote_files_but_removes_local_copies() {
        let fx = l0_fixture(Some(6)).await;
        let report = l0_retention(&fx, false).await;
        assert!(report.remote.is_empty());
        assert_eq!(report.kept_remote, l0_ids(1, 6));
        assert_eq!(fx.list(0).await, l0_ids(1, 10));
        assert_eq!(fx.local_names(), local_l0_names(&l0_ids(7, 10)));
        // A second pass finds the local copies gone and reports no removal.
        let again = l0_retention(&fx, false).await;
        assert!(again.local.is_empty());
    }

    #[tokio::test]
    async fn files_without_a_creation_time_are_dated_by_their_local_copy() {
        let fx = l0_fixture(Some(10)).await;
        let stamp = |path: PathBuf, t: SystemTime| {
            let f = std::fs::File::options().write(true).open(path).unwrap();
            f.set_times(std::fs::FileTimes::new().set_modified(t))
                .unwrap();
        };
        // TXIDs 1 and 2 lose their remote creation time. 1's local copy is
        // old; 2 has no local copy (taken as the threshold: old enough); 3's
        // remote time is old too. 4 loses its time and its local copy is
        // recent: the walk stops there.
        for t in [1, 2, 4] {
            stamp(fx.replica.path(fid(0, t, t)), UNIX_EPOCH);
        }
        stamp(fx.local_l0.join(fid(0, 1, 1).file_name()), secs(10));
        std::fs::remove_file(fx.local_l0.join(fid(0, 2, 2).file_name())).unwrap();
        stamp(fx.local_l0.join(fid(0, 4, 4).file_name()), secs(990));
        let report = l0_retention(&fx, true).await;
        assert_eq!(report.remote, l0_ids(1, 3));
        assert_eq!(fx.list(0).await, l0_ids(4, 10));
    }
}
