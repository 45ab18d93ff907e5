//! [`FillBody`]: the verified body of a fill, the same type on both drivers.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncBufRead, AsyncRead};
use orca_cluster_core::fill::{BodyCheck, FillCheckError};

use super::exchange::{Finish, RawBody};
use super::stats::StatsRef;
use crate::error::FillError;
use crate::metrics::FillTrack;
use crate::stats::Stats;

/// Largest buffer [`FillBody::collect_bytes`] reserves up front: 256 MiB (bigger chunks grow).
const MAX_PREALLOC: u64 = 256 << 20;

/// The body of a fill response: exactly [`FillBody::expected_len`] bytes of the chunk, verified
/// as they arrive.
///
/// It is a [`Stream`] of `Result<Bytes, FillError>`, an [`http_body::Body`] (so it can be
/// forwarded as a hyper/axum response body), and, through [`FillBody::into_async_read`], an
/// [`AsyncRead`]. It **completes in the poll that delivers its last expected byte**: the success
/// is counted, the connection goes back to the pool, and `is_end_stream()` is true, so a
/// consumer that stops at `Content-Length` (hyper does) still completes the fill. Otherwise its
/// last item is an error: [`FillError::Check`] with `Truncated` or `TooLong` (an over-long frame
/// is not yielded), or [`FillError::Http`] for a reset or broken connection.
///
/// A body whose length was not declared (chunked, close-delimited, or HTTP/2 without
/// `Content-Length`) completes when its framing ends, so that bytes beyond the chunk are
/// always detected (`TooLong`). Both drivers' listeners always declare the length.
///
/// There is no total timeout: bound reads with the caller's deadline. Dropping the body cancels
/// the transfer (HTTP/2: the stream is reset; HTTP/1.1: the connection is closed, not reused);
/// the fill's metrics ([`crate::metrics`]) then record the `cancelled` outcome.
pub struct FillBody {
    raw: Box<dyn RawBody>,
    check: BodyCheck,
    stats: StatsRef,
    /// The fill's metrics, from its start (set by the client once the head is accepted).
    track: Option<FillTrack>,
    /// The response declared its length (`Content-Length`), so the body completes with its
    /// last expected byte.
    length_declared: bool,
    done: bool,
    /// The caller's deadline (`FillClient::fill_within`): when it fires first, the body fails
    /// with `FillError::Deadline`.
    deadline: Option<(Expiry, Duration)>,
}

/// The timer of a deadline.
pub(crate) type Expiry = Pin<Box<dyn Future<Output = ()> + Send>>;

impl fmt::Debug for FillBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillBody")
            .field("expected_len", &self.check.expected())
            .field("received", &self.check.received())
            .field("done", &self.done)
            .finish()
    }
}

impl FillBody {
    pub(crate) fn new(
        raw: Box<dyn RawBody>,
        expected_len: u64,
        length_declared: bool,
        stats: StatsRef,
    ) -> FillBody {
        FillBody {
            raw,
            check: BodyCheck::new(expected_len),
            stats,
            track: None,
            length_declared,
            done: false,
            deadline: None,
        }
    }

    /// The body carrying the metrics of its fill to the fill's outcome.
    pub(crate) fn tracked(mut self, track: FillTrack) -> FillBody {
        self.track = Some(track);
        self
    }

    /// The body failing with [`FillError::Deadline`]`(deadline)` once `expires` completes.
    pub(crate) fn with_deadline(mut self, expires: Expiry, deadline: Duration) -> FillBody {
        if !self.done {
            self.deadline = Some((expires, deadline));
        }
        self
    }

    /// The chunk's length in bytes: what the body delivers when it succeeds.
    pub fn expected_len(&self) -> u64 {
        self.check.expected()
    }

    /// Bytes received and verified so far.
    pub fn received(&self) -> u64 {
        self.check.received()
    }

    /// Whether the body has ended (completely, or with its error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads the whole chunk into one buffer, verified. A chunk that arrives as a single frame
    /// is returned without copying.
    pub async fn collect_bytes(mut self) -> Result<Bytes, FillError> {
        let capacity = usize::try_from(self.expected_len().min(MAX_PREALLOC)).unwrap_or(0);
        let mut single: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        while let Some(item) = std::future::poll_fn(|cx| self.poll_chunk(cx)).await {
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

    /// The body as an [`AsyncRead`] / [`AsyncBufRead`] (futures-io). A [`FillError`] surfaces
    /// as an [`io::Error`] of kind `UnexpectedEof` (truncated), `InvalidData` (too long or
    /// rejected) or `Other`, wrapping the `FillError` (`io::Error::into_inner` + `downcast`).
    pub fn into_async_read(self) -> FillBodyReader {
        FillBodyReader {
            body: self,
            current: Bytes::new(),
        }
    }

    fn fail(&mut self, e: FillError) -> Poll<Option<Result<Bytes, FillError>>> {
        self.done = true;
        Stats::incr(&self.stats.get().fills_failed);
        if let Some(track) = &mut self.track {
            track.failed(e.kind());
        }
        // In the fill's span: the caller of poll_chunk entered it.
        tracing::debug!(error = %e, kind = e.kind(), "fill body failed");
        Poll::Ready(Some(Err(e)))
    }

    fn succeed(&mut self) {
        self.done = true;
        Stats::incr(&self.stats.get().fills_ok);
        if let Some(track) = &mut self.track {
            track.ok();
        }
    }

    /// The fill's span (none for a body without a fill).
    fn span(&self) -> tracing::Span {
        self.track
            .as_ref()
            .map_or_else(tracing::Span::none, |t| t.span().clone())
    }

    /// The next verified bytes; see the type's docs. Polled inside the fill's span.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FillError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let span = self.span();
        let _in_span = span.enter();
        self.poll_verified(cx)
    }

    fn poll_verified(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FillError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some((expires, deadline)) = &mut self.deadline
            && expires.as_mut().poll(cx).is_ready()
        {
            let e = FillError::Deadline(*deadline);
            self.deadline = None;
            return self.fail(e);
        }
        loop {
            let data = match ready!(self.raw.poll_data(cx)) {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(data)) => data,
                Some(Err(e)) => return self.fail(e),
                None => {
                    // The framing ended (or the connection did).
                    return match self.check.on_end() {
                        Ok(()) => {
                            self.succeed();
                            Poll::Ready(None)
                        }
                        Err(e) => self.fail(FillError::Check(e)),
                    };
                }
            };
            if let Err(e) = self.check.on_data(data.len()) {
                return self.fail(FillError::Check(e));
            }
            Stats::add(&self.stats.get().bytes_received, data.len() as u64);
            if let Some(track) = &mut self.track {
                track.bytes(data.len());
            }
            if self.length_declared && self.check.received() == self.check.expected() {
                // `Content-Length` framing ends exactly here: complete in this poll.
                if self.raw.finish(cx) == Finish::Extra {
                    let expected = self.check.expected();
                    return self.fail(FillError::Check(FillCheckError::TooLong { expected }));
                }
                self.succeed();
            }
            return Poll::Ready(Some(Ok(data)));
        }
    }
}

impl Stream for FillBody {
    type Item = Result<Bytes, FillError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (0, Some(0)) } else { (1, None) }
    }
}

impl Drop for FillBody {
    fn drop(&mut self) {
        if !self.done {
            let stats = self.stats.get();
            Stats::incr(&stats.fills_failed);
            let span = self.span();
            let _in_span = span.enter();
            tracing::debug!(
                received = self.check.received(),
                expected = self.check.expected(),
                "fill body dropped before its end"
            );
        }
    }
}

impl http_body::Body for FillBody {
    type Data = Bytes;
    type Error = FillError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, FillError>>> {
        self.get_mut()
            .poll_chunk(cx)
            .map(|o| o.map(|r| r.map(http_body::Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.done {
            return http_body::SizeHint::with_exact(0);
        }
        http_body::SizeHint::with_exact(self.expected_len().saturating_sub(self.received()))
    }
}

/// A [`FillBody`] as an [`AsyncRead`] / [`AsyncBufRead`]; see [`FillBody::into_async_read`].
#[derive(Debug)]
pub struct FillBodyReader {
    body: FillBody,
    current: Bytes,
}

fn to_io_error(e: FillError) -> io::Error {
    let kind = match &e {
        FillError::Check(FillCheckError::Truncated { .. }) => io::ErrorKind::UnexpectedEof,
        FillError::Check(_) => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl AsyncBufRead for FillBodyReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.current.is_empty() {
            match ready!(this.body.poll_chunk(cx)) {
                Some(Ok(frame)) => this.current = frame,
                Some(Err(e)) => return Poll::Ready(Err(to_io_error(e))),
                None => break,
            }
        }
        Poll::Ready(Ok(&this.current[..]))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        let amt = amt.min(self.current.len());
        self.current.advance(amt);
    }
}

impl AsyncRead for FillBodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}
