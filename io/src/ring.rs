//! The blocking ring driver: batched positional reads into a pool of aligned
//! buffers, positional writes from them, and fsync, on one thread.
//!
//! Soundness rests on one rule: a buffer handed to the kernel stays allocated
//! and untouched until its completion has been reaped. The ring owns its
//! buffers (never the caller), counts the operations in flight, and waits for
//! all of them ([`Ring::settle`]) before any method returns, before a buffer
//! is reused, and when the ring is dropped. If waiting itself fails, the
//! buffers are leaked rather than freed: memory the kernel may still write
//! must never return to the allocator.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::buf::AlignedBuf;

/// Bytes per pooled buffer: 1 MiB, whole WAL frames of any page size fit.
pub const BUF_SIZE: usize = 1 << 20;

/// Buffers per ring, and so reads or writes in flight at once (4 MiB).
pub const DEPTH: usize = 4;

/// `user_data` of an fsync; buffer operations use their slot index.
const FSYNC: u64 = u64::MAX;

/// How a [`Ring`] is built.
#[derive(Clone, Copy, Debug)]
pub struct RingOptions {
    /// Buffers in the pool: the number of operations in flight.
    pub depth: usize,
    /// Size of each buffer (rounded up to 4 KiB, at most 1 GiB).
    pub buf_size: usize,
    /// Register the buffers with the kernel (`ReadFixed`/`WriteFixed`),
    /// saving the page pinning of each operation. Falls back to plain
    /// buffers when RLIMIT_MEMLOCK is too small.
    pub register: bool,
    /// Hand each operation to the kernel's worker threads
    /// (`IOSQE_ASYNC`) instead of trying it inline first, so copying
    /// page-cache data overlaps with our own work on the previous buffer.
    pub punt: bool,
}

impl Default for RingOptions {
    /// 4 × 1 MiB buffers, not registered (no consistent gain in
    /// docs/BENCHMARKS.md, and registration costs locked memory), not
    /// punted: the kernel copies cached data inline and hands reads that
    /// must wait for the disk to its workers by itself.
    fn default() -> RingOptions {
        RingOptions {
            depth: DEPTH,
            buf_size: BUF_SIZE,
            register: false,
            punt: false,
        }
    }
}

/// An io_uring instance with its buffer pool; used by one thread at a time.
pub struct Ring {
    ring: IoUring,
    bufs: Vec<AlignedBuf>,
    /// Results reaped but not yet consumed, by slot.
    done: Vec<Option<i32>>,
    fsync_done: Option<i32>,
    inflight: usize,
    registered: bool,
    punt: bool,
    /// Waiting for completions failed: the kernel may still own buffers.
    poisoned: bool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("depth", &self.bufs.len())
            .field("inflight", &self.inflight)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// Sets up a ring and allocates its buffers.
    pub fn new(opts: RingOptions) -> io::Result<Ring> {
        let depth = opts.depth.clamp(1, 1024);
        let buf_size = opts.buf_size.clamp(1, 1 << 30);
        let entries = u32::try_from((depth + 1).next_power_of_two()).unwrap_or(1024);
        let ring = IoUring::new(entries.max(8))?;
        let mut bufs: Vec<AlignedBuf> = (0..depth).map(|_| AlignedBuf::new(buf_size)).collect();
        let mut registered = false;
        if opts.register {
            let iovecs: Vec<libc::iovec> = bufs.iter_mut().map(AlignedBuf::iovec).collect();
            // SAFETY: the iovecs describe allocations owned by `bufs`, which
            // live as long as the ring: they are dropped after it (field
            // order is irrelevant: `Drop for Ring` settles first, and the
            // kernel unregisters the buffers when the ring fd closes, before
            // `bufs` is freed as the next field).
            match unsafe { ring.submitter().register_buffers(&iovecs) } {
                Ok(()) => registered = true,
                Err(e) => tracing::debug!(
                    "cannot register io_uring buffers ({e}); using unregistered buffers"
                ),
            }
        }
        Ok(Ring {
            ring,
            done: vec![None; bufs.len()],
            bufs,
            fsync_done: None,
            inflight: 0,
            registered,
            punt: opts.punt,
            poisoned: false,
        })
    }

    /// Whether the pool is registered with the kernel.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Size of each pooled buffer.
    pub fn buf_size(&self) -> usize {
        self.bufs.first().map_or(0, |b| b.len())
    }

    /// Waits until no operation is in flight, discarding their results.
    pub fn settle(&mut self) -> io::Result<()> {
        while self.inflight > 0 {
            self.wait()?;
        }
        self.done.iter_mut().for_each(|d| *d = None);
        self.fsync_done = None;
        Ok(())
    }

    /// Reads `file` from `offset` in consecutive chunks of `chunk` bytes,
    /// keeping up to `depth` chunks in flight ahead of the one `f` is
    /// looking at, and calls `f` with each chunk in order. A chunk shorter
    /// than `chunk` is the end of the file and the last call; `f` returning
    /// `Break` stops early. Short reads before the end are completed with
    /// `pread(2)`.
    pub fn read_chunks(
        &mut self,
        file: &File,
        offset: u64,
        chunk: usize,
        f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
    ) -> io::Result<()> {
        self.settle()?;
        if chunk == 0 || chunk > self.buf_size() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "chunk of {chunk} bytes does not fit the ring's {}-byte buffers",
                    self.buf_size()
                ),
            ));
        }
        let depth = self.bufs.len() as u64;
        let step = chunk as u64;
        let result = (|| {
            for k in 0..depth {
                self.push_read(file, k as usize, offset + k * step, chunk)?;
            }
            self.ring.submit()?;
            let mut k = 0u64;
            loop {
                let slot = (k % depth) as usize;
                let at = offset + k * step;
                let res = self.wait_slot(slot)?;
                let n = self.complete_read(file, slot, res, at, chunk)?;
                if f(&self.bufs[slot][..n]).is_break() || n < chunk {
                    return Ok(());
                }
                self.push_read(file, slot, at + depth * step, chunk)?;
                self.ring.submit()?;
                k += 1;
            }
        })();
        let settled = self.settle();
        result.and(settled)
    }

    /// fsyncs `file` through the ring.
    pub fn fsync(&mut self, file: &File) -> io::Result<()> {
        self.settle()?;
        let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .build()
            .user_data(FSYNC);
        // SAFETY: an fsync references no memory of ours.
        unsafe { self.push(&entry)? };
        self.ring.submit()?;
        while self.fsync_done.is_none() {
            self.wait()?;
        }
        match self.fsync_done.take() {
            Some(res) if res < 0 => Err(io::Error::from_raw_os_error(-res)),
            _ => Ok(()),
        }
    }

    /// Queues a read of `len` bytes at `at` into buffer `slot`.
    fn push_read(&mut self, file: &File, slot: usize, at: u64, len: usize) -> io::Result<()> {
        let fd = types::Fd(file.as_raw_fd());
        let len32 = u32::try_from(len).map_err(|_| io::Error::other("read too large"))?;
        let ptr = self.bufs[slot].as_mut_ptr();
        let entry = if self.registered {
            let index = u16::try_from(slot).map_err(|_| io::Error::other("slot out of range"))?;
            opcode::ReadFixed::new(fd, ptr, len32, index)
                .offset(at)
                .build()
        } else {
            opcode::Read::new(fd, ptr, len32).offset(at).build()
        };
        let entry = self.flags(entry).user_data(slot as u64);
        // SAFETY: `ptr..ptr+len` lies in `bufs[slot]` (len ≤ buf_size,
        // checked by the callers), which the ring owns and does not touch
        // or free until this slot's completion is reaped (see module doc).
        unsafe { self.push(&entry) }
    }

    /// Queues a write of `len` bytes from buffer `slot` at `at`.
    fn push_write(&mut self, file: &File, slot: usize, at: u64, len: usize) -> io::Result<()> {
        let fd = types::Fd(file.as_raw_fd());
        let len32 = u32::try_from(len).map_err(|_| io::Error::other("write too large"))?;
        let ptr = self.bufs[slot].as_mut_ptr();
        let entry = if self.registered {
            let index = u16::try_from(slot).map_err(|_| io::Error::other("slot out of range"))?;
            opcode::WriteFixed::new(fd, ptr, len32, index)
                .offset(at)
                .build()
        } else {
            opcode::Write::new(fd, ptr, len32).offset(at).build()
        };
        let entry = self.flags(entry).user_data(slot as u64);
        // SAFETY: as in `push_read`; the kernel only reads the buffer, and
        // the writer does not refill the slot before its completion.
        unsafe { self.push(&entry) }
    }

    fn flags(&self, entry: squeue::Entry) -> squeue::Entry {
        if self.punt {
            entry.flags(squeue::Flags::ASYNC)
        } else {
            entry
        }
    }

    /// Pushes one entry, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to must stay valid (and, for reads,
    /// unaliased) until its completion is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(
                "an earlier io_uring failure left this ring unusable",
            ));
        }
        loop {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.inflight += 1;
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Blocks for at least one completion and records every one available.
    fn wait(&mut self) -> io::Result<()> {
        if self.reap() > 0 {
            return Ok(());
        }
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    self.poisoned = true;
                    return Err(e);
                }
            }
        }
        self.reap();
        Ok(())
    }

    /// Records the completions available now; returns how many.
    fn reap(&mut self) -> usize {
        let mut n = 0;
        let cq: Vec<cqueue::Entry> = self.ring.completion().collect();
        for cqe in cq {
            n += 1;
            self.inflight = self.inflight.saturating_sub(1);
            match cqe.user_data() {
                FSYNC => self.fsync_done = Some(cqe.result()),
                slot => {
                    if let Some(d) = usize::try_from(slot)
                        .ok()
                        .and_then(|s| self.done.get_mut(s))
                    {
                        *d = Some(cqe.result());
                    }
                }
            }
        }
        n
    }

    /// Waits for buffer `slot`'s completion and returns its result.
    fn wait_slot(&mut self, slot: usize) -> io::Result<i32> {
        loop {
            if let Some(res) = self.done[slot].take() {
                return Ok(res);
            }
            self.wait()?;
        }
    }

    /// Waits for any of the slots in `busy` and returns it with its result.
    fn wait_any(&mut self, busy: &[usize]) -> io::Result<(usize, i32)> {
        loop {
            for &slot in busy {
                if let Some(res) = self.done[slot].take() {
                    return Ok((slot, res));
                }
            }
            self.wait()?;
        }
    }

    /// Turns a read completion into the byte count of a full chunk, or of
    /// the file's tail, finishing short or retryable reads with `pread(2)`.
    fn complete_read(
        &mut self,
        file: &File,
        slot: usize,
        res: i32,
        at: u64,
        chunk: usize,
    ) -> io::Result<usize> {
        let n = match res {
            r if r >= 0 => r as usize,
            r if r == -libc::EAGAIN || r == -libc::EINTR => 0,
            r => return Err(io::Error::from_raw_os_error(-r)),
        };
        if n == chunk || (n == 0 && res >= 0) {
            return Ok(n);
        }
        let rest = &mut self.bufs[slot][n..chunk];
        Ok(n + read_full(file, rest, at + n as u64)?)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.settle().is_err() {
            // The kernel may still write into the buffers: leak them.
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}

/// `pread(2)` until `buf` is full or the file ends; returns bytes read.
pub(crate) fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

thread_local! {
    /// This thread's ring, created on first use and lent out while a reader
    /// or writer works with it.
    static LOCAL: RefCell<Option<Ring>> = const { RefCell::new(None) };
}

/// This thread's ring (taken out of the thread's slot), or a new one.
pub(crate) fn take_local() -> io::Result<Ring> {
    match LOCAL.with(|l| l.borrow_mut().take()) {
        Some(ring) => Ok(ring),
        None => Ring::new(RingOptions::default()),
    }
}

/// Returns a ring to this thread's slot for the next caller.
pub(crate) fn give_back(ring: Ring) {
    if ring.poisoned || ring.inflight > 0 {
        return;
    }
    LOCAL.with(|l| {
        let mut slot = l.borrow_mut();
        if slot.is_none() {
            *slot = Some(ring);
        }
    });
}

/// Sequential writes at increasing offsets through the ring: data is copied
/// into pooled buffers and each full buffer is written while the next one
/// fills.
pub(crate) struct RingWriter<'f> {
    ring: Option<Ring>,
    file: &'f File,
    pos: u64,
    cur: usize,
    fill: usize,
    free: Vec<usize>,
    /// Slots being written, with their offset and length.
    busy: Vec<(usize, u64, usize)>,
    failed: bool,
}

impl<'f> RingWriter<'f> {
    pub(crate) fn new(ring: Ring, file: &'f File, pos: u64) -> RingWriter<'f> {
        let depth = ring.bufs.len();
        RingWriter {
            ring: Some(ring),
            file,
            pos,
            cur: 0,
            fill: 0,
            free: (1..depth).rev().collect(),
            busy: Vec::with_capacity(depth),
            failed: false,
        }
    }

    fn ring(&mut self) -> io::Result<&mut Ring> {
        match &mut self.ring {
            Some(r) if !self.failed => Ok(r),
            _ => Err(io::Error::other(
                "an earlier write failed; the file must be written again",
            )),
        }
    }

    /// Copies `data` in, submitting each buffer that fills up.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let (cur, fill) = (self.cur, self.fill);
            let ring = self.ring()?;
            let cap = ring.buf_size();
            let n = (cap - fill).min(data.len());
            ring.bufs[cur][fill..fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == cap {
                self.submit_current()?;
            }
        }
        Ok(())
    }

    /// Writes everything buffered and waits for every write to finish.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.submit_current()?;
        while !self.busy.is_empty() {
            let slot = self.wait_one()?;
            self.free.push(slot);
        }
        Ok(())
    }

    fn submit_current(&mut self) -> io::Result<()> {
        if self.fill == 0 {
            return Ok(());
        }
        let (cur, len, at, file) = (self.cur, self.fill, self.pos, self.file);
        let result = (|| {
            let ring = self.ring()?;
            ring.push_write(file, cur, at, len)?;
            ring.ring.submit()
        })();
        if let Err(e) = result {
            self.failed = true;
            return Err(e);
        }
        self.busy.push((cur, at, len));
        self.pos += len as u64;
        self.fill = 0;
        self.cur = match self.free.pop() {
            Some(slot) => slot,
            None => self.wait_one()?,
        };
        Ok(())
    }

    /// Waits for one write and checks it; returns its now free slot.
    fn wait_one(&mut self) -> io::Result<usize> {
        let busy: Vec<usize> = self.busy.iter().map(|b| b.0).collect();
        let file = self.file;
        let result = (|| {
            let ring = self.ring()?;
            let (slot, res) = ring.wait_any(&busy)?;
            Ok((slot, res))
        })();
        let (slot, res) = match result {
            Ok(v) => v,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let Some(i) = self.busy.iter().position(|b| b.0 == slot) else {
            return Err(io::Error::other("io_uring completed an unknown write"));
        };
        let (_, at, len) = self.busy.swap_remove(i);
        let written = match res {
            r if r >= 0 => r as usize,
            r if r == -libc::EAGAIN || r == -libc::EINTR => 0,
            r => {
                self.failed = true;
                return Err(io::Error::from_raw_os_error(-r));
            }
        };
        if written < len {
            // A short write: finish it synchronously from the same buffer.
            let ring = self.ring()?;
            let rest = &ring.bufs[slot][written..len];
            if let Err(e) = file.write_all_at(rest, at + written as u64) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(slot)
    }
}

impl Drop for RingWriter<'_> {
    fn drop(&mut self) {
        if let Some(mut ring) = self.ring.take()
            && ring.settle().is_ok()
        {
            give_back(ring);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "ring_tests.rs"]
mod tests;
