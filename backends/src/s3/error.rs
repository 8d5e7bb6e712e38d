//! What can go wrong talking to S3, and how it becomes a [`crate::Error`]:
//! every message names the operation, the bucket and key (`s3://bucket/key`)
//! and S3's own error code and message; the usual configuration mistakes
//! (wrong secret, unknown key id, missing bucket, wrong region, denied
//! access, untrusted certificate) say what to change.

use std::fmt;
use std::path::PathBuf;

use super::credentials::CredentialSource;

/// One failed S3 request (after its retries).
#[derive(Debug)]
pub(crate) struct S3Error {
    /// The operation, e.g. `"put"`, `"list"`.
    pub(crate) op: &'static str,
    /// `s3://bucket/key` (or `s3://bucket/prefix`); boxed to keep
    /// `Result<_, S3Error>` small.
    pub(crate) target: Box<str>,
    pub(crate) kind: ErrorKind,
    /// How many attempts were made.
    pub(crate) attempts: u32,
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ErrorKind {
    /// S3 answered with an error status.
    Status {
        status: u16,
        /// S3's error code (`NoSuchKey`, `SlowDown`, …) from the XML body.
        code: Option<String>,
        /// S3's error message.
        message: Option<String>,
        /// `x-amz-request-id` or the body's `RequestId`, for support cases.
        request_id: Option<String>,
    },
    /// No response, or no progress reading it, in time.
    Timeout(&'static str),
    /// The connection failed (refused, reset, closed early, TLS).
    Transport {
        /// The error chain, flattened.
        message: String,
        /// A TLS handshake or certificate failure: retrying cannot help.
        tls: bool,
    },
    /// The response was not what S3 sends (bad XML, no ETag, …).
    Invalid(String),
    /// Reading the data to upload failed.
    Body(std::io::Error),
    /// The request could not be signed.
    Signing(String),
    /// The object changed while it was being read (`If-Match` failed).
    Precondition,
    /// No keys to sign with: the credential source failed.
    Credentials {
        /// What failed, naming the source and what to fix.
        message: String,
        /// Asking the source again later may help.
        transient: bool,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status {
                status,
                code,
                message,
                request_id,
            } => {
                // 200: an error inside a successful response (a failed
                // CompleteMultipartUpload, a per-key DeleteObjects error).
                if *status == 200 {
                    f.write_str("error")?;
                } else {
                    write!(f, "HTTP {status}")?;
                }
                if let Some(code) = code {
                    write!(f, " {code}")?;
                }
                if let Some(message) = message.as_deref().filter(|m| !m.is_empty()) {
                    write!(f, ": {message}")?;
                }
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            ErrorKind::Timeout(what) => write!(f, "timed out {what}"),
            ErrorKind::Transport { message, .. } => write!(f, "connection failed: {message}"),
            ErrorKind::Invalid(what) => write!(f, "unexpected response: {what}"),
            ErrorKind::Body(e) => write!(f, "reading the data to upload: {e}"),
            ErrorKind::Signing(e) => write!(f, "signing the request: {e}"),
            ErrorKind::Precondition => f.write_str("the object changed while it was read"),
            ErrorKind::Credentials { message, .. } => {
                write!(f, "getting S3 credentials: {message}")
            }
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}{}",
            self.op,
            self.target,
            self.kind,
            self.retried()
        )
    }
}

impl std::error::Error for S3Error {}

impl S3Error {
    pub(crate) fn new(op: &'static str, target: impl Into<String>, kind: ErrorKind) -> S3Error {
        S3Error {
            op,
            target: target.into().into_boxed_str(),
            kind,
            attempts: 1,
        }
    }

    /// S3's error code, if it sent one.
    pub(crate) fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, if S3 answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the object does not exist.
    pub(crate) fn is_missing_object(&self) -> bool {
        match self.code() {
            Some(code) => code == "NoSuchKey" || code == "NotFound",
            None => self.status() == Some(404),
        }
    }

    fn retried(&self) -> String {
        if self.attempts > 1 {
            format!(" (after {} attempts)", self.attempts)
        } else {
            String::new()
        }
    }

    /// The error as the engine sees it; `ctx` supplies what an actionable
    /// message needs.
    pub(crate) fn into_backend(self, ctx: &Context<'_>) -> crate::Error {
        if self.is_missing_object() && self.code() != Some("NoSuchBucket") {
            return crate::Error::NotFound {
                what: self.target.into(),
            };
        }
        let retried = self.retried();
        let S3Error {
            op, target, kind, ..
        } = self;
        let kind = match kind {
            ErrorKind::Body(source) => {
                return crate::Error::Body {
                    what: target.into(),
                    source,
                };
            }
            // The message names the source and the fix already.
            ErrorKind::Credentials {
                message,
                transient: false,
            } => return crate::Error::Config(format!("{op} {target}: {message}")),
            other => other,
        };
        let code = match &kind {
            ErrorKind::Status { code, .. } => code.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let head = format!("{op} {target}");
        let s3_said = format!("S3 said: {kind}{retried}");
        let config = |advice: String| crate::Error::Config(format!("{head}: {advice} ({s3_said})"));
        match (code.as_str(), &kind) {
            ("NoSuchBucket", _) => config(format!(
                "bucket {:?} does not exist at {}; create it first (freshet, like Litestream, \
                 never creates buckets)",
                ctx.bucket, ctx.endpoint
            )),
            ("SignatureDoesNotMatch", _) => config(format!(
                "authentication failed: the secret access key from {} does not match access key \
                 id {:?} (or a proxy altered the request); check the secret",
                ctx.source, ctx.access_key_id
            )),
            ("InvalidAccessKeyId", _) => config(format!(
                "authentication failed: access key id {:?} from {} is not known to {}",
                ctx.access_key_id, ctx.source, ctx.endpoint
            )),
            ("ExpiredToken" | "InvalidToken" | "TokenRefreshRequired", _) => config(format!(
                "authentication failed: the session token from {} is expired or invalid{}",
                ctx.source,
                if ctx.dynamic {
                    " even after fetching new credentials; check the clock of this machine"
                } else {
                    "; renew it"
                }
            )),
            (
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException",
                _,
            ) => config(format!(
                "bucket {:?} is not in region {:?}; set region: (or ?region=) to the bucket's region",
                ctx.bucket, ctx.region
            )),
            ("AccessDenied" | "AllAccessDisabled", _) => config(format!(
                "access denied: the credentials from {} (access key id {:?}) may not use this \
                 bucket or key; check the bucket policy and IAM permissions",
                ctx.source, ctx.access_key_id
            )),
            (_, ErrorKind::Transport { tls: true, message }) => crate::Error::Config(format!(
                "{head}: TLS connection to {} failed: {message}; for a test endpoint with a \
                 self-signed certificate set skip-verify: true (or ?skipVerify=true)",
                ctx.endpoint
            )),
            _ => {
                let io_kind = match &kind {
                    ErrorKind::Timeout(_) => std::io::ErrorKind::TimedOut,
                    ErrorKind::Transport { .. } => std::io::ErrorKind::ConnectionAborted,
                    ErrorKind::Status { status: 403, .. } => std::io::ErrorKind::PermissionDenied,
                    ErrorKind::Invalid(_) => std::io::ErrorKind::InvalidData,
                    _ => std::io::ErrorKind::Other,
                };
                crate::Error::Io {
                    op,
                    path: PathBuf::from(&*target),
                    source: std::io::Error::new(io_kind, format!("{kind}{retried}")),
                }
            }
        }
    }
}

/// Facts about the replica that turn an S3 error into advice.
pub(crate) struct Context<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) region: &'a str,
    pub(crate) access_key_id: &'a str,
    pub(crate) source: &'a CredentialSource,
    /// The keys are fetched, so one refused as expired was already
    /// replaced once before the error.
    pub(crate) dynamic: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str, status: u16) -> S3Error {
        S3Error::new(
            "get",
            "s3://bkt/db/0000/x.ltx",
            ErrorKind::Status {
                status,
                code: Some(code.to_owned()),
                message: Some("the message".to_owned()),
                request_id: Some("RID".to_owned()),
            },
        )
    }

    fn ctx() -> Context<'static> {
        Context {
            bucket: "bkt",
            endpoint: "http://127.0.0.1:9000",
            region: "us-east-1",
            access_key_id: "AKID",
            source: &CredentialSource::LitestreamEnv,
            dynamic: false,
        }
    }

    #[test]
    fn messages_name_key_code_and_advice() {
        let e = status("NoSuchKey", 404).into_backend(&ctx());
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.to_string(), "s3://bkt/db/0000/x.ltx not found");

        let e = status("NoSuchBucket", 404).into_backend(&ctx()).to_string();
        assert!(e.contains("bucket \"bkt\" does not exist"), "{e}");
        assert!(e.contains("NoSuchBucket: the message"), "{e}");
        assert!(e.contains("s3://bkt/db/0000/x.ltx"), "{e}");

        let e = status("SignatureDoesNotMatch", 403)
            .into_backend(&ctx())
            .to_string();
        assert!(e.contains("authentication failed"), "{e}");
        assert!(e.contains("LITESTREAM_SECRET_ACCESS_KEY"), "{e}");
        assert!(e.contains("SignatureDoesNotMatch"), "{e}");

        let mut slow = status("SlowDown", 503);
        slow.attempts = 10;
        let e = slow.into_backend(&ctx());
        assert!(!e.is_not_found());
        let text = e.to_string();
        assert!(
            text.starts_with("get s3://bkt/db/0000/x.ltx: HTTP 503 SlowDown: the message (request id RID) (after 10 attempts)"),
            "{text}"
        );
    }
}
