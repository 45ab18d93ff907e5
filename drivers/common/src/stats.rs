//! Counters a running cluster keeps; read them with [`Stats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (all monotonically increasing, updated with relaxed atomics).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) lookups: AtomicU64,
    pub(crate) lookup_failures: AtomicU64,
    pub(crate) snapshot_changes: AtomicU64,
    /// Fills started by this replica's client.
    pub fills_started: AtomicU64,
    /// Fills whose body arrived complete and verified.
    pub fills_ok: AtomicU64,
    /// Fills that failed (any [`crate::FillError`]).
    pub fills_failed: AtomicU64,
    /// Fills refused by the peer with 409 (membership disagreement).
    pub fills_not_coordinator: AtomicU64,
    /// Verified body bytes received by the client.
    pub bytes_received: AtomicU64,
    /// Fill requests the listener served completely.
    pub served_ok: AtomicU64,
    /// Fill requests the listener rejected (4xx, 409, 503) or failed (502, aborted).
    pub served_failed: AtomicU64,
    /// Body bytes the listener sent.
    pub bytes_served: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// DNS (or source) lookups completed, successful or not.
    pub lookups: u64,
    /// Lookups that failed or timed out.
    pub lookup_failures: u64,
    /// Snapshots published (including the initial one).
    pub snapshot_changes: u64,
    /// Fills started by the client.
    pub fills_started: u64,
    /// Fills completed and verified.
    pub fills_ok: u64,
    /// Fills failed.
    pub fills_failed: u64,
    /// Fills refused with 409.
    pub fills_not_coordinator: u64,
    /// Verified bytes received.
    pub bytes_received: u64,
    /// Requests served completely by the listener.
    pub served_ok: u64,
    /// Requests rejected or failed by the listener.
    pub served_failed: u64,
    /// Bytes served by the listener.
    pub bytes_served: u64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            lookups: self.lookups.load(Relaxed),
            lookup_failures: self.lookup_failures.load(Relaxed),
            snapshot_changes: self.snapshot_changes.load(Relaxed),
            fills_started: self.fills_started.load(Relaxed),
            fills_ok: self.fills_ok.load(Relaxed),
            fills_failed: self.fills_failed.load(Relaxed),
            fills_not_coordinator: self.fills_not_coordinator.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            served_ok: self.served_ok.load(Relaxed),
            served_failed: self.served_failed.load(Relaxed),
            bytes_served: self.bytes_served.load(Relaxed),
        }
    }
}
