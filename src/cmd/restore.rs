//! `freshet restore` (RESTORE.md §8).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use engine::restore::{self, Conditions, IntegrityCheck, Outcome, RestoreOptions, Target};
use engine::setup;

use crate::cli::RestoreArgs;
use crate::logging;

pub(crate) fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    // With -json, stdout carries only the JSON document.
    logging::init(&Default::default(), None, args.json);
    freshet_io::engine()?;
    let (backend, db_path) = super::resolve_replica(&args.target, &args.source)?;
    let is_url = db_path.is_none();
    let output = match (&args.output, &db_path) {
        (Some(o), _) => o.clone(),
        (None, Some(db)) => db.clone(),
        (None, None) => bail!("must specify -o OUTPUT when restoring from a replica URL"),
    };
    let target = match (&args.txid, &args.timestamp) {
        (Some(_), Some(_)) => bail!("cannot specify both -txid and -timestamp"),
        (Some(t), None) => Target::TxId(t.parse().with_context(|| format!("invalid -txid {t:?}"))?),
        (None, Some(ts)) => Target::Time(restore::parse_rfc3339(ts)?),
        (None, None) => Target::Latest,
    };
    if args.follow && !matches!(target, Target::Latest) {
        bail!("cannot specify follow mode (-f) with -txid or -timestamp");
    }
    if args.follow && args.dry_run {
        bail!("cannot specify follow mode (-f) with -dry-run");
    }
    let integrity: IntegrityCheck = args.integrity_check.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid -integrity-check {:?}: use none, quick or full",
            args.integrity_check
        )
    })?;
    let client = setup::open_replica(&backend)?;

    super::runtime()?.block_on(async move {
        if let Some(root) = match &backend {
            engine::config::BackendConfig::File(f) => Some(f.path.clone()),
            _ => None,
        } {
            restore::check_v3_replica(&root)?;
        }
        if is_url && let Target::Time(t) = target {
            restore::check_timestamp(client.as_ref(), t).await?;
        }
        if args.follow {
            return follow(client, output, &args, integrity).await;
        }
        if args.dry_run {
            let plan = restore::dry_run(client.as_ref(), &args.target, &output, target).await?;
            print!(
                "{}",
                if args.json {
                    plan.to_json()
                } else {
                    plan.to_text()
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        let opts = RestoreOptions {
            output: output.clone(),
            target,
            parallelism: args.parallelism,
            integrity,
        };
        let when = Conditions {
            if_db_not_exists: args.if_db_not_exists,
            if_replica_exists: args.if_replica_exists,
            force: args.force,
        };
        let started = Instant::now();
        match restore::restore_with(client, &opts, when).await? {
            Outcome::SkippedDatabaseExists => {
                tracing::info!(path = %output.display(), "database already exists, skipping");
            }
            Outcome::SkippedNoBackup => tracing::info!("no matching backups found"),
            Outcome::Restored(o) => {
                let ms = started.elapsed().as_millis();
                if args.json {
                    let doc = serde_json::json!({
                        "db_path": output.display().to_string(),
                        "replica": backend.kind().name(),
                        "txid": o.txid.to_string(),
                        "duration_ms": ms as u64,
                        "integrity_check": integrity.as_str(),
                    });
                    println!("{doc}");
                } else {
                    tracing::info!(
                        path = %output.display(),
                        txid = %o.txid,
                        pages = o.pages,
                        bytes = o.bytes,
                        files = o.files,
                        elapsed_ms = ms as u64,
                        "restore complete"
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `restore -f`: restore if needed, then apply new files until SIGINT or
/// SIGTERM (RESTORE.md §7).
async fn follow(
    client: std::sync::Arc<dyn backends::ReplicaClient>,
    output: std::path::PathBuf,
    args: &RestoreArgs,
    integrity: IntegrityCheck,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let interval = engine::config::parse_duration(&args.follow_interval)
        .map_err(|e| anyhow::anyhow!("invalid -follow-interval {:?}: {e}", args.follow_interval))?
        .to_std()
        .filter(|d| !d.is_zero())
        .unwrap_or(std::time::Duration::from_secs(1));
    let opts = restore::FollowOptions {
        output,
        interval,
        parallelism: args.parallelism,
        integrity,
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        stop.send_replace(true);
    });
    let txid = restore::follow(client, &opts, stop_rx).await?;
    tracing::info!(%txid, "follow mode stopped");
    Ok(ExitCode::SUCCESS)
}
