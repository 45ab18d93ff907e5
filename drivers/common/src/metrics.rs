//! Metrics, recorded through the [`metrics`] facade: the embedding application installs the
//! recorder (e.g. `metrics_exporter_prometheus`), and both drivers emit the same names because
//! every metric is recorded here, in the shared pipeline. Without a recorder, recording costs
//! next to nothing.
//!
//! Every name is a constant of this module; names follow Prometheus conventions (the
//! `orca_cluster_` prefix, counters end in `_total`, durations are `_seconds`, sizes `_bytes`),
//! so an exporter should add no suffix of its own. No metric has a per-chunk or per-peer label:
//! every label takes a small, fixed set of values, listed with each name.
//!
//! # Fills
//!
//! A fill has a **role**, `client` (this replica asking a peer: [`crate::FillClient::fill`]) or
//! `listener` (this replica serving `GET /internal/fill`), and ends in exactly one **outcome**,
//! `ok`, `failed` or `cancelled`, so that per role
//! `fills_started_total = sum over outcome of fills_completed_total`, once the fills in flight
//! ([`FILLS_IN_FLIGHT`]) have ended.
//!
//! - A **client** fill starts when the request passes its own checks (a fill to self, an empty
//!   chunk or one above `max_chunk_size` is refused before it starts, and so is a fill after
//!   `close`); it ends `ok` when its [`crate::FillBody`] delivered its last verified byte,
//!   `failed` with the [`crate::FillError::kind`] of its error (before the response head, e.g.
//!   `not_coordinator`, `status`, `connect`, `peer_unavailable`, `deadline`; or in the body,
//!   e.g. `truncated`, `http`), and `cancelled` when the fill's future or its body was dropped
//!   before the end.
//! - A **listener** fill starts when a request is admitted and gets a concurrency slot (the
//!   filler is called); refused requests are not fills, they are counted in [`REFUSALS`] by
//!   reason. It ends `ok` when the last byte was handed to the HTTP layer, `failed` with a
//!   [`ListenerFailure`] kind (the filler's error: 502; the filler's stream ran short, long, or
//!   failed: the response is aborted), and `cancelled` when the response was dropped before
//!   its end (the client went away, the connection's send timeout, the listener forced shut).
//!
//! # Membership, TLS, peer health
//!
//! Gauges of the membership task ([`PEERS`], [`SNAPSHOT_GENERATION`],
//! [`LOOKUP_FAILURE_STREAK`]) describe the one cluster of a process; with several clusters in
//! one process the last one to change sets them.

use std::time::Instant;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use orca_cluster_core::admission::Rejection;

/// Counter: fills started, by `role` (`client`, `listener`). See the module docs for when a
/// fill starts.
pub const FILLS_STARTED: &str = "orca_cluster_fills_started_total";
/// Counter: fills ended, by `role` and `outcome` (`ok`, `failed`, `cancelled`); each started
/// fill ends exactly once.
pub const FILLS_COMPLETED: &str = "orca_cluster_fills_completed_total";
/// Counter: failed fills, by `role` and `kind` (client: [`crate::FillError::kind`]; listener:
/// [`ListenerFailure::name`]). Sums to the `failed` outcome of [`FILLS_COMPLETED`] per role.
pub const FILL_FAILURES: &str = "orca_cluster_fill_failures_total";
/// Histogram, seconds: from the start of a fill to its end (the body's last byte, its error,
/// or its cancellation), by `role` and `outcome`. Buckets: [`FILL_DURATION_BUCKETS`] suggested.
pub const FILL_DURATION: &str = "orca_cluster_fill_duration_seconds";
/// Counter, bytes: chunk bytes of fills, by `role` (client: verified bytes received; listener:
/// bytes handed to the HTTP layer), counted as they pass.
pub const FILL_BYTES: &str = "orca_cluster_fill_bytes_total";
/// Gauge: fills in flight now (started and not ended), by `role`, summed over every client and
/// listener of the process.
pub const FILLS_IN_FLIGHT: &str = "orca_cluster_fills_in_flight";
/// Counter: fill requests the listener refused, by `reason` ([`Refusal::name`]: `not_found`,
/// `method`, `bad_request`, `not_coordinator`, `overloaded`, `bad_head`).
pub const REFUSALS: &str = "orca_cluster_listener_refusals_total";
/// Gauge: peers in the current snapshot, self included.
pub const PEERS: &str = "orca_cluster_peers";
/// Gauge: the generation of the current snapshot (0 before the first answer; it advances by
/// one at every change).
pub const SNAPSHOT_GENERATION: &str = "orca_cluster_snapshot_generation";
/// Counter: snapshots published, by `reason` (`discovery`, `empty_answer`, `stale_ceiling`,
/// `bootstrap_failure`: the core's `ChangeReason::name`).
pub const SNAPSHOT_CHANGES: &str = "orca_cluster_snapshot_changes_total";
/// Counter: peer lookups (DNS or the peer source) answered, successfully or not.
pub const LOOKUPS: &str = "orca_cluster_lookups_total";
/// Counter: failed peer lookups, by `kind` (`timeout`, `servfail`, `refused`, `nxdomain`,
/// `no_records`, `io`, `other`: the core's `LookupFailure::name`).
pub const LOOKUP_FAILURES: &str = "orca_cluster_lookup_failures_total";
/// Gauge: consecutive failed lookups now (0 after a success). While it is at most
/// `max_stale_refreshes` the last discovered snapshot is kept (stale); above, the snapshot is
/// `[self]`.
pub const LOOKUP_FAILURE_STREAK: &str = "orca_cluster_lookup_failure_streak";
/// Counter: reloads of the mutual-TLS files after they changed on disk, by `outcome` (`ok`;
/// `failed`: the previous certificates stay in use).
pub const TLS_RELOADS: &str = "orca_cluster_tls_reloads_total";
/// Gauge: peers the fill clients hold unavailable now (a connect failure opened a backoff
/// window; fills to them fail at once with `peer_unavailable`), summed over the clients of the
/// process. Each such fast failure is counted in [`FILL_FAILURES`] with
/// `kind="peer_unavailable"`.
pub const PEERS_UNAVAILABLE: &str = "orca_cluster_peers_unavailable";

/// Suggested histogram buckets for [`FILL_DURATION`], in seconds: 1 ms to 60 s.
pub const FILL_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric name of this module, in the order of the README's table.
pub const ALL: &[&str] = &[
    FILLS_STARTED,
    FILLS_COMPLETED,
    FILL_FAILURES,
    FILL_DURATION,
    FILL_BYTES,
    FILLS_IN_FLIGHT,
    REFUSALS,
    PEERS,
    SNAPSHOT_GENERATION,
    SNAPSHOT_CHANGES,
    LOOKUPS,
    LOOKUP_FAILURES,
    LOOKUP_FAILURE_STREAK,
    TLS_RELOADS,
    PEERS_UNAVAILABLE,
];

/// Registers the unit and help text of every metric with the installed recorder. Call it once
/// after installing a recorder; `Cluster::start` and `FillClient::new` call it too (describing
/// again is harmless).
pub fn describe() {
    describe_counter!(FILLS_STARTED, Unit::Count, "Fills started, by role.");
    describe_counter!(
        FILLS_COMPLETED,
        Unit::Count,
        "Fills ended, by role and outcome (ok, failed, cancelled)."
    );
    describe_counter!(
        FILL_FAILURES,
        Unit::Count,
        "Failed fills, by role and kind."
    );
    describe_histogram!(
        FILL_DURATION,
        Unit::Seconds,
        "Fill duration from start to body end, by role and outcome."
    );
    describe_counter!(FILL_BYTES, Unit::Bytes, "Chunk bytes of fills, by role.");
    describe_gauge!(FILLS_IN_FLIGHT, Unit::Count, "Fills in flight, by role.");
    describe_counter!(
        REFUSALS,
        Unit::Count,
        "Fill requests the listener refused, by reason."
    );
    describe_gauge!(
        PEERS,
        Unit::Count,
        "Peers in the current snapshot, self included."
    );
    describe_gauge!(
        SNAPSHOT_GENERATION,
        Unit::Count,
        "Generation of the current peer snapshot."
    );
    describe_counter!(
        SNAPSHOT_CHANGES,
        Unit::Count,
        "Peer snapshots published, by reason."
    );
    describe_counter!(LOOKUPS, Unit::Count, "Peer lookups answered.");
    describe_counter!(
        LOOKUP_FAILURES,
        Unit::Count,
        "Failed peer lookups, by kind."
    );
    describe_gauge!(
        LOOKUP_FAILURE_STREAK,
        Unit::Count,
        "Consecutive failed peer lookups (0 after a success)."
    );
    describe_counter!(TLS_RELOADS, Unit::Count, "TLS file reloads, by outcome.");
    describe_gauge!(
        PEERS_UNAVAILABLE,
        Unit::Count,
        "Peers in their connect-failure backoff window."
    );
}

/// The `role` label of fill metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// This replica filling from a peer.
    Client,
    /// This replica serving a peer's fill.
    Listener,
}

impl Role {
    /// `client` or `listener`.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Listener => "listener",
        }
    }
}

/// The `outcome` label of [`FILLS_COMPLETED`] and [`FILL_DURATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every byte of the chunk delivered.
    Ok,
    /// Ended with an error (its kind is counted in [`FILL_FAILURES`]).
    Failed,
    /// Dropped before its end by whoever held it.
    Cancelled,
}

impl Outcome {
    /// `ok`, `failed` or `cancelled`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The `kind` of a failed listener fill ([`FILL_FAILURES`] with `role="listener"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerFailure {
    /// The filler returned an error: answered 502.
    FillerError,
    /// The filler's stream ended before the chunk's length: the response was aborted.
    AbortedShort,
    /// The filler's stream ran past the chunk's length: the response was aborted.
    AbortedLong,
    /// The filler's stream yielded an error: the response was aborted.
    AbortedError,
}

impl ListenerFailure {
    /// `filler_error`, `aborted_short`, `aborted_long` or `aborted_error`.
    pub const fn name(self) -> &'static str {
        match self {
            ListenerFailure::FillerError => "filler_error",
            ListenerFailure::AbortedShort => "aborted_short",
            ListenerFailure::AbortedLong => "aborted_long",
            ListenerFailure::AbortedError => "aborted_error",
        }
    }
}

/// The `reason` label of [`REFUSALS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 404: not `/internal/fill`.
    NotFound,
    /// 405: not `GET`.
    Method,
    /// 400: a request target not in origin-form, no single `x-orca-internal: 1`, a bad query
    /// parameter, or a `chunk_size` above the maximum.
    BadRequest,
    /// 409: this replica does not coordinate the chunk.
    NotCoordinator,
    /// 503: the listener's or the connection's concurrency limit is reached.
    Overloaded,
    /// 400 or 431: a request head the HTTP layer refuses (malformed, `Host` rule, too large);
    /// the connection is closed.
    BadHead,
}

impl Refusal {
    /// `not_found`, `method`, `bad_request`, `not_coordinator`, `overloaded` or `bad_head`.
    pub const fn name(self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Method => "method",
            Refusal::BadRequest => "bad_request",
            Refusal::NotCoordinator => "not_coordinator",
            Refusal::Overloaded => "overloaded",
            Refusal::BadHead => "bad_head",
        }
    }

    /// The reason of an admission rejection.
    pub fn of(rejection: &Rejection) -> Refusal {
        match rejection {
            Rejection::NotFound => Refusal::NotFound,
            Rejection::MethodNotAllowed => Refusal::Method,
            Rejection::NotCoordinator => Refusal::NotCoordinator,
            Rejection::BadTarget
            | Rejection::NotInternal
            | Rejection::RepeatedInternalHeader
            | Rejection::BadQuery(_) => Refusal::BadRequest,
        }
    }
}

/// Counts a refused fill request.
pub(crate) fn refused(reason: Refusal) {
    counter!(REFUSALS, "reason" => reason.name()).increment(1);
}

/// Publishes the gauges of a new snapshot and counts the change.
pub(crate) fn snapshot_changed(peers: usize, generation: u64, reason: &'static str) {
    gauge!(PEERS).set(peers as f64);
    gauge!(SNAPSHOT_GENERATION).set(generation as f64);
    counter!(SNAPSHOT_CHANGES, "reason" => reason).increment(1);
}

/// Publishes the gauges of the bootstrap snapshot (no change counted).
pub(crate) fn snapshot_bootstrap(peers: usize, generation: u64) {
    gauge!(PEERS).set(peers as f64);
    gauge!(SNAPSHOT_GENERATION).set(generation as f64);
}

/// Counts an answered lookup.
pub(crate) fn lookup_answered() {
    counter!(LOOKUPS).increment(1);
}

/// Counts a failed lookup of `kind`.
pub(crate) fn lookup_failed(kind: &'static str) {
    counter!(LOOKUP_FAILURES, "kind" => kind).increment(1);
}

/// Sets the consecutive lookup failures.
pub(crate) fn lookup_failure_streak(streak: u32) {
    gauge!(LOOKUP_FAILURE_STREAK).set(f64::from(streak));
}

/// Counts a TLS reload attempt.
pub(crate) fn tls_reload(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    counter!(TLS_RELOADS, "outcome" => outcome).increment(1);
}

/// Moves the unavailable-peers gauge by `delta` peers.
pub(crate) fn peers_unavailable(delta: i64) {
    let g = gauge!(PEERS_UNAVAILABLE);
    if delta >= 0 {
        g.increment(delta as f64);
    } else {
        g.decrement(delta.unsigned_abs() as f64);
    }
}

/// One fill, from its start to its one outcome: counts the start and keeps the in-flight gauge
/// up until [`FillTrack::ok`] or [`FillTrack::failed`], or its drop (the `cancelled` outcome),
/// whichever comes first; later calls change nothing. The outcome (`outcome`, `kind`, `bytes`)
/// is also recorded on the fill's tracing span (`fill` or `fill_serve`), which declares those
/// fields empty.
#[derive(Debug)]
pub(crate) struct FillTrack {
    role: Role,
    span: tracing::Span,
    started: Instant,
    bytes: u64,
    ended: bool,
}

impl FillTrack {
    /// Starts a fill of `role`, whose span is `span`.
    pub(crate) fn start(role: Role, span: tracing::Span) -> FillTrack {
        let role_name = role.name();
        counter!(FILLS_STARTED, "role" => role_name).increment(1);
        gauge!(FILLS_IN_FLIGHT, "role" => role_name).increment(1.0);
        FillTrack {
            role,
            span,
            started: Instant::now(),
            bytes: 0,
            ended: false,
        }
    }

    /// The fill's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Counts `n` chunk bytes.
    pub(crate) fn bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
        counter!(FILL_BYTES, "role" => self.role.name()).increment(n as u64);
    }

    /// The fill delivered its chunk.
    pub(crate) fn ok(&mut self) {
        self.end(Outcome::Ok, None);
    }

    /// The fill failed with `kind`.
    pub(crate) fn failed(&mut self, kind: &'static str) {
        self.end(Outcome::Failed, Some(kind));
    }

    fn end(&mut self, outcome: Outcome, kind: Option<&'static str>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let role = self.role.name();
        counter!(FILLS_COMPLETED, "role" => role, "outcome" => outcome.name()).increment(1);
        if let Some(kind) = kind {
            counter!(FILL_FAILURES, "role" => role, "kind" => kind).increment(1);
        }
        histogram!(FILL_DURATION, "role" => role, "outcome" => outcome.name())
            .record(self.started.elapsed().as_secs_f64());
        gauge!(FILLS_IN_FLIGHT, "role" => role).decrement(1.0);
        self.span.record("outcome", outcome.name());
        self.span.record("bytes", self.bytes);
        if let Some(kind) = kind {
            self.span.record("kind", kind);
        }
    }
}

impl Drop for FillTrack {
    fn drop(&mut self) {
        self.end(Outcome::Cancelled, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for name in ALL {
            assert!(name.starts_with("orca_cluster_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len(), "names are distinct");
        for counter in [
            FILLS_STARTED,
            FILLS_COMPLETED,
            FILL_FAILURES,
            FILL_BYTES,
            REFUSALS,
            SNAPSHOT_CHANGES,
            LOOKUPS,
            LOOKUP_FAILURES,
            TLS_RELOADS,
        ] {
            assert!(counter.ends_with("_total"), "{counter}");
        }
        assert!(FILL_DURATION.ends_with("_seconds"));
        assert!(FILL_BYTES.ends_with("_bytes_total"));
        assert!(FILL_DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_rejection_has_a_reason() {
        use orca_cluster_core::wire::DecodeError;
        let cases = [
            (Rejection::NotFound, "not_found"),
            (Rejection::MethodNotAllowed, "method"),
            (Rejection::NotCoordinator, "not_coordinator"),
            (Rejection::BadTarget, "bad_request"),
            (Rejection::NotInternal, "bad_request"),
            (Rejection::RepeatedInternalHeader, "bad_request"),
            (
                Rejection::BadQuery(DecodeError::IndexPastEnd {
                    index: 9,
                    chunk_size: 1,
                    object_size: 1,
                }),
                "bad_request",
            ),
        ];
        for (rejection, reason) in cases {
            assert_eq!(Refusal::of(&rejection).name(), reason, "{rejection:?}");
        }
    }
}
