//! SigV4 signing (S3_PROTOCOL.md §1.6) through `aws-sigv4`: service `s3`,
//! `x-amz-content-sha256` always sent (the body's SHA-256, or
//! `UNSIGNED-PAYLOAD`), URLs taken as already encoded once and not
//! normalised, so keys such as `a//b` or `./x` are signed as sent.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

/// What `x-amz-content-sha256` says about the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Lowercase hex SHA-256 of the body.
    Sha256(String),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
}

impl Payload {
    /// The payload marker for `body`: its hash when `sign_payload`.
    pub(crate) fn of(body: &[u8], sign_payload: bool) -> Payload {
        if sign_payload {
            Payload::Sha256(sha256_hex(body))
        } else {
            Payload::Unsigned
        }
    }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Signs requests with one set of keys.
pub(crate) struct Signer {
    identity: Identity,
    /// The service signed for: `s3`, or `sts` for `AssumeRole`.
    service: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    /// A signer for S3.
    pub(crate) fn new(creds: &Credentials) -> Signer {
        Signer::for_service(creds, "s3")
    }

    /// A signer for another AWS service.
    pub(crate) fn for_service(creds: &Credentials, service: &'static str) -> Signer {
        let aws = AwsCredentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_owned(),
            creds.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "freshet",
        );
        Signer {
            identity: aws.into(),
            service,
        }
    }

    /// The headers to add to a request (`authorization`, `x-amz-date`,
    /// `x-amz-content-sha256`, `x-amz-security-token`). `url` is encoded
    /// already; `headers` are every other header sent, `host` included.
    pub(crate) fn sign(
        &self,
        region: &str,
        time: SystemTime,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.session_token_mode = SessionTokenMode::Include;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(region)
            .name(self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let body = match payload {
            Payload::Sha256(hash) => SignableBody::Precomputed(hash.clone()),
            Payload::Unsigned => SignableBody::UnsignedPayload,
        };
        let request = SignableRequest::new(method, url, headers.iter().copied(), body)
            .map_err(|e| e.to_string())?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let (new_headers, _params) = instructions.into_parts();
        Ok(new_headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::{CredentialSource, SecretString};

    // AWS's published example of the S3 SigV4 documentation
    // ("Signature Calculations for the Authorization Header: Transferring
    // Payload in a Single Chunk"): these keys, bucket `examplebucket` in
    // us-east-1, Fri, 24 May 2013 00:00:00 GMT.
    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn signer() -> Signer {
        Signer::new(&Credentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SecretString::new(SECRET_KEY),
            session_token: None,
            source: CredentialSource::Config,
            expires: None,
        })
    }

    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600)
    }

    fn authorization(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> (String, Vec<(&'static str, String)>) {
        let out = signer()
            .sign("us-east-1", example_time(), method, url, headers, &payload)
            .unwrap();
        let auth = out
            .iter()
            .find(|(n, _)| *n == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap();
        (auth, out)
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let (auth, headers) = authorization(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
            ],
            Payload::Sha256(EMPTY_SHA256.to_owned()),
        );
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        ));
        assert!(
            auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"),
            "{auth}"
        );
        assert!(
            auth.ends_with(
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ),
            "{auth}"
        );
        assert!(headers.contains(&("x-amz-date", "20130524T000000Z".to_owned())));
        assert!(headers.contains(&("x-amz-content-sha256", EMPTY_SHA256.to_owned())));
    }

    #[test]
    fn aws_example_put_object_with_an_encoded_key() {
        let body = b"Welcome to Amazon S3.";
        let payload = Payload::of(body, true);
        assert_eq!(
            payload,
            Payload::Sha256(
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072".into()
            )
        );
        // The key `test$file.text`, encoded by us exactly once.
        let key = crate::s3::config::encode("test$file.text", true);
        let (auth, _) = authorization(
            "PUT",
            &format!("https://examplebucket.s3.amazonaws.com/{key}"),
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            payload,
        );
        assert!(
            auth.contains(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"
            ),
            "{auth}"
        );
        assert!(
            auth.ends_with(
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn aws_example_bucket_requests_with_queries() {
        let (auth, _) = authorization(
            "GET",
            "https://examplebucket.s3.amazonaws.com/?lifecycle",
            &[("host", "examplebucket.s3.amazonaws.com")],
            Payload::of(b"", true),
        );
        assert!(
            auth.ends_with(
                "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            ),
            "{auth}"
        );
        let (auth, _) = authorization(
            "GET",
            "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
            &[("host", "examplebucket.s3.amazonaws.com")],
            Payload::of(b"", true),
        );
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn unsigned_payload_and_session_token() {
        let mut creds = Credentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SecretString::new(SECRET_KEY),
            session_token: Some(SecretString::new("TOKEN")),
            source: CredentialSource::AwsEnv,
            expires: None,
        };
        let out = Signer::new(&creds)
            .sign(
                "us-east-1",
                example_time(),
                "PUT",
                "http://127.0.0.1:9000/b/k",
                &[("host", "127.0.0.1:9000")],
                &Payload::Unsigned,
            )
            .unwrap();
        assert!(out.contains(&("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned())));
        assert!(out.contains(&("x-amz-security-token", "TOKEN".to_owned())));
        let auth = &out.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        creds.session_token = None;
        assert!(format!("{:?}", Signer::new(&creds)).contains(".."));
    }

    #[test]
    fn other_services_get_their_own_scope() {
        let creds = Credentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SecretString::new(SECRET_KEY),
            session_token: None,
            source: CredentialSource::Config,
            expires: None,
        };
        let out = Signer::for_service(&creds, "sts")
            .sign(
                "eu-west-1",
                example_time(),
                "POST",
                "https://sts.eu-west-1.amazonaws.com/",
                &[("host", "sts.eu-west-1.amazonaws.com")],
                &Payload::of(b"Action=AssumeRole", true),
            )
            .unwrap();
        let auth = &out.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert!(
            auth.contains("Credential=AKIAIOSFODNN7EXAMPLE/20130524/eu-west-1/sts/aws4_request"),
            "{auth}"
        );
    }
}
