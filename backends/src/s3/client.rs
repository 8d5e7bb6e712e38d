//! The HTTP side: a pooled hyper 1 client (HTTP/1.1 keep-alive) over rustls
//! with the ring provider, a cap on requests in flight, timeouts, SigV4 on
//! every attempt, and the retry loop (S3_PROTOCOL.md §1.4–1.5).
//!
//! A request is described once as a [`Call`] (its body is [`Bytes`], so a
//! retry resends it without copying) and run by [`Transport::execute`]
//! (whole response read, retried as a unit) or [`Transport::execute_streaming`]
//! (response headers only; the caller streams the body).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{MIN_UPLOAD_RATE, S3Settings};
use super::credentials::{CredentialProvider, Current};
use super::error::{ErrorKind, S3Error};
use super::retry::{self, Jitter, RetryPolicy};
use super::sign::Payload;
use super::xml;

/// Largest response body read into memory (listings are ~300 KB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest error body read.
const MAX_ERROR_BYTES: usize = 1024 * 1024;
/// How long an idle pooled connection is kept (S3_PROTOCOL.md §1.4).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probe interval.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// One S3 request, ready to be signed and sent any number of times.
#[derive(Debug)]
pub(crate) struct Call {
    /// Operation name for messages.
    pub(crate) op: &'static str,
    /// `s3://bucket/key` for messages.
    pub(crate) target: String,
    pub(crate) method: Method,
    /// Full URL, already percent-encoded.
    pub(crate) url: String,
    /// `Host` header value.
    pub(crate) host: String,
    /// Signing region.
    pub(crate) region: String,
    /// Other headers, lowercase names; all are signed.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
    pub(crate) payload: Payload,
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// Attempts it took.
    pub(crate) attempts: u32,
}

/// A response whose body is still to be read; the permit counts it against
/// the connection limit until dropped.
pub(crate) struct Streaming {
    pub(crate) response: Response<Incoming>,
    pub(crate) permit: OwnedSemaphorePermit,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Sends signed requests, with retries.
pub(crate) struct Transport {
    client: HttpClient,
    /// Requests in flight, streamed downloads included.
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    retry: RetryPolicy,
    jitter: Jitter,
    credentials: Arc<CredentialProvider>,
    user_agent: HeaderValue,
    extra_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(
        settings: &S3Settings,
        credentials: Arc<CredentialProvider>,
    ) -> Result<Transport, String> {
        let tls = tls_config(settings.skip_verify)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(settings.max_connections)
            .pool_timer(TokioTimer::new())
            .build(https);
        let user_agent = HeaderValue::from_str(&format!("freshet/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())?;
        Ok(Transport {
            client,
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            request_timeout: settings.request_timeout,
            retry: settings.retry,
            jitter: Jitter::from_clock(),
            credentials,
            user_agent,
            extra_headers: settings.extra_headers.clone(),
        })
    }

    /// The retry policy in force.
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The backoff before retry number `attempt`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.retry.delay(attempt, &self.jitter)
    }

    /// Sends `call` and reads the whole response, retrying the lot.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Reply, S3Error> {
        self.with_retries(call, |keys| async move {
            let Streaming { response, permit } = self.attempt(call, &keys).await?;
            let (parts, body) = response.into_parts();
            let body = read_body(body, self.request_timeout, MAX_RESPONSE_BYTES).await?;
            drop(permit);
            if call.method == Method::POST && xml::is_error_document(&body) {
                return Err(status_error(parts.status, &parts.headers, &body));
            }
            Ok(Reply {
                headers: parts.headers,
                body,
                attempts: 0,
            })
        })
        .await
        .map(|(reply, attempts)| Reply { attempts, ..reply })
    }

    /// Sends `call` until a successful response's headers arrive.
    pub(crate) async fn execute_streaming(&self, call: &Call) -> Result<Streaming, S3Error> {
        self.with_retries(call, |keys| async move { self.attempt(call, &keys).await })
            .await
            .map(|(s, _)| s)
    }

    /// Runs `f` with the current keys until it succeeds, fails for good, or
    /// the attempts run out; returns the value and the attempts it took.
    /// Temporary keys that S3 calls expired are replaced once, at once.
    async fn with_retries<T, F, Fut>(&self, call: &Call, mut f: F) -> Result<(T, u32), S3Error>
    where
        F: FnMut(Arc<Current>) -> Fut,
        Fut: Future<Output = Result<T, ErrorKind>>,
    {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            let outcome = match self.credentials.get().await {
                Ok(keys) => f(Arc::clone(&keys)).await.map_err(|e| (e, Some(keys))),
                Err(e) => Err((
                    ErrorKind::Credentials {
                        message: e.message,
                        transient: e.transient,
                    },
                    None,
                )),
            };
            let kind = match outcome {
                Ok(v) => return Ok((v, attempt)),
                Err((kind, Some(keys)))
                    if !renewed && rejects_keys(&kind) && self.credentials.is_dynamic() =>
                {
                    renewed = true;
                    tracing::info!(
                        op = call.op,
                        target = %call.target,
                        source = %self.credentials.source(),
                        error = %kind,
                        "S3 rejected the temporary credentials; fetching new ones"
                    );
                    self.credentials.reject(&keys);
                    attempt -= 1;
                    continue;
                }
                Err((kind, _)) => kind,
            };
            match kind {
                kind if attempt < self.retry.max_attempts && retry::is_retryable(&kind) => {
                    let delay = self.backoff(attempt);
                    // One failure is routine for S3; two in a row is worth
                    // telling (an outage would otherwise be silent until the
                    // attempts run out).
                    if attempt >= 2 {
                        tracing::warn!(
                            op = call.op,
                            target = %call.target,
                            attempt,
                            ?delay,
                            error = %kind,
                            "S3 request failed again; retrying"
                        );
                    } else {
                        tracing::debug!(
                            op = call.op,
                            target = %call.target,
                            attempt,
                            ?delay,
                            error = %kind,
                            "S3 request failed; retrying"
                        );
                    }
                    tokio::time::sleep(delay).await;
                }
                kind => {
                    return Err(S3Error {
                        op: call.op,
                        target: call.target.clone().into_boxed_str(),
                        kind,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// The time limit of one attempt: the base plus what sending the body
    /// takes at [`MIN_UPLOAD_RATE`].
    fn timeout_for(&self, call: &Call) -> Duration {
        self.request_timeout + Duration::from_secs(call.body.len() as u64 / MIN_UPLOAD_RATE)
    }

    /// One attempt: sign, send, and turn an error status into an error.
    async fn attempt(&self, call: &Call, keys: &Current) -> Result<Streaming, ErrorKind> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ErrorKind::Invalid("the S3 client was shut down".to_owned()))?;
        let request = self.build(call, keys)?;
        let response = match tokio::time::timeout(
            self.timeout_for(call),
            self.client.request(request),
        )
        .await
        {
            Err(_) => return Err(ErrorKind::Timeout("waiting for the response")),
            Ok(Err(e)) => return Err(transport_error(&e, &call.host)),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok(Streaming { response, permit });
        }
        let (parts, body) = response.into_parts();
        let body = read_body(body, self.request_timeout, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        Err(status_error(parts.status, &parts.headers, &body))
    }

    fn build(&self, call: &Call, keys: &Current) -> Result<Request<Full<Bytes>>, ErrorKind> {
        let length = call.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = vec![("host", call.host.as_str())];
        if call.method == Method::PUT || call.method == Method::POST {
            headers.push(("content-length", length.as_str()));
        }
        headers.extend(call.headers.iter().map(|(n, v)| (*n, v.as_str())));
        headers.extend(
            self.extra_headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let signed = keys
            .signer
            .sign(
                &call.region,
                SystemTime::now(),
                call.method.as_str(),
                &call.url,
                &headers,
                &call.payload,
            )
            .map_err(ErrorKind::Signing)?;
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(call.url.as_str());
        for (name, value) in headers.iter().copied() {
            builder = if name == "host" {
                builder.header(HOST, value)
            } else {
                builder.header(name, value)
            };
        }
        for (name, value) in &signed {
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| ErrorKind::Signing(format!("header {name}: {e}")))?;
            value.set_sensitive(*name == "authorization" || *name == "x-amz-security-token");
            builder = builder.header(*name, value);
        }
        builder
            .header(USER_AGENT, self.user_agent.clone())
            .body(Full::new(call.body.clone()))
            .map_err(|e| ErrorKind::Signing(format!("building the request: {e}")))
    }
}

/// Whether S3 refused the keys themselves as expired or invalid, which new
/// temporary keys may fix.
fn rejects_keys(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Status { status: 400 | 403, code: Some(code), .. }
            if matches!(code.as_str(), "ExpiredToken" | "InvalidToken" | "RequestExpired" | "TokenRefreshRequired")
    )
}

/// Reads a body whole, within `timeout`, refusing more than `limit` bytes.
pub(crate) async fn read_body(
    body: Incoming,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, ErrorKind> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ErrorKind::Timeout("reading the response")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ErrorKind::Invalid(
            format!("response body larger than {limit} bytes"),
        )),
        Ok(Err(e)) => Err(ErrorKind::Transport {
            message: error_chain(e.as_ref()),
            tls: false,
        }),
    }
}

/// An error status with S3's code and message from the body (or, for a
/// body-less HEAD, from the status alone).
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ErrorKind {
    let doc: xml::ErrorDocument = if body.is_empty() {
        xml::ErrorDocument::default()
    } else {
        xml::parse(body).unwrap_or_default()
    };
    let request_id = doc.request_id.or_else(|| {
        headers
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let message = doc.message.or_else(|| {
        // A non-XML body (a proxy's error page): a short preview helps.
        (!body.is_empty() && doc.code.is_none()).then(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned()
        })
    });
    ErrorKind::Status {
        status: status.as_u16(),
        code: doc.code,
        message,
        request_id,
    }
}

/// A failure below HTTP, naming the endpoint (`host[:port]`) it was for.
fn transport_error(e: &hyper_util::client::legacy::Error, host: &str) -> ErrorKind {
    ErrorKind::Transport {
        message: format!("{host}: {}", error_chain(e)),
        tls: is_certificate_error(e),
    }
}

/// `a: b: c` from an error and its sources.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether a TLS certificate or protocol mismatch is somewhere in the chain.
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::PeerIncompatible(_)
                    | rustls::Error::UnsupportedNameType
            );
        }
        current = err.source();
    }
    false
}

/// rustls with the ring provider, installed explicitly (never the
/// process-wide default, which panics if another provider is also linked),
/// and the webpki root certificates plus the system's trust store (so a CA
/// an administrator installed, or `SSL_CERT_FILE`, is honoured).
pub(crate) fn tls_config(skip_verify: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "reading the system's trust store");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system root certificates");
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// `skip-verify`: accepts any certificate chain, but still checks the
/// handshake signatures, so the connection is encrypted to whoever holds
/// the presented certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_carry_s3_code_message_and_request_id() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-request-id", HeaderValue::from_static("HDR-ID"));
        let kind = status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        );
        assert_eq!(
            kind.to_string(),
            "HTTP 503 SlowDown: Please reduce your request rate. (request id HDR-ID)"
        );
        let kind = status_error(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert_eq!(kind.to_string(), "HTTP 404");
        let kind = status_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(kind.to_string(), "HTTP 502: <html>bad gateway</html>");
    }

    #[test]
    fn tls_configs_build_with_the_ring_provider() {
        assert!(tls_config(false).is_ok());
        assert!(tls_config(true).is_ok());
    }
}
