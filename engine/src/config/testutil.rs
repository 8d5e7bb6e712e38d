//! Helpers shared by the tests of this module.

use std::path::{Path, PathBuf};

use super::{
    BackendConfig, Config, ConfigError, DbConfig, DbEntry, Environment, S3Config, parse_str,
};

/// Parses `text` as `litestream.yml` with the variables `vars`, home
/// `/home/u` and current directory `/srv/app`.
pub(crate) fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let env = Environment {
        vars: &lookup,
        home: Some(PathBuf::from("/home/u")),
        cwd: Some(PathBuf::from("/srv/app")),
    };
    parse_str(text, Path::new("litestream.yml"), &env, true)
}

/// Parses `text` with no variables set.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, &[])
}

/// The message of the error `text` must produce.
pub(crate) fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:#?}"),
        Err(e) => e.to_string(),
    }
}

/// The `i`th entry, which must be a single database.
pub(crate) fn db(config: &Config, i: usize) -> &DbConfig {
    match config.dbs.get(i) {
        Some(DbEntry::Single(db)) => db,
        other => panic!("dbs[{i}] is not a single database: {other:#?}"),
    }
}

/// The S3 settings of the `i`th database.
pub(crate) fn s3(config: &Config, i: usize) -> &S3Config {
    match &db(config, i).replica.backend {
        BackendConfig::S3(s3) => s3,
        other => panic!("dbs[{i}] is not an s3 replica: {other:#?}"),
    }
}

/// A configuration with one database whose replica mapping is `replica`
/// (YAML lines indented by six spaces are added by this function).
pub(crate) fn with_replica(globals: &str, replica: &str) -> String {
    let mut text = String::from(globals);
    text.push_str("dbs:\n  - path: /data/app.db\n    replica:\n");
    for line in replica.lines() {
        text.push_str("      ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The warnings of a parsed configuration, as displayed.
pub(crate) fn warnings(config: &Config) -> Vec<String> {
    config.warnings.iter().map(ToString::to_string).collect()
}

/// The replica mapping of the one database in [`with_db`] (two lines).
pub(crate) const FILE_REPLICA: &str = "    replica:\n      path: /backups/app\n";

/// One database with a file replica, after `globals`.
pub(crate) fn with_db(globals: &str) -> String {
    format!("{globals}dbs:\n  - path: /data/app.db\n{FILE_REPLICA}")
}
