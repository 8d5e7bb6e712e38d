//! One compaction step: merge what level L-1 has beyond level L's newest
//! file into one new level-L file (REPLICA_LAYOUT.md §6, LTX.md §12).

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use backends::{ByteRange, FileId, FileInfo, MAX_LEVEL, ReplicaClient};
use ltx::{Compactor, Header, HeaderFlags, TxId};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::clock::prev_boundary;
use super::config::MAX_COMPACTION_LEVEL;
use super::error::CompactError;
use super::stream::{BlockingReader, chunk_channel};

/// What one [`compact_one_level`] call did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LevelOutcome {
    /// New files were written at the level (one, unless more than
    /// `MAX_FAN_IN` inputs were waiting).
    Compacted {
        /// The newest file written.
        file: FileInfo,
        /// How many source files they merge.
        inputs: usize,
        /// How many of those were read from the local metadata directory
        /// rather than the replica.
        local_inputs: usize,
    },
    /// The level's newest file was created in the current period already.
    TooEarly {
        /// That file.
        newest: FileInfo,
    },
    /// The level below holds nothing the level does not cover yet.
    UpToDate,
}

/// The newest known file of each level of one replica, so that repeated
/// steps need not list the destination level again.
///
/// Only files this process saw are cached. Retention never deletes the newest
/// file of a level, so an entry stays right unless something else rewrites
/// the replica; call [`clear`](Self::clear) then.
#[derive(Debug, Default)]
pub struct NewestFiles {
    // Indexed by level; guards nothing but itself.
    levels: Mutex<[Option<FileInfo>; MAX_LEVEL as usize + 1]>,
}

impl NewestFiles {
    /// The cached newest file of `level`.
    pub fn get(&self, level: u8) -> Option<FileInfo> {
        let levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        levels.get(usize::from(level)).copied().flatten()
    }

    /// Records `file` as its level's newest unless a newer one is known.
    pub fn observe(&self, file: FileInfo) {
        let mut levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = levels.get_mut(usize::from(file.id.level)) {
            let newer = slot.is_none_or(|old| file.id.max_txid >= old.id.max_txid);
            if newer {
                *slot = Some(file);
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        *levels = Default::default();
    }
}

/// The newest file of a listing: the one with the highest MaxTXID.
pub(crate) fn newest(files: &[FileInfo]) -> Option<FileInfo> {
    files.iter().max_by_key(|f| f.id.max_txid).copied()
}

/// Runs one compaction step into `level` (1..=8) at time `now`
/// (REPLICA_LAYOUT.md §6):
///
/// 1. If the level's newest file was created after the start of the current
///    period (`now` rounded down to `interval`), the step is
///    [`TooEarly`](LevelOutcome::TooEarly).
/// 2. Level L-1 is listed from the newest file's MaxTXID + 1 (all of it when
///    the level is empty), keeping files that end at or before `through`
///    when it is given; an empty answer is
///    [`UpToDate`](LevelOutcome::UpToDate). (The spec's separate "source
///    newest ≤ destination MinTXID" test can only hold when this listing is
///    empty, so it costs no extra listing here.)
/// 3. The files must chain (each starts at or before the previous end + 1 and
///    extends it), else [`CompactError::NotContiguous`] names the pair and
///    nothing is written.
/// 4. They are merged with NoChecksum output and uploaded as
///    `<level>/<min>-<max>.ltx`, its timestamp the newest input's. For
///    level 1, inputs are read from `local_l0` (the metadata directory's
///    `ltx/0`) where a copy exists, else from the replica.
///
/// The merge runs on a blocking thread and streams into the upload through a
/// bounded channel: memory stays at one page and a read buffer per input
/// plus a few upload chunks, whatever the size. `cache` remembers the newest
/// file per level between calls (pass a fresh one to always list).
pub async fn compact_one_level(
    client: &dyn ReplicaClient,
    level: u8,
    interval: Duration,
    now: SystemTime,
    local_l0: Option<&Path>,
    through: Option<TxId>,
    cache: &NewestFiles,
) -> Result<LevelOutcome, CompactError> {
    if !(1..=MAX_COMPACTION_LEVEL).contains(&level) {
        return Err(CompactError::Config(format!(
            "level {level} cannot be compacted into: compaction levels are 1 to {MAX_COMPACTION_LEVEL}"
        )));
    }
    let src_level = level - 1;

    let dst = match cache.get(level) {
        Some(file) => Some(file),
        None => {
            let files = client
                .list(level, TxId::ZERO)
                .await
                .map_err(CompactError::backend("list", level))?;
            newest(&files)
        }
    };
    let seek = match dst {
        Some(dst) => {
            cache.observe(dst);
            if dst.created_at > prev_boundary(now, interval) {
                return Ok(LevelOutcome::TooEarly { newest: dst });
            }
            match dst.id.max_txid.next() {
                Some(next) => next,
                None => return Ok(LevelOutcome::UpToDate),
            }
        }
        None => TxId::ZERO,
    };

    let mut inputs = client
        .list(src_level, seek)
        .await
        .map_err(CompactError::backend("list", src_level))?;
    if let Some(through) = through {
        inputs.retain(|f| f.id.max_txid <= through);
    }
    let Some(first) = inputs.first() else {
        return Ok(LevelOutcome::UpToDate);
    };
    check_contiguous(level, &inputs)?;
    if let Some(dst) = dst
        && first.id.min_txid > seek
    {
        // The merge is still written: refusing would stall this level (and
        // level-0 retention behind it) for good, while a later snapshot
        // makes the replica restorable again.
        tracing::warn!(
            level,
            newest = %dst.id,
            next = %first.id,
            "level {src_level} does not continue level {level}: TXIDs {}..{} are missing",
            seek,
            TxId::new(first.id.min_txid.get() - 1),
        );
    }

    // A merge holds every input open with a page buffer each: past
    // MAX_FAN_IN inputs (a write flood between two level-1 steps makes
    // thousands of level-0 files) the level gets consecutive files.
    let mut newest = None;
    let mut local_inputs = 0;
    for chunk in inputs.chunks(MAX_FAN_IN) {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let id = FileId::new(level, first.id.min_txid, last.id.max_txid);
        let (file, local) = merge_and_upload(client, id, chunk, local_l0).await?;
        cache.observe(file);
        newest = Some(file);
        local_inputs += local;
    }
    match newest {
        Some(file) => Ok(LevelOutcome::Compacted {
            file,
            inputs: inputs.len(),
            local_inputs,
        }),
        None => Ok(LevelOutcome::UpToDate),
    }
}

/// Most inputs merged into one file.
pub(crate) const MAX_FAN_IN: usize = 128;

/// The rule of LTX.md §12 step 2, checked on the names before anything is
/// opened so the error can name both files.
fn check_contiguous(dst_level: u8, files: &[FileInfo]) -> Result<(), CompactError> {
    for pair in files.windows(2) {
        let (prev, next) = (pair[0].id, pair[1].id);
        let chains = next.min_txid.get() <= prev.max_txid.get().saturating_add(1)
            && next.max_txid > prev.max_txid;
        if !chains {
            return Err(CompactError::NotContiguous {
                dst_level,
                prev,
                next,
            });
        }
    }
    Ok(())
}

type Input = Box<dyn Read + Send>;

/// Opens every input (local level-0 copies first for level 1), merges them
/// on a blocking thread and uploads the output as `id`. Returns the written
/// file and how many inputs were local.
async fn merge_and_upload(
    client: &dyn ReplicaClient,
    id: FileId,
    inputs: &[FileInfo],
    local_l0: Option<&Path>,
) -> Result<(FileInfo, usize), CompactError> {
    let level = id.level;
    let src_level = level - 1;
    let handle = Handle::current();
    let mut readers: Vec<Input> = Vec::with_capacity(inputs.len());
    let mut local_inputs = 0;
    for file in inputs {
        let local_dir = local_l0.filter(|_| src_level == 0);
        if let Some(local) = open_local(local_dir, file.id).await {
            readers.push(Box::new(local));
            local_inputs += 1;
            continue;
        }
        let stream = client
            .open(file.id, ByteRange::ALL)
            .await
            .map_err(CompactError::backend("open", src_level))?;
        readers.push(Box::new(BlockingReader::new(handle.clone(), stream)));
    }

    let first = inputs.first().map_or(id, |f| f.id);
    let count = inputs.len();
    let merge_error = |source| CompactError::Merge {
        src_level,
        first,
        count,
        source,
    };
    let (mut writer, body) = chunk_channel();
    let (header_tx, header_rx) = oneshot::channel::<Header>();
    let task = tokio::task::spawn_blocking(move || -> ltx::Result<()> {
        let compactor = Compactor::new(readers, HeaderFlags::NO_CHECKSUM)?;
        if header_tx.send(*compactor.header()).is_err() {
            return Err(ltx::Error::Io(io::Error::other("compaction abandoned")));
        }
        match compactor.compact(&mut writer) {
            Ok(_) => Ok(writer.finish()?),
            Err(e) => {
                writer.fail(io::Error::other(e.to_string()));
                Err(e)
            }
        }
    });
    let worker_stopped = |e: tokio::task::JoinError| CompactError::Worker {
        level,
        reason: e.to_string(),
    };

    let Ok(header) = header_rx.await else {
        // The worker failed before producing a header: nothing was uploaded.
        return Err(match task.await {
            Ok(Err(e)) => merge_error(e),
            Ok(Ok(())) => CompactError::Worker {
                level,
                reason: "finished without a header".into(),
            },
            Err(e) => worker_stopped(e),
        });
    };
    if header.min_txid != id.min_txid || header.max_txid != id.max_txid {
        drop(body);
        let _ = task.await;
        return Err(merge_error(ltx::Error::InvalidHeader(format!(
            "the merged headers cover {}-{} but the file names say {}",
            header.min_txid,
            header.max_txid,
            id.file_name()
        ))));
    }

    let (written, merged) = tokio::join!(client.write(id, header.timestamp, Box::pin(body)), task);
    let merged = match merged {
        Ok(result) => result.map_err(merge_error),
        Err(e) => Err(worker_stopped(e)),
    };
    match (written, merged) {
        (Ok(file), Ok(())) => Ok((file, local_inputs)),
        (Err(e), Ok(())) => Err(CompactError::backend("write", level)(e)),
        // The upload broke off first; the worker only saw the pipe close.
        (
            Err(e),
            Err(CompactError::Merge {
                source: ltx::Error::Io(io),
                ..
            }),
        ) if io.kind() == io::ErrorKind::BrokenPipe => {
            Err(CompactError::backend("write", level)(e))
        }
        (Err(_), Err(merge)) => Err(merge),
        (Ok(file), Err(merge)) => {
            // The stream ends in an error on any merge failure, so a backend
            // should never accept it; if one did, take it back.
            let _ = client.delete(&[file.id]).await;
            Err(merge)
        }
    }
}

/// The local copy of a level-0 file, if `dir` is given and has one. A copy
/// that exists but cannot be opened is skipped with a warning: the replica
/// has the same bytes.
async fn open_local(dir: Option<&Path>, id: FileId) -> Option<std::fs::File> {
    let path = dir?.join(id.file_name());
    match tokio::fs::File::open(&path).await {
        Ok(file) => Some(file.into_std().await),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), "reading the replica's copy instead: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compact::testutil::{Fixture, decode, fid, secs, secs_ms};

    const L1: Duration = Duration::from_secs(30);
    const L2: Duration = Duration::from_secs(300);

    async fn run(
        fx: &Fixture,
        level: u8,
        interval: Duration,
        now: SystemTime,
        local: bool,
        cache: &NewestFiles,
    ) -> Result<LevelOutcome, CompactError> {
        let local = local.then_some(fx.local_l0.as_path());
        compact_one_level(fx.client(), level, interval, now, local, None, cache).await
    }

    fn written(outcome: LevelOutcome) -> (FileInfo, usize, usize) {
        match outcome {
            LevelOutcome::Compacted {
                file,
                inputs,
                local_inputs,
            } => (file, inputs, local_inputs),
            other => panic!("expected a compaction, got {other:?}"),
        }
    }

    /// Snapshot of pages 1..=4 at TXID 1, then increments that change and
    /// add pages, at `t0 + 1 s`, `+ 2 s`, ….
    async fn three_commits(fx: &mut Fixture, t0: u64) {
        fx.commit(&[(1, 1), (2, 1), (3, 1), (4, 1)], secs_ms(t0 + 1))
            .await;
        fx.commit(&[(2, 2), (5, 2)], secs_ms(t0 + 2)).await;
        fx.commit(&[(1, 3), (5, 3)], secs_ms(t0 + 3)).await;
    }

    #[tokio::test]
    async fn l1_output_is_the_merge_of_l0_named_by_range_stamped_by_newest_input() {
        let mut fx = Fixture::new();
        three_commits(&mut fx, 0).await;
        let cache = NewestFiles::default();
        let out = run(&fx, 1, L1, secs(10), true, &cache).await.unwrap();
        let (file, inputs, local_inputs) = written(out);
        assert_eq!(file.id, fid(1, 1, 3));
        assert_eq!((inputs, local_inputs), (3, 3));
        assert!(
            fx.replica
                .root()
                .join("ltx/1/0000000000000001-0000000000000003.ltx")
                .is_file()
        );

        let (header, pages) = decode(&fx.read(file.id));
        assert_eq!(header.flags, HeaderFlags::NO_CHECKSUM);
        assert_eq!(
            (header.min_txid, header.max_txid),
            (TxId::new(1), TxId::new(3))
        );
        assert_eq!(header.timestamp, secs_ms(3), "the newest input's timestamp");
        assert_eq!(header.commit, 5);
        assert_eq!((header.wal_offset, header.wal_size), (0, 0));
        // A merge starting at TXID 1 is a snapshot: every page, newest wins.
        assert_eq!(pages.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(pages == fx.expected(1, 3));
        // The backend records the header timestamp as the creation time.
        let listed = fx.replica.list(1, TxId::ZERO).await.unwrap();
        assert_eq!(listed[0].created_at, secs(3));
        assert_eq!(cache.get(1).map(|f| f.id), Some(file.id));
    }

    #[tokio::test]
    async fn more_inputs_than_the_fan_in_make_consecutive_files() {
        let mut fx = Fixture::new();
        let n = MAX_FAN_IN as u64 * 2 + 5;
        fx.commit(&[(1, 1), (2, 1), (3, 1)], secs_ms(1)).await;
        for t in 2..=n {
            let pgno = (t % 7) as u32 + 1;
            fx.commit(&[(pgno, t as u8)], secs_ms(1) + t as i64).await;
        }
        let cache = NewestFiles::default();
        let out = run(&fx, 1, L1, secs(3600), true, &cache).await.unwrap();
        let (file, inputs, local_inputs) = written(out);
        assert_eq!((inputs, local_inputs), (n as usize, n as usize));
        let fan = MAX_FAN_IN as u64;
        let ids: Vec<FileId> = fx
            .replica
            .list(1, TxId::ZERO)
            .await
            .unwrap()
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(
            ids,
            [
                fid(1, 1, fan),
                fid(1, fan + 1, 2 * fan),
                fid(1, 2 * fan + 1, n)
            ]
        );
        assert_eq!(
            file.id,
            fid(1, 2 * fan + 1, n),
            "the newest one is reported"
        );
        // Each file is the merge of its own inputs; applied in order they
        // give the database at TXID n.
        let mut db = BTreeMap::new();
        for id in &ids {
            let (header, pages) = decode(&fx.read(*id));
            assert_eq!(
                (header.min_txid, header.max_txid),
                (id.min_txid, id.max_txid)
            );
            assert!(pages == fx.expected(id.min_txid.get(), id.max_txid.get()));
            db.extend(pages);
        }
        assert!(db == fx.expected(1, n));
    }

    #[tokio::test]
    async fn a_second_run_in_the_same_period_does_nothing() {
        let mut fx = Fixture::new();
        three_commits(&mut fx, 0).await;
        let cache = NewestFiles::default();
        written(run(&fx, 1, L1, secs(10), true, &cache).await.unwrap());
        fx.commit(&[(3, 4)], secs_ms(12)).await;

        // Same period (00:00:00–00:00:30): the newest L1 file, stamped
        // 00:00:03, postdates the boundary. With or without the cache.
        for cache in [&cache, &NewestFiles::default()] {
            let out = run(&fx, 1, L1, secs(20), true, cache).await.unwrap();
            assert!(
                matches!(out, LevelOutcome::TooEarly { newest } if newest.id == fid(1, 1, 3)),
                "{out:?}"
            );
        }
        assert_eq!(fx.list(1).await, [fid(1, 1, 3)]);

        // Next period: TXID 4 goes into its own file.
        let (file, inputs, _) = written(run(&fx, 1, L1, secs(30), true, &cache).await.unwrap());
        assert_eq!((file.id, inputs), (fid(1, 4, 4), 1));
        let (header, pages) = decode(&fx.read(file.id));
        assert_eq!(header.timestamp, secs_ms(12));
        assert!(pages == fx.expected(4, 4));
        // Later in that period nothing is new (the newest L1 file is from
        // the previous period, so this is the "up to date" path).
        let out = run(&fx, 1, L1, secs(45), true, &cache).await.unwrap();
        assert_eq!(out, LevelOutcome::UpToDate);
        assert_eq!(fx.list(1).await, [fid(1, 1, 3), fid(1, 4, 4)]);
    }

    #[tokio::test]
    async fn l2_merges_l1_files_including_increments() {
        let mut fx = Fixture::new();
        let cache = NewestFiles::default();
        three_commits(&mut fx, 0).await;
        written(run(&fx, 1, L1, secs(30), true, &cache).await.unwrap());
        fx.commit(&[(4, 4), (6, 4)], secs_ms(31)).await;
        fx.commit(&[(6, 5), (7, 5)], secs_ms(32)).await;
        fx.commit(&[(2, 6)], secs_ms(33)).await;
        let (inc, _, _) = written(run(&fx, 1, L1, secs(60), true, &cache).await.unwrap());
        assert_eq!(inc.id, fid(1, 4, 6));
        let (header, pages) = decode(&fx.read(inc.id));
        assert!(!header.is_snapshot());
        assert_eq!(pages.keys().copied().collect::<Vec<_>>(), [2, 4, 6, 7]);
        assert!(pages == fx.expected(4, 6));

        let (file, inputs, local_inputs) =
            written(run(&fx, 2, L2, secs(300), true, &cache).await.unwrap());
        assert_eq!((file.id, inputs, local_inputs), (fid(2, 1, 6), 2, 0));
        let (header, pages) = decode(&fx.read(file.id));
        assert_eq!(header.timestamp, secs_ms(33));
        assert_eq!(header.commit, 7);
        assert!(pages == fx.expected(1, 6));
        assert_eq!(
            run(&fx, 2, L2, secs(301), true, &cache).await.unwrap(),
            LevelOutcome::UpToDate
        );
    }

    #[tokio::test]
    async fn local_l0_copies_are_read_before_the_replica() {
        let mut fx = Fixture::new();
        three_commits(&mut fx, 0).await;
        // Corrupt every remote L0 object in place (same length, one byte
        // flipped mid-file): only the local copies are still good.
        for id in fx.list(0).await {
            let path = fx.replica.path(id);
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }

        // Without the local directory the corruption is detected…
        let cache = NewestFiles::default();
        let err = run(&fx, 1, L1, secs(10), false, &cache).await.unwrap_err();
        assert!(
            matches!(err, CompactError::Merge { src_level: 0, .. }),
            "{err}"
        );
        assert!(
            fx.list(1).await.is_empty(),
            "a failed merge must write nothing"
        );
        let leftovers = std::fs::read_dir(fx.replica.level_dir(1))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(leftovers, 0, "no temporary file left behind");

        // …and with it the compaction succeeds from the local copies.
        let (file, inputs, local_inputs) =
            written(run(&fx, 1, L1, secs(10), true, &cache).await.unwrap());
        assert_eq!((file.id, inputs, local_inputs), (fid(1, 1, 3), 3, 3));
        assert!(decode(&fx.read(file.id)).1 == fx.expected(1, 3));
    }

    #[tokio::test]
    async fn missing_local_copies_are_read_from_the_replica() {
        let mut fx = Fixture::new();
        fx.commit(&[(1, 1), (2, 1)], secs_ms(1)).await;
        fx.commit_remote_only(&[(2, 2), (3, 2)], secs_ms(2)).await;
        fx.commit(&[(1, 3)], secs_ms(3)).await;
        let cache = NewestFiles::default();
        let (file, inputs, local_inputs) =
            written(run(&fx, 1, L1, secs(10), true, &cache).await.unwrap());
        assert_eq!((file.id, inputs, local_inputs), (fid(1, 1, 3), 3, 2));
        assert!(decode(&fx.read(file.id)).1 == fx.expected(1, 3));
    }

    #[tokio::test]
    async fn a_gap_in_l0_is_a_clear_error_and_writes_nothing() {
        let mut fx = Fixture::new();
        three_commits(&mut fx, 0).await;
        fx.commit(&[(1, 4)], secs_ms(4)).await;
        fx.replica.delete(&[fid(0, 2, 2)]).await.unwrap();
        std::fs::remove_file(fx.local_l0.join(fid(0, 2, 2).file_name())).unwrap();

        let cache = NewestFiles::default();
        let err = run(&fx, 1, L1, secs(10), true, &cache).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, CompactError::NotContiguous { dst_level: 1, prev, next }
                if prev == fid(0, 1, 1) && next == fid(0, 3, 3)),
            "{msg}"
        );
        assert!(
            msg.contains("0000000000000001-0000000000000001.ltx"),
            "{msg}"
        );
        assert!(
            msg.contains("0000000000000003-0000000000000003.ltx"),
            "{msg}"
        );
        assert!(fx.list(1).await.is_empty());
        assert!(!fx.replica.level_dir(1).exists());
    }

    #[tokio::test]
    async fn level_1_stops_at_what_the_uploader_confirmed() {
        // TXIDs 1–4 uploaded; a listing taken mid-upload shows 6 without 5.
        let mut fx = Fixture::new();
        three_commits(&mut fx, 0).await;
        fx.commit(&[(1, 4)], secs_ms(4)).await;
        fx.commit(&[(2, 5)], secs_ms(5)).await;
        fx.commit(&[(3, 6)], secs_ms(6)).await;
        fx.replica.delete(&[fid(0, 5, 5)]).await.unwrap();

        let cache = NewestFiles::default();
        let local = Some(fx.local_l0.as_path());
        let out = compact_one_level(
            fx.client(),
            1,
            L1,
            secs(10),
            local,
            Some(TxId::new(4)),
            &cache,
        )
        .await
        .unwrap();
        let (file, inputs, _) = written(out);
        assert_eq!((file.id, inputs), (fid(1, 1, 4), 4));
        assert!(decode(&fx.read(file.id)).1 == fx.expected(1, 4));

        // Nothing confirmed yet (a restart): nothing to compact.
        let mut fresh = Fixture::new();
        three_commits(&mut fresh, 0).await;
        let out = compact_one_level(
            fresh.client(),
            1,
            L1,
            secs(10),
            None,
            Some(TxId::ZERO),
            &NewestFiles::default(),
        )
        .await
        .unwrap();
        assert_eq!(out, LevelOutcome::UpToDate);
    }

    #[tokio::test]
    async fn large_outputs_stream_through_many_chunks() {
        let mut fx = Fixture::new();
        // About 1.5 MB of barely compressible pages: several upload chunks.
        let snapshot: Vec<(u32, u8)> = (1..=3000).map(|p| (p, 1)).collect();
        fx.commit(&snapshot, secs_ms(1)).await;
        let update: Vec<(u32, u8)> = (1..=3000).step_by(7).map(|p| (p, 2)).collect();
        fx.commit_remote_only(&update, secs_ms(2)).await;
        let cache = NewestFiles::default();
        let (file, _, local_inputs) =
            written(run(&fx, 1, L1, secs(10), true, &cache).await.unwrap());
        assert_eq!(local_inputs, 1);
        let chunks =
            crate::compact::stream::CHUNK_SIZE * (crate::compact::stream::CHANNEL_CHUNKS + 1);
        assert!(file.size > chunks as u64, "size {}", file.size);
        let (header, pages) = decode(&fx.read(file.id));
        assert_eq!(header.commit, 3000);
        assert!(pages == fx.expected(1, 2));
    }

    #[tokio::test]
    async fn levels_outside_one_to_eight_are_refused() {
        let fx = Fixture::new();
        let cache = NewestFiles::default();
        for level in [0, 9] {
            let err = run(&fx, level, L1, secs(0), false, &cache)
                .await
                .unwrap_err();
            assert!(matches!(err, CompactError::Config(_)), "{err}");
        }
    }

    #[test]
    fn the_cache_keeps_the_highest_max_txid() {
        let cache = NewestFiles::default();
        let info = |min, max| FileInfo {
            id: fid(2, min, max),
            size: 1,
            created_at: secs(0),
        };
        cache.observe(info(1, 5));
        cache.observe(info(1, 3));
        assert_eq!(cache.get(2).map(|f| f.id), Some(fid(2, 1, 5)));
        cache.observe(info(6, 9));
        assert_eq!(cache.get(2).map(|f| f.id), Some(fid(2, 6, 9)));
        assert_eq!(cache.get(1), None);
        cache.clear();
        assert_eq!(cache.get(2), None);
    }
}
