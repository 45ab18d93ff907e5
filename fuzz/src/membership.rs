//! `membership`: the DNS membership state machine under an arbitrary configuration and an
//! arbitrary sequence of inputs, drained after every input with a bound.

use std::net::IpAddr;
use std::time::Duration;

use arbitrary::Arbitrary;
use orca_cluster_core::peer::is_peer_ip;
use orca_cluster_core::{
    ConfigError, Instant, IpFamily, LookupAnswer, LookupFailure, LookupId, LookupRequest,
    Membership, MembershipConfig, MembershipEvent, PeerAddr, Scoring, Snapshot,
};

#[derive(Arbitrary, Debug)]
enum Service {
    Valid,
    Empty,
    Blank,
    Any(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dur {
    Millis(u16),
    Nanos(u32),
    Any(Duration),
}

impl Dur {
    fn get(self) -> Duration {
        match self {
            Dur::Millis(ms) => Duration::from_millis(u64::from(ms)),
            Dur::Nanos(ns) => Duration::from_nanos(u64::from(ns)),
            Dur::Any(d) => d,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Start {
    Zero,
    At(Instant),
    NearMax(u32),
}

#[derive(Arbitrary, Debug)]
enum Answer {
    /// Arbitrary records.
    Records(Vec<PeerAddr>),
    /// Self (each self IP, at the self port) plus others, shuffled by the given rotation.
    WithSelf(Vec<PeerAddr>, u8),
    /// Records plus addresses no pod can have (picked from [`NON_UNICAST`] by index), on the
    /// same ports.
    WithNonUnicast(Vec<PeerAddr>, Vec<u8>),
    Empty,
    Failed(LookupFailure),
}

/// Addresses a pod can never have: unspecified, "this network", broadcast, multicast (also
/// IPv4-mapped).
const NON_UNICAST: &[&str] = &[
    "0.0.0.0",
    "0.255.0.1",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.255",
    "::",
    "ff02::1",
    "ffff::1",
    "::ffff:0.0.0.0",
    "::ffff:230.1.2.3",
];

#[derive(Arbitrary, Debug)]
enum Op {
    AdvanceMillis(u16),
    AdvanceNanos(u32),
    Advance(Duration),
    /// A spurious timeout at the current time.
    Timeout,
    /// Sleep until `poll_timeout`, then feed it (the driver loop).
    TimeoutAtWake,
    /// A timeout at an arbitrary instant (possibly in the past: the machine clamps).
    TimeoutAt(Instant),
    /// Answer the lookup in flight now.
    Answer(Answer),
    /// Advance, then answer the lookup in flight (possibly past its deadline).
    AnswerAfter(u16, Answer),
    /// Answer with an arbitrary id, `ms` later (an answer is an input that moves time too).
    AnswerWrongId(u16, LookupId, Answer),
    /// Answer with the id of an earlier lookup, `ms` later.
    AnswerOld(u16, u8, Answer),
    /// Shut down, `ms` later.
    Shutdown(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    service: Service,
    self_ips: Vec<IpAddr>,
    self_port: u16,
    refresh: Dur,
    timeout: Dur,
    max_stale: u8,
    scoring: Scoring,
    ip_family: IpFamily,
    start: Start,
    ops: Vec<Op>,
}

/// The driver side of the contract, with the checks.
struct Driver {
    m: Membership,
    config: MembershipConfig,
    /// Lookups taken so far (id, deadline), oldest first.
    taken: Vec<LookupRequest>,
    published: Option<Snapshot>,
    last_generation: u64,
    /// The failure the next drain must report (set when answering the lookup in flight).
    expect_failure: Option<LookupFailure>,
    /// The lookup this driver holds: taken, neither answered nor abandoned yet.
    held: Option<LookupId>,
}

pub fn membership(data: &[u8]) {
    let Some(input) = crate::structured::<Input>(data) else {
        return;
    };
    let service = match input.service {
        Service::Valid => "orca-peers.default.svc.cluster.local".to_string(),
        Service::Empty => String::new(),
        Service::Blank => " \t".to_string(),
        Service::Any(s) => s,
    };
    let mut config = MembershipConfig::new(service, input.self_ips.iter().copied());
    config.self_port = input.self_port;
    config.membership_refresh = input.refresh.get();
    config.lookup_timeout = input.timeout.get();
    config.max_stale_refreshes = u32::from(input.max_stale % 8);
    config.scoring = input.scoring;
    config.ip_family = input.ip_family;
    let start = match input.start {
        Start::Zero => Instant::ZERO,
        Start::At(t) => t,
        Start::NearMax(back) => Instant::from_nanos(u64::MAX - u64::from(back)),
    };

    let m = match Membership::new(&config, start) {
        Ok(m) => m,
        Err(e) => {
            let expected = if config.service.trim().is_empty() {
                ConfigError::EmptyService
            } else if config.self_ips.is_empty() {
                ConfigError::NoSelfIp
            } else if config.membership_refresh.is_zero() {
                ConfigError::ZeroRefresh
            } else {
                ConfigError::ZeroLookupTimeout
            };
            assert_eq!(e, expected, "config {config:?}");
            return;
        }
    };
    assert!(config.validate().is_ok());
    assert!(!m.has_initial_snapshot());
    assert_eq!(m.snapshot().len(), 1);
    assert_eq!(m.snapshot().generation(), 0);
    assert_eq!(m.now(), start);
    assert_eq!(m.ip_family(), config.ip_family);
    // Self IPs of the family come first (the self entry uses one when there is one).
    let ips = m.self_identity().ips();
    let first_other = ips.iter().position(|ip| !config.ip_family.matches(*ip));
    if let Some(k) = first_other {
        assert!(
            ips[k..].iter().all(|ip| !config.ip_family.matches(*ip)),
            "self IPs {ips:?} not ordered by {:?}",
            config.ip_family
        );
    }

    let mut d = Driver {
        m,
        config,
        taken: Vec::new(),
        published: None,
        last_generation: 0,
        expect_failure: None,
        held: None,
    };
    d.drain();
    for op in input.ops.into_iter().take(256) {
        d.step(op);
        d.drain();
    }
}

impl Driver {
    fn answer(&self, a: Answer) -> LookupAnswer {
        match a {
            Answer::Records(r) => LookupAnswer::Records(r),
            Answer::WithSelf(mut r, rot) => {
                for ip in &self.config.self_ips {
                    r.push(PeerAddr {
                        ip: *ip,
                        port: self.config.self_port,
                    });
                }
                if !r.is_empty() {
                    let k = usize::from(rot) % r.len();
                    r.rotate_left(k);
                }
                LookupAnswer::Records(r)
            }
            Answer::WithNonUnicast(mut r, picks) => {
                let port = r.first().map_or(self.config.self_port, |a| a.port);
                for pick in picks.into_iter().take(8) {
                    let text = NON_UNICAST[usize::from(pick) % NON_UNICAST.len()];
                    let ip: IpAddr = text.parse().expect("a listed address");
                    assert!(!is_peer_ip(ip), "{text} listed as non-unicast");
                    r.insert(usize::from(pick) % (r.len() + 1), PeerAddr { ip, port });
                }
                LookupAnswer::Records(r)
            }
            Answer::Empty => LookupAnswer::Records(Vec::new()),
            Answer::Failed(f) => LookupAnswer::Failed(f),
        }
    }

    fn step(&mut self, op: Op) {
        let now = self.m.now();
        match op {
            Op::AdvanceMillis(ms) => {
                let t = now + Duration::from_millis(u64::from(ms));
                self.m.handle_timeout(t);
            }
            Op::AdvanceNanos(ns) => self
                .m
                .handle_timeout(now + Duration::from_nanos(u64::from(ns))),
            Op::Advance(dur) => self.m.handle_timeout(now + dur),
            Op::Timeout => self.m.handle_timeout(now),
            Op::TimeoutAtWake => {
                if let Some(t) = self.m.poll_timeout() {
                    self.m.handle_timeout(t);
                }
            }
            Op::TimeoutAt(t) => {
                self.m.handle_timeout(t);
                assert_eq!(self.m.now(), now.max(t), "time went backwards");
            }
            Op::Answer(a) => self.answer_in_flight(now, a),
            Op::AnswerAfter(ms, a) => {
                let t = now + Duration::from_millis(u64::from(ms));
                self.answer_in_flight(t, a);
            }
            Op::AnswerWrongId(ms, id, a) => {
                let a = self.answer(a);
                self.feed(now + Duration::from_millis(u64::from(ms)), id, a);
            }
            Op::AnswerOld(ms, back, a) => {
                if self.taken.is_empty() {
                    return;
                }
                let i = self.taken.len() - 1 - usize::from(back) % self.taken.len();
                let id = self.taken[i].id;
                let a = self.answer(a);
                self.feed(now + Duration::from_millis(u64::from(ms)), id, a);
            }
            Op::Shutdown(ms) => {
                let before = self.m.snapshot().clone();
                self.m
                    .handle_shutdown(now + Duration::from_millis(u64::from(ms)));
                assert!(self.m.is_closed());
                assert_eq!(*self.m.snapshot(), before);
                assert_eq!(self.m.snapshot().generation(), before.generation());
            }
        }
    }

    /// Answers the lookup in flight at `at` and checks the rules that decide the outcome.
    fn answer_in_flight(&mut self, at: Instant, a: Answer) {
        let Some((id, deadline)) = self.m.in_flight() else {
            return;
        };
        let answer = self.answer(a);
        let streak = self.m.failure_streak();
        let before = self.m.snapshot().clone();
        let had_initial = self.m.has_initial_snapshot();
        self.feed(at, id, answer.clone());
        let late = self.m.now() > deadline;
        let snap = self.m.snapshot();
        let family = self.config.ip_family;
        // Rule 4: records of another family are dropped; records but none of the family is
        // a failure.
        // Records no pod can have (unspecified, broadcast, multicast) are dropped the same way.
        let keep = |a: &PeerAddr| family.matches(a.ip) && is_peer_ip(a.ip);
        let usable = |addrs: &[PeerAddr]| addrs.is_empty() || addrs.iter().any(keep);
        match answer {
            LookupAnswer::Records(addrs) if !late && usable(&addrs) => {
                // Rules 4 and 5: streak reset; stamped, self added, sorted, de-duplicated.
                assert_eq!(self.m.failure_streak(), 0);
                let kept = addrs.into_iter().filter(keep);
                let want = Snapshot::new(self.m.self_identity(), kept, self.config.scoring, 0);
                assert_eq!(snap.peers(), want.peers(), "snapshot after an answer");
                assert!(
                    snap.peers()
                        .iter()
                        .all(|p| p.is_self || family.matches(p.ip))
                );
            }
            answer => {
                self.expect_failure = Some(match answer {
                    _ if late => LookupFailure::Timeout,
                    LookupAnswer::Failed(f) => f,
                    LookupAnswer::Records(_) => LookupFailure::NoRecords,
                });
                // Rule 6 (a late answer is a timeout): the streak grows; the snapshot is kept
                // or falls back to [self].
                assert_eq!(self.m.failure_streak(), streak.saturating_add(1));
                let only_self = Snapshot::only_self(self.m.self_identity(), self.config.scoring, 0);
                assert!(
                    *snap == before || *snap == only_self,
                    "a failure produced {:?}",
                    snap.peers()
                );
                if !had_initial {
                    assert_eq!(*snap, only_self, "bootstrap failure must publish [self]");
                }
            }
        }
        assert!(self.m.has_initial_snapshot());
    }

    /// Feeds an answer; answering the lookup held ends it for the driver.
    fn feed(&mut self, at: Instant, id: LookupId, answer: LookupAnswer) {
        if self.held == Some(id) {
            self.held = None;
        }
        self.m.handle_lookup(at, id, answer);
    }

    /// Drains every output (bounded) and checks the invariants that hold after any input.
    fn drain(&mut self) {
        let now = self.m.now();
        let closed = self.m.is_closed();
        // Abandoned lookups: only the one held, once, and no longer in flight.
        while let Some(id) = self.m.poll_abandoned() {
            assert_eq!(
                Some(id),
                self.held,
                "abandoned a lookup the driver does not hold"
            );
            assert_ne!(self.m.in_flight().map(|(f, _)| f), Some(id));
            let deadline = self
                .taken
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.deadline)
                .expect("abandoned lookup was taken");
            assert!(closed || now >= deadline, "abandoned before its deadline");
            self.held = None;
        }
        let mut lookups = 0;
        while let Some(req) = self.m.poll_lookup() {
            lookups += 1;
            assert!(lookups <= 1, "more than one lookup from one input");
            assert!(!closed, "lookup requested after shutdown");
            assert_eq!(req.deadline, now + self.config.lookup_timeout);
            assert_eq!(req.name, self.config.service);
            if let Some(last) = self.taken.last() {
                assert_ne!(req.id, last.id, "lookup id reused");
            }
            assert_eq!(self.m.in_flight(), Some((req.id, req.deadline)));
            assert_eq!(
                self.held, None,
                "a new lookup while the previous one is held"
            );
            self.held = Some(req.id);
            self.taken.push(req);
        }
        let mut events = 0;
        while let Some(ev) = self.m.poll_event() {
            events += 1;
            assert!(events <= 2, "more than two events from one input");
            assert!(!closed, "event after shutdown");
            match ev {
                MembershipEvent::SnapshotChanged {
                    snapshot,
                    initial,
                    added,
                    removed,
                    reason,
                } => {
                    assert_eq!(initial, self.published.is_none());
                    assert!(
                        snapshot.generation() > self.last_generation,
                        "generation {} after {} ({reason})",
                        snapshot.generation(),
                        self.last_generation
                    );
                    let prev = self.published.clone().unwrap_or_else(|| {
                        Snapshot::only_self(self.m.self_identity(), self.config.scoring, 0)
                    });
                    assert_eq!((added, removed), snapshot.diff(&prev));
                    assert!(initial || snapshot != prev, "unchanged snapshot published");
                    self.last_generation = snapshot.generation();
                    self.published = Some(snapshot);
                }
                MembershipEvent::LookupFailed {
                    streak, failure, ..
                } => {
                    // One input causes at most one failure, so the event's streak is current.
                    assert!(streak >= 1);
                    assert_eq!(streak, self.m.failure_streak());
                    if let Some(want) = self.expect_failure.take() {
                        assert_eq!(failure, want, "failure kind");
                    }
                }
            }
        }
        assert_eq!(
            self.expect_failure, None,
            "an expected failure was not reported"
        );

        // The snapshot: never empty, self present, stamped by identity, sorted, deduplicated.
        let snap = self.m.snapshot();
        assert!(!snap.is_empty());
        assert!(
            snap.self_peer().is_some(),
            "self missing from {:?}",
            snap.peers()
        );
        // No address a pod cannot have is ever a peer (self's own IPs come from the
        // configuration, not from answers).
        assert!(
            snap.peers().iter().all(|p| p.is_self || is_peer_ip(p.ip)),
            "non-unicast peer in {:?}",
            snap.peers()
        );
        let me = self.m.self_identity();
        for p in snap.peers() {
            assert_eq!(
                p.is_self,
                me.matches(PeerAddr {
                    ip: p.ip,
                    port: p.port
                }),
                "is_self wrong for {p}"
            );
        }
        assert!(
            snap.peers().windows(2).all(|w| w[0] < w[1]),
            "not sorted/unique"
        );
        assert!(snap.generation() >= self.last_generation);
        if let Some(p) = &self.published {
            assert_eq!(p.generation(), snap.generation());
            assert_eq!(p, snap);
        }
        assert_eq!(self.m.has_initial_snapshot(), self.published.is_some());

        // The lookup held is the one in flight: dropping lookups only when told never keeps a
        // dead one.
        if let Some(held) = self.held {
            assert_eq!(
                self.m.in_flight().map(|(id, _)| id),
                Some(held),
                "held lookup"
            );
        }

        // No busy loop: after a full drain the next wake is strictly later than now.
        match self.m.poll_timeout() {
            None => assert!(closed, "no timeout while running"),
            Some(t) => {
                assert!(!closed, "timeout after shutdown");
                assert!(
                    t > now || now == Instant::MAX,
                    "poll_timeout {t:?} not after now {now:?}"
                );
            }
        }
    }
}
