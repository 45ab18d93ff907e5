//! [`Options`]: how a cluster finds its peers and talks to them, beyond the
//! [`ClusterConfig`](orca_cluster_core::ClusterConfig). The same options, with the same defaults,
//! on both drivers; a setting a driver cannot honour fails [`crate::Cluster::start`] with
//! [`crate::StartError::Unsupported`] instead of being ignored.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};

use crate::driver::{Driver, Transport};
use crate::error::StartError;
use crate::source::PeerSource;
use crate::start::Discovery;

/// The HTTP protocol of the fill client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The default. Plain mode: HTTP/1.1, which every driver's listener (and Go's) speaks, so
    /// mixed clusters work. TLS mode: ALPN offers what the driver speaks (tokio: `h2`, then
    /// `http/1.1`; smol: `http/1.1`) and the listener picks.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN offers only `http/1.1`).
    Http1,
    /// HTTP/2: prior knowledge (h2c) in plain mode, ALPN `h2` then `http/1.1` with TLS. Only for
    /// clusters whose listeners all speak HTTP/2 (the tokio driver's do, the smol driver's do
    /// not). Rejected at start by a driver without HTTP/2.
    Http2,
}

impl Protocol {
    /// `"auto"`, `"http1"` or `"http2"`.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// Default HTTP/2 stream window: 8 MiB (a whole default chunk in flight).
pub const DEFAULT_STREAM_WINDOW: u32 = 8 << 20;
/// Default HTTP/2 connection window: 16 MiB.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 16 << 20;
/// Default HTTP/2 maximum frame size: 1 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 20;
/// Default HTTP/2 send buffer per stream: 1 MiB.
pub const DEFAULT_MAX_SEND_BUF: usize = 1 << 20;

/// HTTP/2 settings of the client (and of the listener's windows). They apply only where HTTP/2
/// is spoken; a driver without HTTP/2 rejects non-default values at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Settings {
    /// Initial stream window in bytes (default [`DEFAULT_STREAM_WINDOW`]).
    pub stream_window: u32,
    /// Initial connection window in bytes (default [`DEFAULT_CONNECTION_WINDOW`]).
    pub connection_window: u32,
    /// Largest frame accepted, in bytes (default [`DEFAULT_MAX_FRAME_SIZE`]).
    pub max_frame_size: u32,
    /// Interval of keep-alive pings on a connection (default 10 s; zero disables them).
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed (default 10 s).
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

/// Default of [`ClientSettings::connect_timeout`]: 2 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of [`ClientSettings::peer_backoff_initial`]: 250 ms.
pub const DEFAULT_PEER_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Default of [`ClientSettings::peer_backoff_max`]: 10 s.
pub const DEFAULT_PEER_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Default of [`ClientSettings::max_idle_per_peer`]: 16.
pub const DEFAULT_MAX_IDLE_PER_PEER: usize = 16;

/// Timeouts and limits of the fill client, the same on both drivers. There is no total request
/// timeout: the caller's deadline rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Longest a TCP connect may take (default [`DEFAULT_CONNECT_TIMEOUT`], 2 s: round trips
    /// inside a cluster network take well under a millisecond, and 2 s still covers one lost
    /// SYN (Linux resends it after 1 s); a dead or blackholed pod then costs the one fill that
    /// finds it 2 s, and peer health spares the others).
    pub connect_timeout: Duration,
    /// First backoff window of a peer that failed to connect (default
    /// [`DEFAULT_PEER_BACKOFF_INITIAL`], 250 ms): fills to it fail at once with
    /// `FillError::PeerUnavailable` meanwhile. Each failed probe doubles the window.
    pub peer_backoff_initial: Duration,
    /// Longest backoff window (default [`DEFAULT_PEER_BACKOFF_MAX`], 10 s): a peer that stays
    /// down is probed (one connect) this often.
    pub peer_backoff_max: Duration,
    /// Longest a TLS handshake may take (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// A pooled connection that carried no request for this long is closed (default 30 s).
    pub idle_timeout: Duration,
    /// Idle HTTP/1.1 keep-alive connections kept per peer (default
    /// [`DEFAULT_MAX_IDLE_PER_PEER`]); HTTP/2 uses one multiplexed connection per peer.
    pub max_idle_per_peer: usize,
    /// HTTP/2 only: windows, frame size, pings.
    pub http2: Http2Settings,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            peer_backoff_initial: DEFAULT_PEER_BACKOFF_INITIAL,
            peer_backoff_max: DEFAULT_PEER_BACKOFF_MAX,
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_idle_per_peer: DEFAULT_MAX_IDLE_PER_PEER,
            http2: Http2Settings::default(),
        }
    }
}

/// Options of `Cluster::start` and `FillClient::new`. `Options::default()` is production: DNS
/// through `/etc/resolv.conf`, self port 0, [`Protocol::Auto`], default [`ClientSettings`],
/// TCP. Clones share the peer source and transport.
pub struct Options<D: Driver> {
    pub(crate) discovery: Discovery,
    pub(crate) protocol: Protocol,
    pub(crate) client: ClientSettings,
    pub(crate) transport: Option<Arc<dyn Transport<D::Io>>>,
}

impl<D: Driver> Default for Options<D> {
    fn default() -> Self {
        Options {
            discovery: Discovery::default(),
            protocol: Protocol::Auto,
            client: ClientSettings::default(),
            transport: None,
        }
    }
}

impl<D: Driver> Clone for Options<D> {
    fn clone(&self) -> Self {
        Options {
            discovery: self.discovery.clone(),
            protocol: self.protocol,
            client: self.client.clone(),
            transport: self.transport.clone(),
        }
    }
}

impl<D: Driver> fmt::Debug for Options<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("driver", &D::NAME)
            .field("discovery", &self.discovery)
            .field("protocol", &self.protocol)
            .field("client", &self.client)
            .field("custom_transport", &self.transport.is_some())
            .finish()
    }
}

impl<D: Driver> Options<D> {
    /// Uses `source` instead of DNS (e.g. a [`crate::StaticPeerSource`] for tests and
    /// single-host clusters). Takes precedence over every DNS option.
    pub fn with_peer_source(mut self, source: impl PeerSource) -> Self {
        self.discovery.source = Some(Arc::new(source));
        self
    }

    /// Resolves the service at this DNS server only (UDP, TCP on truncation), without
    /// resolv.conf search domains: `service` must then be a fully qualified name.
    pub fn with_nameserver(mut self, addr: SocketAddr) -> Self {
        self.discovery.nameserver = Some(addr);
        self
    }

    /// Resolves with an explicit hickory configuration; the membership options (no cache, A and
    /// AAAA, the lookup timeout) are applied on top of `options`.
    /// [`Options::with_nameserver`] takes precedence.
    pub fn with_resolver_config(mut self, config: ResolverConfig, options: ResolverOpts) -> Self {
        self.discovery.resolver = Some((config, options));
        self
    }

    /// This replica's port as it appears in peer records: 0 (the default) for DNS, where
    /// records carry no port; the listener's port for static lists where replicas share an IP.
    pub fn with_self_port(mut self, port: u16) -> Self {
        self.discovery.self_port = port;
        self
    }

    /// The fill client's protocol (default [`Protocol::Auto`]).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Timeouts and limits of the fill client (default [`ClientSettings::default`]).
    pub fn with_client_settings(mut self, settings: ClientSettings) -> Self {
        self.client = settings;
        self
    }

    /// Opens peer connections through `transport` instead of TCP (tests: blackholes, counters).
    pub fn with_transport(mut self, transport: impl Transport<D::Io>) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The peer source these options select for `config` (the custom source, else DNS as
    /// configured), on the current runtime: what `Cluster::start` looks peers up with. For
    /// tools that resolve without running membership.
    pub fn peer_source(
        &self,
        config: &orca_cluster_core::ClusterConfig,
    ) -> Result<Arc<dyn PeerSource>, StartError> {
        self.discovery.peer_source(D::current().dns(), config)
    }

    /// The fill client's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The client settings.
    pub fn client_settings(&self) -> &ClientSettings {
        &self.client
    }

    /// Checks that driver `D` can honour every setting: [`Protocol::Http2`] and non-default
    /// [`Http2Settings`] need a driver that speaks HTTP/2.
    pub fn validate(&self) -> Result<(), StartError> {
        if D::PROTOCOLS.contains(&Protocol::Http2) {
            return Ok(());
        }
        if self.protocol == Protocol::Http2 {
            return Err(StartError::Unsupported {
                setting: "protocol",
                driver: D::NAME,
                reason: "this driver speaks HTTP/1.1 only; use Protocol::Auto or Protocol::Http1",
            });
        }
        if self.client.http2 != Http2Settings::default() {
            return Err(StartError::Unsupported {
                setting: "client.http2",
                driver: D::NAME,
                reason: "this driver speaks HTTP/1.1 only; HTTP/2 settings cannot apply",
            });
        }
        Ok(())
    }

    /// The ALPN protocols the client offers: `h2` (when [`Protocol::Auto`] or
    /// [`Protocol::Http2`] and the driver speaks it), then `http/1.1`.
    pub fn client_alpn(&self) -> Vec<&'static [u8]> {
        let h2 = self.protocol != Protocol::Http1 && D::PROTOCOLS.contains(&Protocol::Http2);
        alpn(h2)
    }

    /// Whether plain-mode connections speak HTTP/2 with prior knowledge.
    pub fn plain_h2(&self) -> bool {
        self.protocol == Protocol::Http2
    }
}

/// The ALPN protocols a driver's listener offers: `h2` if it speaks HTTP/2, then `http/1.1`.
pub fn server_alpn<D: Driver>() -> Vec<&'static [u8]> {
    alpn(D::PROTOCOLS.contains(&Protocol::Http2))
}

fn alpn(h2: bool) -> Vec<&'static [u8]> {
    if h2 {
        vec![b"h2", b"http/1.1"]
    } else {
        vec![b"http/1.1"]
    }
}
