//! `write-max`, `write-steady` and `many-dbs`: an application writer with a
//! replicator running (lag, WAL size, throughput), and the same writer alone
//! (the baseline throughput).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Ctx, RunResult, RunSetup, STOP_TIMEOUT, build_small, wait_first_copy};
use crate::cli::Workload;
use crate::lag::LagPoller;
use crate::measure::Monitored;
use crate::tools::Tool;
use crate::writer::{self, WriteSpec};

/// Size of each database before the writer starts.
const START_BYTES: u64 = 1 << 20;
/// How long the replica may take to catch up with the last commit.
const CATCH_UP: Duration = Duration::from_secs(120);

/// The writer of workload `w`.
fn spec(ctx: &Ctx<'_>, w: Workload) -> WriteSpec {
    let a = ctx.args;
    let tx_per_sec = match w {
        Workload::WriteSteady => Some(a.tx_per_sec),
        Workload::ManyDbs => Some(a.db_tx_per_sec * f64::from(a.dbs)),
        _ => None,
    };
    WriteSpec {
        rows_per_tx: a.rows_per_tx,
        row_bytes: a.row_bytes,
        tx_per_sec,
        duration: a.duration,
        seed: a.seed,
    }
}

/// The writer alone: its throughput and WAL growth.
pub(super) fn baseline(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    w: Workload,
    r: &mut RunResult,
) -> Result<()> {
    build_small(setup, ctx, START_BYTES)?;
    let out = writer::run(&setup.dbs, &spec(ctx, w))?;
    r.tx_count = out.total_tx() as u64;
    r.tx_per_sec = Some(out.tx_per_sec());
    r.wall_secs = out.elapsed;
    r.verified = true;
    r.verify_detail = "no replicator".to_owned();
    Ok(())
}

/// The writer with `tool` replicating every database.
pub(super) fn replicated(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    w: Workload,
    tool: Tool,
    r: &mut RunResult,
) -> Result<()> {
    build_small(setup, ctx, START_BYTES)?;
    setup.write_config(ctx)?;
    let before = ctx.storage.traffic(&setup.keys);
    let mut m: Monitored =
        ctx.tools
            .replicate(tool, &setup.config, &setup.log, setup.wal_files())?;
    // Start-up and the initial copy are not part of the lag.
    wait_first_copy(ctx, setup, &mut m, Duration::from_secs(300))?;
    let poller = LagPoller::start(setup.l0_dirs(ctx), setup.marker_pages()?);
    let epoch = Instant::now();
    let written = writer::run(&setup.dbs, &spec(ctx, w));
    let written = match written {
        Ok(o) => o,
        Err(e) => {
            let _ = m.finish(true, STOP_TIMEOUT);
            return Err(e);
        }
    };
    let targets: Vec<u64> = written.commits.iter().map(|c| c.len() as u64).collect();
    let caught_up = poller.wait_for(&targets, CATCH_UP);
    m.ensure_running()?;
    let stats = m.finish(true, STOP_TIMEOUT)?;
    let lag = poller.finish(&written.commits, epoch);
    let traffic = ctx.storage.traffic(&setup.keys).since(&before);
    r.take_proc(&stats);
    r.take_traffic(&traffic);
    r.tx_count = written.total_tx() as u64;
    r.tx_per_sec = Some(written.tx_per_sec());
    r.wall_secs = written.elapsed;
    r.lag_p50_ms = lag.p50_ms;
    r.lag_p99_ms = lag.p99_ms;
    r.lag_max_ms = lag.max_ms;
    r.lag_missing = lag.missing;
    // Lag is plotted against time since the writer started; the WAL samples
    // count from the replicator's start: shift them to the same origin.
    let shift = stats.wall - epoch.elapsed().as_secs_f64();
    r.wal_series = r
        .wal_series
        .iter()
        .map(|&(t, b)| (t - shift, b))
        .filter(|&(t, _)| t >= 0.0)
        .collect();
    r.lag_series = lag.series;
    setup.verify_all(ctx, tool, r)?;
    if !caught_up {
        r.verified = false;
        r.verify_detail = format!(
            "the replica never showed the last commit within {CATCH_UP:?} ({} commits missing); {}",
            lag.missing, r.verify_detail
        );
    }
    Ok(())
}
