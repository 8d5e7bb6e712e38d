//! The chain itself: which link supplies the keys, decided once when the
//! replica is built (see the module above for the order).

use std::path::PathBuf;

use super::builder::{Builder, aws_env_keys};
use super::{CredentialProvider, CredentialSource, Credentials, Env, SecretString, imds, profile};

/// The outcome of the chain: the keys (or how to fetch them) and the
/// region the environment or profile names.
#[derive(Debug)]
pub(crate) struct Chain {
    pub(crate) provider: CredentialProvider,
    pub(crate) region: Option<String>,
}

/// Walks the chain with the process environment.
pub(crate) fn resolve_from_process(
    access_key_id: Option<&str>,
    secret_access_key: Option<&SecretString>,
) -> Result<Chain, String> {
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
) -> Result<Chain, String> {
    let files = load_profiles(env);
    let profile = env
        .get("AWS_PROFILE")
        .unwrap_or_else(|| "default".to_owned());
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .or_else(|| {
            files
                .profiles
                .get(&profile)
                .and_then(|p| p.get("region").map(str::to_owned))
        });
    let chain = |provider| {
        Ok(Chain {
            provider,
            region: region.clone(),
        })
    };
    let fixed = |id: String, secret: String, token: Option<String>, source| {
        CredentialProvider::fixed(Credentials {
            access_key_id: id,
            secret_access_key: SecretString(secret),
            session_token: token.map(SecretString),
            source,
            expires: None,
        })
    };
    if let (Some(id), Some(secret)) = (
        access_key_id.filter(|v| !v.is_empty()),
        secret_access_key.filter(|s| !s.0.is_empty()),
    ) {
        let source = CredentialSource::Config;
        return chain(fixed(id.to_owned(), secret.0.clone(), None, source));
    }
    if let (Some(id), Some(secret)) = (
        env.get("LITESTREAM_ACCESS_KEY_ID"),
        env.get("LITESTREAM_SECRET_ACCESS_KEY"),
    ) {
        return chain(fixed(id, secret, None, CredentialSource::LitestreamEnv));
    }
    if let Some(provider) = aws_env_keys(env) {
        return chain(provider);
    }
    if let Some(e) = files.error {
        return Err(e);
    }
    let mut looked = format!(
        "the replica configuration, LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY, \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY{}",
        files.notes
    );
    let builder = Builder {
        env,
        region: region.as_deref(),
    };
    match profile::plan(&files.profiles, &profile)? {
        Some(plan) => return chain(builder.build(plan)?),
        None if files.profiles.credentials.is_some() || files.profiles.config.is_some() => {
            looked.push_str(&format!(
                ", profile [{profile}] (not found or without credentials)"
            ));
        }
        None => {}
    }
    if let Some(provider) = builder.web_identity_from_env()? {
        return chain(provider);
    }
    looked.push_str(", AWS_WEB_IDENTITY_TOKEN_FILE");
    if let Some(provider) = builder.container()? {
        return chain(provider);
    }
    looked.push_str(", AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI");
    if env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        looked.push_str(" (EC2 instance metadata disabled by AWS_EC2_METADATA_DISABLED)");
        return Err(format!(
            "no S3 credentials found; looked at {looked}. Set access-key-id and \
             secret-access-key on the replica, or LITESTREAM_ACCESS_KEY_ID and \
             LITESTREAM_SECRET_ACCESS_KEY in the environment"
        ));
    }
    chain(builder.imds(imds::Role::LastLink { looked })?)
}

/// The two shared files, read once.
struct Files {
    profiles: profile::Profiles,
    /// `, <path> (does not exist)` for each missing file.
    notes: String,
    /// A file that exists but cannot be read: an error, unless keys were
    /// found before the files were needed.
    error: Option<String>,
}

fn load_profiles(env: &Env<'_>) -> Files {
    let mut files = Files {
        profiles: profile::Profiles::default(),
        notes: String::new(),
        error: None,
    };
    let wanted = [
        (
            env.path("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            false,
        ),
        (env.path("AWS_CONFIG_FILE", "config"), true),
    ];
    for (path, config) in wanted {
        let Some(path) = path else { continue };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let parsed = Some((path, profile::ProfileFile::parse(&text, config)));
                if config {
                    files.profiles.config = parsed;
                } else {
                    files.profiles.credentials = parsed;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                files
                    .notes
                    .push_str(&format!(", {} (does not exist)", path.display()));
            }
            Err(e) => {
                let kind = if config { "config" } else { "credentials" };
                files.error.get_or_insert(format!(
                    "cannot read the AWS shared {kind} file {}: {e}",
                    path.display()
                ));
            }
        }
    }
    files
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    pub(crate) fn with_env<T>(
        vars: &[(&str, &str)],
        home: Option<&Path>,
        f: impl FnOnce(&Env<'_>) -> T,
    ) -> T {
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

    fn fixed(chain: &Chain) -> &Credentials {
        chain
            .provider
            .fixed_credentials()
            .unwrap_or_else(|| panic!("not static: {:?}", chain.provider.source()))
    }

    fn resolve_in(vars: &[(&str, &str)], home: &Path) -> Result<Chain, String> {
        with_env(vars, Some(home), |e| resolve(None, None, e))
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
            (fixed(&c).access_key_id.as_str(), c.provider.source()),
            ("CFGKEY", &CredentialSource::Config)
        );
        assert!(!c.provider.is_dynamic());

        // Only one of the configured pair: falls through to the environment.
        let c = with_env(&all, Some(home.path()), |e| {
            resolve(Some("CFGKEY"), None, e)
        })
        .unwrap();
        assert_eq!(fixed(&c).access_key_id, "LSKEY");
        assert_eq!(fixed(&c).secret_access_key.expose(), "lssecret");
        assert!(fixed(&c).session_token.is_none());

        let c = resolve_in(&all[2..], home.path()).unwrap();
        assert_eq!(fixed(&c).access_key_id, "AWSKEY");
        assert_eq!(
            fixed(&c).session_token.as_ref().map(SecretString::expose),
            Some("awstoken")
        );

        let c = resolve_in(&[], home.path()).unwrap();
        assert_eq!(fixed(&c).access_key_id, "FILEKEY");
        assert!(
            matches!(c.provider.source(), CredentialSource::SharedFile { profile, .. } if profile == "default")
        );

        let c = resolve_in(&[("AWS_PROFILE", "other")], home.path()).unwrap();
        assert_eq!(fixed(&c).access_key_id, "OTHERKEY");
        assert_eq!(
            fixed(&c).session_token.as_ref().map(SecretString::expose),
            Some("tok")
        );

        let alt = home.path().join("alt");
        std::fs::write(
            &alt,
            "[profile x]\naws_access_key_id=ALT\naws_secret_access_key=s\n",
        )
        .unwrap();
        let alt_s = alt.to_string_lossy().into_owned();
        let c = resolve_in(
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &alt_s),
                ("AWS_PROFILE", "x"),
            ],
            home.path(),
        )
        .unwrap();
        assert_eq!(fixed(&c).access_key_id, "ALT");
    }

    #[test]
    fn after_the_files_come_web_identity_then_container_then_instance_metadata() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        let token = home.path().join("token");
        std::fs::write(&token, "eyJ.token\n").unwrap();
        let token_s = token.to_string_lossy().into_owned();
        let web = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_s.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web"),
        ];
        let container = [
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/id",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "auth"),
        ];
        let everything: Vec<_> = web.iter().chain(&container).copied().collect();

        // The config file's profile comes before all of them.
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-central-1\naws_access_key_id = CFGFILE\naws_secret_access_key = s\n\
             [profile proc]\ncredential_process = echo\n",
        )
        .unwrap();
        let c = resolve_in(&everything, home.path()).unwrap();
        assert_eq!(fixed(&c).access_key_id, "CFGFILE");
        assert!(matches!(
            c.provider.source(),
            CredentialSource::ConfigFile { .. }
        ));
        assert_eq!(c.region.as_deref(), Some("eu-central-1"));
        let mut with_proc = everything.clone();
        with_proc.push(("AWS_PROFILE", "proc"));
        let c = resolve_in(&with_proc, home.path()).unwrap();
        assert!(c.provider.is_dynamic());
        assert!(
            matches!(c.provider.source(), CredentialSource::Process { profile, .. } if profile == "proc")
        );
        // No region in that profile: none.
        assert_eq!(c.region, None);

        std::fs::remove_file(aws.join("config")).unwrap();
        let c = resolve_in(&everything, home.path()).unwrap();
        assert_eq!(
            c.provider.source(),
            &CredentialSource::WebIdentity {
                role_arn: "arn:aws:iam::123456789012:role/web".into(),
                token_file: token.clone(),
            }
        );
        let c = resolve_in(&container, home.path()).unwrap();
        assert_eq!(
            c.provider.source(),
            &CredentialSource::Container {
                url: "http://169.254.170.2/v2/credentials/id".into()
            }
        );
        let c = resolve_in(&[], home.path()).unwrap();
        assert_eq!(
            c.provider.source(),
            &CredentialSource::InstanceMetadata {
                endpoint: "http://169.254.169.254".into()
            }
        );
        let c = resolve_in(
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/")],
            home.path(),
        )
        .unwrap();
        assert_eq!(
            c.provider.source().to_string(),
            "EC2 instance metadata at http://127.0.0.1:1"
        );
    }

    #[test]
    fn the_region_is_the_environment_s_then_the_profile_s() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-west-3\n[profile p]\nregion = sa-east-1\n",
        )
        .unwrap();
        let keys = [("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")];
        let region = |extra: &[(&str, &str)]| {
            let vars: Vec<_> = keys.iter().chain(extra).copied().collect();
            resolve_in(&vars, home.path()).unwrap().region
        };
        assert_eq!(region(&[]).as_deref(), Some("eu-west-3"));
        assert_eq!(
            region(&[("AWS_PROFILE", "p")]).as_deref(),
            Some("sa-east-1")
        );
        assert_eq!(
            region(&[("AWS_DEFAULT_REGION", "us-west-1"), ("AWS_PROFILE", "p")]).as_deref(),
            Some("us-west-1")
        );
        assert_eq!(
            region(&[
                ("AWS_REGION", "ap-east-1"),
                ("AWS_DEFAULT_REGION", "us-west-1")
            ])
            .as_deref(),
            Some("ap-east-1")
        );
    }

    #[test]
    fn nothing_found_says_where_it_looked_and_secrets_stay_hidden() {
        let home = tempfile::tempdir().unwrap();
        let err = resolve_in(&[("AWS_EC2_METADATA_DISABLED", "true")], home.path()).unwrap_err();
        assert!(err.starts_with("no S3 credentials found"), "{err}");
        assert!(err.contains("LITESTREAM_ACCESS_KEY_ID"), "{err}");
        assert!(err.contains("credentials (does not exist)"), "{err}");
        assert!(err.contains("config (does not exist)"), "{err}");
        assert!(err.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{err}");
        assert!(
            err.contains("disabled by AWS_EC2_METADATA_DISABLED"),
            "{err}"
        );

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

    #[test]
    fn misconfigured_dynamic_links_fail_at_start_up() {
        let home = tempfile::tempdir().unwrap();
        let err = resolve_in(
            &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token")],
            home.path(),
        )
        .unwrap_err();
        assert!(err.contains("AWS_ROLE_ARN is not"), "{err}");
        let err = resolve_in(
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ],
            home.path(),
        )
        .unwrap_err();
        assert!(err.contains("/nonexistent/token does not exist"), "{err}");
        assert!(
            err.contains("check AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE"),
            "{err}"
        );
        let err = resolve_in(
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://198.51.100.7/creds",
            )],
            home.path(),
        )
        .unwrap_err();
        assert!(err.contains("must be https://"), "{err}");
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile r]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Environment\n\
             [profile ec2]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Ec2InstanceMetadata\n\
             [profile odd]\nrole_arn = arn:aws:iam::1:role/o\ncredential_source = Laptop\n",
        )
        .unwrap();
        let c = resolve_in(&[("AWS_PROFILE", "ec2")], home.path()).unwrap();
        assert_eq!(
            c.provider.source().to_string(),
            "role arn:aws:iam::1:role/e of profile [ec2] (STS AssumeRole)"
        );
        let err = resolve_in(&[("AWS_PROFILE", "odd")], home.path()).unwrap_err();
        assert!(
            err.contains("credential_source Laptop of profile [odd]"),
            "{err}"
        );
        assert!(err.contains("unknown; use Environment"), "{err}");
        let err = resolve_in(&[("AWS_PROFILE", "r")], home.path()).unwrap_err();
        assert!(
            err.contains("credential_source Environment of profile [r]"),
            "{err}"
        );
        assert!(
            err.contains("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set"),
            "{err}"
        );
        let c = resolve_in(
            &[
                ("AWS_PROFILE", "r"),
                ("AWS_ACCESS_KEY_ID", "A"),
                ("AWS_SECRET_ACCESS_KEY", "S"),
            ],
            home.path(),
        )
        .unwrap();
        // Keys in the environment come first, the profile's role is not used.
        assert_eq!(c.provider.source(), &CredentialSource::AwsEnv);
    }
}
