//! Where the S3 keys come from, in Litestream's order (S3_PROTOCOL.md §1.1):
//! the replica configuration, then `LITESTREAM_ACCESS_KEY_ID` /
//! `LITESTREAM_SECRET_ACCESS_KEY`, then `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then the shared credentials
//! file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
//! `AWS_PROFILE` or `default`).
//!
//! Secrets are kept in [`SecretString`], whose `Debug` prints `***` and which
//! has no `Display`: a key cannot reach a log line or an error message.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value (secret key, session token, SSE-C key).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The value, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Which link of the chain supplied the keys; error messages name it so a
/// user knows which setting to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `access-key-id` and `secret-access-key` in the replica configuration.
    Config,
    /// `LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`.
    LitestreamEnv,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    AwsEnv,
    /// A profile of a shared credentials file.
    SharedFile {
        /// The file read.
        path: PathBuf,
        /// The profile used.
        profile: String,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Config => {
                f.write_str("access-key-id/secret-access-key of the replica configuration")
            }
            CredentialSource::LitestreamEnv => {
                f.write_str("LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY")
            }
            CredentialSource::AwsEnv => f.write_str("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
            CredentialSource::SharedFile { path, profile } => {
                write!(f, "profile [{profile}] of {}", path.display())
            }
        }
    }
}

/// Resolved keys.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: SecretString,
    pub(crate) session_token: Option<SecretString>,
    pub(crate) source: CredentialSource,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("source", &self.source)
            .finish()
    }
}

/// What the chain reads: environment variables and the home directory,
/// injectable for tests.
pub(crate) struct Env<'a> {
    pub(crate) var: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) home: Option<PathBuf>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }
}

/// Walks the chain with the process environment.
pub(crate) fn resolve_from_process(
    access_key_id: Option<&str>,
    secret_access_key: Option<&SecretString>,
) -> Result<Credentials, String> {
    let var = |name: &str| std::env::var(name).ok();
    let env = Env {
        var: &var,
        home: std::env::var_os("HOME").map(PathBuf::from),
    };
    resolve(access_key_id, secret_access_key, &env)
}

/// Walks the chain. The error says every place that was looked at.
pub(crate) fn resolve(
    access_key_id: Option<&str>,
    secret_access_key: Option<&SecretString>,
    env: &Env<'_>,
) -> Result<Credentials, String> {
    let pair = |id: String, secret: String, token: Option<String>, source| Credentials {
        access_key_id: id,
        secret_access_key: SecretString(secret),
        session_token: token.map(SecretString),
        source,
    };
    if let (Some(id), Some(secret)) = (
        access_key_id.filter(|v| !v.is_empty()),
        secret_access_key.filter(|s| !s.0.is_empty()),
    ) {
        return Ok(pair(
            id.to_owned(),
            secret.0.clone(),
            None,
            CredentialSource::Config,
        ));
    }
    if let (Some(id), Some(secret)) = (
        env.get("LITESTREAM_ACCESS_KEY_ID"),
        env.get("LITESTREAM_SECRET_ACCESS_KEY"),
    ) {
        return Ok(pair(id, secret, None, CredentialSource::LitestreamEnv));
    }
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        let token = env.get("AWS_SESSION_TOKEN");
        return Ok(pair(id, secret, token, CredentialSource::AwsEnv));
    }
    let path = match env.get("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => Some(expand_home(&p, env.home.as_deref())),
        None => env
            .home
            .as_ref()
            .map(|h| h.join(".aws").join("credentials")),
    };
    let profile = env
        .get("AWS_PROFILE")
        .unwrap_or_else(|| "default".to_owned());
    let mut looked =
        "the replica configuration, LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY, \
                      AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            .to_owned();
    if let Some(path) = path {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Some((id, secret, token)) = parse_profile(&text, &profile) {
                    return Ok(pair(
                        id,
                        secret,
                        token,
                        CredentialSource::SharedFile { path, profile },
                    ));
                }
                looked.push_str(&format!(
                    ", profile [{profile}] of {} (not found or incomplete)",
                    path.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push_str(&format!(", {} (does not exist)", path.display()));
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the S3 shared credentials file {}: {e}",
                    path.display()
                ));
            }
        }
    }
    Err(format!(
        "no S3 credentials found; looked at {looked}. Set access-key-id and \
         secret-access-key on the replica, or LITESTREAM_ACCESS_KEY_ID and \
         LITESTREAM_SECRET_ACCESS_KEY in the environment"
    ))
}

fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}

/// The keys of `[profile]` in an INI-style credentials file.
fn parse_profile(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").map_or(name, str::trim);
            in_section = name == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Some((id, secret, token.filter(|t| !t.is_empty())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with_env<T>(vars: &[(&str, &str)], home: Option<&Path>, f: impl FnOnce(&Env<'_>) -> T) -> T {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let var = move |name: &str| map.get(name).cloned();
        f(&Env {
            var: &var,
            home: home.map(Path::to_path_buf),
        })
    }

    #[test]
    fn the_chain_is_config_then_litestream_then_aws_then_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n\
             [other]\naws_access_key_id=OTHERKEY\naws_secret_access_key=othersecret\naws_session_token=tok\n",
        )
        .unwrap();
        let all = [
            ("LITESTREAM_ACCESS_KEY_ID", "LSKEY"),
            ("LITESTREAM_SECRET_ACCESS_KEY", "lssecret"),
            ("AWS_ACCESS_KEY_ID", "AWSKEY"),
            ("AWS_SECRET_ACCESS_KEY", "awssecret"),
            ("AWS_SESSION_TOKEN", "awstoken"),
        ];
        let secret = SecretString::new("cfgsecret");
        let c = with_env(&all, Some(home.path()), |e| {
            resolve(Some("CFGKEY"), Some(&secret), e)
        })
        .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), &c.source),
            ("CFGKEY", &CredentialSource::Config)
        );

        // Only one of the configured pair: falls through to the environment.
        let c = with_env(&all, Some(home.path()), |e| {
            resolve(Some("CFGKEY"), None, e)
        })
        .unwrap();
        assert_eq!(c.access_key_id, "LSKEY");
        assert_eq!(c.secret_access_key.expose(), "lssecret");
        assert!(c.session_token.is_none());

        let c = with_env(&all[2..], Some(home.path()), |e| resolve(None, None, e)).unwrap();
        assert_eq!(c.access_key_id, "AWSKEY");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("awstoken")
        );

        let c = with_env(&[], Some(home.path()), |e| resolve(None, None, e)).unwrap();
        assert_eq!(c.access_key_id, "FILEKEY");
        assert!(
            matches!(c.source, CredentialSource::SharedFile { ref profile, .. } if profile == "default")
        );

        let c = with_env(&[("AWS_PROFILE", "other")], Some(home.path()), |e| {
            resolve(None, None, e)
        })
        .unwrap();
        assert_eq!(c.access_key_id, "OTHERKEY");
        assert_eq!(
            c.session_token.as_ref().map(SecretString::expose),
            Some("tok")
        );

        let alt = home.path().join("alt");
        std::fs::write(
            &alt,
            "[profile x]\naws_access_key_id=ALT\naws_secret_access_key=s\n",
        )
        .unwrap();
        let alt_s = alt.to_string_lossy().into_owned();
        let c = with_env(
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &alt_s),
                ("AWS_PROFILE", "x"),
            ],
            Some(home.path()),
            |e| resolve(None, None, e),
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ALT");
    }

    #[test]
    fn nothing_found_says_where_it_looked_and_secrets_stay_hidden() {
        let home = tempfile::tempdir().unwrap();
        let err = with_env(&[], Some(home.path()), |e| resolve(None, None, e)).unwrap_err();
        assert!(err.contains("LITESTREAM_ACCESS_KEY_ID"), "{err}");
        assert!(err.contains("does not exist"), "{err}");

        let c = with_env(
            &[
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("AWS_SECRET_ACCESS_KEY", "hunter2"),
                ("AWS_SESSION_TOKEN", "tok3n"),
            ],
            None,
            |e| resolve(None, None, e),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok3n"),
            "{debug}"
        );
        assert!(debug.contains("AK"));
    }
}
