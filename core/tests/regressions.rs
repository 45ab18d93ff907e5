//! Regression tests for bugs found by the simulation and the fuzz targets.
//!
//! 1. Drain contract (simulation seed 136, fuzz target `membership`): an answer that is ignored
//!    (stale id, or no lookup in flight) is still an input at `now`, so after draining it the
//!    next timeout must be strictly later than `now`, and a lookup past its deadline counts as
//!    a failure "at the first input at or after" the deadline (`LookupRequest::deadline`).
//! 2. Body check (fuzz target `fill_response`): with `expected == u64::MAX`, a saturating byte
//!    count accepted frames past the expected length.

use std::time::Duration;

use orca_cluster_core::fill::{BodyCheck, FillCheckError};
use orca_cluster_core::{
    Instant, LookupAnswer, LookupFailure, LookupId, Membership, MembershipConfig, MembershipEvent,
    PeerAddr,
};

fn machine() -> Membership {
    let mut c = MembershipConfig::new("orca-peers", ["10.0.0.1".parse().unwrap()]);
    c.membership_refresh = Duration::from_secs(5);
    c.lookup_timeout = Duration::from_secs(3);
    Membership::new(&c, Instant::ZERO).unwrap()
}

fn records() -> LookupAnswer {
    LookupAnswer::Records(vec![
        PeerAddr::from_ip("10.0.0.1".parse().unwrap()),
        PeerAddr::from_ip("10.0.0.2".parse().unwrap()),
    ])
}

fn drain(m: &mut Membership) -> (Vec<LookupId>, Vec<MembershipEvent>) {
    let lookups = std::iter::from_fn(|| m.poll_lookup())
        .map(|r| r.id)
        .collect();
    let events = std::iter::from_fn(|| m.poll_event()).collect();
    (lookups, events)
}

fn assert_wake_after(m: &Membership, now: Instant) {
    let wake = m.poll_timeout().expect("not shut down");
    assert!(wake > now, "poll_timeout {wake:?} is not after now {now:?}");
}

#[test]
fn stale_answer_when_the_refresh_is_due_starts_the_refresh() {
    let mut m = machine();
    let (ids, _) = drain(&mut m);
    let first = ids[0];
    m.handle_lookup(Instant::from_millis(1_000), first, records());
    drain(&mut m);
    // The refresh is due at 5 s; a duplicate of the first answer arrives at that very instant,
    // before the driver's timer fires.
    let t = Instant::from_millis(5_000);
    assert_eq!(m.poll_timeout(), Some(t));
    m.handle_lookup(t, first, records());
    let (ids, _) = drain(&mut m);
    assert_eq!(ids.len(), 1, "the due refresh was not requested");
    assert_ne!(ids[0], first);
    assert_wake_after(&m, t);
}

#[test]
fn stale_answer_after_the_deadline_expires_the_lookup_in_flight() {
    let mut m = machine();
    let (ids, _) = drain(&mut m);
    let first = ids[0];
    m.handle_lookup(Instant::from_millis(1_000), first, records());
    drain(&mut m);
    m.handle_timeout(Instant::from_millis(5_000));
    let (ids, _) = drain(&mut m);
    let second = ids[0];
    // The second lookup's deadline is 8 s; a stale answer to the first arrives at 8 s.
    let t = Instant::from_millis(8_000);
    m.handle_lookup(t, first, records());
    let (_, events) = drain(&mut m);
    assert!(
        events.iter().any(|e| matches!(
            e,
            MembershipEvent::LookupFailed {
                failure: LookupFailure::Timeout,
                ..
            }
        )),
        "the overdue lookup {second:?} was not counted as a timeout: {events:?}"
    );
    assert_eq!(m.in_flight(), None);
    assert_wake_after(&m, t);
}

#[test]
fn ignored_answers_leave_the_snapshot_alone() {
    let mut m = machine();
    let (ids, _) = drain(&mut m);
    m.handle_lookup(
        Instant::from_millis(10),
        LookupId(ids[0].0 + 100),
        records(),
    );
    let (lookups, events) = drain(&mut m);
    assert!(lookups.is_empty() && events.is_empty());
    assert_eq!(m.snapshot().len(), 1);
    assert!(!m.has_initial_snapshot());
    assert_eq!(m.in_flight().map(|(id, _)| id), Some(ids[0]));
    assert_wake_after(&m, Instant::from_millis(10));
}

#[test]
fn body_check_never_accepts_more_than_expected_even_at_u64_max() {
    let mut c = BodyCheck::new(u64::MAX);
    c.on_data(usize::MAX).unwrap();
    assert_eq!(c.remaining(), u64::MAX - usize::MAX as u64);
    // 2^64 - 1 bytes so far only if usize is 64 bits; in any case the next huge frame overflows
    // the real total and must be rejected, not saturated.
    let big = usize::MAX;
    if (usize::MAX as u64) == u64::MAX {
        assert!(c.is_complete());
        assert_eq!(
            c.on_data(1),
            Err(FillCheckError::TooLong { expected: u64::MAX })
        );
        assert_eq!(
            c.on_data(big),
            Err(FillCheckError::TooLong { expected: u64::MAX })
        );
        assert_eq!(c.received(), u64::MAX);
        assert_eq!(c.on_end(), Ok(()));
    }
    let mut c = BodyCheck::new(u64::MAX - 1);
    c.on_data(big / 2).unwrap();
    assert_eq!(
        c.on_data(big),
        Err(FillCheckError::TooLong {
            expected: u64::MAX - 1
        })
    );
    assert_eq!(c.received(), (big / 2) as u64);
}
