//! Backends freshet parses but cannot replicate to yet: gs, abs, sftp,
//! webdav, nats and oss (CLI_CONFIG.md §3.4, §5.1). Their settings are
//! checked now so a configuration written for Litestream loads, and the
//! backend reports "not supported yet" when a replica is built.

use std::path::PathBuf;

use super::backend::{
    AbsConfig, GsConfig, NATS_DEFAULT_RECONNECT_WAIT, NATS_DEFAULT_TIMEOUT, NatsConfig,
    OSS_DEFAULT_REGION, OssConfig, SftpConfig, WebdavConfig,
};
use super::error::{ConfigError, Secret};
use super::keys::RKey;
use super::replica::{RawReplica, conflict, positive};
use super::url::ReplicaUrl;
use super::yaml::{At, Doc};

/// Fails when the URL and `key` are both given.
fn exclusive(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
    key: RKey,
    what: &str,
) -> Result<(), ConfigError> {
    match (url, raw.settings.pos(key)) {
        (Some(_), Some(pos)) => Err(conflict(doc, raw, pos, what, Some(key))),
        _ => Ok(()),
    }
}

fn own_path(raw: &RawReplica) -> Option<String> {
    raw.path.as_ref().map(|p| p.value.clone())
}

fn missing(doc: &Doc, raw: &RawReplica, message: &str) -> ConfigError {
    doc.error(raw.pos, &raw.path_key, message)
}

pub(crate) fn gs(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<GsConfig, ConfigError> {
    exclusive(doc, raw, url, RKey::Bucket, "bucket")?;
    let bucket = raw
        .settings
        .str(RKey::Bucket)
        .map(str::to_owned)
        .or_else(|| url.map(|u| u.host.clone()).filter(|h| !h.is_empty()))
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "bucket required for gs replica; set bucket, or url: gs://BUCKET/path",
            )
        })?;
    let path = own_path(raw)
        .or_else(|| url.map(ReplicaUrl::object_path))
        .unwrap_or_default();
    Ok(GsConfig { bucket, path })
}

pub(crate) fn abs(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<AbsConfig, ConfigError> {
    exclusive(doc, raw, url, RKey::Bucket, "bucket")?;
    let s = &raw.settings;
    let container = s
        .str(RKey::Bucket)
        .map(str::to_owned)
        .or_else(|| url.map(|u| u.host.clone()).filter(|h| !h.is_empty()))
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "bucket (the container) required for abs replica; set bucket, or url: abs://[ACCOUNT@]CONTAINER/path",
            )
        })?;
    Ok(AbsConfig {
        account_name: s
            .str(RKey::AccountName)
            .map(str::to_owned)
            .or_else(|| url.and_then(|u| u.username.clone())),
        account_key: s.secret(RKey::AccountKey).cloned(),
        sas_token: s.secret(RKey::SasToken).cloned(),
        container,
        path: own_path(raw)
            .or_else(|| url.map(ReplicaUrl::object_path))
            .unwrap_or_default(),
        endpoint: s.str(RKey::Endpoint).map(str::to_owned),
    })
}

pub(crate) fn sftp(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<SftpConfig, ConfigError> {
    exclusive(doc, raw, url, RKey::Host, "host")?;
    let s = &raw.settings;
    let host = s
        .str(RKey::Host)
        .map(str::to_owned)
        .or_else(|| url.map(|u| u.host.clone()).filter(|h| !h.is_empty()))
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "host required for sftp replica; set host, or url: sftp://USER@HOST/path",
            )
        })?;
    let user = s
        .str(RKey::User)
        .map(str::to_owned)
        .or_else(|| {
            url.and_then(|u| u.username.clone())
                .filter(|u| !u.is_empty())
        })
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "user required for sftp replica; set user, or url: sftp://USER@HOST/path",
            )
        })?;
    Ok(SftpConfig {
        host,
        user,
        password: s
            .secret(RKey::Password)
            .cloned()
            .or_else(|| url.and_then(|u| u.password.clone()).map(Secret::new)),
        key_path: s.str(RKey::KeyPath).map(PathBuf::from),
        host_key: s.str(RKey::HostKey).map(str::to_owned),
        concurrent_writes: s.bool(RKey::ConcurrentWrites).unwrap_or(true),
        // SFTP keeps the URL path as written (absolute), unlike object stores.
        path: own_path(raw)
            .or_else(|| url.map(|u| u.path.clone()))
            .unwrap_or_default(),
    })
}

pub(crate) fn webdav(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<WebdavConfig, ConfigError> {
    exclusive(doc, raw, url, RKey::WebdavUrl, "webdav-url")?;
    let s = &raw.settings;
    let server = s
        .str(RKey::WebdavUrl)
        .map(str::to_owned)
        .or_else(|| {
            let u = url?;
            let scheme = if u.scheme == "webdavs" { "https" } else { "http" };
            (!u.host.is_empty()).then(|| format!("{scheme}://{}", u.host))
        })
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "webdav-url required for webdav replica; set webdav-url, or url: webdav[s]://HOST/path",
            )
        })?;
    Ok(WebdavConfig {
        url: server,
        username: s
            .str(RKey::WebdavUsername)
            .map(str::to_owned)
            .or_else(|| url.and_then(|u| u.username.clone())),
        password: s
            .secret(RKey::WebdavPassword)
            .cloned()
            .or_else(|| url.and_then(|u| u.password.clone()).map(Secret::new)),
        path: own_path(raw)
            .or_else(|| url.map(|u| u.path.clone()))
            .unwrap_or_default(),
    })
}

pub(crate) fn nats(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<NatsConfig, ConfigError> {
    let s = &raw.settings;
    let from_url = url
        .map(|u| u.path.trim_matches('/').to_owned())
        .filter(|b| !b.is_empty());
    let bucket = from_url
        .or_else(|| s.str(RKey::Bucket).map(str::to_owned))
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "bucket required for nats replica; set bucket, or url: nats://HOST/BUCKET",
            )
        })?;
    if s.str(RKey::ClientCert).is_some() != s.str(RKey::ClientKey).is_some() {
        let pos = s
            .pos(RKey::ClientCert)
            .or(s.pos(RKey::ClientKey))
            .unwrap_or(raw.pos);
        return Err(doc.error(
            pos,
            &raw.path_key,
            "client-cert and client-key must be set together for mutual TLS",
        ));
    }
    let max_reconnects = match s.int(RKey::MaxReconnects) {
        None | Some(At { value: -1, .. }) => None,
        Some(At { value, pos }) => Some(u64::try_from(value).map_err(|_| {
            doc.error(
                pos,
                &raw.key(RKey::MaxReconnects),
                format!("must be -1 (unlimited) or a number of attempts (got {value})"),
            )
        })?),
    };
    let non_negative = |key: RKey, default| match s.duration(key) {
        None => Ok(default),
        Some(At { value, pos }) => value.to_std().ok_or_else(|| {
            doc.error(
                pos,
                &raw.key(key),
                format!("must not be negative (got {value})"),
            )
        }),
    };
    Ok(NatsConfig {
        url: url
            .filter(|u| !u.host.is_empty())
            .map(|u| format!("nats://{}", u.host)),
        bucket,
        jwt: s.secret(RKey::Jwt).cloned(),
        seed: s.secret(RKey::Seed).cloned(),
        creds: s.str(RKey::Creds).map(PathBuf::from),
        nkey: s.secret(RKey::Nkey).cloned(),
        username: s
            .str(RKey::Username)
            .map(str::to_owned)
            .or_else(|| url.and_then(|u| u.username.clone())),
        password: s
            .secret(RKey::Password)
            .cloned()
            .or_else(|| url.and_then(|u| u.password.clone()).map(Secret::new)),
        token: s.secret(RKey::Token).cloned(),
        tls: s.bool(RKey::Tls).unwrap_or(false),
        root_cas: s
            .list(RKey::RootCas)
            .unwrap_or_default()
            .iter()
            .map(PathBuf::from)
            .collect(),
        client_cert: s.str(RKey::ClientCert).map(PathBuf::from),
        client_key: s.str(RKey::ClientKey).map(PathBuf::from),
        max_reconnects,
        reconnect_wait: non_negative(RKey::ReconnectWait, NATS_DEFAULT_RECONNECT_WAIT)?,
        timeout: non_negative(RKey::Timeout, NATS_DEFAULT_TIMEOUT)?,
    })
}

pub(crate) fn oss(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
) -> Result<OssConfig, ConfigError> {
    exclusive(doc, raw, url, RKey::Bucket, "bucket")?;
    let s = &raw.settings;
    let (url_bucket, url_region) = url.map(|u| oss_host(&u.host)).unwrap_or_default();
    let bucket = s
        .str(RKey::Bucket)
        .map(str::to_owned)
        .or(url_bucket)
        .ok_or_else(|| {
            missing(
                doc,
                raw,
                "bucket required for oss replica; set bucket, or url: oss://BUCKET/path",
            )
        })?;
    let part_size = s.bytes(RKey::PartSize).map(|a| a.value);
    if let Some(At { value: 0, pos }) = s.bytes(RKey::PartSize) {
        return Err(doc.error(
            pos,
            &raw.key(RKey::PartSize),
            "must be a positive size such as 5MiB",
        ));
    }
    Ok(OssConfig {
        bucket,
        path: own_path(raw)
            .or_else(|| url.map(ReplicaUrl::object_path))
            .unwrap_or_default(),
        region: s
            .str(RKey::Region)
            .map(str::to_owned)
            .or(url_region)
            .unwrap_or_else(|| OSS_DEFAULT_REGION.to_owned()),
        endpoint: s.str(RKey::Endpoint).map(str::to_owned),
        access_key_id: s.str(RKey::AccessKeyId).map(str::to_owned),
        secret_access_key: s.secret(RKey::SecretAccessKey).cloned(),
        part_size,
        concurrency: positive(doc, raw, RKey::Concurrency)?.map(|a| a.value),
    })
}

/// `bucket[.oss-<region>[-internal].aliyuncs.com]`.
fn oss_host(host: &str) -> (Option<String>, Option<String>) {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    if let Some(head) = host.strip_suffix(".aliyuncs.com")
        && let Some((bucket, rest)) = head.split_once('.')
        && let Some(region) = rest.strip_prefix("oss-")
    {
        let region = region.strip_suffix("-internal").unwrap_or(region);
        return (some(bucket), some(region));
    }
    (some(host), None)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{error, with_replica};
    use super::*;

    #[test]
    fn oss_hosts() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(oss_host("mybucket"), (s("mybucket"), None));
        assert_eq!(
            oss_host("mybucket.oss-cn-shanghai.aliyuncs.com"),
            (s("mybucket"), s("cn-shanghai"))
        );
        assert_eq!(
            oss_host("mybucket.oss-cn-beijing-internal.aliyuncs.com"),
            (s("mybucket"), s("cn-beijing"))
        );
        assert_eq!(oss_host(""), (None, None));
    }

    #[test]
    fn url_conflicts_with_the_parts_it_gives() {
        assert_eq!(
            error(&with_replica("", "url: file:///b\npath: /b")),
            "litestream.yml:5:13: dbs[0].replica.path: url and path are both set; the url already gives the path, so keep only one"
        );
        assert_eq!(
            error(&with_replica("", "url: s3://bkt/db\nbucket: other")),
            "litestream.yml:5:15: dbs[0].replica.bucket: url and bucket are both set; the url already gives the bucket, so keep only one"
        );
        // As in Litestream, an inherited bucket conflicts too; the message says where it comes from.
        assert_eq!(
            error(&with_replica("bucket: shared\n", "url: s3://bkt/db")),
            "litestream.yml:1:9: bucket: url and bucket are both set (inherited from the top level); the url already gives the bucket, so keep only one"
        );
        assert_eq!(
            error(&with_replica("", "url: gs://bkt/db\nbucket: other")),
            "litestream.yml:5:15: dbs[0].replica.bucket: url and bucket are both set; the url already gives the bucket, so keep only one"
        );
        assert_eq!(
            error(&with_replica("", "url: sftp://u@h/db\nhost: other")),
            "litestream.yml:5:13: dbs[0].replica.host: url and host are both set; the url already gives the host, so keep only one"
        );
        assert_eq!(
            error(&with_replica(
                "",
                "url: webdav://h/db\nwebdav-url: http://x"
            )),
            "litestream.yml:5:19: dbs[0].replica.webdav-url: url and webdav-url are both set; the url already gives the webdav-url, so keep only one"
        );
    }

    #[test]
    fn required_replica_settings() {
        assert_eq!(
            error(&with_replica("", "type: s3\npath: db")),
            "litestream.yml:4:7: dbs[0].replica: bucket required for s3 replica; set bucket, or url: s3://BUCKET/path"
        );
        assert_eq!(
            error(&with_replica("", "url: s3://localhost:9000/db")),
            "litestream.yml:4:7: dbs[0].replica: bucket required for s3 replica; set bucket, or url: s3://BUCKET/path"
        );
        assert_eq!(
            error(&with_replica("", "type: sftp\nuser: me")),
            "litestream.yml:4:7: dbs[0].replica: host required for sftp replica; set host, or url: sftp://USER@HOST/path"
        );
        assert_eq!(
            error(&with_replica("", "url: sftp://host/db")),
            "litestream.yml:4:7: dbs[0].replica: user required for sftp replica; set user, or url: sftp://USER@HOST/path"
        );
        assert_eq!(
            error(&with_replica("", "type: file")),
            "litestream.yml:4:7: dbs[0].replica: a file replica needs path (a directory) or url (file:///path/to/dir)"
        );
    }
}
