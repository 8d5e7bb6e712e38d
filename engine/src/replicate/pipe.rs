//! A bounded pipe from a blocking writer (the monitor thread encoding a
//! snapshot) to a backend's async `write` body, so a snapshot streams into
//! the replica without a local copy.
//!
//! The reader ends cleanly only after [`PipeWriter::finish`]: if the writer
//! is dropped first (encoding failed), the reader fails, so the backend's
//! write fails and no partial file becomes visible (the `ReplicaClient`
//! contract: whole or nothing).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Bytes collected before a chunk is handed over.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two ends.
const DEPTH: usize = 4;

enum Msg {
    Data(Vec<u8>),
    End,
}

/// The blocking end. Never use it on a runtime thread.
#[derive(Debug)]
pub(crate) struct PipeWriter {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
}

/// The async end, for `ReplicaClient::write`.
pub(crate) struct PipeReader {
    rx: mpsc::Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Msg::End => f.write_str("End"),
        }
    }
}

/// A new pipe: at most about `DEPTH + 1` MB buffered.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        PipeReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        },
    )
}

impl PipeWriter {
    fn send(&mut self, msg: Msg) -> io::Result<()> {
        self.tx.blocking_send(msg).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the replica stopped reading the snapshot (its upload failed)",
            )
        })
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.send(Msg::Data(chunk))
    }

    /// Sends what is buffered and marks the end: only now can the reader
    /// reach a clean end of file.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.send(Msg::End)
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full or at `finish`; a flush of the encoder's
        // trailer must not send tiny chunks.
        Ok(())
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.cur.len() {
                let n = out.remaining().min(self.cur.len() - self.pos);
                let pos = self.pos;
                out.put_slice(&self.cur[pos..pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Msg::Data(d))) => {
                    self.cur = d;
                    self.pos = 0;
                }
                Poll::Ready(Some(Msg::End)) => self.ended = true,
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the snapshot was abandoned before its end",
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_arrive_in_order_and_end_after_finish() {
        let (mut w, mut r) = pipe();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        let expect = data.clone();
        let writer = std::thread::spawn(move || {
            for piece in data.chunks(1000) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.join().unwrap();
        assert_eq!(got, expect);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dropped_before_finish_fails_the_reader() {
        let (mut w, mut r) = pipe();
        let writer = std::thread::spawn(move || {
            w.write_all(&[1; 100]).unwrap();
            drop(w);
        });
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).await.unwrap_err();
        writer.join().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_gone_fails_the_writer() {
        let (mut w, r) = pipe();
        drop(r);
        let err = std::thread::spawn(move || {
            w.write_all(&vec![0; 2 * CHUNK])?;
            w.finish()
        })
        .join()
        .unwrap()
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
