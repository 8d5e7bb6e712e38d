//! S3 server-side encryption settings: SSE-C with a key or a key file, or
//! SSE-KMS (CLI_CONFIG.md §3.4).

use super::backend::{S3_SSE_CUSTOMER_ALGORITHM, S3Encryption};
use super::error::{ConfigError, Secret};
use super::keys::RKey;
use super::load::{Environment, normalize_path};
use super::replica::RawReplica;
use super::yaml::Doc;

/// Length of an SSE-C key: AES-256, 32 bytes.
const SSE_CUSTOMER_KEY_BYTES: usize = 32;

/// SSE-C (`sse-customer-key` or `sse-customer-key-path`) or SSE-KMS.
pub(crate) fn encryption(
    doc: &Doc,
    raw: &RawReplica,
    env: &Environment,
) -> Result<S3Encryption, ConfigError> {
    let s = &raw.settings;
    let key = s.secret(RKey::SseCustomerKey);
    let key_path = s.str(RKey::SseCustomerKeyPath);
    let kms = s.str(RKey::SseKmsKeyId);
    let algorithm = s.str(RKey::SseCustomerAlgorithm);
    if key.is_none() && key_path.is_none() {
        if let (Some(_), Some(pos)) = (algorithm, s.pos(RKey::SseCustomerAlgorithm)) {
            return Err(doc.error(
                pos,
                &raw.key(RKey::SseCustomerAlgorithm),
                "has no effect without sse-customer-key or sse-customer-key-path",
            ));
        }
        return Ok(kms.map_or(S3Encryption::None, |id| S3Encryption::Kms {
            key_id: id.to_owned(),
        }));
    }
    if let (Some(_), Some(pos)) = (kms, s.pos(RKey::SseKmsKeyId)) {
        return Err(doc.error(
            pos,
            &raw.key(RKey::SseKmsKeyId),
            "SSE-KMS cannot be combined with SSE-C (sse-customer-key); choose one",
        ));
    }
    if let (Some(_), Some(_), Some(pos)) = (key, key_path, s.pos(RKey::SseCustomerKeyPath)) {
        return Err(doc.error(
            pos,
            &raw.key(RKey::SseCustomerKeyPath),
            "sse-customer-key and sse-customer-key-path are both set; keep one",
        ));
    }
    if let (Some(alg), Some(pos)) = (algorithm, s.pos(RKey::SseCustomerAlgorithm))
        && alg != S3_SSE_CUSTOMER_ALGORITHM
    {
        return Err(doc.error(
            pos,
            &raw.key(RKey::SseCustomerAlgorithm),
            format!("unsupported algorithm {alg:?}; S3 accepts only {S3_SSE_CUSTOMER_ALGORITHM}"),
        ));
    }
    let (key, pos, key_name) = match (key, key_path) {
        (Some(k), _) => (
            k.clone(),
            s.pos(RKey::SseCustomerKey).unwrap_or(raw.pos),
            raw.key(RKey::SseCustomerKey),
        ),
        (None, Some(path)) => {
            let pos = s.pos(RKey::SseCustomerKeyPath).unwrap_or(raw.pos);
            let name = raw.key(RKey::SseCustomerKeyPath);
            let file =
                normalize_path(path, env).map_err(|e| doc.error(pos, &name, e.to_string()))?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                doc.error(pos, &name, format!("cannot read {}: {e}", file.display()))
            })?;
            (Secret::new(text.trim()), pos, name)
        }
        (None, None) => return Ok(S3Encryption::None),
    };
    match decode_base64(key.expose()) {
        Some(bytes) if bytes.len() == SSE_CUSTOMER_KEY_BYTES => Ok(S3Encryption::CustomerKey {
            algorithm: S3_SSE_CUSTOMER_ALGORITHM.to_owned(),
            key,
        }),
        Some(bytes) => Err(doc.error(
            pos,
            &key_name,
            format!(
                "the SSE-C key must be the base64 encoding of {SSE_CUSTOMER_KEY_BYTES} bytes; it decodes to {} bytes",
                bytes.len()
            ),
        )),
        None => Err(doc.error(pos, &key_name, "the SSE-C key is not valid base64")),
    }
}

/// Standard base64 with optional padding.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::S3Config;
    use super::super::testutil::{error, parse, s3, with_replica};
    use super::*;

    fn yaml(globals: &str, replica: &str) -> S3Config {
        match parse(&with_replica(globals, replica)) {
            Ok(c) => s3(&c, 0).clone(),
            Err(e) => panic!("{e}"),
        }
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn sse_settings() -> Result<(), Box<dyn std::error::Error>> {
        let c = yaml("", &format!("url: s3://b/p\nsse-customer-key: {KEY}"));
        assert_eq!(
            c.encryption,
            S3Encryption::CustomerKey {
                algorithm: "AES256".into(),
                key: Secret::new(KEY)
            }
        );
        assert!(!format!("{c:?}").contains(KEY));
        let dir = tempfile::tempdir()?;
        let key_file = dir.path().join("sse.key");
        std::fs::write(&key_file, format!("{KEY}\n"))?;
        let c = yaml(
            "",
            &format!(
                "url: s3://b/p\nsse-customer-key-path: {}",
                key_file.display()
            ),
        );
        assert!(
            matches!(c.encryption, S3Encryption::CustomerKey { ref key, .. } if key.expose() == KEY)
        );
        assert_eq!(
            yaml("", "url: s3://b/p\nsse-kms-key-id: arn:aws:kms:k").encryption,
            S3Encryption::Kms {
                key_id: "arn:aws:kms:k".into()
            }
        );
        assert_eq!(
            error(&with_replica(
                "",
                "url: s3://b/p\nsse-customer-key: c2hvcnQ="
            )),
            "litestream.yml:5:25: dbs[0].replica.sse-customer-key: the SSE-C key must be the base64 encoding of 32 bytes; it decodes to 5 bytes"
        );
        assert_eq!(
            error(&with_replica(
                "",
                &format!("url: s3://b/p\nsse-customer-key: {KEY}\nsse-kms-key-id: k")
            )),
            "litestream.yml:6:23: dbs[0].replica.sse-kms-key-id: SSE-KMS cannot be combined with SSE-C (sse-customer-key); choose one"
        );
        assert_eq!(
            error(&with_replica(
                "",
                &format!("url: s3://b/p\nsse-customer-key: {KEY}\nsse-customer-algorithm: AES128")
            )),
            "litestream.yml:6:31: dbs[0].replica.sse-customer-algorithm: unsupported algorithm \"AES128\"; S3 accepts only AES256"
        );
        assert_eq!(
            error(&with_replica(
                "",
                "url: s3://b/p\nsse-customer-key-path: /nonexistent/key"
            )),
            "litestream.yml:5:30: dbs[0].replica.sse-customer-key-path: cannot read /nonexistent/key: No such file or directory (os error 2)"
        );
        Ok(())
    }

    /// CLI_CONFIG.md §3.5: what an S3 replica takes from the top level.

    #[test]
    fn base64_decoding() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(decode_base64(""), Some(vec![]));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("a*b="), None);
        assert_eq!(decode_base64(KEY).map(|k| k.len()), Some(32));
    }
}
