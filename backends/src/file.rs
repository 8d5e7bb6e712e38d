//! The `file` backend: a replica in a local directory (REPLICA_LAYOUT.md §2):
//! `<root>/ltx/<level in decimal>/<min>-<max>.ltx`, each file's mtime set to
//! its LTX header timestamp.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use freshet_io::durable;
use ltx::TxId;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{ByteRange, ByteStream, Error, FileId, FileInfo, ReplicaClient, Result};

/// A replica kept in a local directory.
#[derive(Clone, Debug)]
pub struct FileReplica {
    root: PathBuf,
    file_mode: u32,
    dir_mode: u32,
}

impl FileReplica {
    /// A replica rooted at `root` (made absolute by the caller). Files are
    /// created 0600 and directories 0700 unless set otherwise.
    pub fn new(root: impl Into<PathBuf>) -> FileReplica {
        FileReplica {
            root: root.into(),
            file_mode: 0o600,
            dir_mode: 0o700,
        }
    }

    /// Uses the modes of the replicated database and its directory, as
    /// Litestream does.
    pub fn with_modes(mut self, file_mode: u32, dir_mode: u32) -> FileReplica {
        self.file_mode = file_mode & 0o7777;
        self.dir_mode = dir_mode & 0o7777;
        self
    }

    /// The replica's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `level`.
    pub fn level_dir(&self, level: u8) -> PathBuf {
        self.root.join("ltx").join(level.to_string())
    }

    /// The path of a file.
    pub fn path(&self, id: FileId) -> PathBuf {
        self.level_dir(id.level).join(id.file_name())
    }
}

#[async_trait]
impl ReplicaClient for FileReplica {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn list(&self, level: u8, seek: TxId) -> Result<Vec<FileInfo>> {
        let dir = self.level_dir(level);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut files = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io("list", &dir, e))?
        {
            let name = entry.file_name();
            let Some((min, max)) = name.to_str().and_then(ltx::parse_file_name) else {
                continue;
            };
            if min < seek {
                continue;
            }
            let meta = match entry.metadata().await {
                Ok(m) => m,
                // Deleted between the listing and the stat: not there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", entry.path(), e)),
            };
            if !meta.is_file() {
                continue;
            }
            let created_at = meta
                .modified()
                .map_err(|e| Error::io("stat", entry.path(), e))?;
            files.push(FileInfo {
                id: FileId::new(level, min, max),
                size: meta.len(),
                created_at,
            });
        }
        files.sort_by_key(|f| (f.id.min_txid, f.id.max_txid));
        Ok(files)
    }

    async fn open(&self, id: FileId, range: ByteRange) -> Result<ByteStream> {
        let path = self.path(id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: path.display().to_string(),
                });
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        if range.offset > 0 {
            file.seek(SeekFrom::Start(range.offset))
                .await
                .map_err(|e| Error::io("seek", &path, e))?;
        }
        Ok(match range.len {
            Some(len) => Box::pin(file.take(len)),
            None => Box::pin(file),
        })
    }

    async fn write(&self, id: FileId, timestamp_ms: i64, mut body: ByteStream) -> Result<FileInfo> {
        let dir = self.level_dir(id.level);
        let path = self.path(id);
        let dir_mode = self.dir_mode;
        let d = dir.clone();
        run_blocking(move || durable::create_dir_all(&d, Some(dir_mode)))
            .await
            .map_err(|e| Error::io("create directory", &dir, e))?;

        let tmp = durable::temp_path(&path);
        let created_at = crate::time_from_millis(timestamp_ms);
        let result = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(self.file_mode)
                .open(&tmp)
                .await
                .map_err(|e| Error::io("create", &tmp, e))?;
            // Large reads: every read of a local file and every write to
            // `file` is a trip through tokio's blocking pool, and
            // `tokio::io::copy` moves 8 KiB at a time.
            let mut body = tokio::io::BufReader::with_capacity(COPY_CHUNK, &mut body);
            let size = tokio::io::copy_buf(&mut body, &mut file)
                .await
                .map_err(|e| Error::io("write", &tmp, e))?;
            file.sync_all()
                .await
                .map_err(|e| Error::io("fsync", &tmp, e))?;
            let file = file.into_std().await;
            // The mtime is the file's creation time for listings (§2 step 6);
            // set it before the rename so the file appears complete.
            let times = std::fs::FileTimes::new()
                .set_accessed(created_at)
                .set_modified(created_at);
            file.set_times(times)
                .map_err(|e| Error::io("set times", &tmp, e))?;
            drop(file);
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Error::io("rename", &path, e))?;
            let p = path.clone();
            run_blocking(move || durable::sync_parent_dir(&p))
                .await
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
            Ok(size)
        }
        .await;
        match result {
            Ok(size) => Ok(FileInfo {
                id,
                size,
                created_at,
            }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn delete(&self, ids: &[FileId]) -> Result<()> {
        for &id in ids {
            let path = self.path(id);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", path, e)),
            }
        }
        Ok(())
    }

    async fn delete_all(&self) -> Result<()> {
        match tokio::fs::remove_dir_all(&self.root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", self.root.clone(), e)),
        }
    }
}

/// Bytes moved per read and write when copying a body into a file.
const COPY_CHUNK: usize = 512 * 1024;

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn id(level: u8, min: u64, max: u64) -> FileId {
        FileId::new(level, TxId::new(min), TxId::new(max))
    }

    async fn read_all(mut s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn write_list_open_delete() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileReplica::new(dir.path().join("replica"));
        assert!(
            r.list(0, TxId::ZERO).await.unwrap().is_empty(),
            "missing level is empty"
        );

        let ts = 1_700_000_000_123;
        for (min, max) in [(2, 2), (1, 1), (3, 3)] {
            let body: ByteStream = Box::pin(std::io::Cursor::new(vec![min as u8; 200]));
            let info = r.write(id(0, min, max), ts, body).await.unwrap();
            assert_eq!(info.size, 200);
        }
        std::fs::write(r.level_dir(0).join("junk.txt"), b"x").unwrap();
        std::fs::write(
            r.level_dir(0)
                .join("0000000000000009-0000000000000009.ltx.tmp"),
            b"x",
        )
        .unwrap();

        let files = r.list(0, TxId::new(2)).await.unwrap();
        let ids: Vec<_> = files.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![id(0, 2, 2), id(0, 3, 3)]);
        assert_eq!(
            files[0].created_at,
            crate::time_from_millis(ts),
            "mtime is the header timestamp"
        );
        assert!(
            dir.path()
                .join("replica/ltx/0/0000000000000001-0000000000000001.ltx")
                .exists()
        );

        let part = read_all(
            r.open(
                id(0, 3, 3),
                ByteRange {
                    offset: 10,
                    len: Some(5),
                },
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(part, vec![3u8; 5]);
        assert_eq!(
            read_all(r.open(id(0, 1, 1), ByteRange::ALL).await.unwrap())
                .await
                .len(),
            200
        );
        let Err(missing) = r.open(id(0, 7, 7), ByteRange::ALL).await else {
            panic!("opened a missing file")
        };
        assert!(missing.is_not_found(), "{missing}");

        r.delete(&[id(0, 1, 1), id(0, 8, 8)]).await.unwrap();
        assert_eq!(r.list(0, TxId::ZERO).await.unwrap().len(), 2);
        r.delete_all().await.unwrap();
        assert!(r.list(0, TxId::ZERO).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_upload_leaves_nothing_visible() {
        struct Failing;
        impl tokio::io::AsyncRead for Failing {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::Error::other("source vanished")))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let r = FileReplica::new(dir.path());
        assert!(r.write(id(0, 1, 1), 0, Box::pin(Failing)).await.is_err());
        assert!(r.list(0, TxId::ZERO).await.unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(r.level_dir(0)).unwrap().count(),
            0,
            "no temp file left"
        );
    }
}
