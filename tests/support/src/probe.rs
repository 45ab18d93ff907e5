//! TLS probes: a blocking handshake against a listener, and the rustls error behind a failure.

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orca_cluster_core::TlsSettings;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Performs a TLS handshake (blocking, `std::net`, at most 5 s) with the listener at `addr`,
/// presenting the identity of `tls` and verifying the listener against `tls.ca_file` and
/// `addr`'s IP, offering the ALPN protocols `offer`. Returns the protocol the listener picked
/// (`None`: no ALPN agreed), or the handshake error as text.
pub fn negotiated_alpn(
    addr: SocketAddr,
    tls: &TlsSettings,
    offer: &[&[u8]],
) -> Result<Option<Vec<u8>>, String> {
    let config = client_config(tls, offer)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn.alpn_protocol().map(<[u8]>::to_vec))
}

/// The [`rustls::Error`] behind `error`, looked for in `error` itself, inside `io::Error`s
/// (which rustls' async adapters return) and along the `source()` chain; `None` when the
/// failure did not come from rustls or was turned into text on the way.
pub fn rustls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = error;
    loop {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // `io::Error::source` skips the wrapped error itself; `get_ref` returns it.
        let wrapped = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|inner| inner as &(dyn Error + 'static));
        current = match wrapped {
            Some(inner) => inner,
            None => current.source()?,
        };
    }
}

/// The mutual-TLS client configuration of identity `tls` (its certificate and key, trusting
/// `tls.ca_file`), offering the ALPN protocols `offer`; errors as text.
pub fn client_config(tls: &TlsSettings, offer: &[&[u8]]) -> Result<rustls::ClientConfig, String> {
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
    config.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::rustls_error;
    use rustls::{AlertDescription, Error as TlsError};
    use std::io;

    #[test]
    fn finds_the_rustls_error_inside_io_errors() {
        let alert = TlsError::AlertReceived(AlertDescription::UnknownCA);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, alert.clone());
        assert_eq!(rustls_error(&wrapped), Some(&alert));
        let twice = io::Error::other(wrapped);
        assert_eq!(rustls_error(&twice), Some(&alert));
        assert_eq!(rustls_error(&io::Error::other("text only")), None);
    }
}
