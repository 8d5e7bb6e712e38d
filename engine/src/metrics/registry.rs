//! Counters, gauges and histograms with labels.
//!
//! Values are atomics, so the hot path (a sync, an upload) never takes a
//! lock: callers look a labelled series up once and keep its `Arc`. A
//! family's mutex is taken only to add a new label set and to read the
//! series for a scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// An `f64` in an `AtomicU64` (its bit pattern).
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, d: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + d).to_bits())
            });
    }
}

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicF64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }

    /// Adds `d`; a negative or NaN amount is ignored (a counter never
    /// decreases).
    pub fn inc_by(&self, d: f64) {
        if d > 0.0 {
            self.0.add(d);
        }
    }

    /// Sets the value of a count kept elsewhere (the kernel's CPU time);
    /// a lower value than the current one is ignored.
    pub fn set_total(&self, v: f64) {
        if v > self.0.get() {
            self.0.set(v);
        }
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicF64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// Observations counted into buckets by upper bound.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    /// Per bucket, not cumulative; the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            counts,
            sum: AtomicF64::default(),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last, and the
    /// sum. The `+Inf` count is the total, so `_count` always agrees with
    /// the buckets of the same scrape.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
        let mut acc = 0u64;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((bound, acc));
        }
        (out, self.sum.get())
    }
}

/// What a family holds.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram(Arc<[f64]>),
}

impl Kind {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// One series of a family.
#[derive(Clone, Debug)]
pub(crate) enum Series {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
}

/// All series of one metric name.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) labels: Vec<String>,
    pub(crate) kind: Kind,
    /// Label values → series; guards only the map (values are atomics).
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Family {
    fn get_or_add(&self, values: &[&str]) -> Series {
        // A wrong number of values is a programming error; pad or cut so
        // the exposition stays well formed rather than panic.
        let key: Vec<String> = (0..self.labels.len())
            .map(|i| values.get(i).copied().unwrap_or_default().to_owned())
            .collect();
        let mut map = lock(&self.series);
        map.entry(key)
            .or_insert_with(|| match &self.kind {
                Kind::Counter => Series::Counter(Arc::default()),
                Kind::Gauge => Series::Gauge(Arc::default()),
                Kind::Histogram(b) => Series::Histogram(Arc::new(Histogram::new(b.clone()))),
            })
            .clone()
    }

    /// The series, sorted by label values.
    pub(crate) fn series(&self) -> Vec<(Vec<String>, Series)> {
        lock(&self.series)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Drops every series (for gauges that describe only the last scan).
    fn clear(&self) {
        lock(&self.series).clear();
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the map
/// itself is always consistent, so carry on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counters sharing a name, one per label set.
#[derive(Clone, Debug)]
pub struct CounterVec(Arc<Family>);

impl CounterVec {
    /// The counter for these label values (created at zero if new).
    pub fn with(&self, values: &[&str]) -> Arc<Counter> {
        match self.0.get_or_add(values) {
            Series::Counter(c) => c,
            _ => Arc::default(),
        }
    }
}

/// Gauges sharing a name, one per label set.
#[derive(Clone, Debug)]
pub struct GaugeVec(Arc<Family>);

impl GaugeVec {
    /// The gauge for these label values (created at zero if new).
    pub fn with(&self, values: &[&str]) -> Arc<Gauge> {
        match self.0.get_or_add(values) {
            Series::Gauge(g) => g,
            _ => Arc::default(),
        }
    }

    /// Forgets every label set.
    pub fn clear(&self) {
        self.0.clear();
    }
}

/// Histograms sharing a name and buckets, one per label set.
#[derive(Clone, Debug)]
pub struct HistogramVec(Arc<Family>);

impl HistogramVec {
    /// The histogram for these label values (created empty if new).
    pub fn with(&self, values: &[&str]) -> Arc<Histogram> {
        match self.0.get_or_add(values) {
            Series::Histogram(h) => h,
            Series::Counter(_) | Series::Gauge(_) => {
                Arc::new(Histogram::new(Arc::from(Vec::new())))
            }
        }
    }
}

/// Every family, in registration order.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn family(&self, name: &str, help: &str, labels: &[&str], kind: Kind) -> Arc<Family> {
        let mut families = lock(&self.families);
        // Registering a name again returns the same family, so two parts
        // of the daemon may ask for it independently.
        if let Some(f) = families.iter().find(|f| f.name == name) {
            return f.clone();
        }
        let f = Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            kind,
            series: Mutex::default(),
        });
        families.push(f.clone());
        f
    }

    /// A labelled counter family.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        CounterVec(self.family(name, help, labels, Kind::Counter))
    }

    /// A labelled gauge family.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        GaugeVec(self.family(name, help, labels, Kind::Gauge))
    }

    /// A labelled histogram family with these bucket upper bounds
    /// (ascending; `+Inf` is implied).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let kind = Kind::Histogram(Arc::from(buckets.to_vec()));
        HistogramVec(self.family(name, help, labels, kind))
    }

    /// An unlabelled counter.
    pub fn counter(&self, name: &str, help: &str) -> Arc<Counter> {
        self.counter_vec(name, help, &[]).with(&[])
    }

    /// An unlabelled gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Arc<Gauge> {
        self.gauge_vec(name, help, &[]).with(&[])
    }

    /// The families, in registration order.
    pub(crate) fn families(&self) -> Vec<Arc<Family>> {
        lock(&self.families).clone()
    }

    /// The whole registry in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        super::text::render(&self.families())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_updates_are_all_counted() {
        let r = Arc::new(Registry::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    // Half the threads share a label set, half add their
                    // own: both the atomics and the registration race.
                    let label = if t % 2 == 0 {
                        "shared".to_owned()
                    } else {
                        format!("t{t}")
                    };
                    let c = r.counter_vec("c", "h", &["k"]);
                    let h = r.histogram_vec("h", "h", &["k"], &[0.5, 1.0]);
                    for i in 0..10_000 {
                        c.with(&[&label]).inc();
                        h.with(&["x"]).observe(if i % 2 == 0 { 0.25 } else { 2.0 });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = r.counter_vec("c", "h", &["k"]);
        assert_eq!(c.with(&["shared"]).get(), 40_000.0);
        for t in [1, 3, 5, 7] {
            assert_eq!(c.with(&[&format!("t{t}")]).get(), 10_000.0);
        }
        let (buckets, sum) = r
            .histogram_vec("h", "h", &["k"], &[])
            .with(&["x"])
            .snapshot();
        assert_eq!(
            buckets,
            vec![(0.5, 40_000), (1.0, 40_000), (f64::INFINITY, 80_000)]
        );
        assert_eq!(sum, 40_000.0 * 0.25 + 40_000.0 * 2.0);
        assert_eq!(r.families().len(), 2);
    }

    #[test]
    fn counters_never_go_down() {
        let c = Counter::default();
        c.inc_by(2.5);
        c.inc_by(-1.0);
        c.inc_by(f64::NAN);
        assert_eq!(c.get(), 2.5);
    }
}
