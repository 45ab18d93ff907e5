//! Byte streams: what the client dials ([`BoxIo`], through a [`Transport`]) and one type for
//! plain and TLS connections on each side, so both modes share the same code.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use orca_cluster_driver_common::{ConnectFuture, Transport};
use smol::net::TcpStream;

/// A byte stream the client can run HTTP over (futures-io).
pub use orca_cluster_driver_common::AsyncIo as Io;
/// A boxed [`Io`], what a [`Transport`] of this driver returns.
pub type BoxIo = orca_cluster_driver_common::BoxAsyncIo;

/// Plain TCP with `TCP_NODELAY`; on Linux, quick ACKs re-armed after each read and write
/// (`QuickAckTcp` below).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl Transport<BoxIo> for TcpTransport {
    fn connect(&self, addr: SocketAddr) -> ConnectFuture<BoxIo> {
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(QuickAckTcp(tcp)) as BoxIo)
        })
    }
}

/// A client TCP stream that asks the kernel for quick ACKs after every read and write
/// ([`orca_cluster_driver_common::quick_ack`] says why): an HTTP/1.1 client sends its next
/// request right after a response, which puts the connection in Linux's delayed-ACK mode, and a
/// peer that waits on ACKs (nginx writing TLS records one by one) then sends slower.
#[derive(Debug)]
pub struct QuickAckTcp(TcpStream);

impl AsyncRead for QuickAckTcp {
    orca_cluster_driver_common::quick_ack_transfers!(poll_read(buf: &mut [u8]));
}

impl AsyncWrite for QuickAckTcp {
    orca_cluster_driver_common::quick_ack_transfers!(
        poll_write(buf: &[u8]),
        poll_write_vectored(bufs: &[io::IoSlice<'_>]),
    );

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A connection, plain or wrapped in TLS (`T` is the TLS stream over `P`).
#[derive(Debug)]
pub(crate) enum MaybeTls<P, T> {
    /// Plain (development only).
    Plain(P),
    /// Mutual TLS (boxed: a TLS stream is large).
    Tls(Box<T>),
}

/// A client-side connection.
pub(crate) type ClientStream = MaybeTls<BoxIo, futures_rustls::client::TlsStream<BoxIo>>;
/// A listener-side connection.
pub(crate) type ServerStream = MaybeTls<TcpStream, futures_rustls::server::TlsStream<TcpStream>>;

impl<P: AsyncRead + Unpin, T: AsyncRead + Unpin> AsyncRead for MaybeTls<P, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<P: AsyncWrite + Unpin, T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<P, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_close(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
