//! The byte streams the client dials: [`TcpTransport`] by default; tests plug in their own
//! [`Transport`] (`Options::with_transport`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use orca_cluster_driver_common::{ConnectFuture, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// A byte stream the client can run HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`], what a [`Transport`] of this driver returns.
pub type BoxIo = Box<dyn Io>;

/// Plain TCP with `TCP_NODELAY` and keep-alive; on Linux, quick ACKs re-armed after each
/// read and write ([`QuickAckTcp`]).
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

/// A client TCP stream that asks the kernel for quick ACKs after every read and write.
///
/// Linux delays ACKs on a connection it takes for interactive: one where this side sends soon
/// after receiving. An HTTP/2 fill client does exactly that: it sends `WINDOW_UPDATE` frames
/// while the body arrives. A peer that holds back a short last segment until its earlier ones
/// are acknowledged (Nagle's algorithm; nginx serving HTTP/2 does) then waits one delayed-ACK
/// interval, about 40 ms, for the end of the body: measured against nginx, 6 of 64 fills of
/// 8 MiB took 50 ms instead of 7. `TCP_QUICKACK` leaves that mode and sends the pending ACK.
/// Re-armed after writes only, one 64 MiB fill in about 50 still stalled; re-armed after every
/// read as well, none in 7 runs of 24. Reads on a fill connection are large (the read-ahead
/// takes up to 256 KiB) and writes rare (requests, window updates, pings), so the extra system
/// call costs nothing measurable. Elsewhere than Linux the stream is plain TCP.
#[derive(Debug)]
pub struct QuickAckTcp(TcpStream);

impl QuickAckTcp {
    fn wrote(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written
            && *n > 0
        {
            self.rearm();
        }
    }

    fn rearm(&self) {
        // Best effort: a refusal only leaves the kernel's default in place.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::net::sockopt::set_tcp_quickack(&self.0, true);
    }
}

impl AsyncRead for QuickAckTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.rearm();
        }
        read
    }
}

impl AsyncWrite for QuickAckTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

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

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Whether the kernel would acknowledge at once (`TCP_QUICKACK` reads 0 while the
    /// connection is in delayed-ACK, "interactive", mode).
    fn quick(stream: &TcpStream) -> bool {
        rustix::net::sockopt::tcp_quickack(stream).unwrap()
    }

    /// Receive, then answer at once, as a client sending a window update does: Linux takes
    /// the connection for interactive and delays its ACKs, unless the stream re-arms them.
    async fn after_receive_then_write(wrap: bool) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            for _ in 0..3 {
                peer.write_all(&[7u8; 32 * 1024]).await.unwrap();
                let mut ack = [0u8; 13];
                peer.read_exact(&mut ack).await.unwrap();
            }
            peer
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = QuickAckTcp(stream);
        let mut body = vec![0u8; 32 * 1024];
        let mut quick_after_writes = true;
        for _ in 0..3 {
            client.read_exact(&mut body).await.unwrap();
            let update = [1u8; 13];
            if wrap {
                client.write_all(&update).await.unwrap();
            } else {
                client.0.write_all(&update).await.unwrap();
            }
            quick_after_writes &= quick(&client.0);
        }
        drop(server.await.unwrap());
        quick_after_writes
    }

    #[tokio::test]
    async fn writes_leave_the_connection_acknowledging_at_once() {
        assert!(
            after_receive_then_write(true).await,
            "QuickAckTcp: still in delayed-ACK mode after a write"
        );
        // The same exchange on the bare stream does enter delayed-ACK mode, which is what the
        // adapter is for (and shows that the check above can fail).
        assert!(
            !after_receive_then_write(false).await,
            "the bare stream never entered delayed-ACK mode: the test shows nothing"
        );
    }
}
