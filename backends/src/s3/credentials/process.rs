//! `credential_process` of a profile: a command run through `sh -c` that
//! prints `{"Version": 1, "AccessKeyId", "SecretAccessKey",
//! "SessionToken", "Expiration"}` on stdout. Keys without `Expiration`
//! are kept for good; otherwise the command runs again before they expire.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use super::net::parse_json_keys;
use super::provider::FetchError;
use super::{CredentialSource, Credentials};

/// Longest a credential command may run.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);
/// Most stderr quoted in an error.
const STDERR_PREVIEW: usize = 300;

/// The configured command.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) command: String,
    pub(crate) profile: String,
    pub(crate) path: PathBuf,
}

impl Process {
    pub(crate) async fn fetch(&self, source: &CredentialSource) -> Result<Credentials, FetchError> {
        let fix = format!(
            "check credential_process of profile [{}] in {}",
            self.profile,
            self.path.display()
        );
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| FetchError::permanent(format!("{source}: cannot start sh: {e}")))?;
        let output = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
            Err(_) => {
                return Err(FetchError::transient(format!(
                    "{source}: the command did not finish within {} s; {fix}",
                    TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(FetchError::transient(format!("{source}: {e}"))),
            Ok(Ok(o)) => o,
        };
        if !output.status.success() {
            // stderr is the command's own diagnostics; stdout may hold keys.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr: String = stderr.trim().chars().take(STDERR_PREVIEW).collect();
            return Err(FetchError::permanent(format!(
                "{source}: the command failed ({}): {stderr}; {fix}",
                output.status
            )));
        }
        parse(&output.stdout, source, SystemTime::now())
            .map_err(|e| FetchError::permanent(format!("{source}: {e}; {fix}")))
    }
}

/// The command's output as keys.
pub(crate) fn parse(
    stdout: &[u8],
    source: &CredentialSource,
    now: SystemTime,
) -> Result<Credentials, String> {
    let k =
        parse_json_keys(stdout, "SessionToken").map_err(|e| format!("unexpected output: {e}"))?;
    match k.version {
        Some(1) => {}
        Some(v) => return Err(format!("unexpected output: Version {v}, only 1 is known")),
        None => return Err("unexpected output: field Version is missing".to_owned()),
    }
    if let Some(t) = k.expiration.filter(|t| *t <= now) {
        let ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        return Err(format!(
            "the command returned keys that expired at {}",
            crate::s3::time::format_millis(ms)
        ));
    }
    Ok(k.into_credentials(source))
}

#[cfg(test)]
mod tests {
    use super::super::SecretString;
    use super::*;

    fn source() -> CredentialSource {
        CredentialSource::Process {
            profile: "p".to_owned(),
            path: PathBuf::from("/home/u/.aws/config"),
        }
    }

    #[test]
    fn output_is_parsed_and_checked() {
        let now = crate::s3::time::parse("2026-01-01T00:00:00Z").unwrap();
        let c = parse(
            br#"{"Version":1,"AccessKeyId":"AKPROC","SecretAccessKey":"hunter2","SessionToken":"tok3n","Expiration":"2026-01-01T01:00:00Z"}"#,
            &source(),
            now,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKPROC");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("tok3n")
        );
        assert_eq!(c.expires, Some(now + Duration::from_secs(3600)));
        let c = parse(
            br#"{"Version":1,"AccessKeyId":"AKPROC","SecretAccessKey":"hunter2"}"#,
            &source(),
            now,
        )
        .unwrap();
        assert!(c.expires.is_none() && c.session_token.is_none());
        for (out, want) in [
            (&br#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"hunter2"}"#[..], "Version 2"),
            (br#"{"AccessKeyId":"A","SecretAccessKey":"hunter2"}"#, "Version is missing"),
            (
                br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"hunter2","Expiration":"2025-12-31T23:00:00Z"}"#,
                "expired at 2025-12-31T23:00:00Z",
            ),
            (b"hunter2\n", "not JSON"),
        ] {
            let e = parse(out, &source(), now).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[tokio::test]
    async fn the_command_runs_and_its_failure_is_reported() {
        let path = PathBuf::from("/home/u/.aws/config");
        let p = Process {
            command:
                r#"printf '{"Version": 1, "AccessKeyId": "AKSH", "SecretAccessKey": "hunter2"}'"#
                    .to_owned(),
            profile: "p".to_owned(),
            path: path.clone(),
        };
        let c = p.fetch(&source()).await.unwrap();
        assert_eq!(c.access_key_id, "AKSH");
        assert_eq!(c.secret_access_key.expose(), "hunter2");

        let p = Process {
            command: "echo hunter2; echo 'token expired, run login' >&2; exit 3".to_owned(),
            profile: "p".to_owned(),
            path,
        };
        let e = p.fetch(&source()).await.unwrap_err();
        assert!(!e.transient);
        assert!(
            e.message.contains("token expired, run login"),
            "{}",
            e.message
        );
        assert!(e.message.contains("exit status: 3"), "{}", e.message);
        assert!(
            e.message.contains("credential_process of profile [p]"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}
