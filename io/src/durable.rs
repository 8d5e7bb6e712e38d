//! Crash-safe file replacement.
//!
//! Every file freshet creates for keeps — a staged L0 file, a replica file on
//! the file backend, a restored database — goes through [`write_atomic`], so
//! a reader (or freshet after a crash) sees the old state or the new one,
//! never a torn file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The temporary name for `path`: `<path>.tmp` in the same directory (so the
/// rename cannot cross file systems). Litestream uses the same suffix, and
/// leftover `*.tmp` files are cleaned up on start (REPLICATION.md §9.1).
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Options for [`write_atomic`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AtomicOptions {
    /// File mode bits for the new file (default 0600).
    pub mode: Option<u32>,
    /// Fail instead of replacing an existing file at the final path.
    pub no_replace: bool,
}

/// Writes `path` atomically: `fill` writes the content into `<path>.tmp`,
/// then the file is fsynced (its data must be on disk before the rename makes
/// it visible), renamed over `path`, and the directory is fsynced (so the
/// rename itself survives a crash). On any error the temp file is removed and
/// `path` is untouched.
///
/// With `no_replace`, an existing `path` is an error (`AlreadyExists`)
/// checked both before writing and at the rename (via a hard link, which
/// fails if the target exists), so a user's file is never overwritten.
pub fn write_atomic<T>(
    path: &Path,
    opts: AtomicOptions,
    fill: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    if opts.no_replace && fs::symlink_metadata(path).is_ok() {
        return Err(already_exists(path));
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = create_file(&tmp, opts.mode.unwrap_or(0o600))?;
        let value = fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        if opts.no_replace {
            // link(2) refuses to replace an existing file; rename(2) would not.
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    already_exists(path)
                } else {
                    e
                }
            })?;
            fs::remove_file(&tmp)?;
        } else {
            fs::rename(&tmp, path)?;
        }
        sync_parent_dir(path)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs the directory holding `path`, making a rename or unlink in it
/// durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents with `mode` (default 0700) where missing.
pub fn create_dir_all(dir: &Path, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode.unwrap_or(0o700))
        .create(dir)
}

fn create_file(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        ),
    )
}

/// Removes every `*.tmp` file below `dir` (recursively), as left behind by a
/// crash in [`write_atomic`]. A missing `dir` is not an error. Returns how
/// many files were removed.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += remove_temp_files(&path)?;
        } else if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writes_atomically_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ltx");
        write_atomic(&path, AtomicOptions::default(), |f| f.write_all(b"one")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");

        let err = write_atomic(&path, AtomicOptions::default(), |f| {
            f.write_all(b"partial")?;
            Err::<(), _>(io::Error::other("disk on fire"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one", "the old content survives");
        assert!(!temp_path(&path).exists(), "the temp file is removed");
    }

    #[test]
    fn no_replace_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.db");
        fs::write(&path, b"precious").unwrap();
        let opts = AtomicOptions {
            no_replace: true,
            ..Default::default()
        };
        let err = write_atomic(&path, opts, |f| f.write_all(b"restored")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"precious");

        // The file appears while we write: the final link still refuses.
        let late = dir.path().join("late.db");
        let err = write_atomic(&late, opts, |f| {
            fs::write(&late, b"someone else's")?;
            f.write_all(b"restored")
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&late).unwrap(), b"someone else's");
        assert!(!temp_path(&late).exists());
    }

    #[test]
    fn removes_nested_temp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("ltx/0");
        create_dir_all(&sub, None).unwrap();
        fs::write(sub.join("0000000000000001-0000000000000001.ltx"), b"x").unwrap();
        fs::write(sub.join("0000000000000002-0000000000000002.ltx.tmp"), b"x").unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 1);
        assert_eq!(remove_temp_files(&dir.path().join("missing")).unwrap(), 0);
        assert!(sub.join("0000000000000001-0000000000000001.ltx").exists());
    }
}
