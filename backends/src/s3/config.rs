//! Client settings ([`S3Settings`]) and what follows from them: the
//! endpoint, path-style or virtual-hosted addressing (S3_PROTOCOL.md §1.3),
//! and object keys percent-encoded once, here (`ObjectKey`).

use std::time::Duration;

use super::credentials::SecretString;
use super::retry::RetryPolicy;

/// Smallest multipart part S3 accepts, and the default part size: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest multipart part S3 accepts: 5 GiB.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Most parts one multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;
/// Parts uploaded at once by default (S3_PROTOCOL.md §4).
pub const DEFAULT_CONCURRENCY: usize = 5;
/// Region for a custom endpoint with none configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Most requests in flight (and pooled connections) per client.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Time to establish a TCP connection (S3_PROTOCOL.md §1.4).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time from sending a request until its response headers (and, for small
/// responses, the whole body) have arrived, plus one second per
/// [`MIN_UPLOAD_RATE`] bytes of request body, so a large part on a slow link
/// is not cut off.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The slowest upload, in bytes per second, that the request timeout
/// allows for.
pub const MIN_UPLOAD_RATE: u64 = 64 * 1024;
/// Longest wait for the next bytes of an object being downloaded before the
/// read is resumed on a new connection.
pub const DEFAULT_READ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-side encryption of the objects written (S3_PROTOCOL.md §2.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Whatever the bucket does by default.
    #[default]
    None,
    /// SSE-C: S3 encrypts with our key, which every read must send again.
    CustomerKey {
        /// Base64 of the 32-byte key.
        key: SecretString,
    },
    /// SSE-KMS with a key id, ARN or alias.
    Kms {
        /// The KMS key.
        key_id: String,
    },
}

/// Everything an [`S3Replica`](super::S3Replica) needs. Build with
/// [`S3Settings::new`], then set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct S3Settings {
    /// Bucket name, or an access-point ARN.
    pub bucket: String,
    /// Key prefix, used verbatim: keys are `<path>/<level %04x>/<name>`
    /// (REPLICA_LAYOUT.md §3).
    pub path: String,
    /// Region; `None`: [`DEFAULT_REGION`] for a custom endpoint, otherwise
    /// looked up with `GetBucketLocation`.
    pub region: Option<String>,
    /// Base URL with scheme of a custom endpoint; `None` for AWS.
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub force_path_style: bool,
    /// Accept any TLS certificate (test endpoints only).
    pub skip_verify: bool,
    /// Sign the payload's SHA-256; `false` sends `UNSIGNED-PAYLOAD`.
    pub sign_payload: bool,
    /// `Content-MD5` on `DeleteObjects`; otherwise `x-amz-checksum-sha256`.
    pub require_content_md5: bool,
    /// `x-amz-storage-class` of written objects.
    pub storage_class: Option<String>,
    /// Multipart part size in bytes, [`MIN_PART_SIZE`]..=[`MAX_PART_SIZE`];
    /// files smaller than this are sent with one `PutObject`.
    pub part_size: u64,
    /// Parts uploaded at once (at least 1).
    pub concurrency: usize,
    /// Access key id from the configuration (used with the secret).
    pub access_key_id: Option<String>,
    /// Secret access key from the configuration.
    pub secret_access_key: Option<SecretString>,
    /// Server-side encryption.
    pub encryption: Encryption,
    /// Extra headers on every request (e.g. Tigris' `X-Tigris-Consistent`).
    pub extra_headers: Vec<(String, String)>,
    /// Most requests in flight at once, downloads being read included.
    pub max_connections: usize,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// See [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`DEFAULT_READ_IDLE_TIMEOUT`].
    pub read_idle_timeout: Duration,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// `max-keys` of listings; `None` leaves the server's default (1000).
    pub list_max_keys: Option<u32>,
}

impl S3Settings {
    /// Settings for `bucket` and key prefix `path` with Litestream's
    /// defaults: AWS, region looked up, signed payloads, Content-MD5 on
    /// deletes, 5 MiB parts, 5 at a time.
    pub fn new(bucket: impl Into<String>, path: impl Into<String>) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            path: path.into(),
            region: None,
            endpoint: None,
            force_path_style: false,
            skip_verify: false,
            sign_payload: true,
            require_content_md5: true,
            storage_class: None,
            part_size: MIN_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            access_key_id: None,
            secret_access_key: None,
            encryption: Encryption::None,
            extra_headers: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            read_idle_timeout: DEFAULT_READ_IDLE_TIMEOUT,
            retry: RetryPolicy::default(),
            list_max_keys: None,
        }
    }

    /// Checks the values a config parser may not have checked.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("S3 bucket name is empty".to_owned());
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(format!(
                "S3 part size {} bytes is outside {MIN_PART_SIZE}..={MAX_PART_SIZE} bytes (5 MiB to 5 GiB)",
                self.part_size
            ));
        }
        if self.concurrency == 0 || self.max_connections == 0 || self.retry.max_attempts == 0 {
            return Err(
                "S3 concurrency, connection limit and attempts must be at least 1".to_owned(),
            );
        }
        Ok(())
    }
}

/// Where requests go: scheme, host and port, a base path, and how the bucket
/// is addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Addressing {
    scheme: &'static str,
    /// `host[:port]`, the bucket prepended for virtual-hosted requests.
    authority: String,
    /// Path prefix of the endpoint without trailing slash (`""` usually).
    base_path: String,
    /// The bucket is the first path segment.
    path_style: bool,
    bucket: String,
}

impl Addressing {
    /// Addressing for `settings` once the region is known.
    pub(crate) fn new(settings: &S3Settings, region: &str) -> Result<Addressing, String> {
        if let Some(ap) = access_point(&settings.bucket) {
            // An access point has its own host; keys follow directly.
            return Ok(Addressing {
                scheme: "https",
                authority: format!(
                    "{}-{}.s3-accesspoint.{}.amazonaws.com",
                    ap.name,
                    ap.account,
                    ap.region.unwrap_or(region)
                ),
                base_path: String::new(),
                path_style: false,
                bucket: String::new(),
            });
        }
        let (scheme, authority, base_path) = match &settings.endpoint {
            Some(e) => parse_endpoint(e)?,
            None => ("https", format!("s3.{region}.amazonaws.com"), String::new()),
        };
        // Virtual hosting needs the bucket to be one DNS label.
        let dns_safe = settings
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        Ok(Addressing {
            scheme,
            authority,
            base_path,
            path_style: settings.force_path_style || !dns_safe,
            bucket: settings.bucket.clone(),
        })
    }

    /// The base URL, for messages: `http://127.0.0.1:9000`.
    pub(crate) fn display(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }

    /// The value of the `Host` header.
    pub(crate) fn host(&self) -> String {
        if self.path_style || self.bucket.is_empty() {
            self.authority.clone()
        } else {
            format!("{}.{}", self.bucket, self.authority)
        }
    }

    /// URL of an object; `query` is already encoded (see [`query`]).
    pub(crate) fn object_url(&self, key: &ObjectKey, query: &str) -> String {
        let mut url = self.bucket_root();
        url.push('/');
        url.push_str(&key.encoded);
        push_query(&mut url, query);
        url
    }

    /// URL of a bucket-level request (listing, bulk delete).
    pub(crate) fn bucket_url(&self, query: &str) -> String {
        let mut url = self.bucket_root();
        if url.ends_with(&self.authority) {
            url.push('/');
        }
        push_query(&mut url, query);
        url
    }

    fn bucket_root(&self) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.host(), self.base_path);
        if self.path_style && !self.bucket.is_empty() {
            url.push('/');
            url.push_str(&encode(&self.bucket, false));
        }
        url
    }
}

fn push_query(url: &mut String, query: &str) {
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
}

/// `scheme://host[:port][/base]` → its parts. An endpoint without scheme
/// gets `https://`.
fn parse_endpoint(endpoint: &str) -> Result<(&'static str, String, String), String> {
    let e = endpoint.trim();
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = e.strip_prefix("https://") {
        ("https", r)
    } else {
        ("https", e)
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(format!(
            "S3 endpoint {endpoint:?} is not a valid http(s) URL"
        ));
    }
    Ok((scheme, authority.to_owned(), path.to_owned()))
}

struct AccessPoint<'a> {
    region: Option<&'a str>,
    account: &'a str,
    name: &'a str,
}

/// `arn:aws:s3:<region>:<account>:accesspoint/<name>`.
fn access_point(bucket: &str) -> Option<AccessPoint<'_>> {
    let rest = bucket.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "s3" {
        return None;
    }
    let name = resource
        .strip_prefix("accesspoint/")
        .or_else(|| resource.strip_prefix("accesspoint:"))?;
    Some(AccessPoint {
        region: Some(region).filter(|r| !r.is_empty()),
        account,
        name,
    })
}

/// An object key, kept with its URL form: every byte but the unreserved
/// ones (`A-Z a-z 0-9 - _ . ~`) and `/` percent-encoded, once. Signing uses
/// the URL form as is (no second encoding, no path normalisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjectKey {
    key: String,
    encoded: String,
}

impl ObjectKey {
    pub(crate) fn new(key: impl Into<String>) -> ObjectKey {
        let key = key.into();
        let encoded = encode(&key, true);
        ObjectKey { key, encoded }
    }

    /// The key as stored.
    pub(crate) fn as_str(&self) -> &str {
        &self.key
    }
}

/// Percent-encodes `s` the SigV4 way; `/` stays when `keep_slash`.
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An encoded query string from `(name, value)` pairs; a `None` value gives
/// a bare name (`?uploads`).
pub(crate) fn query(params: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    for (name, value) in params {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode(name, false));
        if let Some(v) = value {
            out.push('=');
            out.push_str(&encode(v, false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>, path_style: bool, bucket: &str) -> S3Settings {
        let mut s = S3Settings::new(bucket, "db");
        s.endpoint = endpoint.map(str::to_owned);
        s.force_path_style = path_style;
        s
    }

    #[test]
    fn path_style_and_virtual_hosted_urls() {
        let key = ObjectKey::new("db/0000/0000000000000001-0000000000000001.ltx");
        let a = Addressing::new(
            &settings(Some("http://127.0.0.1:9000"), true, "bkt"),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            a.object_url(&key, ""),
            "http://127.0.0.1:9000/bkt/db/0000/0000000000000001-0000000000000001.ltx"
        );
        assert_eq!(a.host(), "127.0.0.1:9000");
        assert_eq!(
            a.bucket_url(&query(&[
                ("list-type", Some("2")),
                ("prefix", Some("db/0000/"))
            ])),
            "http://127.0.0.1:9000/bkt?list-type=2&prefix=db%2F0000%2F"
        );
        let a = Addressing::new(&settings(None, false, "bkt"), "eu-west-1").unwrap();
        assert_eq!(
            a.object_url(&key, "uploads"),
            "https://bkt.s3.eu-west-1.amazonaws.com/db/0000/0000000000000001-0000000000000001.ltx?uploads"
        );
        assert_eq!(
            a.bucket_url("delete"),
            "https://bkt.s3.eu-west-1.amazonaws.com/?delete"
        );
        assert_eq!(a.host(), "bkt.s3.eu-west-1.amazonaws.com");
        // Dotted bucket names cannot be a TLS host label: path style.
        let a = Addressing::new(&settings(None, false, "my.bucket"), "us-east-1").unwrap();
        assert_eq!(
            a.bucket_url(""),
            "https://s3.us-east-1.amazonaws.com/my.bucket"
        );
        // Endpoint with a base path (Supabase) and without scheme.
        let a = Addressing::new(
            &settings(Some("proj.supabase.co/storage/v1/s3/"), true, "bkt"),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            a.object_url(&key, "").split("/db/").next(),
            Some("https://proj.supabase.co/storage/v1/s3/bkt")
        );
        let ap = Addressing::new(
            &settings(
                None,
                false,
                "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap",
            ),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            ap.host(),
            "my-ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com"
        );
        assert!(Addressing::new(&settings(Some("http://"), true, "b"), "r").is_err());
    }

    #[test]
    fn keys_are_encoded_once_and_keep_slashes() {
        assert_eq!(ObjectKey::new("a b/c+d$e~f").encoded, "a%20b/c%2Bd%24e~f");
        assert_eq!(ObjectKey::new("/0000/x.ltx").encoded, "/0000/x.ltx");
        assert_eq!(ObjectKey::new("ü").encoded, "%C3%BC");
        assert_eq!(query(&[("uploads", None)]), "uploads");
        assert_eq!(query(&[("prefix", Some("a b/+"))]), "prefix=a%20b%2F%2B");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = S3Settings::new("b", "p");
        s.secret_access_key = Some(SecretString::new("hunter2"));
        s.encryption = Encryption::CustomerKey {
            key: SecretString::new("c2VjcmV0LWtleQ=="),
        };
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("c2VjcmV0"),
            "{debug}"
        );
    }

    #[test]
    fn validation() {
        let mut s = S3Settings::new("b", "p");
        assert!(s.validate().is_ok());
        s.part_size = MIN_PART_SIZE - 1;
        assert!(s.validate().unwrap_err().contains("5 MiB"));
        s.part_size = MIN_PART_SIZE;
        s.concurrency = 0;
        assert!(s.validate().is_err());
    }
}
