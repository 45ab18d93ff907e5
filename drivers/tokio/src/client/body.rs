//! [`FillBody`]: the verified body of a fill response.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use orca_cluster_driver_common::{CheckedBody, FillError, Stats};

use super::connect::H1Conn;
use super::pool::PeerSlot;
use super::stats::StatsRef;
use super::watch::Lease;

/// Largest buffer [`FillBody::collect_bytes`] reserves up front: 256 MiB (bigger chunks grow).
const MAX_PREALLOC: u64 = 256 << 20;

/// The data frames of a hyper body as a stream (trailers are skipped).
struct DataFrames(Incoming);

impl Stream for DataFrames {
    type Item = Result<Bytes, FillError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match Pin::new(&mut self.0).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                // The peer closed the connection before the declared length: end the stream so
                // the length check reports `Truncated { got, expected }`, as for any short body.
                Poll::Ready(Some(Err(e))) if is_unexpected_eof(&e) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(FillError::Http(format!(
                    "response body: {}",
                    super::describe(&e)
                ))))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
            };
        }
    }
}

/// Whether hyper's body error is an end of file before the message length was reached.
fn is_unexpected_eof(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// What a body holds on to: its connection lease, and an HTTP/1.1 connection to give back to
/// the pool once the body was read completely.
pub(crate) struct BodyGuard {
    pub(crate) lease: Option<Lease>,
    pub(crate) h1: Option<(Arc<PeerSlot>, H1Conn, usize)>,
}

impl BodyGuard {
    fn finish(&mut self) {
        self.lease = None;
        if let Some((slot, conn, max_idle)) = self.h1.take() {
            slot.release_h1(conn, max_idle);
        }
    }
}

/// The body of a fill response: exactly [`FillBody::expected_len`] bytes, verified as they
/// arrive.
///
/// It is a [`Stream`] of `Result<Bytes, FillError>` and an [`http_body::Body`] with `Bytes`
/// data and [`FillError`] errors (so it can be forwarded as a hyper/axum response body). It
/// ends without error only after exactly the expected number of bytes; otherwise its last item
/// is an error: [`FillError::Check`] with `Truncated` or `TooLong` (the over-long frame is not
/// yielded), or [`FillError::Http`] for a reset or broken connection.
///
/// There is no total timeout: wrap reads in the caller's deadline (e.g.
/// `tokio::time::timeout`). Dropping the body cancels the transfer (HTTP/2: the stream is reset;
/// HTTP/1.1: the connection is closed rather than reused).
pub struct FillBody {
    inner: CheckedBody<DataFrames>,
    guard: BodyGuard,
    stats: StatsRef,
    done: bool,
}

impl fmt::Debug for FillBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillBody")
            .field("expected_len", &self.inner.expected_len())
            .field("received", &self.inner.received())
            .field("done", &self.done)
            .finish()
    }
}

impl FillBody {
    pub(crate) fn new(
        body: Incoming,
        expected_len: u64,
        guard: BodyGuard,
        stats: StatsRef,
    ) -> FillBody {
        let hook_stats = stats.clone();
        let inner = CheckedBody::new(DataFrames(body), expected_len).with_hook(move |n, ok| {
            let s = hook_stats.get();
            if ok {
                Stats::incr(&s.fills_ok);
            } else {
                Stats::add(&s.bytes_received, n);
            }
        });
        FillBody {
            inner,
            guard,
            stats,
            done: false,
        }
    }

    /// The chunk's length in bytes: what the body must deliver.
    pub fn expected_len(&self) -> u64 {
        self.inner.expected_len()
    }

    /// Bytes received and verified so far.
    pub fn received(&self) -> u64 {
        self.inner.received()
    }

    /// Reads the whole chunk into one buffer, verified. A chunk that arrives as a single frame
    /// is returned without copying.
    pub async fn collect_bytes(mut self) -> Result<Bytes, FillError> {
        use futures_util::StreamExt;
        let capacity = usize::try_from(self.expected_len().min(MAX_PREALLOC)).unwrap_or(0);
        let mut single: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        while let Some(item) = self.next().await {
            let data = item?;
            if let Some(buf) = joined.as_mut() {
                buf.extend_from_slice(&data);
                continue;
            }
            match single.take() {
                None => single = Some(data),
                Some(prev) => {
                    let mut buf = BytesMut::with_capacity(capacity);
                    buf.extend_from_slice(&prev);
                    buf.extend_from_slice(&data);
                    joined = Some(buf);
                }
            }
        }
        Ok(match joined {
            Some(buf) => buf.freeze(),
            None => single.unwrap_or_default(),
        })
    }
}

impl Stream for FillBody {
    type Item = Result<Bytes, FillError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(data))),
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                this.guard.lease = None;
                this.guard.h1 = None;
                Stats::incr(&this.stats.get().fills_failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                this.guard.finish();
                Poll::Ready(None)
            }
        }
    }
}

impl Body for FillBody {
    type Data = Bytes;
    type Error = FillError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, FillError>>> {
        self.poll_next(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        SizeHint::with_exact(self.expected_len().saturating_sub(self.received()))
    }
}
