//! Where the S3 keys come from (S3_PROTOCOL.md §1.1): Litestream's two links
//! of its own, then the AWS SDKs' default chain in the order of the Rust and
//! Java SDKs (Litestream's Go SDK looks at web identity before the profile):
//!
//! 1. `access-key-id` / `secret-access-key` of the replica configuration;
//! 2. `LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`;
//! 3. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
//! 4. the profile `AWS_PROFILE` (else `default`) of the shared credentials
//!    file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) and
//!    the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`): static
//!    keys, a role to assume, or a `credential_process` ([`profile`]);
//! 5. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` ([`sts`]);
//! 6. container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `_FULL_URI` ([`container`]);
//! 7. EC2 instance metadata, unless `AWS_EC2_METADATA_DISABLED=true`
//!    ([`imds`]).
//!
//! The link is chosen when the replica is built, and what can be checked
//! without a request is checked then (a broken profile, a missing token
//! file, an insecure container URI). Keys that links 4–7 fetch (from STS, an
//! endpoint or a command) are fetched by the first request and renewed
//! before they expire ([`provider`]). With nothing set up, instance metadata
//! is tried last and its failure lists every place looked at (reported at
//! start-up instead when `AWS_EC2_METADATA_DISABLED=true`). The region comes
//! from `AWS_REGION`, `AWS_DEFAULT_REGION`, or the profile's `region`.
//!
//! Secrets are kept in [`SecretString`], whose `Debug` prints `***` and which
//! has no `Display`: a key cannot reach a log line or an error message.

mod builder;
mod chain;
mod container;
mod imds;
mod net;
mod process;
mod profile;
mod provider;
mod sts;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) use chain::{Chain, resolve_from_process};
#[cfg(test)]
pub(crate) use chain::{resolve, tests::with_env};
pub(crate) use provider::{CredentialProvider, Current, FetchError};

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
#[non_exhaustive]
pub enum CredentialSource {
    /// `access-key-id` and `secret-access-key` in the replica configuration.
    Config,
    /// `LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`.
    LitestreamEnv,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    AwsEnv,
    /// Keys in a profile of a shared credentials file.
    SharedFile {
        /// The file read.
        path: PathBuf,
        /// The profile used.
        profile: String,
    },
    /// Keys in a profile of the config file (`~/.aws/config`).
    ConfigFile {
        /// The file read.
        path: PathBuf,
        /// The profile used.
        profile: String,
    },
    /// A role of a profile, assumed through STS `AssumeRole`.
    AssumeRole {
        /// The role.
        role_arn: String,
        /// The profile naming it.
        profile: String,
    },
    /// STS `AssumeRoleWithWebIdentity` with a token file (EKS service
    /// accounts, or a profile's `web_identity_token_file`).
    WebIdentity {
        /// The role.
        role_arn: String,
        /// The file holding the identity token.
        token_file: PathBuf,
    },
    /// A profile's `credential_process` command.
    Process {
        /// The profile.
        profile: String,
        /// The file it is in.
        path: PathBuf,
    },
    /// The container credentials endpoint (ECS, Fargate, EKS Pod Identity).
    Container {
        /// The endpoint.
        url: String,
    },
    /// EC2 instance metadata (IMDSv2).
    InstanceMetadata {
        /// The service's base URL.
        endpoint: String,
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
            CredentialSource::SharedFile { path, profile }
            | CredentialSource::ConfigFile { path, profile } => {
                write!(f, "profile [{profile}] of {}", path.display())
            }
            CredentialSource::AssumeRole { role_arn, profile } => {
                write!(f, "role {role_arn} of profile [{profile}] (STS AssumeRole)")
            }
            CredentialSource::WebIdentity {
                role_arn,
                token_file,
            } => write!(
                f,
                "web identity (role {role_arn}, token file {})",
                token_file.display()
            ),
            CredentialSource::Process { profile, path } => write!(
                f,
                "credential_process of profile [{profile}] in {}",
                path.display()
            ),
            CredentialSource::Container { url } => write!(f, "container credentials at {url}"),
            CredentialSource::InstanceMetadata { endpoint } => {
                write!(f, "EC2 instance metadata at {endpoint}")
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
    /// When temporary keys stop working; `None` for lasting keys.
    pub(crate) expires: Option<SystemTime>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("source", &self.source)
            .field("expires", &self.expires)
            .finish()
    }
}

/// How keys are fetched from a source that hands out temporary ones.
pub(crate) enum Fetcher {
    WebIdentity(sts::WebIdentity),
    AssumeRole(Box<sts::AssumeRole>),
    Process(process::Process),
    Container(container::Container),
    Imds(imds::Imds),
    #[cfg(test)]
    Test(Box<dyn Fn() -> Result<Credentials, FetchError> + Send + Sync>),
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetcher::WebIdentity(w) => w.fmt(f),
            Fetcher::AssumeRole(a) => a.fmt(f),
            Fetcher::Process(p) => p.fmt(f),
            Fetcher::Container(c) => c.fmt(f),
            Fetcher::Imds(i) => i.fmt(f),
            #[cfg(test)]
            Fetcher::Test(_) => f.write_str("Test"),
        }
    }
}

impl Fetcher {
    #[cfg(test)]
    pub(crate) fn test(
        f: impl Fn() -> Result<Credentials, FetchError> + Send + Sync + 'static,
    ) -> Fetcher {
        Fetcher::Test(Box::new(f))
    }

    pub(crate) async fn fetch(&self, source: &CredentialSource) -> Result<Credentials, FetchError> {
        match self {
            Fetcher::WebIdentity(w) => w.fetch().await,
            Fetcher::AssumeRole(a) => a.fetch().await,
            Fetcher::Process(p) => p.fetch(source).await,
            Fetcher::Container(c) => c.fetch(source).await,
            Fetcher::Imds(i) => i.fetch(source).await,
            #[cfg(test)]
            Fetcher::Test(f) => f(),
        }
    }
}

/// What the chain reads: environment variables and the home directory,
/// injectable for tests.
pub(crate) struct Env<'a> {
    pub(crate) var: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) home: Option<PathBuf>,
}

impl Env<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    pub(crate) fn path(&self, name: &str, default: &str) -> Option<PathBuf> {
        match self.get(name) {
            Some(p) => Some(expand_home(&p, self.home.as_deref())),
            None => self.home.as_ref().map(|h| h.join(".aws").join(default)),
        }
    }
}

pub(crate) fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}
