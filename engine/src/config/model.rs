//! The validated runtime configuration and its defaults (CLI_CONFIG.md §3.2–3.3).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::backend::BackendConfig;
use super::dir::DirConfig;
use super::error::{ConfigError, Warning};
use super::replica::{DEFAULT_MAX_SYNC_LTX_FILES, DEFAULT_SYNC_INTERVAL};

/// Default compaction levels 1..3: 30 s, 5 min, 1 h (REPLICA_LAYOUT.md §1.1).
pub const DEFAULT_LEVEL_INTERVALS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
];
/// At most this many compaction levels may be configured (level 9 is the
/// snapshot level).
pub const MAX_LEVELS: usize = 8;
/// Default level-9 snapshot period: 24 h.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default snapshot age limit: 24 h.
pub const DEFAULT_SNAPSHOT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Default time L0 files are kept after compaction into L1: 5 min.
pub const DEFAULT_L0_RETENTION: Duration = Duration::from_secs(5 * 60);
/// Default period of the L0 retention check: 15 s.
pub const DEFAULT_L0_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// Default time spent retrying the final sync at shutdown: 30 s.
pub const DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait between final-sync attempts at shutdown: 500 ms.
pub const DEFAULT_SHUTDOWN_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Default heartbeat period: 5 min.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Shortest heartbeat period accepted: 1 min.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Default control socket path.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/litestream.sock";
/// Default control socket file mode.
pub const DEFAULT_SOCKET_PERMISSIONS: u32 = 0o600;
/// Default WAL poll period of a database: 1 s.
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// Default period of time-based passive checkpoints: 1 min.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Default SQLite busy timeout: 1 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// Default WAL size, in pages, that triggers a passive checkpoint.
pub const DEFAULT_MIN_CHECKPOINT_PAGE_COUNT: u32 = 1000;
/// Default WAL size, in pages, that triggers an emergency TRUNCATE
/// checkpoint (about 500 MB at 4 KiB pages).
pub const DEFAULT_TRUNCATE_PAGE_N: u32 = 121_359;
/// Default WAL bytes converted per sync step: 64 MiB.
pub const DEFAULT_MAX_SYNC_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// Suffix of a metadata directory name (REPLICA_LAYOUT.md §8).
pub const META_DIR_SUFFIX: &str = "-litestream";

/// The whole configuration, validated; nothing here needs checking again.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Database entries in file order.
    pub dbs: Vec<DbEntry>,
    /// Metrics listen address `host:port`.
    pub addr: Option<String>,
    /// Intervals of compaction levels 1..N.
    pub levels: Vec<Duration>,
    /// Level-9 snapshots.
    pub snapshot: SnapshotConfig,
    /// How long L0 files stay after compaction into L1; zero disables L0
    /// deletion.
    pub l0_retention: Duration,
    /// Period of the L0 retention check.
    pub l0_retention_check_interval: Duration,
    /// `retention.enabled`: `false` never deletes remote files.
    pub retention_enabled: bool,
    /// Check each compaction's output level for TXID gaps and overlaps.
    pub verify_compaction: bool,
    /// `validation.interval`: periodic level checks (log only).
    pub validation_interval: Option<Duration>,
    /// Time spent retrying the final sync at shutdown; zero: one attempt.
    pub shutdown_sync_timeout: Duration,
    /// Wait between final-sync attempts.
    pub shutdown_sync_interval: Duration,
    /// Heartbeat pings (not supported yet; see [`Config::warnings`]).
    pub heartbeat: Option<HeartbeatConfig>,
    /// Child command run by `replicate` (CLI_CONFIG.md §7).
    pub exec: Option<String>,
    /// MCP server address (not supported yet; see [`Config::warnings`]).
    pub mcp_addr: Option<String>,
    /// Logging.
    pub logging: LoggingConfig,
    /// Control socket (not supported yet; see [`Config::warnings`]).
    pub socket: SocketConfig,
    /// Accepted settings freshet does not act on; log each once.
    pub warnings: Vec<Warning>,
}

impl Default for Config {
    /// The configuration of an empty file.
    fn default() -> Self {
        Self {
            dbs: Vec::new(),
            addr: None,
            levels: DEFAULT_LEVEL_INTERVALS.to_vec(),
            snapshot: SnapshotConfig::default(),
            l0_retention: DEFAULT_L0_RETENTION,
            l0_retention_check_interval: DEFAULT_L0_RETENTION_CHECK_INTERVAL,
            retention_enabled: true,
            verify_compaction: false,
            validation_interval: None,
            shutdown_sync_timeout: DEFAULT_SHUTDOWN_SYNC_TIMEOUT,
            shutdown_sync_interval: DEFAULT_SHUTDOWN_SYNC_INTERVAL,
            heartbeat: None,
            exec: None,
            mcp_addr: None,
            logging: LoggingConfig::default(),
            socket: SocketConfig::default(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Every database: single entries as they are, directory entries
    /// scanned now. Fails when a directory entry without `watch` finds no
    /// database, or when two databases would share a metadata directory.
    pub fn databases(&self) -> Result<Vec<DbConfig>, ConfigError> {
        let mut out = Vec::new();
        for entry in &self.dbs {
            match entry {
                DbEntry::Single(db) => out.push(db.clone()),
                DbEntry::Directory(dir) => out.extend(dir.scan()?),
            }
        }
        check_meta_paths(&out)?;
        Ok(out)
    }

    /// The single-database entry for `path` (already normalised).
    pub fn database(&self, path: &Path) -> Option<&DbConfig> {
        self.dbs.iter().find_map(|e| match e {
            DbEntry::Single(db) if db.path == path => Some(db),
            _ => None,
        })
    }
}

/// Fails if two databases share a metadata directory.
pub(crate) fn check_meta_paths(dbs: &[DbConfig]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&Path, &Path> = HashMap::new();
    for db in dbs {
        if let Some(first) = seen.insert(&db.meta_path, &db.path) {
            return Err(ConfigError::MetaPathCollision {
                first: first.to_path_buf(),
                second: db.path.clone(),
                meta_path: db.meta_path.clone(),
            });
        }
    }
    Ok(())
}

/// One `dbs` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum DbEntry {
    /// `path:`: one database.
    Single(DbConfig),
    /// `dir:` + `pattern:`: every matching database in a directory.
    Directory(DirConfig),
}

/// One database and its replica.
#[derive(Debug, Clone, PartialEq)]
pub struct DbConfig {
    /// Absolute path of the database file.
    pub path: PathBuf,
    /// Metadata directory (REPLICA_LAYOUT.md §8).
    pub meta_path: PathBuf,
    /// WAL poll period; `None` disables background sync.
    pub monitor_interval: Option<Duration>,
    /// Time-based passive checkpoint period; `None` disables it.
    pub checkpoint_interval: Option<Duration>,
    /// SQLite busy timeout.
    pub busy_timeout: Duration,
    /// WAL pages that trigger a passive checkpoint (> 0).
    pub min_checkpoint_page_count: u32,
    /// WAL pages that trigger an emergency TRUNCATE checkpoint (> 0).
    pub truncate_page_n: u32,
    /// WAL bytes converted per sync step; `None` = unlimited.
    pub max_sync_wal_bytes: Option<u64>,
    /// Restore the database from its replica first if it does not exist.
    pub restore_if_db_not_exists: bool,
    /// The replica.
    pub replica: ReplicaConfig,
}

impl DbConfig {
    /// A database with every default and the default metadata directory.
    pub fn new(path: PathBuf, replica: ReplicaConfig) -> Self {
        Self {
            meta_path: default_meta_path(&path),
            path,
            monitor_interval: Some(DEFAULT_MONITOR_INTERVAL),
            checkpoint_interval: Some(DEFAULT_CHECKPOINT_INTERVAL),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            min_checkpoint_page_count: DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
            truncate_page_n: DEFAULT_TRUNCATE_PAGE_N,
            max_sync_wal_bytes: Some(DEFAULT_MAX_SYNC_WAL_BYTES),
            restore_if_db_not_exists: false,
            replica,
        }
    }
}

/// `/dir/name.db` → `/dir/.name.db-litestream` (REPLICA_LAYOUT.md §8).
pub fn default_meta_path(db: &Path) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    db.with_file_name(format!(".{name}{META_DIR_SUFFIX}"))
}

/// A database's replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// Upload period (> 0).
    pub sync_interval: Duration,
    /// LTX files uploaded per batch; `None` = unlimited.
    pub max_sync_ltx_files: Option<usize>,
    /// Reset local state when local LTX files are missing or corrupt.
    pub auto_recover: bool,
    /// Where the replica lives.
    pub backend: BackendConfig,
}

impl ReplicaConfig {
    /// A replica with the default settings.
    pub fn new(backend: BackendConfig) -> Self {
        Self {
            sync_interval: DEFAULT_SYNC_INTERVAL,
            max_sync_ltx_files: Some(DEFAULT_MAX_SYNC_LTX_FILES),
            auto_recover: false,
            backend,
        }
    }
}

/// Level-9 snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Snapshot period (> 0).
    pub interval: Duration,
    /// Snapshot age limit (> 0).
    pub retention: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_SNAPSHOT_INTERVAL,
            retention: DEFAULT_SNAPSHOT_RETENTION,
        }
    }
}

/// Heartbeat pings after successful uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// `http://` or `https://` URL to GET.
    pub url: String,
    /// Minimum time between pings (≥ 1 min).
    pub interval: Duration,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoggingConfig {
    /// Minimum level (`LOG_LEVEL` overrides the file).
    pub level: LogLevel,
    /// Output format.
    pub format: LogFormat,
    /// Log to stderr instead of stdout.
    pub stderr: bool,
    /// Include source file and line.
    pub source: bool,
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info` (default).
    #[default]
    Info,
    /// `warn` or `warning`.
    Warn,
    /// `error`.
    Error,
}

impl LogLevel {
    /// Parses a level name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "trace" => Some(Self::Trace),
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `text` (default).
    #[default]
    Text,
    /// `json`.
    Json,
    /// `pretty`: coloured when writing to a terminal.
    Pretty,
}

/// The control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Serve the control API.
    pub enabled: bool,
    /// Socket path.
    pub path: PathBuf,
    /// File mode.
    pub permissions: u32,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: PathBuf::from(DEFAULT_SOCKET_PATH),
            permissions: DEFAULT_SOCKET_PERMISSIONS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_path_defaults_to_a_hidden_sibling() {
        assert_eq!(
            default_meta_path(Path::new("/var/lib/app/app.db")),
            PathBuf::from("/var/lib/app/.app.db-litestream")
        );
        assert_eq!(
            default_meta_path(Path::new("/data/x")),
            PathBuf::from("/data/.x-litestream")
        );
    }

    #[test]
    fn log_levels_parse_case_insensitively() {
        assert_eq!(LogLevel::parse("WARNING"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("Trace"), Some(LogLevel::Trace));
        assert_eq!(LogLevel::parse("verbose"), None);
    }

    #[test]
    fn empty_config_defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(
            c.levels,
            vec![
                Duration::from_secs(30),
                Duration::from_secs(300),
                Duration::from_secs(3600)
            ]
        );
        assert_eq!(c.snapshot.interval, Duration::from_secs(86_400));
        assert_eq!(c.snapshot.retention, Duration::from_secs(86_400));
        assert_eq!(c.l0_retention, Duration::from_secs(300));
        assert_eq!(c.l0_retention_check_interval, Duration::from_secs(15));
        assert_eq!(c.shutdown_sync_timeout, Duration::from_secs(30));
        assert_eq!(c.shutdown_sync_interval, Duration::from_millis(500));
        assert!(c.retention_enabled);
        assert_eq!(c.socket.permissions, 0o600);
        assert_eq!(c.logging.level, LogLevel::Info);
    }
}
