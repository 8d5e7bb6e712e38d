//! Bridges between the synchronous LTX codec and the async backends.
//!
//! The compactor runs on a blocking thread. It reads remote inputs through
//! [`BlockingReader`], which waits on the async stream with the runtime's
//! handle, and writes its output into a [`ChunkWriter`], whose chunks travel
//! over a bounded channel to a [`ChunkStream`] that the backend uploads. At
//! most [`CHANNEL_CHUNKS`] chunks of [`CHUNK_SIZE`] bytes (plus one being
//! filled) are in memory at a time, whatever the output size.
//!
//! A failed compaction must never look like a complete file: the stream ends
//! cleanly only after the writer says so explicitly, and ends in an error if
//! the writer reports a failure or simply goes away.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use backends::ByteStream;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Bytes collected before a chunk is handed to the upload.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;
/// Chunks that may wait in the channel for the upload.
pub(crate) const CHANNEL_CHUNKS: usize = 4;

/// A remote stream read from a blocking thread.
pub(crate) struct BlockingReader {
    handle: Handle,
    stream: ByteStream,
}

impl BlockingReader {
    /// Wraps `stream`; reads are driven by `handle`'s runtime. Must be read
    /// from a thread outside that runtime's async workers (a blocking task).
    pub(crate) fn new(handle: Handle, stream: ByteStream) -> BlockingReader {
        BlockingReader { handle, stream }
    }
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stream = &mut self.stream;
        self.handle.block_on(stream.read(buf))
    }
}

enum Message {
    Data(Vec<u8>),
    End,
    Failed(io::Error),
}

/// Creates a connected writer (for the blocking side) and stream (for the
/// upload).
pub(crate) fn chunk_channel() -> (ChunkWriter, ChunkStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let writer = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK_SIZE),
    };
    let stream = ChunkStream {
        rx,
        chunk: Vec::new(),
        pos: 0,
        ended: false,
    };
    (writer, stream)
}

/// The blocking end: collects bytes into chunks and sends them, waiting
/// while the channel is full.
pub(crate) struct ChunkWriter {
    tx: mpsc::Sender<Message>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&self, msg: Message) -> io::Result<()> {
        self.tx.blocking_send(msg).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the upload stopped reading the compacted file",
            )
        })
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.send(Message::Data(full))
    }

    /// Sends what is buffered and marks the stream complete.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send_buffered()?;
        self.send(Message::End)
    }

    /// Makes the upload fail with `err` instead of ending.
    pub(crate) fn fail(self, err: io::Error) {
        // If the upload is gone it has failed already; nothing to tell it.
        let _ = self.tx.blocking_send(Message::Failed(err));
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full or at `finish`; a flush from the encoder
        // does not need to cut a small chunk.
        Ok(())
    }
}

/// The async end: the bytes of the chunks in order, EOF only after
/// [`ChunkWriter::finish`].
pub(crate) struct ChunkStream {
    rx: mpsc::Receiver<Message>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl AsyncRead for ChunkStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.chunk.len() {
                let n = buf.remaining().min(this.chunk.len() - this.pos);
                buf.put_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Message::Data(chunk))) => {
                    this.chunk = chunk;
                    this.pos = 0;
                }
                Poll::Ready(Some(Message::End)) => this.ended = true,
                Poll::Ready(Some(Message::Failed(err))) => return Poll::Ready(Err(err)),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the compaction stopped before finishing its output",
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(mut s: ChunkStream) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_arrive_in_order_and_end_only_when_finished() {
        let (mut w, s) = chunk_channel();
        let data: Vec<u8> = (0..3 * CHUNK_SIZE + 17).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let producer = tokio::task::spawn_blocking(move || {
            for piece in data.chunks(1000) {
                w.write_all(piece)?;
            }
            w.finish()
        });
        let got = drain(s).await.unwrap();
        producer.await.unwrap().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_or_a_vanished_writer_is_an_error_not_eof() {
        let (mut w, s) = chunk_channel();
        tokio::task::spawn_blocking(move || {
            w.write_all(b"partial").unwrap();
            w.fail(io::Error::other("merge failed"));
        });
        let err = drain(s).await.unwrap_err();
        assert_eq!(err.to_string(), "merge failed");

        let (mut w, s) = chunk_channel();
        tokio::task::spawn_blocking(move || {
            w.write_all(&vec![1u8; CHUNK_SIZE + 1]).unwrap();
            drop(w);
        });
        let err = drain(s).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_sees_a_broken_pipe_when_the_upload_goes_away() {
        let (mut w, s) = chunk_channel();
        drop(s);
        let res = tokio::task::spawn_blocking(move || w.write_all(&vec![0u8; 2 * CHUNK_SIZE]))
            .await
            .unwrap();
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_reader_reads_an_async_stream() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let stream: ByteStream = Box::pin(io::Cursor::new(data.clone()));
        let handle = Handle::current();
        let got = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            BlockingReader::new(handle, stream).read_to_end(&mut out)?;
            Ok::<_, io::Error>(out)
        })
        .await
        .unwrap()
        .unwrap();
        assert!(got == data);
    }
}
