//! `snapshot`: time from start to the first complete copy of a large
//! database in the replica, next to a plain `cp` of the file; `restore`:
//! time to restore that copy.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Ctx, RunResult, RunSetup, STOP_TIMEOUT, wait_first_copy};
use crate::tools::Tool;

/// How long the first copy of a database may take.
const FIRST_COPY_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Copies the pristine database to `db` with `cp`; returns the seconds.
fn copy_pristine(ctx: &Ctx<'_>, db: &Path) -> Result<f64> {
    let Some(pristine) = ctx.pristine.as_deref() else {
        bail!("no database of --size was built");
    };
    let t = Instant::now();
    let st = Command::new("cp")
        .arg(pristine)
        .arg(db)
        .status()
        .context("run cp")?;
    if !st.success() {
        bail!("cp {} {} failed ({st})", pristine.display(), db.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Starts the replicator on a copy of the pristine database and stops it
/// once the first complete copy is in the replica. Returns the seconds to
/// that copy and the process figures.
fn first_copy(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    tool: Tool,
    r: &mut RunResult,
) -> Result<(f64, crate::measure::ProcStats)> {
    let db = &setup.dbs[0];
    r.reference_cp_secs = Some(copy_pristine(ctx, db)?);
    setup.write_config(ctx)?;
    let before = ctx.storage.traffic(&setup.keys);
    let mut m = ctx
        .tools
        .replicate(tool, &setup.config, &setup.log, setup.wal_files())?;
    let secs = wait_first_copy(ctx, setup, &mut m, FIRST_COPY_TIMEOUT)?;
    let stats = m.finish(true, STOP_TIMEOUT)?;
    let traffic = ctx.storage.traffic(&setup.keys).since(&before);
    r.take_traffic(&traffic);
    Ok((secs, stats))
}

/// The `snapshot` workload for `tool`.
pub(super) fn snapshot(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    tool: Tool,
    r: &mut RunResult,
) -> Result<()> {
    let (secs, stats) = first_copy(ctx, setup, tool, r)?;
    r.take_proc(&stats);
    r.wall_secs = secs;
    setup.verify_all(ctx, tool, r)?;
    Ok(())
}

/// The `restore` workload for `tool`: the replica is made as in `snapshot`
/// (not timed); the verifying restore is the timed one.
pub(super) fn restore(
    ctx: &Ctx<'_>,
    setup: &RunSetup,
    tool: Tool,
    r: &mut RunResult,
) -> Result<()> {
    first_copy(ctx, setup, tool, r)?;
    r.reference_cp_secs = None;
    let before = ctx.storage.traffic(&setup.keys);
    let restores = setup.verify_all(ctx, tool, r)?;
    let after = ctx.storage.traffic(&setup.keys);
    if ctx.storage.kind() == crate::storage::BackendKind::S3 {
        // What restoring fetched: requests and bytes received from S3.
        let traffic = after.since(&before);
        r.take_traffic(&traffic);
        r.storage_bytes = traffic.bytes_down;
    } else {
        // The file backend has no requests to count: the replica's files
        // and bytes, all of which a restore may read.
        r.take_traffic(&after);
    }
    let Some(stats) = restores.first() else {
        bail!("no restore ran");
    };
    r.wall_secs = stats.wall;
    r.cpu_secs = stats.cpu;
    r.peak_rss_bytes = stats.peak_rss;
    r.local_write_bytes = stats.write_bytes;
    Ok(())
}
