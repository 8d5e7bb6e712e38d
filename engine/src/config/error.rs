//! Errors and warnings of configuration loading, and the [`Secret`] newtype.
//!
//! Every error that comes from the configuration file names the file, line and
//! column, and the key path (`dbs[0].replica.bucket`), and says what to do.
//! Secret values (keys, passwords, tokens) never appear in any message.

use std::fmt;
use std::path::PathBuf;

use super::BackendKind;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in a configuration file (1-based line and column, counted in
    /// the file as written, before `$VAR` expansion).
    File {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column, in characters.
        column: u64,
    },
    /// A command-line argument (`DB_PATH REPLICA_URL`).
    Argument,
    /// An environment variable (the key names it).
    Environment,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Self::Argument => f.write_str("command line"),
            Self::Environment => f.write_str("environment"),
        }
    }
}

/// A configuration error. Messages are meant to be shown to the user as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file does not exist.
    #[error("config file not found: {}", path.display())]
    NotFound {
        /// The path that was looked up (after `~` expansion).
        path: PathBuf,
    },
    /// The configuration file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration file is larger than any sensible configuration.
    #[error(
        "config file {} is {size} bytes; the limit is {limit} bytes",
        path.display()
    )]
    TooLarge {
        /// The configuration file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not valid YAML.
    #[error("{origin}: invalid YAML: {message}")]
    Syntax {
        /// Where the parser stopped.
        origin: Origin,
        /// What the parser reported.
        message: String,
    },
    /// A key is unknown, has the wrong type or an invalid value, or breaks a
    /// rule that involves several keys.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// Where the offending key or value is.
        origin: Origin,
        /// The key path, e.g. `dbs[0].replica.sync-interval`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A path starts with `~` but no home directory is known.
    #[error(
        "cannot expand \"~\" in {path:?}: no home directory is known; set HOME or use an absolute path"
    )]
    NoHomeDirectory {
        /// The path as written.
        path: String,
    },
    /// The current directory is needed to make a relative path absolute but
    /// cannot be determined.
    #[error("cannot make {path:?} absolute: the current directory is unavailable: {source}")]
    CurrentDirectory {
        /// The path as written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `dir` entry could not be scanned.
    #[error("cannot scan directory {} for databases: {source}", dir.display())]
    ScanDirectory {
        /// The directory or subdirectory that failed.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `dir` entry without `watch` matched no database.
    #[error(
        "no SQLite databases found in directory {} with pattern {pattern:?}; \
         check dir and pattern, or set watch: true to wait for databases to appear",
        dir.display()
    )]
    NoDatabases {
        /// The scanned directory.
        dir: PathBuf,
        /// The file-name pattern.
        pattern: String,
    },
    /// Two databases would share one metadata directory.
    #[error(
        "databases {} and {} would share the metadata directory {}, which corrupts \
         replication state; give them distinct meta-path or meta-dir settings",
        first.display(),
        second.display(),
        meta_path.display()
    )]
    MetaPathCollision {
        /// The first database.
        first: PathBuf,
        /// The second database.
        second: PathBuf,
        /// The shared metadata directory.
        meta_path: PathBuf,
    },
    /// The replica backend is parsed but freshet cannot replicate to it yet.
    #[error("replica type {kind} is not supported yet; freshet replicates to file and s3 replicas")]
    UnsupportedBackend {
        /// The backend type.
        kind: BackendKind,
    },
}

/// Something in the configuration that freshet accepts but does not act on
/// (a feature not implemented yet, a deprecated or unused key). The caller
/// logs each warning once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where the key is.
    pub origin: Origin,
    /// The key path.
    pub key: String,
    /// What freshet does with it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

/// A secret string (access key secret, password, token, encryption key).
///
/// `Debug` prints `Secret("***")`; there is no `Display`, so a secret cannot
/// end up in a log line or error message by accident. Use
/// [`Secret::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it (signing, login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(\"***\")");
        assert_eq!(s.expose(), "hunter2");
        let nested = Some(vec![s]);
        assert!(!format!("{nested:?}").contains("hunter2"));
    }

    #[test]
    fn invalid_error_display_names_file_line_column_and_key() {
        let err = ConfigError::Invalid {
            origin: Origin::File {
                path: PathBuf::from("litestream.yml"),
                line: 7,
                column: 5,
            },
            key: "dbs[0].replica".into(),
            message: "unknown key \"bucktet\" (did you mean \"bucket\"?)".into(),
        };
        assert_eq!(
            err.to_string(),
            "litestream.yml:7:5: dbs[0].replica: unknown key \"bucktet\" (did you mean \"bucket\"?)"
        );
    }

    #[test]
    fn not_found_message_matches_litestream() {
        let err = ConfigError::NotFound {
            path: PathBuf::from("/etc/litestream.yml"),
        };
        assert_eq!(
            err.to_string(),
            "config file not found: /etc/litestream.yml"
        );
    }
}
