//! The client's HTTP machinery on hyper: the [`HyperExchange`] that the shared fill client
//! (`orca_cluster_driver_common::FillClient`) drives.
//!
//! HTTP/2 peers get one multiplexed connection each (opened once even when many fills start
//! at the same moment); HTTP/1.1 peers a pool of keep-alive connections. Connections close when
//! idle for the idle timeout, or when their peer leaves the snapshot and their fills end.

mod connect;
mod pool;
mod read_ahead;
mod transport;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue, TRANSFER_ENCODING};
use http_body::Body;
use http_body_util::Empty;
use hyper::body::Incoming;
use orca_cluster_core::fill::{FillDescriptor, HeaderProblem, MalformedHeader};
use orca_cluster_driver_common::client::{
    ClientSetup, Exchange, Finish, RawBody, Response, ResponseHead, SendError,
};
use orca_cluster_driver_common::{FillError, Protocol};

pub use transport::{BoxIo, Io, TcpTransport};

use connect::{Conn, DialContext, H1Conn, ReqBody};
use pool::{PeerSlot, Pool};
use watch::Lease;

use crate::runtime::Tokio;

/// hyper's client connections, pooled per peer. Built by the shared fill client.
#[derive(Debug)]
pub struct HyperExchange {
    ctx: Arc<DialContext>,
    pool: Pool,
}

impl HyperExchange {
    pub(crate) fn new(setup: ClientSetup<Tokio>) -> HyperExchange {
        HyperExchange {
            ctx: Arc::new(DialContext {
                transport: setup.transport.unwrap_or_else(|| Arc::new(TcpTransport)),
                tls: setup.tls,
                settings: setup.settings,
                plain_h2: setup.plain_h2,
                http1_only: setup.protocol == Protocol::Http1,
            }),
            pool: Pool::default(),
        }
    }
}

/// How long a failed request waits for its connection's own error: 200 ms.
const CONNECTION_END_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// hyper's parser refuses some malformed framing fields itself (a `Content-Length` it cannot
/// parse: `+5`, `5, 6`), before the core's rules see them; such a refusal is reported in the
/// core's terms, as the smol driver reports it, naming the field. hyper exposes the field only
/// in its message ("invalid content-length parsed").
fn refused_framing(e: &hyper::Error) -> Option<MalformedHeader> {
    if !e.is_parse() {
        return None;
    }
    let text = e.to_string();
    let field = [CONTENT_LENGTH, TRANSFER_ENCODING]
        .into_iter()
        .find(|name| text.contains(name.as_str()))?;
    let field = if field == CONTENT_LENGTH {
        orca_cluster_core::fill::CONTENT_LENGTH
    } else {
        orca_cluster_core::fill::TRANSFER_ENCODING
    };
    Some(MalformedHeader {
        field,
        problem: HeaderProblem::Unparsable,
    })
}

/// An error and its sources, `outer: inner: ...` (hyper's own messages are terse).
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The request of descriptor `d`: absolute URI for HTTP/2 (`:scheme`, `:authority`),
/// origin-form plus `Host` for HTTP/1.1.
fn request(d: &FillDescriptor, h2: bool) -> Result<Request<ReqBody>, FillError> {
    let bad = |e: http::Error| FillError::Http(format!("building the request: {e}"));
    let mut builder = Request::builder().method(FillDescriptor::METHOD);
    for (name, value) in FillDescriptor::HEADERS {
        builder = builder.header(name, HeaderValue::from_static(value));
    }
    let builder = if h2 {
        builder.uri(d.uri())
    } else {
        builder
            .uri(d.path_and_query.as_str())
            .header(HOST, d.authority.as_str())
    };
    builder.body(Empty::new()).map_err(bad)
}

fn head(response: &hyper::Response<Incoming>) -> ResponseHead {
    let headers = response.headers();
    ResponseHead::from_fields(
        response.status().as_u16(),
        headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .map(HeaderValue::as_bytes),
        headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

impl Exchange for HyperExchange {
    type Body = HyperBody;

    async fn send(
        &self,
        addr: SocketAddr,
        d: &FillDescriptor,
        fresh: bool,
    ) -> Result<Response<HyperBody>, SendError> {
        let slot = self.pool.slot(addr);
        let (conn, reused) = slot
            .acquire(&self.ctx, fresh)
            .await
            .map_err(|e| SendError::Failed(e.into()))?;
        let h1 = matches!(conn, Conn::H1(_));
        let watch = match &conn {
            Conn::H1(c) => c.watch.clone(),
            Conn::H2(c) => c.watch.clone(),
        };
        let (sent, guard) = match conn {
            Conn::H2(c) => {
                let lease = c.watch.lease();
                let sent = c
                    .send
                    .clone()
                    .try_send_request(request(d, true).map_err(SendError::Failed)?)
                    .await;
                if matches!(&sent, Err(e) if e.message().is_some()) {
                    // Not even sent: the connection is unusable (closed, GOAWAY).
                    slot.forget_h2(&c);
                }
                (
                    sent,
                    Guard {
                        lease: Some(lease),
                        h1: None,
                    },
                )
            }
            Conn::H1(mut c) => {
                let lease = c.watch.lease();
                if let Err(e) = c.send.ready().await {
                    let why = match watch.end_error(CONNECTION_END_WAIT).await {
                        Some(why) => why,
                        None => describe(&e),
                    };
                    let e = FillError::Http(format!("{addr}: {why}"));
                    return Err(if reused {
                        SendError::Stale(e)
                    } else {
                        SendError::Failed(e)
                    });
                }
                let sent = c
                    .send
                    .try_send_request(request(d, false).map_err(SendError::Failed)?)
                    .await;
                let max_idle = self.ctx.settings.max_idle_per_peer;
                (
                    sent,
                    Guard {
                        lease: Some(lease),
                        h1: Some((slot.clone(), c, max_idle)),
                    },
                )
            }
        };
        match sent {
            Ok(response) => Ok(Response {
                head: head(&response),
                body: HyperBody {
                    body: Some(response.into_body()),
                    guard,
                },
            }),
            Err(mut e) => {
                let unsent = e.take_message().is_some();
                let e = e.into_error();
                // HTTP/1.1: a reused connection that ended (closed or reset) before any
                // response is the peer's close of an idle connection racing the request, as
                // the smol driver sees it: the request is retried like an unsent one.
                let stale = unsent || (h1 && ended_before_response(&e));
                let error = match refused_framing(&e) {
                    Some(malformed) => FillError::Check(malformed.into()),
                    // The request failed because its connection ended: say why it ended (e.g.
                    // the listener's TLS alert for a rejected client certificate).
                    None if e.is_canceled() || e.is_closed() => {
                        match watch.end_error(CONNECTION_END_WAIT).await {
                            Some(why) => FillError::Http(format!("{addr}: {why}")),
                            None => FillError::Http(format!("{addr}: {}", describe(&e))),
                        }
                    }
                    None => FillError::Http(format!("{addr}: {}", describe(&e))),
                };
                Err(if stale && reused {
                    SendError::Stale(error)
                } else {
                    SendError::Failed(error)
                })
            }
        }
    }

    async fn probe(&self, addr: SocketAddr) -> Result<(), FillError> {
        // A full dial (connect, TLS, HTTP handshake); the connection is then dropped.
        connect::dial(&self.ctx, addr)
            .await
            .map(drop)
            .map_err(FillError::from)
    }

    fn evict(&self, addrs: &[SocketAddr]) {
        self.pool.retain(|addr| !addrs.contains(addr));
    }

    fn close(&self) {
        self.pool.retain(|_| false);
    }

    fn connected_peers(&self) -> Vec<SocketAddr> {
        self.pool.addrs()
    }

    fn idle_connections(&self) -> usize {
        self.pool.idle_h1()
    }
}

/// What a body holds on to: its connection lease, and an HTTP/1.1 connection to give back to
/// the pool once the body was read completely.
struct Guard {
    lease: Option<Lease>,
    h1: Option<(Arc<PeerSlot>, H1Conn, usize)>,
}

/// A hyper response body as the shared client reads it.
pub struct HyperBody {
    body: Option<Incoming>,
    guard: Guard,
}

impl std::fmt::Debug for HyperBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperBody")
            .field("open", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether hyper's error on a request means the connection ended before a response head
/// arrived: end of stream (`IncompleteMessage`) or a reset / abort / broken pipe.
fn ended_before_response(e: &hyper::Error) -> bool {
    e.is_incomplete_message()
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                )
            })
}

/// Whether hyper's body error is an end of file before the message length was reached.
fn is_unexpected_eof(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

impl HyperBody {
    /// The message ended: give an HTTP/1.1 connection back to its pool.
    fn release(&mut self) {
        self.body = None;
        self.guard.lease = None;
        if let Some((slot, conn, max_idle)) = self.guard.h1.take() {
            slot.release_h1(conn, max_idle);
        }
    }
}

impl RawBody for HyperBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FillError>>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            return match std::pin::Pin::new(body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    self.release();
                    Poll::Ready(None)
                }
                // The peer closed the connection before the declared length: end the stream so
                // the length check reports `Truncated { got, expected }`, as for any short body.
                Poll::Ready(Some(Err(e))) if is_unexpected_eof(&e) => {
                    self.body = None;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => {
                    self.body = None;
                    Poll::Ready(Some(Err(FillError::Http(format!(
                        "response body: {}",
                        describe(&e)
                    )))))
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
            };
        }
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> Finish {
        // A body whose declared length has been received is at its end without another read.
        let at_end = match self.body.as_ref() {
            None => false,
            Some(body) if body.is_end_stream() => true,
            Some(_) => match self.poll_data(cx) {
                Poll::Ready(None) => true,
                Poll::Ready(Some(Ok(data))) if !data.is_empty() => return Finish::Extra,
                _ => false,
            },
        };
        if at_end {
            self.release();
            Finish::Clean
        } else {
            self.body = None;
            self.guard.lease = None;
            // Dropping the connection handle closes an HTTP/1.1 connection; an HTTP/2 stream
            // is reset when its body drops.
            self.guard.h1 = None;
            Finish::Unknown
        }
    }
}
