//! `idle`: a replicator with nothing to do. What it costs at rest: storage
//! requests (polling costs money on S3) and CPU over `--duration`.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, RunResult, RunSetup, STOP_TIMEOUT, build_small, wait_first_copy};
use crate::tools::Tool;

/// Size of the idle database.
const IDLE_BYTES: u64 = 4 << 20;
/// Settling time after the first copy, before the window opens.
const SETTLE: Duration = Duration::from_secs(2);

/// The `idle` workload for `tool`.
pub(super) fn idle(ctx: &Ctx<'_>, setup: &RunSetup, tool: Tool, r: &mut RunResult) -> Result<()> {
    build_small(setup, ctx, IDLE_BYTES)?;
    setup.write_config(ctx)?;
    let mut m = ctx
        .tools
        .replicate(tool, &setup.config, &setup.log, setup.wal_files())?;
    wait_first_copy(ctx, setup, &mut m, Duration::from_secs(300))?;
    std::thread::sleep(SETTLE);
    let before = ctx.storage.traffic(&setup.keys);
    let cpu0 = m.last_sample().map_or(0.0, |s| s.cpu);
    let io0 = m.last_sample().map_or(0, |s| s.write_bytes);
    std::thread::sleep(ctx.args.duration);
    m.ensure_running()?;
    let cpu1 = m.last_sample().map_or(0.0, |s| s.cpu);
    let io1 = m.last_sample().map_or(0, |s| s.write_bytes);
    let traffic = ctx.storage.traffic(&setup.keys).since(&before);
    let stats = m.finish(true, STOP_TIMEOUT)?;
    r.take_proc(&stats);
    r.take_traffic(&traffic);
    // The window only: CPU from /proc samples (10 ms ticks).
    r.cpu_secs = (cpu1 - cpu0).max(0.0);
    r.local_write_bytes = io1.saturating_sub(io0);
    r.wall_secs = ctx.args.duration.as_secs_f64();
    setup.verify_all(ctx, tool, r)?;
    Ok(())
}
