//! One client connection to a peer: the stream (plain or TLS), the bytes read but not yet
//! consumed, and the head of one exchange (send the request, parse the response head with the
//! core's codec). The body is read by [`super::body::SmolBody`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_io::AsyncRead;
use futures_lite::AsyncWriteExt;
use orca_cluster_core::h1::{self, HeadError, Parsed};
use orca_cluster_driver_common::client::SendError;
use orca_cluster_driver_common::{ClientSettings, FillError, TlsReloader, Transport};

use crate::runtime::timeout;
use crate::stream::{BoxIo, ClientStream, MaybeTls};

/// Size of the blocks socket reads land in: 256 KiB. Body frames handed to the caller are
/// slices of these blocks (no copy after the socket read).
const BLOCK: usize = 256 * 1024;
/// A block with less room than this is replaced before the next read.
const MIN_READ: usize = 16 * 1024;
/// Largest response head accepted: 16 KiB.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A connection and its read-ahead.
pub(crate) struct Connection {
    stream: ClientStream,
    /// Bytes read but not consumed (the rest of a head, the start of a body).
    pub(crate) pending: Bytes,
    /// Initialized memory that socket reads land in.
    block: BytesMut,
    /// When it was last returned to the pool.
    pub(crate) idle_since: Instant,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tls", &matches!(self.stream, MaybeTls::Tls(_)))
            .field("pending", &self.pending.len())
            .field("idle_since", &self.idle_since)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens a connection to `addr` through `transport` (within the connect timeout), then the
    /// TLS handshake when `tls` is set (within the handshake timeout).
    pub(crate) async fn open(
        addr: SocketAddr,
        transport: &dyn Transport<BoxIo>,
        tls: Option<&TlsReloader>,
        settings: &ClientSettings,
    ) -> Result<Connection, FillError> {
        let io = match timeout(settings.connect_timeout, transport.connect(addr)).await {
            Some(Ok(io)) => io,
            Some(Err(e)) => return Err(FillError::Connect(e)),
            None => return Err(FillError::ConnectTimeout),
        };
        let stream = match tls {
            Some(reloader) => {
                crate::tls::connect(reloader, addr.ip(), io, settings.tls_handshake_timeout).await?
            }
            None => MaybeTls::Plain(io),
        };
        Ok(Connection {
            stream,
            pending: Bytes::new(),
            block: BytesMut::new(),
            idle_since: Instant::now(),
        })
    }

    /// Whether an idle connection still looks usable: no unread bytes, and the socket has
    /// neither data, nor end-of-stream, nor an error pending (checked without waiting).
    pub(crate) fn is_idle_healthy(&mut self) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Reads once from the socket. An empty result is end-of-stream; a TLS peer that closes
    /// without `close_notify` also reads as end-of-stream (the length checks then report it).
    pub(crate) fn poll_read_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        if self.block.len() < MIN_READ {
            self.block = BytesMut::zeroed(BLOCK);
        }
        match Pin::new(&mut self.stream).poll_read(cx, &mut self.block) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(self.block.split_to(n).freeze())),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(Bytes::new()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Appends `frame` to the read-ahead (no copy when nothing is pending).
    pub(crate) fn append(&mut self, frame: Bytes) {
        if self.pending.is_empty() {
            self.pending = frame;
        } else {
            let mut joined = BytesMut::with_capacity(self.pending.len() + frame.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&frame);
            self.pending = joined.freeze();
        }
    }

    /// Sends `request` and parses the response head (interim 1xx responses are skipped by the
    /// codec). The body bytes that arrived with the head stay pending. A connection from the
    /// pool (`reused`) that fails before any response byte is [`SendError::Stale`].
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        reused: bool,
    ) -> Result<h1::ResponseHead, SendError> {
        let before = |e: FillError, received: bool| {
            if reused && !received {
                SendError::Stale(e)
            } else {
                SendError::Failed(e)
            }
        };
        let sent = async {
            self.stream.write_all(request).await?;
            self.stream.flush().await
        };
        if let Err(e) = sent.await {
            return Err(before(FillError::Http(format!("request: {e}")), false));
        }
        loop {
            match h1::parse_response_head(&self.pending, MAX_RESPONSE_HEAD) {
                Ok(Parsed::Complete { head, consumed }) => {
                    let _ = self.pending.split_to(consumed);
                    return Ok(head);
                }
                Ok(Parsed::Partial) => {}
                Err(HeadError::Framing(malformed)) => {
                    return Err(SendError::Failed(FillError::Check(malformed.into())));
                }
                Err(e) => {
                    return Err(SendError::Failed(FillError::Http(format!(
                        "response head: {e}"
                    ))));
                }
            }
            let received = !self.pending.is_empty();
            match std::future::poll_fn(|cx| self.poll_read_frame(cx)).await {
                Ok(frame) if frame.is_empty() => {
                    let what = if received {
                        "connection closed inside the response head"
                    } else {
                        "connection closed before the response"
                    };
                    return Err(before(FillError::Http(what.into()), received));
                }
                Ok(frame) => self.append(frame),
                Err(e) => {
                    return Err(before(FillError::Http(format!("response: {e}")), received));
                }
            }
        }
    }
}
