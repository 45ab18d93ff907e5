//! Mutual TLS for the fill RPC: ALPN choices and loading the reloadable configuration.
//!
//! The PEM files are handled by [`TlsReloader`] (drivers/common): it re-reads them when they
//! change on disk, so each new connection, on either side, uses the current certificates while
//! established connections keep theirs.

use std::sync::Arc;

use orca_cluster_core::TlsSettings;
use orca_cluster_driver_common::{TlsError, TlsFiles, TlsReloader};

/// ALPN protocols the listener accepts, in preference order: `h2`, then `http/1.1`.
pub const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN protocols the client offers by default: `h2`, then `http/1.1`.
pub const CLIENT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN protocols the client offers in HTTP/1.1 mode: `http/1.1` only.
pub const CLIENT_ALPN_HTTP1: [&[u8]; 1] = [b"http/1.1"];

/// Loads the TLS material of `settings` when `settings.enabled` (else `Ok(None)`), with the
/// listener's ALPN and the client's (HTTP/1.1 only when `http1`).
pub fn load_reloader(
    settings: &TlsSettings,
    http1: bool,
) -> Result<Option<Arc<TlsReloader>>, TlsError> {
    if !settings.enabled {
        return Ok(None);
    }
    let client_alpn: &[&[u8]] = if http1 {
        &CLIENT_ALPN_HTTP1
    } else {
        &CLIENT_ALPN
    };
    let reloader = TlsReloader::load(TlsFiles::from_settings(settings), &SERVER_ALPN, client_alpn)?;
    Ok(Some(Arc::new(reloader)))
}
