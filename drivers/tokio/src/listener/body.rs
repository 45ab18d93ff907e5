//! [`FillResponseBody`]: what the listener sends — a short fixed answer, or the filler's bytes
//! guarded by their expected count.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use orca_cluster_driver_common::{CheckedFillerStream, ChunkStream, ClusterState, Permit, Stats};

/// The body of a fill listener response (`Data = Bytes`, `Error = io::Error`).
///
/// For a 200 it streams the filler's bytes; if the filler's stream ends short, runs long or
/// fails, the body yields an `io::Error`, which makes hyper abort the response (HTTP/2: stream
/// reset; HTTP/1.1: connection closed) instead of completing it with wrong bytes. The
/// concurrency permit is held until the body ends or is dropped.
pub struct FillResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Box<Streaming>),
}

struct Streaming {
    stream: CheckedFillerStream<ChunkStream>,
    remaining: u64,
    /// The final frame, held back until the filler's stream has ended.
    last: Option<Bytes>,
    permit: Option<Permit>,
    state: Arc<ClusterState>,
    done: bool,
}

/// Empty frames taken from a filler in one poll before yielding to the runtime.
const MAX_EMPTY_FRAMES: usize = 64;

impl fmt::Debug for FillResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_struct("FillResponseBody")
                .field("full", &b.as_ref().map(Bytes::len))
                .finish(),
            Kind::Stream(s) => f
                .debug_struct("FillResponseBody")
                .field("remaining", &s.remaining)
                .field("done", &s.done)
                .finish(),
        }
    }
}

impl FillResponseBody {
    /// A fixed body (error answers).
    pub(crate) fn full(bytes: impl Into<Bytes>) -> FillResponseBody {
        FillResponseBody {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// The filler's stream of `expected_len` bytes.
    pub(crate) fn stream(
        stream: ChunkStream,
        expected_len: u64,
        permit: Permit,
        state: Arc<ClusterState>,
    ) -> FillResponseBody {
        FillResponseBody {
            kind: Kind::Stream(Box::new(Streaming {
                stream: CheckedFillerStream::new(stream, expected_len),
                remaining: expected_len,
                last: None,
                permit: Some(permit),
                state,
                done: false,
            })),
        }
    }
}

impl Body for FillResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let s = match &mut self.kind {
            Kind::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => s,
        };
        if s.done {
            return Poll::Ready(None);
        }
        let stats = s.state.stats();
        for _ in 0..MAX_EMPTY_FRAMES {
            match Pin::new(&mut s.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) if data.is_empty() => continue,
                Poll::Ready(Some(Ok(data))) => {
                    // The guard has checked that `data` does not run past the expected length.
                    s.remaining = s.remaining.saturating_sub(data.len() as u64);
                    if s.remaining == 0 {
                        // Hold the last frame until the filler's stream ends: a stream that
                        // runs long must abort the response before it looks complete (an
                        // HTTP/1.1 server stops reading the body at Content-Length).
                        s.last = Some(data);
                        continue;
                    }
                    Stats::add(&stats.bytes_served, data.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    s.done = true;
                    s.permit = None;
                    s.last = None;
                    Stats::incr(&stats.served_failed);
                    tracing::warn!(event = "fill_aborted", error = %e, "fill response aborted");
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    // The guard has checked that exactly the expected length was produced.
                    s.done = true;
                    s.permit = None;
                    Stats::incr(&stats.served_ok);
                    let last = s.last.take();
                    if let Some(data) = &last {
                        Stats::add(&stats.bytes_served, data.len() as u64);
                    }
                    return Poll::Ready(last.map(|data| Ok(Frame::data(data))));
                }
            }
        }
        // Many empty frames in a row: yield to the runtime instead of spinning.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) if s.done => SizeHint::with_exact(0),
            Kind::Stream(s) => {
                SizeHint::with_exact(s.remaining + s.last.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if !self.done {
            Stats::incr(&self.state.stats().served_failed);
            tracing::debug!(
                event = "fill_abandoned",
                remaining = self.remaining,
                "fill response dropped before its end (client went away?)"
            );
        }
    }
}
