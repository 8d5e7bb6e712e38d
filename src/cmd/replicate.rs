//! `freshet replicate` (CLI_CONFIG.md §2.1).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use engine::config::Config;
use engine::metrics::server::MetricsServer;
use engine::replicate::Replicator;
use engine::restore::{self, Conditions, Outcome, RestoreOptions};
use engine::setup;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ReplicateArgs;
use crate::{exec, logging};

/// How long `-once` waits for uploads.
const ONCE_UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn run(args: ReplicateArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.db_path {
        Some(db) => {
            if args.source.config.is_some() {
                bail!("cannot specify a replica URL and the -config flag");
            }
            match args.replica_urls.as_slice() {
                [] => bail!("must specify at least one replica URL for {db}"),
                [url] => Config::from_db_and_url(db, url)?,
                _ => bail!("multiple replicas on a single database are no longer supported"),
            }
        }
        None => super::load_config(&args.source)?,
    };
    logging::init(&config.logging, args.log_level.as_deref(), false);
    // FRESHET_IO: refuse a bad value, or a required io_uring that is
    // missing, before any work (docs/IO.md).
    freshet_io::engine()?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if config.verify_compaction {
        tracing::warn!("verify-compaction: not available in this version of freshet; ignored");
    }
    if config.validation_interval.is_some() {
        tracing::warn!("validation.interval: not available in this version of freshet; ignored");
    }
    if let Some(addr) = &config.addr {
        // Refuse a malformed address before any database is touched; the
        // listener itself starts after them (CLI_CONFIG.md §2.1).
        engine::metrics::server::parse_addr(addr)?;
    }
    let exec_cmd = args.exec.clone().or_else(|| config.exec.clone());
    if args.once && args.exec.is_some() {
        bail!("cannot specify -once flag with -exec");
    }
    let program = match (&exec_cmd, args.once) {
        (Some(cmd), false) => Some(exec::parse(cmd).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    super::runtime()?.block_on(replicate(config, args, program))
}

async fn replicate(
    config: Config,
    args: ReplicateArgs,
    program: Option<exec::Program>,
) -> anyhow::Result<ExitCode> {
    let dbs = config.databases()?;
    if dbs.is_empty() {
        tracing::error!("no databases specified in configuration");
    }
    for db in &dbs {
        if (args.restore_if_db_not_exists || db.restore_if_db_not_exists) && !db.path.exists() {
            restore_missing(db).await?;
        }
    }
    let opts = setup::replicate_options(&config, &dbs, args.once)?;
    let metrics = opts.metrics.clone();
    let replicator = Replicator::start(opts)?;
    let server = match &config.addr {
        Some(addr) => match MetricsServer::start(addr, metrics).await {
            Ok(s) => {
                tracing::info!(addr = %s.local_addr(), "serving metrics at /metrics");
                Some(s)
            }
            Err(e) => {
                // Release the databases cleanly before failing start-up.
                let _ = shutdown(replicator).await;
                return Err(e.into());
            }
        },
        None => None,
    };

    if args.once {
        let r = once(replicator, &config, &dbs, &args).await;
        stop_server(server).await;
        return r;
    }

    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut child = match &program {
        Some(p) => Some(
            exec::command(p)
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("starting the -exec command")?,
        ),
        None => None,
    };
    let mut child_failed = None;
    match child.as_mut() {
        Some(c) => {
            let pid = c.id();
            tokio::select! {
                status = c.wait() => {
                    let status = status.context("waiting for the -exec command")?;
                    tracing::info!(%status, "exec command exited; shutting down");
                    if !status.success() { child_failed = Some(status); }
                }
                _ = sigint.recv() => { forward(pid, Signal::SIGINT); let _ = c.wait().await; }
                _ = sigterm.recv() => { forward(pid, Signal::SIGTERM); let _ = c.wait().await; }
            }
        }
        None => {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
            tracing::info!("signal received, shutting down");
        }
    }
    let incomplete = shutdown(replicator).await;
    stop_server(server).await;
    if let Some(status) = child_failed {
        bail!("exec command failed: {status}");
    }
    match incomplete {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

async fn once(
    replicator: Replicator,
    config: &Config,
    dbs: &[engine::config::DbConfig],
    args: &ReplicateArgs,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for db in dbs {
        if let Err(e) = replicator.sync(&db.path).await {
            tracing::error!(db = %db.path.display(), error = %e, "sync failed");
            failed = true;
        }
    }
    if !replicator.wait_replicated(ONCE_UPLOAD_TIMEOUT).await {
        tracing::error!("uploads did not finish");
        failed = true;
    }
    for db in dbs {
        if args.force_snapshot {
            match replicator.write_snapshot(&db.path).await {
                Ok(f) => tracing::info!(db = %db.path.display(), file = %f.id, "snapshot written"),
                Err(e) => {
                    tracing::error!(db = %db.path.display(), error = %e, "snapshot failed");
                    failed = true;
                }
            }
        }
        if args.enforce_retention
            && let Some((client, l0)) = replicator.replica_of(&db.path)
        {
            let max_level = config.levels.len() as u8;
            let r = engine::compact::enforce_snapshot_retention(
                client.as_ref(),
                config.snapshot.retention,
                max_level,
                SystemTime::now(),
                config.retention_enabled,
                Some(&l0),
            )
            .await;
            if let Err(e) = r {
                tracing::error!(db = %db.path.display(), error = %e, "retention failed");
                failed = true;
            }
        }
    }
    if let Some(e) = shutdown(replicator).await {
        return Err(e);
    }
    if failed {
        bail!("the one-time sync failed; see the log above");
    }
    Ok(ExitCode::SUCCESS)
}

async fn stop_server(server: Option<MetricsServer>) {
    if let Some(s) = server {
        s.stop().await;
    }
}

/// Final sync and uploads; logs each database's outcome. Returns an error
/// naming the databases whose replica is not up to date, if any.
async fn shutdown(replicator: Replicator) -> Option<anyhow::Error> {
    let mut failed = Vec::new();
    for (path, result) in replicator.shutdown().await {
        match result {
            Ok(s) => {
                tracing::info!(db = %path.display(), txid = %s.replica_txid, "replication stopped; replica is up to date")
            }
            Err(e) => {
                tracing::error!(db = %path.display(), error = %e, "shutdown incomplete");
                failed.push(e.to_string());
            }
        }
    }
    (!failed.is_empty()).then(|| {
        anyhow::anyhow!(
            "shutdown incomplete, the replica is behind: {}",
            failed.join("; ")
        )
    })
}

/// RESTORE.md §9: restore a missing database before replicating it; an
/// empty replica means a fresh start.
async fn restore_missing(db: &engine::config::DbConfig) -> anyhow::Result<()> {
    let client = setup::open_replica(&db.replica.backend)?;
    let opts = RestoreOptions::new(&db.path);
    let when = Conditions {
        if_replica_exists: true,
        ..Conditions::default()
    };
    match restore::restore_with(client, &opts, when).await {
        Ok(Outcome::Restored(o)) => {
            tracing::info!(db = %db.path.display(), txid = %o.txid, "restored database from replica");
        }
        Ok(_) => tracing::info!(db = %db.path.display(), "no backup found, starting fresh"),
        Err(e) => return Err(e).with_context(|| format!("restoring {}", db.path.display())),
    }
    Ok(())
}

/// Forwards a signal to the child (CLI_CONFIG.md §7 step 4).
fn forward(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}
