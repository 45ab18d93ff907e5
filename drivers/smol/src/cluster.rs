//! [`Cluster`]: the handle an application holds. It owns nothing but shared state: the
//! membership task (spawned on smol) owns the core state machine and publishes snapshots that
//! every lookup reads lock-free; the fill client owns the connection pool.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Snapshot};
use orca_cluster_driver_common::{
    CloseError, ClusterState, FillError, MembershipStart, Runtime, StartError, StatsSnapshot,
    Subscription, TlsReloader,
};

use crate::client::FillClient;
use crate::client::body::FillBody;
use crate::dns_runtime::SmolRuntimeProvider;
use crate::options::Options;
use crate::runtime::SmolRuntime;

/// How often idle pooled connections are checked for expiry: every 5 s (and at every snapshot
/// change, when connections to departed peers are closed).
pub const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Extra time [`Cluster::start`] waits beyond the lookup timeout for the first snapshot: 500 ms.
const START_MARGIN: Duration = Duration::from_millis(500);

/// A running cluster membership plus fill client. Clones share one cluster.
///
/// Lookups (`peers`, `coordinator`, `is_coordinator`, `ranked`) read the published snapshot
/// with one atomic load and never wait for the membership task. When the last clone is dropped
/// (listeners hold one while they serve), the membership task stops and pooled connections are
/// closed, as with [`Cluster::close`].
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: Arc<ClusterState>,
    pub(crate) tls: Option<Arc<TlsReloader>>,
    pub(crate) client: FillClient,
    pub(crate) config: ClusterConfig,
}

impl Drop for Inner {
    /// The last handle is gone: stop the membership task and close pooled connections.
    fn drop(&mut self) {
        self.client.close();
        self.state.signal_shutdown();
    }
}

impl Cluster {
    /// Starts a cluster.
    ///
    /// Validates `config` (self IPs default to the comma-separated `POD_IP` environment
    /// variable), loads the mutual TLS files when `config.internal_tls.enabled`, sets up the
    /// peer source (DNS through `/etc/resolv.conf` unless [`Options`] say otherwise), spawns the
    /// membership task on smol, and returns once the first refresh has completed — successfully
    /// or not — waiting at most `config.lookup_timeout` plus 500 ms. Before the first answer the
    /// snapshot is `[self]`.
    pub async fn start(mut config: ClusterConfig, options: Options) -> Result<Cluster, StartError> {
        let start = MembershipStart::new(&mut config, &options.discovery, SmolRuntimeProvider)?;
        let tls = if config.internal_tls.enabled {
            Some(Arc::new(crate::tls::load_reloader(&config.internal_tls)?))
        } else {
            None
        };
        let state = start.state().clone();
        let client = FillClient::new(
            options.pool,
            tls.clone(),
            config.internal_listen.port(),
            state.clone(),
        );
        let inner = Arc::new(Inner {
            state: state.clone(),
            tls,
            client,
            config,
        });
        start.spawn(&SmolRuntime);
        SmolRuntime.spawn(sweep_pool(Arc::downgrade(&inner)));
        let wait = inner.config.lookup_timeout.saturating_add(START_MARGIN);
        if !state.wait_initial(&SmolRuntime, wait).await {
            tracing::warn!(
                event = "start_without_initial_snapshot",
                "the first peer lookup did not complete in time; starting with [self]"
            );
        }
        Ok(Cluster { inner })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The current snapshot (never empty; `[self]` before the first answer).
    pub fn peers(&self) -> Snapshot {
        self.inner.state.peers()
    }

    /// The coordinator of `key` in the current snapshot.
    pub fn coordinator(&self, key: &ChunkKey) -> Peer {
        self.inner.state.coordinator(key)
    }

    /// Whether this replica coordinates `key` in the current snapshot.
    pub fn is_coordinator(&self, key: &ChunkKey) -> bool {
        self.inner.state.is_coordinator(key)
    }

    /// Every peer with its score for `key`, coordinator first (fallback order).
    pub fn ranked(&self, key: &ChunkKey) -> Vec<(Peer, u64)> {
        self.inner.state.ranked(key)
    }

    /// Whether the first refresh has completed (successfully or not); gate readiness on it.
    pub fn has_initial_snapshot(&self) -> bool {
        self.inner.state.has_initial_snapshot()
    }

    /// Snapshot changes from now on; ends (`None`) once the cluster is closed.
    pub fn subscribe(&self) -> Subscription {
        self.inner.state.subscribe()
    }

    /// `GET /internal/fill` for chunk `key` of an object of `object_size` bytes from `peer`.
    ///
    /// Uses a pooled keep-alive connection to the peer when one is idle (retrying once on a
    /// fresh connection if it turns out stale before any response byte), else opens one
    /// (connect timeout 10 s, TLS handshake timeout 10 s). The response head is judged by the
    /// core: 409 is [`FillError::is_not_coordinator`] (fill locally), another non-2xx is a
    /// `Status` error with at most 1 KiB of its body, a `Content-Length` other than the chunk
    /// length is rejected before the body is read. The returned body verifies its length as it
    /// streams. There is no overall timeout: bound the call and the body with your own deadline.
    pub async fn fill_from_peer(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        self.inner.client.fill(peer, key, object_size).await
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.state.stats_snapshot()
    }

    /// Idle keep-alive connections currently pooled, over all peers.
    pub fn idle_connections(&self) -> usize {
        self.inner.client.pool.idle_count()
    }

    /// Stops the membership refresh and closes the pooled connections; later fills fail with
    /// [`FillError::Closed`]. Idempotent. Waits at most `deadline` for the membership task to
    /// exit, else returns [`CloseError`] (it still stops in the background). The snapshot stays
    /// readable. Fill listeners are separate: shut them down with their own handle.
    pub async fn close(&self, deadline: Duration) -> Result<(), CloseError> {
        self.inner.client.close();
        self.inner.state.close(&SmolRuntime, deadline).await
    }
}

/// Closes expired idle connections every [`POOL_SWEEP_INTERVAL`], and connections to peers
/// that left the snapshot at every change. Ends when the cluster closes or is dropped.
async fn sweep_pool(inner: std::sync::Weak<Inner>) {
    let Some(mut changes) = inner.upgrade().map(|i| i.state.subscribe()) else {
        return;
    };
    enum Wake {
        Changed(Option<Snapshot>),
        Tick,
    }
    loop {
        let wake =
            futures_lite::future::or(async { Wake::Changed(changes.changed().await) }, async {
                crate::runtime::sleep(POOL_SWEEP_INTERVAL).await;
                Wake::Tick
            })
            .await;
        let Some(inner) = inner.upgrade() else { return };
        let snapshot = match wake {
            Wake::Changed(None) => return,
            Wake::Changed(Some(snapshot)) => snapshot,
            Wake::Tick => inner.state.peers(),
        };
        if inner.state.is_shutting_down() {
            return;
        }
        let port = inner.config.internal_listen.port();
        let keep: HashSet<SocketAddr> = snapshot
            .peers()
            .iter()
            .map(|p| p.socket_addr(port))
            .collect();
        inner.client.pool.evict(Some(&keep));
    }
}
