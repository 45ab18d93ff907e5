//! How the fill client opens byte streams to peers: the [`Transport`] trait and its default,
//! plain TCP. TLS, when enabled, runs on top of whatever the transport returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;

/// A bidirectional byte stream the client can speak HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// The future [`Transport::connect`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send + 'static>>;

/// Opens connections for the fill client. The default is [`TcpTransport`]; tests plug in
/// transports that count dials, fail, or redirect to misbehaving servers.
///
/// The client bounds `connect` by [`crate::ClientSettings::connect_timeout`] (10 s) and, with
/// TLS enabled, performs the handshake on the returned stream.
pub trait Transport: Send + Sync + 'static {
    /// Opens a stream to `addr` (the peer's IP and fill port).
    fn connect(&self, addr: SocketAddr) -> ConnectFuture;
}

/// Plain TCP with `TCP_NODELAY` and `SO_KEEPALIVE` set.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    fn connect(&self, addr: SocketAddr) -> ConnectFuture {
        Box::pin(async move {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_keepalive(true)?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}
