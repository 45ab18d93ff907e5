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

/// Client side: TLS over `io` to the peer at `ip`, within `limit`.
pub(crate) async fn connect(
    reloader: &TlsReloader,
    ip: IpAddr,
    io: BoxIo,
    limit: Duration,
) -> Result<ClientStream, FillError> {
    let connector = TlsConnector::from(reloader.client_config());
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
