//! Providers for the links: a profile's plan, web identity, the container
//! endpoint and instance metadata, each checked as far as it can be
//! without a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::{
    CredentialProvider, CredentialSource, Credentials, Env, Fetcher, SecretString, container,
    expand_home, imds, net, process, profile, sts,
};

/// Turns plans and environment settings into providers.
pub(crate) struct Builder<'a, 'e> {
    pub(crate) env: &'a Env<'e>,
    pub(crate) region: Option<&'a str>,
}

impl Builder<'_, '_> {
    fn sts(&self) -> Result<sts::Sts, String> {
        sts::Sts::new(self.env.get("AWS_ENDPOINT_URL_STS"), self.region)
    }

    fn session_name(&self, configured: Option<String>) -> String {
        configured
            .or_else(|| self.env.get("AWS_ROLE_SESSION_NAME"))
            .unwrap_or_else(|| {
                let ms = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("freshet-{ms}")
            })
    }

    pub(crate) fn build(&self, plan: profile::Plan) -> Result<CredentialProvider, String> {
        use profile::Plan;
        Ok(match plan {
            Plan::Static {
                id,
                secret,
                token,
                source,
            } => CredentialProvider::fixed(Credentials {
                access_key_id: id,
                secret_access_key: SecretString(secret),
                session_token: token.map(SecretString),
                source,
                expires: None,
            }),
            Plan::AssumeRole {
                role_arn,
                session_name,
                external_id,
                duration_seconds,
                source,
                profile,
                path,
            } => {
                let source_keys = Arc::new(self.build(*source)?);
                let cs = CredentialSource::AssumeRole {
                    role_arn: role_arn.clone(),
                    profile: profile.clone(),
                };
                let fetcher = Fetcher::AssumeRole(Box::new(sts::AssumeRole {
                    role_arn,
                    session_name: self.session_name(session_name),
                    external_id,
                    duration_seconds,
                    source_keys,
                    sts: self.sts()?,
                    source: cs.clone(),
                    settings: format!("role_arn of profile [{profile}] in {}", path.display()),
                }));
                CredentialProvider::fetched(cs, fetcher)
            }
            Plan::WebIdentity {
                role_arn,
                token_file,
                session_name,
                profile,
                path,
            } => self.web_identity(
                role_arn,
                token_file,
                session_name,
                format!(
                    "role_arn and web_identity_token_file of profile [{profile}] in {}",
                    path.display()
                ),
            )?,
            Plan::Named {
                name,
                profile,
                path,
            } => {
                let at = format!(
                    "credential_source {name} of profile [{profile}] in {}",
                    path.display()
                );
                match name.as_str() {
                    "Environment" => aws_env_keys(self.env).ok_or_else(|| {
                        format!("{at}: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set")
                    })?,
                    "EcsContainer" => self.container()?.ok_or_else(|| {
                        format!("{at}: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set")
                    })?,
                    "Ec2InstanceMetadata" => self.imds(imds::Role::NamedBy(at))?,
                    _ => {
                        return Err(format!(
                            "{at}: unknown; use Environment, EcsContainer or Ec2InstanceMetadata"
                        ));
                    }
                }
            }
            Plan::Process {
                command,
                profile,
                path,
            } => CredentialProvider::fetched(
                CredentialSource::Process {
                    profile: profile.clone(),
                    path: path.clone(),
                },
                Fetcher::Process(process::Process {
                    command,
                    profile,
                    path,
                }),
            ),
        })
    }

    fn web_identity(
        &self,
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
        settings: String,
    ) -> Result<CredentialProvider, String> {
        let token_file = expand_home(&token_file.to_string_lossy(), self.env.home.as_deref());
        // Kubernetes mounts the token before the container starts: a
        // missing file is a configuration mistake, reported at start-up.
        if !token_file.exists() {
            return Err(format!(
                "web identity: the token file {} does not exist; check {settings}",
                token_file.display()
            ));
        }
        let source = CredentialSource::WebIdentity {
            role_arn: role_arn.clone(),
            token_file: token_file.clone(),
        };
        let fetcher = Fetcher::WebIdentity(sts::WebIdentity {
            role_arn,
            token_file,
            session_name: self.session_name(session_name),
            sts: self.sts()?,
            source: source.clone(),
            settings,
        });
        Ok(CredentialProvider::fetched(source, fetcher))
    }

    pub(crate) fn web_identity_from_env(&self) -> Result<Option<CredentialProvider>, String> {
        let Some(file) = self.env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            return Ok(None);
        };
        let role_arn = self.env.get("AWS_ROLE_ARN").ok_or_else(|| {
            "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set the \
             role to assume"
                .to_owned()
        })?;
        self.web_identity(
            role_arn,
            PathBuf::from(file),
            None,
            "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
        )
        .map(Some)
    }

    pub(crate) fn container(&self) -> Result<Option<CredentialProvider>, String> {
        let Some(url) = container::endpoint(
            self.env
                .get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .as_deref(),
            self.env
                .get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                .as_deref(),
        )?
        else {
            return Ok(None);
        };
        let token = match (
            self.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            self.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        ) {
            (Some(file), _) => container::Token::File(PathBuf::from(file)),
            (None, Some(token)) => container::Token::Value(SecretString(token)),
            (None, None) => container::Token::None,
        };
        let source = CredentialSource::Container { url: url.clone() };
        let fetcher = Fetcher::Container(container::Container {
            url,
            token,
            http: net::Http::new(container::CONNECT_TIMEOUT, container::TIMEOUT)?,
        });
        Ok(Some(CredentialProvider::fetched(source, fetcher)))
    }

    pub(crate) fn imds(&self, role: imds::Role) -> Result<CredentialProvider, String> {
        let endpoint = match self.env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None if self
                .env
                .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
                .is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) =>
            {
                imds::DEFAULT_ENDPOINT_V6.to_owned()
            }
            None => imds::DEFAULT_ENDPOINT.to_owned(),
        };
        let source = CredentialSource::InstanceMetadata {
            endpoint: endpoint.clone(),
        };
        let fetcher = Fetcher::Imds(imds::Imds {
            endpoint,
            http: net::Http::new(imds::CONNECT_TIMEOUT, imds::TIMEOUT)?,
            role,
        });
        Ok(CredentialProvider::fetched(source, fetcher))
    }
}

/// The keys of `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, if both are set.
pub(crate) fn aws_env_keys(env: &Env<'_>) -> Option<CredentialProvider> {
    let (id, secret) = (
        env.get("AWS_ACCESS_KEY_ID")?,
        env.get("AWS_SECRET_ACCESS_KEY")?,
    );
    Some(CredentialProvider::fixed(Credentials {
        access_key_id: id,
        secret_access_key: SecretString(secret),
        session_token: env.get("AWS_SESSION_TOKEN").map(SecretString),
        source: CredentialSource::AwsEnv,
        expires: None,
    }))
}
