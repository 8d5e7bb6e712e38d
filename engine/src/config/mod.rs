//! `litestream.yml` configuration (CLI_CONFIG.md §1, §3–5; REPLICA_LAYOUT.md §8).
//!
//! [`load`] finds the file (`-config`, `$LITESTREAM_CONFIG`,
//! `/etc/litestream.yml`), expands `$VAR` references in the raw text with Go's
//! `os.Expand` rules, parses the YAML, and returns a validated, immutable
//! [`Config`]: durations as [`std::time::Duration`], paths absolute, every
//! default applied, replica settings inherited from the top level and each
//! replica resolved into a typed [`BackendConfig`]. [`Config::from_db_and_url`]
//! builds the same from `replicate DB_PATH REPLICA_URL`, and
//! [`parse_replica_url`] parses a replica URL alone.
//!
//! # Differences from Litestream, on purpose
//!
//! Litestream ignores what it does not understand; a typo silently falls back
//! to a default. freshet refuses the file instead, naming file, line, column
//! and key path: `litestream.yml:7:5: dbs[0].replica: unknown key "bucktet"
//! (did you mean "bucket"?)`. The same holds for a wrong type, a malformed
//! value, a key that does not apply to the replica's type or entry (`bucket`
//! on a file replica, `pattern` without `dir`), a `type` that contradicts the
//! URL scheme, an S3 `part-size` below 5 MiB, and an invalid SSE-C key.
//! Otherwise a file means what it means to Litestream, quirks included (an
//! empty `levels:` configures no compaction levels, an unquoted integer
//! duration is nanoseconds, a top-level `skip-verify: true` wins over a
//! replica's `false`). freshet is more lenient in one way: a quoted number or
//! boolean (`"0600"`, `"true"`) is read as its value, where Litestream's
//! decoder refuses it.
//!
//! Settings freshet parses but does not act on yet are accepted and listed in
//! [`Config::warnings`], never dropped silently: `mcp-addr`, `socket`,
//! `heartbeat-*`, replica types other than `file` and `s3` (building a client
//! for them fails with [`ConfigError::UnsupportedBackend`] via
//! [`BackendConfig::require_supported`]), deprecated or unused keys (`name`,
//! `replicas`, `validation-interval`), Litestream 0.3 keys, and top-level keys
//! replicas do not inherit. `age` encryption is refused, as in Litestream.

mod backend;
mod database;
mod dir;
mod doc;
mod error;
mod expand;
mod keys;
mod load;
mod model;
mod others;
mod replica;
mod s3;
mod schema;
mod sse;
#[cfg(test)]
mod testutil;
mod url;
mod validate;
mod values;
mod yaml;

pub use backend::{
    AbsConfig, BackendConfig, BackendKind, FileConfig, GsConfig, NATS_DEFAULT_RECONNECT_WAIT,
    NATS_DEFAULT_TIMEOUT, NatsConfig, OSS_DEFAULT_REGION, OssConfig, S3_DEFAULT_CONCURRENCY,
    S3_FALLBACK_REGION, S3_MIN_PART_SIZE_BYTES, S3_R2_CONCURRENCY, S3_SSE_CUSTOMER_ALGORITHM,
    S3Config, S3Encryption, S3Provider, SftpConfig, WebdavConfig,
};
pub use dir::{DirConfig, DirMeta, is_sqlite_database};
pub use error::{ConfigError, Origin, Secret, Warning};
pub use expand::expand_env;
pub use load::{
    CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, Environment, MAX_CONFIG_BYTES, load, normalize_db_path,
    parse_replica_url, parse_replica_url_in, parse_str, resolve_config_path,
    resolve_config_path_in,
};
pub use model::{
    Config, DEFAULT_BUSY_TIMEOUT, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_L0_RETENTION, DEFAULT_L0_RETENTION_CHECK_INTERVAL, DEFAULT_LEVEL_INTERVALS,
    DEFAULT_MAX_SYNC_WAL_BYTES, DEFAULT_MIN_CHECKPOINT_PAGE_COUNT, DEFAULT_MONITOR_INTERVAL,
    DEFAULT_SHUTDOWN_SYNC_INTERVAL, DEFAULT_SHUTDOWN_SYNC_TIMEOUT, DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SNAPSHOT_RETENTION, DEFAULT_SOCKET_PATH, DEFAULT_SOCKET_PERMISSIONS,
    DEFAULT_TRUNCATE_PAGE_N, DbConfig, DbEntry, HeartbeatConfig, LogFormat, LogLevel,
    LoggingConfig, MAX_LEVELS, META_DIR_SUFFIX, MIN_HEARTBEAT_INTERVAL, ReplicaConfig,
    SnapshotConfig, SocketConfig, default_meta_path,
};
pub use replica::{DEFAULT_MAX_SYNC_LTX_FILES, DEFAULT_SYNC_INTERVAL};
pub use url::is_replica_url;
pub use values::{GoDuration, ValueError, parse_byte_size, parse_duration};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::testutil::{db, parse_with, s3, warnings};
    use super::*;

    /// A configuration like the ones in Litestream's documentation, with
    /// every section used.
    const REALISTIC: &str = r#"# litestream.yml for the app servers (pid $PID)
access-key-id: ${AWS_ACCESS_KEY_ID}
secret-access-key: ${AWS_SECRET_ACCESS_KEY}
region: us-east-1
addr: ":9090"
exec: "/usr/bin/app serve --port 8080"
levels:
  - interval: 30s
  - interval: 5m
  - interval: 1h
  - interval: 12h
snapshot:
  interval: 24h
  retention: 168h
l0-retention: 10m
l0-retention-check-interval: 30s
retention:
  enabled: true
verify-compaction: yes
validation:
  interval: 6h
shutdown-sync-timeout: 1m
shutdown-sync-interval: 250ms
logging:
  level: info
  type: json
  stderr: true
dbs:
  - path: /var/lib/app/app.db
    monitor-interval: 500ms
    checkpoint-interval: 2m
    min-checkpoint-page-count: 2000
    replica:
      url: s3://my-bucket/app?endpoint=minio.local:9000
      sync-interval: 1s
      part-size: 10MiB
  - path: ~/local.db
    meta-path: /var/lib/meta/local
    replica:
      type: file
      path: /mnt/backups/local
  - dir: /srv/tenants
    pattern: "*.sqlite"
    recursive: true
    watch: true
    replica:
      url: s3://tenant-bucket/tenants
"#;

    #[test]
    fn a_realistic_config() -> Result<(), ConfigError> {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("PID", "4242"),
        ];
        let c = parse_with(REALISTIC, &vars)?;
        assert_eq!(c.addr.as_deref(), Some(":9090"));
        assert_eq!(c.exec.as_deref(), Some("/usr/bin/app serve --port 8080"));
        assert_eq!(
            c.levels,
            vec![
                Duration::from_secs(30),
                Duration::from_secs(300),
                Duration::from_secs(3600),
                Duration::from_secs(12 * 3600)
            ]
        );
        assert_eq!(
            c.snapshot,
            SnapshotConfig {
                interval: Duration::from_secs(86_400),
                retention: Duration::from_secs(7 * 86_400)
            }
        );
        assert_eq!(c.l0_retention, Duration::from_secs(600));
        assert_eq!(c.l0_retention_check_interval, Duration::from_secs(30));
        assert!(c.retention_enabled && c.verify_compaction);
        assert_eq!(c.validation_interval, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(c.shutdown_sync_timeout, Duration::from_secs(60));
        assert_eq!(c.shutdown_sync_interval, Duration::from_millis(250));
        assert_eq!(
            c.logging,
            LoggingConfig {
                level: LogLevel::Info,
                format: LogFormat::Json,
                stderr: true,
                source: false
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", warnings(&c));

        let app = db(&c, 0);
        assert_eq!(app.path, PathBuf::from("/var/lib/app/app.db"));
        assert_eq!(
            app.meta_path,
            PathBuf::from("/var/lib/app/.app.db-litestream")
        );
        assert_eq!(app.monitor_interval, Some(Duration::from_millis(500)));
        assert_eq!(app.checkpoint_interval, Some(Duration::from_secs(120)));
        assert_eq!(app.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert_eq!(app.min_checkpoint_page_count, 2000);
        assert_eq!(app.truncate_page_n, DEFAULT_TRUNCATE_PAGE_N);
        assert_eq!(app.max_sync_wal_bytes, Some(DEFAULT_MAX_SYNC_WAL_BYTES));
        let s = s3(&c, 0);
        assert_eq!((s.bucket.as_str(), s.path.as_str()), ("my-bucket", "app"));
        assert_eq!(s.endpoint.as_deref(), Some("http://minio.local:9000"));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert!(s.force_path_style);
        assert_eq!(s.part_size, 10 << 20);
        assert_eq!(s.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(
            s.secret_access_key.as_ref().map(Secret::expose),
            Some("wJalrXUtnFEMI")
        );

        let local = db(&c, 1);
        assert_eq!(local.path, PathBuf::from("/home/u/local.db"));
        assert_eq!(local.meta_path, PathBuf::from("/var/lib/meta/local"));
        assert_eq!(
            local.replica.backend,
            BackendConfig::File(FileConfig {
                path: PathBuf::from("/mnt/backups/local")
            })
        );

        let Some(DbEntry::Directory(tenants)) = c.dbs.get(2) else {
            panic!("dbs[2] is not a directory entry");
        };
        assert_eq!(tenants.dir, PathBuf::from("/srv/tenants"));
        assert_eq!(tenants.pattern, "*.sqlite");
        assert!(tenants.recursive && tenants.watch);
        assert_eq!(tenants.meta, DirMeta::Beside);
        let tenant = tenants.database(Path::new("/srv/tenants/acme/main.sqlite"));
        let Some(BackendConfig::S3(t)) = tenant.as_ref().map(|d| &d.replica.backend) else {
            panic!("no tenant database");
        };
        assert_eq!(
            (t.bucket.as_str(), t.path.as_str()),
            ("tenant-bucket", "tenants/acme/main.sqlite")
        );

        // Secrets stay out of debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"));
        assert!(debug.contains("AKIAEXAMPLE"));
        Ok(())
    }

    #[test]
    fn expansion_can_be_turned_off() -> Result<(), ConfigError> {
        let text = "dbs:\n  - path: /data/$NAME.db\n    replica: {path: /b}\n";
        let env = Environment {
            vars: &|name| (name == "NAME").then(|| "x".to_owned()),
            home: None,
            cwd: None,
        };
        let on = parse_str(text, Path::new("c.yml"), &env, true)?;
        assert_eq!(db(&on, 0).path, PathBuf::from("/data/x.db"));
        let off = parse_str(text, Path::new("c.yml"), &env, false)?;
        assert_eq!(db(&off, 0).path, PathBuf::from("/data/$NAME.db"));
        Ok(())
    }

    #[test]
    fn errors_point_into_the_file_as_written_after_expansion() {
        // `$LONG` expands to a longer text; the bad value after it is still
        // reported at its column in the file, and a bad expanded value at the `$`.
        let text = "dbs:\n  - path: /data/app.db\n    replica:\n      url: ${REPLICA}\n      bucket: ${BUCKET}\n";
        let err = parse_with(
            text,
            &[
                ("REPLICA", "s3://some-long-bucket-name/with/a/path"),
                ("BUCKET", "x"),
            ],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert_eq!(
            err,
            "litestream.yml:5:15: dbs[0].replica.bucket: url and bucket are both set; the url already gives the bucket, so keep only one"
        );
        let err = parse_with("l0-retention: ${RET}\n", &[("RET", "forever")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "litestream.yml:1:15: l0-retention: invalid duration \"forever\": expected a number with a unit, such as 30s, 5m or 1h30m"
        );
    }
}
