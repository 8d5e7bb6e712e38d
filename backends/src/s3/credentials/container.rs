//! Container credentials (ECS, Fargate, EKS Pod Identity): a GET to
//! `http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or to
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the `Authorization` header
//! from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read on every call: it is
//! rotated) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`; a JSON answer.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use super::net::{Http, json_text, parse_json_keys};
use super::provider::FetchError;
use super::{CredentialSource, Credentials, SecretString};

/// The ECS agent's address for relative URIs.
const ECS_HOST: &str = "http://169.254.170.2";
/// Connect timeout: the endpoint is local or link-local.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one exchange.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per fetch.
const ATTEMPTS: u32 = 3;

/// Where the authorization token comes from.
#[derive(Debug)]
pub(crate) enum Token {
    None,
    Value(SecretString),
    File(PathBuf),
}

/// The configured endpoint.
#[derive(Debug)]
pub(crate) struct Container {
    pub(crate) url: String,
    pub(crate) token: Token,
    pub(crate) http: Http,
}

/// The endpoint URL from the two variables, checked: a full URI must be
/// HTTPS, or HTTP to a loopback address or to the ECS / EKS agent
/// addresses, so keys are never fetched in the clear across a network.
pub(crate) fn endpoint(
    relative: Option<&str>,
    full: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(rel) = relative {
        let sep = if rel.starts_with('/') { "" } else { "/" };
        return Ok(Some(format!("{ECS_HOST}{sep}{rel}")));
    }
    let Some(full) = full else {
        return Ok(None);
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} is not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let allowed = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || bare.parse::<IpAddr>().is_ok_and(|ip| {
                    ip.is_loopback()
                        || ip == IpAddr::from([169, 254, 170, 2])
                        || ip == IpAddr::from([169, 254, 170, 23])
                        || ip == IpAddr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23])
                })
        }
        _ => false,
    };
    if !allowed {
        return Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} must be https://, or http:// to a \
             loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]"
        ));
    }
    Ok(Some(full.to_owned()))
}

impl Container {
    pub(crate) async fn fetch(&self, source: &CredentialSource) -> Result<Credentials, FetchError> {
        let token = match &self.token {
            Token::None => None,
            Token::Value(v) => Some(v.clone()),
            Token::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    FetchError::permanent(format!(
                        "{source}: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                        path.display()
                    ))
                })?;
                Some(SecretString::new(text.trim()))
            }
        };
        let mut last = FetchError::permanent(String::new());
        for attempt in 1..=ATTEMPTS {
            let mut request = Request::builder().method(Method::GET).uri(&self.url);
            if let Some(t) = &token {
                let mut value = http::HeaderValue::from_str(t.expose()).map_err(|_| {
                    FetchError::permanent(format!(
                        "{source}: the authorization token is not a valid header value"
                    ))
                })?;
                value.set_sensitive(true);
                request = request.header(http::header::AUTHORIZATION, value);
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| FetchError::permanent(format!("{source}: {e}")))?;
            last = match self.http.send(request).await {
                Ok(a) if a.status.is_success() => {
                    return parse(&a.body, source)
                        .map_err(|e| FetchError::permanent(format!("{source}: {e}")));
                }
                Ok(a) => {
                    let status = a.status.as_u16();
                    let code = json_text(&a.body, "code").or_else(|| json_text(&a.body, "Code"));
                    let message =
                        json_text(&a.body, "message").or_else(|| json_text(&a.body, "Message"));
                    let said = match (code, message) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        (Some(c), None) => c,
                        (None, Some(m)) => m,
                        (None, None) => a.error_preview(),
                    };
                    let fix = if matches!(status, 401 | 403) {
                        "; check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)"
                    } else {
                        ""
                    };
                    FetchError {
                        message: format!("{source}: HTTP {status} {said}{fix}"),
                        transient: status == 429 || status >= 500,
                    }
                }
                Err(e) => FetchError::transient(format!(
                    "{source}: {}; is this running in a container with a task or pod role?",
                    e.0
                )),
            };
            if !last.transient || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Err(last)
    }
}

/// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration", …}`.
pub(crate) fn parse(body: &[u8], source: &CredentialSource) -> Result<Credentials, String> {
    let k = parse_json_keys(body, "Token")?;
    Ok(k.into_credentials(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_relative_and_full() {
        assert_eq!(
            endpoint(Some("/v2/credentials/abc"), Some("https://x")).unwrap(),
            Some("http://169.254.170.2/v2/credentials/abc".to_owned())
        );
        assert_eq!(endpoint(None, None).unwrap(), None);
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[::1]:9/x",
        ] {
            assert!(endpoint(None, Some(ok)).unwrap().is_some(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/creds",
            "http://example.com/",
            "ftp://127.0.0.1/",
        ] {
            let e = endpoint(None, Some(bad)).unwrap_err();
            assert!(e.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{e}");
        }
    }

    #[test]
    fn the_json_answer_parses() {
        let source = CredentialSource::Container {
            url: "http://169.254.170.2/v2/credentials/x".to_owned(),
        };
        let c = parse(
            br#"{"RoleArn":"arn:aws:iam::1:role/task","AccessKeyId":"ASIACONT","SecretAccessKey":"hunter2","Token":"tok3n","Expiration":"2026-11-22T13:00:00Z"}"#,
            &source,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIACONT");
        assert_eq!(c.secret_access_key.expose(), "hunter2");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("tok3n")
        );
        assert_eq!(c.expires, crate::s3::time::parse("2026-11-22T13:00:00Z"));
        assert_eq!(c.source, source);
        let e = parse(br#"{"code":"x","message":"hunter2"}"#, &source).unwrap_err();
        assert!(
            e.contains("AccessKeyId is missing") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
