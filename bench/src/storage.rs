//! Where replicas go (a directory, or the local S3 server through the
//! counting proxy), the generated `litestream.yml` that both tools read, and
//! what storage saw during a run.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::s3::{self, CountingProxy, S3Server, Traffic};

/// A storage backend kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendKind {
    /// A local directory (`file://`).
    File,
    /// S3 on a local s3s-fs server.
    S3,
}

impl BackendKind {
    /// Lower-case name for reports and file names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::S3 => "s3",
        }
    }
}

/// A backend ready for runs.
pub(crate) enum Storage {
    /// Replicas are directories under `root`.
    File {
        /// Parent of every replica directory.
        root: PathBuf,
    },
    /// Replicas are key prefixes in [`s3::BUCKET`].
    S3 {
        /// The server (its data directory is read directly).
        server: S3Server,
        /// The proxy the replicators talk to.
        proxy: CountingProxy,
    },
}

/// Settings of the generated configuration shared by every run.
#[derive(Clone, Debug)]
pub(crate) struct ConfigKnobs {
    /// `monitor-interval` of each database.
    pub(crate) monitor_interval: String,
    /// `sync-interval` of each replica.
    pub(crate) sync_interval: String,
}

impl Storage {
    /// The kind of this storage.
    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Storage::File { .. } => BackendKind::File,
            Storage::S3 { .. } => BackendKind::S3,
        }
    }

    /// The on-disk directory holding replica `key` (for S3: inside the
    /// server's data directory, so reading it sends no request).
    pub(crate) fn replica_dir(&self, key: &str) -> PathBuf {
        match self {
            Storage::File { root } => root.join(key),
            Storage::S3 { server, .. } => server.data.join(s3::BUCKET).join(key),
        }
    }

    /// The directory of level `level` of replica `key`: `ltx/<decimal>` on
    /// the file backend, `<%04x>` on S3 (REPLICA_LAYOUT.md §3).
    pub(crate) fn level_dir(&self, key: &str, level: u8) -> PathBuf {
        match self {
            Storage::File { .. } => self.replica_dir(key).join("ltx").join(level.to_string()),
            Storage::S3 { .. } => self.replica_dir(key).join(format!("{level:04x}")),
        }
    }

    /// Writes a `litestream.yml` replicating each `(db, key)` pair, read by
    /// both tools alike (CLI_CONFIG.md §3).
    pub(crate) fn write_config(
        &self,
        path: &Path,
        dbs: &[(PathBuf, String)],
        knobs: &ConfigKnobs,
    ) -> Result<()> {
        let mut y = String::from("logging:\n  level: info\ndbs:\n");
        for (db, key) in dbs {
            let _ = writeln!(y, "  - path: {}", db.display());
            let _ = writeln!(y, "    monitor-interval: {}", knobs.monitor_interval);
            let _ = writeln!(y, "    replica:");
            match self {
                Storage::File { root } => {
                    let _ = writeln!(y, "      type: file");
                    let _ = writeln!(y, "      path: {}", root.join(key).display());
                }
                Storage::S3 { proxy, .. } => {
                    let _ = writeln!(y, "      type: s3");
                    let _ = writeln!(y, "      bucket: {}", s3::BUCKET);
                    let _ = writeln!(y, "      path: {key}");
                    let _ = writeln!(y, "      endpoint: http://127.0.0.1:{}", proxy.port);
                    let _ = writeln!(y, "      region: us-east-1");
                    let _ = writeln!(y, "      force-path-style: true");
                    let _ = writeln!(y, "      access-key-id: {}", s3::ACCESS_KEY);
                    let _ = writeln!(y, "      secret-access-key: {}", s3::SECRET_KEY);
                }
            }
            let _ = writeln!(y, "      sync-interval: {}", knobs.sync_interval);
        }
        fs::write(path, y).with_context(|| format!("write {}", path.display()))
    }

    /// What storage has seen so far: proxy counters for S3; for the file
    /// backend, the replica directories' file count (as requests) and bytes.
    pub(crate) fn traffic(&self, keys: &[String]) -> Traffic {
        match self {
            Storage::S3 { proxy, .. } => proxy.traffic(),
            Storage::File { .. } => {
                let mut t = Traffic::default();
                for key in keys {
                    let (files, bytes) = dir_usage(&self.replica_dir(key));
                    t.requests += files;
                    t.bytes_up += bytes;
                }
                t
            }
        }
    }

    /// Deletes replica `key`.
    pub(crate) fn remove(&self, key: &str) {
        let _ = fs::remove_dir_all(self.replica_dir(key));
    }
}

/// Files and bytes under `dir`, recursively.
pub(crate) fn dir_usage(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                bytes += m.len();
            }
        }
    }
    (files, bytes)
}
