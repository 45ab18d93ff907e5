//! The byte streams the client dials: [`TcpTransport`] by default; tests plug in their own
//! [`Transport`] (`Options::with_transport`).

use std::net::SocketAddr;

use orca_cluster_driver_common::{ConnectFuture, Transport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;

/// A byte stream the client can run HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`], what a [`Transport`] of this driver returns.
pub type BoxIo = Box<dyn Io>;

/// Plain TCP with `TCP_NODELAY` and keep-alive.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl Transport<BoxIo> for TcpTransport {
    fn connect(&self, addr: SocketAddr) -> ConnectFuture<BoxIo> {
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
