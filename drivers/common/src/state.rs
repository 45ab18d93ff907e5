//! What a running cluster shares between its membership task and everyone else: the published
//! snapshot (read lock-free), change notifications, stats and the shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use event_listener::Event;
use orca_cluster_core::{ChunkKey, MembershipEvent, Peer, Snapshot};

use crate::error::CloseError;
use crate::runtime::Runtime;
use crate::stats::{Stats, StatsSnapshot};

/// Shared state of one cluster handle. Cheap to read from any thread: lookups load the current
/// snapshot with one atomic operation and never wait on the membership task.
pub struct ClusterState {
    snapshot: ArcSwap<Snapshot>,
    initial: AtomicBool,
    changed: Event,
    stats: Stats,
    shutdown: AtomicBool,
    shutdown_event: Event,
    stopped: AtomicBool,
    stopped_event: Event,
    on_removed: OnceLock<RemovedHook>,
    max_chunk_size: u64,
}

/// Told which peers left the snapshot, at every change (the client evicts their connections).
type RemovedHook = Box<dyn Fn(&[Peer]) + Send + Sync>;

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("generation", &self.snapshot.load().generation())
            .field("initial", &self.initial)
            .field("shutdown", &self.shutdown)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    /// State holding the bootstrap snapshot, with the default maximum chunk size
    /// ([`orca_cluster_core::chunk::DEFAULT_MAX_CHUNK_SIZE`]).
    pub fn new(bootstrap: Snapshot) -> Arc<ClusterState> {
        Self::with_max_chunk_size(bootstrap, orca_cluster_core::chunk::DEFAULT_MAX_CHUNK_SIZE)
    }

    /// State holding the bootstrap snapshot; the listener refuses chunks larger than
    /// `max_chunk_size` bytes ([`orca_cluster_core::ClusterConfig::max_chunk_size`]).
    pub fn with_max_chunk_size(bootstrap: Snapshot, max_chunk_size: u64) -> Arc<ClusterState> {
        crate::metrics::snapshot_bootstrap(bootstrap.len(), bootstrap.generation());
        Arc::new(ClusterState {
            snapshot: ArcSwap::from_pointee(bootstrap),
            initial: AtomicBool::new(false),
            changed: Event::new(),
            stats: Stats::default(),
            shutdown: AtomicBool::new(false),
            shutdown_event: Event::new(),
            stopped: AtomicBool::new(false),
            stopped_event: Event::new(),
            on_removed: OnceLock::new(),
            max_chunk_size,
        })
    }

    /// The largest `chunk_size` served or asked for, in bytes
    /// ([`orca_cluster_core::ClusterConfig::max_chunk_size`]).
    pub fn max_chunk_size(&self) -> u64 {
        self.max_chunk_size
    }

    /// The current snapshot (never empty; `[self]` before the first answer).
    pub fn peers(&self) -> Snapshot {
        Snapshot::clone(&self.snapshot.load())
    }

    /// The coordinator of `key` in the current snapshot.
    pub fn coordinator(&self, key: &ChunkKey) -> Peer {
        *self.snapshot.load().coordinator(key)
    }

    /// Whether this replica coordinates `key`.
    pub fn is_coordinator(&self, key: &ChunkKey) -> bool {
        self.snapshot.load().is_coordinator(key)
    }

    /// Every peer with its score for `key`, coordinator first.
    pub fn ranked(&self, key: &ChunkKey) -> Vec<(Peer, u64)> {
        self.snapshot.load().ranked(key)
    }

    /// Whether the first refresh has completed (successfully or not). Gate readiness on it.
    pub fn has_initial_snapshot(&self) -> bool {
        self.initial.load(Ordering::Acquire)
    }

    /// Live counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A copy of the counters.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// A subscription to snapshot changes, starting from the current snapshot.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        Subscription {
            seen: self.snapshot.load().generation(),
            state: self.clone(),
        }
    }

    /// Applies one output of the state machine: publishes snapshots, counts (in [`Stats`] and
    /// the [`crate::metrics`]), and logs `peer_set_initial`, `peer_set_changed` and
    /// `discovery_failed` events with `tracing`.
    pub fn apply(&self, event: MembershipEvent) {
        match event {
            MembershipEvent::SnapshotChanged {
                snapshot,
                initial,
                added,
                removed,
                reason,
            } => {
                let peers: Vec<String> = snapshot.peers().iter().map(|p| p.to_string()).collect();
                let (peer_count, generation) = (snapshot.len(), snapshot.generation());
                if initial {
                    tracing::info!(
                        event = "peer_set_initial",
                        generation = snapshot.generation(),
                        reason = reason.name(),
                        peers = ?peers,
                        "initial peer set"
                    );
                } else {
                    let added: Vec<String> = added.iter().map(|p| p.to_string()).collect();
                    let removed: Vec<String> = removed.iter().map(|p| p.to_string()).collect();
                    tracing::info!(
                        event = "peer_set_changed",
                        generation = snapshot.generation(),
                        reason = reason.name(),
                        added = ?added,
                        removed = ?removed,
                        peers = ?peers,
                        "peer set changed"
                    );
                }
                self.snapshot.store(Arc::new(snapshot));
                if !removed.is_empty()
                    && let Some(hook) = self.on_removed.get()
                {
                    hook(&removed);
                }
                self.initial.store(true, Ordering::Release);
                Stats::incr(&self.stats.snapshot_changes);
                crate::metrics::snapshot_changed(peer_count, generation, reason.name());
                self.changed.notify(usize::MAX);
            }
            MembershipEvent::LookupFailed {
                failure,
                streak,
                kept_stale,
            } => {
                Stats::incr(&self.stats.lookup_failures);
                crate::metrics::lookup_failed(failure.name());
                tracing::warn!(
                    event = "discovery_failed",
                    failure = failure.name(),
                    streak,
                    kept_stale,
                    "peer discovery failed"
                );
            }
        }
    }

    /// Registers the hook told, at every snapshot change, which peers the core removed (the
    /// cluster's client evicts their connections). Only the first registration takes effect.
    pub fn on_removed(&self, hook: impl Fn(&[Peer]) + Send + Sync + 'static) {
        let _ = self.on_removed.set(Box::new(hook));
    }

    pub(crate) fn count_lookup(&self) {
        Stats::incr(&self.stats.lookups);
        crate::metrics::lookup_answered();
    }

    /// Asks the membership task to stop (idempotent).
    pub fn signal_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.shutdown_event.notify(usize::MAX);
        self.changed.notify(usize::MAX);
    }

    /// Whether shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Completes once shutdown is requested.
    pub async fn shutdown_requested(&self) {
        wait_until(&self.shutdown_event, || self.is_shutting_down()).await;
    }

    pub(crate) fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stopped_event.notify(usize::MAX);
        self.changed.notify(usize::MAX);
    }

    /// Whether the membership task has exited.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    async fn stopped(&self) {
        wait_until(&self.stopped_event, || self.is_stopped()).await;
    }

    /// Completes once the initial snapshot exists (or the task stopped).
    pub async fn initial_snapshot(&self) {
        wait_until(&self.changed, || {
            self.has_initial_snapshot() || self.is_stopped()
        })
        .await;
    }

    /// Waits for the initial snapshot for at most `timeout`; returns whether it exists.
    pub async fn wait_initial<R: Runtime>(&self, runtime: &R, timeout: Duration) -> bool {
        futures_lite::future::or(
            async {
                self.initial_snapshot().await;
            },
            runtime.sleep(timeout),
        )
        .await;
        self.has_initial_snapshot()
    }

    /// Signals shutdown and waits for the membership task to exit, at most `deadline`.
    /// Idempotent. The snapshot stays readable after close.
    pub async fn close<R: Runtime>(
        &self,
        runtime: &R,
        deadline: Duration,
    ) -> Result<(), CloseError> {
        self.signal_shutdown();
        futures_lite::future::or(self.stopped(), runtime.sleep(deadline)).await;
        if self.is_stopped() {
            Ok(())
        } else {
            Err(CloseError)
        }
    }
}

/// Completes once `done()` holds, re-checking after every notification of `event`. The
/// listener is registered before the second check, so a notification between the two checks
/// is not lost.
async fn wait_until(event: &Event, done: impl Fn() -> bool) {
    loop {
        if done() {
            return;
        }
        let listener = event.listen();
        if done() {
            return;
        }
        listener.await;
    }
}

/// Snapshot changes, one [`Subscription::changed`] call at a time. Intermediate snapshots may be
/// skipped when several changes happen between two calls; the latest is always delivered.
#[derive(Debug, Clone)]
pub struct Subscription {
    state: Arc<ClusterState>,
    seen: u64,
}

impl Subscription {
    /// The next snapshot whose generation differs from the last one returned (or from the one
    /// current at subscription). `None` once the cluster is closed.
    pub async fn changed(&mut self) -> Option<Snapshot> {
        loop {
            let current = self.state.peers();
            if current.generation() != self.seen {
                self.seen = current.generation();
                return Some(current);
            }
            if self.state.is_shutting_down() || self.state.is_stopped() {
                return None;
            }
            let listener = self.state.changed.listen();
            let current = self.state.peers();
            if current.generation() != self.seen {
                self.seen = current.generation();
                return Some(current);
            }
            if self.state.is_shutting_down() || self.state.is_stopped() {
                return None;
            }
            listener.await;
        }
    }

    /// The latest snapshot, without waiting.
    pub fn current(&self) -> Snapshot {
        self.state.peers()
    }
}
