//! Entry points: finding and reading the configuration file, parsing text,
//! the ad-hoc `DB_PATH REPLICA_URL` form, and path normalisation
//! (CLI_CONFIG.md §1, §3.1).

use std::path::{Path, PathBuf};

use super::backend::BackendConfig;
use super::error::ConfigError;
use super::expand::{Expanded, expand_with_map};
use super::model::{Config, DbConfig, DbEntry, LogLevel};
use super::replica::{self, RawReplica};
use super::url::clean_path;
use super::yaml::{Doc, Pos};
use super::{schema, validate, yaml};

/// Configuration file used when neither `-config` nor `LITESTREAM_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/litestream.yml";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "LITESTREAM_CONFIG";
/// Largest configuration file read: 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// What loading needs from the process: environment variables (for `$VAR`
/// expansion and `LOG_LEVEL`), the home directory (for `~`) and the current
/// directory (for relative paths). Tests build one by hand.
pub struct Environment<'a> {
    /// Looks up a variable; `PID` should give the process id, as in
    /// Litestream's expansion.
    pub vars: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory, if known.
    pub home: Option<PathBuf>,
    /// The current directory, if known.
    pub cwd: Option<PathBuf>,
}

impl Environment<'static> {
    /// This process's environment, home and current directory.
    pub fn process() -> Self {
        Self {
            vars: &process_var,
            home: std::env::home_dir(),
            cwd: std::env::current_dir().ok(),
        }
    }
}

/// Environment lookup with `PID` meaning this process's id.
fn process_var(name: &str) -> Option<String> {
    if name == "PID" {
        Some(std::process::id().to_string())
    } else {
        std::env::var(name).ok()
    }
}

/// The configuration file to read: `flag` (`-config`), else
/// `$LITESTREAM_CONFIG`, else `/etc/litestream.yml`; `~` expanded and made
/// absolute.
pub fn resolve_config_path(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    resolve_config_path_in(flag, &Environment::process())
}

/// [`resolve_config_path`] in a given environment.
pub fn resolve_config_path_in(
    flag: Option<&Path>,
    env: &Environment<'_>,
) -> Result<PathBuf, ConfigError> {
    let chosen = flag
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| (env.vars)(CONFIG_ENV_VAR).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_owned());
    normalize_path(&chosen, env)
}

/// Reads and parses the configuration file (see [`resolve_config_path`]).
/// `expand_env: false` is `-no-expand-env`.
pub fn load(flag: Option<&Path>, expand_env: bool) -> Result<Config, ConfigError> {
    let env = Environment::process();
    let path = resolve_config_path_in(flag, &env)?;
    let text = read_file(&path)?;
    parse_str(&text, &path, &env, expand_env)
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            read_error(source)
        }
    })?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

/// Parses configuration text; `origin` names the file in messages. With
/// `expand_env`, `$VAR` references are expanded first (CLI_CONFIG.md §4.1).
pub fn parse_str(
    text: &str,
    origin: &Path,
    env: &Environment<'_>,
    expand_env: bool,
) -> Result<Config, ConfigError> {
    let expanded = if expand_env {
        expand_with_map(text, env.vars)
    } else {
        Expanded::identity(text)
    };
    let root = yaml::parse(&expanded, text, origin)?;
    let mut doc = Doc::new(Some(origin));
    let raw = schema::read(&mut doc, &root)?;
    validate::build(&mut doc, raw, env)
}

impl Config {
    /// The configuration of `replicate DB_PATH REPLICA_URL`: one database
    /// with the defaults of an empty configuration file.
    pub fn from_db_and_url(db_path: &str, url: &str) -> Result<Self, ConfigError> {
        Self::from_db_and_url_in(db_path, url, &Environment::process())
    }

    /// [`Config::from_db_and_url`] in a given environment.
    pub fn from_db_and_url_in(
        db_path: &str,
        url: &str,
        env: &Environment<'_>,
    ) -> Result<Self, ConfigError> {
        let mut doc = Doc::new(None);
        let replica = replica::build(&mut doc, &RawReplica::from_url(url), env)?;
        let path = normalize_path(db_path, env)
            .map_err(|e| doc.error(Pos::default(), "DB_PATH", e.to_string()))?;
        let mut config = Self {
            dbs: vec![DbEntry::Single(DbConfig::new(path, replica))],
            ..Self::default()
        };
        if let Some(level) = (env.vars)("LOG_LEVEL").and_then(|v| LogLevel::parse(&v)) {
            config.logging.level = level;
        }
        config.warnings = doc.warnings;
        Ok(config)
    }
}

/// Parses a replica URL the way `replicate`, `restore`, `ltx` and a YAML
/// `url:` do (CLI_CONFIG.md §5), into the backend settings with defaults.
pub fn parse_replica_url(url: &str) -> Result<BackendConfig, ConfigError> {
    parse_replica_url_in(url, &Environment::process())
}

/// [`parse_replica_url`] in a given environment.
pub fn parse_replica_url_in(
    url: &str,
    env: &Environment<'_>,
) -> Result<BackendConfig, ConfigError> {
    let mut doc = Doc::new(None);
    replica::build(&mut doc, &RawReplica::from_url(url), env).map(|r| r.backend)
}

/// Normalises a database path given on the command line (CLI_CONFIG.md §1).
pub fn normalize_db_path(path: &str) -> Result<PathBuf, ConfigError> {
    normalize_path(path, &Environment::process())
}

/// Strips a `sqlite3://` or `sqlite://` prefix, expands `~` and `~/…`, and
/// makes the path absolute and clean (CLI_CONFIG.md §1).
pub(crate) fn normalize_path(path: &str, env: &Environment<'_>) -> Result<PathBuf, ConfigError> {
    let p = path
        .strip_prefix("sqlite3://")
        .or_else(|| path.strip_prefix("sqlite://"))
        .unwrap_or(path);
    let home = || {
        env.home
            .clone()
            .ok_or_else(|| ConfigError::NoHomeDirectory {
                path: path.to_owned(),
            })
    };
    let absolute = if p == "~" {
        home()?
    } else if let Some(rest) = p.strip_prefix("~/") {
        home()?.join(rest)
    } else if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        let cwd = env
            .cwd
            .clone()
            .ok_or_else(|| ConfigError::CurrentDirectory {
                path: path.to_owned(),
                source: std::io::Error::other("the current directory is unknown"),
            })?;
        cwd.join(p)
    };
    Ok(PathBuf::from(clean_path(&absolute.to_string_lossy())))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn env_with<'a>(vars: &'a dyn Fn(&str) -> Option<String>) -> Environment<'a> {
        Environment {
            vars,
            home: Some(PathBuf::from("/home/u")),
            cwd: Some(PathBuf::from("/srv/app")),
        }
    }

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn paths_are_normalised_like_litestream() -> Result<(), ConfigError> {
        let env = env_with(&no_vars);
        let cases = [
            ("/var/lib/app.db", "/var/lib/app.db"),
            ("sqlite3:///var/lib/app.db", "/var/lib/app.db"),
            ("sqlite:///var/lib/app.db", "/var/lib/app.db"),
            ("sqlite://rel.db", "/srv/app/rel.db"),
            ("~", "/home/u"),
            ("~/data/app.db", "/home/u/data/app.db"),
            ("~user/app.db", "/srv/app/~user/app.db"),
            ("app.db", "/srv/app/app.db"),
            ("./a/../b.db", "/srv/app/b.db"),
            ("/x//y/./z.db", "/x/y/z.db"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input, &env)?, PathBuf::from(want), "{input}");
        }
        let homeless = Environment {
            vars: &no_vars,
            home: None,
            cwd: None,
        };
        let err = normalize_path("~/x", &homeless)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "cannot expand \"~\" in \"~/x\": no home directory is known; set HOME or use an absolute path"
        );
        assert!(matches!(
            normalize_path("x", &homeless),
            Err(ConfigError::CurrentDirectory { .. })
        ));
        Ok(())
    }

    #[test]
    fn config_path_resolution_order() -> Result<(), ConfigError> {
        let with_var = |name: &str| (name == CONFIG_ENV_VAR).then(|| "~/ls.yml".to_owned());
        let empty_var = |name: &str| (name == CONFIG_ENV_VAR).then(String::new);
        assert_eq!(
            resolve_config_path_in(Some(Path::new("cfg.yml")), &env_with(&with_var))?,
            PathBuf::from("/srv/app/cfg.yml")
        );
        assert_eq!(
            resolve_config_path_in(None, &env_with(&with_var))?,
            PathBuf::from("/home/u/ls.yml")
        );
        assert_eq!(
            resolve_config_path_in(None, &env_with(&empty_var))?,
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            resolve_config_path_in(Some(Path::new("")), &env_with(&no_vars))?,
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
        Ok(())
    }

    #[test]
    fn missing_file_is_reported_with_its_path() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nope.yml");
        let err = load(Some(&path), true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, format!("config file not found: {}", path.display()));
        Ok(())
    }

    #[test]
    fn load_reads_and_parses_a_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("litestream.yml");
        std::fs::write(
            &path,
            "dbs:\n  - path: /data/app.db\n    replica:\n      url: file:///backups/app\n",
        )?;
        let config = load(Some(&path), false)?;
        let dbs = config.databases()?;
        assert_eq!(dbs.len(), 1);
        assert_eq!(dbs[0].path, PathBuf::from("/data/app.db"));
        let huge = dir.path().join("huge.yml");
        std::fs::write(&huge, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize])?;
        assert!(matches!(
            load(Some(&huge), true),
            Err(ConfigError::TooLarge { .. })
        ));
        Ok(())
    }
}
