//! AWS STS: `AssumeRoleWithWebIdentity` (EKS service accounts, or
//! `web_identity_token_file` in a profile; unsigned, the token is the proof)
//! and `AssumeRole` (`role_arn` with `source_profile`; signed with the
//! source's keys). Both are form POSTs answered with XML.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde::Deserialize;

use super::net::{Answer, Http, form};
use super::provider::{CredentialProvider, FetchError};
use super::{CredentialSource, Credentials, SecretString};
use crate::s3::sign::{Payload, Signer};

/// STS API version of both calls.
const VERSION: &str = "2011-06-15";
/// Connect timeout for STS.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one STS exchange.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per fetch when STS fails transiently.
const ATTEMPTS: u32 = 3;

/// Error codes after which asking again may succeed.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "IDPCommunicationError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Where STS is and which region signs for it.
#[derive(Debug)]
pub(crate) struct Sts {
    /// Base URL, e.g. `https://sts.eu-west-1.amazonaws.com`.
    pub(crate) url: String,
    pub(crate) region: String,
    pub(crate) http: Http,
}

impl Sts {
    /// `AWS_ENDPOINT_URL_STS` if set, else the regional endpoint (the global
    /// one without a region).
    pub(crate) fn new(endpoint: Option<String>, region: Option<&str>) -> Result<Sts, String> {
        let (url, region) = match (endpoint, region) {
            (Some(url), r) => (url, r.unwrap_or("us-east-1").to_owned()),
            (None, Some(r)) if r.starts_with("cn-") => {
                (format!("https://sts.{r}.amazonaws.com.cn"), r.to_owned())
            }
            (None, Some(r)) => (format!("https://sts.{r}.amazonaws.com"), r.to_owned()),
            (None, None) => (
                "https://sts.amazonaws.com".to_owned(),
                "us-east-1".to_owned(),
            ),
        };
        Ok(Sts {
            url: url.trim_end_matches('/').to_owned(),
            region,
            http: Http::new(CONNECT_TIMEOUT, TIMEOUT)?,
        })
    }

    /// POSTs `params`, signed with `signer` if given, retrying transient
    /// failures; `what` and `fix` shape the error message.
    async fn call(
        &self,
        action: &str,
        params: &[(&str, &str)],
        signer: Option<&Signer>,
        what: &str,
        fix: &str,
    ) -> Result<Keys, FetchError> {
        let mut pairs = vec![("Action", action), ("Version", VERSION)];
        pairs.extend_from_slice(params);
        let body = Bytes::from(form(&pairs));
        let mut last = FetchError::permanent(String::new());
        for attempt in 1..=ATTEMPTS {
            let request = self.request(&body, signer).map_err(|e| {
                FetchError::permanent(format!("{what}: building the STS {action} request: {e}"))
            })?;
            last = match self.http.send(request).await {
                Ok(answer) if answer.status.is_success() => {
                    return parse_keys(&answer.body).map_err(|e| {
                        FetchError::permanent(format!("{what}: STS {action} at {}: {e}", self.url))
                    });
                }
                Ok(answer) => status_error(&answer, action, what, fix, &self.url),
                Err(e) => FetchError::transient(format!(
                    "{what}: STS {action} at {} failed: {}; check the network path to STS \
                     (or AWS_ENDPOINT_URL_STS)",
                    self.url, e.0
                )),
            };
            if !last.transient || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        Err(last)
    }

    fn request(
        &self,
        body: &Bytes,
        signer: Option<&Signer>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let uri: http::Uri = format!("{}/", self.url)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(http::header::HOST, host.as_str())
            .header(http::header::CONTENT_TYPE, content_type);
        if let Some(signer) = signer {
            let headers = [("host", host.as_str()), ("content-type", content_type)];
            let signed = signer.sign(
                &self.region,
                SystemTime::now(),
                "POST",
                &uri.to_string(),
                &headers,
                &Payload::of(body, true),
            )?;
            for (name, value) in signed {
                let mut value = http::HeaderValue::from_str(&value)
                    .map_err(|e| format!("header {name}: {e}"))?;
                value.set_sensitive(name == "authorization" || name == "x-amz-security-token");
                builder = builder.header(name, value);
            }
        }
        builder
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())
    }
}

/// `AssumeRoleWithWebIdentity` with a token read from a file on every call
/// (Kubernetes rotates it).
#[derive(Debug)]
pub(crate) struct WebIdentity {
    pub(crate) role_arn: String,
    pub(crate) token_file: PathBuf,
    pub(crate) session_name: String,
    pub(crate) sts: Sts,
    pub(crate) source: CredentialSource,
    /// Where the settings came from, for the advice in errors.
    pub(crate) settings: String,
}

impl WebIdentity {
    pub(crate) async fn fetch(&self) -> Result<Credentials, FetchError> {
        let what = self.source.to_string();
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| {
                FetchError::permanent(format!(
                    "{what}: cannot read the token file {}: {e}; check {}",
                    self.token_file.display(),
                    self.settings
                ))
            })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(FetchError::transient(format!(
                "{what}: the token file {} is empty; check {}",
                self.token_file.display(),
                self.settings
            )));
        }
        let fix = format!(
            "check {} (the role's trust policy must accept this identity provider and \
             audience, and the token must be current)",
            self.settings
        );
        let keys = self
            .sts
            .call(
                "AssumeRoleWithWebIdentity",
                &[
                    ("RoleArn", &self.role_arn),
                    ("RoleSessionName", &self.session_name),
                    ("WebIdentityToken", token),
                ],
                None,
                &what,
                &fix,
            )
            .await?;
        Ok(keys.into_credentials(self.source.clone()))
    }
}

/// `AssumeRole` signed with another provider's keys.
#[derive(Debug)]
pub(crate) struct AssumeRole {
    pub(crate) role_arn: String,
    pub(crate) session_name: String,
    pub(crate) external_id: Option<String>,
    pub(crate) duration_seconds: Option<u32>,
    pub(crate) source_keys: Arc<CredentialProvider>,
    pub(crate) sts: Sts,
    pub(crate) source: CredentialSource,
    /// Where the settings came from, for the advice in errors.
    pub(crate) settings: String,
}

impl AssumeRole {
    pub(crate) async fn fetch(&self) -> Result<Credentials, FetchError> {
        let what = self.source.to_string();
        // Boxed: the source may itself be an assumed role.
        let keys = Box::pin(self.source_keys.get())
            .await
            .map_err(|e| FetchError {
                message: format!("{what}: getting the source credentials: {}", e.message),
                transient: e.transient,
            })?;
        let signer = Signer::for_service(&keys.credentials, "sts");
        let duration = self.duration_seconds.map(|d| d.to_string());
        let mut params = vec![
            ("RoleArn", self.role_arn.as_str()),
            ("RoleSessionName", self.session_name.as_str()),
        ];
        if let Some(id) = &self.external_id {
            params.push(("ExternalId", id));
        }
        if let Some(d) = &duration {
            params.push(("DurationSeconds", d));
        }
        let fix = format!(
            "check {} (the role's trust policy must allow {} to assume it)",
            self.settings,
            self.source_keys.source()
        );
        let keys = self
            .sts
            .call("AssumeRole", &params, Some(&signer), &what, &fix)
            .await?;
        Ok(keys.into_credentials(self.source.clone()))
    }
}

/// Keys from an STS answer.
pub(crate) struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: SystemTime,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl Keys {
    fn into_credentials(self, source: CredentialSource) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id,
            secret_access_key: SecretString::new(self.secret_access_key),
            session_token: Some(SecretString::new(self.session_token)),
            source,
            expires: Some(self.expiration),
        }
    }
}

/// The result element; its name depends on the action.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "AssumeRoleResult", alias = "AssumeRoleWithWebIdentityResult")]
    result: ResultElement,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultElement {
    credentials: XmlCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// `<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error>
/// <RequestId>…</RequestId></ErrorResponse>`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ErrorResponse {
    #[serde(default)]
    error: ErrorElement,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ErrorElement {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The keys of a successful answer. The body holds secrets: errors name
/// what is missing, never quote it.
pub(crate) fn parse_keys(body: &[u8]) -> Result<Keys, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let envelope: Envelope = quick_xml::de::from_str(text).map_err(|e| {
        let e = e.to_string();
        if e.starts_with("missing field") {
            format!("unexpected answer: {e}")
        } else {
            format!(
                "unexpected answer: not an STS credentials document ({} bytes)",
                body.len()
            )
        }
    })?;
    let c = envelope.result.credentials;
    let expiration = crate::s3::time::parse(c.expiration.trim()).ok_or_else(|| {
        format!(
            "unexpected answer: Expiration {:?} is not an ISO 8601 time",
            c.expiration
        )
    })?;
    if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
        return Err("unexpected answer: empty AccessKeyId or SecretAccessKey".to_owned());
    }
    Ok(Keys {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        expiration,
    })
}

/// An error answer as a message: code, STS's message, request id, advice.
fn status_error(answer: &Answer, action: &str, what: &str, fix: &str, url: &str) -> FetchError {
    let doc: ErrorResponse = std::str::from_utf8(&answer.body)
        .ok()
        .and_then(|t| quick_xml::de::from_str(t).ok())
        .unwrap_or_default();
    let status = answer.status.as_u16();
    let mut said = format!("HTTP {status}");
    if let Some(code) = &doc.error.code {
        said.push(' ');
        said.push_str(code);
    }
    match (&doc.error.message, &doc.error.code) {
        (Some(m), _) if !m.is_empty() => {
            said.push_str(": ");
            said.push_str(m);
        }
        (_, None) if !answer.body.is_empty() => {
            said.push_str(": ");
            said.push_str(&answer.error_preview());
        }
        _ => {}
    }
    if let Some(id) = doc.request_id.filter(|i| !i.is_empty()) {
        said.push_str(&format!(" (request id {id})"));
    }
    let transient = matches!(status, 429 | 500..=599)
        || doc
            .error
            .code
            .as_deref()
            .is_some_and(|c| TRANSIENT_CODES.contains(&c));
    FetchError {
        message: format!("{what}: STS {action} at {url} returned {said}; {fix}"),
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB_IDENTITY_ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>hunter2</SecretAccessKey><SessionToken>tok3n</SessionToken><Expiration>2026-11-22T08:18:17.899269Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>R1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn both_answers_parse() {
        let k = parse_keys(WEB_IDENTITY_ANSWER.as_bytes()).unwrap();
        assert_eq!(k.access_key_id, "ASIAWEB");
        assert_eq!(k.secret_access_key, "hunter2");
        assert_eq!(k.session_token, "tok3n");
        assert_eq!(
            Some(k.expiration),
            crate::s3::time::parse("2026-11-22T08:18:17.899269Z")
        );
        assert!(!format!("{k:?}").contains("hunter2"));
        let assume = WEB_IDENTITY_ANSWER.replace("AssumeRoleWithWebIdentity", "AssumeRole");
        let c = parse_keys(assume.as_bytes())
            .unwrap()
            .into_credentials(CredentialSource::AwsEnv);
        assert_eq!(c.access_key_id, "ASIAWEB");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("tok3n")
        );
    }

    #[test]
    fn malformed_answers_say_what_is_wrong_without_quoting_secrets() {
        for (body, want) in [
            (
                WEB_IDENTITY_ANSWER.replace("<SessionToken>tok3n</SessionToken>", ""),
                "SessionToken",
            ),
            (
                WEB_IDENTITY_ANSWER.replace("2026-11-22T08:18:17.899269Z", "tomorrow"),
                "tomorrow",
            ),
            (
                WEB_IDENTITY_ANSWER.replace("AssumeRoleWithWebIdentityResult>", "Other>"),
                "missing field `AssumeRoleResult`",
            ),
            ("<html>hunter2</html>".to_owned(), "unexpected answer"),
            ("<a><hunter2></a>".to_owned(), "unexpected answer"),
        ] {
            let err = parse_keys(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("tok3n"), "{err}");
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn error_answers_name_code_message_and_fix() {
        let e = status_error(
            &answer(
                403,
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>RID</RequestId></ErrorResponse>",
            ),
            "AssumeRoleWithWebIdentity",
            "web identity (role arn:x)",
            "check AWS_ROLE_ARN",
            "https://sts.eu-west-1.amazonaws.com",
        );
        assert!(!e.transient);
        assert_eq!(
            e.message,
            "web identity (role arn:x): STS AssumeRoleWithWebIdentity at \
             https://sts.eu-west-1.amazonaws.com returned HTTP 403 AccessDenied: Not authorized \
             to perform sts:AssumeRoleWithWebIdentity (request id RID); check AWS_ROLE_ARN"
        );
        let e = status_error(
            &answer(
                400,
                "<ErrorResponse><Error><Code>IDPCommunicationError</Code><Message>m</Message></Error></ErrorResponse>",
            ),
            "A",
            "w",
            "f",
            "u",
        );
        assert!(e.transient, "{e:?}");
        let e = status_error(&answer(503, "<html>busy</html>"), "A", "w", "f", "u");
        assert!(e.transient);
        assert!(
            e.message.contains("HTTP 503: <html>busy</html>"),
            "{}",
            e.message
        );
    }

    #[test]
    fn assume_role_is_signed_for_sts_and_web_identity_is_not() {
        let sts = Sts::new(Some("http://127.0.0.1:5000".to_owned()), Some("eu-west-1")).unwrap();
        let keys = Credentials {
            access_key_id: "AKIABASE".to_owned(),
            secret_access_key: SecretString::new("hunter2"),
            session_token: Some(SecretString::new("tok3n")),
            source: CredentialSource::AwsEnv,
            expires: None,
        };
        let body = Bytes::from(form(&[("Action", "AssumeRole")]));
        let signed = sts
            .request(&body, Some(&Signer::for_service(&keys, "sts")))
            .unwrap();
        let auth = signed.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("Credential=AKIABASE/"), "{auth}");
        assert!(auth.contains("/eu-west-1/sts/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=content-type;host;"), "{auth}");
        assert!(signed.headers()["authorization"].is_sensitive());
        assert_eq!(signed.headers()["x-amz-security-token"], "tok3n");
        assert_eq!(signed.uri(), "http://127.0.0.1:5000/");
        assert_eq!(signed.headers()["host"], "127.0.0.1:5000");
        let unsigned = sts.request(&body, None).unwrap();
        assert!(unsigned.headers().get("authorization").is_none());
        assert_eq!(
            unsigned.headers()["content-type"],
            "application/x-www-form-urlencoded; charset=utf-8"
        );
    }

    #[test]
    fn endpoints_are_regional() {
        let url = |e: Option<&str>, r: Option<&str>| {
            let s = Sts::new(e.map(str::to_owned), r).unwrap();
            (s.url, s.region)
        };
        assert_eq!(
            url(None, Some("eu-west-1")),
            (
                "https://sts.eu-west-1.amazonaws.com".to_owned(),
                "eu-west-1".to_owned()
            )
        );
        assert_eq!(
            url(None, Some("cn-north-1")).0,
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            url(None, None),
            (
                "https://sts.amazonaws.com".to_owned(),
                "us-east-1".to_owned()
            )
        );
        assert_eq!(
            url(Some("http://127.0.0.1:5000/"), None).0,
            "http://127.0.0.1:5000"
        );
    }
}
