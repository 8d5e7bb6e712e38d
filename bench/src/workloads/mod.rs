//! The workloads and what one run of one tool records. Each run gets fresh
//! databases, a fresh replica prefix and its own generated `litestream.yml`;
//! it ends with a verifying restore by the same tool.

mod idle;
mod snapshot;
mod write;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::{Args, Workload};
use crate::measure::{Monitored, ProcStats};
use crate::s3::Traffic;
use crate::storage::{BackendKind, ConfigKnobs, Storage};
use crate::tools::{Tool, Tools};
use crate::verify;

/// Who ran: a replicator, or nobody (the application alone, the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Subject {
    /// A replicator.
    Tool(Tool),
    /// No replicator.
    Baseline,
}

impl Subject {
    /// Name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Subject::Tool(t) => t.name(),
            Subject::Baseline => "baseline",
        }
    }
}

/// Everything measured in one run.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RunResult {
    /// The workload.
    pub(crate) workload: Workload,
    /// The backend.
    pub(crate) backend: BackendKind,
    /// `freshet`, `litestream` or `baseline`.
    pub(crate) tool: &'static str,
    /// Repetition index (from 0).
    pub(crate) repeat: u32,
    /// The workload's headline time, seconds (see the report's legend).
    pub(crate) wall_secs: f64,
    /// CPU seconds of the measured process (for `idle`: during the window).
    pub(crate) cpu_secs: f64,
    /// Peak resident set of the measured process, bytes.
    pub(crate) peak_rss_bytes: u64,
    /// Bytes the measured process wrote to local storage.
    pub(crate) local_write_bytes: u64,
    /// S3 requests (file backend: files in the replica).
    pub(crate) storage_requests: u64,
    /// Bytes sent to S3 (file backend: bytes in the replica).
    pub(crate) storage_bytes: u64,
    /// S3 requests by kind.
    pub(crate) storage_by_kind: BTreeMap<String, u64>,
    /// Transactions the application committed.
    pub(crate) tx_count: u64,
    /// Application commits per second.
    pub(crate) tx_per_sec: Option<f64>,
    /// Replication lag, median, ms.
    pub(crate) lag_p50_ms: Option<f64>,
    /// Replication lag, 99th percentile, ms.
    pub(crate) lag_p99_ms: Option<f64>,
    /// Replication lag, worst, ms.
    pub(crate) lag_max_ms: Option<f64>,
    /// Commits never seen in the replica.
    pub(crate) lag_missing: u64,
    /// Largest `-wal` size seen (sum over the run's databases), bytes.
    pub(crate) peak_wal_bytes: u64,
    /// `snapshot`: seconds of a plain `cp` of the same database file.
    pub(crate) reference_cp_secs: Option<f64>,
    /// Whether the verifying restore matched the source.
    pub(crate) verified: bool,
    /// What verification found.
    pub(crate) verify_detail: String,
    /// Why the run failed, if it did.
    pub(crate) error: Option<String>,
    /// `(s, lag ms)` per commit, for plots.
    #[serde(skip)]
    pub(crate) lag_series: Vec<(f64, f64)>,
    /// `(s, bytes)` of the `-wal` size, for plots.
    #[serde(skip)]
    pub(crate) wal_series: Vec<(f64, f64)>,
}

impl RunResult {
    /// An empty result to fill in.
    pub(crate) fn new(workload: Workload, backend: BackendKind, who: Subject, repeat: u32) -> Self {
        RunResult {
            workload,
            backend,
            tool: who.name(),
            repeat,
            wall_secs: 0.0,
            cpu_secs: 0.0,
            peak_rss_bytes: 0,
            local_write_bytes: 0,
            storage_requests: 0,
            storage_bytes: 0,
            storage_by_kind: BTreeMap::new(),
            tx_count: 0,
            tx_per_sec: None,
            lag_p50_ms: None,
            lag_p99_ms: None,
            lag_max_ms: None,
            lag_missing: 0,
            peak_wal_bytes: 0,
            reference_cp_secs: None,
            verified: false,
            verify_detail: String::new(),
            error: None,
            lag_series: Vec::new(),
            wal_series: Vec::new(),
        }
    }

    /// Copies a replicator's process figures in.
    fn take_proc(&mut self, p: &ProcStats) {
        self.cpu_secs = p.cpu;
        self.peak_rss_bytes = p.peak_rss;
        self.local_write_bytes = p.write_bytes;
        self.peak_wal_bytes = p.peak_wal;
        self.wal_series = crate::lag::downsample(
            p.samples.iter().map(|s| (s.t, s.wal as f64)).collect(),
            2000,
        );
    }

    /// Copies storage counters in.
    fn take_traffic(&mut self, t: &Traffic) {
        self.storage_requests = t.requests;
        self.storage_bytes = t.bytes_up;
        self.storage_by_kind = t.by_kind.clone();
    }
}

/// What every run needs.
pub(crate) struct Ctx<'a> {
    /// The flags.
    pub(crate) args: &'a Args,
    /// The binaries.
    pub(crate) tools: &'a Tools,
    /// The backend of this series of runs.
    pub(crate) storage: &'a Storage,
    /// Scratch space of this backend (databases, restores).
    pub(crate) work: PathBuf,
    /// Where logs go.
    pub(crate) logs: PathBuf,
    /// A database of `--size`, built once, copied for each run.
    pub(crate) pristine: Option<PathBuf>,
}

impl Ctx<'_> {
    /// The knobs of the generated configuration.
    fn knobs(&self) -> ConfigKnobs {
        ConfigKnobs {
            monitor_interval: self.args.monitor_interval.clone(),
            sync_interval: self.args.sync_interval.clone(),
        }
    }
}

/// A run's private directory, databases, replica keys and configuration.
pub(crate) struct RunSetup {
    dir: PathBuf,
    dbs: Vec<PathBuf>,
    keys: Vec<String>,
    config: PathBuf,
    log: PathBuf,
    label: String,
}

impl RunSetup {
    /// Creates the run directory and names `n` databases in it.
    fn new(ctx: &Ctx<'_>, w: Workload, who: Subject, repeat: u32, n: usize) -> Result<RunSetup> {
        let label = format!(
            "{}-{}-{}-{}",
            w.name(),
            ctx.storage.kind().name(),
            who.name(),
            repeat
        );
        let dir = ctx.work.join(&label);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let dbs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("db{i}.db"))).collect();
        let keys: Vec<String> = (0..n).map(|i| format!("{label}/db{i}")).collect();
        for k in &keys {
            ctx.storage.remove(k);
        }
        Ok(RunSetup {
            config: dir.join("litestream.yml"),
            log: ctx.logs.join(format!("{label}.log")),
            dir,
            dbs,
            keys,
            label,
        })
    }

    /// Writes the configuration listing every database.
    fn write_config(&self, ctx: &Ctx<'_>) -> Result<()> {
        let pairs: Vec<(PathBuf, String)> = self
            .dbs
            .iter()
            .cloned()
            .zip(self.keys.iter().cloned())
            .collect();
        ctx.storage.write_config(&self.config, &pairs, &ctx.knobs())
    }

    /// The `-wal` files of the databases.
    fn wal_files(&self) -> Vec<PathBuf> {
        self.dbs
            .iter()
            .map(|d| PathBuf::from(format!("{}-wal", d.display())))
            .collect()
    }

    /// Level-0 directories of the replicas, in database order.
    fn l0_dirs(&self, ctx: &Ctx<'_>) -> Vec<PathBuf> {
        self.keys
            .iter()
            .map(|k| ctx.storage.level_dir(k, 0))
            .collect()
    }

    /// The page of each database's marker row (see [`crate::lag`]).
    fn marker_pages(&self) -> Result<Vec<u32>> {
        self.dbs
            .iter()
            .map(|db| crate::data::marker_page(db))
            .collect()
    }

    /// Restores every database with `tool` and compares it with its source.
    fn verify_all(&self, ctx: &Ctx<'_>, tool: Tool, r: &mut RunResult) -> Result<Vec<ProcStats>> {
        let mut details = Vec::new();
        let mut restores = Vec::new();
        let mut ok = true;
        for (i, db) in self.dbs.iter().enumerate() {
            let out = self.dir.join(format!("restored{i}.db"));
            let log = ctx.logs.join(format!("{}-restore{i}.log", self.label));
            let v = verify::restore_and_compare(ctx.tools, tool, &self.config, db, &out, &log)?;
            ok &= v.ok;
            if !v.ok || details.is_empty() {
                details.push(format!("db{i}: {}", v.detail));
            }
            let _ = fs::remove_file(&out);
            restores.push(v.restore);
        }
        if self.dbs.len() > 1 && ok {
            details.push(format!("all {} databases identical", self.dbs.len()));
        }
        r.verified = ok;
        r.verify_detail = details.join("; ");
        Ok(restores)
    }

    /// Removes the run's databases and replicas (logs stay).
    fn cleanup(&self, ctx: &Ctx<'_>) {
        let _ = fs::remove_dir_all(&self.dir);
        for k in &self.keys {
            ctx.storage.remove(k);
        }
    }
}

/// Runs one workload once for `who`; a failure becomes a failed result.
pub(crate) fn run(ctx: &Ctx<'_>, w: Workload, who: Subject, repeat: u32) -> RunResult {
    let mut r = RunResult::new(w, ctx.storage.kind(), who, repeat);
    let databases = if w == Workload::ManyDbs {
        ctx.args.dbs as usize
    } else {
        1
    };
    let setup = match RunSetup::new(ctx, w, who, repeat, databases) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let outcome = match (w, who) {
        (Workload::Snapshot, Subject::Tool(t)) => snapshot::snapshot(ctx, &setup, t, &mut r),
        (Workload::Restore, Subject::Tool(t)) => snapshot::restore(ctx, &setup, t, &mut r),
        (Workload::Idle, Subject::Tool(t)) => idle::idle(ctx, &setup, t, &mut r),
        (_, Subject::Tool(t)) => write::replicated(ctx, &setup, w, t, &mut r),
        (_, Subject::Baseline) => write::baseline(ctx, &setup, w, &mut r),
    };
    if let Err(e) = outcome {
        r.error = Some(format!("{e:#}"));
        r.verified = false;
    }
    setup.cleanup(ctx);
    r
}

/// Waits until the replica of every database has a file whose min TXID is 1
/// (the first complete copy: files appear by rename, so a listed file is
/// whole). Returns the seconds since the replicator started.
fn wait_first_copy(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    m: &mut Monitored,
    timeout: Duration,
) -> Result<f64> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = setup.keys.iter().all(|k| has_full_copy(ctx.storage, k));
        if all {
            return Ok(m.elapsed());
        }
        m.ensure_running()?;
        if Instant::now() > deadline {
            bail!(
                "no complete copy (an LTX file with min TXID 1) appeared in the replica within \
                 {timeout:?}; log: {}",
                setup.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn has_full_copy(storage: &Storage, key: &str) -> bool {
    (0..=9u8).any(|level| {
        fs::read_dir(storage.level_dir(key, level))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                ltx::parse_file_name(&e.file_name().to_string_lossy())
                    .is_some_and(|(min, _)| min.get() == 1)
            })
    })
}

/// Builds a small seeded database at each path (the writers' starting point).
fn build_small(setup: &RunSetup, ctx: &Ctx<'_>, bytes: u64) -> Result<()> {
    for (i, db) in setup.dbs.iter().enumerate() {
        crate::data::build_database(db, ctx.args.page_size, bytes, ctx.args.seed + i as u64)?;
    }
    Ok(())
}

/// How long a replicator may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
