//! Sequential file writing with positional writes: through the thread's
//! io_uring (several 1 MiB writes in flight while the caller produces the
//! next bytes) or `pwrite(2)` from one buffer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::mode::{Engine, engine};
use crate::ring::{self, BUF_SIZE, RingWriter};

/// Writes a file front to back from `offset` on, like a `BufWriter` over a
/// positioned file but without moving the file's own position.
///
/// [`io::Write::flush`] (and [`SeqWriter::finish`]) waits until every byte
/// is in the kernel; durability is still the caller's fsync. After a failed
/// write every later call fails: the file must be written again. Dropping
/// the writer without flushing discards what was buffered but not yet
/// submitted, and waits for the writes in flight.
pub struct SeqWriter<'f> {
    inner: Inner<'f>,
}

enum Inner<'f> {
    Ring(Box<RingWriter<'f>>),
    Sync {
        file: &'f File,
        pos: u64,
        buf: Vec<u8>,
        failed: bool,
    },
}

impl std::fmt::Debug for SeqWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Ring(_) => "uring",
            Inner::Sync { .. } => "sync",
        };
        f.debug_struct("SeqWriter").field("engine", &kind).finish()
    }
}

impl<'f> SeqWriter<'f> {
    /// A writer starting at `offset`, on the process's [`engine`].
    pub fn new(file: &'f File, offset: u64) -> io::Result<SeqWriter<'f>> {
        Ok(SeqWriter::with_engine(engine()?, file, offset))
    }

    /// A writer on an explicit engine. Falls back to `pwrite(2)` when this
    /// thread cannot set up a ring.
    pub fn with_engine(engine: Engine, file: &'f File, offset: u64) -> SeqWriter<'f> {
        if engine == Engine::Uring {
            match ring::take_local() {
                Ok(r) => {
                    return SeqWriter {
                        inner: Inner::Ring(Box::new(RingWriter::new(r, file, offset))),
                    };
                }
                Err(e) => tracing::debug!("cannot set up an io_uring ({e}); writing with pwrite"),
            }
        }
        SeqWriter {
            inner: Inner::Sync {
                file,
                pos: offset,
                buf: Vec::with_capacity(BUF_SIZE),
                failed: false,
            },
        }
    }

    /// Whether writes go through io_uring.
    pub fn is_uring(&self) -> bool {
        matches!(self.inner, Inner::Ring(_))
    }

    /// Writes out everything and waits for it (the same as `flush`).
    pub fn finish(mut self) -> io::Result<()> {
        io::Write::flush(&mut self)
    }
}

impl io::Write for SeqWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Ring(w) => w.write(data)?,
            Inner::Sync {
                file,
                pos,
                buf,
                failed,
            } => {
                if *failed {
                    return Err(io::Error::other(
                        "an earlier write failed; the file must be written again",
                    ));
                }
                let mut data = data;
                while !data.is_empty() {
                    let n = (BUF_SIZE - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if buf.len() == BUF_SIZE {
                        sync_flush(file, pos, buf, failed)?;
                    }
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Ring(w) => w.flush(),
            Inner::Sync {
                file,
                pos,
                buf,
                failed,
            } => sync_flush(file, pos, buf, failed),
        }
    }
}

fn sync_flush(file: &File, pos: &mut u64, buf: &mut Vec<u8>, failed: &mut bool) -> io::Result<()> {
    if let Err(e) = file.write_all_at(buf, *pos) {
        *failed = true;
        return Err(e);
    }
    *pos += buf.len() as u64;
    buf.clear();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::mode::{IoMode, select};
    use crate::ring::read_full;
    use std::io::Write;

    fn engines() -> Vec<Engine> {
        let mut v = vec![Engine::Sync];
        if let Ok(e) = select(IoMode::Uring) {
            v.push(e);
        }
        v
    }

    #[test]
    fn writes_land_at_their_offsets_on_every_engine() {
        // 5.5 MiB in odd-sized pieces: crosses buffer boundaries and more
        // buffers than the ring has, so slots are reused.
        let data: Vec<u8> = (0..(5 << 20) + (1 << 19))
            .map(|i| (i % 251) as u8)
            .collect();
        for engine in engines() {
            let file = tempfile::tempfile().unwrap();
            file.write_all_at(b"HEAD", 0).unwrap();
            let mut w = SeqWriter::with_engine(engine, &file, 4);
            assert_eq!(w.is_uring(), engine == Engine::Uring);
            for piece in data.chunks(4099) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            let mut back = vec![0u8; data.len() + 4];
            assert_eq!(read_full(&file, &mut back, 0).unwrap(), data.len() + 4);
            assert_eq!(&back[..4], b"HEAD", "{engine:?}");
            assert!(back[4..] == data[..], "{engine:?}: content differs");
        }
    }

    #[test]
    fn a_failed_write_is_reported_and_sticks() {
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ro");
            std::fs::write(&path, b"x").unwrap();
            // A read-only descriptor: every write fails with EBADF.
            let file = File::open(&path).unwrap();
            let mut w = SeqWriter::with_engine(engine, &file, 0);
            let first = w
                .write_all(&vec![1u8; 3 << 20])
                .and_then(|()| w.flush())
                .unwrap_err();
            assert_eq!(
                first.raw_os_error(),
                Some(libc::EBADF),
                "{engine:?}: {first}"
            );
            assert!(w.write_all(b"more").and_then(|()| w.flush()).is_err());
        }
    }
}
