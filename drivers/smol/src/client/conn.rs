//! One client connection to a peer: the stream (plain or TLS), its read buffer, and the steps
//! of one HTTP/1.1 exchange (send the request, read the response head). The body is read by
//! [`super::body::RawBody`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_io::AsyncRead;
use futures_lite::AsyncWriteExt;
use orca_cluster_driver_common::{FillError, TlsReloader};

use super::head::{ResponseHead, parse_head};
use crate::stream::{ClientStream, MaybeTls};

/// Longest a TCP connect to a peer may take: 10 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Interim (1xx) responses skipped before the final one at most: 8.
const MAX_INTERIM_RESPONSES: usize = 8;

/// Size of the blocks body bytes are read into: 256 KiB. Frames handed to the caller are
/// slices of these blocks (no copy after the socket read).
const BLOCK: usize = 256 * 1024;
/// A block with less room than this is replaced before the next read.
const MIN_READ: usize = 16 * 1024;

/// A connection and its buffered, not yet consumed bytes.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: ClientStream,
    /// Bytes read but not consumed (the rest of a head, the start of a body).
    pub(crate) buf: BytesMut,
    /// Initialized memory that socket reads land in.
    block: BytesMut,
    /// Whether the connection came from the pool (it may have gone stale).
    pub(crate) reused: bool,
    /// When it was last returned to the pool.
    pub(crate) idle_since: Instant,
}

/// Why an exchange failed; `before_response` tells whether any response byte had arrived
/// (only then is a retry on a fresh connection safe).
#[derive(Debug)]
pub(crate) struct ExchangeError {
    pub error: FillError,
    pub before_response: bool,
}

impl Connection {
    /// Opens a connection to `addr` (TCP within [`CONNECT_TIMEOUT`], `TCP_NODELAY`, then the
    /// TLS handshake when `tls` is set).
    pub(crate) async fn open(
        addr: SocketAddr,
        tls: Option<&TlsReloader>,
    ) -> Result<Connection, FillError> {
        let tcp =
            match crate::runtime::timeout(CONNECT_TIMEOUT, smol::net::TcpStream::connect(addr))
                .await
            {
                Some(Ok(tcp)) => tcp,
                Some(Err(e)) => return Err(FillError::Connect(e)),
                None => return Err(FillError::ConnectTimeout),
            };
        tcp.set_nodelay(true).map_err(FillError::Connect)?;
        let stream = match tls {
            Some(reloader) => crate::tls::connect(reloader, addr.ip(), tcp).await?,
            None => MaybeTls::Plain(tcp),
        };
        Ok(Connection {
            stream,
            buf: BytesMut::new(),
            block: BytesMut::new(),
            reused: false,
            idle_since: Instant::now(),
        })
    }

    /// Whether an idle connection still looks usable: no unread bytes, and the socket has
    /// neither data, nor end-of-stream, nor an error pending (checked without waiting).
    pub(crate) fn is_idle_healthy(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Reads once from the socket, at most `max` bytes. An empty result is end-of-stream; a TLS
    /// peer that closes without `close_notify` also reads as end-of-stream (the caller's length
    /// checks then report the truncation).
    pub(crate) fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        if self.block.len() < MIN_READ {
            self.block = BytesMut::zeroed(BLOCK);
        }
        let want = max.clamp(1, self.block.len());
        match Pin::new(&mut self.stream).poll_read(cx, &mut self.block[..want]) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(self.block.split_to(n).freeze())),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(Bytes::new()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at end-of-stream.
    pub(crate) async fn fill_buf(&mut self) -> io::Result<usize> {
        let frame = std::future::poll_fn(|cx| self.poll_read_frame(cx, BLOCK)).await?;
        self.buf.extend_from_slice(&frame);
        Ok(frame.len())
    }

    /// Sends `request` and reads the response head (skipping interim 1xx responses). The body
    /// bytes that arrived with the head stay in `buf`.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> Result<ResponseHead, ExchangeError> {
        let io_err = |e: io::Error, before_response| ExchangeError {
            error: FillError::Http(format!("request: {e}")),
            before_response,
        };
        self.stream
            .write_all(request)
            .await
            .map_err(|e| io_err(e, true))?;
        self.stream.flush().await.map_err(|e| io_err(e, true))?;
        let mut received_any = false;
        let mut interim = 0;
        loop {
            match parse_head(&self.buf) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    let _ = self.buf.split_to(head.head_len);
                    received_any = true;
                    interim += 1;
                    if interim > MAX_INTERIM_RESPONSES {
                        return Err(ExchangeError {
                            error: FillError::Http("too many interim (1xx) responses".into()),
                            before_response: false,
                        });
                    }
                }
                Ok(Some(head)) => {
                    let _ = self.buf.split_to(head.head_len);
                    return Ok(head);
                }
                Ok(None) => match self.fill_buf().await {
                    Ok(0) => {
                        let before_response = !received_any && self.buf.is_empty();
                        return Err(ExchangeError {
                            error: FillError::Http(if before_response {
                                "connection closed before the response".into()
                            } else {
                                "connection closed inside the response head".into()
                            }),
                            before_response,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let before_response = !received_any && self.buf.is_empty();
                        return Err(io_err(e, before_response));
                    }
                },
                Err(e) => {
                    return Err(ExchangeError {
                        error: FillError::Http(e.0),
                        before_response: false,
                    });
                }
            }
        }
    }
}
