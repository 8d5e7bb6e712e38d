//! Replication lag of one database: how long committed changes wait before
//! the replica holds them.
//!
//! The monitor reports when it first noticed the WAL change (an inotify
//! wake, or the start of the sync that found it) and which L0 TXIDs that
//! sync wrote; the uploader's published replica position clears them. The
//! gauge is the age of the oldest change still waiting, computed when it is
//! read, so it keeps growing while uploads fail; the histogram records each
//! L0 file's "seen → durable in the replica" time once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ltx::TxId;

use super::registry::{Gauge, Histogram};

/// Buckets of the per-file latency histogram, seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One L0 file not yet confirmed on the replica.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    txid: TxId,
    since: Instant,
    /// Whether its latency goes into the histogram: not for a position
    /// inherited from a previous run, whose real start is unknown.
    observe: bool,
}

#[derive(Debug, Default)]
struct State {
    /// First wake-up since the last sync that wrote or found nothing.
    woke: Option<Instant>,
    /// Whether the last sync failed: then the changes behind `woke` are
    /// waiting too, with no TXID yet.
    failing: bool,
    waiting: VecDeque<Waiting>,
    replica: TxId,
}

/// Lag bookkeeping of one database. The lock is taken once per sync, per
/// replica confirmation and per scrape.
#[derive(Debug)]
pub struct LagTracker {
    state: Mutex<State>,
    gauge: Arc<Gauge>,
    latency: Arc<Histogram>,
}

impl LagTracker {
    pub(crate) fn new(gauge: Arc<Gauge>, latency: Arc<Histogram>) -> LagTracker {
        LagTracker {
            state: Mutex::default(),
            gauge,
            latency,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The monitor was woken by a change of the WAL.
    pub fn woke(&self, at: Instant) {
        self.state().woke.get_or_insert(at);
    }

    /// A sync that started at `started` succeeded, wrote `written` (oldest
    /// first) and left the local position at `position`.
    pub fn synced(&self, written: &[TxId], position: TxId, started: Instant) {
        let now = Instant::now();
        let mut s = self.state();
        let since = s.woke.take().unwrap_or(started).min(started);
        s.failing = false;
        let newest = s.waiting.back().map(|w| w.txid).unwrap_or(s.replica);
        for &txid in written {
            if txid <= s.replica {
                // Confirmed already (a file streamed to the replica).
                self.latency
                    .observe(now.duration_since(since).as_secs_f64());
            } else {
                s.waiting.push_back(Waiting {
                    txid,
                    since,
                    observe: true,
                });
            }
        }
        let newest = s.waiting.back().map(|w| w.txid).unwrap_or(newest);
        if position > newest && position > s.replica {
            // Staged by an earlier run and perhaps never uploaded.
            s.waiting.push_back(Waiting {
                txid: position,
                since: started,
                observe: false,
            });
        }
    }

    /// A sync failed; whatever woke the monitor is still waiting. With no
    /// wake-up recorded the lag counts from this sync's start: while syncs
    /// fail, nothing committed since can be shown to be replicated.
    pub fn sync_failed(&self, started: Instant) {
        let mut s = self.state();
        s.woke.get_or_insert(started);
        s.failing = true;
    }

    /// The replica holds everything up to `replica`.
    pub fn confirmed(&self, replica: TxId, at: Instant) {
        let mut s = self.state();
        s.replica = s.replica.max(replica);
        while let Some(w) = s.waiting.front().copied() {
            if w.txid > replica {
                break;
            }
            if w.observe {
                self.latency
                    .observe(at.saturating_duration_since(w.since).as_secs_f64());
            }
            s.waiting.pop_front();
        }
    }

    /// How long the oldest change not yet on the replica has waited (zero
    /// when there is none).
    pub fn lag(&self, now: Instant) -> Duration {
        let s = self.state();
        let oldest = s
            .waiting
            .front()
            .map(|w| w.since)
            .into_iter()
            .chain(s.woke.filter(|_| s.failing))
            .min();
        oldest.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// Sets the gauge from [`lag`](Self::lag) (before each scrape).
    pub(crate) fn refresh(&self, now: Instant) {
        self.gauge.set(self.lag(now).as_secs_f64());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::metrics::Registry;

    fn tracker() -> (LagTracker, Arc<Histogram>) {
        let r = Registry::new();
        let h = r.histogram_vec("h", "h", &[], LATENCY_BUCKETS).with(&[]);
        (LagTracker::new(r.gauge("g", "g"), h.clone()), h)
    }

    fn t(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn lag_runs_from_the_wake_until_the_replica_confirms() {
        let (lag, h) = tracker();
        let b = Instant::now();
        lag.woke(t(b, 0));
        lag.woke(t(b, 50)); // later wakes do not move the start
        lag.synced(&[TxId::new(1), TxId::new(2)], TxId::new(2), t(b, 100));
        assert_eq!(lag.lag(t(b, 300)), Duration::from_millis(300));
        lag.confirmed(TxId::new(1), t(b, 400));
        // TXID 2 was seen at the same wake: still waiting since then.
        assert_eq!(lag.lag(t(b, 500)), Duration::from_millis(500));
        lag.confirmed(TxId::new(2), t(b, 600));
        assert_eq!(lag.lag(t(b, 700)), Duration::ZERO);
        let (buckets, sum) = h.snapshot();
        assert_eq!(buckets.last().unwrap().1, 2);
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn a_failing_sync_counts_from_its_wake() {
        let (lag, _) = tracker();
        let b = Instant::now();
        lag.woke(t(b, 10));
        assert_eq!(lag.lag(t(b, 20)), Duration::ZERO, "not failing yet");
        lag.sync_failed(t(b, 20));
        assert_eq!(lag.lag(t(b, 1010)), Duration::from_secs(1));
        lag.synced(&[], TxId::ZERO, t(b, 2000));
        assert_eq!(lag.lag(t(b, 3000)), Duration::ZERO);
    }

    #[test]
    fn an_inherited_position_waits_but_is_not_a_latency_sample() {
        let (lag, h) = tracker();
        let b = Instant::now();
        lag.synced(&[], TxId::new(7), t(b, 0));
        assert_eq!(lag.lag(t(b, 200)), Duration::from_millis(200));
        lag.confirmed(TxId::new(7), t(b, 300));
        assert_eq!(lag.lag(t(b, 400)), Duration::ZERO);
        assert_eq!(h.snapshot().0.last().unwrap().1, 0);
        // Already on the replica: nothing waits.
        lag.synced(&[], TxId::new(7), t(b, 500));
        assert_eq!(lag.lag(t(b, 600)), Duration::ZERO);
    }
}
