//! [`Cluster`]: the handle an application holds, the same on both drivers: membership,
//! coordinator lookups, fills.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use orca_cluster_core::fill::DescriptorError;
use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Snapshot};

use crate::client::{FillBody, FillClient};
use crate::driver::Driver;
use crate::error::{CloseError, FillError, StartError};
use crate::filler::{FillRequest, Filler};
use crate::options::Options;
use crate::read::{ChunkRead, ReadError, ReadOptions, ReadSource, falls_back};
use crate::start::MembershipStart;
use crate::state::{ClusterState, Subscription};
use crate::stats::StatsSnapshot;
use crate::tls::TlsReloader;

/// How long [`Cluster::start`] waits beyond the lookup timeout for the membership task to
/// publish the outcome of the first lookup (scheduling slack on a busy machine): 1 s.
pub const START_SLACK: Duration = Duration::from_secs(1);

/// A running replica's view of the cluster. Cheap to clone; clones share everything.
///
/// One background task owns the membership state machine (refreshing every
/// `membership_refresh`); coordinator lookups read the published snapshot lock-free and never
/// wait on it. When the last clone is dropped the task stops and pooled connections close, as
/// with [`Cluster::close`] (a serving listener holds no clone: stop it with its handle).
pub struct Cluster<D: Driver> {
    inner: Arc<Inner<D>>,
}

impl<D: Driver> Clone for Cluster<D> {
    fn clone(&self) -> Self {
        Cluster {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<D: Driver> {
    state: Arc<ClusterState>,
    runtime: D,
    client: FillClient<D>,
    tls: Option<Arc<TlsReloader>>,
    config: ClusterConfig,
    self_port: u16,
}

impl<D: Driver> Drop for Inner<D> {
    fn drop(&mut self) {
        self.state.signal_shutdown();
        self.client.close();
    }
}

impl<D: Driver> fmt::Debug for Cluster<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("driver", &D::NAME)
            .field("service", &self.inner.config.service)
            .field("self_pod_ip", &self.inner.config.self_pod_ip)
            .field("self_port", &self.inner.self_port)
            .field("tls", &self.inner.tls.is_some())
            .field("generation", &self.inner.state.peers().generation())
            .finish_non_exhaustive()
    }
}

impl<D: Driver> Cluster<D> {
    /// Starts a cluster handle on the current runtime.
    ///
    /// Validates `config` (errors name the field) and `options` (a setting the driver cannot
    /// honour is [`StartError::Unsupported`]); fills an empty `self_pod_ip` from the
    /// comma-separated `POD_IP` environment variable; resolves the self port (a static peer
    /// list that carries ports must contain this replica); loads the TLS files when
    /// `config.internal_tls.enabled`; spawns the membership task; and returns once the first
    /// lookup has been answered or has failed — at most `config.lookup_timeout` (default 3 s)
    /// plus [`START_SLACK`]. After a failed first lookup the snapshot is `[self]` and
    /// [`Cluster::has_initial_snapshot`] is true (bootstrap failure).
    pub async fn start(config: ClusterConfig, options: Options<D>) -> Result<Self, StartError> {
        options.validate()?;
        crate::metrics::describe();
        let runtime = D::current();
        let mut config = config;
        let start = MembershipStart::new(&mut config, &options.discovery, runtime.dns())?;
        let tls = crate::tls::load_for::<D>(&config.internal_tls, &options)?;
        let self_port = start.self_port();
        let state = start.spawn(&runtime);
        let client =
            FillClient::for_cluster(&runtime, &config, &options, tls.clone(), state.clone());
        let evicting = client.downgrade();
        state.on_removed(move |removed| {
            if let Some(client) = evicting.upgrade() {
                client.evict(removed);
            }
        });
        let cluster = Cluster {
            inner: Arc::new(Inner {
                state,
                runtime,
                client,
                tls,
                config,
                self_port,
            }),
        };
        let inner = &cluster.inner;
        let wait = inner.config.lookup_timeout.saturating_add(START_SLACK);
        if !inner.state.wait_initial(&inner.runtime, wait).await {
            tracing::warn!(
                event = "start_without_initial_snapshot",
                "the first peer lookup did not complete in time; starting with [self]"
            );
        }
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

    /// A cluster of this replica alone, listening on `listen` (no DNS: a static list holding
    /// only `listen`, self IP `listen`'s IP): a single-node cache, local development, tests. It
    /// coordinates every chunk. Errors as [`Cluster::start`].
    pub async fn single(listen: std::net::SocketAddr) -> Result<Self, StartError> {
        let config = ClusterConfig {
            service: "single".into(),
            self_pod_ip: vec![listen.ip()],
            internal_listen: listen,
            ..ClusterConfig::default()
        };
        let options = Options::default()
            .with_peer_source(crate::source::StaticPeerSource::new([listen]))
            .with_self_port(listen.port());
        Cluster::start(config, options).await
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

    /// [`Cluster::fill_from_peer`] within `deadline` (see [`FillClient::fill_within`]): the
    /// response head must arrive, and the body be complete, within `deadline`, else
    /// [`FillError::Deadline`].
    pub async fn fill_from_peer_within(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
        deadline: Duration,
    ) -> Result<FillBody, FillError> {
        if self.inner.state.is_shutting_down() {
            return Err(FillError::Closed);
        }
        self.inner
            .client
            .fill_within(peer, key, object_size, deadline)
            .await
    }

    /// Reads chunk `key` of an object of `object_size` bytes: from the coordinator when it is
    /// another replica, else from `local` (this replica's filler — give it the same filler the
    /// listener serves, e.g. one `CoalescingFiller`, so that concurrent reads and fills of a
    /// chunk read the origin once). When the coordinator cannot serve the chunk — 409, 503,
    /// unreachable or in its backoff window ([`FillError::PeerUnavailable`]: no connect attempt,
    /// so a dead coordinator costs nothing), the connection failing before a response head —
    /// the chunk is read from `local` and [`ReadSource::Fallback`] says why. Other answers of
    /// the coordinator (e.g. 502) are [`ReadError::Coordinator`]. Coordinator selection never
    /// changes because of a failure: every replica keeps agreeing on it.
    pub async fn read<F: Filler>(
        &self,
        key: &ChunkKey,
        object_size: u64,
        local: &F,
    ) -> Result<ChunkRead, ReadError> {
        self.read_with(key, object_size, local, ReadOptions::default())
            .await
    }

    /// [`Cluster::read`] with `options` (a deadline on the coordinator's fill).
    pub async fn read_with<F: Filler>(
        &self,
        key: &ChunkKey,
        object_size: u64,
        local: &F,
        options: ReadOptions,
    ) -> Result<ChunkRead, ReadError> {
        if self.inner.state.is_shutting_down() {
            return Err(ReadError::Closed);
        }
        let chunk_error = |e| ReadError::Request(DescriptorError::Chunk(e));
        let expected_len = key.expected_len(object_size).map_err(chunk_error)?;
        if expected_len == 0 {
            return Err(ReadError::Request(DescriptorError::EmptyChunk {
                index: key.index,
                object_size,
            }));
        }
        key.check_chunk_size(self.inner.config.max_chunk_size)
            .map_err(chunk_error)?;
        let coordinator = self.coordinator(key);
        let source = if coordinator.is_self {
            ReadSource::Local
        } else {
            let client = &self.inner.client;
            let result = match options.deadline {
                Some(deadline) => {
                    client
                        .fill_within(&coordinator, key, object_size, deadline)
                        .await
                }
                None => client.fill(&coordinator, key, object_size).await,
            };
            match result {
                Ok(body) => return Ok(ChunkRead::from_peer(coordinator, body)),
                Err(FillError::Closed) => return Err(ReadError::Closed),
                Err(FillError::Descriptor(e)) => return Err(ReadError::Request(e)),
                Err(error) if falls_back(&error) => {
                    tracing::debug!(
                        event = "read_fallback",
                        coordinator = %coordinator.ip,
                        kind = error.kind(),
                        "reading the chunk locally: the coordinator cannot serve it"
                    );
                    ReadSource::Fallback { coordinator, error }
                }
                Err(error) => {
                    return Err(ReadError::Coordinator {
                        peer: coordinator,
                        error,
                    });
                }
            }
        };
        let request = FillRequest {
            key: key.clone(),
            object_size,
            expected_len,
        };
        let stream = local.fill(request).await.map_err(ReadError::Local)?;
        Ok(ChunkRead::from_local(source, stream, expected_len))
    }

    /// The fill client of this cluster (shares connections and counters with it).
    pub fn client(&self) -> &FillClient<D> {
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

    /// Self's port in peer records (see [`Options::with_self_port`]; resolved from a static
    /// list when it carries ports).
    pub fn self_port(&self) -> u16 {
        self.inner.self_port
    }

    /// The TLS material (when `internal_tls.enabled`), e.g. to serve the fill service behind
    /// an application's own TLS acceptor with the same certificates.
    pub fn tls(&self) -> Option<&Arc<TlsReloader>> {
        self.inner.tls.as_ref()
    }

    /// The runtime this cluster runs on.
    pub fn runtime(&self) -> &D {
        &self.inner.runtime
    }

    /// The shared state (snapshot, stats, shutdown), for the listener pipeline.
    pub fn state(&self) -> &Arc<ClusterState> {
        &self.inner.state
    }

    /// Stops refreshing, closes idle connections (busy ones close when their fills finish), and
    /// waits for the membership task to exit, at most `deadline`. Idempotent. Afterwards the
    /// last snapshot stays readable, subscriptions end and fills fail with
    /// [`FillError::Closed`]. `Err(CloseError)` if the deadline passed first (shutdown then
    /// completes in the background). Fill listeners are separate: stop them with their handle.
    pub async fn close(&self, deadline: Duration) -> Result<(), CloseError> {
        self.inner.client.close();
        self.inner.state.close(&self.inner.runtime, deadline).await
    }
}
