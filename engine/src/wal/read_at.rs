//! Positional reads: the only I/O the WAL reader needs.
//!
//! The reader never seeks and never owns a file position, so one WAL handle
//! can be shared by the monitor, the continuity check and the checkpoint code
//! without coordination. Every read lands in a buffer the caller owns, which
//! is what an io_uring engine needs (registered, pinned buffers) and what keeps
//! the scan free of per-frame allocations.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A source of bytes addressed by offset, such as a `-wal` file.
///
/// Two required methods, like `pread(2)` and `fstat(2)`; the rest is
/// provided. Implemented for [`File`], for byte slices and for `Vec<u8>` (tests
/// and fuzzing); an io_uring-backed file implements it too.
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
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
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
    fn file_reads_at_offsets() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(ReadAt::read_full_at(&f, &mut buf, 6).unwrap(), 4);
        assert_eq!(&buf[..4], b"6789");
        assert_eq!(ReadAt::size(&f).unwrap(), 10);
    }
}
