//! One module per command.

mod databases;
mod ltx_list;
mod replicate;
mod restore;
mod status;

use std::process::ExitCode;

use anyhow::Context;
use engine::config::{self, Config};

use crate::cli::{Cli, Command, ConfigSource};

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replicate(a) => replicate::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Databases(a) => databases::run(a),
        Command::Ltx(a) => ltx_list::run(a),
        Command::Status(a) => status::status(a),
        Command::Reset(a) => status::reset(a),
        Command::Version(a) => {
            if a.verbose {
                println!("Version: v{}", env!("CARGO_PKG_VERSION"));
                println!(
                    "OS/Arch: {}/{}",
                    std::env::consts::OS,
                    std::env::consts::ARCH
                );
            } else {
                println!("v{}", env!("CARGO_PKG_VERSION"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the config file named by `-config`, `$LITESTREAM_CONFIG` or the
/// default path.
pub(crate) fn load_config(src: &ConfigSource) -> anyhow::Result<Config> {
    Ok(config::load(src.config.as_deref(), !src.no_expand_env)?)
}

/// A multi-threaded runtime sized for this machine's cores.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The replica of `target`: a replica URL, or a database path looked up in
/// the config (CLI_CONFIG.md §1: a `scheme://` argument is a URL).
pub(crate) fn resolve_replica(
    target: &str,
    src: &ConfigSource,
) -> anyhow::Result<(config::BackendConfig, Option<std::path::PathBuf>)> {
    if config::is_replica_url(target) {
        if src.config.is_some() {
            anyhow::bail!("cannot specify a replica URL and the -config flag");
        }
        return Ok((config::parse_replica_url(target)?, None));
    }
    let cfg = load_config(src)?;
    let path = config::normalize_db_path(target)?;
    let dbs = cfg.databases()?;
    let db = dbs
        .iter()
        .find(|d| d.path == path)
        .with_context(|| format!("database not found in config: {}", path.display()))?;
    Ok((db.replica.backend.clone(), Some(path)))
}
