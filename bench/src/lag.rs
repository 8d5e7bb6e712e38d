//! Replication lag, the same way for any replicator: the writer stores its
//! sequence number in a marker row in every transaction; this poller watches
//! each replica's level-0 directory, decodes every new LTX file with the
//! `ltx` crate, and takes the newest marker found in its pages. Every commit
//! up to that sequence was durable when the file appeared. (In Litestream
//! 0.5 a TXID counts LTX files, not SQLite transactions, so TXIDs cannot be
//! compared with commits.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::data;

/// Directory scan period; the lag figures are precise to about this much.
/// Cheap: a new file costs one read and the decoding of a single page.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Per watched replica: when each newest marker was seen.
#[derive(Default, Clone)]
struct Watched {
    /// `(seen at, newest sequence durable)`, non-decreasing in both.
    events: Vec<(Instant, u64)>,
    best: u64,
}

/// A background poller of level-0 directories.
pub(crate) struct LagPoller {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<Vec<Watched>>>,
    handle: Option<JoinHandle<()>>,
}

impl LagPoller {
    /// Watches each of `l0_dirs` (one per database, in writer order);
    /// `marker_pages[i]` is the page of database `i`'s marker row.
    pub(crate) fn start(l0_dirs: Vec<PathBuf>, marker_pages: Vec<u32>) -> LagPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(vec![Watched::default(); l0_dirs.len()]));
        let handle = {
            let (stop, state) = (Arc::clone(&stop), Arc::clone(&state));
            std::thread::spawn(move || {
                let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); l0_dirs.len()];
                let mut page = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    for (i, dir) in l0_dirs.iter().enumerate() {
                        let marker_pgno = marker_pages.get(i).copied().unwrap_or(0);
                        scan(dir, marker_pgno, &mut seen[i], &mut page, |seq| {
                            if let Ok(mut st) = state.lock()
                                && seq > st[i].best
                            {
                                st[i].best = seq;
                                st[i].events.push((Instant::now(), seq));
                            }
                        });
                    }
                    std::thread::sleep(POLL_EVERY);
                }
            })
        };
        LagPoller {
            stop,
            state,
            handle: Some(handle),
        }
    }

    /// The newest durable sequence of each database.
    pub(crate) fn durable(&self) -> Vec<u64> {
        self.state
            .lock()
            .map(|st| st.iter().map(|w| w.best).collect())
            .unwrap_or_default()
    }

    /// Waits until every database `i` has `targets[i]` durable, or `timeout`.
    /// Returns whether they all got there.
    pub(crate) fn wait_for(&self, targets: &[u64], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.durable();
            if d.iter().zip(targets).all(|(have, want)| have >= want) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Stops polling and computes the lag of every commit.
    pub(crate) fn finish(mut self, commits: &[Vec<Instant>], epoch: Instant) -> LagReport {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let st = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        let mut lags_ms = Vec::new();
        let mut series = Vec::new();
        let mut missing = 0u64;
        for (db, times) in commits.iter().enumerate() {
            let events = st.get(db).map(|w| w.events.as_slice()).unwrap_or(&[]);
            let mut e = 0;
            for (i, committed) in times.iter().enumerate() {
                let seq = i as u64 + 1;
                while e < events.len() && events[e].1 < seq {
                    e += 1;
                }
                let Some(&(seen, _)) = events.get(e) else {
                    missing += 1;
                    continue;
                };
                let lag = seen.saturating_duration_since(*committed).as_secs_f64() * 1e3;
                lags_ms.push(lag);
                series.push((
                    committed.saturating_duration_since(epoch).as_secs_f64(),
                    lag,
                ));
            }
        }
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut sorted = lags_ms.clone();
        sorted.sort_by(f64::total_cmp);
        LagReport {
            p50_ms: percentile(&sorted, 0.50),
            p99_ms: percentile(&sorted, 0.99),
            max_ms: sorted.last().copied(),
            missing,
            series: downsample(series, 2000),
        }
    }
}

impl Drop for LagPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Lag of a run's commits (commit → durable in the replica).
#[derive(Clone, Debug, Default)]
pub(crate) struct LagReport {
    /// Median, milliseconds.
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    pub(crate) p99_ms: Option<f64>,
    /// Worst, milliseconds.
    pub(crate) max_ms: Option<f64>,
    /// Commits never seen in the replica.
    pub(crate) missing: u64,
    /// `(seconds since the run started, lag ms)` for plots.
    pub(crate) series: Vec<(f64, f64)>,
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}

/// At most about `max` points, evenly spaced by index, keeping the last.
pub(crate) fn downsample<T: Copy>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max {
        return v;
    }
    let step = v.len().div_ceil(max);
    let mut out: Vec<T> = v.iter().step_by(step).copied().collect();
    if let Some(last) = v.last() {
        out.push(*last);
    }
    out
}

/// Decodes the LTX files of `dir` not seen before and reports the newest
/// marker of each. A file that fails to decode is retried on the next scan.
fn scan(
    dir: &Path,
    marker_pgno: u32,
    seen: &mut HashSet<String>,
    page: &mut Vec<u8>,
    mut found: impl FnMut(u64),
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ltx::parse_file_name(n).is_some() && !seen.contains(n))
        .collect();
    names.sort();
    for name in names {
        if let Some(best) = newest_marker(&dir.join(&name), marker_pgno, page) {
            if let Some(seq) = best {
                found(seq);
            }
            seen.insert(name);
        }
    }
}

/// `Some(newest marker or None)` for a complete file, `None` when it could
/// not be read (yet). Every commit rewrites the marker row, so a file holds
/// the marker's page whenever it holds a marker: that one page, found
/// through the page index (LTX.md §7), is all that is decoded. Files
/// without a usable index entry are decoded whole.
fn newest_marker(path: &Path, marker_pgno: u32, page: &mut Vec<u8>) -> Option<Option<u64>> {
    let bytes = std::fs::read(path).ok()?;
    let header = *ltx::Decoder::new(bytes.as_slice()).ok()?.header();
    page.resize(header.page_size as usize, 0);
    if marker_pgno != 0
        && let Some(found) = marker_from_index(&bytes, marker_pgno, page)
    {
        return Some(found);
    }
    let mut dec = ltx::Decoder::new(bytes.as_slice()).ok()?;
    let mut best: Option<u64> = None;
    while let Some(_pgno) = dec.next_page(page).ok()? {
        if let Some(seq) = data::find_marker(page) {
            best = Some(best.map_or(seq, |b| b.max(seq)));
        }
    }
    dec.finish().ok()?;
    Some(best)
}

/// The marker in page `pgno` of a complete LTX file with LZ4 block pages:
/// `Some(None)` when the file does not hold that page, `None` when the
/// index or the page cannot be read this way.
fn marker_from_index(bytes: &[u8], pgno: u32, page: &mut [u8]) -> Option<Option<u64>> {
    let ltx::TailIndex::Complete(entries) = ltx::read_page_index(bytes, bytes.len() as u64).ok()?
    else {
        return None;
    };
    let Some(entry) = entries.iter().find(|e| e.pgno == pgno) else {
        return Some(None);
    };
    let start = usize::try_from(entry.offset).ok()?;
    let end = start.checked_add(usize::try_from(entry.size).ok()?)?;
    let frame = bytes.get(start..end)?;
    // Page header (page number, flags), then the block's size (LTX.md §6).
    let size = u32::from_be_bytes(frame.get(6..10)?.try_into().ok()?) as usize;
    let block = frame.get(10..10usize.checked_add(size)?)?;
    let n = lz4_flex::block::decompress_into(block, page).ok()?;
    (n == page.len()).then(|| data::find_marker(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_downsampling() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
        let d = downsample((0..10_000).collect::<Vec<u32>>(), 100);
        assert!(d.len() <= 101 && d.last() == Some(&9_999));
    }

    fn ltx_file(pages: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let h = ltx::Header {
            flags: ltx::HeaderFlags::NO_CHECKSUM,
            page_size: 4096,
            commit: 10,
            min_txid: ltx::TxId::new(5),
            max_txid: ltx::TxId::new(5),
            timestamp: 1_700_000_000_000,
            ..ltx::Header::default()
        };
        let mut enc = ltx::Encoder::new(Vec::new(), &h).unwrap();
        for (pgno, data) in pages {
            enc.encode_page(*pgno, data).unwrap();
        }
        enc.finish(ltx::Checksum::ZERO).unwrap().0
    }

    #[test]
    fn the_marker_page_alone_is_found_through_the_index() {
        let noise = |seed: u8| -> Vec<u8> {
            let mut x = u64::from(seed) | 1;
            (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let mut marked = noise(3);
        marked[1000..1016].copy_from_slice(&data::marker(77));
        // A marker elsewhere than the marker page is not the marker row.
        let mut stray = noise(4);
        stray[8..24].copy_from_slice(&data::marker(99));
        let file = ltx_file(&[(2, noise(1)), (4, marked), (7, stray)]);
        let mut page = vec![0u8; 4096];
        assert_eq!(marker_from_index(&file, 4, &mut page), Some(Some(77)));
        assert_eq!(marker_from_index(&file, 5, &mut page), Some(None));
        assert_eq!(
            marker_from_index(&file[..file.len() - 1], 4, &mut page),
            None
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000005-0000000000000005.ltx");
        std::fs::write(&path, &file).unwrap();
        assert_eq!(newest_marker(&path, 4, &mut page), Some(Some(77)));
        // Without the page number: every page, the newest marker anywhere.
        assert_eq!(newest_marker(&path, 0, &mut page), Some(Some(99)));
    }
}
