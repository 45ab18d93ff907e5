//! Peer sources: where the membership task gets peer addresses from.
//!
//! [`DnsPeerSource`] resolves the headless Service with hickory (A and AAAA, resolv.conf search
//! domains and ndots, TCP fallback for truncated answers, no answer cache). It is generic over
//! hickory's connection provider, so each driver plugs in its runtime. [`StaticPeerSource`] is a
//! mutable list for tests and single-host clusters.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{DNSClass, Name, RData};
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
/// It answers the A and AAAA records owned by the queried name or its CNAME chain
/// ([`answer_records`]; records of other owner names are dropped), or
/// [`LookupFailure::NoRecords`] when none is left ([`lookup_answer`]); the core keeps those of
/// the configured `ip_family` whose address a pod can have.
pub struct DnsPeerSource<P: ConnectionProvider> {
    resolver: Arc<Resolver<P>>,
}

impl<P: ConnectionProvider> std::fmt::Debug for DnsPeerSource<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsPeerSource").finish_non_exhaustive()
    }
}

/// Resolver options for membership lookups: no cache, A and AAAA, no hosts file, one attempt per
/// server within the lookup timeout, TCP retry on errors, CNAME records kept in the answer (so
/// [`answer_records`] can follow the chain).
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
    options.preserve_intermediates = true;
    options
}

impl<P: ConnectionProvider> DnsPeerSource<P> {
    /// Uses the system configuration (`/etc/resolv.conf`: nameservers, search domains, ndots).
    pub fn from_system_conf(provider: P, lookup_timeout: Duration) -> Result<Self, NetError> {
        let mut builder = Resolver::builder(provider)?;
        let options = membership_options(builder.options_mut().clone(), lookup_timeout);
        *builder.options_mut() = options;
        let resolver = builder.build()?;
        Ok(DnsPeerSource {
            resolver: Arc::new(resolver),
        })
    }

    /// Uses one nameserver at `addr` (UDP with TCP fallback) and no search domains.
    pub fn with_nameserver(
        provider: P,
        addr: SocketAddr,
        lookup_timeout: Duration,
    ) -> Result<Self, NetError> {
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
    ) -> Result<Self, NetError> {
        let resolver = Resolver::builder_with_config(config, provider)
            .with_options(membership_options(options, lookup_timeout))
            .build()?;
        Ok(DnsPeerSource {
            resolver: Arc::new(resolver),
        })
    }
}

/// Most CNAME records followed from the queried name by [`answer_records`].
pub const MAX_CNAME_HOPS: usize = 16;

/// The peer addresses of an A/AAAA answer: the A and AAAA records whose owner name is the
/// queried name, or a name of its CNAME chain in the same answer (the CNAME record owned by
/// the queried name, then the one owned by its target, and so on, at most
/// [`MAX_CNAME_HOPS`]). Records of any other owner name — which a misbehaving or hostile
/// server may add — are dropped, as are records of another class. Names compare
/// case-insensitively.
pub fn answer_records(lookup: &Lookup) -> Vec<PeerAddr> {
    let answers = lookup.answers();
    let mut chain: Vec<&Name> = vec![lookup.query().name()];
    while chain.len() <= MAX_CNAME_HOPS {
        let Some(current) = chain.last().copied() else {
            break;
        };
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(CNAME(target)) if r.dns_class == DNSClass::IN && &r.name == current => {
                Some(target)
            }
            _ => None,
        });
        match next {
            Some(target) if !chain.contains(&target) => chain.push(target),
            _ => break,
        }
    }
    answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN && chain.contains(&&r.name))
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .map(PeerAddr::from_ip)
        .collect()
}

/// What a successful A/AAAA lookup tells the core: the peer addresses of [`answer_records`],
/// or [`LookupFailure::NoRecords`] when none is left. Never an empty
/// [`LookupAnswer::Records`], which the core reads as a static source's empty list and answers
/// with a `[self]` snapshot: an answer whose every record has a foreign owner name is a failed
/// lookup, so the last good snapshot is kept.
pub fn lookup_answer(lookup: &Lookup) -> LookupAnswer {
    let records = answer_records(lookup);
    if records.is_empty() {
        LookupAnswer::Failed(LookupFailure::NoRecords)
    } else {
        LookupAnswer::Records(records)
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
                Ok(ips) => lookup_answer(ips.as_lookup()),
                Err(e) => {
                    let failure = classify_dns_error(&e);
                    tracing::debug!(name = %name, error = %e, failure = failure.name(), "dns lookup failed");
                    LookupAnswer::Failed(failure)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::{A, AAAA};
    use hickory_resolver::proto::rr::{Record, RecordType};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn a_resolver_setup_error_is_the_start_errors_source() {
        use std::error::Error;
        let error = crate::StartError::Resolver(NetError::from(String::from("no nameservers")));
        assert_eq!(error.to_string(), "dns resolver: no nameservers");
        let source = error.source().expect("the resolver error is the source");
        assert!(source.downcast_ref::<NetError>().is_some());
        assert_eq!(source.to_string(), "no nameservers");
    }

    fn a(owner: &str, ip: &str) -> Record {
        Record::from_rdata(name(owner), 5, RData::A(A(ip.parse().unwrap())))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 5, RData::CNAME(CNAME(name(target))))
    }

    fn ips(lookup: &Lookup) -> Vec<String> {
        answer_records(lookup)
            .iter()
            .map(|p| p.ip.to_string())
            .collect()
    }

    #[test]
    fn records_of_other_owner_names_are_dropped() {
        let query = Query::query(name("orca.default.svc.cluster.local."), RecordType::A);
        let aaaa = Record::from_rdata(
            name("ORCA.default.svc.cluster.local."),
            5,
            RData::AAAA(AAAA("fd00::1".parse().unwrap())),
        );
        let lookup = Lookup::new_with_max_ttl(
            query,
            [
                a("orca.default.svc.cluster.local.", "10.0.0.1"),
                a("evil.example.", "10.9.9.9"),
                a("default.svc.cluster.local.", "10.9.9.8"),
                aaaa,
            ],
        );
        assert_eq!(ips(&lookup), ["10.0.0.1", "fd00::1"]);
    }

    #[test]
    fn an_answer_without_peer_records_is_no_records_not_an_empty_list() {
        let query = Query::query(name("orca.example."), RecordType::A);
        let foreign = Lookup::new_with_max_ttl(query.clone(), [a("evil.example.", "10.9.9.9")]);
        assert_eq!(
            lookup_answer(&foreign),
            LookupAnswer::Failed(LookupFailure::NoRecords)
        );
        let empty = Lookup::new_with_max_ttl(query.clone(), []);
        assert_eq!(
            lookup_answer(&empty),
            LookupAnswer::Failed(LookupFailure::NoRecords)
        );
        let good = Lookup::new_with_max_ttl(query, [a("orca.example.", "10.0.0.1")]);
        assert_eq!(
            lookup_answer(&good),
            LookupAnswer::Records(vec![PeerAddr::from_ip("10.0.0.1".parse().unwrap())])
        );
    }

    #[test]
    fn the_cname_chain_from_the_queried_name_is_followed() {
        let query = Query::query(name("orca.example."), RecordType::A);
        let lookup = Lookup::new_with_max_ttl(
            query,
            [
                cname("orca.example.", "hop.example."),
                cname("hop.example.", "pods.example."),
                // A CNAME not on the chain does not extend it.
                cname("elsewhere.example.", "stray.example."),
                a("pods.example.", "10.0.0.1"),
                a("hop.example.", "10.0.0.2"),
                a("stray.example.", "10.9.9.9"),
                a("elsewhere.example.", "10.9.9.8"),
            ],
        );
        assert_eq!(ips(&lookup), ["10.0.0.1", "10.0.0.2"]);

        // A loop ends the chain; a chain longer than MAX_CNAME_HOPS is cut there.
        let loop_lookup = Lookup::new_with_max_ttl(
            Query::query(name("a.example."), RecordType::A),
            [
                cname("a.example.", "b.example."),
                cname("b.example.", "a.example."),
                a("b.example.", "10.0.0.3"),
            ],
        );
        assert_eq!(ips(&loop_lookup), ["10.0.0.3"]);
        let mut long = Vec::new();
        for i in 0..=MAX_CNAME_HOPS {
            long.push(cname(
                &format!("n{i}.example."),
                &format!("n{}.example.", i + 1),
            ));
        }
        long.push(a(&format!("n{MAX_CNAME_HOPS}.example."), "10.0.0.4"));
        long.push(a(&format!("n{}.example.", MAX_CNAME_HOPS + 1), "10.9.9.9"));
        let long = Lookup::new_with_max_ttl(Query::query(name("n0.example."), RecordType::A), long);
        assert_eq!(ips(&long), ["10.0.0.4"]);
    }
}
