//! [`ListenerSettings`]: limits of the fill listener.

use std::time::Duration;

/// Limits of the fill listener. Construct with `ListenerSettings { max_concurrent: 64,
/// ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Fill requests served at once; more are answered 503 at once (no queueing). Default 256.
    pub max_concurrent: usize,
    /// Largest request head in bytes: HTTP/1.1 request line and headers (hyper's buffer, never
    /// below its minimum of 8 KiB), HTTP/2 header list. Default 16 KiB.
    pub max_header_bytes: usize,
    /// How long a TLS handshake may take before the connection is dropped. Default 10 s.
    pub tls_handshake_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_concurrent: 256,
            max_header_bytes: 16 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}
