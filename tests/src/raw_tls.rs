//! A blocking mutual-TLS client over `std::net` (rustls), to reach a TLS fill listener with
//! exactly the bytes a test chooses after the handshake.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use orca_cluster_core::TlsSettings;
use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

/// A TLS stream to a listener.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` with mutual TLS — identity and CA from `tls`, offering only `protocol`
/// in ALPN, reads time out after `read_timeout` — and completes the handshake.
/// `Err`: the handshake failed, with rustls' words.
pub fn connect(
    addr: SocketAddr,
    tls: &TlsSettings,
    protocol: &[u8],
    read_timeout: Duration,
) -> Result<TlsStream, String> {
    let config = orca_cluster_test_support::client_config(tls, &[protocol])?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect_timeout(&addr, read_timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(StreamOwned::new(conn, tcp))
}
