//! Mutual TLS for the smol driver: [`futures_rustls`] over smol's TCP streams, with the
//! configurations of [`TlsReloader`] (drivers/common), so certificate files rotated on disk are
//! picked up by the next connection.
//!
//! Both sides offer exactly one ALPN protocol, `http/1.1` (this driver speaks HTTP/1.1 only).
//! The listener requires and verifies client certificates; the client verifies the peer against
//! `internal_tls.server_name` (or the peer's IP when it is empty). Handshakes time out after
//! [`TLS_HANDSHAKE_TIMEOUT`].

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::{TlsAcceptor, TlsConnector};
use orca_cluster_core::TlsSettings;
use orca_cluster_driver_common::{FillError, TlsError, TlsFiles, TlsReloader};
use smol::net::TcpStream;

use crate::stream::{ClientStream, MaybeTls, ServerStream};

/// The ALPN protocol both sides offer: `http/1.1`.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Longest a TLS handshake may take, on either side: 10 s.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads the `internal_tls` files with this driver's ALPN settings (`http/1.1` on both sides).
pub fn load_reloader(settings: &TlsSettings) -> Result<TlsReloader, TlsError> {
    TlsReloader::load(
        TlsFiles::from_settings(settings),
        &[ALPN_HTTP1],
        &[ALPN_HTTP1],
    )
}

/// Client side: TLS over `tcp` to the peer at `ip`, within [`TLS_HANDSHAKE_TIMEOUT`].
pub(crate) async fn connect(
    reloader: &TlsReloader,
    ip: IpAddr,
    tcp: TcpStream,
) -> Result<ClientStream, FillError> {
    let connector = TlsConnector::from(reloader.client_config());
    let handshake = connector.connect(reloader.server_name_for(ip), tcp);
    match crate::runtime::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Some(Ok(stream)) => Ok(MaybeTls::Tls(Box::new(stream))),
        Some(Err(e)) => Err(FillError::Tls(e)),
        None => Err(FillError::TlsHandshakeTimeout),
    }
}

/// Listener side: TLS over an accepted `tcp` connection (client certificate required), within
/// [`TLS_HANDSHAKE_TIMEOUT`].
pub(crate) async fn accept(
    reloader: &Arc<TlsReloader>,
    tcp: TcpStream,
) -> io::Result<ServerStream> {
    let acceptor = TlsAcceptor::from(reloader.server_config());
    match crate::runtime::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Some(Ok(stream)) => Ok(MaybeTls::Tls(Box::new(stream))),
        Some(Err(e)) => Err(e),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out after 10 s",
        )),
    }
}
