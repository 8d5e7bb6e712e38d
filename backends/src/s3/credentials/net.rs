//! The small HTTP client of the credential sources (STS, the container
//! endpoint, instance metadata): the same hyper and rustls stack as the S3
//! transport, with a pool of its own so its short timeouts touch nothing
//! else.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::s3::client::{error_chain, tls_config};

/// Largest response read: credential documents are a few kilobytes.
const MAX_BODY: usize = 256 * 1024;

/// An HTTP client with fixed connect and response timeouts.
pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Answer {
    /// A short, printable preview of an error body (never used on a
    /// successful one, which carries the keys).
    pub(crate) fn error_preview(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// No answer: the connection failed or took too long.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl Http {
    /// `connect`: TCP connect timeout; `timeout`: the whole exchange.
    pub(crate) fn new(connect: Duration, timeout: Duration) -> Result<Http, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(false)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Http {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// Sends `request` and reads the whole answer.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, Unreachable> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Unreachable(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    Unreachable(format!("reading the response: {}", error_chain(e.as_ref())))
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Unreachable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// `%XX`-encodes a form value (`application/x-www-form-urlencoded`).
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::s3::config::encode(k, false),
                crate::s3::config::encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The fields of a JSON credentials document (container endpoint, instance
/// metadata, `credential_process`), read without ever quoting a value in
/// an error.
pub(crate) struct JsonKeys {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
    pub(crate) expiration: Option<std::time::SystemTime>,
    /// `Version` (`credential_process`: must be 1).
    pub(crate) version: Option<u64>,
}

impl std::fmt::Debug for JsonKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonKeys")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl JsonKeys {
    /// The keys as credentials from `source`.
    pub(crate) fn into_credentials(self, source: &super::CredentialSource) -> super::Credentials {
        super::Credentials {
            access_key_id: self.access_key_id,
            secret_access_key: super::SecretString::new(self.secret_access_key),
            session_token: self.session_token.map(super::SecretString::new),
            source: source.clone(),
            expires: self.expiration,
        }
    }
}

/// A top-level string field of a JSON document, if it is one (for error
/// documents: `code`, `message`).
pub(crate) fn json_text(body: &[u8], name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

/// Parses a JSON credentials document; `token_field` is where the session
/// token is (`Token` or `SessionToken`).
pub(crate) fn parse_json_keys(body: &[u8], token_field: &str) -> Result<JsonKeys, String> {
    // serde_json's messages for syntax errors carry positions only.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let serde_json::Value::Object(object) = value else {
        return Err("the answer is not a JSON object".to_owned());
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("field {name} is not a string")),
        }
    };
    let access_key_id = text("AccessKeyId")?.ok_or("field AccessKeyId is missing")?;
    let secret_access_key = text("SecretAccessKey")?.ok_or("field SecretAccessKey is missing")?;
    let session_token = text(token_field)?;
    let expiration = match text("Expiration")? {
        None => None,
        Some(t) => Some(
            crate::s3::time::parse(&t)
                .ok_or_else(|| format!("field Expiration {t:?} is not an RFC 3339 time"))?,
        ),
    };
    Ok(JsonKeys {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        version: object.get("Version").and_then(serde_json::Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_read_and_errors_quote_no_value() {
        let k = parse_json_keys(
            br#"{"AccessKeyId":"AK","SecretAccessKey":"SK","Token":"TK","Expiration":"2026-01-02T03:04:05Z","RoleArn":"arn"}"#,
            "Token",
        )
        .unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert_eq!(k.session_token.as_deref(), Some("TK"));
        assert_eq!(k.expiration, crate::s3::time::parse("2026-01-02T03:04:05Z"));
        let k =
            parse_json_keys(br#"{"AccessKeyId":"AK","SecretAccessKey":"SK"}"#, "Token").unwrap();
        assert!(k.session_token.is_none() && k.expiration.is_none());

        for (body, want) in [
            (
                &br#"{"SecretAccessKey":"hunter2"}"#[..],
                "AccessKeyId is missing",
            ),
            (br#"{"AccessKeyId":"AK"}"#, "SecretAccessKey is missing"),
            (
                br#"{"AccessKeyId":"AK","SecretAccessKey":7}"#,
                "not a string",
            ),
            (br#"["hunter2"]"#, "not a JSON object"),
            (
                br#"{"AccessKeyId":"AK","SecretAccessKey":"hunter2""#,
                "not JSON",
            ),
            (b"hunter2", "not JSON"),
        ] {
            let err = parse_json_keys(body, "Token").unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse_json_keys(
            br#"{"AccessKeyId":"AK","SecretAccessKey":"hunter2","Expiration":"soon"}"#,
            "Token",
        )
        .unwrap_err();
        assert!(err.contains("soon") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(
            form(&[("RoleArn", "arn:aws:iam::1:role/a b"), ("X", "=&")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b&X=%3D%26"
        );
    }
}
