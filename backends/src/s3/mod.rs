//! The `s3` backend: Amazon S3 and S3-compatible stores (S3_PROTOCOL.md),
//! keys laid out as Litestream does (REPLICA_LAYOUT.md §3):
//! `<path>/<level as %04x>/<min>-<max>.ltx`, no `ltx/` segment, each object
//! carrying its LTX header timestamp in `x-amz-meta-litestream-timestamp`.
//!
//! Built directly on hyper, rustls (ring) and `aws-sigv4`, without an AWS
//! SDK. The pieces: [`config`] (settings, addressing, key encoding),
//! `credentials` (the key chain, and renewal of temporary keys), `sign`
//! (SigV4), `client` (pool, timeouts, retries), `retry` (backoff and the one
//! retry classifier), `ops` (the S3 calls), `read` (resumable ranged
//! downloads), `multipart` (streamed uploads), `xml`, `error` and `time`.

mod client;
pub mod config;
mod credentials;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod multipart;
mod ops;
mod read;
mod retry;
mod sign;
mod time;
mod xml;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine as _;
use ltx::TxId;
use md5::{Digest as _, Md5};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

pub use config::{Encryption, S3Settings};
pub use credentials::{CredentialSource, SecretString};
pub use retry::{DEFAULT_BASE_DELAY, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY, RetryPolicy};

use crate::{ByteRange, ByteStream, Error, FileId, FileInfo, ReplicaClient, Result};
use client::Transport;
use config::{Addressing, DEFAULT_REGION, ObjectKey};
use credentials::{Chain, CredentialProvider};
use error::{Context, S3Error};
use ops::Location;

/// `HeadObject` requests in flight when reading exact timestamps
/// (S3_PROTOCOL.md §2.1).
pub const HEAD_CONCURRENCY: usize = 50;

/// A replica in an S3 bucket.
#[derive(Clone)]
pub struct S3Replica {
    inner: Arc<Inner>,
}

/// State shared by the replica and its background tasks (part uploads,
/// resumed downloads, aborts).
pub(crate) struct Inner {
    settings: S3Settings,
    transport: Transport,
    credentials: Arc<CredentialProvider>,
    /// Region and addressing; set at construction unless the region has to
    /// be looked up.
    location: OnceCell<Location>,
    /// SSE-C headers, sent with every object request.
    sse_headers: Vec<(&'static str, String)>,
    /// Storage class and SSE-KMS headers of `PutObject` and
    /// `CreateMultipartUpload`.
    write_headers: Vec<(&'static str, String)>,
}

impl fmt::Debug for S3Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("S3Replica")
            .field("bucket", &s.bucket)
            .field("path", &s.path)
            .field("endpoint", &s.endpoint)
            .field("region", &s.region)
            .field("credentials", self.inner.credentials.source())
            .finish_non_exhaustive()
    }
}

impl S3Replica {
    /// A client for `settings`. Decides where the credentials come from now
    /// (so a missing key or a broken profile is reported at start-up) but
    /// sends no request: temporary credentials are fetched by the first.
    pub fn new(settings: S3Settings) -> Result<S3Replica> {
        settings.validate().map_err(Error::Config)?;
        let chain = credentials::resolve_from_process(
            settings.access_key_id.as_deref(),
            settings.secret_access_key.as_ref(),
        )
        .map_err(Error::Config)?;
        S3Replica::with_chain(settings, chain)
    }

    /// A client for `settings` with credentials (and perhaps a region) from
    /// `chain`.
    pub(crate) fn with_chain(settings: S3Settings, chain: Chain) -> Result<S3Replica> {
        settings.validate().map_err(Error::Config)?;
        let credentials = Arc::new(chain.provider);
        let transport =
            Transport::new(&settings, Arc::clone(&credentials)).map_err(Error::Config)?;

        let mut sse_headers = Vec::new();
        let mut write_headers = Vec::new();
        if let Some(class) = settings.storage_class.as_deref().filter(|c| !c.is_empty()) {
            write_headers.push(("x-amz-storage-class", class.to_owned()));
        }
        match &settings.encryption {
            Encryption::None => {}
            Encryption::CustomerKey { key } => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(key.expose().trim())
                    .ok()
                    .filter(|k| k.len() == 32)
                    .ok_or_else(|| {
                        Error::Config(
                            "the SSE-C key must be the base64 encoding of 32 bytes".to_owned(),
                        )
                    })?;
                let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&raw));
                sse_headers.push((
                    "x-amz-server-side-encryption-customer-algorithm",
                    "AES256".to_owned(),
                ));
                sse_headers.push((
                    "x-amz-server-side-encryption-customer-key",
                    key.expose().trim().to_owned(),
                ));
                sse_headers.push(("x-amz-server-side-encryption-customer-key-md5", md5));
            }
            Encryption::Kms { key_id } => {
                write_headers.push(("x-amz-server-side-encryption", "aws:kms".to_owned()));
                if !key_id.is_empty() {
                    write_headers.push((
                        "x-amz-server-side-encryption-aws-kms-key-id",
                        key_id.clone(),
                    ));
                }
            }
        }

        // The configured region, else AWS_REGION or the profile's (as the
        // AWS SDKs do), else looked up or the default.
        let region = settings
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .or(chain.region)
            .or_else(|| {
                settings
                    .endpoint
                    .is_some()
                    .then(|| DEFAULT_REGION.to_owned())
            });
        let location = match region {
            Some(region) => {
                let addressing = Addressing::new(&settings, &region).map_err(Error::Config)?;
                OnceCell::new_with(Some(Location { region, addressing }))
            }
            None => OnceCell::new(),
        };
        Ok(S3Replica {
            inner: Arc::new(Inner {
                settings,
                transport,
                credentials,
                location,
                sse_headers,
                write_headers,
            }),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &S3Settings {
        &self.inner.settings
    }

    /// Which link of the credential chain supplies the keys.
    pub fn credential_source(&self) -> &CredentialSource {
        self.inner.credentials.source()
    }

    /// The key prefix of a level: `<path>/<level %04x>/`.
    pub fn level_prefix(&self, level: u8) -> String {
        format!("{}/{:04x}/", self.inner.settings.path, level)
    }

    /// The key of a file.
    pub fn key(&self, id: FileId) -> String {
        format!("{}{}", self.level_prefix(id.level), id.file_name())
    }

    fn fail(&self, e: S3Error) -> Error {
        self.inner.fail(e)
    }
}

impl Inner {
    /// Converts an S3 error at the boundary, with what the advice needs.
    pub(crate) fn fail(&self, e: S3Error) -> Error {
        let (endpoint, region) = match self.location.get() {
            Some(l) => (l.addressing.display(), l.region.as_str()),
            None => (
                self.settings
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "Amazon S3".to_owned()),
                self.settings.region.as_deref().unwrap_or(DEFAULT_REGION),
            ),
        };
        let access_key_id = self.credentials.access_key_id().unwrap_or_default();
        e.into_backend(&Context {
            bucket: &self.settings.bucket,
            endpoint: &endpoint,
            region,
            access_key_id: &access_key_id,
            source: self.credentials.source(),
            dynamic: self.credentials.is_dynamic(),
        })
    }
}

#[async_trait]
impl ReplicaClient for S3Replica {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn list(&self, level: u8, seek: TxId) -> Result<Vec<FileInfo>> {
        let prefix = self.level_prefix(level);
        let objects = self
            .inner
            .list_objects(&prefix)
            .await
            .map_err(|e| self.fail(e))?;
        let mut files: Vec<FileInfo> = objects
            .into_iter()
            .filter_map(|o| {
                let name = o.key.rsplit('/').next()?;
                let (min, max) = ltx::parse_file_name(name)?;
                if min < seek {
                    return None;
                }
                let created_at = time::parse(&o.last_modified).unwrap_or_else(|| {
                    // Counted as new, so retention never deletes early.
                    tracing::debug!(key = %o.key, last_modified = %o.last_modified, "unparseable LastModified");
                    SystemTime::now()
                });
                Some(FileInfo {
                    id: FileId::new(level, min, max),
                    size: o.size,
                    created_at,
                })
            })
            .collect();
        files.sort_by_key(|f| (f.id.min_txid, f.id.max_txid));
        Ok(files)
    }

    async fn list_with_exact_times(&self, level: u8, seek: TxId) -> Result<Vec<FileInfo>> {
        let mut files = self.list(level, seek).await?;
        let mut tasks = JoinSet::new();
        // A failed HEAD keeps LastModified (S3_PROTOCOL.md §2.1).
        fn apply(
            files: &mut [FileInfo],
            joined: Option<
                std::result::Result<(usize, Option<SystemTime>), tokio::task::JoinError>,
            >,
        ) {
            if let Some(Ok((i, Some(t)))) = joined
                && let Some(f) = files.get_mut(i)
            {
                f.created_at = t;
            }
        }
        for i in 0..files.len() {
            while tasks.len() >= HEAD_CONCURRENCY {
                let joined = tasks.join_next().await;
                apply(&mut files, joined);
            }
            let inner = Arc::clone(&self.inner);
            let key = ObjectKey::new(self.key(files[i].id));
            tasks.spawn(async move {
                let t = inner.head_object(&key).await.ok().and_then(|h| {
                    h.get(ops::TIMESTAMP_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(time::parse)
                });
                (i, t)
            });
        }
        while !tasks.is_empty() {
            let joined = tasks.join_next().await;
            apply(&mut files, joined);
        }
        Ok(files)
    }

    async fn open(&self, id: FileId, range: ByteRange) -> Result<ByteStream> {
        read::open(Arc::clone(&self.inner), ObjectKey::new(self.key(id)), range)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn write(&self, id: FileId, timestamp_ms: i64, body: ByteStream) -> Result<FileInfo> {
        let key = ObjectKey::new(self.key(id));
        let timestamp = time::format_millis(timestamp_ms);
        let size = multipart::write(&self.inner, &key, &timestamp, body)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(FileInfo {
            id,
            size,
            created_at: crate::time_from_millis(timestamp_ms),
        })
    }

    async fn delete(&self, ids: &[FileId]) -> Result<()> {
        let keys: Vec<String> = ids.iter().map(|&id| self.key(id)).collect();
        self.inner
            .delete_objects(&keys, false)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn delete_all(&self) -> Result<()> {
        let prefix = format!("{}/", self.inner.settings.path);
        let keys: Vec<String> = self
            .inner
            .list_objects(&prefix)
            .await
            .map_err(|e| self.fail(e))?
            .into_iter()
            .map(|o| o.key)
            .collect();
        self.inner
            .delete_objects(&keys, true)
            .await
            .map_err(|e| self.fail(e))?;
        // Uploads a crashed writer left open hold storage too.
        match self.inner.list_uploads(&prefix).await {
            Ok(uploads) => {
                for u in uploads {
                    let key = ObjectKey::new(u.key);
                    self.inner
                        .abort_upload(&key, &u.upload_id)
                        .await
                        .map_err(|e| self.fail(e))?;
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not list open multipart uploads"),
        }
        Ok(())
    }
}
