//! Peer discovery by DNS with hickory on tokio, and the choice of peer source for a cluster.
//!
//! Lookups go through [`DnsPeerSource`] (drivers/common) with hickory's
//! [`TokioRuntimeProvider`]: A and AAAA records, `/etc/resolv.conf` search domains and `ndots`,
//! TCP retry when a UDP answer is truncated (a Service of 1000 pods resolves completely), no
//! answer cache (`cache_size = 0`, TTLs clamped to zero) so a change shows at the next refresh,
//! and the lookup timeout as hickory's own timeout (the membership task also abandons a lookup
//! at its deadline). Every failure kind reaches the core as its own
//! [`orca_cluster_core::LookupFailure`].

use std::sync::Arc;

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use orca_cluster_core::ClusterConfig;
use orca_cluster_driver_common::{DnsPeerSource, PeerSource, StartError};

use crate::options::Options;

/// The DNS peer source with hickory on tokio.
pub type TokioDnsPeerSource = DnsPeerSource<TokioRuntimeProvider>;

/// The peer source a cluster started with `config` and `options` uses: the custom source of
/// [`Options::with_peer_source`] if set, else DNS at [`Options::with_nameserver`], else DNS
/// with [`Options::with_resolver_config`], else DNS from `/etc/resolv.conf`. DNS lookups time
/// out after `config.lookup_timeout`.
///
/// Useful on its own for one-shot lookups (`peers` commands): call
/// [`PeerSource::lookup`] with `config.service`.
pub fn peer_source(
    config: &ClusterConfig,
    options: &Options,
) -> Result<Arc<dyn PeerSource>, StartError> {
    options
        .discovery
        .peer_source(TokioRuntimeProvider::default(), config)
}
