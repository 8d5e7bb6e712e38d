//! Directory entries (`dir` + `pattern` [+ `recursive`]): finding the SQLite
//! databases in a directory and giving each its own replica path and
//! metadata directory (CLI_CONFIG.md §3.3, REPLICA_LAYOUT.md §8).

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::ReplicaConfig;
use super::error::ConfigError;
use super::model::{DbConfig, META_DIR_SUFFIX, default_meta_path};

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A `dir` entry: every file below `dir` whose name matches `pattern` and
/// that starts with the SQLite header is a database.
#[derive(Debug, Clone, PartialEq)]
pub struct DirConfig {
    /// Absolute directory to scan.
    pub dir: PathBuf,
    /// Glob on file names (Go `filepath.Match` syntax: `*`, `?`, `[a-z]`,
    /// `[^…]`, `\` escapes).
    pub pattern: String,
    /// Scan subdirectories too.
    pub recursive: bool,
    /// Watch the directory for databases being created or removed.
    pub watch: bool,
    /// Where each database's metadata directory goes.
    pub meta: DirMeta,
    /// Settings shared by every database found; `path` is the directory and
    /// the replica is the directory's (before the per-database suffix).
    template: DbConfig,
}

/// Metadata directories of the databases of a `dir` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirMeta {
    /// Next to each database: `<dir>/.<name>-litestream`.
    Beside,
    /// `meta-path: <base>`: `<base>/<relative dir>/.<name>-litestream`.
    Path(PathBuf),
    /// `meta-dir: <base>`: `<base>/<relative path>-litestream`.
    Dir(PathBuf),
}

impl DirConfig {
    pub(crate) fn new(
        dir: PathBuf,
        pattern: String,
        recursive: bool,
        watch: bool,
        meta: DirMeta,
        template: DbConfig,
    ) -> Self {
        Self {
            dir,
            pattern,
            recursive,
            watch,
            meta,
            template,
        }
    }

    /// The replica shared by the databases, before each database's relative
    /// path is appended.
    pub fn replica(&self) -> &ReplicaConfig {
        &self.template.replica
    }

    /// The databases in the directory now, in path order. Without `watch`,
    /// finding none is an error.
    pub fn scan(&self) -> Result<Vec<DbConfig>, ConfigError> {
        let meta = fs::metadata(&self.dir).map_err(|source| ConfigError::ScanDirectory {
            dir: self.dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(ConfigError::ScanDirectory {
                dir: self.dir.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let mut found = Vec::new();
        self.walk(&self.dir, &mut found)?;
        if found.is_empty() && !self.watch {
            return Err(ConfigError::NoDatabases {
                dir: self.dir.clone(),
                pattern: self.pattern.clone(),
            });
        }
        let dbs: Vec<DbConfig> = found.iter().filter_map(|p| self.database(p)).collect();
        super::model::check_meta_paths(&dbs)?;
        Ok(dbs)
    }

    fn walk(&self, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
        let scan_error = |source| ConfigError::ScanDirectory {
            dir: dir.to_path_buf(),
            source,
        };
        let mut entries = fs::read_dir(dir)
            .map_err(scan_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(scan_error)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            // Symbolic links are not followed into directories (as Go's Walk).
            let kind = entry.file_type().map_err(scan_error)?;
            if kind.is_dir() {
                if self.recursive {
                    self.walk(&path, found)?;
                }
            } else if self.name_matches(&path) && is_sqlite_database(&path) {
                found.push(path);
            }
        }
        Ok(())
    }

    fn name_matches(&self, path: &Path) -> bool {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| glob_match(&self.pattern, name))
    }

    /// Whether `path` belongs to this entry: below `dir` (directly, unless
    /// recursive), its name matches, and it starts with the SQLite header.
    /// For a directory watcher deciding about a new file.
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return false;
        };
        let depth = rel.components().count();
        depth >= 1
            && (self.recursive || depth == 1)
            && self.name_matches(path)
            && is_sqlite_database(path)
    }

    /// The configuration of the database at `path` below `dir`, or `None`
    /// when `path` is not below `dir`.
    pub fn database(&self, path: &Path) -> Option<DbConfig> {
        let rel = path.strip_prefix(&self.dir).ok()?;
        if rel.as_os_str().is_empty()
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let rel_slash: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let rel_slash = rel_slash.join("/");
        let name = rel.file_name()?.to_string_lossy();
        let meta_path = match &self.meta {
            DirMeta::Beside => default_meta_path(path),
            DirMeta::Path(base) => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                base.join(parent).join(format!(".{name}{META_DIR_SUFFIX}"))
            }
            DirMeta::Dir(base) => {
                let mut leaf = rel.as_os_str().to_owned();
                leaf.push(META_DIR_SUFFIX);
                base.join(leaf)
            }
        };
        let mut db = self.template.clone();
        db.path = path.to_path_buf();
        db.meta_path = meta_path;
        db.replica.backend = self.template.replica.backend.with_relative_path(&rel_slash);
        Some(db)
    }
}

/// Whether the file at `path` starts with the 16-byte SQLite header.
pub fn is_sqlite_database(path: &Path) -> bool {
    let mut header = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header == SQLITE_HEADER)
}

/// One element of a file-name pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
    Class {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Checks a pattern; the error says what is malformed.
pub(crate) fn validate_pattern(pattern: &str) -> Result<(), String> {
    tokenize(pattern).map(|_| ())
}

fn tokenize(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    let bad = |why: &str| format!("invalid pattern {pattern:?}: {why}");
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::Any),
            '\\' => out.push(Tok::Lit(
                chars.next().ok_or_else(|| bad("trailing backslash"))?,
            )),
            '[' => {
                let negate = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars).map_err(&bad)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars).map_err(&bad)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                out.push(Tok::Class { negate, ranges });
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// One character of a `[...]` class, with `\` escapes.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    match chars.next() {
        None => Err("unclosed ["),
        Some('\\') => chars.next().ok_or("trailing backslash"),
        Some('-' | ']') => Err("empty range or misplaced - or ] in [...]"),
        Some(c) => Ok(c),
    }
}

/// Go `filepath.Match` of `pattern` against a file name (no separators).
/// A malformed pattern matches nothing (patterns are validated at load).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let Ok(toks) = tokenize(pattern) else {
        return false;
    };
    let name: Vec<char> = name.chars().collect();
    matches_from(&toks, &name)
}

fn matches_from(toks: &[Tok], name: &[char]) -> bool {
    match toks.split_first() {
        None => name.is_empty(),
        Some((Tok::Star, rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != '/')
            .any(|i| matches_from(rest, &name[i..])),
        Some((tok, rest)) => match name.split_first() {
            None => false,
            Some((&c, tail)) => {
                let ok = match tok {
                    Tok::Any => c != '/',
                    Tok::Lit(l) => *l == c,
                    Tok::Class { negate, ranges } => {
                        c != '/' && ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate
                    }
                    Tok::Star => false,
                };
                ok && matches_from(rest, tail)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::parse;
    use super::super::{BackendConfig, ConfigError, DbEntry, FileConfig};
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A directory with real databases `a.db`, `b.sqlite`, `sub/c.db`, `sub/deeper/d.db`,
    /// a text file `notes.db`, a short file `tiny.db` and a `-wal` file.
    fn fixture() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        fs::create_dir_all(root.join("sub/deeper"))?;
        for db in ["a.db", "b.sqlite", "sub/c.db", "sub/deeper/d.db"] {
            let conn = rusqlite::Connection::open(root.join(db))?;
            conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
        }
        fs::write(root.join("notes.db"), "just some text that is long enough")?;
        fs::write(root.join("tiny.db"), "SQLite")?;
        fs::write(root.join("a.db-wal"), SQLITE_HEADER)?;
        Ok(dir)
    }

    fn dir_entry(root: &Path, extra: &str, replica: &str) -> Result<DirConfig, ConfigError> {
        let text = format!(
            "dbs:\n  - dir: {}\n    pattern: \"*.db\"\n{extra}    replica:\n      {replica}\n",
            root.display()
        );
        match parse(&text)?.dbs.into_iter().next() {
            Some(DbEntry::Directory(d)) => Ok(d),
            other => panic!("not a directory entry: {other:?}"),
        }
    }

    fn paths(dbs: &[DbConfig], root: &Path) -> Vec<String> {
        dbs.iter()
            .map(|d| {
                d.path
                    .strip_prefix(root)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn the_header_decides_what_is_a_database() -> TestResult {
        let dir = fixture()?;
        assert!(is_sqlite_database(&dir.path().join("a.db")));
        assert!(!is_sqlite_database(&dir.path().join("notes.db")));
        assert!(!is_sqlite_database(&dir.path().join("tiny.db")));
        assert!(!is_sqlite_database(&dir.path().join("missing.db")));
        Ok(())
    }

    #[test]
    fn scanning_finds_matching_databases_only() -> TestResult {
        let dir = fixture()?;
        let root = dir.path();
        let flat = dir_entry(root, "", "path: /backups")?.scan()?;
        assert_eq!(paths(&flat, root), vec!["a.db"]);
        let deep = dir_entry(root, "    recursive: true\n", "path: /backups")?.scan()?;
        assert_eq!(
            paths(&deep, root),
            vec!["a.db", "sub/c.db", "sub/deeper/d.db"]
        );
        Ok(())
    }

    #[test]
    fn each_database_gets_its_own_replica_path() -> TestResult {
        let dir = fixture()?;
        let root = dir.path();
        let dbs = dir_entry(root, "    recursive: true\n", "path: /backups")?.scan()?;
        let backends: Vec<&BackendConfig> = dbs.iter().map(|d| &d.replica.backend).collect();
        assert_eq!(
            backends,
            vec![
                &BackendConfig::File(FileConfig {
                    path: "/backups/a.db".into()
                }),
                &BackendConfig::File(FileConfig {
                    path: "/backups/sub/c.db".into()
                }),
                &BackendConfig::File(FileConfig {
                    path: "/backups/sub/deeper/d.db".into()
                }),
            ]
        );
        let s3_paths = |url: &str| -> Result<Vec<String>, Box<dyn std::error::Error>> {
            Ok(
                dir_entry(root, "    recursive: true\n", &format!("url: {url}"))?
                    .scan()?
                    .iter()
                    .map(|d| match &d.replica.backend {
                        BackendConfig::S3(s) => s.path.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect(),
            )
        };
        assert_eq!(
            s3_paths("s3://bucket/tenants")?,
            vec![
                "tenants/a.db",
                "tenants/sub/c.db",
                "tenants/sub/deeper/d.db"
            ]
        );
        assert_eq!(
            s3_paths("s3://bucket")?,
            vec!["a.db", "sub/c.db", "sub/deeper/d.db"]
        );
        Ok(())
    }

    #[test]
    fn metadata_directories_per_database() -> TestResult {
        let dir = fixture()?;
        let root = dir.path();
        let metas = |extra: &str| -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
            let extra = format!("    recursive: true\n{extra}");
            Ok(dir_entry(root, &extra, "path: /b")?
                .scan()?
                .into_iter()
                .map(|d| d.meta_path)
                .collect())
        };
        assert_eq!(
            metas("")?,
            vec![
                root.join(".a.db-litestream"),
                root.join("sub/.c.db-litestream"),
                root.join("sub/deeper/.d.db-litestream"),
            ]
        );
        assert_eq!(
            metas("    meta-path: /meta\n")?,
            vec![
                PathBuf::from("/meta/.a.db-litestream"),
                PathBuf::from("/meta/sub/.c.db-litestream"),
                PathBuf::from("/meta/sub/deeper/.d.db-litestream"),
            ]
        );
        assert_eq!(
            metas("    meta-dir: /meta\n")?,
            vec![
                PathBuf::from("/meta/a.db-litestream"),
                PathBuf::from("/meta/sub/c.db-litestream"),
                PathBuf::from("/meta/sub/deeper/d.db-litestream"),
            ]
        );
        Ok(())
    }

    #[test]
    fn database_settings_are_copied_to_each_database() -> TestResult {
        let dir = fixture()?;
        let d = dir_entry(
            dir.path(),
            "    busy-timeout: 9s\n",
            "path: /b\n      sync-interval: 7s",
        )?;
        let dbs = d.scan()?;
        assert_eq!(dbs[0].busy_timeout, std::time::Duration::from_secs(9));
        assert_eq!(
            dbs[0].replica.sync_interval,
            std::time::Duration::from_secs(7)
        );
        assert_eq!(
            d.replica().backend,
            BackendConfig::File(FileConfig { path: "/b".into() })
        );
        Ok(())
    }

    #[test]
    fn an_empty_match_fails_unless_watching() -> TestResult {
        let dir = tempfile::tempdir()?;
        let err = dir_entry(dir.path(), "", "path: /b")?
            .scan()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            format!(
                "no SQLite databases found in directory {} with pattern \"*.db\"; check dir and pattern, \
                 or set watch: true to wait for databases to appear",
                dir.path().display()
            )
        );
        assert!(
            dir_entry(dir.path(), "    watch: true\n", "path: /b")?
                .scan()?
                .is_empty()
        );
        let missing = dir.path().join("missing");
        assert!(matches!(
            dir_entry(&missing, "    watch: true\n", "path: /b")?.scan(),
            Err(ConfigError::ScanDirectory { .. })
        ));
        Ok(())
    }

    #[test]
    fn matches_decides_about_new_files() -> TestResult {
        let dir = fixture()?;
        let root = dir.path();
        let flat = dir_entry(root, "", "path: /b")?;
        assert!(flat.matches(&root.join("a.db")));
        assert!(!flat.matches(&root.join("sub/c.db")));
        assert!(!flat.matches(&root.join("notes.db")));
        assert!(!flat.matches(&root.join("b.sqlite")));
        assert!(!flat.matches(Path::new("/elsewhere/a.db")));
        let deep = dir_entry(root, "    recursive: true\n", "path: /b")?;
        assert!(deep.matches(&root.join("sub/c.db")));
        assert_eq!(deep.database(Path::new("/elsewhere/a.db")), None);
        Ok(())
    }

    #[test]
    fn a_database_listed_twice_is_a_collision() -> TestResult {
        let dir = fixture()?;
        let root = dir.path();
        let text = format!(
            "dbs:\n  - path: {0}/a.db\n    replica: {{path: /b1}}\n  - dir: {0}\n    pattern: \"*.db\"\n    replica: {{path: /b2}}\n",
            root.display()
        );
        let err = parse(&text)?
            .databases()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let a = root.join("a.db");
        assert_eq!(
            err,
            format!(
                "databases {0} and {0} would share the metadata directory {1}, which corrupts replication state; \
                 give them distinct meta-path or meta-dir settings",
                a.display(),
                root.join(".a.db-litestream").display()
            )
        );
        Ok(())
    }

    #[test]
    fn glob_follows_go_filepath_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.db", "app.db", true),
            ("*.db", "app.db-wal", false),
            ("*.db", ".hidden.db", true),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[abc].db", "b.db", true),
            ("[a-c].db", "d.db", false),
            ("[^a-c].db", "d.db", true),
            ("[^a-c].db", "a.db", false),
            ("\\*.db", "*.db", true),
            ("\\*.db", "x.db", false),
            ("tenant-*.sqlite", "tenant-42.sqlite", true),
            ("*-*.db", "a-b-c.db", true),
            ("ü*", "über.db", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), *want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for p in ["[", "[]", "[a", "a\\", "[-a]", "[a-]", "[]a]"] {
            assert!(validate_pattern(p).is_err(), "{p}");
        }
        for p in ["*.db", "[a-z]*", "x\\[y"] {
            assert!(validate_pattern(p).is_ok(), "{p}");
        }
    }
}
