//! From a validated [`Config`] to running parts: replica clients and the
//! options of [`Replicator`](crate::replicate::Replicator).

use std::path::PathBuf;
use std::sync::Arc;

use backends::ReplicaClient;
use backends::file::FileReplica;

use crate::compact::{CompactError, CompactionConfig};
use crate::config::{BackendConfig, Config, ConfigError, DbConfig};
use crate::db::{CheckpointPolicy, DbOptions};
use crate::replicate::{DbSpec, ReplicateOptions};

/// Why a configuration could not be turned into running replication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration names something freshet cannot use.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The compaction levels are invalid.
    #[error(transparent)]
    Compaction(#[from] CompactError),
    /// The backend type is valid but not available in this build.
    #[error(
        "the {kind} backend is not available in this version of freshet; \
         use a file replica (type: file) for now"
    )]
    BackendUnavailable {
        /// The backend type.
        kind: &'static str,
    },
    /// One configured database's replica cannot be used (the source says
    /// why); names the database, since a config may list many.
    #[error("cannot replicate {}", path.display())]
    Database {
        /// The database.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<SetupError>,
    },
}

/// Builds the client for a replica.
pub fn open_replica(backend: &BackendConfig) -> Result<Arc<dyn ReplicaClient>, SetupError> {
    backend.require_supported()?;
    match backend {
        BackendConfig::File(f) => Ok(Arc::new(FileReplica::new(&f.path))),
        other => Err(SetupError::BackendUnavailable {
            kind: other.kind().name(),
        }),
    }
}

/// The local settings of one configured database.
pub fn db_options(db: &DbConfig) -> DbOptions {
    let mut o = DbOptions::new(&db.path);
    o.meta_path = db.meta_path.clone();
    o.busy_timeout = db.busy_timeout;
    o.checkpoint = CheckpointPolicy {
        min_page_count: db.min_checkpoint_page_count,
        truncate_page_n: db.truncate_page_n,
        interval: db.checkpoint_interval,
    };
    o.max_sync_wal_bytes = db.max_sync_wal_bytes;
    o
}

/// The compaction and retention settings of `config`.
pub fn compaction(config: &Config) -> Result<CompactionConfig, SetupError> {
    let mut c = CompactionConfig::with_level_intervals(&config.levels)?;
    c.snapshot_interval = config.snapshot.interval;
    c.snapshot_retention = config.snapshot.retention;
    c.l0_retention = config.l0_retention;
    c.l0_retention_check_interval = config.l0_retention_check_interval;
    c.retention_enabled = config.retention_enabled;
    Ok(c)
}

/// Options for replicating `dbs` (from `config.databases()`); `once` turns
/// off background monitors and compaction (`replicate -once`).
pub fn replicate_options(
    config: &Config,
    dbs: &[DbConfig],
    once: bool,
) -> Result<ReplicateOptions, SetupError> {
    let mut specs = Vec::with_capacity(dbs.len());
    for db in dbs {
        let client = open_replica(&db.replica.backend).map_err(|e| SetupError::Database {
            path: db.path.clone(),
            source: Box::new(e),
        })?;
        let mut spec = DbSpec::new(db_options(db), client);
        spec.monitor_interval = if once { None } else { db.monitor_interval };
        spec.sync_interval = db.replica.sync_interval;
        spec.max_sync_ltx_files = db.replica.max_sync_ltx_files.unwrap_or(0);
        specs.push(spec);
    }
    Ok(ReplicateOptions {
        dbs: specs,
        compaction: if once {
            None
        } else {
            Some(compaction(config)?)
        },
        shutdown_sync_timeout: config.shutdown_sync_timeout,
        shutdown_sync_interval: config.shutdown_sync_interval,
    })
}
