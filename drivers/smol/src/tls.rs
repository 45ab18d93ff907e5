//! Mutual TLS glue for smol: [`futures_rustls`] over the driver's streams, with the
//! configurations of the shared [`TlsReloader`] (so rotated certificate files are picked up by
//! the next connection). The listener requires and verifies client certificates; the client
//! verifies the peer against `internal_tls.server_name` (or the peer's IP when it is empty).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use futures_rustls::{TlsAcceptor, TlsConnector};
use orca_cluster_driver_common::{FillError, TlsReloader};
use smol::net::TcpStream;

use crate::runtime::timeout;
use crate::stream::{BoxIo, ClientStream, MaybeTls, ServerStream};

/// Bytes the client reads from the socket at a time below TLS: 256 KiB.
const READ_AHEAD: usize = 256 * 1024;

/// Client side: TLS over `io` to the peer at `ip`, within `limit`.
pub(crate) async fn connect(
    reloader: &TlsReloader,
    ip: IpAddr,
    io: BoxIo,
    limit: Duration,
) -> Result<ClientStream, FillError> {
    let connector = TlsConnector::from(reloader.client_config());
    // rustls reads at most one record (16 KiB) per call: read ahead below it, so one `recv`
    // fetches many records (a 384 MiB fill from nginx: 24,614 `recv` without it).
    let io: BoxIo = Box::new(smol::io::BufReader::with_capacity(READ_AHEAD, io));
    let handshake = connector.connect(reloader.server_name_for(ip), io);
    match timeout(limit, handshake).await {
        Some(Ok(stream)) => Ok(MaybeTls::Tls(Box::new(stream))),
        Some(Err(e)) => Err(FillError::Tls(e)),
        None => Err(FillError::TlsHandshakeTimeout),
    }
}

/// Listener side: TLS over an accepted `tcp` connection (client certificate required), within
/// `limit`.
pub(crate) async fn accept(
    reloader: &TlsReloader,
    tcp: TcpStream,
    limit: Duration,
) -> io::Result<ServerStream> {
    let acceptor = TlsAcceptor::from(reloader.server_config());
    match timeout(limit, acceptor.accept(tcp)).await {
        Some(Ok(stream)) => Ok(MaybeTls::Tls(Box::new(stream))),
        Some(Err(e)) => Err(e),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}
