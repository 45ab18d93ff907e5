//! Write batching for listener connections: h2 writes one DATA frame per write call and
//! flushes after each one, so a peer that allows only 16 KiB frames (curl, h2load, nginx, Go)
//! costs a system call per 16 KiB. [`BatchedIo`] gathers the writes of one poll of the
//! connection into a buffer and [`FlushOnYield`] writes it out when the poll ends — one system
//! call for all the frames the connection produced — so nothing waits in the buffer while the
//! task sleeps.
//!
//! Writes of 64 KiB or more go straight through (HTTP/1.1 bodies in large frames, our own
//! 1 MiB HTTP/2 frames), together with what is buffered, in one vectored write.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::BoxIo;

/// Bytes gathered before a write is forced: 256 KiB.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;
/// Writes of at least this many bytes are not copied into the buffer: 64 KiB (HTTP/2 frames
/// are at most 16 KiB with most peers, 1 MiB with ours; HTTP/1.1 body frames are large).
const GATHER_BELOW: usize = 64 * 1024;

pub(crate) struct Batch {
    io: BoxIo,
    buf: Vec<u8>,
    /// Bytes went to `io` since its last completed flush (a TLS stream keeps records until it
    /// is flushed).
    unflushed: bool,
    /// An error of a write made by [`FlushOnYield`], reported by the next call.
    error: Option<io::Error>,
}

impl Batch {
    /// Writes the buffer out; `Pending` (with the waker registered) when the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unflushed = true;
            self.buf.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes the buffer out and flushes `io` (a TLS stream's records included).
    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    fn take_error(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A connection's stream whose writes are batched; see the module docs.
pub(crate) struct BatchedIo {
    shared: Arc<Mutex<Batch>>,
}

fn lock(shared: &Mutex<Batch>) -> MutexGuard<'_, Batch> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl BatchedIo {
    /// Batches the writes to `io`; the returned handle flushes them (wrap the connection's
    /// future with [`FlushOnYield::new`]).
    pub(crate) fn new(io: BoxIo) -> (BatchedIo, Arc<Mutex<Batch>>) {
        let shared = Arc::new(Mutex::new(Batch {
            io,
            buf: Vec::with_capacity(BATCH_BYTES),
            unflushed: false,
            error: None,
        }));
        (
            BatchedIo {
                shared: shared.clone(),
            },
            shared,
        )
    }
}

impl AsyncRead for BatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut batch = lock(&self.shared);
        batch.take_error()?;
        Pin::new(&mut batch.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for BatchedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(b)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut batch = lock(&self.shared);
        batch.take_error()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if total < GATHER_BELOW && batch.buf.len() + total <= BATCH_BYTES {
            for b in bufs {
                batch.buf.extend_from_slice(b);
            }
            return Poll::Ready(Ok(total));
        }
        // Large (an HTTP/1.1 body frame) or too large to gather: write the buffer and the new
        // bytes in one vectored write, without copying the new bytes.
        let batch = &mut *batch;
        loop {
            let held = batch.buf.len();
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            if held > 0 {
                slices.push(IoSlice::new(&batch.buf));
            }
            slices.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut batch.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            batch.unflushed = true;
            if n <= held {
                batch.buf.drain(..n);
                if total < GATHER_BELOW && batch.buf.len() + total <= BATCH_BYTES {
                    for b in bufs {
                        batch.buf.extend_from_slice(b);
                    }
                    return Poll::Ready(Ok(total));
                }
                continue;
            }
            batch.buf.clear();
            return Poll::Ready(Ok(n - held));
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Deferred: the bytes go out when the connection's poll ends ([`FlushOnYield`]), or now
    /// when the buffer is at least half full.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = lock(&self.shared);
        batch.take_error()?;
        if batch.buf.len() >= BATCH_BYTES / 2 {
            return batch.poll_flush_all(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = lock(&self.shared);
        ready!(batch.poll_flush_all(cx))?;
        Pin::new(&mut batch.io).poll_shutdown(cx)
    }
}

pin_project_lite::pin_project! {
    /// A connection's future that writes out its [`BatchedIo`]'s buffer each time a poll of
    /// it ends, so no byte waits in the buffer while the task sleeps.
    pub(crate) struct FlushOnYield<F> {
        #[pin]
        inner: F,
        shared: Arc<Mutex<Batch>>,
    }
}

impl<F> FlushOnYield<F> {
    pub(crate) fn new(inner: F, shared: Arc<Mutex<Batch>>) -> FlushOnYield<F> {
        FlushOnYield { inner, shared }
    }

    /// The wrapped future.
    pub(crate) fn inner_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner
    }
}

impl<F: Future> Future for FlushOnYield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = this.inner.poll(cx);
        let mut batch = lock(this.shared);
        if batch.error.is_none() && (batch.unflushed || !batch.buf.is_empty()) {
            // Pending: the socket is full; its waker brings the task back to write the rest
            // (and to flush what a TLS stream still holds).
            if let Poll::Ready(Err(e)) = batch.poll_flush_all(cx) {
                // Reported by the connection's next call; make sure there is one.
                batch.error = Some(e);
                cx.waker().wake_by_ref();
            }
        }
        polled
    }
}
