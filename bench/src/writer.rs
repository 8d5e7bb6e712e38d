//! The application writer: inserts seeded rows and bumps the marker row in
//! every transaction, recording when each sequence number committed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::params;

use crate::data::{self, Rng};

/// What a writer does.
#[derive(Clone, Debug)]
pub(crate) struct WriteSpec {
    /// Rows inserted per transaction.
    pub(crate) rows_per_tx: u32,
    /// Bytes per row.
    pub(crate) row_bytes: u32,
    /// Total commit rate over all databases; `None` = as fast as possible.
    pub(crate) tx_per_sec: Option<f64>,
    /// How long to write.
    pub(crate) duration: Duration,
    /// Seed of the rows.
    pub(crate) seed: u64,
}

/// What a writer did.
pub(crate) struct WriteOutcome {
    /// Per database: commit instant of sequence number `i + 1` at index `i`.
    pub(crate) commits: Vec<Vec<Instant>>,
    /// Seconds from the first to the last commit attempt.
    pub(crate) elapsed: f64,
}

impl WriteOutcome {
    /// Committed transactions over all databases.
    pub(crate) fn total_tx(&self) -> usize {
        self.commits.iter().map(Vec::len).sum()
    }

    /// Commits per second over all databases.
    pub(crate) fn tx_per_sec(&self) -> f64 {
        if self.elapsed > 0.0 {
            self.total_tx() as f64 / self.elapsed
        } else {
            0.0
        }
    }
}

/// Writes to `dbs` round-robin, one transaction at a time, for
/// `spec.duration`. Each database's marker row carries its own sequence.
pub(crate) fn run(dbs: &[PathBuf], spec: &WriteSpec) -> Result<WriteOutcome> {
    let mut conns = Vec::with_capacity(dbs.len());
    for db in dbs {
        conns.push(data::open_app(db)?);
    }
    let mut rng = Rng::new(spec.seed ^ 0x000a_11ce);
    let mut row = Vec::with_capacity(spec.row_bytes as usize);
    let mut commits: Vec<Vec<Instant>> = vec![Vec::new(); dbs.len()];
    let start = Instant::now();
    let end = start + spec.duration;
    let mut n: u64 = 0;
    loop {
        if let Some(rate) = spec.tx_per_sec {
            // Fixed schedule: a slow commit is followed by catch-up, so the
            // average rate holds (open-loop load).
            let due = start + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if Instant::now() >= end {
            break;
        }
        let i = (n % conns.len() as u64) as usize;
        let conn = &mut conns[i];
        let seq = commits[i].len() as u64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .with_context(|| format!("begin a transaction on {}", dbs[i].display()))?;
        {
            let mut ins = tx.prepare_cached("INSERT INTO t (v) VALUES (?1)")?;
            for _ in 0..spec.rows_per_tx {
                rng.fill_row(&mut row, spec.row_bytes as usize);
                ins.execute(params![&row])?;
            }
            tx.execute(
                "UPDATE marker SET v = ?1 WHERE id = 1",
                params![&data::marker(seq)[..]],
            )?;
        }
        tx.commit()
            .with_context(|| format!("commit on {}", dbs[i].display()))?;
        commits[i].push(Instant::now());
        n += 1;
    }
    Ok(WriteOutcome {
        commits,
        elapsed: start.elapsed().as_secs_f64(),
    })
}
