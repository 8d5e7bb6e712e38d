//! Noticing that the database file was deleted, or replaced by another
//! file under the same name, while we hold the old one open. The old file
//! descriptor keeps reading the old inode, so without this check freshet
//! would go on replicating a database nobody can see any more.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::{DbError, Result};

/// What is at the database path now, compared with the file we opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Identity {
    /// The same file.
    Same,
    /// Another file (a new inode) has taken the name.
    Replaced,
    /// Nothing is there.
    Missing,
}

/// Compares the file at `path` with `opened` by device and inode.
pub(super) fn check(path: &Path, opened: &File) -> Result<Identity> {
    let ours = opened
        .metadata()
        .map_err(|e| DbError::io("stat", path, e))?;
    match std::fs::metadata(path) {
        Ok(now) if (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => Ok(Identity::Same),
        Ok(_) => Ok(Identity::Replaced),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Identity::Missing),
        Err(e) => Err(DbError::io("stat", path, e)),
    }
}
