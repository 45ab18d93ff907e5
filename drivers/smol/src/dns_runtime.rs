//! hickory's resolver on smol: a [`RuntimeProvider`] whose background tasks run on smol's
//! executor, timers are [`async_io::Timer`]s, UDP sockets are [`Async<UdpSocket>`] and TCP
//! streams wrap [`smol::net::TcpStream`].
//!
//! With it, [`DnsPeerSource`] gives the full hickory resolver on smol (resolv.conf search
//! domains and ndots, A and AAAA, retry over TCP when a UDP answer is truncated) with no tokio
//! anywhere in the dependency tree. The answer cache is disabled by
//! [`orca_cluster_driver_common::source::membership_options`].

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};
use hickory_resolver::net::runtime::{DnsTcpStream, DnsUdpSocket, RuntimeProvider, Spawn, Time};
use orca_cluster_driver_common::DnsPeerSource;

/// How long a DNS-over-TCP connect may take when hickory does not say: 5 s (hickory's own
/// default).
pub const DNS_TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The DNS peer source of this driver: hickory on smol.
pub type SmolDnsPeerSource = DnsPeerSource<SmolRuntimeProvider>;

/// hickory's runtime provider for smol. Stateless; clones are interchangeable.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntimeProvider;

/// Spawns hickory's background tasks on smol's global executor (detached: they end when the
/// resolver's connections close).
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolHandle;

impl Spawn for SmolHandle {
    fn spawn_bg(&mut self, future: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(future).detach();
    }
}

/// hickory timers on [`async_io::Timer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolTime;

impl Time for SmolTime {
    fn delay_for<'async_trait>(
        duration: Duration,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>> {
        Box::pin(crate::runtime::sleep(duration))
    }

    fn timeout<'async_trait, F: 'static + Future + Send>(
        duration: Duration,
        future: F,
    ) -> Pin<Box<dyn Future<Output = Result<F::Output, io::Error>> + Send + 'async_trait>> {
        Box::pin(async move {
            crate::runtime::timeout(duration, future)
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "future timed out"))
        })
    }
}

/// A non-blocking UDP socket registered with smol's reactor.
#[derive(Debug)]
pub struct SmolUdpSocket(Async<UdpSocket>);

impl DnsUdpSocket for SmolUdpSocket {
    type Time = SmolTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.0.get_ref().send_to(buf, target) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_writable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

/// A TCP stream for DNS over TCP (a newtype so hickory's `DnsTcpStream` can be implemented).
#[derive(Debug)]
pub struct SmolTcpStream(smol::net::TcpStream);

impl DnsTcpStream for SmolTcpStream {
    type Time = SmolTime;
}

impl AsyncRead for SmolTcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SmolTcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl RuntimeProvider for SmolRuntimeProvider {
    type Handle = SmolHandle;
    type Timer = SmolTime;
    type Udp = SmolUdpSocket;
    type Tcp = SmolTcpStream;

    fn create_handle(&self) -> Self::Handle {
        SmolHandle
    }

    /// Connects with `TCP_NODELAY`. A `bind_addr` (a hickory name server setting that this
    /// project never uses) is refused with `Unsupported`, since smol's connect cannot bind.
    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        wait_for: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        Box::pin(async move {
            if bind_addr.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "binding a local address for DNS over TCP is not supported on smol",
                ));
            }
            let limit = wait_for.unwrap_or(DNS_TCP_CONNECT_TIMEOUT);
            match crate::runtime::timeout(limit, smol::net::TcpStream::connect(server_addr)).await {
                Some(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    Ok(SmolTcpStream(stream))
                }
                Some(Err(e)) => Err(e),
                None => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TCP connect timed out",
                )),
            }
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        // Binding is synchronous: the future is ready at once, as hickory asks.
        let socket = Async::<UdpSocket>::bind(local_addr).map(SmolUdpSocket);
        Box::pin(std::future::ready(socket))
    }
}
