//! [`Cluster`]: the handle an application holds: membership, coordinator lookups, fills.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Snapshot};
use orca_cluster_driver_common::{
    CloseError, ClusterState, FillError, MembershipStart, Runtime, StartError, StatsSnapshot,
    Subscription, TlsReloader,
};

use crate::client::{FillBody, FillClient};
use crate::options::Options;
use crate::runtime::TokioRuntime;

/// How long [`Cluster::start`] waits beyond the lookup timeout for the membership task to
/// publish the outcome of the first lookup (scheduling slack on a busy machine).
const START_SLACK: Duration = Duration::from_secs(1);

/// A running replica's view of the cluster. Cheap to clone; clones share everything.
///
/// One background task owns the membership state machine (refreshing every
/// `membership_refresh`); coordinator lookups read the published snapshot lock-free and never
/// wait on it. When the last clone is dropped the task stops (as with [`Cluster::close`]).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<ClusterState>,
    runtime: TokioRuntime,
    client: FillClient,
    tls: Option<Arc<TlsReloader>>,
    config: ClusterConfig,
    self_port: u16,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.state.signal_shutdown();
        self.client.close();
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("service", &self.inner.config.service)
            .field("self_pod_ip", &self.inner.config.self_pod_ip)
            .field("self_port", &self.inner.self_port)
            .field("tls", &self.inner.tls.is_some())
            .field("generation", &self.inner.state.peers().generation())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts a cluster handle on the current tokio runtime.
    ///
    /// Validates `config` (errors name the field); fills an empty `self_pod_ip` from the
    /// comma-separated `POD_IP` environment variable; loads the TLS files when
    /// `config.internal_tls.enabled`; builds the peer source ([`crate::dns::peer_source`]);
    /// spawns the membership task; and returns once the first lookup has been answered or has
    /// failed — at most `config.lookup_timeout` (default 3 s) plus scheduling slack (≤ 1 s).
    /// After a failed first lookup the snapshot is `[self]` and
    /// [`Cluster::has_initial_snapshot`] is true (bootstrap failure).
    pub async fn start(config: ClusterConfig, options: Options) -> Result<Cluster, StartError> {
        let mut config = config;
        let start = MembershipStart::new(
            &mut config,
            &options.discovery,
            TokioRuntimeProvider::default(),
        )?;
        let tls = crate::tls::load_reloader(&config.internal_tls, options.http1)?;
        let runtime = TokioRuntime::current();
        let state = start.spawn(&runtime);

        let client = FillClient::for_cluster(&config, &options, tls.clone(), state.clone());
        runtime.spawn(evict_departed_peers(state.subscribe(), client.clone()));

        let cluster = Cluster {
            inner: Arc::new(Inner {
                state,
                runtime,
                client,
                tls,
                config,
                self_port: options.discovery.self_port,
            }),
        };
        let inner = &cluster.inner;
        inner
            .state
            .wait_initial(&inner.runtime, inner.config.lookup_timeout + START_SLACK)
            .await;
        Ok(cluster)
    }

    /// The current snapshot: sorted, never empty (self is always in it), with a generation that
    /// advances on every change. `[self]` before the first answer.
    pub fn peers(&self) -> Snapshot {
        self.inner.state.peers()
    }

    /// The coordinator of `key` in the current snapshot (rendezvous hashing). Lock-free.
    pub fn coordinator(&self, key: &ChunkKey) -> Peer {
        self.inner.state.coordinator(key)
    }

    /// Whether this replica coordinates `key` in the current snapshot.
    pub fn is_coordinator(&self, key: &ChunkKey) -> bool {
        self.inner.state.is_coordinator(key)
    }

    /// Every peer with its score for `key`, highest (the coordinator) first; for fallback and
    /// replication.
    pub fn ranked(&self, key: &ChunkKey) -> Vec<(Peer, u64)> {
        self.inner.state.ranked(key)
    }

    /// Whether the first lookup has completed, successfully or not. Gate readiness on it.
    pub fn has_initial_snapshot(&self) -> bool {
        self.inner.state.has_initial_snapshot()
    }

    /// Snapshot changes from now on ([`Subscription::changed`] yields each new snapshot, the
    /// latest when several happened in between, and `None` once the cluster is closed).
    pub fn subscribe(&self) -> Subscription {
        self.inner.state.subscribe()
    }

    /// Fetches chunk `key` of an object of `object_size` bytes from `peer` (normally
    /// [`Cluster::coordinator`] when that is not self). See [`FillClient::fill`] for the errors;
    /// the body's length is verified against the chunk's expected length.
    pub async fn fill_from_peer(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        if self.inner.state.is_shutting_down() {
            return Err(FillError::Closed);
        }
        self.inner.client.fill(peer, key, object_size).await
    }

    /// The fill client of this cluster (shares connections and counters with it).
    pub fn client(&self) -> &FillClient {
        &self.inner.client
    }

    /// Counters: lookups, failures, snapshot changes, fills and bytes (client and listener).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.state.stats_snapshot()
    }

    /// The configuration in effect (with `self_pod_ip` filled from `POD_IP` if it was empty).
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Self's port in peer records ([`Options::with_self_port`]).
    pub fn self_port(&self) -> u16 {
        self.inner.self_port
    }

    /// The TLS material (when `internal_tls.enabled`), e.g. to serve the [`crate::FillService`]
    /// behind an application's own TLS acceptor with the same certificates.
    pub fn tls(&self) -> Option<&Arc<TlsReloader>> {
        self.inner.tls.as_ref()
    }

    pub(crate) fn state(&self) -> &Arc<ClusterState> {
        &self.inner.state
    }

    /// Stops refreshing, closes idle connections (busy ones close when their fills finish), and
    /// waits for the membership task to exit, at most `deadline`. Idempotent. Afterwards the
    /// last snapshot stays readable, subscriptions end and fills fail with
    /// [`FillError::Closed`]. `Err(CloseError)` if the deadline passed first (shutdown then
    /// completes in the background).
    pub async fn close(&self, deadline: Duration) -> Result<(), CloseError> {
        self.inner.client.close();
        self.inner.state.close(&self.inner.runtime, deadline).await
    }
}

/// Evicts the connections of peers that left the snapshot; ends when the cluster closes.
async fn evict_departed_peers(mut changes: Subscription, client: FillClient) {
    while let Some(snapshot) = changes.changed().await {
        client.retain_peers(&snapshot);
    }
}
