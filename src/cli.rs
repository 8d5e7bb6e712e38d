//! The command line: Litestream's commands and flag names
//! (CLI_CONFIG.md §2, RESTORE.md §8). Flags are parsed Go-style (see
//! `args.rs`): `-flag value`, `-flag=value`, booleans as `-flag` or
//! `-flag=false`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// freshet streams every committed SQLite transaction to a replica as LTX
/// files, and restores databases from replicas, to the latest state or to a
/// point in time. It reads litestream.yml and writes the same replica layout
/// as Litestream 0.5, so either tool restores what the other wrote.
#[derive(Debug, Parser)]
#[command(name = "freshet", version, disable_version_flag = true, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Replicate databases continuously (from the config, or one DB_PATH to
    /// one REPLICA_URL).
    Replicate(ReplicateArgs),
    /// Restore a database from its replica.
    Restore(RestoreArgs),
    /// List the databases in the config and their replica types.
    Databases(ConfigArgs),
    /// List the LTX files of a database's replica.
    Ltx(LtxArgs),
    /// Show each configured database's local replication state.
    Status(StatusArgs),
    /// Remove a database's local replication state (while replication is
    /// stopped); the next sync starts with a fresh snapshot.
    Reset(ResetArgs),
    /// Print the version.
    Version(VersionArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// Print JSON.
    #[arg(long = "json", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) json: bool,

    /// Only this database (its absolute path as in the config).
    #[arg(value_name = "DB_PATH")]
    pub(crate) db_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// List what would be removed, remove nothing.
    #[arg(long = "dry-run", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) dry_run: bool,

    /// The database whose local state is removed.
    #[arg(value_name = "DB_PATH")]
    pub(crate) db_path: String,
}

/// Where the configuration comes from.
#[derive(Debug, Args)]
pub(crate) struct ConfigSource {
    /// Config file [default: $LITESTREAM_CONFIG or /etc/litestream.yml].
    #[arg(long = "config", value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// Do not expand $VARIABLES in the config file.
    #[arg(long = "no-expand-env", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) no_expand_env: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// Print JSON.
    #[arg(long = "json", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReplicateArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// Run CMD as a child process; replication stops (with a final sync) when
    /// it exits. Shell operators (; & | < >) run it through /bin/sh.
    #[arg(long = "exec", value_name = "CMD")]
    pub(crate) exec: Option<String>,

    /// Log level: trace, debug, info, warn, error (overrides the config and
    /// LOG_LEVEL).
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,

    /// Restore each configured database that does not exist from its replica
    /// before replicating it.
    #[arg(long = "restore-if-db-not-exists", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) restore_if_db_not_exists: bool,

    /// Sync every database and its replica once, then exit.
    #[arg(long = "once", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) once: bool,

    /// With -once: also write a level-9 snapshot of each database.
    #[arg(long = "force-snapshot", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) force_snapshot: bool,

    /// With -once: also apply snapshot retention.
    #[arg(long = "enforce-retention", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) enforce_retention: bool,

    /// Database to replicate (with REPLICA_URL, instead of a config file).
    #[arg(value_name = "DB_PATH")]
    pub(crate) db_path: Option<String>,

    /// Replica URL, e.g. file:///var/backups/app or s3://bucket/app.
    #[arg(value_name = "REPLICA_URL", num_args = 0..)]
    pub(crate) replica_urls: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// Output path [default: DB_PATH]; required with a replica URL.
    #[arg(long = "o", value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,

    /// Restore up to this TXID (16 hex digits).
    #[arg(long = "txid", value_name = "TXID")]
    pub(crate) txid: Option<String>,

    /// Restore the state as of this time (RFC 3339): files created strictly
    /// before it.
    #[arg(long = "timestamp", value_name = "TIME")]
    pub(crate) timestamp: Option<String>,

    /// Replica files fetched at once.
    #[arg(long = "parallelism", value_name = "N", default_value_t = 8)]
    pub(crate) parallelism: usize,

    /// Do nothing (exit 0) if the output database already exists.
    #[arg(long = "if-db-not-exists", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) if_db_not_exists: bool,

    /// Do nothing (exit 0) if the replica has no matching backup.
    #[arg(long = "if-replica-exists", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) if_replica_exists: bool,

    /// Print the restore plan and exit.
    #[arg(long = "dry-run", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) dry_run: bool,

    /// Replace an existing output database and its -wal/-shm/-journal files.
    #[arg(long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) force: bool,

    /// Print the result as JSON (logs go to stderr).
    #[arg(long = "json", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) json: bool,

    /// Follow the replica, applying new files as they appear.
    #[arg(long = "f", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) follow: bool,

    /// Poll period in follow mode.
    #[arg(
        long = "follow-interval",
        value_name = "DURATION",
        default_value = "1s"
    )]
    pub(crate) follow_interval: String,

    /// Check the restored database: none, quick or full.
    #[arg(long = "integrity-check", value_name = "MODE", default_value = "none")]
    pub(crate) integrity_check: String,

    /// Database path (from the config) or replica URL.
    #[arg(value_name = "DB_PATH|REPLICA_URL")]
    pub(crate) target: String,
}

#[derive(Debug, Args)]
pub(crate) struct LtxArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,

    /// Level 0–9, or "all".
    #[arg(long = "level", value_name = "N|all", default_value = "0")]
    pub(crate) level: String,

    /// Print JSON.
    #[arg(long = "json", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) json: bool,

    /// Database path (from the config) or replica URL.
    #[arg(value_name = "DB_PATH|REPLICA_URL")]
    pub(crate) target: String,
}

#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Print build details.
    #[arg(long = "verbose", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub(crate) verbose: bool,
}
