//! The byte streams the client dials: [`TcpTransport`] by default; tests plug in their own
//! [`Transport`] (`Options::with_transport`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use orca_cluster_driver_common::{ConnectFuture, Transport, quick_ack};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// A byte stream the client can run HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`], what a [`Transport`] of this driver returns.
pub type BoxIo = Box<dyn Io>;

/// Plain TCP with `TCP_NODELAY` and keep-alive; on Linux, quick ACKs re-armed after each
/// read and write (`QuickAckTcp` below).
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
            Ok(Box::new(QuickAckTcp(stream)) as BoxIo)
        })
    }
}

/// A client TCP stream that asks the kernel for quick ACKs after every read and write
/// ([`orca_cluster_driver_common::quick_ack`] says why). Re-armed after writes only, one 64 MiB
/// h2c fill from nginx in about 50 still waited ~45 ms for its last segment; after reads as
/// well, none in 7 runs of 24.
#[derive(Debug)]
pub struct QuickAckTcp(TcpStream);

impl AsyncRead for QuickAckTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quick_ack::rearm(&self.0);
        }
        read
    }
}

impl AsyncWrite for QuickAckTcp {
    orca_cluster_driver_common::quick_ack_transfers!(
        poll_write(buf: &[u8]),
        poll_write_vectored(bufs: &[io::IoSlice<'_>]),
    );

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
