//! # orca-cluster-core
//!
//! The sans-IO core of orca-cluster: everything replicas of a Deployment must agree on, with no
//! clock, no IO, no threads and no `std` (`#![no_std]` + `alloc`). Two drivers (tokio/hyper and
//! smol/async-h1) wrap it and do the IO.
//!
//! - [`ChunkKey`] — which chunk; [`ChunkKey::expected_len`] with checked arithmetic.
//! - [`wire`] — the fill RPC query string, byte-compatible with Go, and its validating decoder.
//! - [`Peer`], [`Snapshot`] — immutable, sorted, de-duplicated peer sets that always hold self.
//! - [`rendezvous`] — xxh3 rendezvous hashing (and a Go-compatible mode): `coordinator`,
//!   `is_coordinator`, `ranked`, `score`.
//! - [`Membership`] — the DNS membership state machine.
//! - [`fill`] — fill request descriptors and response checks (client side).
//! - [`admission`] — which fill requests a listener admits (server side).
//! - [`h1`] — a sans-IO HTTP/1.1 codec for the fill exchange (request, heads, body framing).
//!
//! ## The drain contract
//!
//! [`Membership`] is driven like quinn-proto or str0m: inputs carry `now`, outputs are drained.
//!
//! 1. Feed an input: [`Membership::handle_timeout`], [`Membership::handle_lookup`] or
//!    [`Membership::handle_shutdown`], each with the current [`Instant`].
//! 2. **After every input, drain all outputs**, in any order:
//!    - [`Membership::poll_lookup`] until `None`: start each lookup (answer it with
//!      [`Membership::handle_lookup`]);
//!    - [`Membership::poll_abandoned`] until `None`: cancel (drop) the lookup with that id if it
//!      is still running. This is the only signal that a lookup ended without an answer (its
//!      deadline passed, or shutdown); a driver never infers it from the machine's state;
//!    - [`Membership::poll_event`] until `None`: publish snapshots, log events.
//! 3. Then sleep until [`Membership::poll_timeout`] (or until a lookup answers) and go to 1.
//!    After a full drain the timeout is strictly later than the last `now` given, so this loop
//!    never spins; `None` means the machine was shut down.
//!
//! Outputs queue up until drained, so a driver that drains late loses nothing; a lookup request
//! that is never taken simply times out (and, never handed out, is not reported as abandoned).
//! Spurious timeouts are harmless.
//!
//! ## A canonical driver loop
//!
//! A synchronous loop with a virtual clock and a fake resolver that hangs on its third lookup;
//! a real driver awaits the lookup and a timer concurrently, but follows the same steps.
//!
//! ```
//! use core::time::Duration;
//! use orca_cluster_core::{
//!     Instant, LookupAnswer, LookupId, Membership, MembershipConfig, MembershipEvent, PeerAddr,
//! };
//!
//! let me = "10.0.0.1".parse().unwrap();
//! let config = MembershipConfig::new("orca-peers.default.svc.cluster.local", [me]);
//! let mut now = Instant::ZERO;
//! let mut machine = Membership::new(&config, now).unwrap();
//! let resolve = |_name: &str| {
//!     vec![PeerAddr::from_ip(me), PeerAddr::from_ip("10.0.0.2".parse().unwrap())]
//! };
//! let mut published = Vec::new();
//! let mut lookups = 0;
//! let mut hanging: Option<LookupId> = None; // a real driver holds the lookup's future here
//! let mut cancelled = Vec::new();
//!
//! for _ in 0..10 {
//!     // 2. drain every output
//!     while let Some(request) = machine.poll_lookup() {
//!         lookups += 1;
//!         if lookups == 3 {
//!             hanging = Some(request.id); // the resolver never answers this one
//!             continue;
//!         }
//!         let records = resolve(&request.name); // the driver's IO, bounded by request.deadline
//!         now = now + Duration::from_millis(2);
//!         machine.handle_lookup(now, request.id, LookupAnswer::Records(records));
//!     }
//!     while let Some(id) = machine.poll_abandoned() {
//!         if hanging == Some(id) {
//!             hanging = None; // drop the future: cancels the lookup
//!         }
//!         cancelled.push(id);
//!     }
//!     while let Some(event) = machine.poll_event() {
//!         if let MembershipEvent::SnapshotChanged { snapshot, .. } = event {
//!             published.push(snapshot); // e.g. swap an Arc / send on a watch channel
//!         }
//!     }
//!     // 3. sleep until the next timeout, then feed it (1.)
//!     let Some(wake) = machine.poll_timeout() else { break };
//!     assert!(wake > now, "a drained machine never asks to be woken in the past");
//!     now = wake;
//!     machine.handle_timeout(now);
//! }
//! assert!(machine.has_initial_snapshot());
//! assert_eq!(cancelled.len(), 1); // the hanging lookup, at its deadline
//! assert!(hanging.is_none());
//! assert_eq!(machine.failure_streak(), 0); // the next lookup answered again
//! assert_eq!(published.len(), 1); // the set never changed: one timeout keeps the stale set
//! assert_eq!(machine.snapshot().len(), 2);
//! ```
//!
//! ## Features
//! - `std` — `std::error::Error` for the error types.
//! - `serde` — serde for [`ClusterConfig`] (Go key names, Go-style durations) and plain data.
//! - `arbitrary` — `arbitrary::Arbitrary` for inputs (fuzzing).

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod admission;
pub mod chunk;
pub mod config;
pub mod connection_deadlines;
pub mod duration;
pub mod fill;
pub mod h1;
pub mod membership;
pub mod peer;
pub mod peer_health;
pub mod rendezvous;
pub mod snapshot;
pub mod time;
pub mod wire;

pub use chunk::{ChunkError, ChunkKey};
pub use config::{ClusterConfig, ConfigError, IpFamily, MembershipConfig, TlsSettings};
pub use membership::{
    ChangeReason, LookupAnswer, LookupFailure, LookupId, LookupRequest, Membership, MembershipEvent,
};
pub use peer::{Peer, PeerAddr, SelfIdentity};
pub use rendezvous::Scoring;
pub use snapshot::Snapshot;
pub use time::Instant;
