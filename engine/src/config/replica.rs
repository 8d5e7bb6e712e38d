//! Replica entries: reading `replica:` mappings and turning them, with the
//! inherited top-level settings, into a [`ReplicaConfig`] (CLI_CONFIG.md
//! §3.4–3.6).

use std::time::Duration;

use super::backend::{BackendConfig, BackendKind, FileConfig};
use super::error::ConfigError;
use super::keys::{self, RKey, Settings, join};
use super::load::{Environment, normalize_path};
use super::url::{ReplicaUrl, is_replica_url, redact};
use super::yaml::{At, Doc, Node, Pos, suggest};
use super::{ReplicaConfig, others, s3};

/// Default upload period of a replica: 1 s.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of LTX files uploaded per batch.
pub const DEFAULT_MAX_SYNC_LTX_FILES: usize = 256;

/// Keys of a replica entry besides the shared settings.
const OWN_KEYS: &[&str] = &["type", "url", "path", "name"];
/// Replica keys of Litestream 0.3 that 0.5 no longer reads.
const V03_KEYS: &[&str] = &["retention", "retention-check-interval", "snapshot-interval"];

/// A replica entry as written, before inheritance.
#[derive(Clone)]
pub(crate) struct RawReplica {
    /// Key path of the entry, e.g. `dbs[0].replica`.
    pub(crate) path_key: String,
    /// Position of the entry.
    pub(crate) pos: Pos,
    pub(crate) typ: Option<At<String>>,
    pub(crate) url: Option<At<String>>,
    pub(crate) path: Option<At<String>>,
    pub(crate) settings: Settings,
}

impl RawReplica {
    /// A replica given only by a URL on the command line.
    pub(crate) fn from_url(url: &str) -> Self {
        Self {
            path_key: "replica".into(),
            pos: Pos::default(),
            typ: None,
            url: Some(At {
                value: url.to_owned(),
                pos: Pos::default(),
            }),
            path: None,
            settings: Settings::default(),
        }
    }

    /// The key path of setting `key`: the replica's own, or the top-level
    /// key it was inherited from.
    pub(crate) fn key(&self, key: RKey) -> String {
        match self.settings.entry(key) {
            Some(e) if e.inherited => keys::name(key).to_owned(),
            _ => join(&self.path_key, keys::name(key)),
        }
    }

    /// `" (inherited from the top level)"` for inherited settings.
    pub(crate) fn inherited_note(&self, key: RKey) -> &'static str {
        match self.settings.entry(key) {
            Some(e) if e.inherited => " (inherited from the top level)",
            _ => "",
        }
    }
}

/// Reads one `replica:` mapping (or one element of `replicas:`).
pub(crate) fn read(doc: &mut Doc, node: &Node, path_key: &str) -> Result<RawReplica, ConfigError> {
    let mut raw = RawReplica {
        path_key: path_key.to_owned(),
        pos: node.pos,
        typ: None,
        url: None,
        path: None,
        settings: Settings::default(),
    };
    let Some(entries) = doc.map(node, path_key)? else {
        return Ok(raw);
    };
    for (key, value) in entries {
        let full = join(path_key, &key.name);
        match key.name.as_str() {
            "type" => raw.typ = doc.string(value, &full)?,
            "url" => raw.url = doc.string(value, &full)?,
            "path" => raw.path = doc.string(value, &full)?,
            "name" => {
                doc.string(value, &full)?;
                doc.warn(
                    key.pos,
                    &full,
                    "deprecated and ignored (as in Litestream 0.5)",
                );
            }
            name if V03_KEYS.contains(&name) => {
                doc.duration(value, &full)?;
                doc.warn(
                    key.pos,
                    &full,
                    "a Litestream 0.3 setting that 0.5 no longer uses; ignored \
                     (retention is set with the top-level snapshot.retention)",
                );
            }
            name => {
                if !raw.settings.read(doc, name, value, path_key)? {
                    let known: Vec<&str> = OWN_KEYS.iter().copied().chain(keys::names()).collect();
                    return Err(doc.unknown_key(key, path_key, &known));
                }
                if name == "validation-interval" {
                    doc.warn(key.pos, &full, "parsed but not used, as in Litestream 0.5");
                }
            }
        }
    }
    Ok(raw)
}

/// Builds the replica from an entry whose settings already include the
/// inherited top-level values.
pub(crate) fn build(
    doc: &mut Doc,
    raw: &RawReplica,
    env: &Environment,
) -> Result<ReplicaConfig, ConfigError> {
    if let Some(path) = &raw.path
        && is_replica_url(&path.value)
    {
        return Err(doc.error(
            path.pos,
            &join(&raw.path_key, "path"),
            format!(
                "a replica path cannot be a URL; write url: {} instead",
                redact(&path.value)
            ),
        ));
    }
    let url = parse_url(doc, raw)?;
    let kind = kind(doc, raw, url.as_ref())?;
    raw.settings.check_backend(doc, kind, &raw.path_key)?;
    if let Some(path) = &raw.path {
        if kind == BackendKind::Nats {
            return Err(doc.error(
                path.pos,
                &join(&raw.path_key, "path"),
                "\"path\" is not a setting of nats replicas (the bucket comes from bucket or the url); remove it",
            ));
        }
        if url.is_some() {
            return Err(conflict(doc, raw, path.pos, "path", None));
        }
    }

    let sync_interval = match raw.settings.duration(RKey::SyncInterval) {
        None => DEFAULT_SYNC_INTERVAL,
        Some(At { value, pos }) => value.to_std().filter(|d| !d.is_zero()).ok_or_else(|| {
            doc.error(
                pos,
                &raw.key(RKey::SyncInterval),
                format!("sync interval must be greater than 0 (got {value})"),
            )
        })?,
    };
    let max_sync_ltx_files = match raw.settings.int(RKey::MaxSyncLtxFiles) {
        None => Some(DEFAULT_MAX_SYNC_LTX_FILES),
        Some(At { value: 0, .. }) => None,
        Some(At { value, pos }) => Some(usize::try_from(value).map_err(|_| {
            doc.error(
                pos,
                &raw.key(RKey::MaxSyncLtxFiles),
                format!("must be 0 (unlimited) or a positive number of files (got {value})"),
            )
        })?),
    };
    let auto_recover = raw.settings.bool(RKey::AutoRecover).unwrap_or(false);

    let backend = match kind {
        BackendKind::File => BackendConfig::File(file(doc, raw, url.as_ref(), env)?),
        BackendKind::S3 => BackendConfig::S3(s3::build(doc, raw, url.as_ref(), env)?),
        BackendKind::Gs => BackendConfig::Gs(others::gs(doc, raw, url.as_ref())?),
        BackendKind::Abs => BackendConfig::Abs(others::abs(doc, raw, url.as_ref())?),
        BackendKind::Sftp => BackendConfig::Sftp(others::sftp(doc, raw, url.as_ref())?),
        BackendKind::Webdav => BackendConfig::Webdav(others::webdav(doc, raw, url.as_ref())?),
        BackendKind::Nats => BackendConfig::Nats(others::nats(doc, raw, url.as_ref())?),
        BackendKind::Oss => BackendConfig::Oss(others::oss(doc, raw, url.as_ref())?),
    };
    if !kind.is_supported() {
        doc.warn(
            raw.pos,
            &raw.path_key,
            format!(
                "replica type {kind} is not supported yet; freshet replicates to file and s3 \
                 replicas, so this database cannot be replicated"
            ),
        );
    }
    Ok(ReplicaConfig {
        sync_interval,
        max_sync_ltx_files,
        auto_recover,
        backend,
    })
}

/// The error for `url` given together with `what` (`path`, `bucket`, …);
/// `setting` names the setting when `what` is one (it may be inherited).
pub(crate) fn conflict(
    doc: &Doc,
    raw: &RawReplica,
    pos: Pos,
    what: &str,
    setting: Option<RKey>,
) -> ConfigError {
    let (key, note) = match setting {
        Some(k) => (raw.key(k), raw.inherited_note(k)),
        None => (join(&raw.path_key, what), ""),
    };
    doc.error(
        pos,
        &key,
        format!(
            "url and {what} are both set{note}; the url already gives the {what}, so keep only one"
        ),
    )
}

/// An error about the URL of `raw`.
pub(crate) fn url_error(doc: &Doc, raw: &RawReplica, message: impl Into<String>) -> ConfigError {
    let pos = raw.url.as_ref().map_or(raw.pos, |u| u.pos);
    doc.error(pos, &join(&raw.path_key, "url"), message)
}

fn parse_url(doc: &Doc, raw: &RawReplica) -> Result<Option<ReplicaUrl>, ConfigError> {
    let Some(url) = &raw.url else {
        return Ok(None);
    };
    ReplicaUrl::parse(&url.value).map(Some).map_err(|why| {
        url_error(
            doc,
            raw,
            format!("invalid replica URL {}: {why}", redact(&url.value)),
        )
    })
}

/// The backend type: the URL scheme decides (`webdavs` is webdav), else
/// `type`, else `file`.
fn kind(doc: &Doc, raw: &RawReplica, url: Option<&ReplicaUrl>) -> Result<BackendKind, ConfigError> {
    let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.name()).collect();
    let from_url = match url {
        None => None,
        Some(u) => {
            let scheme = if u.scheme == "webdavs" {
                "webdav"
            } else {
                u.scheme.as_str()
            };
            let hint = match scheme {
                "gcs" => " (Google Cloud Storage URLs use gs://)".to_owned(),
                other => suggest(other, names.iter().copied())
                    .map(|s| format!(" (did you mean {s}://?)"))
                    .unwrap_or_default(),
            };
            Some(BackendKind::from_name(scheme).ok_or_else(|| {
                url_error(
                    doc,
                    raw,
                    format!(
                        "unsupported replica URL scheme {:?}{hint}; use one of file, s3, gs, abs, \
                         sftp, webdav, webdavs, nats, oss",
                        u.scheme
                    ),
                )
            })?)
        }
    };
    let from_type = match &raw.typ {
        None => None,
        Some(t) => Some(BackendKind::from_name(&t.value).ok_or_else(|| {
            let hint = suggest(&t.value, names.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            doc.error(
                t.pos,
                &join(&raw.path_key, "type"),
                format!(
                    "unknown replica type {:?}{hint}; use one of {}",
                    t.value,
                    names.join(", ")
                ),
            )
        })?),
    };
    match (from_url, from_type, &raw.typ) {
        (Some(u), Some(t), Some(typ)) if u != t => Err(doc.error(
            typ.pos,
            &join(&raw.path_key, "type"),
            format!(
                "type {t} contradicts the {u} URL; the URL scheme decides the type, so remove type"
            ),
        )),
        (Some(u), _, _) => Ok(u),
        (None, Some(t), _) => Ok(t),
        (None, None, _) => Ok(BackendKind::File),
    }
}

/// `type: file`: `path`, or the path of a `file://` URL, made absolute.
fn file(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
    env: &Environment,
) -> Result<FileConfig, ConfigError> {
    let (written, pos, key) = match (url, &raw.path) {
        (Some(u), _) => {
            let path = if u.host.is_empty() {
                u.path.clone()
            } else {
                format!("//{}{}", u.host, u.path)
            };
            if path.is_empty() {
                return Err(url_error(
                    doc,
                    raw,
                    "a file URL needs an absolute path: file:///path/to/dir",
                ));
            }
            let pos = raw.url.as_ref().map_or(raw.pos, |u| u.pos);
            (
                super::url::clean_path(&path),
                pos,
                join(&raw.path_key, "url"),
            )
        }
        (None, Some(p)) => (p.value.clone(), p.pos, join(&raw.path_key, "path")),
        (None, None) => {
            return Err(doc.error(
                raw.pos,
                &raw.path_key,
                "a file replica needs path (a directory) or url (file:///path/to/dir)",
            ));
        }
    };
    let path = normalize_path(&written, env).map_err(|e| doc.error(pos, &key, e.to_string()))?;
    Ok(FileConfig { path })
}

/// Reads a positive integer from a URL query or a setting.
pub(crate) fn positive(
    doc: &Doc,
    raw: &RawReplica,
    key: RKey,
) -> Result<Option<At<usize>>, ConfigError> {
    match raw.settings.int(key) {
        None => Ok(None),
        Some(At { value, pos }) => usize::try_from(value)
            .ok()
            .filter(|v| *v > 0)
            .map(|v| Some(At { value: v, pos }))
            .ok_or_else(|| {
                doc.error(
                    pos,
                    &raw.key(key),
                    format!("must be a positive integer (got {value})"),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::backend::*;
    use super::super::testutil::{db, error, parse, warnings, with_replica};
    use super::super::{Config, Secret, parse_replica_url_in};
    use super::*;

    fn env() -> Environment<'static> {
        Environment {
            vars: &|_| None,
            home: Some(PathBuf::from("/home/u")),
            cwd: Some(PathBuf::from("/srv/app")),
        }
    }

    fn url(u: &str) -> BackendConfig {
        parse_replica_url_in(u, &env()).unwrap_or_else(|e| panic!("{u}: {e}"))
    }

    fn url_error(u: &str) -> String {
        parse_replica_url_in(u, &env())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn file_urls_keep_the_full_path() {
        let file = |p: &str| {
            BackendConfig::File(FileConfig {
                path: PathBuf::from(p),
            })
        };
        assert_eq!(url("file:///var/backups/db"), file("/var/backups/db"));
        assert_eq!(url("file:///var/backups/db/?x=1"), file("/var/backups/db"));
        assert_eq!(url("FILE:///var//backups/./db"), file("/var/backups/db"));
        assert_eq!(url("file://host/dir"), file("/host/dir"));
        assert_eq!(
            url_error("file://"),
            "command line: replica.url: a file URL needs an absolute path: file:///path/to/dir"
        );
    }

    #[test]
    fn every_scheme_of_section_5_1() {
        assert!(
            matches!(url("s3://bucket/prefix"), BackendConfig::S3(S3Config { ref bucket, ref path, .. }) if bucket == "bucket" && path == "prefix")
        );
        assert_eq!(
            url("gs://bucket/prefix/db"),
            BackendConfig::Gs(GsConfig {
                bucket: "bucket".into(),
                path: "prefix/db".into()
            })
        );
        assert_eq!(
            url("abs://acct@container/prefix"),
            BackendConfig::Abs(AbsConfig {
                account_name: Some("acct".into()),
                account_key: None,
                sas_token: None,
                container: "container".into(),
                path: "prefix".into(),
                endpoint: None,
            })
        );
        assert_eq!(
            url("sftp://me:pw@example.com:2222/backups/db"),
            BackendConfig::Sftp(SftpConfig {
                host: "example.com:2222".into(),
                user: "me".into(),
                password: Some(Secret::new("pw")),
                key_path: None,
                host_key: None,
                concurrent_writes: true,
                path: "/backups/db".into(),
            })
        );
        assert_eq!(
            url("webdav://me:pw@dav.example:8080/backups"),
            BackendConfig::Webdav(WebdavConfig {
                url: "http://dav.example:8080".into(),
                username: Some("me".into()),
                password: Some(Secret::new("pw")),
                path: "/backups".into(),
            })
        );
        assert!(
            matches!(url("webdavs://dav.example/b"), BackendConfig::Webdav(WebdavConfig { ref url, .. }) if url == "https://dav.example")
        );
        let BackendConfig::Nats(nats) = url("nats://me:pw@nats.example:4222/my-bucket") else {
            panic!("not nats");
        };
        assert_eq!(nats.url.as_deref(), Some("nats://nats.example:4222"));
        assert_eq!(nats.bucket, "my-bucket");
        assert_eq!(nats.username.as_deref(), Some("me"));
        assert_eq!(nats.password, Some(Secret::new("pw")));
        assert_eq!(nats.max_reconnects, None);
        assert_eq!(nats.reconnect_wait, NATS_DEFAULT_RECONNECT_WAIT);
        assert_eq!(nats.timeout, NATS_DEFAULT_TIMEOUT);
        assert_eq!(
            url("oss://bucket.oss-cn-shanghai.aliyuncs.com/prefix"),
            BackendConfig::Oss(OssConfig {
                bucket: "bucket".into(),
                path: "prefix".into(),
                region: "cn-shanghai".into(),
                endpoint: None,
                access_key_id: None,
                secret_access_key: None,
                part_size: None,
                concurrency: None,
            })
        );
        assert!(
            matches!(url("oss://bucket/p"), BackendConfig::Oss(OssConfig { ref region, .. }) if region == OSS_DEFAULT_REGION)
        );
        assert_eq!(
            url_error("nats://nats.example:4222"),
            "command line: replica: bucket required for nats replica; set bucket, or url: nats://HOST/BUCKET"
        );
    }

    #[test]
    fn url_passwords_never_appear_in_errors() {
        let err = url_error("sftp://me:hunter2@host:bad/x");
        assert!(
            err.contains("sftp://me:***@host:bad/x") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn the_ad_hoc_form_uses_empty_config_defaults() -> Result<(), ConfigError> {
        let c = Config::from_db_and_url_in("sqlite3://~/app.db", "s3://bucket/app", &env())?;
        let d = db(&c, 0);
        assert_eq!(d.path, PathBuf::from("/home/u/app.db"));
        assert_eq!(d.meta_path, PathBuf::from("/home/u/.app.db-litestream"));
        assert_eq!(d.replica.sync_interval, DEFAULT_SYNC_INTERVAL);
        assert_eq!(
            d.replica.max_sync_ltx_files,
            Some(DEFAULT_MAX_SYNC_LTX_FILES)
        );
        assert_eq!(c.levels, Config::default().levels);
        assert!(c.warnings.is_empty());
        let c = Config::from_db_and_url_in("app.db", "webdav://host/x", &env())?;
        assert_eq!(
            warnings(&c),
            vec![
                "command line: replica: replica type webdav is not supported yet; freshet replicates to file and s3 replicas, so this database cannot be replicated"
            ]
        );
        Ok(())
    }

    #[test]
    fn replica_common_settings() -> Result<(), ConfigError> {
        let c = parse(&with_replica(
            "",
            "path: ~/backups\nsync-interval: 10s\nmax-sync-ltx-files: 0\nauto-recover: true",
        ))?;
        let r = &db(&c, 0).replica;
        assert_eq!(r.sync_interval, std::time::Duration::from_secs(10));
        assert_eq!(r.max_sync_ltx_files, None);
        assert!(r.auto_recover);
        assert_eq!(
            r.backend,
            BackendConfig::File(FileConfig {
                path: PathBuf::from("/home/u/backups")
            })
        );
        assert_eq!(
            error(&with_replica("", "path: /b\nmax-sync-ltx-files: -1")),
            "litestream.yml:5:27: dbs[0].replica.max-sync-ltx-files: must be 0 (unlimited) or a positive number of files (got -1)"
        );
        Ok(())
    }

    #[test]
    fn other_backends_from_yaml_keys() -> Result<(), ConfigError> {
        let c = parse(&with_replica(
            "",
            "type: nats\nbucket: b\ntls: true\nroot-cas: [/ca.pem]\nmax-reconnects: 5\ntimeout: 3s\ntoken: t0k3n",
        ))?;
        let BackendConfig::Nats(n) = &db(&c, 0).replica.backend else {
            panic!("not nats");
        };
        assert_eq!(
            (n.bucket.as_str(), n.tls, n.max_reconnects),
            ("b", true, Some(5))
        );
        assert_eq!(n.root_cas, vec![PathBuf::from("/ca.pem")]);
        assert_eq!(n.timeout, std::time::Duration::from_secs(3));
        assert!(!format!("{c:?}").contains("t0k3n"));
        assert_eq!(
            error(&with_replica(
                "",
                "type: nats\nbucket: b\nclient-cert: /c.pem"
            )),
            "litestream.yml:6:20: dbs[0].replica: client-cert and client-key must be set together for mutual TLS"
        );
        assert_eq!(
            error(&with_replica("", "type: nats\nbucket: b\npath: x")),
            "litestream.yml:6:13: dbs[0].replica.path: \"path\" is not a setting of nats replicas (the bucket comes from bucket or the url); remove it"
        );
        Ok(())
    }

    #[test]
    fn replica_sync_interval_must_be_positive() {
        assert_eq!(
            error(&with_replica("", "path: /b\nsync-interval: 0s")),
            "litestream.yml:5:22: dbs[0].replica.sync-interval: sync interval must be greater than 0 (got 0s)"
        );
        // An inherited value is reported where it is written.
        assert_eq!(
            error(&with_replica("sync-interval: -1s\n", "path: /b")),
            "litestream.yml:1:16: sync-interval: sync interval must be greater than 0 (got -1s)"
        );
    }

    #[test]
    fn unknown_types_and_schemes() {
        assert_eq!(
            error(&with_replica("", "type: s4\nbucket: b")),
            "litestream.yml:4:13: dbs[0].replica.type: unknown replica type \"s4\" (did you mean \"s3\"?); use one of file, s3, gs, abs, sftp, webdav, nats, oss"
        );
        assert_eq!(
            error(&with_replica("", "url: gcs://bucket/db")),
            "litestream.yml:4:12: dbs[0].replica.url: unsupported replica URL scheme \"gcs\" (Google Cloud Storage URLs use gs://); use one of file, s3, gs, abs, sftp, webdav, webdavs, nats, oss"
        );
        assert_eq!(
            error(&with_replica("", "type: gs\nurl: s3://bucket/db")),
            "litestream.yml:4:13: dbs[0].replica.type: type gs contradicts the s3 URL; the URL scheme decides the type, so remove type"
        );
        assert_eq!(
            error(&with_replica("", "url: bucket/db")),
            "litestream.yml:4:12: dbs[0].replica.url: invalid replica URL bucket/db: a scheme is required, e.g. s3://bucket/path or file:///path"
        );
    }

    #[test]
    fn a_replica_path_must_not_be_a_url() {
        assert_eq!(
            error(&with_replica("", "path: s3://bucket/db")),
            "litestream.yml:4:13: dbs[0].replica.path: a replica path cannot be a URL; write url: s3://bucket/db instead"
        );
    }
}
