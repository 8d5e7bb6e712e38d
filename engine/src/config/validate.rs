//! From raw values to the validated [`Config`]: defaults, per-database
//! snapshot agreement (CLI_CONFIG.md §3.1 step 3) and the top-level checks of
//! §3.6; database entries are built in `database.rs`. The first problem
//! found is returned, located in the file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, Origin, Warning};
use super::load::Environment;
use super::model::{
    Config, DbEntry, HeartbeatConfig, LogFormat, LogLevel, LoggingConfig, MAX_LEVELS,
    MIN_HEARTBEAT_INTERVAL, SnapshotConfig, SocketConfig,
};
use super::schema::{RawConfig, RawDb};
use super::values::GoDuration;
use super::yaml::{At, Doc};

/// Largest file mode a socket can have.
const MAX_SOCKET_PERMISSIONS: i64 = 0o7777;

pub(crate) fn build(
    doc: &mut Doc,
    mut raw: RawConfig,
    env: &Environment<'_>,
) -> Result<Config, ConfigError> {
    let defaults = Config::default();
    raw.snapshot_interval = agree(doc, &raw, "interval", raw.snapshot_interval.clone(), |d| {
        &d.snapshot_interval
    })?;
    raw.snapshot_retention = agree(
        doc,
        &raw,
        "retention",
        raw.snapshot_retention.clone(),
        |d| &d.snapshot_retention,
    )?;

    let snapshot = SnapshotConfig {
        interval: positive(
            doc,
            raw.snapshot_interval.as_ref(),
            "snapshot.interval",
            defaults.snapshot.interval,
        )?,
        retention: positive(
            doc,
            raw.snapshot_retention.as_ref(),
            "snapshot.retention",
            defaults.snapshot.retention,
        )?,
    };
    let l0_retention = non_negative(
        doc,
        raw.l0_retention.as_ref(),
        "l0-retention",
        defaults.l0_retention,
    )?;
    let l0_retention_check_interval = positive(
        doc,
        raw.l0_retention_check_interval.as_ref(),
        "l0-retention-check-interval",
        defaults.l0_retention_check_interval,
    )?;
    let shutdown_sync_timeout = non_negative(
        doc,
        raw.shutdown_sync_timeout.as_ref(),
        "shutdown-sync-timeout",
        defaults.shutdown_sync_timeout,
    )?;
    let shutdown_sync_interval = positive(
        doc,
        raw.shutdown_sync_interval.as_ref(),
        "shutdown-sync-interval",
        defaults.shutdown_sync_interval,
    )?;
    let heartbeat = heartbeat(doc, &raw)?;
    let levels = levels(doc, &raw)?.unwrap_or(defaults.levels);
    let validation_interval = raw
        .validation_interval
        .as_ref()
        .map(|v| positive(doc, Some(v), "validation.interval", Duration::ZERO))
        .transpose()?;
    if let Some(addr) = &raw.addr {
        check_addr(doc, addr, "addr")?;
    }

    let mut dbs = Vec::with_capacity(raw.dbs.len());
    let mut meta_paths: HashMap<PathBuf, String> = HashMap::new();
    for db in &raw.dbs {
        let entry = super::database::build_db(doc, db, &raw.settings, env)?;
        if let DbEntry::Single(single) = &entry
            && let Some(first) = meta_paths.insert(single.meta_path.clone(), db.key.clone())
        {
            let pos = db
                .meta_path
                .as_ref()
                .or(db.path.as_ref())
                .map_or(db.pos, |p| p.pos);
            return Err(doc.error(
                pos,
                &db.key,
                format!(
                    "uses the metadata directory {} of {first}; two entries for one database, or a shared \
                     meta-path, corrupt replication state",
                    single.meta_path.display()
                ),
            ));
        }
        dbs.push(entry);
    }

    let logging = logging(doc, &raw, env)?;
    let socket = socket(doc, &raw)?;
    // Report warnings in file order; those without a position come last.
    doc.warnings.sort_by_key(|w| match w.origin {
        Origin::File { line, column, .. } => (0, line, column),
        _ => (1, 0, 0),
    });
    Ok(Config {
        dbs,
        addr: raw.addr.map(|a| a.value),
        levels,
        snapshot,
        l0_retention,
        l0_retention_check_interval,
        retention_enabled: raw.retention_enabled.is_none_or(|a| a.value),
        verify_compaction: raw.verify_compaction.is_some_and(|a| a.value),
        validation_interval,
        shutdown_sync_timeout,
        shutdown_sync_interval,
        heartbeat,
        exec: raw.exec.map(|a| a.value),
        mcp_addr: raw.mcp_addr.map(|a| a.value),
        logging,
        socket,
        warnings: std::mem::take(&mut doc.warnings),
    })
}

/// Per-database `snapshot.<field>` values: each > 0, all equal, and equal to
/// the top-level value if that is set; otherwise they become it.
fn agree(
    doc: &Doc,
    raw: &RawConfig,
    field: &str,
    global: Option<At<GoDuration>>,
    get: impl Fn(&RawDb) -> &Option<At<GoDuration>>,
) -> Result<Option<At<GoDuration>>, ConfigError> {
    let mut agreed: Option<(&At<GoDuration>, String)> = None;
    for db in &raw.dbs {
        let Some(v) = get(db) else { continue };
        let key = format!("{}.snapshot.{field}", db.key);
        if v.value <= GoDuration::ZERO {
            return Err(doc.error(
                v.pos,
                &key,
                format!("must be greater than 0 (got {})", v.value),
            ));
        }
        if let Some((first, first_key)) = &agreed
            && first.value != v.value
        {
            return Err(doc.error(
                v.pos,
                &key,
                format!(
                    "{} conflicts with {first_key} ({}); snapshots run on one schedule for all databases, \
                     so the values must agree",
                    v.value, first.value
                ),
            ));
        }
        if agreed.is_none() {
            agreed = Some((v, key));
        }
    }
    match (global, agreed) {
        (Some(g), Some((v, key))) if g.value != v.value => Err(doc.error(
            v.pos,
            &key,
            format!(
                "{} conflicts with the top-level snapshot.{field} ({}); remove one of them",
                v.value, g.value
            ),
        )),
        (Some(g), _) => Ok(Some(g)),
        (None, agreed) => Ok(agreed.map(|(v, _)| v.clone())),
    }
}

/// A duration that must be > 0.
fn positive(
    doc: &Doc,
    v: Option<&At<GoDuration>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(a) => a.value.to_std().filter(|d| !d.is_zero()).ok_or_else(|| {
            doc.error(
                a.pos,
                key,
                format!("must be greater than 0 (got {})", a.value),
            )
        }),
    }
}

/// A duration that must be ≥ 0.
pub(crate) fn non_negative(
    doc: &Doc,
    v: Option<&At<GoDuration>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(a) => a.value.to_std().ok_or_else(|| {
            doc.error(
                a.pos,
                key,
                format!("must not be negative (got {})", a.value),
            )
        }),
    }
}

/// `0` disables; negative is an error.
pub(crate) fn optional(
    doc: &Doc,
    v: Option<&At<GoDuration>>,
    key: &str,
    default: Duration,
) -> Result<Option<Duration>, ConfigError> {
    non_negative(doc, v, key, default).map(|d| (!d.is_zero()).then_some(d))
}

fn levels(doc: &Doc, raw: &RawConfig) -> Result<Option<Vec<Duration>>, ConfigError> {
    let Some(levels) = &raw.levels else {
        return Ok(None);
    };
    if levels.value.len() > MAX_LEVELS {
        return Err(doc.error(
            levels.pos,
            "levels",
            format!(
                "{} compaction levels configured; at most {MAX_LEVELS} are allowed (level 9 is the snapshot level)",
                levels.value.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(levels.value.len());
    for (i, (pos, interval)) in levels.value.iter().enumerate() {
        let key = format!("levels[{i}].interval");
        let d = match interval {
            Some(a) => a.value.to_std().filter(|d| !d.is_zero()).ok_or_else(|| {
                doc.error(
                    a.pos,
                    &key,
                    format!(
                        "compaction interval must be greater than 0 (got {})",
                        a.value
                    ),
                )
            })?,
            None => {
                return Err(doc.error(
                    *pos,
                    &key,
                    "missing; each level needs an interval such as 5m",
                ));
            }
        };
        out.push(d);
    }
    Ok(Some(out))
}

fn heartbeat(doc: &Doc, raw: &RawConfig) -> Result<Option<HeartbeatConfig>, ConfigError> {
    let interval = match &raw.heartbeat_interval {
        None => super::model::DEFAULT_HEARTBEAT_INTERVAL,
        Some(a) => a
            .value
            .to_std()
            .filter(|d| *d >= MIN_HEARTBEAT_INTERVAL)
            .ok_or_else(|| {
                doc.error(
                    a.pos,
                    "heartbeat-interval",
                    format!("must be at least 1m (got {})", a.value),
                )
            })?,
    };
    let Some(url) = &raw.heartbeat_url else {
        return Ok(None);
    };
    if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
        return Err(doc.error(
            url.pos,
            "heartbeat-url",
            format!("must be an http:// or https:// URL (got {:?})", url.value),
        ));
    }
    Ok(Some(HeartbeatConfig {
        url: url.value.clone(),
        interval,
    }))
}

/// `host:port` with a port (an empty host means all interfaces).
fn check_addr(doc: &Doc, addr: &At<String>, key: &str) -> Result<(), ConfigError> {
    match addr.value.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() => Ok(()),
        _ => Err(doc.error(
            addr.pos,
            key,
            format!(
                "{:?} has no port; write host:port, or :port for all interfaces",
                addr.value
            ),
        )),
    }
}

fn logging(
    doc: &mut Doc,
    raw: &RawConfig,
    env: &Environment<'_>,
) -> Result<LoggingConfig, ConfigError> {
    let mut level = match &raw.log_level {
        None => LogLevel::Info,
        Some(a) => LogLevel::parse(&a.value).ok_or_else(|| {
            doc.error(
                a.pos,
                "logging.level",
                format!(
                    "unknown level {:?}; use trace, debug, info, warn or error",
                    a.value
                ),
            )
        })?,
    };
    if let Some(v) = (env.vars)("LOG_LEVEL").filter(|v| !v.is_empty()) {
        match LogLevel::parse(&v) {
            Some(l) => level = l,
            // LOG_LEVEL may be meant for another program; do not refuse to start.
            None => doc.warnings.push(Warning {
                origin: Origin::Environment,
                key: "LOG_LEVEL".into(),
                message: format!(
                    "unknown level {v:?}; ignored (use trace, debug, info, warn or error)"
                ),
            }),
        }
    }
    let format = match raw.log_type.as_ref().map(|a| (a.value.as_str(), a.pos)) {
        None | Some(("text", _)) => LogFormat::Text,
        Some(("json", _)) => LogFormat::Json,
        Some(("pretty", _)) => LogFormat::Pretty,
        Some((other, pos)) => {
            return Err(doc.error(
                pos,
                "logging.type",
                format!("unknown type {other:?}; use text, json or pretty"),
            ));
        }
    };
    Ok(LoggingConfig {
        level,
        format,
        stderr: raw.log_stderr.as_ref().is_some_and(|a| a.value),
        source: raw.log_source.as_ref().is_some_and(|a| a.value),
    })
}

fn socket(doc: &Doc, raw: &RawConfig) -> Result<SocketConfig, ConfigError> {
    let mut socket = SocketConfig {
        enabled: raw.socket_enabled.as_ref().is_some_and(|a| a.value),
        ..SocketConfig::default()
    };
    if let Some(p) = &raw.socket_path {
        socket.path = PathBuf::from(&p.value);
    }
    if let Some(p) = &raw.socket_permissions {
        socket.permissions = u32::try_from(p.value)
            .ok()
            .filter(|m| i64::from(*m) <= MAX_SOCKET_PERMISSIONS)
            .ok_or_else(|| {
                doc.error(
                    p.pos,
                    "socket.permissions",
                    format!("{:o} is not a file mode such as 0600", p.value),
                )
            })?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testutil::{FILE_REPLICA, error, parse, warnings, with_db};
    use super::*;

    #[test]
    fn snapshot_interval_and_retention_must_be_positive() {
        assert_eq!(
            error(&with_db("snapshot:\n  interval: 0s\n")),
            "litestream.yml:2:13: snapshot.interval: must be greater than 0 (got 0s)"
        );
        assert_eq!(
            error(&with_db("snapshot:\n  retention: -1h\n")),
            "litestream.yml:2:14: snapshot.retention: must be greater than 0 (got -1h0m0s)"
        );
    }

    #[test]
    fn l0_retention_may_be_zero_but_not_negative() -> Result<(), ConfigError> {
        assert_eq!(
            error(&with_db("l0-retention: -1s\n")),
            "litestream.yml:1:15: l0-retention: must not be negative (got -1s)"
        );
        assert_eq!(
            parse(&with_db("l0-retention: 0\n"))?.l0_retention,
            Duration::ZERO
        );
        assert_eq!(
            error(&with_db("l0-retention-check-interval: 0s\n")),
            "litestream.yml:1:30: l0-retention-check-interval: must be greater than 0 (got 0s)"
        );
        Ok(())
    }

    #[test]
    fn shutdown_sync_settings() -> Result<(), ConfigError> {
        assert_eq!(
            error(&with_db("shutdown-sync-timeout: -5s\n")),
            "litestream.yml:1:24: shutdown-sync-timeout: must not be negative (got -5s)"
        );
        assert_eq!(
            parse(&with_db("shutdown-sync-timeout: 0s\n"))?.shutdown_sync_timeout,
            Duration::ZERO
        );
        assert_eq!(
            error(&with_db("shutdown-sync-interval: 0ms\n")),
            "litestream.yml:1:25: shutdown-sync-interval: must be greater than 0 (got 0s)"
        );
        Ok(())
    }

    #[test]
    fn heartbeat_url_and_interval() -> Result<(), ConfigError> {
        assert_eq!(
            error(&with_db("heartbeat-url: ftp://example.com/ping\n")),
            "litestream.yml:1:16: heartbeat-url: must be an http:// or https:// URL (got \"ftp://example.com/ping\")"
        );
        assert_eq!(
            error(&with_db(
                "heartbeat-url: https://hc.example/x\nheartbeat-interval: 30s\n"
            )),
            "litestream.yml:2:21: heartbeat-interval: must be at least 1m (got 30s)"
        );
        let c = parse(&with_db(
            "heartbeat-url: https://hc.example/x\nheartbeat-interval: 10m\n",
        ))?;
        assert_eq!(
            c.heartbeat,
            Some(HeartbeatConfig {
                url: "https://hc.example/x".into(),
                interval: Duration::from_secs(600)
            })
        );
        Ok(())
    }

    #[test]
    fn level_intervals_must_be_positive_and_at_most_eight() -> Result<(), ConfigError> {
        assert_eq!(
            error(&with_db("levels:\n  - interval: 30s\n  - interval: 0s\n")),
            "litestream.yml:3:15: levels[1].interval: compaction interval must be greater than 0 (got 0s)"
        );
        assert_eq!(
            error(&with_db("levels:\n  - {}\n")),
            "litestream.yml:2:5: levels[0].interval: missing; each level needs an interval such as 5m"
        );
        let nine = "levels:\n".to_owned() + &"  - interval: 1m\n".repeat(9);
        assert_eq!(
            error(&with_db(&nine)),
            "litestream.yml:2:3: levels: 9 compaction levels configured; at most 8 are allowed (level 9 is the snapshot level)"
        );
        let c = parse(&with_db("levels:\n  - interval: 10s\n  - interval: 1m\n"))?;
        assert_eq!(
            c.levels,
            vec![Duration::from_secs(10), Duration::from_secs(60)]
        );
        assert!(parse(&with_db("levels: []\n"))?.levels.is_empty());
        // An empty value also means no levels, as in Litestream.
        assert!(parse(&with_db("levels:\n"))?.levels.is_empty());
        Ok(())
    }

    #[test]
    fn per_database_snapshot_values() -> Result<(), ConfigError> {
        let two = |a: &str, b: &str| {
            format!(
                "dbs:\n  - path: /a.db\n    snapshot: {{interval: {a}}}\n{FILE_REPLICA}  - path: /b.db\n    snapshot: {{interval: {b}}}\n    replica: {{path: /backups/b}}\n"
            )
        };
        assert_eq!(
            error(&two("0s", "1h")),
            "litestream.yml:3:26: dbs[0].snapshot.interval: must be greater than 0 (got 0s)"
        );
        assert_eq!(
            error(&two("2h", "1h")),
            "litestream.yml:7:26: dbs[1].snapshot.interval: 1h0m0s conflicts with dbs[0].snapshot.interval (2h0m0s); snapshots run on one schedule for all databases, so the values must agree"
        );
        // Agreeing per-database values become the global value.
        let c = parse(&two("2h", "2h"))?;
        assert_eq!(c.snapshot.interval, Duration::from_secs(7200));
        assert_eq!(c.snapshot.retention, Duration::from_secs(86_400));
        // A per-database value must agree with an explicit top-level one.
        let with_global = format!("snapshot:\n  interval: 1h\n{}", two("2h", "2h"));
        assert_eq!(
            error(&with_global),
            "litestream.yml:5:26: dbs[0].snapshot.interval: 2h0m0s conflicts with the top-level snapshot.interval (1h0m0s); remove one of them"
        );
        let retention =
            "dbs:\n  - path: /a.db\n    snapshot:\n      retention: 72h\n    replica: {path: /b}\n";
        assert_eq!(
            parse(retention)?.snapshot.retention,
            Duration::from_secs(72 * 3600)
        );
        Ok(())
    }

    #[test]
    fn two_entries_for_one_database_are_refused() {
        assert_eq!(
            error(&format!(
                "dbs:\n  - path: /a.db\n{FILE_REPLICA}  - path: /x/../a.db\n    replica: {{path: /c}}\n"
            )),
            "litestream.yml:5:11: dbs[1]: uses the metadata directory /.a.db-litestream of dbs[0]; two entries for one database, or a shared meta-path, corrupt replication state"
        );
    }

    #[test]
    fn logging_and_socket_values() -> Result<(), ConfigError> {
        let c = parse(&with_db(
            "logging:\n  level: DEBUG\n  type: json\n  stderr: true\nsocket:\n  enabled: true\n  permissions: 0660\n",
        ))?;
        assert_eq!(c.logging.level, LogLevel::Debug);
        assert_eq!(c.logging.format, LogFormat::Json);
        assert!(c.logging.stderr);
        assert_eq!(c.socket.permissions, 0o660);
        assert!(c.socket.enabled);
        assert_eq!(
            error(&with_db("logging:\n  level: verbose\n")),
            "litestream.yml:2:10: logging.level: unknown level \"verbose\"; use trace, debug, info, warn or error"
        );
        assert_eq!(
            error(&with_db("logging:\n  type: xml\n")),
            "litestream.yml:2:9: logging.type: unknown type \"xml\"; use text, json or pretty"
        );
        assert_eq!(
            error(&with_db("addr: localhost\n")),
            "litestream.yml:1:7: addr: \"localhost\" has no port; write host:port, or :port for all interfaces"
        );
        Ok(())
    }

    #[test]
    fn log_level_environment_overrides_the_file() -> Result<(), ConfigError> {
        use super::super::testutil::parse_with;
        let text = with_db("logging:\n  level: error\n");
        assert_eq!(
            parse_with(&text, &[("LOG_LEVEL", "trace")])?.logging.level,
            LogLevel::Trace
        );
        let c = parse_with(&text, &[("LOG_LEVEL", "loud")])?;
        assert_eq!(c.logging.level, LogLevel::Error);
        assert_eq!(
            warnings(&c),
            vec![
                "environment: LOG_LEVEL: unknown level \"loud\"; ignored (use trace, debug, info, warn or error)"
            ]
        );
        Ok(())
    }
}
