//! [`Options`]: how a [`crate::Cluster`] finds its peers and talks to them, beyond the
//! [`ClusterConfig`](orca_cluster_core::ClusterConfig).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use orca_cluster_driver_common::{Discovery, PeerSource};

use crate::client::pool::PoolSettings;

/// Options of [`crate::Cluster::start`]. `Options::default()` is production: DNS through
/// `/etc/resolv.conf`, self port 0, the default connection pool. Clones share the peer source.
#[derive(Clone, Default)]
pub struct Options {
    pub(crate) discovery: Discovery,
    pub(crate) pool: PoolSettings,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("discovery", &self.discovery)
            .field("pool", &self.pool)
            .finish()
    }
}

impl Options {
    /// Uses `source` instead of DNS (e.g. a [`crate::StaticPeerSource`] for tests and
    /// single-host clusters). Takes precedence over every DNS option.
    pub fn with_peer_source(mut self, source: impl PeerSource) -> Self {
        self.discovery.source = Some(Arc::new(source));
        self
    }

    /// Resolves the service at this DNS server only (UDP, TCP on truncation), without
    /// resolv.conf search domains: `service` must be a fully qualified name.
    pub fn with_nameserver(mut self, addr: SocketAddr) -> Self {
        self.discovery.nameserver = Some(addr);
        self
    }

    /// Resolves with an explicit hickory configuration (e.g. from
    /// `hickory_resolver::system_conf::parse_resolv_conf`); the membership options (no cache,
    /// A and AAAA, one attempt within the lookup timeout) are applied on top of `options`.
    /// [`Options::with_nameserver`] takes precedence.
    pub fn with_resolver_config(mut self, config: ResolverConfig, options: ResolverOpts) -> Self {
        self.discovery.resolver = Some((config, options));
        self
    }

    /// This replica's port as it appears in peer records: 0 (the default) for DNS, where
    /// records carry no port; the listener's port for static sources where replicas share an IP.
    pub fn with_self_port(mut self, port: u16) -> Self {
        self.discovery.self_port = port;
        self
    }

    /// Accepted for API parity with the tokio driver, and ignored: this driver always speaks
    /// HTTP/1.1 (plain or over TLS with ALPN `http/1.1`).
    pub fn with_http1(self, _yes: bool) -> Self {
        self
    }

    /// Limits of the keep-alive connection pool (default: 16 idle connections per peer, 30 s
    /// idle timeout).
    pub fn with_pool_settings(mut self, settings: PoolSettings) -> Self {
        self.pool = settings;
        self
    }
}
