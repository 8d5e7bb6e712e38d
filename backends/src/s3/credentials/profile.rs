//! The shared `credentials` and `config` files: INI sections of
//! `key = value` lines, `[name]` in the credentials file, `[profile name]`
//! (and `[default]`) in the config file. A profile is both files' sections
//! merged, the credentials file winning, and resolves to static keys, a
//! role to assume (`role_arn` with `source_profile`,
//! `web_identity_token_file` or `credential_source`), or a
//! `credential_process`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::CredentialSource;

/// Longest `source_profile` chain followed.
const MAX_CHAIN: usize = 8;

/// The sections of one file, by profile name; keys lowercased.
#[derive(Debug, Default)]
pub(crate) struct ProfileFile {
    sections: HashMap<String, HashMap<String, String>>,
}

impl ProfileFile {
    /// Parses a file; `config` selects the config file's section names.
    pub(crate) fn parse(text: &str, config: bool) -> ProfileFile {
        let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut current: Option<String> = None;
        // A `key =` with nothing after it opens indented sub-keys (the
        // `s3 =` block of the CLI), which belong to no profile key.
        let mut nested = false;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = section_name(name.trim(), config);
                nested = false;
                continue;
            }
            let indented = raw.starts_with([' ', '\t']);
            if nested && indented {
                continue;
            }
            let Some(name) = &current else { continue };
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            nested = value.is_empty();
            sections
                .entry(name.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.to_owned());
        }
        ProfileFile { sections }
    }

    fn section(&self, name: &str) -> Option<&HashMap<String, String>> {
        self.sections.get(name)
    }
}

/// The profile a section header names, if it is one.
fn section_name(header: &str, config: bool) -> Option<String> {
    if let Some(rest) = header
        .strip_prefix("profile ")
        .or_else(|| header.strip_prefix("profile\t"))
    {
        return Some(rest.trim().to_owned());
    }
    // In the config file only `default` goes without the prefix; other
    // bare headers are `sso-session`, `services` and the like.
    if config && header != "default" {
        return None;
    }
    Some(header.to_owned())
}

/// Both files, as found.
#[derive(Debug, Default)]
pub(crate) struct Profiles {
    pub(crate) credentials: Option<(PathBuf, ProfileFile)>,
    pub(crate) config: Option<(PathBuf, ProfileFile)>,
}

/// One profile: each key with the file it came from.
#[derive(Debug, Default)]
pub(crate) struct Profile<'a> {
    pub(crate) name: String,
    values: HashMap<&'a str, (&'a str, &'a Path)>,
}

impl<'a> Profile<'a> {
    /// A non-empty value.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.values
            .get(key)
            .map(|(v, _)| *v)
            .filter(|v| !v.is_empty())
    }

    /// The file a key was read from.
    fn file_of(&self, key: &str) -> Option<&'a Path> {
        self.values.get(key).map(|(_, p)| *p)
    }

    /// `profile [name] of <file>`, the file being the one holding `key`.
    pub(crate) fn describe(&self, key: &str) -> String {
        match self.file_of(key) {
            Some(p) => format!("{key} of profile [{}] in {}", self.name, p.display()),
            None => format!("profile [{}]", self.name),
        }
    }

    /// The file holding `key` (else the config file's path, else empty).
    pub(crate) fn path_of(&self, key: &str) -> PathBuf {
        self.file_of(key).map(Path::to_path_buf).unwrap_or_default()
    }
}

impl Profiles {
    /// `name` merged from both files; `None` if neither has it.
    pub(crate) fn get(&self, name: &str) -> Option<Profile<'_>> {
        let mut profile = Profile {
            name: name.to_owned(),
            values: HashMap::new(),
        };
        let mut found = false;
        // Config first, so the credentials file overrides it.
        for (path, file) in [&self.config, &self.credentials].into_iter().flatten() {
            if let Some(section) = file.section(name) {
                found = true;
                for (k, v) in section {
                    profile
                        .values
                        .insert(k.as_str(), (v.as_str(), path.as_path()));
                }
            }
        }
        found.then_some(profile)
    }
}

/// What a profile says to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Keys written in a file.
    Static {
        id: String,
        secret: String,
        token: Option<String>,
        source: CredentialSource,
    },
    /// STS `AssumeRole` with the keys `source` yields.
    AssumeRole {
        role_arn: String,
        session_name: Option<String>,
        external_id: Option<String>,
        duration_seconds: Option<u32>,
        source: Box<Plan>,
        profile: String,
        path: PathBuf,
    },
    /// STS `AssumeRoleWithWebIdentity` with a token file.
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
        profile: String,
        path: PathBuf,
    },
    /// `credential_source`: `Environment`, `Ec2InstanceMetadata` or
    /// `EcsContainer`.
    Named {
        name: String,
        profile: String,
        path: PathBuf,
    },
    /// A command printing JSON keys.
    Process {
        command: String,
        profile: String,
        path: PathBuf,
    },
}

/// What `name` resolves to: `Ok(None)` if the profile gives no credentials
/// (missing, or only settings such as `region`); an error for a profile
/// that asks for something impossible (a missing `source_profile`, a
/// cycle).
pub(crate) fn plan(profiles: &Profiles, name: &str) -> Result<Option<Plan>, String> {
    plan_at(profiles, name, &mut Vec::new())
}

fn plan_at(
    profiles: &Profiles,
    name: &str,
    seen: &mut Vec<String>,
) -> Result<Option<Plan>, String> {
    let Some(p) = profiles.get(name) else {
        return Ok(None);
    };
    let keys = || {
        Some((p.get("aws_access_key_id")?, p.get("aws_secret_access_key")?)).map(|(id, secret)| {
            let path = p.path_of("aws_secret_access_key");
            let source = match &profiles.credentials {
                Some((c, _)) if *c == path => CredentialSource::SharedFile {
                    path,
                    profile: name.to_owned(),
                },
                _ => CredentialSource::ConfigFile {
                    path,
                    profile: name.to_owned(),
                },
            };
            Plan::Static {
                id: id.to_owned(),
                secret: secret.to_owned(),
                token: p.get("aws_session_token").map(str::to_owned),
                source,
            }
        })
    };
    if let Some(role_arn) = p.get("role_arn") {
        seen.push(name.to_owned());
        if seen.len() > MAX_CHAIN {
            return Err(format!(
                "profile [{name}]: source_profile chain longer than {MAX_CHAIN} ({})",
                seen.join(" -> ")
            ));
        }
        let path = p.path_of("role_arn");
        let session_name = p.get("role_session_name").map(str::to_owned);
        let source = if let Some(src) = p.get("source_profile") {
            if src == name {
                // A profile may assume a role with its own keys.
                keys().ok_or_else(|| {
                    format!(
                        "{}: profile [{name}] is its own source_profile but has no keys",
                        p.describe("source_profile")
                    )
                })?
            } else if seen.iter().any(|s| s == src) {
                return Err(format!(
                    "{}: source_profile cycle {} -> {src}",
                    p.describe("source_profile"),
                    seen.join(" -> ")
                ));
            } else {
                plan_at(profiles, src, seen)?.ok_or_else(|| {
                    format!(
                        "{}: source profile [{src}] does not exist or has no credentials",
                        p.describe("source_profile")
                    )
                })?
            }
        } else if let Some(file) = p.get("web_identity_token_file") {
            return Ok(Some(Plan::WebIdentity {
                role_arn: role_arn.to_owned(),
                token_file: PathBuf::from(file),
                session_name,
                profile: name.to_owned(),
                path,
            }));
        } else if let Some(named) = p.get("credential_source") {
            Plan::Named {
                name: named.to_owned(),
                profile: name.to_owned(),
                path: p.path_of("credential_source"),
            }
        } else {
            return Err(format!(
                "{}: a role needs source_profile, web_identity_token_file or credential_source",
                p.describe("role_arn")
            ));
        };
        let duration_seconds = match p.get("duration_seconds") {
            None => None,
            Some(d) => Some(d.parse::<u32>().map_err(|_| {
                format!(
                    "{}: {d:?} is not a number of seconds",
                    p.describe("duration_seconds")
                )
            })?),
        };
        return Ok(Some(Plan::AssumeRole {
            role_arn: role_arn.to_owned(),
            session_name,
            external_id: p.get("external_id").map(str::to_owned),
            duration_seconds,
            source: Box::new(source),
            profile: name.to_owned(),
            path,
        }));
    }
    if let Some(k) = keys() {
        return Ok(Some(k));
    }
    if let Some(command) = p.get("credential_process") {
        return Ok(Some(Plan::Process {
            command: command.to_owned(),
            profile: name.to_owned(),
            path: p.path_of("credential_process"),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
[default]
region = eu-west-1
s3 =
  max_concurrent_requests = 20
  region = nested-not-a-profile-key

[profile keys]
aws_access_key_id = CFGKEY
aws_secret_access_key = cfgsecret
region=us-west-2

[profile role]
role_arn = arn:aws:iam::123456789012:role/replicator
source_profile = base
role_session_name = freshet-test
external_id = ext
duration_seconds = 900

[profile base]
region = ap-south-1

[profile chained]
role_arn = arn:aws:iam::123456789012:role/second
source_profile = role

[profile web]
role_arn = arn:aws:iam::123456789012:role/web
web_identity_token_file = /var/run/token

[profile proc]
credential_process = /usr/bin/get-keys --json

[profile self]
role_arn = arn:aws:iam::1:role/s
source_profile = self
aws_access_key_id = SELFKEY
aws_secret_access_key = selfsecret

[profile loop1]
role_arn = arn:aws:iam::1:role/a
source_profile = loop2
[profile loop2]
role_arn = arn:aws:iam::1:role/b
source_profile = loop1

[profile bad]
role_arn = arn:aws:iam::1:role/x

[profile env]
role_arn = arn:aws:iam::1:role/e
credential_source = Environment

[sso-session corp]
sso_region = us-east-1
[orphan]
aws_access_key_id = NOPE
";

    const CREDENTIALS: &str = "\
[base]
aws_access_key_id = BASEKEY
aws_secret_access_key = basesecret
aws_session_token = basetoken
";

    fn profiles() -> Profiles {
        Profiles {
            credentials: Some((
                PathBuf::from("/h/.aws/credentials"),
                ProfileFile::parse(CREDENTIALS, false),
            )),
            config: Some((
                PathBuf::from("/h/.aws/config"),
                ProfileFile::parse(CONFIG, true),
            )),
        }
    }

    #[test]
    fn sections_and_keys_of_the_config_file() {
        let p = profiles();
        let d = p.get("default").unwrap();
        assert_eq!(d.get("region"), Some("eu-west-1"));
        assert_eq!(d.get("max_concurrent_requests"), None);
        assert_eq!(p.get("keys").unwrap().get("region"), Some("us-west-2"));
        assert!(
            p.get("orphan").is_none(),
            "bare headers are not profiles in config"
        );
        assert!(p.get("corp").is_none() && p.get("sso-session corp").is_none());
        // Merged: region from config, keys from credentials.
        let base = p.get("base").unwrap();
        assert_eq!(base.get("region"), Some("ap-south-1"));
        assert_eq!(base.get("aws_access_key_id"), Some("BASEKEY"));
        assert!(
            base.describe("aws_access_key_id")
                .ends_with("/h/.aws/credentials")
        );
        assert!(p.get("nope").is_none());
    }

    #[test]
    fn plans_for_each_kind_of_profile() {
        let p = profiles();
        assert_eq!(
            plan(&p, "keys").unwrap(),
            Some(Plan::Static {
                id: "CFGKEY".into(),
                secret: "cfgsecret".into(),
                token: None,
                source: CredentialSource::ConfigFile {
                    path: "/h/.aws/config".into(),
                    profile: "keys".into()
                },
            })
        );
        let Some(Plan::AssumeRole {
            role_arn,
            session_name,
            external_id,
            duration_seconds,
            source,
            ..
        }) = plan(&p, "role").unwrap()
        else {
            panic!("role")
        };
        assert_eq!(role_arn, "arn:aws:iam::123456789012:role/replicator");
        assert_eq!(session_name.as_deref(), Some("freshet-test"));
        assert_eq!(external_id.as_deref(), Some("ext"));
        assert_eq!(duration_seconds, Some(900));
        assert!(
            matches!(*source, Plan::Static { ref id, ref token, source: CredentialSource::SharedFile { .. }, .. } if id == "BASEKEY" && token.as_deref() == Some("basetoken"))
        );
        let Some(Plan::AssumeRole { source, .. }) = plan(&p, "chained").unwrap() else {
            panic!("chained")
        };
        assert!(
            matches!(*source, Plan::AssumeRole { ref role_arn, .. } if role_arn.ends_with("replicator"))
        );
        assert!(matches!(
            plan(&p, "web").unwrap(),
            Some(Plan::WebIdentity { ref token_file, .. }) if token_file == Path::new("/var/run/token")
        ));
        assert!(matches!(
            plan(&p, "proc").unwrap(),
            Some(Plan::Process { ref command, .. }) if command == "/usr/bin/get-keys --json"
        ));
        let Some(Plan::AssumeRole { source, .. }) = plan(&p, "self").unwrap() else {
            panic!("self")
        };
        assert!(matches!(*source, Plan::Static { ref id, .. } if id == "SELFKEY"));
        assert!(matches!(
            plan(&p, "env").unwrap(),
            Some(Plan::AssumeRole { ref source, .. }) if matches!(**source, Plan::Named { ref name, .. } if name == "Environment")
        ));
        assert_eq!(plan(&p, "default").unwrap(), None);
        assert_eq!(plan(&p, "missing").unwrap(), None);
    }

    #[test]
    fn impossible_profiles_are_errors_that_say_where() {
        let p = profiles();
        let e = plan(&p, "loop1").unwrap_err();
        assert!(e.contains("cycle loop1 -> loop2 -> loop1"), "{e}");
        let e = plan(&p, "bad").unwrap_err();
        assert!(
            e.contains("role_arn of profile [bad] in /h/.aws/config"),
            "{e}"
        );
        assert!(
            e.contains("source_profile, web_identity_token_file or credential_source"),
            "{e}"
        );
        let mut p = profiles();
        if let Some((_, f)) = &mut p.config {
            *f = ProfileFile::parse(
                "[profile r]\nrole_arn=a\nsource_profile=gone\nduration_seconds=x\n",
                true,
            );
        }
        let e = plan(&p, "r").unwrap_err();
        assert!(e.contains("source profile [gone] does not exist"), "{e}");
    }
}
