//! The async face: shards, each an OS thread with a current-thread tokio
//! runtime and its own io_uring, sharing nothing on the hot path.
//!
//! A ring's completions wake the runtime through an eventfd registered with
//! the ring and polled with tokio's `AsyncFd`, so [`AsyncFile::read_at`] and
//! [`AsyncFile::write_at`] are plain futures. Work reaches a shard through a
//! channel ([`Shards::run`]); the same key always lands on the same shard, so
//! the state of, say, one database stays on one thread without locks.
//!
//! Futures take their buffer by value and give it back with the result, the
//! ownership-passing model io_uring needs: when a future is dropped before
//! its completion, the driver keeps the buffer (and the file) until the
//! kernel is done with them.

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use io_uring::{IoUring, opcode, squeue, types};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use crate::mode::{Engine, engine};

/// Submission queue entries per shard ring.
const RING_ENTRIES: u32 = 256;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of shard threads. Dropping it closes the channels and joins the
/// threads; work still running on them is cancelled.
#[derive(Debug)]
pub struct Shards {
    senders: Vec<mpsc::UnboundedSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// The error of [`Shards::run`] when the shard stopped before the work
/// finished (its thread ended, or the work panicked).
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} stopped before the work finished")]
pub struct ShardGone {
    /// Index of the shard.
    pub shard: usize,
}

impl Shards {
    /// One shard per available core.
    pub fn new() -> io::Result<Shards> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Shards::with_count(n)
    }

    /// `count` shards (at least one), on the process's [`engine`].
    pub fn with_count(count: usize) -> io::Result<Shards> {
        Shards::with_engine(count, engine()?)
    }

    /// `count` shards on an explicit engine.
    pub fn with_engine(count: usize, engine: Engine) -> io::Result<Shards> {
        let mut shards = Shards {
            senders: Vec::new(),
            threads: Vec::new(),
        };
        for index in 0..count.max(1) {
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("freshet-shard-{index}"))
                .spawn(move || shard_main(engine, rx, ready_tx))?;
            // The thread reports whether its runtime and ring came up.
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other(format!("shard {index} failed to start"))),
            }
            shards.senders.push(tx);
            shards.threads.push(thread);
        }
        Ok(shards)
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Always false: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// The shard that work for `key` runs on.
    pub fn shard_of(&self, key: u64) -> usize {
        (key % self.senders.len() as u64) as usize
    }

    /// Runs `f()`'s future on the shard of `key` and returns its output. The
    /// future need not be `Send`: it stays on that shard's thread.
    pub fn run<T, F, Fut>(&self, key: u64, f: F) -> impl Future<Output = Result<T, ShardGone>>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let shard = self.shard_of(key);
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            tokio::task::spawn_local(async move {
                let _ = tx.send(f().await);
            });
        });
        let sent = self.senders[shard].send(job).is_ok();
        async move {
            if !sent {
                return Err(ShardGone { shard });
            }
            rx.await.map_err(|_| ShardGone { shard })
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.senders.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn shard_main(
    engine: Engine,
    mut rx: mpsc::UnboundedReceiver<Job>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        if engine == Engine::Uring {
            match Driver::new() {
                Ok(d) => {
                    DRIVER.with(|slot| *slot.borrow_mut() = Some(d.clone()));
                    tokio::task::spawn_local(reactor(d));
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        while let Some(job) = rx.recv().await {
            job();
        }
    });
    // Cancel what still runs, then let the driver wait for the kernel
    // (while the runtime its eventfd is registered with still exists).
    drop(local);
    DRIVER.with(|slot| slot.borrow_mut().take());
    drop(rt);
}

thread_local! {
    /// The ring of the shard running on this thread, if any.
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

/// One shard's ring and the operations in flight on it.
struct Driver {
    ring: RefCell<IoUring>,
    ops: RefCell<Ops>,
    eventfd: AsyncFd<OwnedFd>,
}

#[derive(Default)]
struct Ops {
    slots: Vec<Option<Op>>,
    free: Vec<usize>,
    inflight: usize,
}

/// An operation the kernel may still be working on: the driver owns its
/// buffer and a handle on its file until the completion arrives.
struct Op {
    state: State,
    buf: Vec<u8>,
    _file: Arc<File>,
}

enum State {
    Waiting(Option<Waker>),
    Done(i32),
    /// The future was dropped; free everything at completion.
    Abandoned,
}

impl Driver {
    fn new() -> io::Result<Rc<Driver>> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: eventfd(2) has no memory arguments; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(fd.as_raw_fd())?;
        // SAFETY: an `OwnedFd` always returns the descriptor it owns, which
        // stays open until the `AsyncFd` (its only owner) is dropped.
        let eventfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Rc::new(Driver {
            ring: RefCell::new(ring),
            ops: RefCell::new(Ops::default()),
            eventfd,
        }))
    }

    /// Operations of this thread's shard still owned by the kernel.
    #[cfg(test)]
    fn inflight_here() -> usize {
        Driver::current().map_or(0, |d| d.ops.borrow().inflight)
    }

    fn current() -> Option<Rc<Driver>> {
        DRIVER.with(|slot| slot.borrow().clone())
    }

    /// Submits an operation on `buf`, which the driver keeps until its
    /// completion. `build` gets the buffer's address and length.
    fn submit(
        self: &Rc<Driver>,
        file: &Arc<File>,
        mut buf: Vec<u8>,
        build: impl FnOnce(*mut u8, u32) -> squeue::Entry,
    ) -> io::Result<OpFuture> {
        let len = u32::try_from(buf.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "buffers are limited to 4 GiB")
        })?;
        let ptr = buf.as_mut_ptr();
        let mut ops = self.ops.borrow_mut();
        let idx = ops.free.pop().unwrap_or(ops.slots.len());
        let entry = build(ptr, len).user_data(idx as u64);
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: `ptr..ptr+len` is the heap block of `buf`, which moves
            // into `ops` below (moving a Vec does not move its heap block)
            // and is dropped only after this operation's completion has been
            // reaped (`reap`, `OpFuture`, `Drop for Driver`). The file stays
            // open through the `Arc` the op holds.
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                break;
            }
            ring.submit()?;
        }
        let op = Op {
            state: State::Waiting(None),
            buf,
            _file: file.clone(),
        };
        if idx == ops.slots.len() {
            ops.slots.push(Some(op));
        } else {
            ops.slots[idx] = Some(op);
        }
        ops.inflight += 1;
        drop(ops);
        ring.submit()?;
        Ok(OpFuture {
            driver: self.clone(),
            idx,
            finished: false,
        })
    }

    /// Records every completion available and wakes its future.
    fn reap(&self) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .borrow_mut()
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        let mut ops = self.ops.borrow_mut();
        for (data, res) in cqes {
            let Ok(idx) = usize::try_from(data) else {
                continue;
            };
            let Some(Some(op)) = ops.slots.get_mut(idx) else {
                continue;
            };
            match std::mem::replace(&mut op.state, State::Done(res)) {
                State::Waiting(waker) => {
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                State::Abandoned => {
                    ops.slots[idx] = None;
                    ops.free.push(idx);
                }
                State::Done(_) => {}
            }
            ops.inflight = ops.inflight.saturating_sub(1);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Every buffer the kernel may touch is in `ops`: wait for all of them
        // before the slots are freed, or leak them if waiting fails.
        loop {
            self.reap();
            if self.ops.borrow().inflight == 0 {
                return;
            }
            let waited = self.ring.borrow().submit_and_wait(1);
            if let Err(e) = waited
                && e.raw_os_error() != Some(libc::EINTR)
            {
                std::mem::forget(std::mem::take(&mut self.ops.borrow_mut().slots));
                return;
            }
        }
    }
}

/// Waits for the eventfd and reaps completions, for the shard's lifetime.
async fn reactor(driver: Rc<Driver>) {
    loop {
        let Ok(mut guard) = driver.eventfd.readable().await else {
            return;
        };
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`, which is 8 bytes long.
        let n = unsafe {
            libc::read(
                driver.eventfd.get_ref().as_raw_fd(),
                count.as_mut_ptr().cast(),
                count.len(),
            )
        };
        if n < 0 {
            guard.clear_ready();
        }
        driver.reap();
    }
}

/// The future of one operation: its result and the buffer given back.
struct OpFuture {
    driver: Rc<Driver>,
    idx: usize,
    finished: bool,
}

impl Future for OpFuture {
    type Output = (i32, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let idx = self.idx;
        let mut ops = self.driver.ops.borrow_mut();
        let Some(Some(op)) = ops.slots.get_mut(idx) else {
            return Poll::Ready((-libc::ECANCELED, Vec::new()));
        };
        match op.state {
            State::Done(res) => {
                let buf = std::mem::take(&mut op.buf);
                ops.slots[idx] = None;
                ops.free.push(idx);
                drop(ops);
                self.finished = true;
                Poll::Ready((res, buf))
            }
            _ => {
                op.state = State::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut ops = self.driver.ops.borrow_mut();
        let idx = self.idx;
        if let Some(Some(op)) = ops.slots.get_mut(idx) {
            if matches!(op.state, State::Done(_)) {
                ops.slots[idx] = None;
                ops.free.push(idx);
            } else {
                // The kernel still owns the buffer: the driver frees it at
                // completion.
                op.state = State::Abandoned;
            }
        }
    }
}

/// A file for shard code: positional reads and writes as futures, through
/// the shard's ring, or `pread`/`pwrite` on the calling thread when the
/// engine is sync or the caller is not on a shard.
#[derive(Clone, Debug)]
pub struct AsyncFile {
    file: Arc<File>,
}

impl AsyncFile {
    /// Wraps an open file.
    pub fn new(file: File) -> AsyncFile {
        AsyncFile {
            file: Arc::new(file),
        }
    }

    /// The underlying file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns the count and the
    /// buffer.
    pub async fn read_at(&self, mut buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let Some(driver) = Driver::current() else {
            let res = self.file.read_at(&mut buf, offset);
            return (res, buf);
        };
        let fd = types::Fd(self.file.as_raw_fd());
        let op = driver.submit(&self.file, buf, |ptr, len| {
            opcode::Read::new(fd, ptr, len).offset(offset).build()
        });
        complete(op).await
    }

    /// Writes up to `buf.len()` bytes at `offset`; returns the count and the
    /// buffer.
    pub async fn write_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let Some(driver) = Driver::current() else {
            let res = self.file.write_at(&buf, offset);
            return (res, buf);
        };
        let fd = types::Fd(self.file.as_raw_fd());
        let op = driver.submit(&self.file, buf, |ptr, len| {
            opcode::Write::new(fd, ptr.cast_const(), len)
                .offset(offset)
                .build()
        });
        complete(op).await
    }

    /// Writes all of `buf` at `offset`, continuing short writes.
    pub async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = self.write_at(buf, offset).await;
        let mut done = match res {
            Ok(n) if n == buf.len() => return (Ok(()), buf),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return (Err(e), buf),
        };
        // Rare: finish a short write from a copy of the rest.
        while done < buf.len() {
            let (res, _) = self
                .write_at(buf[done..].to_vec(), offset + done as u64)
                .await;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// fsyncs the file.
    pub async fn sync_all(&self) -> io::Result<()> {
        let Some(driver) = Driver::current() else {
            return self.file.sync_all();
        };
        let fd = types::Fd(self.file.as_raw_fd());
        let op = driver.submit(&self.file, Vec::new(), |_, _| {
            opcode::Fsync::new(fd).build()
        });
        complete(op).await.0.map(|_| ())
    }
}

async fn complete(op: io::Result<OpFuture>) -> (io::Result<usize>, Vec<u8>) {
    let op = match op {
        Ok(op) => op,
        Err(e) => return (Err(e), Vec::new()),
    };
    let (res, buf) = op.await;
    if res < 0 {
        (Err(io::Error::from_raw_os_error(-res)), buf)
    } else {
        (Ok(res as usize), buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "shard_tests.rs"]
mod tests;
