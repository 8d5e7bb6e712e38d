//! EC2 instance metadata (IMDSv2): a session token from
//! `PUT /latest/api/token`, then the role name from
//! `GET /latest/meta-data/iam/security-credentials/` and its keys from
//! `GET …/<role>`, every GET carrying the token. Short timeouts: this is
//! the last link of the chain, so on a machine that is not an EC2 instance
//! it must fail quickly and say that nothing else was found.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use super::net::{Answer, Http, parse_json_keys};
use super::provider::FetchError;
use super::{CredentialSource, Credentials, SecretString};

/// The instance metadata service.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Its IPv6 address (`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`).
pub(crate) const DEFAULT_ENDPOINT_V6: &str = "http://[fd00:ec2::254]";
/// Connect timeout: the service answers in microseconds when present.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for one exchange.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per fetch.
const ATTEMPTS: u32 = 2;
/// Lifetime asked for the session token, in seconds (the maximum, 6 h).
const TOKEN_TTL: &str = "21600";
const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// The configured service.
#[derive(Debug)]
pub(crate) struct Imds {
    /// Base URL without trailing slash.
    pub(crate) endpoint: String,
    pub(crate) http: Http,
    pub(crate) role: Role,
}

/// Why instance metadata is asked, which decides what a failure says.
#[derive(Debug)]
pub(crate) enum Role {
    /// The last link of the chain; the places looked at before it.
    LastLink { looked: String },
    /// Named by a profile's `credential_source` (described here).
    NamedBy(String),
}

/// One failed step.
struct Failure {
    message: String,
    transient: bool,
}

impl Imds {
    pub(crate) async fn fetch(&self, source: &CredentialSource) -> Result<Credentials, FetchError> {
        let mut last = Failure {
            message: String::new(),
            transient: false,
        };
        for attempt in 1..=ATTEMPTS {
            match self.try_fetch(source).await {
                Ok(c) => return Ok(c),
                Err(f) => last = f,
            }
            if !last.transient || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(FetchError::permanent(match &self.role {
            // Unreachable means "not on EC2": say what else was tried.
            Role::LastLink { looked } => format!(
                "no S3 credentials found: {source}: {}. Also looked at {looked}. Set \
                 access-key-id and secret-access-key on the replica, or \
                 LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY in the environment \
                 (AWS_EC2_METADATA_DISABLED=true skips instance metadata)",
                last.message
            ),
            Role::NamedBy(by) => format!("{source}: {}; check {by}", last.message),
        }))
    }

    async fn try_fetch(&self, source: &CredentialSource) -> Result<Credentials, Failure> {
        let token = self.token().await?;
        let roles = self
            .get(ROLE_PATH, &token, "listing the instance's role")
            .await?;
        let text = String::from_utf8_lossy(&roles.body);
        let role = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or(Failure {
                message: "no IAM role is attached to this instance (attach an instance profile)"
                    .to_owned(),
                transient: false,
            })?;
        let path = format!("{ROLE_PATH}{role}");
        let answer = self
            .get(&path, &token, "reading the role's credentials")
            .await?;
        parse(&answer.body, source).map_err(|message| Failure {
            message: format!("role {role}: {message}"),
            transient: false,
        })
    }

    async fn token(&self) -> Result<SecretString, Failure> {
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!("{}{TOKEN_PATH}", self.endpoint))
            .header("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL)
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure {
                message: e.to_string(),
                transient: false,
            })?;
        let answer = self.send(request, "getting a session token").await?;
        Ok(SecretString::new(
            String::from_utf8_lossy(&answer.body).trim(),
        ))
    }

    async fn get(&self, path: &str, token: &SecretString, what: &str) -> Result<Answer, Failure> {
        let mut value = http::HeaderValue::from_str(token.expose()).map_err(|_| Failure {
            message: "the session token is not a valid header value".to_owned(),
            transient: true,
        })?;
        value.set_sensitive(true);
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.endpoint))
            .header("x-aws-ec2-metadata-token", value)
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure {
                message: e.to_string(),
                transient: false,
            })?;
        self.send(request, what).await
    }

    async fn send(&self, request: Request<Full<Bytes>>, what: &str) -> Result<Answer, Failure> {
        match self.http.send(request).await {
            Ok(a) if a.status.is_success() => Ok(a),
            Ok(a) => {
                let status = a.status.as_u16();
                let hint = match status {
                    403 => " (instance metadata is disabled for this instance)",
                    404 => " (no IAM role is attached to this instance)",
                    _ => "",
                };
                Err(Failure {
                    message: format!("{what}: HTTP {status}{hint}"),
                    transient: status == 429 || status >= 500,
                })
            }
            // Not an EC2 instance, or a container whose hop limit is 1.
            Err(e) => Err(Failure {
                message: format!("{what}: {} (not an EC2 instance?)", e.0),
                transient: true,
            }),
        }
    }
}

/// `{"Code": "Success", "AccessKeyId", "SecretAccessKey", "Token",
/// "Expiration", …}`.
pub(crate) fn parse(body: &[u8], source: &CredentialSource) -> Result<Credentials, String> {
    if let Some(code) = super::net::json_text(body, "Code").filter(|c| c != "Success") {
        let message = super::net::json_text(body, "Message").unwrap_or_default();
        return Err(format!("the service answered {code} {message}")
            .trim()
            .to_owned());
    }
    let k = parse_json_keys(body, "Token")?;
    Ok(k.into_credentials(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_answer_parses_and_failures_say_why() {
        let source = CredentialSource::InstanceMetadata {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
        };
        let c = parse(
            br#"{"Code":"Success","LastUpdated":"2026-11-22T07:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEC2","SecretAccessKey":"hunter2","Token":"tok3n","Expiration":"2026-11-22T13:00:00Z"}"#,
            &source,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIAEC2");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("tok3n")
        );
        assert_eq!(c.expires, crate::s3::time::parse("2026-11-22T13:00:00Z"));
        let e = parse(
            br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role"}"#,
            &source,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "the service answered AssumeRoleUnauthorizedAccess EC2 cannot assume the role"
        );
        let e = parse(
            br#"{"Code":"Success","AccessKeyId":"A","SecretAccessKey":1}"#,
            &source,
        )
        .unwrap_err();
        assert!(e.contains("SecretAccessKey"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_service_fails_fast_and_says_what_else_was_tried() {
        // A port nothing listens on: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let imds = Imds {
            endpoint: format!("http://127.0.0.1:{port}"),
            http: Http::new(CONNECT_TIMEOUT, TIMEOUT).unwrap(),
            role: Role::LastLink {
                looked: "the replica configuration".to_owned(),
            },
        };
        let source = CredentialSource::InstanceMetadata {
            endpoint: imds.endpoint.clone(),
        };
        let started = std::time::Instant::now();
        let e = imds.fetch(&source).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(!e.transient);
        assert!(
            e.message
                .starts_with("no S3 credentials found: EC2 instance metadata"),
            "{}",
            e.message
        );
        assert!(e.message.contains("not an EC2 instance?"), "{}", e.message);
        assert!(
            e.message
                .contains("Also looked at the replica configuration"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("AWS_EC2_METADATA_DISABLED"),
            "{}",
            e.message
        );
    }
}
