//! S3 replicas: YAML keys, URL host forms and query parameters, and provider
//! defaults combined into an [`S3Config`] (CLI_CONFIG.md §3.4, §5.2–5.3;
//! S3_PROTOCOL.md §1, §5).
//!
//! Precedence follows Litestream: YAML values (including inherited top-level
//! ones) beat URL values, except that the URL can turn path style on, and
//! `?skipVerify=` decides when present.

use super::backend::{
    S3_DEFAULT_CONCURRENCY, S3_MIN_PART_SIZE_BYTES, S3_R2_CONCURRENCY, S3Config, S3Provider,
};
use super::error::ConfigError;
use super::keys::{RKey, join};
use super::load::Environment;
use super::replica::{RawReplica, conflict, positive, url_error};
use super::url::{ReplicaUrl, arn_region, parse_s3_host, query_endpoint};
use super::yaml::{At, Doc};

/// What the URL contributes.
#[derive(Default)]
struct FromUrl {
    bucket: Option<String>,
    path: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    force_path_style: bool,
    skip_verify: Option<bool>,
    sign_payload: Option<bool>,
    require_content_md5: Option<bool>,
    storage_class: Option<String>,
    part_size: Option<u64>,
    concurrency: Option<usize>,
}

pub(crate) fn build(
    doc: &Doc,
    raw: &RawReplica,
    url: Option<&ReplicaUrl>,
    env: &Environment,
) -> Result<S3Config, ConfigError> {
    let s = &raw.settings;
    if let (Some(_), Some(pos)) = (url, s.pos(RKey::Bucket)) {
        return Err(conflict(doc, raw, pos, "bucket", Some(RKey::Bucket)));
    }
    let from_url = match url {
        Some(u) => read_url(doc, raw, u)?,
        None => FromUrl::default(),
    };

    let bucket = s
        .str(RKey::Bucket)
        .map(str::to_owned)
        .or(from_url.bucket)
        .ok_or_else(|| {
            doc.error(
                raw.pos,
                &raw.path_key,
                "bucket required for s3 replica; set bucket, or url: s3://BUCKET/path",
            )
        })?;
    let path = raw
        .path
        .as_ref()
        .map(|p| p.value.clone())
        .or(from_url.path)
        .unwrap_or_default();
    let yaml_endpoint = s.str(RKey::Endpoint).map(|e| {
        if e.starts_with("http://") || e.starts_with("https://") {
            e.to_owned()
        } else {
            format!("https://{e}")
        }
    });
    let explicit_path_style = s.bool(RKey::ForcePathStyle);
    let mut force_path_style =
        explicit_path_style.unwrap_or(yaml_endpoint.is_some()) || from_url.force_path_style;
    let region = s.str(RKey::Region).map(str::to_owned).or(from_url.region);
    let endpoint = yaml_endpoint.or(from_url.endpoint);
    let provider = S3Provider::detect(endpoint.as_deref());
    if explicit_path_style.is_none() && provider.forces_path_style() {
        force_path_style = true;
    }
    let skip_verify = from_url
        .skip_verify
        .unwrap_or_else(|| s.bool(RKey::SkipVerify).unwrap_or(false));
    let sign_payload = s
        .bool(RKey::SignPayload)
        .or(from_url.sign_payload)
        .unwrap_or(true);
    let require_content_md5 = s
        .bool(RKey::RequireContentMd5)
        .or(from_url.require_content_md5)
        .unwrap_or(provider != S3Provider::Tigris);
    let storage_class = s
        .str(RKey::StorageClass)
        .map(str::to_owned)
        .or(from_url.storage_class);

    let part_size = match s.bytes(RKey::PartSize) {
        Some(At { value, pos }) => Some((value, pos, raw.key(RKey::PartSize))),
        None => from_url.part_size.map(|v| {
            let pos = raw.url.as_ref().map_or(raw.pos, |u| u.pos);
            (v, pos, join(&raw.path_key, "url"))
        }),
    };
    let part_size = match part_size {
        None => S3_MIN_PART_SIZE_BYTES,
        Some((v, _, _)) if v >= S3_MIN_PART_SIZE_BYTES => v,
        Some((v, pos, key)) => {
            return Err(doc.error(
                pos,
                &key,
                format!(
                    "part size {v} bytes is below the S3 minimum of 5MiB ({S3_MIN_PART_SIZE_BYTES} bytes); \
                     note 5MB means 5000000 bytes, write 5MiB"
                ),
            ));
        }
    };
    let concurrency = positive(doc, raw, RKey::Concurrency)?
        .map(|a| a.value)
        .or(from_url.concurrency)
        .unwrap_or(if provider == S3Provider::CloudflareR2 {
            S3_R2_CONCURRENCY
        } else {
            S3_DEFAULT_CONCURRENCY
        });

    Ok(S3Config {
        bucket,
        path,
        region,
        endpoint,
        force_path_style,
        skip_verify,
        sign_payload,
        require_content_md5,
        storage_class,
        part_size,
        concurrency,
        access_key_id: s.str(RKey::AccessKeyId).map(str::to_owned),
        secret_access_key: s.secret(RKey::SecretAccessKey).cloned(),
        encryption: super::sse::encryption(doc, raw, env)?,
        provider,
    })
}

/// Host forms and query parameters of the config/CLI parser (§5.2–5.3).
fn read_url(doc: &Doc, raw: &RawReplica, u: &ReplicaUrl) -> Result<FromUrl, ConfigError> {
    let mut out = FromUrl {
        path: Some(u.object_path()),
        ..FromUrl::default()
    };
    if u.host
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("arn:"))
    {
        out.bucket = Some(u.host.clone());
        out.region = arn_region(&u.host).map(str::to_owned);
    } else {
        let host = parse_s3_host(&u.host);
        out.bucket = host.bucket;
        out.region = host.region;
        out.endpoint = host.endpoint;
        out.force_path_style = host.force_path_style;
    }
    if let Some(endpoint) = u.query("endpoint") {
        out.endpoint = Some(query_endpoint(endpoint));
        if u.query("forcePathStyle") != Some("false") {
            out.force_path_style = true;
        }
    }
    if let Some(region) = u.query("region") {
        out.region = Some(region.to_owned());
    }
    if let Some(v) = u.query("forcePathStyle") {
        out.force_path_style = v == "true";
    }
    if let Some(v) = u.query("skipVerify") {
        out.skip_verify = Some(v == "true");
    }
    out.sign_payload = query_bool(u, &["signPayload", "sign-payload"]);
    out.require_content_md5 = query_bool(u, &["requireContentMD5", "require-content-md5"]);
    out.storage_class = ["storageClass", "storage-class"]
        .iter()
        .find_map(|k| u.query(k))
        .map(str::to_owned);
    for name in ["partSize", "part-size"] {
        if let Some(v) = u.query(name) {
            let n = v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                url_error(
                    doc,
                    raw,
                    format!("{name}={v:?} must be a positive number of bytes"),
                )
            })?;
            out.part_size = Some(n);
            break;
        }
    }
    if let Some(v) = u.query("concurrency") {
        let n = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            url_error(
                doc,
                raw,
                format!("concurrency={v:?} must be a positive integer"),
            )
        })?;
        out.concurrency = Some(n);
    }
    Ok(out)
}

/// The first of `names` present decides: `true, 1, t, yes` are true, any
/// other value false (Litestream's query boolean).
fn query_bool(u: &ReplicaUrl, names: &[&str]) -> Option<bool> {
    names
        .iter()
        .find_map(|n| u.query(n))
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "t" | "yes"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::testutil::{error, parse, parse_with, s3, with_replica};
    use super::super::{
        BackendConfig, Config, Environment, S3Encryption, Secret, parse_replica_url_in,
    };
    use super::*;

    fn url(u: &str) -> S3Config {
        let env = Environment {
            vars: &|_| None,
            home: Some(PathBuf::from("/home/u")),
            cwd: Some(PathBuf::from("/srv/app")),
        };
        match parse_replica_url_in(u, &env) {
            Ok(BackendConfig::S3(c)) => c,
            other => panic!("{u}: {other:?}"),
        }
    }

    fn yaml(globals: &str, replica: &str) -> S3Config {
        match parse(&with_replica(globals, replica)) {
            Ok(c) => s3(&c, 0).clone(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn url_paths_follow_the_layout_quirks() {
        assert_eq!(url("s3://bucket/db").path, "db");
        assert_eq!(url("s3://bucket/db/").path, "db");
        assert_eq!(url("s3://bucket/").path, "");
        assert_eq!(url("s3://bucket").path, ".");
        assert_eq!(url("s3://bucket/a//b/../c").path, "a/c");
        // A YAML path is used verbatim.
        assert_eq!(yaml("", "type: s3\nbucket: b\npath: db/").path, "db/");
        assert_eq!(yaml("", "type: s3\nbucket: b\npath: /db").path, "/db");
    }

    #[test]
    fn plain_aws_defaults() {
        let c = url("s3://my-bucket/app");
        assert_eq!(c.bucket, "my-bucket");
        assert_eq!(c.region, None);
        assert_eq!(c.endpoint, None);
        assert!(!c.force_path_style && !c.skip_verify);
        assert!(c.sign_payload && c.require_content_md5);
        assert_eq!(c.part_size, 5 * 1024 * 1024);
        assert_eq!(c.concurrency, 5);
        assert_eq!(c.provider, S3Provider::Aws);
        assert_eq!(c.encryption, S3Encryption::None);
    }

    #[test]
    fn host_forms_of_section_5_2() {
        let row = |u: &str| {
            let c = url(u);
            (c.bucket, c.region, c.endpoint, c.force_path_style)
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            row("s3://b.s3.amazonaws.com/p"),
            ("b".into(), None, None, false)
        );
        assert_eq!(
            row("s3://b.s3.eu-west-1.amazonaws.com/p"),
            ("b".into(), s("eu-west-1"), None, false)
        );
        assert_eq!(
            row("s3://b.nyc3.digitaloceanspaces.com/p"),
            (
                "b".into(),
                s("nyc3"),
                s("https://nyc3.digitaloceanspaces.com"),
                false
            )
        );
        assert_eq!(
            row("s3://b.s3.us-west-004.backblazeb2.com/p"),
            (
                "b".into(),
                s("us-west-004"),
                s("https://s3.us-west-004.backblazeb2.com"),
                true
            )
        );
        // Filebase: the provider default turns path style on.
        assert_eq!(
            row("s3://b.s3.filebase.com/p"),
            ("b".into(), None, s("https://s3.filebase.com"), true)
        );
        assert_eq!(
            row("s3://b.s3.fr-par.scw.cloud/p"),
            (
                "b".into(),
                s("fr-par"),
                s("https://s3.fr-par.scw.cloud"),
                false
            )
        );
        assert_eq!(
            row("s3://b.localhost:9000/p"),
            ("b".into(), s("us-east-1"), s("http://localhost:9000"), true)
        );
        assert_eq!(
            row("s3://plain-bucket/p"),
            ("plain-bucket".into(), None, None, false)
        );
        let arn = url("s3://arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/db");
        assert_eq!(
            arn.bucket,
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap"
        );
        assert_eq!(arn.region.as_deref(), Some("us-west-2"));
        assert_eq!(arn.path, "db");
    }

    #[test]
    fn query_parameters_of_section_5_3() {
        let c = url("s3://b/p?endpoint=localhost:9000&region=eu-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://localhost:9000"));
        assert_eq!(c.region.as_deref(), Some("eu-1"));
        assert!(c.force_path_style);
        assert_eq!(c.provider, S3Provider::MinioLike);
        let c = url("s3://b/p?endpoint=s3.example.com&forcePathStyle=false");
        assert_eq!(c.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(!c.force_path_style);
        assert!(url("s3://b/p?forcePathStyle=true").force_path_style);
        // Only the camelCase forms of forcePathStyle and skipVerify are read here.
        assert!(!url("s3://b/p?force-path-style=true").force_path_style);
        assert!(url("s3://b/p?skipVerify=true").skip_verify);
        assert!(!url("s3://b/p?skip-verify=true").skip_verify);
        assert!(!url("s3://b/p?signPayload=false").sign_payload);
        assert!(!url("s3://b/p?sign-payload=no").sign_payload);
        assert!(url("s3://b/p?signPayload=yes").sign_payload);
        assert!(!url("s3://b/p?requireContentMD5=0").require_content_md5);
        assert!(!url("s3://b/p?require-content-md5=f").require_content_md5);
        assert_eq!(
            url("s3://b/p?storageClass=GLACIER_IR")
                .storage_class
                .as_deref(),
            Some("GLACIER_IR")
        );
        assert_eq!(
            url("s3://b/p?storage-class=STANDARD_IA")
                .storage_class
                .as_deref(),
            Some("STANDARD_IA")
        );
        assert_eq!(url("s3://b/p?partSize=10485760").part_size, 10_485_760);
        assert_eq!(url("s3://b/p?part-size=6291456").part_size, 6_291_456);
        assert_eq!(url("s3://b/p?concurrency=16").concurrency, 16);
        let env = Environment {
            vars: &|_| None,
            home: None,
            cwd: None,
        };
        let err = |u: &str| {
            parse_replica_url_in(u, &env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err("s3://b/p?concurrency=0"),
            "command line: replica.url: concurrency=\"0\" must be a positive integer"
        );
        assert_eq!(
            err("s3://b/p?partSize=5MB"),
            "command line: replica.url: partSize=\"5MB\" must be a positive number of bytes"
        );
        assert_eq!(
            err("s3://b/p?partSize=1000"),
            "command line: replica.url: part size 1000 bytes is below the S3 minimum of 5MiB (5242880 bytes); note 5MB means 5000000 bytes, write 5MiB"
        );
    }

    #[test]
    fn yaml_beats_the_url_except_for_turning_path_style_on() {
        let c = yaml(
            "",
            "url: s3://b/p?region=url-region&signPayload=false\nregion: yaml-region\nsign-payload: true",
        );
        assert_eq!(c.region.as_deref(), Some("yaml-region"));
        assert!(c.sign_payload);
        let c = yaml(
            "",
            "url: s3://b/p?forcePathStyle=true\nforce-path-style: false",
        );
        assert!(c.force_path_style);
        // The top-level region is inherited and also beats the URL.
        let c = yaml(
            "region: global\n",
            "url: s3://b.s3.eu-west-1.amazonaws.com/p",
        );
        assert_eq!(c.region.as_deref(), Some("global"));
    }

    #[test]
    fn yaml_endpoints_and_provider_defaults() {
        let c = yaml("", "type: s3\nbucket: b\nendpoint: minio.internal:9000");
        assert_eq!(c.endpoint.as_deref(), Some("https://minio.internal:9000"));
        assert!(c.force_path_style);
        let c = yaml(
            "",
            "type: s3\nbucket: b\nendpoint: https://acct.r2.cloudflarestorage.com",
        );
        assert_eq!((c.provider, c.concurrency), (S3Provider::CloudflareR2, 2));
        let c = yaml(
            "",
            "type: s3\nbucket: b\nendpoint: https://acct.r2.cloudflarestorage.com\nconcurrency: 8",
        );
        assert_eq!(c.concurrency, 8);
        let c = yaml(
            "",
            "type: s3\nbucket: b\nendpoint: https://fly.storage.tigris.dev",
        );
        assert_eq!(c.provider, S3Provider::Tigris);
        assert!(!c.require_content_md5 && c.sign_payload);
        let c = yaml(
            "",
            "url: s3://b/p?endpoint=https://fly.storage.tigris.dev&requireContentMD5=true",
        );
        assert!(c.require_content_md5);
        // An explicit force-path-style wins over the provider default…
        let c = yaml(
            "",
            "type: s3\nbucket: b\nendpoint: https://s3.us-west-004.backblazeb2.com\nforce-path-style: false",
        );
        assert!(!c.force_path_style);
        // …but not over a URL host that implies path style (the URL can only turn it on).
        let c = yaml(
            "",
            "url: s3://b.s3.us-west-004.backblazeb2.com/p\nforce-path-style: false",
        );
        assert!(c.force_path_style);
        // An explicit YAML endpoint turns path style on unless set.
        let c = yaml(
            "",
            "type: s3\nbucket: b\nendpoint: https://s3.example.com\nforce-path-style: false",
        );
        assert!(!c.force_path_style);
    }

    #[test]
    fn part_size_is_a_byte_size_of_at_least_5_mib() {
        assert_eq!(
            yaml("", "url: s3://b/p\npart-size: 16MiB").part_size,
            16 << 20
        );
        assert_eq!(
            error(&with_replica("", "url: s3://b/p\npart-size: 5MB")),
            "litestream.yml:5:18: dbs[0].replica.part-size: part size 5000000 bytes is below the S3 minimum of 5MiB (5242880 bytes); note 5MB means 5000000 bytes, write 5MiB"
        );
    }

    #[test]
    fn s3_replicas_inherit_top_level_settings() -> Result<(), ConfigError> {
        let globals = "\
access-key-id: AKID
secret-access-key: s3cr3t
region: us-west-2
bucket: shared-bucket
endpoint: s3.example.com
force-path-style: false
sign-payload: false
require-content-md5: false
skip-verify: true
storage-class: STANDARD_IA
sse-kms-key-id: kms-1
sync-interval: 5s
max-sync-ltx-files: 10
auto-recover: true
part-size: 64MiB
concurrency: 9
";
        let c: Config = parse(&with_replica(
            globals,
            "type: s3\npath: app\nskip-verify: false",
        ))?;
        let r = &super::super::testutil::db(&c, 0).replica;
        assert_eq!(r.sync_interval, std::time::Duration::from_secs(5));
        assert_eq!(r.max_sync_ltx_files, Some(10));
        assert!(r.auto_recover);
        let s = s3(&c, 0);
        assert_eq!(s.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(
            s.secret_access_key.as_ref().map(Secret::expose),
            Some("s3cr3t")
        );
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert_eq!(s.bucket, "shared-bucket");
        assert_eq!(s.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(!s.force_path_style && !s.sign_payload && !s.require_content_md5);
        // A top-level skip-verify: true wins over the replica's false.
        assert!(s.skip_verify);
        assert_eq!(s.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(
            s.encryption,
            S3Encryption::Kms {
                key_id: "kms-1".into()
            }
        );
        // part-size and concurrency are not inherited.
        assert_eq!(
            (s.part_size, s.concurrency),
            (S3_MIN_PART_SIZE_BYTES, S3_DEFAULT_CONCURRENCY)
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        // A replica's own value wins over the top level.
        let c = parse(&with_replica(
            globals,
            "type: s3\npath: app\nregion: eu-central-1\nsync-interval: 1m",
        ))?;
        assert_eq!(s3(&c, 0).region.as_deref(), Some("eu-central-1"));
        Ok(())
    }

    #[test]
    fn credentials_from_expanded_variables() -> Result<(), ConfigError> {
        let text = with_replica(
            "access-key-id: ${AWS_ACCESS_KEY_ID}\nsecret-access-key: $AWS_SECRET_ACCESS_KEY\n",
            "url: s3://b/p",
        );
        let c = parse_with(
            &text,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIA1"),
                ("AWS_SECRET_ACCESS_KEY", "shh"),
            ],
        )?;
        assert_eq!(s3(&c, 0).access_key_id.as_deref(), Some("AKIA1"));
        assert_eq!(
            s3(&c, 0).secret_access_key.as_ref().map(Secret::expose),
            Some("shh")
        );
        // Unset variables leave the keys unset (the AWS default chain applies).
        let c = parse_with(&text, &[])?;
        assert_eq!(s3(&c, 0).access_key_id, None);
        Ok(())
    }
}
