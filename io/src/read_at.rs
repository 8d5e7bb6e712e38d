//! Positional reads: the only I/O the WAL reader needs.
//!
//! A reader never seeks and never owns a file position, so one WAL handle
//! can be shared by the monitor, the continuity check and the checkpoint code
//! without coordination. Every read lands in a buffer the caller (or, for
//! [`ReadAt::read_chunks`] on a [`File`], this thread's io_uring pool) owns,
//! which keeps a scan free of per-frame allocations.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;

use crate::mode::{Engine, engine};
use crate::ring::{self, read_full};

/// A source of bytes addressed by offset, such as a `-wal` file.
///
/// Two required methods, like `pread(2)` and `fstat(2)`; the rest is
/// provided. Implemented for [`File`] (through io_uring when available, see
/// [`crate::mode`]), for byte slices and for `Vec<u8>` (tests and fuzzing).
///
/// `File` also has [`FileExt::read_at`]: with both traits in scope, call this
/// one as `ReadAt::read_at(&file, ..)`.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes starting at `offset`, returning how many
    /// were read; `0` means `offset` is at or past the end. May return fewer
    /// bytes than asked for even before the end, like `pread(2)`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Current length of the source in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Fills `buf` from `offset`, retrying short and interrupted reads, and
    /// returns how many bytes were available: `buf.len()` unless the source
    /// ended first. Reaching the end is not an error here because a WAL that
    /// ends mid-frame is a normal state (a writer is appending, REPLICATION.md
    /// §3 rule 2); the caller decides what a short count means.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            match self.read_at(&mut buf[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Reads consecutive chunks of `chunk` bytes from `offset` and calls `f`
    /// with each, in order, until `f` returns `Break` or a chunk comes back
    /// shorter than `chunk` (the end of the source; that short chunk, maybe
    /// empty, is still passed to `f`). `chunk` must be at most 1 MiB.
    ///
    /// The provided version reads one chunk at a time into `scratch`; a
    /// [`File`] keeps several chunks in flight through io_uring, so the
    /// kernel reads ahead while `f` works.
    fn read_chunks(
        &self,
        offset: u64,
        chunk: usize,
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        if scratch.len() < chunk {
            scratch.resize(chunk, 0);
        }
        let mut at = offset;
        loop {
            let n = self.read_full_at(&mut scratch[..chunk], at)?;
            if f(&scratch[..n]).is_break() || n < chunk {
                return Ok(());
            }
            at += chunk as u64;
        }
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_full(self, buf, offset)
    }

    fn read_chunks(
        &self,
        offset: u64,
        chunk: usize,
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        read_chunks_with(engine()?, self, offset, chunk, scratch, f)
    }
}

/// Chunks a file must extend past the starting offset before
/// [`read_chunks_with`] reads ahead through io_uring.
const READ_AHEAD_MIN: u64 = 3;

/// [`ReadAt::read_chunks`] on `file` with an explicit engine (the trait
/// method uses the process's [`engine`]).
pub fn read_chunks_with(
    engine: Engine,
    file: &File,
    offset: u64,
    chunk: usize,
    scratch: &mut Vec<u8>,
    f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<()> {
    // A short tail (the steady state: a few new frames) is one or two
    // reads; read-ahead pays off, and the thread's ring is worth its
    // memory, only for longer runs.
    let large = || {
        file.metadata()
            .is_ok_and(|m| m.len().saturating_sub(offset) >= READ_AHEAD_MIN * chunk as u64)
    };
    if engine == Engine::Uring && chunk <= ring::BUF_SIZE && large() {
        match ring::take_local() {
            Ok(mut r) => {
                let result = r.read_chunks(file, offset, chunk, f);
                ring::give_back(r);
                return result;
            }
            // An optimisation with a correct fallback: say so quietly.
            Err(e) => tracing::debug!("cannot set up an io_uring ({e}); reading with pread"),
        }
    }
    let mut at = offset;
    if scratch.len() < chunk {
        scratch.resize(chunk, 0);
    }
    loop {
        let n = read_full(file, &mut scratch[..chunk], at)?;
        if f(&scratch[..n]).is_break() || n < chunk {
            return Ok(());
        }
        at += chunk as u64;
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(avail) = self.get(start..) else {
            return Ok(0);
        };
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        self.as_slice().size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }

    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_full_at(buf, offset)
    }

    fn read_chunks(
        &self,
        offset: u64,
        chunk: usize,
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        (**self).read_chunks(offset, chunk, scratch, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Write;

    /// Hands out at most 3 bytes per call and fails every other call with
    /// `Interrupted`, to exercise the retry loop of `read_full_at`.
    struct Stingy {
        data: Vec<u8>,
        calls: Cell<u32>,
    }

    impl ReadAt for Stingy {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get().is_multiple_of(2) {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = buf.len().min(3);
            self.data.read_at(&mut buf[..n], offset)
        }

        fn size(&self) -> io::Result<u64> {
            self.data.size()
        }
    }

    #[test]
    fn slice_reads_clip_at_the_end() {
        let data: Vec<u8> = (0..10).collect();
        let mut buf = [0u8; 4];
        assert_eq!(data.read_at(&mut buf, 8).unwrap(), 2);
        assert_eq!(&buf[..2], &[8, 9]);
        assert_eq!(data.read_at(&mut buf, 10).unwrap(), 0);
        assert_eq!(data.read_at(&mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(data.size().unwrap(), 10);
    }

    #[test]
    fn read_full_at_retries_short_and_interrupted_reads() {
        let src = Stingy {
            data: (0..20).collect(),
            calls: Cell::new(0),
        };
        let mut buf = [0u8; 16];
        assert_eq!(src.read_full_at(&mut buf, 2).unwrap(), 16);
        assert_eq!(buf.to_vec(), (2..18).collect::<Vec<u8>>());
        let mut buf = [0u8; 16];
        assert_eq!(src.read_full_at(&mut buf, 10).unwrap(), 10);
        assert_eq!(buf[..10].to_vec(), (10..20).collect::<Vec<u8>>());
    }

    #[test]
    fn chunked_file_reads_agree_on_every_engine() {
        use crate::mode::{IoMode, select};
        let data: Vec<u8> = (0..(5 << 20) + 123).map(|i| (i % 241) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut engines = vec![Engine::Sync];
        engines.extend(select(IoMode::Uring).ok());
        for engine in engines {
            // From the start (read ahead on io_uring) and near the end (a
            // short tail: plain reads on every engine).
            for start in [0usize, data.len() - 1000] {
                let (mut got, mut calls) = (Vec::new(), 0);
                read_chunks_with(
                    engine,
                    &f,
                    start as u64,
                    1 << 20,
                    &mut Vec::new(),
                    &mut |c| {
                        calls += 1;
                        got.extend_from_slice(c);
                        ControlFlow::Continue(())
                    },
                )
                .unwrap();
                assert!(got == data[start..], "{engine:?} from {start}");
                assert_eq!(calls, (data.len() - start) / (1 << 20) + 1);
            }
            // The default (one chunk at a time) agrees on slices.
            let mut got = Vec::new();
            data.read_chunks(7, 4096, &mut Vec::new(), &mut |c| {
                got.extend_from_slice(c);
                ControlFlow::Continue(())
            })
            .unwrap();
            assert!(got == data[7..]);
        }
    }

    #[test]
    fn file_reads_at_offsets() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(ReadAt::read_full_at(&f, &mut buf, 6).unwrap(), 4);
        assert_eq!(&buf[..4], b"6789");
        assert_eq!(ReadAt::size(&f).unwrap(), 10);
    }
}
