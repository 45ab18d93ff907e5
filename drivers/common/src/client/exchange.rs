//! The seam between the shared fill client and a driver's HTTP machinery: the driver sends a
//! request on a pooled or new connection ([`Exchange::send`]) and hands back the response head
//! as raw values ([`ResponseHead`]) and the body with its framing removed ([`RawBody`]). Every
//! judgement of the head and the body is made by the core, through [`super::FillClient`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use orca_cluster_core::fill::{
    DeclaredFraming, FillDescriptor, MalformedHeader, ResponseVerdict, classify_declared,
    declared_framing,
};

use crate::driver::{Driver, Transport};
use crate::error::FillError;
use crate::options::{ClientSettings, Protocol};
use crate::tls::TlsReloader;

/// What a driver needs to build its [`Exchange`].
pub struct ClientSetup<D: Driver> {
    /// Mutual TLS material (`None`: plain HTTP).
    pub tls: Option<Arc<TlsReloader>>,
    /// Timeouts and limits.
    pub settings: ClientSettings,
    /// The protocol choice (see [`Protocol`]).
    pub protocol: Protocol,
    /// Plain mode speaks HTTP/2 with prior knowledge ([`Protocol::Http2`]).
    pub plain_h2: bool,
    /// How connections are opened (`None`: the driver's plain TCP).
    pub transport: Option<Arc<dyn Transport<D::Io>>>,
}

impl<D: Driver> std::fmt::Debug for ClientSetup<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSetup")
            .field("tls", &self.tls.is_some())
            .field("settings", &self.settings)
            .field("protocol", &self.protocol)
            .field("plain_h2", &self.plain_h2)
            .finish_non_exhaustive()
    }
}

/// A response head: the status and the body framing its `Content-Length` and
/// `Transfer-Encoding` fields declare, judged by the core's one rule
/// ([`orca_cluster_core::fill::declared_framing`]) — by [`ResponseHead::from_fields`] from raw
/// values (hyper), or by the core's HTTP/1.1 codec while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The declared framing, or the framing field that breaks the rules.
    pub framing: Result<DeclaredFraming, MalformedHeader>,
}

impl ResponseHead {
    /// The head of a response with `status` and the raw value of every `Content-Length` and
    /// `Transfer-Encoding` field line.
    pub fn from_fields<'c, 't>(
        status: u16,
        content_length: impl IntoIterator<Item = &'c [u8]>,
        transfer_encoding: impl IntoIterator<Item = &'t [u8]>,
    ) -> ResponseHead {
        ResponseHead {
            status,
            framing: declared_framing(content_length, transfer_encoding),
        }
    }

    /// The core's verdict for a chunk of `expected_len` bytes.
    pub fn verdict(&self, expected_len: u64) -> ResponseVerdict {
        match self.framing {
            Ok(declared) => classify_declared(self.status, declared, expected_len),
            Err(malformed) => ResponseVerdict::Reject(malformed.into()),
        }
    }
}

/// A response: its head and its body.
#[derive(Debug)]
pub struct Response<B> {
    /// The head.
    pub head: ResponseHead,
    /// The body, framing removed.
    pub body: B,
}

/// Why [`Exchange::send`] failed.
#[derive(Debug)]
pub enum SendError {
    /// The request never reached the peer on a connection that had carried earlier requests
    /// (it was closed while idle, or the peer sent `GOAWAY`); the stale connection is gone from
    /// the pool. The client retries once on a fresh connection (a fill is idempotent).
    Stale(FillError),
    /// Any other failure; not retried.
    Failed(FillError),
}

/// How a body ended when the caller had received exactly the expected bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The message ended there: the connection can carry the next request.
    Clean,
    /// More body bytes followed: the response is too long.
    Extra,
    /// The end is not known yet (e.g. a chunked terminator still in flight): the connection is
    /// not reused, the bytes received are complete.
    Unknown,
}

/// A response body with its framing removed (hyper's body, or the core's HTTP/1.1 decoder).
pub trait RawBody: Send + 'static {
    /// The next body bytes; `None` at the end of the framing or when the connection ended
    /// (the length check then reports `Truncated`); `Err` on a broken connection or framing.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FillError>>>;

    /// Called once the caller received exactly the expected bytes, in the same poll. Must not
    /// wait: report what is known now. A [`Finish::Clean`] body gives its connection back to
    /// its pool; otherwise the connection is closed when the body is dropped. The default
    /// polls [`RawBody::poll_data`] once more.
    fn finish(&mut self, cx: &mut Context<'_>) -> Finish {
        loop {
            return match self.poll_data(cx) {
                Poll::Ready(None) => Finish::Clean,
                Poll::Ready(Some(Ok(data))) if data.is_empty() => continue,
                Poll::Ready(Some(Ok(_))) => Finish::Extra,
                Poll::Ready(Some(Err(_))) | Poll::Pending => Finish::Unknown,
            };
        }
    }
}

/// A driver's client machinery: pooled connections and framing. Implementations keep at most
/// [`ClientSettings::max_idle_per_peer`] idle HTTP/1.1 connections per peer, one multiplexed
/// HTTP/2 connection per peer, close connections idle for [`ClientSettings::idle_timeout`],
/// and bound connects and handshakes by their timeouts.
pub trait Exchange: Send + Sync + 'static {
    /// The body type.
    type Body: RawBody;

    /// Sends `descriptor`'s request to `addr` (the descriptor's peer) and returns the response
    /// head. `fresh`: do not use a pooled connection (the retry after [`SendError::Stale`]).
    fn send(
        &self,
        addr: SocketAddr,
        descriptor: &FillDescriptor,
        fresh: bool,
    ) -> impl Future<Output = Result<Response<Self::Body>, SendError>> + Send;

    /// Opens a connection to `addr` (connect and, with TLS, the handshake, each within its
    /// timeout) to learn whether the peer is reachable again; the connection may be pooled or
    /// dropped. Peer health's probe.
    fn probe(&self, addr: SocketAddr) -> impl Future<Output = Result<(), FillError>> + Send;

    /// Closes the connections to `addrs` (peers that left the snapshot) once their fills end;
    /// later fills to them dial anew.
    fn evict(&self, addrs: &[SocketAddr]);

    /// Closes idle connections now and every other one when its fill ends.
    fn close(&self);

    /// Peers with an open pooled connection (an idle HTTP/1.1 one, or an HTTP/2 one) or a dial
    /// in progress; HTTP/1.1 connections busy with a fill are not pooled and not counted.
    fn connected_peers(&self) -> Vec<SocketAddr>;

    /// Idle HTTP/1.1 keep-alive connections pooled now, over all peers.
    fn idle_connections(&self) -> usize;
}
