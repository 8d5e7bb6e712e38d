//! Credentials that are fetched, not configured, end to end: from moto's
//! STS (web identity, `role_arn` + `source_profile`), from a fake instance
//! metadata service and a fake container endpoint on 127.0.0.1, each used
//! against moto's S3 behind a proxy that records which access key signed
//! each request. Temporary keys expire within seconds here, so the tests
//! see them renewed and the new keys used; failures must name the source
//! and the fix, and no secret may appear in an error or a log line.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ltx::TxId;

use super::endpoint::{Endpoint, json_keys};
use super::proxy::{Fault, FaultProxy};
use super::*;
use crate::s3::credentials::{self, CredentialSource};
use crate::{ByteRange, FileId, ReplicaClient};

const TS: i64 = 1_700_000_000_000;

/// Settings for moto (or a proxy in front of it) without configured keys.
fn keyless(endpoint: &str, path: &str) -> S3Settings {
    let mut s = settings_for(endpoint, BUCKET, path);
    s.access_key_id = None;
    s.secret_access_key = None;
    s
}

/// A replica whose credential chain sees only `vars` and `home`.
fn replica_in(settings: S3Settings, vars: &[(&str, &str)], home: &Path) -> S3Replica {
    let chain = credentials::with_env(vars, Some(home), |e| credentials::resolve(None, None, e))
        .expect("credential chain");
    S3Replica::with_chain(settings, chain).expect("S3 client")
}

fn id(n: u64) -> FileId {
    FileId::new(0, TxId::new(n), TxId::new(n))
}

/// PutObject, ListObjectsV2 and GetObject of file `n`.
async fn round_trip(r: &S3Replica, n: u64) {
    let data = pattern(n, 3000);
    r.write(id(n), TS, bytes_stream(data.clone()))
        .await
        .unwrap();
    let listed = r.list(0, TxId::new(n)).await.unwrap();
    assert_eq!(listed.first().map(|f| f.id), Some(id(n)), "{listed:?}");
    let read = read_all(r.open(id(n), ByteRange::ALL).await.unwrap()).await;
    assert_eq!(read, data);
}

/// Records the access key id of every request through a proxy.
async fn recording_proxy(
    upstream: u16,
    reject: Option<&'static str>,
) -> (FaultProxy, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let proxy = FaultProxy::start(upstream, move |s| {
        let key = s.access_key_id.unwrap_or("-").to_owned();
        let fault = (Some(key.as_str()) == reject).then_some(Fault::Reject(403, "ExpiredToken"));
        log.lock().unwrap().push(key);
        fault
    })
    .await;
    (proxy, seen)
}

fn distinct(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        if out.last() != Some(k) {
            out.push(k.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_through_moto_sts() {
    let server = Server::start(Kind::Moto);
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.payload.signature\n").unwrap();
    let token_s = token.to_string_lossy().into_owned();
    let endpoint = server.endpoint();
    let r = replica_in(
        keyless(&endpoint, "web"),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_s),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/freshet"),
            ("AWS_ROLE_SESSION_NAME", "freshet-test"),
            ("AWS_ENDPOINT_URL_STS", &endpoint),
        ],
        home.path(),
    );
    assert!(matches!(
        r.credential_source(),
        CredentialSource::WebIdentity { role_arn, .. } if role_arn.ends_with("role/freshet")
    ));
    round_trip(&r, 1).await;
    let key = r.inner.credentials.access_key_id().expect("keys fetched");
    assert!(key.starts_with("ASIA"), "an STS key: {key}");
    round_trip(&r, 2).await;
    assert_eq!(
        r.inner.credentials.access_key_id(),
        Some(key),
        "cached, not fetched again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_role_with_a_source_profile_through_moto_sts_is_renewed() {
    let server = Server::start(Kind::Moto);
    let (proxy, seen) = recording_proxy(server.port, None).await;
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = basesecret\n",
    )
    .unwrap();
    // moto honours DurationSeconds below AWS's 900 s minimum: 6 s keys,
    // renewed after 3 s.
    std::fs::write(
        aws.join("config"),
        "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\n\
         duration_seconds = 6\nregion = us-east-1\n",
    )
    .unwrap();
    let sts = server.endpoint();
    let r = replica_in(
        keyless(&format!("http://127.0.0.1:{}", proxy.port), "role"),
        &[("AWS_PROFILE", "app"), ("AWS_ENDPOINT_URL_STS", &sts)],
        home.path(),
    );
    assert_eq!(
        r.credential_source().to_string(),
        "role arn:aws:iam::123456789012:role/app of profile [app] (STS AssumeRole)"
    );
    round_trip(&r, 1).await;
    let first = r.inner.credentials.access_key_id().unwrap();
    assert!(first.starts_with("ASIA"), "{first}");
    tokio::time::sleep(Duration::from_millis(3300)).await;
    round_trip(&r, 2).await;
    let second = r.inner.credentials.access_key_id().unwrap();
    assert_ne!(first, second, "renewed before expiry");
    let keys = distinct(&seen.lock().unwrap());
    assert_eq!(
        keys,
        vec![first, second],
        "S3 saw the old keys, then the new"
    );
}

/// A fake IMDSv2: tokens must be asked for with a TTL and sent back on every
/// GET; each credentials read hands out new keys valid for 4 s.
async fn fake_imds() -> (Endpoint, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reads);
    let server = Endpoint::start(move |r| {
        let token_ok = r
            .header("x-aws-ec2-metadata-token")
            .is_some_and(|t| t.starts_with("imds-token-"));
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") => {
                match r.header("x-aws-ec2-metadata-token-ttl-seconds") {
                    Some(_) => {
                        let n = issued.fetch_add(1, Ordering::SeqCst);
                        (200, format!("imds-token-{n}"))
                    }
                    None => (400, String::new()),
                }
            }
            (_, _) if !token_ok => (401, String::new()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                (200, "freshet-role\n".to_owned())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/freshet-role") => {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let body = json_keys(
                    &format!("ASIAIMDS{n}"),
                    "imdssecret",
                    "imdstoken",
                    4,
                    r#""Code":"Success","Type":"AWS-HMAC","#,
                );
                (200, body)
            }
            _ => (404, String::new()),
        }
    })
    .await;
    (server, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_metadata_keys_are_renewed_and_the_new_ones_used() {
    let server = Server::start(Kind::Moto);
    let (proxy, seen) = recording_proxy(server.port, None).await;
    let (imds, reads) = fake_imds().await;
    let home = tempfile::tempdir().unwrap();
    let imds_url = imds.url();
    let r = replica_in(
        keyless(&format!("http://127.0.0.1:{}", proxy.port), "imds"),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url)],
        home.path(),
    );
    round_trip(&r, 1).await;
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    round_trip(&r, 2).await;
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "renewed once, at half the lifetime"
    );
    let keys = distinct(&seen.lock().unwrap());
    assert_eq!(keys, vec!["ASIAIMDS1".to_owned(), "ASIAIMDS2".to_owned()]);
    let received = imds.received();
    assert!(
        received.iter().all(
            |r| r.method == http::Method::PUT || r.header("x-aws-ec2-metadata-token").is_some()
        )
    );
    assert_eq!(
        received
            .iter()
            .filter(|r| r.path == "/latest/api/token")
            .map(|r| r.header("x-aws-ec2-metadata-token-ttl-seconds"))
            .collect::<Vec<_>>(),
        vec![Some("21600"), Some("21600")]
    );
}

/// A fake container endpoint that wants `Authorization: <token>` and hands
/// out new keys on every call, valid for `secs`.
async fn fake_container(token: &'static str, secs: u64) -> (Endpoint, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = Endpoint::start(move |r| {
        if r.header("authorization") != Some(token) {
            return (
                401,
                r#"{"code":"Unauthorized","message":"bad authorization token"}"#.to_owned(),
            );
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        (
            200,
            json_keys(
                &format!("ASIACONT{n}"),
                "hunter2",
                "tok3n-container",
                secs,
                r#""RoleArn":"arn:aws:iam::1:role/task","#,
            ),
        )
    })
    .await;
    (server, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_keys_carry_the_token_and_are_renewed() {
    let server = Server::start(Kind::Moto);
    let (proxy, seen) = recording_proxy(server.port, None).await;
    let (container, calls) = fake_container("Bearer pod-identity", 4).await;
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("auth");
    std::fs::write(&token_file, "Bearer pod-identity\n").unwrap();
    let full = format!("{}/v1/credentials", container.url());
    let token_s = token_file.to_string_lossy().into_owned();
    let r = replica_in(
        keyless(&format!("http://127.0.0.1:{}", proxy.port), "container"),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_s),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "ignored when the file is set",
            ),
        ],
        home.path(),
    );
    round_trip(&r, 1).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    round_trip(&r, 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        distinct(&seen.lock().unwrap()),
        vec!["ASIACONT1".to_owned(), "ASIACONT2".to_owned()]
    );
    assert!(
        container
            .received()
            .iter()
            .all(|r| r.path == "/v1/credentials"
                && r.header("authorization") == Some("Bearer pod-identity"))
    );

    // A wrong token once the keys expired: the error names the source and
    // the variable to fix.
    std::fs::write(&token_file, "Bearer stale").unwrap();
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let err = r.list(0, TxId::ZERO).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("container credentials at {full}")),
        "{err}"
    );
    assert!(
        err.contains("HTTP 401 Unauthorized: bad authorization token"),
        "{err}"
    );
    assert!(
        err.contains("check AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        "{err}"
    );
    for secret in ["hunter2", "tok3n", "Bearer"] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
}

/// Collects every log line of the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread: the log subscriber is per thread, and so sees every task.
#[tokio::test]
async fn keys_refused_as_expired_are_replaced_once_and_no_secret_is_logged() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(Kind::Moto);
    // S3 calls the first keys expired although they are not due yet.
    let (proxy, seen) = recording_proxy(server.port, Some("ASIACONT1")).await;
    let (container, calls) = fake_container("secret-auth", 3600).await;
    let full = format!("{}/creds", container.url());
    let home = tempfile::tempdir().unwrap();
    let r = replica_in(
        keyless(&format!("http://127.0.0.1:{}", proxy.port), "expired"),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-auth"),
        ],
        home.path(),
    );
    round_trip(&r, 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let keys = seen.lock().unwrap().clone();
    assert_eq!(keys.first().map(String::as_str), Some("ASIACONT1"));
    assert!(keys[1..].iter().all(|k| k == "ASIACONT2"), "{keys:?}");

    // Keys refused again after renewal: an error naming the source, after
    // one renewal rather than a loop.
    let proxy = FaultProxy::start(server.port, |_| Some(Fault::Reject(403, "ExpiredToken"))).await;
    let r2 = replica_in(
        keyless(&format!("http://127.0.0.1:{}", proxy.port), "expired"),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-auth"),
        ],
        home.path(),
    );
    let err = r2.list(0, TxId::ZERO).await.unwrap_err().to_string();
    assert!(
        err.contains("expired or invalid even after fetching new credentials"),
        "{err}"
    );
    assert!(
        err.contains(&format!("container credentials at {full}")),
        "{err}"
    );
    assert_eq!(proxy.stats.requests.load(Ordering::Relaxed), 2);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("fetching new ones"), "{text}");
    assert!(text.contains("ASIACONT"), "key ids may be logged: {text}");
    for secret in ["hunter2", "tok3n", "secret-auth"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
        assert!(!err.contains(secret), "{secret} in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_web_identity_says_which_setting_to_check() {
    let sts = Endpoint::start(|_| {
        (
            403,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform \
             sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>req-1</RequestId>\
             </ErrorResponse>"
                .to_owned(),
        )
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("token");
    let mut f = std::fs::File::create(&token).unwrap();
    writeln!(f, "secret.jwt.value").unwrap();
    let token_s = token.to_string_lossy().into_owned();
    let sts_url = sts.url();
    let r = replica_in(
        keyless("http://127.0.0.1:9", "denied"),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_s),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/nope"),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
        home.path(),
    );
    let err = r.list(0, TxId::ZERO).await.unwrap_err();
    assert!(matches!(err, crate::Error::Config(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains(&format!(
            "web identity (role arn:aws:iam::123456789012:role/nope, token file {token_s}): \
             STS AssumeRoleWithWebIdentity at {sts_url} returned HTTP 403 AccessDenied: Not \
             authorized to perform sts:AssumeRoleWithWebIdentity (request id req-1); check \
             AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE"
        )),
        "{err}"
    );
    assert!(!err.contains("secret.jwt"), "{err}");
    let sent = sts.received();
    assert_eq!(sent.len(), 1, "a refusal is not retried");
    assert!(sent[0].body.contains("Action=AssumeRoleWithWebIdentity"));
    assert!(sent[0].body.contains("WebIdentityToken=secret.jwt.value"));
    assert!(sent[0].header("authorization").is_none(), "unsigned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_source_instance_metadata_fails_fast_and_lists_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let r = replica_in(
        keyless("http://127.0.0.1:9", "none"),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)],
        home.path(),
    );
    let started = std::time::Instant::now();
    let err = r.list(0, TxId::ZERO).await.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("no S3 credentials found"), "{err}");
    assert!(
        err.contains(&format!("EC2 instance metadata at {imds}")),
        "{err}"
    );
    assert!(err.contains("LITESTREAM_ACCESS_KEY_ID"), "{err}");
    assert!(err.contains("AWS_EC2_METADATA_DISABLED"), "{err}");
}
