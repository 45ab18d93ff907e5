//! The listener side, written once for both drivers: the request pipeline ([`FillPipeline`]:
//! admission by the core → concurrency limit → the application's filler → a [`Reply`]), the
//! guarded response body ([`FillerBody`]), the shutdown control shared by a listener's accept
//! loop and connections ([`ListenerControl`], [`ListenerHandle`]), and the settings.
//!
//! A driver only accepts connections, runs the TLS handshake, decodes request heads (hyper, or
//! the core's HTTP/1.1 codec), hands [`orca_cluster_core::admission::FillRequestHead`] to the
//! pipeline and writes the [`Reply`].

mod control;
mod filler_body;
mod pipeline;
mod socket;

use std::net::SocketAddr;
use std::time::Duration;

pub use control::{ConnectionGuard, ListenerControl, ListenerHandle};
pub use filler_body::FillerBody;
pub use pipeline::{FillPipeline, FixedReply, Reply, ReplyFuture};
pub use socket::FillListener;

/// Default of [`ListenerSettings::max_concurrent`]: 256.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default of [`ListenerSettings::max_header_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default of [`ListenerSettings::tls_handshake_timeout`]: 10 s.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ListenerSettings::header_read_timeout`]: 30 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits of a fill listener, the same on both drivers. Construct with
/// `ListenerSettings { max_concurrent: 64, ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Fills served at once (default [`DEFAULT_MAX_CONCURRENT`]); admitted requests beyond it
    /// get 503 at once (no queueing). A fill counts from the filler call until its response
    /// body ends.
    pub max_concurrent: usize,
    /// Largest request head in bytes (default [`DEFAULT_MAX_HEADER_BYTES`]): the HTTP/1.1
    /// request line and fields (a longer head is answered 431 and its connection closed), the
    /// HTTP/2 header list.
    pub max_header_bytes: usize,
    /// How long a TLS handshake may take before the connection is dropped (default
    /// [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`]).
    pub tls_handshake_timeout: Duration,
    /// HTTP/1.1: how long a keep-alive connection may wait for, and take to send, its next
    /// request head before it is closed (default [`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// Logs the loud warning of a listener serving without TLS (`event = "plain_listener"`).
pub fn warn_plain_listener(addr: SocketAddr) {
    tracing::warn!(
        event = "plain_listener",
        %addr,
        "fill listener serving WITHOUT TLS: any host that can reach this port can read cached \
         chunks; enable cluster.internal_tls in production"
    );
}
