//! Typed replica backend settings, one struct per backend type
//! (CLI_CONFIG.md §3.4), built alike from YAML keys and replica URLs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, Secret};

/// S3 default and minimum multipart part size: 5 MiB (S3_PROTOCOL.md §4).
pub const S3_MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;
/// S3 default multipart upload concurrency, in parts.
pub const S3_DEFAULT_CONCURRENCY: usize = 5;
/// S3 multipart concurrency for Cloudflare R2, in parts.
pub const S3_R2_CONCURRENCY: usize = 2;
/// The only SSE-C algorithm S3 accepts.
pub const S3_SSE_CUSTOMER_ALGORITHM: &str = "AES256";
/// Region used for a custom endpoint with no region configured.
pub const S3_FALLBACK_REGION: &str = "us-east-1";
/// OSS region when none is configured.
pub const OSS_DEFAULT_REGION: &str = "cn-hangzhou";
/// NATS reconnect wait when none is configured: 2 s.
pub const NATS_DEFAULT_RECONNECT_WAIT: Duration = Duration::from_secs(2);
/// NATS connection timeout when none is configured: 10 s.
pub const NATS_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The backend types Litestream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// Local directory.
    File,
    /// Amazon S3 and S3-compatible stores.
    S3,
    /// Google Cloud Storage.
    Gs,
    /// Azure Blob Storage.
    Abs,
    /// SFTP server.
    Sftp,
    /// WebDAV server.
    Webdav,
    /// NATS JetStream object store.
    Nats,
    /// Alibaba Cloud OSS.
    Oss,
}

impl BackendKind {
    /// Every kind, in the order of the documentation.
    pub const ALL: [Self; 8] = [
        Self::File,
        Self::S3,
        Self::Gs,
        Self::Abs,
        Self::Sftp,
        Self::Webdav,
        Self::Nats,
        Self::Oss,
    ];

    /// The name used in `type:` and as URL scheme.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::S3 => "s3",
            Self::Gs => "gs",
            Self::Abs => "abs",
            Self::Sftp => "sftp",
            Self::Webdav => "webdav",
            Self::Nats => "nats",
            Self::Oss => "oss",
        }
    }

    /// The kind for a `type:` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether freshet can replicate to this backend today.
    pub fn is_supported(self) -> bool {
        matches!(self, Self::File | Self::S3)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how a replica is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// `type: file`.
    File(FileConfig),
    /// `type: s3`.
    S3(S3Config),
    /// `type: gs` (not supported yet).
    Gs(GsConfig),
    /// `type: abs` (not supported yet).
    Abs(AbsConfig),
    /// `type: sftp` (not supported yet).
    Sftp(SftpConfig),
    /// `type: webdav` (not supported yet).
    Webdav(WebdavConfig),
    /// `type: nats` (not supported yet).
    Nats(NatsConfig),
    /// `type: oss` (not supported yet).
    Oss(OssConfig),
}

impl BackendConfig {
    /// The backend type.
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::File(_) => BackendKind::File,
            Self::S3(_) => BackendKind::S3,
            Self::Gs(_) => BackendKind::Gs,
            Self::Abs(_) => BackendKind::Abs,
            Self::Sftp(_) => BackendKind::Sftp,
            Self::Webdav(_) => BackendKind::Webdav,
            Self::Nats(_) => BackendKind::Nats,
            Self::Oss(_) => BackendKind::Oss,
        }
    }

    /// Fails with [`ConfigError::UnsupportedBackend`] for a backend freshet
    /// cannot replicate to yet; call it where a replica client is built.
    pub fn require_supported(&self) -> Result<(), ConfigError> {
        let kind = self.kind();
        if kind.is_supported() {
            Ok(())
        } else {
            Err(ConfigError::UnsupportedBackend { kind })
        }
    }

    /// The same backend one level down, for a database found in a `dir`
    /// entry at `rel` (forward slashes) below the directory: file replicas
    /// get `<path>/<rel>`, object stores `path.Join(<path>, <rel>)`.
    pub(crate) fn with_relative_path(&self, rel: &str) -> Self {
        let mut out = self.clone();
        match &mut out {
            Self::File(c) => c.path = c.path.join(rel),
            Self::S3(c) => c.path = join_key(&c.path, rel),
            Self::Gs(c) => c.path = join_key(&c.path, rel),
            Self::Abs(c) => c.path = join_key(&c.path, rel),
            Self::Sftp(c) => c.path = join_key(&c.path, rel),
            Self::Webdav(c) => c.path = join_key(&c.path, rel),
            Self::Oss(c) => c.path = join_key(&c.path, rel),
            // The object-store prefix of a NATS replica is not configurable.
            Self::Nats(_) => {}
        }
        out
    }
}

/// Go's `path.Join(base, rel)` for object keys.
fn join_key(base: &str, rel: &str) -> String {
    if base.is_empty() {
        super::url::clean_path(rel)
    } else {
        super::url::clean_path(&format!("{base}/{rel}"))
    }
}

/// A local directory replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// Absolute path of the replica root.
    pub path: PathBuf,
}

/// An S3 or S3-compatible replica, with every default and provider rule
/// already applied (S3_PROTOCOL.md §1, §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name, or an access-point ARN.
    pub bucket: String,
    /// Key prefix, used verbatim (REPLICA_LAYOUT.md §3: `""` gives keys
    /// starting with `/`, `.` gives `./`).
    pub path: String,
    /// Region; `None`: look it up (AWS) or use [`S3_FALLBACK_REGION`]
    /// (custom endpoint).
    pub region: Option<String>,
    /// Custom endpoint with scheme (`https://…`/`http://…`); `None` = AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Skip TLS certificate verification.
    pub skip_verify: bool,
    /// Sign the payload (`false`: `UNSIGNED-PAYLOAD`).
    pub sign_payload: bool,
    /// Send `Content-MD5` on `DeleteObjects`.
    pub require_content_md5: bool,
    /// `x-amz-storage-class`.
    pub storage_class: Option<String>,
    /// Multipart part size in bytes (at least [`S3_MIN_PART_SIZE_BYTES`]).
    pub part_size: u64,
    /// Parts uploaded in parallel.
    pub concurrency: usize,
    /// Static access key id; with the secret, replaces the AWS default chain.
    pub access_key_id: Option<String>,
    /// Static secret access key.
    pub secret_access_key: Option<Secret>,
    /// Server-side encryption.
    pub encryption: S3Encryption,
    /// The provider detected from the endpoint host.
    pub provider: S3Provider,
}

/// S3 server-side encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Encryption {
    /// None requested.
    None,
    /// SSE-C with a customer key.
    CustomerKey {
        /// Always [`S3_SSE_CUSTOMER_ALGORITHM`].
        algorithm: String,
        /// Base64 of the 32-byte key.
        key: Secret,
    },
    /// SSE-KMS.
    Kms {
        /// The KMS key id.
        key_id: String,
    },
}

/// S3-compatible providers whose quirks matter (S3_PROTOCOL.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Provider {
    /// No endpoint: Amazon S3.
    Aws,
    /// A custom endpoint not recognised below.
    Custom,
    /// Tigris: `X-Tigris-Consistent: true`, no Content-MD5 by default.
    Tigris,
    /// Cloudflare R2: concurrency 2 by default.
    CloudflareR2,
    /// Backblaze B2: path style forced.
    Backblaze,
    /// Filebase: path style forced.
    Filebase,
    /// A `host:port` endpoint that is no known cloud (MinIO and the like):
    /// path style forced.
    MinioLike,
    /// Supabase: path style forced.
    Supabase,
    /// Hetzner.
    Hetzner,
    /// DigitalOcean Spaces.
    DigitalOcean,
    /// Scaleway.
    Scaleway,
    /// Google Cloud Storage XML API: drop `Accept-Encoding` before signing.
    GoogleCloudStorage,
}

impl S3Provider {
    /// Detects the provider from an endpoint (`None` = AWS).
    pub fn detect(endpoint: Option<&str>) -> Self {
        let Some(endpoint) = endpoint else {
            return Self::Aws;
        };
        let host = endpoint_host(endpoint);
        if host.is_empty() {
            return Self::Aws;
        }
        let known_cloud = [
            ".amazonaws.com",
            ".digitaloceanspaces.com",
            ".backblazeb2.com",
            ".filebase.com",
            ".scw.cloud",
            ".r2.cloudflarestorage.com",
            "tigris.dev",
            "t3.storage.dev",
            ".supabase.co",
        ];
        if host == "fly.storage.tigris.dev" || host == "t3.storage.dev" {
            Self::Tigris
        } else if host.ends_with(".r2.cloudflarestorage.com") {
            Self::CloudflareR2
        } else if host.ends_with(".backblazeb2.com") {
            Self::Backblaze
        } else if host == "s3.filebase.com" {
            Self::Filebase
        } else if host.ends_with(".supabase.co") {
            Self::Supabase
        } else if host.ends_with(".your-objectstorage.com") {
            Self::Hetzner
        } else if host.ends_with(".digitaloceanspaces.com") {
            Self::DigitalOcean
        } else if host.ends_with(".scw.cloud") {
            Self::Scaleway
        } else if is_gcs_host(&host) {
            Self::GoogleCloudStorage
        } else if host.contains(':') && !known_cloud.iter().any(|c| host.contains(c)) {
            Self::MinioLike
        } else {
            Self::Custom
        }
    }

    /// Whether the provider needs path-style requests unless the user set
    /// `force-path-style` explicitly.
    pub fn forces_path_style(self) -> bool {
        matches!(
            self,
            Self::Backblaze | Self::Filebase | Self::MinioLike | Self::Supabase
        )
    }
}

/// The lower-cased `host[:port]` of an endpoint, with or without scheme.
fn endpoint_host(endpoint: &str) -> String {
    let e = endpoint.trim().to_ascii_lowercase();
    let Some(rest) = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
    else {
        return e;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() { e } else { host.to_owned() }
}

/// Google Cloud Storage XML endpoints (S3_PROTOCOL.md §5).
fn is_gcs_host(host_port: &str) -> bool {
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    };
    let host = host.trim_end_matches('.');
    let Some(prefix) = host.strip_suffix(".googleapis.com") else {
        return false;
    };
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 3 || labels.iter().any(|l| l.is_empty()) || prefix.is_empty() {
        return false;
    }
    let has_storage = |label: &str| label.split('-').any(|p| p == "storage");
    has_storage(labels[0]) && (labels.len() <= 3 || !has_storage(labels[1]))
}

/// A Google Cloud Storage replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsConfig {
    /// Bucket.
    pub bucket: String,
    /// Object prefix.
    pub path: String,
}

/// An Azure Blob Storage replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsConfig {
    /// Storage account.
    pub account_name: Option<String>,
    /// Shared key (else `LITESTREAM_AZURE_ACCOUNT_KEY`).
    pub account_key: Option<Secret>,
    /// SAS token (else `LITESTREAM_AZURE_SAS_TOKEN`).
    pub sas_token: Option<Secret>,
    /// Container (`bucket:`).
    pub container: String,
    /// Blob prefix.
    pub path: String,
    /// Endpoint (default `https://<account>.blob.core.windows.net`).
    pub endpoint: Option<String>,
}

/// An SFTP replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpConfig {
    /// `host[:port]`.
    pub host: String,
    /// Login user.
    pub user: String,
    /// Password.
    pub password: Option<Secret>,
    /// Private key file.
    pub key_path: Option<PathBuf>,
    /// Expected host key (authorized_keys format); `None`: not verified.
    pub host_key: Option<String>,
    /// Concurrent writes (default true).
    pub concurrent_writes: bool,
    /// Remote directory.
    pub path: String,
}

/// A WebDAV replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebdavConfig {
    /// Server URL (`http://…` or `https://…`).
    pub url: String,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Remote directory.
    pub path: String,
}

/// A NATS JetStream object-store replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URL `nats://host[:port]`; `None`: the client default.
    pub url: Option<String>,
    /// Object-store bucket (must exist).
    pub bucket: String,
    /// User JWT (with `seed`).
    pub jwt: Option<Secret>,
    /// NKey seed (with `jwt`).
    pub seed: Option<Secret>,
    /// Credentials file.
    pub creds: Option<PathBuf>,
    /// NKey.
    pub nkey: Option<Secret>,
    /// User name (with `password`).
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Token.
    pub token: Option<Secret>,
    /// Require TLS.
    pub tls: bool,
    /// Root CA files.
    pub root_cas: Vec<PathBuf>,
    /// Client certificate file (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// Client key file (with `client_cert`).
    pub client_key: Option<PathBuf>,
    /// Reconnect attempts; `None` = unlimited (`-1`).
    pub max_reconnects: Option<u64>,
    /// Wait between reconnects.
    pub reconnect_wait: Duration,
    /// Connection timeout.
    pub timeout: Duration,
}

/// An Alibaba Cloud OSS replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssConfig {
    /// Bucket.
    pub bucket: String,
    /// Key prefix.
    pub path: String,
    /// Region.
    pub region: String,
    /// Custom endpoint.
    pub endpoint: Option<String>,
    /// Access key id (else OSS environment credentials).
    pub access_key_id: Option<String>,
    /// Access key secret.
    pub secret_access_key: Option<Secret>,
    /// Multipart part size in bytes; `None`: the client default.
    pub part_size: Option<u64>,
    /// Upload concurrency; `None`: the client default.
    pub concurrency: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_detected_from_the_endpoint_host() {
        let cases: &[(Option<&str>, S3Provider)] = &[
            (None, S3Provider::Aws),
            (Some("https://fly.storage.tigris.dev"), S3Provider::Tigris),
            (Some("https://t3.storage.dev"), S3Provider::Tigris),
            (Some("https://x.tigris.dev"), S3Provider::Custom),
            (
                Some("https://acct.r2.cloudflarestorage.com"),
                S3Provider::CloudflareR2,
            ),
            (
                Some("https://s3.us-west-004.backblazeb2.com"),
                S3Provider::Backblaze,
            ),
            (Some("https://s3.filebase.com"), S3Provider::Filebase),
            (Some("s3.filebase.com"), S3Provider::Filebase),
            (Some("http://localhost:9000"), S3Provider::MinioLike),
            (Some("http://127.0.0.1:9000/"), S3Provider::MinioLike),
            (
                Some("https://proj.supabase.co/storage/v1/s3"),
                S3Provider::Supabase,
            ),
            (
                Some("https://fsn1.your-objectstorage.com"),
                S3Provider::Hetzner,
            ),
            (
                Some("https://nyc3.digitaloceanspaces.com"),
                S3Provider::DigitalOcean,
            ),
            (Some("https://s3.fr-par.scw.cloud"), S3Provider::Scaleway),
            (
                Some("https://storage.googleapis.com"),
                S3Provider::GoogleCloudStorage,
            ),
            (
                Some("https://us-east1-storage.googleapis.com"),
                S3Provider::GoogleCloudStorage,
            ),
            (
                Some("https://storage.mtls.googleapis.com"),
                S3Provider::GoogleCloudStorage,
            ),
            (
                Some("https://bucket.storage.googleapis.com"),
                S3Provider::Custom,
            ),
            (Some("https://googleapis.com"), S3Provider::Custom),
            (Some("https://minio.example.org"), S3Provider::Custom),
            (
                Some("https://s3.eu-west-1.amazonaws.com:443"),
                S3Provider::Custom,
            ),
        ];
        for (endpoint, want) in cases {
            assert_eq!(S3Provider::detect(*endpoint), *want, "{endpoint:?}");
        }
    }

    #[test]
    fn kinds_round_trip_their_names_and_only_file_and_s3_are_supported() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(kind.name()), Some(kind));
            assert_eq!(
                kind.is_supported(),
                matches!(kind, BackendKind::File | BackendKind::S3)
            );
        }
        assert_eq!(BackendKind::from_name("gcs"), None);
        let gs = BackendConfig::Gs(GsConfig {
            bucket: "b".into(),
            path: "p".into(),
        });
        let err = gs
            .require_supported()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "replica type gs is not supported yet; freshet replicates to file and s3 replicas"
        );
    }

    #[test]
    fn relative_paths_extend_the_replica_path() {
        let file = BackendConfig::File(FileConfig {
            path: PathBuf::from("/backups"),
        });
        assert_eq!(
            file.with_relative_path("tenants/a.db"),
            BackendConfig::File(FileConfig {
                path: PathBuf::from("/backups/tenants/a.db")
            })
        );
        let gs = |path: &str| {
            BackendConfig::Gs(GsConfig {
                bucket: "b".into(),
                path: path.into(),
            })
        };
        assert_eq!(gs("backups").with_relative_path("a.db"), gs("backups/a.db"));
        assert_eq!(gs("").with_relative_path("a.db"), gs("a.db"));
        assert_eq!(gs(".").with_relative_path("a.db"), gs("a.db"));
        assert_eq!(gs("db/").with_relative_path("x/a.db"), gs("db/x/a.db"));
    }
}
