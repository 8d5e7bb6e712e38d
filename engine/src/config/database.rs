//! Database entries (CLI_CONFIG.md §3.3, §3.6): `path` or `dir`, the keys
//! that only apply to directories, per-database limits, and the one replica.

use std::path::PathBuf;

use super::dir::{DirConfig, DirMeta, validate_pattern};
use super::error::ConfigError;
use super::keys::{Settings, join};
use super::load::{Environment, normalize_path};
use super::model::{
    DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MONITOR_INTERVAL, DEFAULT_TRUNCATE_PAGE_N, DbConfig,
    DbEntry, default_meta_path,
};
use super::replica::{self, RawReplica};
use super::schema::RawDb;
use super::validate::{non_negative, optional};
use super::yaml::{At, Doc};

/// Refuses a key that only applies to `dir` entries.
fn only_with_dir<T>(
    doc: &Doc,
    db: &RawDb,
    v: &Option<At<T>>,
    name: &str,
) -> Result<(), ConfigError> {
    match v {
        Some(a) => Err(doc.error(
            a.pos,
            &join(&db.key, name),
            format!("{name} only applies to directory entries (with dir); remove it or use dir instead of path"),
        )),
        None => Ok(()),
    }
}

pub(crate) fn build_db(
    doc: &mut Doc,
    db: &RawDb,
    global: &Settings,
    env: &Environment<'_>,
) -> Result<DbEntry, ConfigError> {
    let key = |name: &str| join(&db.key, name);
    let norm = |doc: &Doc, a: &At<String>, name: &str| {
        normalize_path(&a.value, env).map_err(|e| doc.error(a.pos, &key(name), e.to_string()))
    };
    match (&db.path, &db.dir) {
        (Some(_), Some(dir)) => {
            return Err(doc.error(
                dir.pos,
                &key("dir"),
                "path and dir are both set; use path for one database or dir for a directory of databases",
            ));
        }
        (None, None) => {
            return Err(doc.error(
                db.pos,
                &db.key,
                "needs path (one database) or dir (a directory of databases)",
            ));
        }
        _ => {}
    }
    if let (Some(_), Some(meta_dir)) = (&db.meta_path, &db.meta_dir) {
        return Err(doc.error(
            meta_dir.pos,
            &key("meta-dir"),
            "meta-path and meta-dir are both set; keep one",
        ));
    }
    if db.dir.is_none() {
        only_with_dir(doc, db, &db.pattern, "pattern")?;
        only_with_dir(doc, db, &db.recursive, "recursive")?;
        only_with_dir(doc, db, &db.watch, "watch")?;
        only_with_dir(doc, db, &db.meta_dir, "meta-dir")?;
    }

    let mut template = DbConfig::new(PathBuf::new(), replica_of(doc, db, global, env)?);
    template.monitor_interval = optional(
        doc,
        db.monitor_interval.as_ref(),
        &key("monitor-interval"),
        DEFAULT_MONITOR_INTERVAL,
    )?;
    template.checkpoint_interval = optional(
        doc,
        db.checkpoint_interval.as_ref(),
        &key("checkpoint-interval"),
        DEFAULT_CHECKPOINT_INTERVAL,
    )?;
    template.busy_timeout = non_negative(
        doc,
        db.busy_timeout.as_ref(),
        &key("busy-timeout"),
        template.busy_timeout,
    )?;
    if let Some(a) = &db.min_checkpoint_page_count {
        template.min_checkpoint_page_count = u32::try_from(a.value)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                doc.error(
                    a.pos,
                    &key("min-checkpoint-page-count"),
                    format!("must be a positive number of pages (got {})", a.value),
                )
            })?;
    }
    if let Some(a) = &db.truncate_page_n {
        template.truncate_page_n = match u32::try_from(a.value) {
            Ok(0) => DEFAULT_TRUNCATE_PAGE_N,
            Ok(n) => n,
            Err(_) => {
                return Err(doc.error(
                    a.pos,
                    &key("truncate-page-n"),
                    format!(
                        "must be a number of pages, or 0 for the default (got {})",
                        a.value
                    ),
                ));
            }
        };
    }
    if let Some(a) = &db.max_sync_wal_bytes {
        template.max_sync_wal_bytes = match u64::try_from(a.value) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(doc.error(
                    a.pos,
                    &key("max-sync-wal-bytes"),
                    format!(
                        "must be a number of bytes, or 0 for unlimited (got {})",
                        a.value
                    ),
                ));
            }
        };
    }
    template.restore_if_db_not_exists = db
        .restore_if_db_not_exists
        .as_ref()
        .is_some_and(|a| a.value);

    if let Some(path) = &db.path {
        template.path = norm(doc, path, "path")?;
        template.meta_path = match &db.meta_path {
            Some(m) => norm(doc, m, "meta-path")?,
            None => default_meta_path(&template.path),
        };
        return Ok(DbEntry::Single(template));
    }
    let (Some(dir), Some(pattern)) = (&db.dir, &db.pattern) else {
        let pos = db.dir.as_ref().map_or(db.pos, |d| d.pos);
        return Err(doc.error(
            pos,
            &key("pattern"),
            "pattern is required with dir, e.g. pattern: \"*.db\"",
        ));
    };
    validate_pattern(&pattern.value).map_err(|why| doc.error(pattern.pos, &key("pattern"), why))?;
    let dir_path = norm(doc, dir, "dir")?;
    let meta = match (&db.meta_path, &db.meta_dir) {
        (Some(m), _) => DirMeta::Path(norm(doc, m, "meta-path")?),
        (None, Some(m)) => DirMeta::Dir(norm(doc, m, "meta-dir")?),
        (None, None) => DirMeta::Beside,
    };
    template.path = dir_path.clone();
    template.meta_path = default_meta_path(&dir_path);
    Ok(DbEntry::Directory(DirConfig::new(
        dir_path,
        pattern.value.clone(),
        db.recursive.as_ref().is_some_and(|a| a.value),
        db.watch.as_ref().is_some_and(|a| a.value),
        meta,
        template,
    )))
}

/// The one replica of a database entry, with top-level settings inherited.
fn replica_of(
    doc: &mut Doc,
    db: &RawDb,
    global: &Settings,
    env: &Environment<'_>,
) -> Result<super::ReplicaConfig, ConfigError> {
    let mut raw: RawReplica = match (&db.replica, &db.replicas) {
        (Some(_), Some(list)) => {
            return Err(doc.error(
                list.pos,
                &join(&db.key, "replicas"),
                "replica and replicas are both set; keep replica (replicas is deprecated)",
            ));
        }
        (Some(r), None) => r.clone(),
        (None, Some(list)) if list.value.len() > 1 => {
            let pos = list.value.get(1).map_or(list.pos, |r| r.pos);
            return Err(doc.error(
                pos,
                &join(&db.key, "replicas"),
                "multiple replicas on a single database are no longer supported (Litestream 0.5); keep one",
            ));
        }
        (None, Some(list)) if !list.value.is_empty() => {
            doc.warn(
                list.pos,
                &join(&db.key, "replicas"),
                "deprecated; write replica: with the single entry instead",
            );
            list.value[0].clone()
        }
        _ => {
            return Err(doc.error(
                db.pos,
                &db.key,
                "needs a replica, e.g. replica: {url: s3://bucket/path}",
            ));
        }
    };
    raw.settings.inherit(global);
    replica::build(doc, &raw, env)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testutil::{FILE_REPLICA, db, error, parse, warnings};
    use super::super::{BackendConfig, FileConfig};
    use super::*;

    #[test]
    fn a_database_has_exactly_one_of_path_and_dir() {
        assert_eq!(
            error(&format!(
                "dbs:\n  - path: /a.db\n    dir: /data\n    pattern: '*.db'\n{FILE_REPLICA}"
            )),
            "litestream.yml:3:10: dbs[0].dir: path and dir are both set; use path for one database or dir for a directory of databases"
        );
        assert_eq!(
            error(&format!("dbs:\n  - monitor-interval: 1s\n{FILE_REPLICA}")),
            "litestream.yml:2:5: dbs[0]: needs path (one database) or dir (a directory of databases)"
        );
    }

    #[test]
    fn directory_keys_need_dir() {
        assert_eq!(
            error(&format!("dbs:\n  - dir: /data\n{FILE_REPLICA}")),
            "litestream.yml:2:10: dbs[0].pattern: pattern is required with dir, e.g. pattern: \"*.db\""
        );
        assert_eq!(
            error(&format!(
                "dbs:\n  - path: /a.db\n    watch: true\n{FILE_REPLICA}"
            )),
            "litestream.yml:3:12: dbs[0].watch: watch only applies to directory entries (with dir); remove it or use dir instead of path"
        );
        assert_eq!(
            error(&format!(
                "dbs:\n  - path: /a.db\n    meta-dir: /meta\n{FILE_REPLICA}"
            )),
            "litestream.yml:3:15: dbs[0].meta-dir: meta-dir only applies to directory entries (with dir); remove it or use dir instead of path"
        );
        assert_eq!(
            error(&format!(
                "dbs:\n  - path: /a.db\n    pattern: '*.db'\n{FILE_REPLICA}"
            )),
            "litestream.yml:3:14: dbs[0].pattern: pattern only applies to directory entries (with dir); remove it or use dir instead of path"
        );
        assert_eq!(
            error(&format!(
                "dbs:\n  - dir: /data\n    pattern: '[a'\n{FILE_REPLICA}"
            )),
            "litestream.yml:3:14: dbs[0].pattern: invalid pattern \"[a\": unclosed ["
        );
    }

    #[test]
    fn meta_path_and_meta_dir_exclude_each_other() {
        assert_eq!(
            error(&format!(
                "dbs:\n  - dir: /data\n    pattern: '*.db'\n    meta-path: /m\n    meta-dir: /n\n{FILE_REPLICA}"
            )),
            "litestream.yml:5:15: dbs[0].meta-dir: meta-path and meta-dir are both set; keep one"
        );
    }

    #[test]
    fn database_settings_and_their_limits() -> Result<(), ConfigError> {
        let c = parse(&format!(
            "dbs:\n  - path: /a.db\n    monitor-interval: 0\n    checkpoint-interval: 0s\n    busy-timeout: 5s\n    min-checkpoint-page-count: 2000\n    truncate-page-n: 0\n    max-sync-wal-bytes: 0\n    restore-if-db-not-exists: yes\n{FILE_REPLICA}"
        ))?;
        let d = db(&c, 0);
        assert_eq!(d.monitor_interval, None);
        assert_eq!(d.checkpoint_interval, None);
        assert_eq!(d.busy_timeout, Duration::from_secs(5));
        assert_eq!(d.min_checkpoint_page_count, 2000);
        assert_eq!(d.truncate_page_n, 121_359);
        assert_eq!(d.max_sync_wal_bytes, None);
        assert!(d.restore_if_db_not_exists);
        let bad = |line: &str| {
            error(&format!(
                "dbs:\n  - path: /a.db\n    {line}\n{FILE_REPLICA}"
            ))
        };
        assert_eq!(
            bad("min-checkpoint-page-count: 0"),
            "litestream.yml:3:32: dbs[0].min-checkpoint-page-count: must be a positive number of pages (got 0)"
        );
        assert_eq!(
            bad("monitor-interval: -1s"),
            "litestream.yml:3:23: dbs[0].monitor-interval: must not be negative (got -1s)"
        );
        assert_eq!(
            bad("truncate-page-n: -5"),
            "litestream.yml:3:22: dbs[0].truncate-page-n: must be a number of pages, or 0 for the default (got -5)"
        );
        assert_eq!(
            bad("max-sync-wal-bytes: -1"),
            "litestream.yml:3:25: dbs[0].max-sync-wal-bytes: must be a number of bytes, or 0 for unlimited (got -1)"
        );
        Ok(())
    }

    #[test]
    fn a_database_needs_exactly_one_replica() -> Result<(), ConfigError> {
        assert_eq!(
            error("dbs:\n  - path: /a.db\n"),
            "litestream.yml:2:5: dbs[0]: needs a replica, e.g. replica: {url: s3://bucket/path}"
        );
        assert_eq!(
            error(
                "dbs:\n  - path: /a.db\n    replica: {path: /b}\n    replicas:\n      - path: /c\n"
            ),
            "litestream.yml:4:5: dbs[0].replicas: replica and replicas are both set; keep replica (replicas is deprecated)"
        );
        assert_eq!(
            error("dbs:\n  - path: /a.db\n    replicas:\n      - path: /b\n      - path: /c\n"),
            "litestream.yml:5:9: dbs[0].replicas: multiple replicas on a single database are no longer supported (Litestream 0.5); keep one"
        );
        let c = parse("dbs:\n  - path: /a.db\n    replicas:\n      - path: /b\n")?;
        assert_eq!(
            db(&c, 0).replica.backend,
            BackendConfig::File(FileConfig { path: "/b".into() })
        );
        assert_eq!(
            warnings(&c),
            vec![
                "litestream.yml:3:5: dbs[0].replicas: deprecated; write replica: with the single entry instead"
            ]
        );
        Ok(())
    }
}
