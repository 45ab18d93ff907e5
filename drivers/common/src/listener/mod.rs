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
mod watch;

use std::net::SocketAddr;
use std::time::Duration;

pub use control::{ConnectionGuard, ListenerControl, ListenerHandle};
pub use filler_body::FillerBody;
pub use pipeline::{FillPipeline, FixedReply, Reply, ReplyFuture};
pub use socket::FillListener;
pub use watch::{ConnectionWatch, Expiry, RequestGuard};

/// Default of [`ListenerSettings::max_concurrent`]: 256.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default of [`ListenerSettings::max_header_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default of [`ListenerSettings::tls_handshake_timeout`]: 10 s.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ListenerSettings::header_read_timeout`]: 30 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ListenerSettings::idle_timeout`]: 90 s (longer than the fill client's 30 s idle
/// timeout, so a client closes a pooled connection before the listener does).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default of [`ListenerSettings::send_timeout`]: 60 s.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ListenerSettings::max_concurrent_per_connection`]: 64.
pub const DEFAULT_MAX_CONCURRENT_PER_CONNECTION: usize = 64;
/// Default of [`ListenerSettings::max_connections`]: 1024.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

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
    /// How long a new connection may take to deliver its first complete request head,
    /// counted from the accept, TLS handshake included (a connection that sends nothing, part
    /// of the HTTP/2 preface, or nothing after its handshake is closed); and, on HTTP/1.1, how
    /// long a keep-alive connection may wait for, and take to send, its next request head
    /// (default [`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// How long a connection may have no request in flight before it is closed, whatever
    /// else it sends (HTTP/2 PINGs do not count) (default [`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// How long a fill response may wait for the client to take its next bytes (a closed
    /// HTTP/2 flow-control window, an HTTP/1.1 client that stops reading) before the
    /// connection is closed, which aborts its fills and frees their slots (default
    /// [`DEFAULT_SEND_TIMEOUT`]). Time the filler takes to produce bytes does not count.
    pub send_timeout: Duration,
    /// Fills of one connection served at once (default
    /// [`DEFAULT_MAX_CONCURRENT_PER_CONNECTION`]); more are answered 503, so one client
    /// cannot take every slot of `max_concurrent` through one connection. HTTP/2 connections
    /// advertise it as `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_per_connection: usize,
    /// Connections open at once (default [`DEFAULT_MAX_CONNECTIONS`]). At the limit the
    /// listener stops accepting until one closes (new connections wait in the kernel's
    /// backlog), so a flood of connections cannot take the process's last file descriptors.
    pub max_connections: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_concurrent_per_connection: DEFAULT_MAX_CONCURRENT_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
