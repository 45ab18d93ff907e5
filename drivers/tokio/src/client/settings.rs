//! Tuning of the fill client: timeouts, HTTP/2 flow-control windows, pool sizes.

use std::time::Duration;

/// Default HTTP/2 stream window, advertised by both client and listener: 8 MiB.
///
/// With the protocol's 64 KiB default one 8 MiB stream crawls even on loopback; a window at
/// least as large as a chunk lets the sender stream a whole chunk without waiting for
/// `WINDOW_UPDATE`s.
pub const DEFAULT_STREAM_WINDOW: u32 = 8 << 20;
/// Default HTTP/2 connection window (shared by all streams of a connection): 16 MiB.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 16 << 20;
/// Default largest HTTP/2 frame payload this side accepts: 1 MiB (protocol default 16 KiB).
/// Larger `DATA` frames mean fewer frames and fewer wake-ups per chunk.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 20;
/// Default send buffer per HTTP/2 stream of the listener: 1 MiB (hyper's default is 400 KiB).
pub const DEFAULT_MAX_SEND_BUF: usize = 1 << 20;

/// Settings of the fill client. `ClientSettings::default()` is what production uses; tests
/// shorten the timeouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// How long opening the connection (the [`crate::Transport`]'s `connect`) may take: 10 s.
    pub connect_timeout: Duration,
    /// How long the TLS handshake may take once connected: 10 s.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed: 30 s.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive `PING` interval, also while idle: 10 s.
    pub keep_alive_interval: Duration,
    /// A connection whose `PING` is not answered within this is closed: 10 s.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 initial stream window in bytes: [`DEFAULT_STREAM_WINDOW`] (8 MiB). Windows are
    /// clamped to HTTP/2's range (64 KiB - 1 to 2 GiB - 1), frame sizes to 16 KiB to 16 MiB - 1.
    pub stream_window: u32,
    /// HTTP/2 initial connection window in bytes: [`DEFAULT_CONNECTION_WINDOW`] (16 MiB).
    pub connection_window: u32,
    /// Largest HTTP/2 frame payload accepted, in bytes: [`DEFAULT_MAX_FRAME_SIZE`] (1 MiB).
    pub max_frame_size: u32,
    /// HTTP/1.1 only: idle keep-alive connections kept per peer: 32. An HTTP/1.1 connection
    /// carries one request at a time, so concurrent fills to one peer open more connections;
    /// beyond this many, finished connections are closed instead of pooled.
    pub max_idle_per_peer: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(10),
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_idle_per_peer: 32,
        }
    }
}
