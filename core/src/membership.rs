//! The membership state machine: turns DNS (or static-source) answers and the passage of time
//! into peer-set snapshots.
//!
//! It is sans-IO: the driver performs the lookups it asks for and feeds back the answers.
//! Inputs are `handle_*(now, ..)`; outputs are drained with [`Membership::poll_lookup`],
//! [`Membership::poll_abandoned`], [`Membership::poll_event`] and [`Membership::poll_timeout`].
//! See the crate docs for the drain contract and a canonical driver loop.
//!
//! Rules (the design's section 3.4):
//! 1. [`Membership::new`] validates the configuration ([`ConfigError`]).
//! 2. Before the first answer the snapshot is `[self]` (generation 0) and
//!    [`Membership::has_initial_snapshot`] is false.
//! 3. The first lookup is requested at construction, later ones every `membership_refresh`
//!    after the previous one was requested (never two at once). A lookup not answered by its
//!    deadline (`lookup_timeout` after the request) is a [`LookupFailure::Timeout`], and the
//!    machine tells the driver to abandon it ([`Membership::poll_abandoned`]).
//! 4. Records not of the configured [`IpFamily`], and records whose address no pod can have
//!    ([`crate::peer::is_peer_ip`]: unspecified, `0.0.0.0/8`, broadcast, multicast), are
//!    dropped from every answer (DNS or a static/custom source). An answer that had records
//!    but none left is the failure [`LookupFailure::NoRecords`] (rule 6). An answer with records left resets the failure
//!    streak, stamps and adds self, sorts and de-duplicates; a new snapshot (next generation)
//!    is published only if the set changed.
//! 5. An answer with zero records (possible only from a static/custom source) publishes `[self]`.
//! 6. A failure increments the streak. With a previous snapshot from discovery and a streak of
//!    at most `max_stale_refreshes`, the snapshot is kept; otherwise `[self]` is published. A
//!    failure before any answer publishes `[self]` at once, as the initial snapshot.
//! 7. [`Membership::handle_shutdown`] is not a failure and changes nothing but abandoning the
//!    lookup in flight; a timeout is a failure.
//! 8. Every change emits [`MembershipEvent::SnapshotChanged`] with added and removed peers and a
//!    [`ChangeReason`].
//! 9. Time never goes backwards inside the machine; after a full drain the next timeout is
//!    strictly later than the latest `now` (unless time has saturated at [`Instant::MAX`]).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::config::{ConfigError, IpFamily, MembershipConfig};
use crate::peer::{Peer, PeerAddr, SelfIdentity};
use crate::rendezvous::Scoring;
use crate::snapshot::Snapshot;
use crate::time::Instant;

/// Identifies one lookup request; answers to anything but the lookup in flight are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct LookupId(pub u64);

/// "Resolve `name` now and answer by `deadline`": an output of the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupRequest {
    /// Pass back with the answer.
    pub id: LookupId,
    /// The service name to resolve (A and AAAA).
    pub name: String,
    /// When the lookup counts as timed out: the core counts it as a failure at the first input
    /// at or after this instant and then reports it through [`Membership::poll_abandoned`],
    /// which is when the driver cancels it.
    pub deadline: Instant,
}

/// Why a lookup failed. Each kind is its own input so events and logs can tell them apart; the
/// rules treat them alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum LookupFailure {
    /// No answer by the deadline (includes a resolver that hangs).
    Timeout,
    /// The server answered SERVFAIL.
    ServFail,
    /// The server answered REFUSED.
    Refused,
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no A/AAAA records (DNS only; a static source answers
    /// [`LookupAnswer::Records`] with an empty list instead). Also what the machine makes of an
    /// answer whose records are all of another family than the configured [`IpFamily`], or
    /// all addresses no pod can have ([`crate::peer::is_peer_ip`]).
    NoRecords,
    /// A socket or protocol error (including a truncated answer whose TCP retry failed).
    Io,
    /// Any other resolver error.
    Other,
}

impl LookupFailure {
    /// A short, stable, snake_case name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            LookupFailure::Timeout => "timeout",
            LookupFailure::ServFail => "servfail",
            LookupFailure::Refused => "refused",
            LookupFailure::NxDomain => "nxdomain",
            LookupFailure::NoRecords => "no_records",
            LookupFailure::Io => "io",
            LookupFailure::Other => "other",
        }
    }
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The answer to a [`LookupRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum LookupAnswer {
    /// The lookup succeeded with these addresses (any order, duplicates allowed, any family:
    /// the machine drops those not of the configured [`IpFamily`] and those no pod can have,
    /// see [`crate::peer::is_peer_ip`]).
    Records(Vec<PeerAddr>),
    /// The lookup failed.
    Failed(LookupFailure),
}

/// Why the snapshot changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeReason {
    /// A successful answer with records.
    Discovery,
    /// A successful answer with zero records: `[self]`.
    EmptyAnswer,
    /// More consecutive failures than `max_stale_refreshes`: `[self]`.
    StaleCeiling,
    /// The first lookup failed: `[self]`.
    BootstrapFailure,
}

impl ChangeReason {
    /// `discovery`, `empty_answer`, `stale_ceiling` or `bootstrap_failure`.
    pub const fn name(self) -> &'static str {
        match self {
            ChangeReason::Discovery => "discovery",
            ChangeReason::EmptyAnswer => "empty_answer",
            ChangeReason::StaleCeiling => "stale_ceiling",
            ChangeReason::BootstrapFailure => "bootstrap_failure",
        }
    }
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happened, for the driver to publish and log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A new snapshot was published.
    SnapshotChanged {
        /// The new snapshot.
        snapshot: Snapshot,
        /// True for the first published snapshot (the end of bootstrap), even if it is `[self]`.
        initial: bool,
        /// Peers in the new snapshot but not the previous one.
        added: Vec<Peer>,
        /// Peers in the previous snapshot but not the new one.
        removed: Vec<Peer>,
        /// Why.
        reason: ChangeReason,
    },
    /// A lookup failed.
    LookupFailed {
        /// How.
        failure: LookupFailure,
        /// Consecutive failures including this one.
        streak: u32,
        /// True when the previous snapshot was kept (streak within `max_stale_refreshes`).
        kept_stale: bool,
    },
}

/// The membership state machine. See the module docs for the rules.
#[derive(Debug)]
pub struct Membership {
    service: String,
    me: SelfIdentity,
    family: IpFamily,
    scoring: Scoring,
    refresh: Duration,
    lookup_timeout: Duration,
    max_stale: u32,

    now: Instant,
    snapshot: Snapshot,
    initial: bool,
    from_discovery: bool,
    streak: u32,
    in_flight: Option<(LookupId, Instant)>,
    next_lookup_at: Instant,
    next_id: u64,
    pending_lookup: Option<LookupRequest>,
    abandoned: VecDeque<LookupId>,
    events: VecDeque<MembershipEvent>,
    closed: bool,
}

impl Membership {
    /// Validates `config` and starts the machine at `now`; the first lookup is queued at once.
    ///
    /// The self IPs of `config.ip_family` come first (in their configured order), so the self
    /// entry added to a snapshot whose answer lacks self carries an IP of the peer set's family
    /// when the replica has one.
    pub fn new(config: &MembershipConfig, now: Instant) -> Result<Membership, ConfigError> {
        config.validate()?;
        let family = config.ip_family;
        let mut self_ips = config.self_ips.clone();
        // Stable: the configured order is kept within each group.
        self_ips.sort_by_key(|ip| !family.matches(*ip));
        let me = SelfIdentity::new(self_ips, config.self_port).ok_or(ConfigError::NoSelfIp)?;
        let snapshot = Snapshot::only_self(&me, config.scoring, 0);
        let mut m = Membership {
            service: config.service.clone(),
            me,
            family,
            scoring: config.scoring,
            refresh: config.membership_refresh,
            lookup_timeout: config.lookup_timeout,
            max_stale: config.max_stale_refreshes,
            now,
            snapshot,
            initial: false,
            from_discovery: false,
            streak: 0,
            in_flight: None,
            next_lookup_at: now,
            next_id: 0,
            pending_lookup: None,
            abandoned: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        };
        m.maybe_start_lookup();
        Ok(m)
    }

    // ---- getters ----

    /// The current snapshot (the bootstrap `[self]` until the first answer).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Whether a snapshot has been published from a first answer or a bootstrap failure.
    pub fn has_initial_snapshot(&self) -> bool {
        self.initial
    }

    /// Consecutive failed lookups (0 after a success).
    pub fn failure_streak(&self) -> u32 {
        self.streak
    }

    /// The identity used to stamp self.
    pub fn self_identity(&self) -> &SelfIdentity {
        &self.me
    }

    /// The address family kept from answers (`MembershipConfig::ip_family`).
    pub fn ip_family(&self) -> IpFamily {
        self.family
    }

    /// The latest `now` the machine has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The lookup in flight and its deadline, if any. For inspection (tests, debugging):
    /// drivers learn that a lookup ended from [`Membership::poll_abandoned`], not from here.
    pub fn in_flight(&self) -> Option<(LookupId, Instant)> {
        self.in_flight
    }

    /// Whether [`Membership::handle_shutdown`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ---- inputs ----

    /// Time passed. Expires the lookup in flight at its deadline (a timeout failure; the
    /// lookup is queued for [`Membership::poll_abandoned`]) and requests the next lookup when it
    /// is due. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some((_, deadline)) = self.in_flight
            && self.now >= deadline
        {
            self.abandon_in_flight();
            self.on_failure(LookupFailure::Timeout);
        }
        self.maybe_start_lookup();
    }

    /// The answer to lookup `id`. An answer to anything but the lookup in flight is ignored; an
    /// answer after the lookup's deadline counts as [`LookupFailure::Timeout`].
    pub fn handle_lookup(&mut self, now: Instant, id: LookupId, answer: LookupAnswer) {
        self.advance(now);
        let current = self
            .in_flight
            .filter(|&(in_flight, _)| in_flight == id && !self.closed);
        let Some((_, deadline)) = current else {
            // Not the lookup in flight: the answer is ignored, but it is still an input at
            // `now`: expire an overdue lookup and start a due one, so that after the drain the
            // next timeout is later than `now` (rule 9).
            self.handle_timeout(now);
            return;
        };
        self.in_flight = None;
        self.pending_lookup = None;
        if self.now > deadline {
            self.on_failure(LookupFailure::Timeout);
        } else {
            match answer {
                LookupAnswer::Records(addrs) if addrs.is_empty() => {
                    self.streak = 0;
                    self.from_discovery = true;
                    let next = Snapshot::only_self(&self.me, self.scoring, self.next_generation());
                    self.publish(next, ChangeReason::EmptyAnswer);
                }
                LookupAnswer::Records(mut addrs) => {
                    let family = self.family;
                    addrs.retain(|a| family.matches(a.ip) && crate::peer::is_peer_ip(a.ip));
                    if addrs.is_empty() {
                        // Records, but none usable: as if DNS had none (rule 4).
                        self.on_failure(LookupFailure::NoRecords);
                    } else {
                        self.streak = 0;
                        self.from_discovery = true;
                        let generation = self.next_generation();
                        let next = Snapshot::new(&self.me, addrs, self.scoring, generation);
                        self.publish(next, ChangeReason::Discovery);
                    }
                }
                LookupAnswer::Failed(failure) => self.on_failure(failure),
            }
        }
        self.maybe_start_lookup();
    }

    /// Stops the machine: no more lookups, answers are ignored, the snapshot is unchanged, and
    /// [`Membership::poll_timeout`] returns `None`. The lookup in flight, if any, is queued for
    /// [`Membership::poll_abandoned`]. Idempotent. Not a failure.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.advance(now);
        self.closed = true;
        self.abandon_in_flight();
    }

    // ---- outputs ----

    /// The next lookup to perform, if one was requested and not yet taken.
    pub fn poll_lookup(&mut self) -> Option<LookupRequest> {
        self.pending_lookup.take()
    }

    /// The next lookup the machine gave up on, oldest first: the driver must cancel (drop) the
    /// lookup with this id if it is still running. A lookup is abandoned when its deadline
    /// passes unanswered or at shutdown; an answer fed for it later is ignored.
    ///
    /// Only lookups handed out by [`Membership::poll_lookup`] are reported, each at most once;
    /// a lookup that was answered (even late) never is. So a driver holding the one lookup it
    /// was given keeps it until it answers it or this returns its id.
    pub fn poll_abandoned(&mut self) -> Option<LookupId> {
        self.abandoned.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// When [`Membership::handle_timeout`] must be called next: the deadline of the lookup in
    /// flight, or the time of the next refresh. `None` once shut down.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        Some(match self.in_flight {
            Some((_, deadline)) => deadline,
            None => self.next_lookup_at,
        })
    }

    // ---- internals ----

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Ends the lookup in flight without an answer; reports it for cancelling if the driver
    /// took it (a request never taken needs no cancel and is withdrawn).
    fn abandon_in_flight(&mut self) {
        if let Some((id, _)) = self.in_flight.take()
            && self.pending_lookup.take().is_none()
        {
            self.abandoned.push_back(id);
        }
    }

    fn maybe_start_lookup(&mut self) {
        if self.closed || self.in_flight.is_some() || self.now < self.next_lookup_at {
            return;
        }
        let id = LookupId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let deadline = self.now + self.lookup_timeout;
        self.in_flight = Some((id, deadline));
        self.next_lookup_at = self.now + self.refresh;
        self.pending_lookup = Some(LookupRequest {
            id,
            name: self.service.clone(),
            deadline,
        });
    }

    fn on_failure(&mut self, failure: LookupFailure) {
        self.streak = self.streak.saturating_add(1);
        let kept_stale = self.initial && self.from_discovery && self.streak <= self.max_stale;
        self.events.push_back(MembershipEvent::LookupFailed {
            failure,
            streak: self.streak,
            kept_stale,
        });
        if !kept_stale {
            let reason = if self.initial {
                ChangeReason::StaleCeiling
            } else {
                ChangeReason::BootstrapFailure
            };
            self.from_discovery = false;
            let next = Snapshot::only_self(&self.me, self.scoring, self.next_generation());
            self.publish(next, reason);
        }
    }

    fn next_generation(&self) -> u64 {
        self.snapshot.generation().saturating_add(1)
    }

    /// Publishes `next` (built with [`Self::next_generation`]) if it is the initial snapshot or
    /// differs from the current one.
    fn publish(&mut self, next: Snapshot, reason: ChangeReason) {
        let initial = !self.initial;
        if !initial && next == self.snapshot {
            return;
        }
        let (added, removed) = next.diff(&self.snapshot);
        self.snapshot = next.clone();
        self.initial = true;
        self.events.push_back(MembershipEvent::SnapshotChanged {
            snapshot: next,
            initial,
            added,
            removed,
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
