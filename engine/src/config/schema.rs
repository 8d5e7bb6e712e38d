//! Reading the document into raw, located values: every top-level key of
//! CLI_CONFIG.md §3.2 and every database key of §3.3. Unknown keys are
//! errors; keys of features freshet does not implement yet become warnings.

use super::error::ConfigError;
use super::keys::{self, Settings, join};
use super::replica::{self, RawReplica};
use super::values::GoDuration;
use super::yaml::{At, Doc, Key, Node, Pos};

/// Top-level keys besides the replica settings.
const TOP_KEYS: &[&str] = &[
    "dbs",
    "addr",
    "levels",
    "snapshot",
    "l0-retention",
    "l0-retention-check-interval",
    "retention",
    "verify-compaction",
    "validation",
    "shutdown-sync-timeout",
    "shutdown-sync-interval",
    "heartbeat-url",
    "heartbeat-interval",
    "exec",
    "mcp-addr",
    "logging",
    "socket",
];

/// Database entry keys.
const DB_KEYS: &[&str] = &[
    "path",
    "dir",
    "pattern",
    "recursive",
    "watch",
    "meta-path",
    "meta-dir",
    "monitor-interval",
    "checkpoint-interval",
    "busy-timeout",
    "min-checkpoint-page-count",
    "truncate-page-n",
    "max-sync-wal-bytes",
    "restore-if-db-not-exists",
    "snapshot",
    "replica",
    "replicas",
];

type Dur = Option<At<GoDuration>>;
/// `levels`: its position, and each level's position and interval.
type Levels = At<Vec<(Pos, Dur)>>;

/// The top level as written.
#[derive(Default)]
pub(crate) struct RawConfig {
    pub(crate) dbs: Vec<RawDb>,
    pub(crate) addr: Option<At<String>>,
    /// Position of `levels` and each level's interval (`None`: the level
    /// mapping has no interval).
    pub(crate) levels: Option<Levels>,
    pub(crate) snapshot_interval: Dur,
    pub(crate) snapshot_retention: Dur,
    pub(crate) l0_retention: Dur,
    pub(crate) l0_retention_check_interval: Dur,
    pub(crate) retention_enabled: Option<At<bool>>,
    pub(crate) verify_compaction: Option<At<bool>>,
    pub(crate) validation_interval: Dur,
    pub(crate) shutdown_sync_timeout: Dur,
    pub(crate) shutdown_sync_interval: Dur,
    pub(crate) heartbeat_url: Option<At<String>>,
    pub(crate) heartbeat_interval: Dur,
    pub(crate) exec: Option<At<String>>,
    pub(crate) mcp_addr: Option<At<String>>,
    pub(crate) log_level: Option<At<String>>,
    pub(crate) log_type: Option<At<String>>,
    pub(crate) log_stderr: Option<At<bool>>,
    pub(crate) log_source: Option<At<bool>>,
    pub(crate) socket_enabled: Option<At<bool>>,
    pub(crate) socket_path: Option<At<String>>,
    pub(crate) socket_permissions: Option<At<i64>>,
    /// Top-level defaults for every replica.
    pub(crate) settings: Settings,
}

/// One `dbs` entry as written.
pub(crate) struct RawDb {
    /// `dbs[i]`.
    pub(crate) key: String,
    pub(crate) pos: Pos,
    pub(crate) path: Option<At<String>>,
    pub(crate) dir: Option<At<String>>,
    pub(crate) pattern: Option<At<String>>,
    pub(crate) recursive: Option<At<bool>>,
    pub(crate) watch: Option<At<bool>>,
    pub(crate) meta_path: Option<At<String>>,
    pub(crate) meta_dir: Option<At<String>>,
    pub(crate) monitor_interval: Dur,
    pub(crate) checkpoint_interval: Dur,
    pub(crate) busy_timeout: Dur,
    pub(crate) min_checkpoint_page_count: Option<At<i64>>,
    pub(crate) truncate_page_n: Option<At<i64>>,
    pub(crate) max_sync_wal_bytes: Option<At<i64>>,
    pub(crate) restore_if_db_not_exists: Option<At<bool>>,
    pub(crate) snapshot_interval: Dur,
    pub(crate) snapshot_retention: Dur,
    pub(crate) replica: Option<RawReplica>,
    /// Position of `replicas` and its entries.
    pub(crate) replicas: Option<At<Vec<RawReplica>>>,
}

/// Reads the whole document.
pub(crate) fn read(doc: &mut Doc, root: &Node) -> Result<RawConfig, ConfigError> {
    let mut raw = RawConfig::default();
    let Some(entries) = doc.map(root, "config")? else {
        return Ok(raw);
    };
    for (key, value) in entries {
        let k = key.name.as_str();
        match k {
            "dbs" => {
                for (i, item) in doc.seq(value, k)?.unwrap_or_default().iter().enumerate() {
                    raw.dbs.push(read_db(doc, item, &format!("dbs[{i}]"))?);
                }
            }
            "addr" => raw.addr = doc.string(value, k)?,
            "levels" => raw.levels = read_levels(doc, value)?,
            "snapshot" => {
                (raw.snapshot_interval, raw.snapshot_retention) = read_snapshot(doc, value, k)?
            }
            "l0-retention" => raw.l0_retention = doc.duration(value, k)?,
            "l0-retention-check-interval" => {
                raw.l0_retention_check_interval = doc.duration(value, k)?
            }
            "retention" => {
                for (sub, v) in doc.map(value, k)?.unwrap_or_default() {
                    match sub.name.as_str() {
                        "enabled" => raw.retention_enabled = doc.bool(v, "retention.enabled")?,
                        _ => return Err(doc.unknown_key(sub, k, &["enabled"])),
                    }
                }
            }
            "verify-compaction" => raw.verify_compaction = doc.bool(value, k)?,
            "validation" => {
                for (sub, v) in doc.map(value, k)?.unwrap_or_default() {
                    match sub.name.as_str() {
                        "interval" => {
                            raw.validation_interval = doc.duration(v, "validation.interval")?
                        }
                        _ => return Err(doc.unknown_key(sub, k, &["interval"])),
                    }
                }
            }
            "shutdown-sync-timeout" => raw.shutdown_sync_timeout = doc.duration(value, k)?,
            "shutdown-sync-interval" => raw.shutdown_sync_interval = doc.duration(value, k)?,
            "heartbeat-url" => {
                raw.heartbeat_url = doc.string(value, k)?;
                not_supported(
                    doc,
                    key,
                    value,
                    "heartbeat pings are not supported yet; ignored",
                );
            }
            "heartbeat-interval" => {
                raw.heartbeat_interval = doc.duration(value, k)?;
                not_supported(
                    doc,
                    key,
                    value,
                    "heartbeat pings are not supported yet; ignored",
                );
            }
            "exec" => raw.exec = doc.string(value, k)?,
            "mcp-addr" => {
                raw.mcp_addr = doc.string(value, k)?;
                not_supported(
                    doc,
                    key,
                    value,
                    "the MCP server is not supported yet; ignored",
                );
            }
            "logging" => read_logging(doc, value, &mut raw)?,
            "socket" => {
                read_socket(doc, value, &mut raw)?;
                not_supported(
                    doc,
                    key,
                    value,
                    "the control socket is not supported yet; ignored",
                );
            }
            name => {
                if !raw.settings.read(doc, name, value, "")? {
                    let known: Vec<&str> = TOP_KEYS.iter().copied().chain(keys::names()).collect();
                    return Err(doc.unknown_key(key, "", &known));
                }
                if name == "validation-interval" {
                    doc.warn(key.pos, name, "parsed but not used, as in Litestream 0.5");
                }
            }
        }
    }
    for (k, pos) in raw.settings.not_inherited().collect::<Vec<_>>() {
        doc.warn(
            pos,
            keys::name(k),
            "replicas do not inherit this top-level setting (as in Litestream); set it on each replica",
        );
    }
    Ok(raw)
}

/// Warns about a key of a feature freshet does not implement, unless empty.
fn not_supported(doc: &mut Doc, key: &Key, value: &Node, message: &str) {
    if !keys::is_empty(value) {
        doc.warn(key.pos, &key.name, message);
    }
}

/// `levels:` with an empty value configures no levels, as in Litestream
/// (its decoder sets the list to nil); only an absent key keeps the default.
fn read_levels(doc: &Doc, node: &Node) -> Result<Option<Levels>, ConfigError> {
    let items = doc.seq(node, "levels")?.unwrap_or_default();
    let mut levels = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("levels[{i}]");
        let mut interval = None;
        for (key, value) in doc.map(item, &path)?.unwrap_or_default() {
            match key.name.as_str() {
                "interval" => interval = doc.duration(value, &join(&path, "interval"))?,
                _ => return Err(doc.unknown_key(key, &path, &["interval"])),
            }
        }
        levels.push((item.pos, interval));
    }
    Ok(Some(At {
        value: levels,
        pos: node.pos,
    }))
}

fn read_snapshot(doc: &Doc, node: &Node, path: &str) -> Result<(Dur, Dur), ConfigError> {
    let (mut interval, mut retention) = (None, None);
    for (key, value) in doc.map(node, path)?.unwrap_or_default() {
        let full = join(path, &key.name);
        match key.name.as_str() {
            "interval" => interval = doc.duration(value, &full)?,
            "retention" => retention = doc.duration(value, &full)?,
            _ => return Err(doc.unknown_key(key, path, &["interval", "retention"])),
        }
    }
    Ok((interval, retention))
}

fn read_logging(doc: &Doc, node: &Node, raw: &mut RawConfig) -> Result<(), ConfigError> {
    for (key, value) in doc.map(node, "logging")?.unwrap_or_default() {
        let full = join("logging", &key.name);
        match key.name.as_str() {
            "level" => raw.log_level = doc.string(value, &full)?,
            "type" => raw.log_type = doc.string(value, &full)?,
            "stderr" => raw.log_stderr = doc.bool(value, &full)?,
            "source" => raw.log_source = doc.bool(value, &full)?,
            _ => {
                return Err(doc.unknown_key(
                    key,
                    "logging",
                    &["level", "type", "stderr", "source"],
                ));
            }
        }
    }
    Ok(())
}

fn read_socket(doc: &Doc, node: &Node, raw: &mut RawConfig) -> Result<(), ConfigError> {
    for (key, value) in doc.map(node, "socket")?.unwrap_or_default() {
        let full = join("socket", &key.name);
        match key.name.as_str() {
            "enabled" => raw.socket_enabled = doc.bool(value, &full)?,
            "path" => raw.socket_path = doc.string(value, &full)?,
            "permissions" => raw.socket_permissions = doc.int(value, &full)?,
            _ => return Err(doc.unknown_key(key, "socket", &["enabled", "path", "permissions"])),
        }
    }
    Ok(())
}

fn read_db(doc: &mut Doc, node: &Node, path: &str) -> Result<RawDb, ConfigError> {
    let mut db = RawDb {
        key: path.to_owned(),
        pos: node.pos,
        path: None,
        dir: None,
        pattern: None,
        recursive: None,
        watch: None,
        meta_path: None,
        meta_dir: None,
        monitor_interval: None,
        checkpoint_interval: None,
        busy_timeout: None,
        min_checkpoint_page_count: None,
        truncate_page_n: None,
        max_sync_wal_bytes: None,
        restore_if_db_not_exists: None,
        snapshot_interval: None,
        snapshot_retention: None,
        replica: None,
        replicas: None,
    };
    for (key, value) in doc.map(node, path)?.unwrap_or_default() {
        let full = join(path, &key.name);
        let f = full.as_str();
        match key.name.as_str() {
            "path" => db.path = doc.string(value, f)?,
            "dir" => db.dir = doc.string(value, f)?,
            "pattern" => db.pattern = doc.string(value, f)?,
            "recursive" => db.recursive = doc.bool(value, f)?,
            "watch" => db.watch = doc.bool(value, f)?,
            "meta-path" => db.meta_path = doc.string(value, f)?,
            "meta-dir" => db.meta_dir = doc.string(value, f)?,
            "monitor-interval" => db.monitor_interval = doc.duration(value, f)?,
            "checkpoint-interval" => db.checkpoint_interval = doc.duration(value, f)?,
            "busy-timeout" => db.busy_timeout = doc.duration(value, f)?,
            "min-checkpoint-page-count" => db.min_checkpoint_page_count = doc.int(value, f)?,
            "truncate-page-n" => db.truncate_page_n = doc.int(value, f)?,
            "max-sync-wal-bytes" => db.max_sync_wal_bytes = doc.int(value, f)?,
            "restore-if-db-not-exists" => db.restore_if_db_not_exists = doc.bool(value, f)?,
            "snapshot" => {
                (db.snapshot_interval, db.snapshot_retention) = read_snapshot(doc, value, f)?
            }
            "replica" => {
                if !keys::is_empty(value) {
                    db.replica = Some(replica::read(doc, value, f)?);
                }
            }
            "replicas" => {
                let mut list = Vec::new();
                for (i, item) in doc.seq(value, f)?.unwrap_or_default().iter().enumerate() {
                    list.push(replica::read(doc, item, &format!("{f}[{i}]"))?);
                }
                db.replicas = Some(At {
                    value: list,
                    pos: key.pos,
                });
            }
            "max-checkpoint-page-count" => {
                doc.int(value, f)?;
                doc.warn(
                    key.pos,
                    f,
                    "a Litestream 0.3 setting that 0.5 no longer uses; ignored (see truncate-page-n)",
                );
            }
            _ => return Err(doc.unknown_key(key, path, DB_KEYS)),
        }
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::with_db;
    use super::super::testutil::{error, parse, warnings, with_replica};
    use super::super::{BackendKind, ConfigError, Origin};

    #[test]
    fn unknown_keys_are_errors_with_location_and_suggestion() {
        let text = "\
access-key-id: x
secret-access-key: y
dbs:
- path: /data/app.db
  replica:
    type: s3
    bucktet: my-bucket
";
        assert_eq!(
            error(text),
            "litestream.yml:7:5: dbs[0].replica: unknown key \"bucktet\" (did you mean \"bucket\"?)"
        );
        assert_eq!(
            error("dbss: []\n"),
            "litestream.yml:1:1: config: unknown key \"dbss\" (did you mean \"dbs\"?)"
        );
        assert_eq!(
            error("dbs:\n  - paht: /a.db\n"),
            "litestream.yml:2:5: dbs[0]: unknown key \"paht\" (did you mean \"path\"?)"
        );
        assert_eq!(
            error("snapshot:\n  intervall: 1h\n"),
            "litestream.yml:2:3: snapshot: unknown key \"intervall\" (did you mean \"interval\"?)"
        );
        assert_eq!(
            error("levels:\n  - intreval: 1m\n"),
            "litestream.yml:2:5: levels[0]: unknown key \"intreval\" (did you mean \"interval\"?)"
        );
        assert_eq!(
            error("logging:\n  colour: true\n"),
            "litestream.yml:2:3: logging: unknown key \"colour\""
        );
        assert_eq!(
            error("retention:\n  enable: false\n"),
            "litestream.yml:2:3: retention: unknown key \"enable\" (did you mean \"enabled\"?)"
        );
        assert_eq!(
            error("socket:\n  pth: /x\n"),
            "litestream.yml:2:3: socket: unknown key \"pth\" (did you mean \"path\"?)"
        );
        assert_eq!(
            error("databases:\n  - path: /a.db\n"),
            "litestream.yml:1:1: config: unknown key \"databases\""
        );
        assert_eq!(
            error(&with_replica("", "path: /b\nsync_interval: 1s")),
            "litestream.yml:5:7: dbs[0].replica: unknown key \"sync_interval\" (did you mean \"sync-interval\"?)"
        );
    }

    #[test]
    fn keys_of_another_backend_are_errors() {
        assert_eq!(
            error(&with_replica("", "path: /b\nbucket: x")),
            "litestream.yml:5:15: dbs[0].replica.bucket: \"bucket\" is not a setting of file replicas (it belongs to s3, gs, abs, nats, oss); remove it"
        );
        assert_eq!(
            error(&with_replica("", "url: s3://b/db\naccount-name: acct")),
            "litestream.yml:5:21: dbs[0].replica.account-name: \"account-name\" is not a setting of s3 replicas (it belongs to abs); remove it"
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        assert_eq!(
            error("dbs: /data/app.db\n"),
            "litestream.yml:1:6: dbs: expected a list, found a single value"
        );
        assert_eq!(
            error("snapshot: 24h\n"),
            "litestream.yml:1:11: snapshot: expected a mapping of keys, found a single value"
        );
        assert_eq!(
            error("verify-compaction: maybe\n"),
            "litestream.yml:1:20: verify-compaction: expected true or false, found \"maybe\""
        );
        assert_eq!(
            error("- a\n- b\n"),
            "litestream.yml:1:1: config: expected a mapping of keys, found a list"
        );
        assert_eq!(
            error(&with_replica("", "path: /b\nmax-sync-ltx-files: lots")),
            "litestream.yml:5:27: dbs[0].replica.max-sync-ltx-files: expected an integer, found \"lots\""
        );
        assert_eq!(
            error("l0-retention: 1d\n"),
            "litestream.yml:1:15: l0-retention: invalid duration \"1d\": there is no unit \"d\"; write days as hours, e.g. 24h"
        );
        assert_eq!(
            error(&with_replica("", "url: s3://b/db\npart-size: 5XB")),
            "litestream.yml:5:18: dbs[0].replica.part-size: invalid size \"5XB\": unknown unit \"xb\"; use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB, PB, PiB, EB or EiB"
        );
    }

    #[test]
    fn an_empty_file_is_the_default_config() -> Result<(), ConfigError> {
        assert_eq!(parse("")?, super::super::Config::default());
        assert_eq!(parse("# nothing yet\n")?, super::super::Config::default());
        // Empty sections keep their defaults.
        assert_eq!(
            parse("snapshot:\nlogging:\ndbs:\n")?,
            super::super::Config::default()
        );
        Ok(())
    }

    #[test]
    fn unsupported_features_are_accepted_with_warnings() -> Result<(), ConfigError> {
        let text = with_replica(
            "mcp-addr: \":3001\"\nsocket:\n  enabled: true\nheartbeat-url: https://hc.example/x\npart-size: 10MiB\nvalidation-interval: 1m\n",
            "url: gs://bucket/db\nname: old-name\nretention: 72h",
        );
        let c = parse(&text)?;
        assert_eq!(c.mcp_addr.as_deref(), Some(":3001"));
        assert!(c.socket.enabled);
        assert_eq!(
            warnings(&c),
            vec![
                "litestream.yml:1:1: mcp-addr: the MCP server is not supported yet; ignored",
                "litestream.yml:2:1: socket: the control socket is not supported yet; ignored",
                "litestream.yml:4:1: heartbeat-url: heartbeat pings are not supported yet; ignored",
                "litestream.yml:5:12: part-size: replicas do not inherit this top-level setting (as in Litestream); set it on each replica",
                "litestream.yml:6:1: validation-interval: parsed but not used, as in Litestream 0.5",
                "litestream.yml:10:7: dbs[0].replica: replica type gs is not supported yet; freshet replicates to file and s3 replicas, so this database cannot be replicated",
                "litestream.yml:11:7: dbs[0].replica.name: deprecated and ignored (as in Litestream 0.5)",
                "litestream.yml:12:7: dbs[0].replica.retention: a Litestream 0.3 setting that 0.5 no longer uses; ignored (retention is set with the top-level snapshot.retention)",
            ]
        );
        let gs = &super::super::testutil::db(&c, 0).replica.backend;
        assert_eq!(gs.kind(), BackendKind::Gs);
        assert!(matches!(
            gs.require_supported(),
            Err(ConfigError::UnsupportedBackend {
                kind: BackendKind::Gs
            })
        ));
        assert!(matches!(
            c.warnings[0].origin,
            Origin::File {
                line: 1,
                column: 1,
                ..
            }
        ));
        Ok(())
    }

    #[test]
    fn litestream_0_3_database_keys_warn() -> Result<(), ConfigError> {
        let c = parse(
            "dbs:\n  - path: /a.db\n    max-checkpoint-page-count: 10000\n    replica: {path: /b}\n",
        )?;
        assert_eq!(
            warnings(&c),
            vec![
                "litestream.yml:3:5: dbs[0].max-checkpoint-page-count: a Litestream 0.3 setting that 0.5 no longer uses; ignored (see truncate-page-n)"
            ]
        );
        Ok(())
    }

    #[test]
    fn age_encryption_is_refused() -> Result<(), ConfigError> {
        assert_eq!(
            error(&with_replica("", "path: /b\nage:\n  recipients: [age1xyz]")),
            "litestream.yml:6:9: dbs[0].replica.age.recipients: age encryption is not supported by Litestream 0.5 or freshet; remove the age settings (replicas would otherwise be written unencrypted)"
        );
        assert_eq!(
            error(&with_db("age:\n  identities:\n    - /keys/id.txt\n")),
            "litestream.yml:2:3: age.identities: age encryption is not supported by Litestream 0.5 or freshet; remove the age settings (replicas would otherwise be written unencrypted)"
        );
        // Empty age settings are harmless.
        parse(&with_replica(
            "",
            "path: /b\nage: {identities: [], recipients: []}",
        ))?;
        Ok(())
    }
}
