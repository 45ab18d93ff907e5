//! One test per membership rule (at least), driving the machine by hand.

use super::*;
use alloc::vec;
use core::net::IpAddr;

const ME: &str = "10.0.0.1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config() -> MembershipConfig {
    let mut c = MembershipConfig::new("orca-peers", [ip(ME)]);
    c.membership_refresh = Duration::from_secs(5);
    c.lookup_timeout = Duration::from_secs(3);
    c.max_stale_refreshes = 5;
    c
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn records(ips: &[&str]) -> LookupAnswer {
    LookupAnswer::Records(ips.iter().map(|s| PeerAddr::from_ip(ip(s))).collect())
}

fn events(m: &mut Membership) -> Vec<MembershipEvent> {
    core::iter::from_fn(|| m.poll_event()).collect()
}

fn changes(m: &mut Membership) -> Vec<(bool, ChangeReason, usize, usize, u64)> {
    events(m)
        .into_iter()
        .filter_map(|e| match e {
            MembershipEvent::SnapshotChanged {
                snapshot,
                initial,
                added,
                removed,
                reason,
            } => Some((
                initial,
                reason,
                added.len(),
                removed.len(),
                snapshot.generation(),
            )),
            MembershipEvent::LookupFailed { .. } => None,
        })
        .collect()
}

/// Takes the pending lookup and answers it at `now`.
fn answer(m: &mut Membership, now: Instant, a: LookupAnswer) {
    let req = m.poll_lookup().expect("a lookup is pending");
    m.handle_lookup(now, req.id, a);
}

/// Advances to the next refresh and answers it.
fn refresh(m: &mut Membership, a: LookupAnswer) {
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    answer(m, t, a);
}

fn peer_ips(m: &Membership) -> Vec<String> {
    m.snapshot()
        .peers()
        .iter()
        .map(|p| alloc::format!("{}", p.ip))
        .collect()
}

use alloc::string::String;

#[test]
fn rule1_invalid_config_is_a_typed_error() {
    let mut c = config();
    c.service.clear();
    assert_eq!(
        Membership::new(&c, at(0)).unwrap_err(),
        ConfigError::EmptyService
    );
    let mut c = config();
    c.self_ips.clear();
    assert_eq!(
        Membership::new(&c, at(0)).unwrap_err(),
        ConfigError::NoSelfIp
    );
    let mut c = config();
    c.membership_refresh = Duration::ZERO;
    assert_eq!(
        Membership::new(&c, at(0)).unwrap_err(),
        ConfigError::ZeroRefresh
    );
    let mut c = config();
    c.lookup_timeout = Duration::ZERO;
    assert_eq!(
        Membership::new(&c, at(0)).unwrap_err(),
        ConfigError::ZeroLookupTimeout
    );
}

#[test]
fn rule2_bootstrap_snapshot_is_self_only() {
    let m = Membership::new(&config(), at(0)).unwrap();
    assert!(!m.has_initial_snapshot());
    assert_eq!(peer_ips(&m), ["10.0.0.1"]);
    assert!(m.snapshot().peers()[0].is_self);
    assert_eq!(m.snapshot().generation(), 0);
}

#[test]
fn rule3_first_lookup_immediate_then_every_refresh_with_deadline() {
    let mut m = Membership::new(&config(), at(1000)).unwrap();
    let req = m.poll_lookup().unwrap();
    assert_eq!(req.name, "orca-peers");
    assert_eq!(req.deadline, at(4000));
    assert!(m.poll_lookup().is_none());
    assert_eq!(m.poll_timeout(), Some(at(4000)));
    m.handle_lookup(at(1200), req.id, records(&[ME, "10.0.0.2"]));
    assert_eq!(
        m.poll_timeout(),
        Some(at(6000)),
        "next refresh: 5 s after the request"
    );
    // A spurious early timeout does nothing.
    m.handle_timeout(at(3000));
    assert!(m.poll_lookup().is_none());
    m.handle_timeout(at(6000));
    let req = m.poll_lookup().unwrap();
    assert_eq!(req.deadline, at(9000));
    // No answer by the deadline: a timeout failure.
    m.handle_timeout(at(9000));
    let ev = events(&mut m);
    assert!(ev.contains(&MembershipEvent::LookupFailed {
        failure: LookupFailure::Timeout,
        streak: 1,
        kept_stale: true
    }));
    // A late answer to the expired lookup is ignored.
    m.handle_lookup(at(9100), req.id, records(&[ME]));
    assert_eq!(peer_ips(&m), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(m.poll_timeout(), Some(at(11_000)));
}

#[test]
fn rule3_answer_after_deadline_is_a_timeout() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(3001), records(&[ME, "10.0.0.2"]));
    assert_eq!(peer_ips(&m), ["10.0.0.1"]);
    assert!(events(&mut m).iter().any(|e| matches!(
        e,
        MembershipEvent::LookupFailed {
            failure: LookupFailure::Timeout,
            ..
        }
    )));
}

#[test]
fn rule4_success_stamps_sorts_dedups_and_publishes_only_on_change() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(
        &mut m,
        at(1),
        records(&["10.0.0.3", "10.0.0.2", "10.0.0.3"]),
    );
    assert_eq!(
        peer_ips(&m),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        "self added, sorted, deduped"
    );
    assert!(m.has_initial_snapshot());
    assert_eq!(
        changes(&mut m),
        vec![(true, ChangeReason::Discovery, 2, 0, 1)]
    );
    refresh(&mut m, records(&["10.0.0.2", ME, "10.0.0.3"]));
    assert!(changes(&mut m).is_empty(), "same set: no new generation");
    assert_eq!(m.snapshot().generation(), 1);
    refresh(&mut m, records(&["10.0.0.4", ME]));
    assert_eq!(
        changes(&mut m),
        vec![(false, ChangeReason::Discovery, 1, 2, 2)]
    );
    assert_eq!(m.failure_streak(), 0);
}

#[test]
fn rule4_failure_streak_resets_on_success() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    refresh(&mut m, LookupAnswer::Failed(LookupFailure::ServFail));
    refresh(&mut m, LookupAnswer::Failed(LookupFailure::ServFail));
    assert_eq!(m.failure_streak(), 2);
    refresh(&mut m, records(&[ME, "10.0.0.2"]));
    assert_eq!(m.failure_streak(), 0);
}

#[test]
fn rule5_zero_records_publish_self() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    let _ = events(&mut m);
    refresh(&mut m, LookupAnswer::Records(vec![]));
    assert_eq!(peer_ips(&m), ["10.0.0.1"]);
    assert_eq!(
        changes(&mut m),
        vec![(false, ChangeReason::EmptyAnswer, 0, 1, 2)]
    );
}

#[test]
fn rule6_failures_keep_stale_snapshot_up_to_the_ceiling() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    let _ = events(&mut m);
    for (i, f) in [
        LookupFailure::Timeout,
        LookupFailure::ServFail,
        LookupFailure::Refused,
        LookupFailure::NxDomain,
        LookupFailure::NoRecords,
    ]
    .into_iter()
    .enumerate()
    {
        refresh(&mut m, LookupAnswer::Failed(f));
        assert_eq!(
            peer_ips(&m).len(),
            2,
            "failure {} keeps the stale set",
            i + 1
        );
        assert!(changes(&mut m).is_empty());
    }
    refresh(&mut m, LookupAnswer::Failed(LookupFailure::Io));
    assert_eq!(
        peer_ips(&m),
        ["10.0.0.1"],
        "sixth failure: past the ceiling"
    );
    assert_eq!(m.failure_streak(), 6);
    assert_eq!(
        changes(&mut m),
        vec![(false, ChangeReason::StaleCeiling, 0, 1, 2)]
    );
    refresh(&mut m, LookupAnswer::Failed(LookupFailure::Io));
    assert!(changes(&mut m).is_empty());
}

#[test]
fn rule6_bootstrap_failure_publishes_self_at_once() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), LookupAnswer::Failed(LookupFailure::NxDomain));
    assert!(m.has_initial_snapshot());
    assert_eq!(peer_ips(&m), ["10.0.0.1"]);
    assert_eq!(
        changes(&mut m),
        vec![(true, ChangeReason::BootstrapFailure, 0, 0, 1)]
    );
    // Recovery on the next refresh.
    refresh(&mut m, records(&[ME, "10.0.0.2"]));
    assert_eq!(peer_ips(&m).len(), 2);
}

#[test]
fn rule6_zero_ceiling_falls_back_on_first_failure() {
    let mut c = config();
    c.max_stale_refreshes = 0;
    let mut m = Membership::new(&c, at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    refresh(&mut m, LookupAnswer::Failed(LookupFailure::Timeout));
    assert_eq!(peer_ips(&m), ["10.0.0.1"]);
}

#[test]
fn rule7_shutdown_is_not_a_failure_and_timeout_is() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    let _ = events(&mut m);
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let req = m.poll_lookup().unwrap();
    m.handle_shutdown(t);
    m.handle_shutdown(t); // idempotent
    m.handle_lookup(t, req.id, LookupAnswer::Failed(LookupFailure::Timeout));
    m.handle_timeout(t + Duration::from_secs(3600));
    assert_eq!(peer_ips(&m).len(), 2);
    assert_eq!(m.failure_streak(), 0);
    assert!(events(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), None);
    assert!(m.poll_lookup().is_none());
    assert!(m.is_closed());
}

#[test]
fn rule8_events_carry_added_removed_and_reason() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2", "10.0.0.3"]));
    let _ = events(&mut m);
    refresh(&mut m, records(&[ME, "10.0.0.2", "10.0.0.4"]));
    let ev = events(&mut m);
    let MembershipEvent::SnapshotChanged {
        added,
        removed,
        reason,
        initial,
        ..
    } = &ev[0]
    else {
        panic!("expected a change, got {ev:?}");
    };
    assert_eq!(added[0].ip, ip("10.0.0.4"));
    assert_eq!(removed[0].ip, ip("10.0.0.3"));
    assert_eq!((*reason, *initial), (ChangeReason::Discovery, false));
    assert_eq!(ChangeReason::StaleCeiling.name(), "stale_ceiling");
}

#[test]
fn rule9_time_never_goes_backwards_and_timeouts_are_in_the_future() {
    let mut m = Membership::new(&config(), at(10_000)).unwrap();
    answer(&mut m, at(10_001), records(&[ME]));
    m.handle_timeout(at(5)); // an older `now` is clamped
    assert_eq!(m.now(), at(10_001));
    assert!(m.poll_timeout().unwrap() > m.now());
    // Answering at a late time, after the next refresh is already due, requests the next
    // lookup immediately; the timeout then is its deadline, still in the future.
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let req = m.poll_lookup().unwrap();
    m.handle_lookup(t + Duration::from_secs(2), req.id, records(&[ME]));
    assert!(m.poll_timeout().unwrap() > m.now());
}

#[test]
fn lookup_timeout_longer_than_refresh_never_overlaps() {
    let mut c = config();
    c.lookup_timeout = Duration::from_secs(8);
    let mut m = Membership::new(&c, at(0)).unwrap();
    let first = m.poll_lookup().unwrap();
    m.handle_timeout(at(5000)); // refresh due, but a lookup is in flight
    assert!(m.poll_lookup().is_none());
    assert_eq!(m.poll_timeout(), Some(at(8000)));
    m.handle_lookup(at(6000), first.id, records(&[ME, "10.0.0.2"]));
    // The refresh was due at 5 s: the next lookup starts as soon as the first one ended.
    let second = m.poll_lookup().unwrap();
    assert_eq!(second.deadline, at(14_000));
}

#[test]
fn static_ports_stamp_self_by_ip_and_port() {
    let mut c = config();
    c.self_ips = vec![ip("127.0.0.1")];
    c.self_port = 4001;
    let mut m = Membership::new(&c, at(0)).unwrap();
    let addrs = [4001u16, 4002, 4003]
        .map(|port| PeerAddr {
            ip: ip("127.0.0.1"),
            port,
        })
        .to_vec();
    answer(&mut m, at(1), LookupAnswer::Records(addrs));
    let selfs: Vec<u16> = m
        .snapshot()
        .peers()
        .iter()
        .filter(|p| p.is_self)
        .map(|p| p.port)
        .collect();
    assert_eq!(selfs, [4001]);
    assert_eq!(m.snapshot().len(), 3);
}

fn family_config(family: IpFamily, self_ips: &[&str]) -> MembershipConfig {
    let mut c = config();
    c.self_ips = self_ips.iter().map(|s| ip(s)).collect();
    c.ip_family = family;
    c
}

fn failures(evs: &[MembershipEvent]) -> Vec<(LookupFailure, u32, bool)> {
    evs.iter()
        .filter_map(|e| match e {
            MembershipEvent::LookupFailed {
                failure,
                streak,
                kept_stale,
            } => Some((*failure, *streak, *kept_stale)),
            MembershipEvent::SnapshotChanged { .. } => None,
        })
        .collect()
}

#[test]
fn rule4_ip_family_drops_records_of_the_other_family() {
    let dual = [ME, "10.0.0.2", "fd00::1", "fd00::2", "::ffff:10.0.0.3"];
    let mut m = Membership::new(&family_config(IpFamily::Ipv4, &[ME, "fd00::1"]), at(0)).unwrap();
    assert_eq!(m.ip_family(), IpFamily::Ipv4);
    answer(&mut m, at(1), records(&dual));
    assert_eq!(
        peer_ips(&m),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        "AAAA records dropped, the IPv4-mapped one kept as IPv4"
    );
    let mut m = Membership::new(&family_config(IpFamily::Ipv6, &[ME, "fd00::1"]), at(0)).unwrap();
    answer(&mut m, at(1), records(&dual));
    assert_eq!(peer_ips(&m), ["fd00::1", "fd00::2"]);
    assert_eq!(m.snapshot().self_peer().unwrap().ip, ip("fd00::1"));
    // `Any` keeps every record: each dual-stack pod appears twice.
    let mut m = Membership::new(&family_config(IpFamily::Any, &[ME, "fd00::1"]), at(0)).unwrap();
    answer(&mut m, at(1), records(&dual));
    assert_eq!(m.snapshot().len(), 5);
    assert_eq!(m.snapshot().peers().iter().filter(|p| p.is_self).count(), 2);
}

#[test]
fn rule4_ip_family_applies_to_static_answers_with_ports() {
    let mut c = family_config(IpFamily::Ipv6, &["::1"]);
    c.self_port = 4001;
    let mut m = Membership::new(&c, at(0)).unwrap();
    let addrs = vec![
        PeerAddr {
            ip: ip("::1"),
            port: 4001,
        },
        PeerAddr {
            ip: ip("127.0.0.1"),
            port: 4002,
        },
        PeerAddr {
            ip: ip("::1"),
            port: 4003,
        },
    ];
    answer(&mut m, at(1), LookupAnswer::Records(addrs));
    let got: Vec<(IpAddr, u16, bool)> = m
        .snapshot()
        .peers()
        .iter()
        .map(|p| (p.ip, p.port, p.is_self))
        .collect();
    assert_eq!(
        got,
        [(ip("::1"), 4001, true), (ip("::1"), 4003, false)],
        "the IPv4 entry of the static list is dropped"
    );
}

#[test]
fn rule4_records_of_no_wanted_family_are_a_no_records_failure() {
    // Before any answer: a bootstrap failure, not an empty answer.
    let mut m = Membership::new(&family_config(IpFamily::Ipv6, &[ME, "fd00::1"]), at(0)).unwrap();
    answer(&mut m, at(1), records(&[ME, "10.0.0.2"]));
    let evs = events(&mut m);
    assert_eq!(failures(&evs), [(LookupFailure::NoRecords, 1, false)]);
    assert!(evs.iter().any(|e| matches!(
        e,
        MembershipEvent::SnapshotChanged {
            reason: ChangeReason::BootstrapFailure,
            initial: true,
            ..
        }
    )));
    assert_eq!(peer_ips(&m), ["fd00::1"], "self under its IPv6 address");

    // After a good answer: the stale set is kept, the streak grows, then it recovers.
    refresh(&mut m, records(&["fd00::1", "fd00::2", ME]));
    assert_eq!(peer_ips(&m), ["fd00::1", "fd00::2"]);
    let _ = events(&mut m);
    refresh(&mut m, records(&[ME, "10.0.0.2"]));
    assert_eq!(
        failures(&events(&mut m)),
        [(LookupFailure::NoRecords, 1, true)]
    );
    assert_eq!(m.failure_streak(), 1);
    assert_eq!(peer_ips(&m), ["fd00::1", "fd00::2"]);
    refresh(&mut m, records(&["fd00::2", "10.0.0.2"]));
    assert_eq!(m.failure_streak(), 0);
    assert_eq!(peer_ips(&m), ["fd00::1", "fd00::2"]);

    // An empty answer stays rule 5 (`[self]`), whatever the family.
    refresh(&mut m, LookupAnswer::Records(vec![]));
    assert_eq!(
        changes(&mut m),
        vec![(false, ChangeReason::EmptyAnswer, 0, 1, 3)]
    );
}

#[test]
fn self_ip_of_the_family_is_the_self_entry() {
    // Configured IPv4 first, but the peer set is IPv6: the bootstrap and added self entry use
    // the IPv6 address; without a self IP of the family the configured order stays.
    let m = Membership::new(&family_config(IpFamily::Ipv6, &[ME, "fd00::1"]), at(0)).unwrap();
    assert_eq!(m.self_identity().ips(), &[ip("fd00::1"), ip(ME)]);
    assert_eq!(peer_ips(&m), ["fd00::1"]);
    let m = Membership::new(&family_config(IpFamily::Any, &[ME, "fd00::1"]), at(0)).unwrap();
    assert_eq!(peer_ips(&m), [ME]);
    let m = Membership::new(&family_config(IpFamily::Ipv6, &[ME, "10.0.0.9"]), at(0)).unwrap();
    assert_eq!(m.self_identity().ips(), &[ip(ME), ip("10.0.0.9")]);
}

fn abandoned(m: &mut Membership) -> Vec<LookupId> {
    core::iter::from_fn(|| m.poll_abandoned()).collect()
}

#[test]
fn rule3_a_lookup_past_its_deadline_is_abandoned_once() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    let first = m.poll_lookup().unwrap();
    m.handle_timeout(at(2999));
    assert!(abandoned(&mut m).is_empty(), "not before the deadline");
    m.handle_timeout(at(3000));
    assert_eq!(abandoned(&mut m), [first.id]);
    m.handle_timeout(at(3001));
    assert!(abandoned(&mut m).is_empty(), "reported once");
    // The late answer is ignored and abandons nothing more.
    m.handle_lookup(at(3002), first.id, records(&[ME, "10.0.0.2"]));
    assert!(abandoned(&mut m).is_empty());
    assert!(m.poll_timeout().unwrap() > m.now());
}

#[test]
fn rule3_answered_lookups_are_never_abandoned() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(100), records(&[ME, "10.0.0.2"]));
    // Answered late (an answer the driver already has): a timeout, but nothing to cancel.
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    answer(&mut m, t + Duration::from_secs(4), records(&[ME]));
    assert_eq!(m.failure_streak(), 1);
    assert!(abandoned(&mut m).is_empty());
    m.handle_shutdown(at(60_000));
    assert!(
        abandoned(&mut m).is_empty(),
        "nothing in flight at shutdown"
    );
}

#[test]
fn rule3_expiry_by_another_input_abandons_and_the_next_lookup_is_new() {
    let mut c = config();
    c.lookup_timeout = Duration::from_secs(5); // deadline == next refresh
    let mut m = Membership::new(&c, at(0)).unwrap();
    let first = m.poll_lookup().unwrap();
    // A stray answer at the deadline is an input too: it expires the lookup in flight, which
    // is abandoned, and starts the due refresh in the same step.
    m.handle_lookup(at(5000), LookupId(999), records(&[ME]));
    let second = m.poll_lookup().unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(abandoned(&mut m), [first.id]);
    assert_eq!(m.in_flight().map(|(id, _)| id), Some(second.id));
}

#[test]
fn rule7_shutdown_abandons_the_lookup_in_flight() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    let req = m.poll_lookup().unwrap();
    m.handle_shutdown(at(10));
    assert_eq!(abandoned(&mut m), [req.id]);
    m.handle_shutdown(at(20));
    assert!(abandoned(&mut m).is_empty(), "idempotent");
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_request_never_taken_is_withdrawn_not_abandoned() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    m.handle_timeout(at(3000)); // the first request was never taken
    assert!(
        m.poll_lookup().is_none(),
        "the expired request is withdrawn"
    );
    assert!(abandoned(&mut m).is_empty());
    m.handle_timeout(at(5000));
    let taken = m.poll_lookup().unwrap();
    m.handle_shutdown(at(5001));
    assert_eq!(
        abandoned(&mut m),
        [taken.id],
        "a taken request is abandoned"
    );
    // Shut down before the driver took the first request: withdrawn, nothing to cancel.
    let mut m = Membership::new(&config(), at(0)).unwrap();
    m.handle_shutdown(at(1));
    assert!(m.poll_lookup().is_none());
    assert!(abandoned(&mut m).is_empty());
}

#[test]
fn rule4_addresses_no_pod_can_have_are_dropped() {
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(
        &mut m,
        at(1),
        records(&[
            ME,
            "10.0.0.2",
            "0.0.0.0",
            "0.0.0.7",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::ffff:0.0.0.0",
            "fd00::2",
        ]),
    );
    assert_eq!(peer_ips(&m), [ME, "10.0.0.2", "fd00::2"]);
    let _ = events(&mut m);

    // An answer of such addresses only is a NoRecords failure: the last good set is kept.
    refresh(&mut m, records(&["0.0.0.0", "::", "239.1.2.3"]));
    assert_eq!(
        failures(&events(&mut m)),
        [(LookupFailure::NoRecords, 1, true)]
    );
    assert_eq!(peer_ips(&m), [ME, "10.0.0.2", "fd00::2"]);

    // Before any answer: a bootstrap failure, [self].
    let mut m = Membership::new(&config(), at(0)).unwrap();
    answer(&mut m, at(1), records(&["0.0.0.0"]));
    assert_eq!(
        failures(&events(&mut m)),
        [(LookupFailure::NoRecords, 1, false)]
    );
    assert_eq!(peer_ips(&m), [ME]);
}
