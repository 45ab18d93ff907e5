//! Opening one connection to a peer: transport connect (bounded), TLS handshake (bounded, with
//! ALPN), then the HTTP/2 or HTTP/1.1 client handshake and the connection's driver task.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use orca_cluster_driver_common::{ClientSettings, FillError, TlsReloader, Transport};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::transport::BoxIo;
use super::watch::ConnWatch;

/// What the client sends: fill requests have no body.
pub(crate) type ReqBody = Empty<Bytes>;

/// Everything a dial needs; shared by all connections of a client.
pub(crate) struct DialContext {
    pub(crate) transport: Arc<dyn Transport<BoxIo>>,
    pub(crate) tls: Option<Arc<TlsReloader>>,
    pub(crate) settings: ClientSettings,
    /// Plain connections speak h2c (prior knowledge) instead of HTTP/1.1.
    pub(crate) plain_h2: bool,
    /// Only HTTP/1.1 is offered (plain and ALPN).
    pub(crate) http1_only: bool,
}

impl fmt::Debug for DialContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialContext")
            .field("tls", &self.tls.is_some())
            .field("settings", &self.settings)
            .field("plain_h2", &self.plain_h2)
            .field("http1_only", &self.http1_only)
            .finish_non_exhaustive()
    }
}

impl DialContext {
    /// Whether connections may speak HTTP/2 (h2c in plain mode, `h2` offered by ALPN).
    pub(crate) fn multiplexes(&self) -> bool {
        if self.tls.is_some() {
            !self.http1_only
        } else {
            self.plain_h2
        }
    }
}

/// A dial failure; `Clone` so that one dial can serve every request waiting for it.
#[derive(Clone, Debug)]
pub(crate) enum DialError {
    Connect(io::ErrorKind, String),
    ConnectTimeout,
    Tls(io::ErrorKind, String),
    TlsHandshakeTimeout,
    Http(String),
}

impl From<DialError> for FillError {
    fn from(e: DialError) -> FillError {
        match e {
            DialError::Connect(kind, msg) => FillError::Connect(io::Error::new(kind, msg)),
            DialError::ConnectTimeout => FillError::ConnectTimeout,
            DialError::Tls(kind, msg) => FillError::Tls(io::Error::new(kind, msg)),
            DialError::TlsHandshakeTimeout => FillError::TlsHandshakeTimeout,
            DialError::Http(msg) => FillError::Http(msg),
        }
    }
}

/// A multiplexed HTTP/2 connection (cheap to clone: clones share the connection).
#[derive(Clone, Debug)]
pub(crate) struct H2Conn {
    pub(crate) send: http2::SendRequest<ReqBody>,
    pub(crate) watch: Arc<ConnWatch>,
}

/// An HTTP/1.1 connection: one request at a time.
#[derive(Debug)]
pub(crate) struct H1Conn {
    pub(crate) send: http1::SendRequest<ReqBody>,
    pub(crate) watch: Arc<ConnWatch>,
}

/// A freshly opened connection of either protocol.
#[derive(Debug)]
pub(crate) enum Conn {
    H2(H2Conn),
    H1(H1Conn),
}

/// Opens a connection to `addr`. Plain mode: HTTP/1.1, or h2c prior knowledge when `plain_h2`.
/// TLS mode: whatever ALPN selected (`h2`, else HTTP/1.1).
pub(crate) async fn dial(ctx: &DialContext, addr: SocketAddr) -> Result<Conn, DialError> {
    let s = &ctx.settings;
    let io = match timeout(s.connect_timeout, ctx.transport.connect(addr)).await {
        Err(_) => return Err(DialError::ConnectTimeout),
        Ok(Err(e)) => return Err(DialError::Connect(e.kind(), format!("{addr}: {e}"))),
        Ok(Ok(io)) => io,
    };
    let (io, use_h2): (BoxIo, bool) = match &ctx.tls {
        None => (io, ctx.plain_h2),
        Some(reloader) => {
            let connector = TlsConnector::from(reloader.client_config());
            let name = reloader.server_name_for(addr.ip());
            match timeout(s.tls_handshake_timeout, connector.connect(name, io)).await {
                Err(_) => return Err(DialError::TlsHandshakeTimeout),
                Ok(Err(e)) => return Err(DialError::Tls(e.kind(), format!("{addr}: {e}"))),
                Ok(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]);
                    (Box::new(tls), h2)
                }
            }
        }
    };
    let watch = ConnWatch::new();
    let http =
        |e: hyper::Error| DialError::Http(format!("{addr}: handshake: {}", super::describe(&e)));
    if use_h2 {
        let h2 = &s.http2;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(h2.stream_window.clamp(MIN_WINDOW, MAX_WINDOW))
            .initial_connection_window_size(h2.connection_window.clamp(MIN_WINDOW, MAX_WINDOW))
            .max_frame_size(h2.max_frame_size.clamp(MIN_FRAME, MAX_FRAME))
            .keep_alive_interval(non_zero(h2.keep_alive_interval))
            .keep_alive_timeout(h2.keep_alive_timeout)
            .keep_alive_while_idle(true);
        // h2 reads about one frame per call; read ahead so one call fetches many.
        let io: BoxIo = Box::new(super::read_ahead::ReadAhead::new(io));
        let (send, connection) = builder.handshake(TokioIo::new(io)).await.map_err(http)?;
        tokio::spawn(watch.clone().drive(connection, s.idle_timeout));
        Ok(Conn::H2(H2Conn { send, watch }))
    } else {
        let (send, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(http)?;
        tokio::spawn(watch.clone().drive(connection, s.idle_timeout));
        Ok(Conn::H1(H1Conn { send, watch }))
    }
}

/// HTTP/2's bounds (RFC 9113 6.5.2, 6.9.1); h2 asserts on values outside them.
const MIN_WINDOW: u32 = 65_535;
const MAX_WINDOW: u32 = (1 << 31) - 1;
const MIN_FRAME: u32 = 16_384;
const MAX_FRAME: u32 = (1 << 24) - 1;

fn non_zero(d: std::time::Duration) -> Option<std::time::Duration> {
    (!d.is_zero()).then_some(d)
}
