//! Peer sources: where the membership task gets peer addresses from.
//!
//! [`DnsPeerSource`] resolves the headless Service with hickory (A and AAAA, resolv.conf search
//! domains and ndots, TCP fallback for truncated answers, no answer cache). It is generic over
//! hickory's connection provider, so each driver plugs in its runtime. [`StaticPeerSource`] is a
//! mutable list for tests and single-host clusters.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{ConnectionProvider, Resolver};
use orca_cluster_core::{LookupAnswer, LookupFailure, PeerAddr};

/// A source of peer addresses. The membership task calls [`PeerSource::lookup`] once per refresh
/// and abandons (drops) the future at the lookup deadline.
pub trait PeerSource: Send + Sync + 'static {
    /// Looks up the peers of `name`. Failures are answers
    /// ([`LookupAnswer::Failed`]), not panics.
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = LookupAnswer> + Send + 'static>>;

    /// The list of a static source, as it is now; `None` (the default) for DNS and other
    /// sources. Start-up checks the self port against it
    /// ([`orca_cluster_core::peer::resolve_self_port`]).
    fn static_peers(&self) -> Option<Vec<PeerAddr>> {
        None
    }
}

/// A fixed but mutable list of peers (tests, single-host clusters). Clones share the list.
///
/// An empty list answers `Records([])`, which the core turns into `[self]` (rule 5).
#[derive(Clone, Debug, Default)]
pub struct StaticPeerSource {
    peers: Arc<Mutex<Vec<PeerAddr>>>,
}

impl StaticPeerSource {
    /// A source answering `peers`.
    pub fn new(peers: impl IntoIterator<Item = SocketAddr>) -> StaticPeerSource {
        let source = StaticPeerSource::default();
        source.set(peers);
        source
    }

    /// Replaces the list; the next refresh picks it up.
    pub fn set(&self, peers: impl IntoIterator<Item = SocketAddr>) {
        let list: Vec<PeerAddr> = peers.into_iter().map(PeerAddr::from).collect();
        *self.peers.lock().unwrap_or_else(PoisonError::into_inner) = list;
    }

    /// The current list.
    pub fn get(&self) -> Vec<SocketAddr> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|p| SocketAddr::new(p.ip, p.port))
            .collect()
    }
}

impl PeerSource for StaticPeerSource {
    fn lookup(&self, _name: &str) -> Pin<Box<dyn Future<Output = LookupAnswer> + Send + 'static>> {
        let list = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(std::future::ready(LookupAnswer::Records(list)))
    }

    fn static_peers(&self) -> Option<Vec<PeerAddr>> {
        Some(
            self.peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Resolves the headless Service with hickory. Every lookup asks the server again: the answer
/// cache is disabled, so a pod that leaves disappears at the next refresh, not after a TTL.
///
/// It answers every A and AAAA record; the core keeps those of the configured `ip_family`.
pub struct DnsPeerSource<P: ConnectionProvider> {
    resolver: Arc<Resolver<P>>,
}

impl<P: ConnectionProvider> std::fmt::Debug for DnsPeerSource<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsPeerSource").finish_non_exhaustive()
    }
}

/// Resolver options for membership lookups: no cache, A and AAAA, no hosts file, one attempt per
/// server within the lookup timeout, TCP retry on errors.
pub fn membership_options(mut options: ResolverOpts, lookup_timeout: Duration) -> ResolverOpts {
    options.cache_size = 0;
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = lookup_timeout;
    options.attempts = 1;
    options.try_tcp_on_error = true;
    options.edns0 = true;
    options
}

impl<P: ConnectionProvider> DnsPeerSource<P> {
    /// Uses the system configuration (`/etc/resolv.conf`: nameservers, search domains, ndots).
    pub fn from_system_conf(provider: P, lookup_timeout: Duration) -> Result<Self, String> {
        let mut builder = Resolver::builder(provider).map_err(|e| e.to_string())?;
        let options = membership_options(builder.options_mut().clone(), lookup_timeout);
        *builder.options_mut() = options;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(DnsPeerSource {
            resolver: Arc::new(resolver),
        })
    }

    /// Uses one nameserver at `addr` (UDP with TCP fallback) and no search domains.
    pub fn with_nameserver(
        provider: P,
        addr: SocketAddr,
        lookup_timeout: Duration,
    ) -> Result<Self, String> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = addr.port();
        }
        Self::with_config(
            provider,
            ResolverConfig::from_parts(None, vec![], vec![ns]),
            ResolverOpts::default(),
            lookup_timeout,
        )
    }

    /// Uses an explicit hickory configuration (the membership options are applied on top).
    pub fn with_config(
        provider: P,
        config: ResolverConfig,
        options: ResolverOpts,
        lookup_timeout: Duration,
    ) -> Result<Self, String> {
        let resolver = Resolver::builder_with_config(config, provider)
            .with_options(membership_options(options, lookup_timeout))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DnsPeerSource {
            resolver: Arc::new(resolver),
        })
    }
}

/// Maps a hickory error to the core's failure kinds.
pub fn classify_dns_error(error: &NetError) -> LookupFailure {
    match error {
        NetError::Timeout => LookupFailure::Timeout,
        NetError::Io(_) => LookupFailure::Io,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => LookupFailure::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => LookupFailure::Refused,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => LookupFailure::NxDomain,
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => LookupFailure::NxDomain,
            ResponseCode::ServFail => LookupFailure::ServFail,
            ResponseCode::Refused => LookupFailure::Refused,
            _ => LookupFailure::NoRecords,
        },
        NetError::Proto(_) => LookupFailure::Io,
        _ => LookupFailure::Other,
    }
}

impl<P: ConnectionProvider> PeerSource for DnsPeerSource<P> {
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = LookupAnswer> + Send + 'static>> {
        let resolver = self.resolver.clone();
        let name = name.to_owned();
        Box::pin(async move {
            match resolver.lookup_ip(name.as_str()).await {
                Ok(ips) => {
                    let records: Vec<PeerAddr> = ips.iter().map(PeerAddr::from_ip).collect();
                    if records.is_empty() {
                        LookupAnswer::Failed(LookupFailure::NoRecords)
                    } else {
                        LookupAnswer::Records(records)
                    }
                }
                Err(e) => {
                    let failure = classify_dns_error(&e);
                    tracing::debug!(name = %name, error = %e, failure = failure.name(), "dns lookup failed");
                    LookupAnswer::Failed(failure)
                }
            }
        })
    }
}
