//! From a validated [`Config`] to running parts: replica clients and the
//! options of [`Replicator`](crate::replicate::Replicator).

use std::path::PathBuf;
use std::sync::Arc;

use backends::ReplicaClient;
use backends::file::FileReplica;
use backends::s3::{Encryption, S3Replica, S3Settings, SecretString};

use crate::compact::{CompactError, CompactionConfig};
use crate::config::{
    BackendConfig, Config, ConfigError, DbConfig, S3Config, S3Encryption, S3Provider,
};
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
    /// The replica client could not be built (e.g. no S3 credentials).
    #[error(transparent)]
    Replica(#[from] backends::Error),
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
        BackendConfig::S3(c) => Ok(Arc::new(S3Replica::new(s3_settings(c))?)),
        other => Err(SetupError::BackendUnavailable {
            kind: other.kind().name(),
        }),
    }
}

/// The S3 client settings of a validated S3 replica configuration.
pub fn s3_settings(c: &S3Config) -> S3Settings {
    let mut s = S3Settings::new(&c.bucket, &c.path);
    s.region = c.region.clone();
    s.endpoint = c.endpoint.clone();
    s.force_path_style = c.force_path_style;
    s.skip_verify = c.skip_verify;
    s.sign_payload = c.sign_payload;
    s.require_content_md5 = c.require_content_md5;
    s.storage_class = c.storage_class.clone();
    s.part_size = c.part_size;
    s.concurrency = c.concurrency;
    s.access_key_id = c.access_key_id.clone();
    s.secret_access_key = c
        .secret_access_key
        .as_ref()
        .map(|k| SecretString::new(k.expose()));
    s.encryption = match &c.encryption {
        S3Encryption::None => Encryption::None,
        S3Encryption::CustomerKey { key, .. } => Encryption::CustomerKey {
            key: SecretString::new(key.expose()),
        },
        S3Encryption::Kms { key_id } => Encryption::Kms {
            key_id: key_id.clone(),
        },
    };
    // Tigris: strongly consistent reads (S3_PROTOCOL.md §1.7).
    if c.provider == S3Provider::Tigris {
        s.extra_headers
            .push(("x-tigris-consistent".to_owned(), "true".to_owned()));
    }
    s
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
        metrics: crate::metrics::Metrics::new(),
    })
}
