//! Response bodies: [`RawBody`] undoes the HTTP/1.1 framing and hands the connection back to
//! the pool once the body has been read completely; [`FillBody`] is the verified chunk the
//! caller gets, as a stream of [`Bytes`] or as an [`AsyncRead`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncBufRead, AsyncRead};
use futures_lite::StreamExt;
use orca_cluster_driver_common::{CheckedBody, ClusterState, FillError, Stats};

use super::chunked::{ChunkedDecoder, Step};
use super::conn::Connection;
use super::head::Framing;
use super::pool::Pool;

/// Where to return a connection whose response was read completely.
#[derive(Clone, Debug)]
pub(crate) struct Return {
    pub pool: Arc<Pool>,
    pub addr: SocketAddr,
}

#[derive(Debug)]
enum Frames {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// The body bytes of one response, framing removed. Ends (`None`) at the end of the framing
/// or at end-of-stream (the caller's length check decides whether that was too early); yields
/// [`FillError::Http`] on a socket or framing error. Dropping it before the end closes the
/// connection.
#[derive(Debug)]
pub(crate) struct RawBody {
    conn: Option<Connection>,
    frames: Frames,
    reusable: bool,
    back: Option<Return>,
}

impl RawBody {
    /// The body of a response with `framing` on `conn`; `back` receives the connection after a
    /// complete body when `reusable`.
    pub(crate) fn new(
        conn: Connection,
        framing: Framing,
        reusable: bool,
        back: Option<Return>,
    ) -> RawBody {
        let frames = match framing {
            Framing::Empty => Frames::Length(0),
            Framing::Length(n) => Frames::Length(n),
            Framing::Chunked => Frames::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => Frames::UntilClose,
        };
        RawBody {
            conn: Some(conn),
            frames,
            reusable: reusable && !matches!(framing, Framing::UntilClose),
            back,
        }
    }

    /// The framing ended cleanly: return the connection if it carries nothing unexpected.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
            && let Some(back) = self.back.take()
        {
            back.pool.checkin(back.addr, conn);
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Bytes, FillError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(FillError::Http(format!("response body: {e}")))))
    }
}

fn take_buffered(buf: &mut BytesMut, max: u64) -> Bytes {
    let n = usize::try_from(max).unwrap_or(usize::MAX).min(buf.len());
    buf.split_to(n).freeze()
}

impl Stream for RawBody {
    type Item = Result<Bytes, FillError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match &mut this.frames {
            Frames::Length(left) => {
                if *left == 0 {
                    this.finish();
                    return Poll::Ready(None);
                }
                let frame = if conn.buf.is_empty() {
                    let max = usize::try_from(*left).unwrap_or(usize::MAX);
                    match ready!(conn.poll_read_frame(cx, max)) {
                        Ok(frame) => frame,
                        Err(e) => return this.fail(e),
                    }
                } else {
                    take_buffered(&mut conn.buf, *left)
                };
                if frame.is_empty() {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                *left -= frame.len() as u64;
                if *left == 0 {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Frames::Chunked(decoder) => loop {
                match decoder.step(&mut conn.buf) {
                    Ok(Step::Data(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(Step::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => match ready!(conn.poll_read_frame(cx, usize::MAX)) {
                        Ok(frame) if frame.is_empty() => {
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        Ok(frame) => conn.buf.extend_from_slice(&frame),
                        Err(e) => return this.fail(e),
                    },
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(FillError::Http(e))));
                    }
                }
            },
            Frames::UntilClose => {
                if !conn.buf.is_empty() {
                    return Poll::Ready(Some(Ok(take_buffered(&mut conn.buf, u64::MAX))));
                }
                match ready!(conn.poll_read_frame(cx, usize::MAX)) {
                    Ok(frame) if frame.is_empty() => {
                        this.conn = None;
                        Poll::Ready(None)
                    }
                    Ok(frame) => Poll::Ready(Some(Ok(frame))),
                    Err(e) => this.fail(e),
                }
            }
        }
    }
}

/// The verified body of a fill: exactly `expected_len` bytes of the chunk, or an error.
///
/// As a [`Stream`] it yields the peer's bytes in frames as they arrive (no copy after the
/// socket read) and ends with `None` only after exactly [`FillBody::expected_len`] bytes; any
/// failure (`Truncated`, `TooLong`, a reset connection...) is its last item. Dropping it early
/// closes the connection; reading it to the end returns the connection to the pool.
pub struct FillBody {
    inner: CheckedBody<RawBody>,
    state: Arc<ClusterState>,
    failed: bool,
}

impl std::fmt::Debug for FillBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillBody")
            .field("expected_len", &self.inner.expected_len())
            .field("received", &self.inner.received())
            .finish_non_exhaustive()
    }
}

impl FillBody {
    pub(crate) fn new(raw: RawBody, expected_len: u64, state: Arc<ClusterState>) -> FillBody {
        let hook_state = state.clone();
        let inner = CheckedBody::new(raw, expected_len).with_hook(move |len, finished| {
            let stats = hook_state.stats();
            if finished {
                Stats::incr(&stats.fills_ok);
            } else {
                Stats::add(&stats.bytes_received, len);
            }
        });
        FillBody {
            inner,
            state,
            failed: false,
        }
    }

    /// The chunk length in bytes: what the body yields in all when it succeeds.
    pub fn expected_len(&self) -> u64 {
        self.inner.expected_len()
    }

    /// Bytes received and verified so far.
    pub fn received(&self) -> u64 {
        self.inner.received()
    }

    /// Reads the whole chunk (verified) into one buffer (no copy when it arrived as one frame).
    pub async fn collect_bytes(mut self) -> Result<Bytes, FillError> {
        let mut frames = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = self.next().await {
            let frame = frame?;
            total += frame.len();
            frames.push(frame);
        }
        if frames.len() == 1 {
            return Ok(frames.pop().unwrap_or_default());
        }
        let mut all = BytesMut::with_capacity(total);
        for frame in frames {
            all.extend_from_slice(&frame);
        }
        Ok(all.freeze())
    }

    /// The body as an [`AsyncRead`] (and [`AsyncBufRead`]). A [`FillError`] surfaces as an
    /// [`io::Error`] of kind `UnexpectedEof` (truncated), `InvalidData` (too long or rejected)
    /// or `Other`, wrapping the `FillError` (get it back with `io::Error::into_inner` and
    /// `downcast`).
    pub fn into_async_read(self) -> FillBodyReader {
        FillBodyReader {
            body: self,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl Stream for FillBody {
    type Item = Result<Bytes, FillError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.inner).poll_next(cx));
        if let Some(Err(e)) = &item
            && !self.failed
        {
            self.failed = true;
            let stats = self.state.stats();
            Stats::incr(&stats.fills_failed);
            tracing::debug!(error = %e, kind = e.kind(), "fill body failed");
        }
        Poll::Ready(item)
    }
}

/// A [`FillBody`] as an [`AsyncRead`] / [`AsyncBufRead`]; see [`FillBody::into_async_read`].
#[derive(Debug)]
pub struct FillBodyReader {
    body: FillBody,
    current: Bytes,
    done: bool,
}

fn to_io_error(e: FillError) -> io::Error {
    use orca_cluster_core::fill::FillCheckError;
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
        while this.current.is_empty() && !this.done {
            match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(frame)) => this.current = frame,
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Err(to_io_error(e)));
                }
                None => this.done = true,
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
