//! A blocking mutual-TLS client over `std::net` (rustls), to reach a TLS fill listener with
//! exactly the bytes a test chooses after the handshake.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use orca_cluster_core::TlsSettings;
use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

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
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![protocol.to_vec()];
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
