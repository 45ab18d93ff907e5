//! [`Options`]: what [`crate::Cluster::start`] takes besides the configuration.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use orca_cluster_driver_common::{Discovery, PeerSource};

use crate::client::{ClientSettings, Transport};

/// Options of a cluster handle (and of a client-only [`crate::FillClient`]). The default
/// resolves the configured service with hickory using `/etc/resolv.conf` (nameservers, search
/// domains, ndots), dials peers over TCP, and speaks h2c (plain mode) or h2/HTTP/1.1 by ALPN
/// (TLS mode).
#[derive(Clone, Default)]
pub struct Options {
    pub(crate) discovery: Discovery,
    pub(crate) http1: bool,
    pub(crate) transport: Option<Arc<dyn Transport>>,
    pub(crate) client: ClientSettings,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("discovery", &self.discovery)
            .field("http1", &self.http1)
            .field("custom_transport", &self.transport.is_some())
            .field("client", &self.client)
            .finish()
    }
}

impl Options {
    /// Takes peers from `source` instead of DNS (e.g. a [`crate::StaticPeerSource`], whose
    /// clones share one mutable list). Overrides the DNS options below.
    pub fn with_peer_source(mut self, source: impl PeerSource) -> Self {
        self.discovery.source = Some(Arc::new(source));
        self
    }

    /// Resolves with hickory against this one nameserver (UDP with TCP fallback), with no
    /// search domains: the service name is looked up as given.
    pub fn with_nameserver(mut self, addr: SocketAddr) -> Self {
        self.discovery.nameserver = Some(addr);
        self
    }

    /// Resolves with an explicit hickory configuration (nameservers, search domains) and
    /// options (`ndots`...). The membership settings are applied on top: no cache, A and AAAA,
    /// no hosts file, the configured lookup timeout. Ignored if a nameserver or a peer source is
    /// set.
    pub fn with_resolver_config(mut self, config: ResolverConfig, options: ResolverOpts) -> Self {
        self.discovery.resolver = Some((config, options));
        self
    }

    /// Self's port as it appears in peer records: 0 (the default) for DNS, where records carry
    /// no port; the listener's port for static sources where replicas share an IP.
    pub fn with_self_port(mut self, port: u16) -> Self {
        self.discovery.self_port = port;
        self
    }

    /// Plain mode: speak HTTP/1.1 instead of h2c (peers that only speak HTTP/1.1). TLS mode:
    /// offer only `http/1.1` by ALPN. Default false.
    pub fn with_http1(mut self, yes: bool) -> Self {
        self.http1 = yes;
        self
    }

    /// Dials peers through `transport` instead of plain TCP (tests, proxies, unix sockets).
    pub fn with_transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Client timeouts, windows and pool sizes (default [`ClientSettings::default`]).
    pub fn with_client_settings(mut self, settings: ClientSettings) -> Self {
        self.client = settings;
        self
    }
}
