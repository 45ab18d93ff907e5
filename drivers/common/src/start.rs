//! Starting a cluster's membership, the same for every driver: where peers come from
//! ([`Discovery`]), validating the configuration, and spawning the membership task
//! ([`MembershipStart`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::ConnectionProvider;
use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use orca_cluster_core::peer::resolve_self_port;
use orca_cluster_core::{ClusterConfig, Membership};

use crate::error::StartError;
use crate::runtime::{Clock, Runtime};
use crate::source::{DnsPeerSource, PeerSource};
use crate::state::ClusterState;
use crate::task::run_membership;

/// Where a cluster's peers come from, beyond [`ClusterConfig`]; held by both drivers' `Options`.
///
/// The default is production: DNS through `/etc/resolv.conf` and a self port of 0.
#[derive(Clone, Default)]
pub struct Discovery {
    /// A custom source instead of DNS (e.g. a `StaticPeerSource`); takes precedence over the
    /// DNS settings.
    pub source: Option<Arc<dyn PeerSource>>,
    /// Ask only this DNS server (UDP, TCP on truncation), with no search domains; takes
    /// precedence over `resolver`.
    pub nameserver: Option<SocketAddr>,
    /// An explicit hickory configuration and options (the membership options are applied on
    /// top: no cache, A and AAAA, the lookup timeout).
    pub resolver: Option<(ResolverConfig, ResolverOpts)>,
    /// This replica's port as it appears in peer records: 0 (unset) for DNS, where records
    /// carry no port; the listener's port for static sources where replicas share an IP. With
    /// a static list that carries ports it may stay 0 when exactly one entry is a self IP (its
    /// port is used); see [`MembershipStart::new`].
    pub self_port: u16,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("custom_source", &self.source.is_some())
            .field("nameserver", &self.nameserver)
            .field("resolver", &self.resolver.as_ref().map(|(c, _)| c))
            .field("self_port", &self.self_port)
            .finish()
    }
}

impl Discovery {
    /// The peer source for `config`: the custom source if set, else DNS at the nameserver, else
    /// DNS with the explicit resolver configuration, else DNS from `/etc/resolv.conf`. DNS
    /// lookups time out after `config.lookup_timeout` and answer every A and AAAA record (the
    /// core keeps those of `config.ip_family`). `provider` is the driver's hickory runtime.
    pub fn peer_source<P: ConnectionProvider>(
        &self,
        provider: P,
        config: &ClusterConfig,
    ) -> Result<Arc<dyn PeerSource>, StartError> {
        if let Some(source) = &self.source {
            return Ok(source.clone());
        }
        let timeout = config.lookup_timeout;
        let source = if let Some(addr) = self.nameserver {
            DnsPeerSource::with_nameserver(provider, addr, timeout)
        } else if let Some((resolver, opts)) = &self.resolver {
            DnsPeerSource::with_config(provider, resolver.clone(), opts.clone(), timeout)
        } else {
            DnsPeerSource::from_system_conf(provider, timeout)
        };
        Ok(Arc::new(source.map_err(StartError::Resolver)?))
    }
}

/// A validated, not yet running membership: built by [`MembershipStart::new`], started by
/// [`MembershipStart::spawn`]. Drivers load their TLS material in between, so a TLS error
/// leaves no task behind.
pub struct MembershipStart {
    machine: Membership,
    self_port: u16,
    source: Arc<dyn PeerSource>,
    clock: Clock,
    state: Arc<ClusterState>,
}

impl fmt::Debug for MembershipStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipStart")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl MembershipStart {
    /// Fills an empty `config.self_pod_ip` from the `POD_IP` environment variable, validates
    /// `config` (errors name the field), builds the peer source, resolves the self port, and
    /// builds the state machine and the shared state holding the bootstrap snapshot `[self]`.
    ///
    /// The self port is `discovery.self_port`, checked against the list of a static source
    /// that carries ports, or taken from its one entry with a self IP when unset
    /// ([`resolve_self_port`]): a list that does not contain this replica is a
    /// [`StartError::Config`] naming `self_port`.
    pub fn new<P: ConnectionProvider>(
        config: &mut ClusterConfig,
        discovery: &Discovery,
        provider: P,
    ) -> Result<MembershipStart, StartError> {
        config.self_pod_ip = crate::self_ips_or_env(&config.self_pod_ip)?;
        let mut membership = config.membership()?;
        let source = discovery.peer_source(provider, config)?;
        let static_peers = source.static_peers();
        membership.self_port = resolve_self_port(
            &membership.self_ips,
            discovery.self_port,
            static_peers.as_deref(),
        )?;
        let clock = Clock::new();
        let machine = Membership::new(&membership, clock.now())?;
        let state =
            ClusterState::with_max_chunk_size(machine.snapshot().clone(), config.max_chunk_size);
        Ok(MembershipStart {
            machine,
            self_port: membership.self_port,
            source,
            clock,
            state,
        })
    }

    /// This replica's port in peer records, as resolved by [`MembershipStart::new`].
    pub fn self_port(&self) -> u16 {
        self.self_port
    }

    /// The shared state the membership task will publish to.
    pub fn state(&self) -> &Arc<ClusterState> {
        &self.state
    }

    /// Spawns the membership task on `runtime`; returns the shared state.
    pub fn spawn<R: Runtime>(self, runtime: &R) -> Arc<ClusterState> {
        let state = self.state.clone();
        runtime.spawn(run_membership(
            runtime.clone(),
            self.clock,
            self.machine,
            self.source,
            self.state,
        ));
        state
    }
}
