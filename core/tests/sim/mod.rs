//! A deterministic simulation of a Deployment's replicas, each owning a [`Membership`], driven
//! by the drain contract against a virtual clock and a model of cluster DNS.
//!
//! The world keeps one queue of timed events (lookup answers with latency, DNS record changes,
//! pods joining and leaving, the end of the chaos phase) and, per replica, the wake-up time the
//! machine asked for. The loop jumps the clock to the earliest of those, feeds every due input
//! (in a seed-chosen order when several fall on the same instant), and after every input drains
//! the machine completely and checks the invariants. A failing check panics with the seed.
//!
//! DNS model during the chaos phase: per-replica failure rates (no answer at all, an explicit
//! timeout at the deadline, SERVFAIL / REFUSED / NXDOMAIN / no records / IO errors), slow answers
//! with random latency (some past the lookup deadline, arriving as stale answers), partial and
//! empty answers, duplicated, shuffled and IPv4-mapped records, and DNS changes that lag pods
//! joining and leaving. On a dual-stack cluster every pod has an IPv4 and an IPv6 address, DNS
//! answers both record types, the replicas pick one family (`ip_family`), and some answers
//! carry only records of the other family (which the machine must count as "no records").
//! After the chaos phase DNS holds exactly the live pods and answers every lookup correctly
//! within its deadline.

#![allow(dead_code)] // each test binary uses a different part of the support code

pub mod rng;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use orca_cluster_core::peer::canonical_ip;
use orca_cluster_core::{
    ChunkKey, Instant, IpFamily, LookupAnswer, LookupFailure, LookupId, Membership,
    MembershipConfig, MembershipEvent, PeerAddr, Scoring, Snapshot,
};

pub use rng::Rng;

/// Address family of the simulated cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// IPv4 pods; DNS sometimes returns records (and replicas sometimes configure their own IP)
    /// as IPv4-mapped IPv6.
    V4Mapped,
    /// Every pod has an IPv4 and an IPv6 address (see [`partner`]) and configures both; DNS
    /// answers A and AAAA records; the peer set is made of the family `Params::ip_family`.
    DualStack,
}

/// The other address of a dual-stack pod: `10.244.a.b` <-> `fd00:10:244::ab` (the forms
/// [`World`] gives IPv4 and IPv6 pods).
pub fn partner(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [_, _, a, b] = v4.octets();
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0x10,
                0x244,
                0,
                0,
                0,
                0,
                u16::from_be_bytes([a, b]),
            ))
        }
        IpAddr::V6(v6) => {
            let [a, b] = v6.segments()[7].to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(10, 244, a, b))
        }
    }
}

/// Parameters of one simulated run, drawn from the seed.
#[derive(Clone, Debug)]
pub struct Params {
    pub refresh: Duration,
    pub lookup_timeout: Duration,
    pub max_stale: u32,
    pub scoring: Scoring,
    pub family: Family,
    /// The replicas' `ip_family`: one of the two on a dual-stack cluster, else `Any` or the
    /// cluster's family (a filter that must drop nothing).
    pub ip_family: IpFamily,
    pub initial_pods: usize,
    pub min_pods: usize,
    pub max_pods: usize,
    /// Length of the chaos phase (failures, slow answers, churn).
    pub chaos: Duration,
    /// Mean time between pod joins/leaves during chaos.
    pub churn_every: Duration,
}

impl Params {
    pub fn from_seed(rng: &mut Rng) -> Params {
        let refresh = Duration::from_millis(rng.range(500, 10_000));
        // Usually the lookup deadline is below the refresh interval (the default is 3 s of 5 s);
        // sometimes it is longer, which the machine handles by never overlapping lookups.
        let timeout_ms = if rng.chance(800) {
            rng.range(20, refresh.as_millis() as u64)
        } else {
            rng.range(refresh.as_millis() as u64, 2 * refresh.as_millis() as u64)
        };
        let initial_pods = rng.range(5, 9) as usize;
        let scoring = if rng.chance(250) {
            Scoring::GoCompat
        } else {
            Scoring::Xxh3
        };
        let family = *rng.pick(&[Family::V4, Family::V6, Family::V4Mapped, Family::DualStack]);
        let ip_family = match family {
            Family::DualStack => *rng.pick(&[IpFamily::Ipv4, IpFamily::Ipv6]),
            Family::V4 | Family::V4Mapped => *rng.pick(&[IpFamily::Any, IpFamily::Ipv4]),
            Family::V6 => *rng.pick(&[IpFamily::Any, IpFamily::Ipv6]),
        };
        Params {
            refresh,
            lookup_timeout: Duration::from_millis(timeout_ms),
            max_stale: rng.range(0, 6) as u32,
            scoring,
            family,
            ip_family,
            initial_pods,
            min_pods: 5,
            max_pods: 12,
            chaos: Duration::from_millis(rng.range(10_000, 90_000)),
            churn_every: Duration::from_millis(rng.range(2_000, 20_000)),
        }
    }

    /// The convergence bound after DNS becomes stable: the lookup in flight at that moment ends
    /// by `max(refresh, timeout)` later at the latest, and the next (clean) one answers within
    /// `lookup_timeout`. With the usual `timeout <= refresh` this is `refresh + lookup_timeout`.
    pub fn convergence_bound(&self) -> Duration {
        self.refresh.max(self.lookup_timeout) + self.lookup_timeout
    }
}

/// How one replica's DNS behaves during chaos (per mille of its lookups).
#[derive(Clone, Copy, Debug)]
struct Flakiness {
    no_answer: u64,
    explicit_timeout: u64,
    error: u64,
    slow: u64,
    partial: u64,
    empty: u64,
    /// Records of the other family only (dual-stack clusters; else a normal answer).
    other_family: u64,
}

impl Flakiness {
    fn draw(rng: &mut Rng) -> Flakiness {
        // A few replicas sit behind a very bad resolver, most behind a mildly bad one.
        let scale = if rng.chance(200) { 4 } else { 1 };
        Flakiness {
            no_answer: rng.range(0, 60) * scale,
            explicit_timeout: rng.range(0, 40) * scale,
            error: rng.range(0, 80) * scale,
            slow: rng.range(0, 80) * scale,
            partial: rng.range(0, 60),
            empty: rng.range(0, 10),
            other_family: rng.range(0, 60),
        }
    }
}

pub struct Replica {
    pub uid: u64,
    pub ip: IpAddr,
    pub machine: Membership,
    pub alive: bool,
    /// The snapshot last published through `SnapshotChanged` (None before the first).
    pub published: Option<Snapshot>,
    /// Snapshot changes seen so far.
    pub changes: u64,
    /// When the machine asked to be woken (None once shut down).
    pub wake: Option<Instant>,
    last_generation: u64,
    last_lookup: Option<LookupId>,
    /// The lookup this replica's driver holds: taken, neither answered nor abandoned yet.
    outstanding: Option<LookupId>,
    flaky: Flakiness,
    /// Test hook: a broken driver that ignores `poll_timeout` and re-wakes at once.
    spin: bool,
}

#[derive(Debug)]
enum Ev {
    Answer {
        uid: u64,
        id: LookupId,
        answer: LookupAnswer,
    },
    DnsAdd(IpAddr),
    DnsRemove(IpAddr),
    Churn,
    Stabilize,
}

/// What one due item is, once the instant's items are collected and shuffled.
enum Due {
    Event(Ev),
    Wake(usize),
}

pub struct World {
    pub seed: u64,
    pub params: Params,
    pub rng: Rng,
    pub now: Instant,
    pub replicas: Vec<Replica>,
    pub dns: BTreeSet<IpAddr>,
    pub stable: bool,
    pub stable_at: Instant,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    next_uid: u64,
    next_host: u32,
    /// Inputs fed at `budget_at`; more than `budget_limit` at one instant is a livelock.
    budget_at: Instant,
    budget_used: usize,
    budget_limit: usize,
    /// Inputs fed in all (a bound on the run).
    pub inputs: u64,
    pub lookups: u64,
    pub failures: u64,
    pub stale_answers: u64,
    /// Lookups the machines told their driver to abandon.
    pub abandoned: u64,
    /// In-time answers with records of the other family only (each must be a failure).
    pub other_family_answers: u64,
    /// The failures seen by the latest drain.
    drained_failures: Vec<LookupFailure>,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let params = Params::from_seed(&mut rng);
        let mut w = World {
            seed,
            params,
            rng,
            now: Instant::from_millis(1_000),
            replicas: Vec::new(),
            dns: BTreeSet::new(),
            stable: false,
            stable_at: Instant::MAX,
            queue: BTreeMap::new(),
            seq: 0,
            next_uid: 0,
            next_host: 1,
            budget_at: Instant::ZERO,
            budget_used: 0,
            budget_limit: 0,
            inputs: 0,
            lookups: 0,
            failures: 0,
            stale_answers: 0,
            abandoned: 0,
            other_family_answers: 0,
            drained_failures: Vec::new(),
        };
        w.budget_limit = 16 * w.params.max_pods + 64;
        for _ in 0..w.params.initial_pods {
            let ip = w.start_pod();
            // Initial pods are already in DNS, or appear within a second.
            if w.rng.chance(700) {
                w.dns.insert(ip);
            } else {
                let lag = w.ms(0, 1_000);
                w.schedule(lag, Ev::DnsAdd(ip));
            }
        }
        let chaos = w.params.chaos;
        w.stable_at = w.now + chaos;
        w.schedule(chaos, Ev::Stabilize);
        let first = w.churn_delay();
        w.schedule(first, Ev::Churn);
        w
    }

    /// Panics with the seed and the replay hint.
    #[track_caller]
    pub fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {}: at {:?}: {what}\n  params: {:?}\n  replay: ORCA_SIM_SEED={} cargo test -p orca-cluster-core --test simulation",
            self.seed, self.now, self.params, self.seed
        )
    }

    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.range(lo, hi))
    }

    fn churn_delay(&mut self) -> Duration {
        let mean = self.params.churn_every.as_millis() as u64;
        Duration::from_millis(self.rng.range(mean / 4, mean * 2))
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), ev);
    }

    fn host_ip(&mut self) -> IpAddr {
        // Sometimes reuse the address of a pod that left (Kubernetes recycles pod IPs).
        let dead: Vec<IpAddr> = self
            .replicas
            .iter()
            .filter(|r| !r.alive)
            .map(|r| r.ip)
            .filter(|ip| !self.replicas.iter().any(|r| r.alive && r.ip == *ip))
            .collect();
        if !dead.is_empty() && self.rng.chance(200) {
            return *self.rng.pick(&dead);
        }
        let n = self.next_host;
        self.next_host += 1;
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 244, (n >> 8) as u8, n as u8));
        match (self.params.family, self.params.ip_family) {
            (Family::V6, _) | (Family::DualStack, IpFamily::Ipv6) => partner(v4),
            _ => v4,
        }
    }

    /// Starts a pod (its DNS records are the caller's business) and returns its IP of the
    /// peer set's family.
    fn start_pod(&mut self) -> IpAddr {
        let ip = self.host_ip();
        let mut configured = match (self.params.family, ip) {
            (Family::V4Mapped, IpAddr::V4(v4)) if self.rng.chance(500) => {
                vec![IpAddr::V6(v4.to_ipv6_mapped())]
            }
            // Both addresses, in either order: the machine must stamp self by the family's.
            (Family::DualStack, _) => vec![ip, partner(ip)],
            _ => vec![ip],
        };
        self.rng.shuffle(&mut configured);
        let mut config = MembershipConfig::new("orca-peers.default.svc.cluster.local", configured);
        config.ip_family = self.params.ip_family;
        config.membership_refresh = self.params.refresh;
        config.lookup_timeout = self.params.lookup_timeout;
        config.max_stale_refreshes = self.params.max_stale;
        config.scoring = self.params.scoring;
        let machine = Membership::new(&config, self.now)
            .unwrap_or_else(|e| self.fail(format!("valid config rejected: {e}")));
        self.check(!machine.has_initial_snapshot(), || {
            "initial snapshot before any answer".into()
        });
        let flaky = Flakiness::draw(&mut self.rng);
        self.next_uid += 1;
        self.replicas.push(Replica {
            uid: self.next_uid,
            ip,
            machine,
            alive: true,
            published: None,
            changes: 0,
            wake: None,
            last_generation: 0,
            last_lookup: None,
            outstanding: None,
            flaky,
            spin: false,
        });
        let i = self.replicas.len() - 1;
        self.check_bootstrap(i);
        // Construction queued the first lookup: drain like after any input.
        self.drain(i);
        ip
    }

    fn check_bootstrap(&self, i: usize) {
        let r = &self.replicas[i];
        let snap = r.machine.snapshot();
        self.check(snap.len() == 1 && snap.generation() == 0, || {
            format!(
                "bootstrap snapshot of {} is not [self] gen 0: {:?}",
                r.ip,
                snap.peers()
            )
        });
    }

    pub fn live(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().filter(|r| r.alive)
    }

    pub fn live_ips(&self) -> BTreeSet<IpAddr> {
        self.live().map(|r| canonical_ip(r.ip)).collect()
    }

    /// Makes replica `i` a broken driver that re-wakes at once (for the livelock guard's test).
    pub fn make_spinner(&mut self, i: usize) {
        self.replicas[i].spin = true;
    }

    /// Counts one input at `now`; too many at one instant is a livelock.
    fn spend(&mut self) {
        if self.budget_at != self.now {
            self.budget_at = self.now;
            self.budget_used = 0;
        }
        self.budget_used += 1;
        self.inputs += 1;
        if self.budget_used > self.budget_limit {
            self.fail(format!(
                "livelock: more than {} inputs at one instant",
                self.budget_limit
            ));
        }
    }

    // ---- the DNS model ----

    /// The outcome of a lookup requested now by replica `i`: what arrives, and when (None: the
    /// resolver never answers; the machine's own deadline handles it).
    fn dns_outcome(&mut self, i: usize, deadline: Instant) -> Option<(Instant, LookupAnswer)> {
        let timeout = self.params.lookup_timeout.as_millis() as u64;
        let f = self.replicas[i].flaky;
        let records = |w: &mut World, ips: Vec<IpAddr>| -> LookupAnswer {
            let mut out = Vec::new();
            for ip in ips {
                let shown = match (w.params.family, ip) {
                    (Family::V4Mapped, IpAddr::V4(v4)) if w.rng.chance(300) => {
                        IpAddr::V6(v4.to_ipv6_mapped())
                    }
                    _ => ip,
                };
                out.push(PeerAddr::from_ip(shown));
                if w.rng.chance(50) {
                    out.push(PeerAddr::from_ip(ip)); // a duplicate record
                }
                if w.params.family == Family::DualStack {
                    out.push(PeerAddr::from_ip(partner(ip))); // the other record type
                }
            }
            w.rng.shuffle(&mut out);
            LookupAnswer::Records(out)
        };
        let all: Vec<IpAddr> = self.dns.iter().copied().collect();
        // DNS never answers "no records" with an empty success; NoRecords is a failure.
        let ok_or_norecords = |w: &mut World, ips: Vec<IpAddr>| {
            if ips.is_empty() {
                LookupAnswer::Failed(LookupFailure::NoRecords)
            } else {
                records(w, ips)
            }
        };
        if self.stable {
            // Always correct, always before the deadline (strictly).
            let lat = Duration::from_millis(self.rng.below(timeout));
            let answer = ok_or_norecords(self, all);
            return Some((self.now + lat, answer));
        }
        let roll = self.rng.below(1000);
        let mut t = roll;
        let within = |w: &mut World| w.now + Duration::from_millis(w.rng.below(timeout + 1));
        if t < f.no_answer {
            return None;
        }
        t -= f.no_answer;
        if t < f.explicit_timeout {
            return Some((deadline, LookupAnswer::Failed(LookupFailure::Timeout)));
        }
        t -= f.explicit_timeout;
        if t < f.error {
            let kind = *self.rng.pick(&[
                LookupFailure::ServFail,
                LookupFailure::Refused,
                LookupFailure::NxDomain,
                LookupFailure::NoRecords,
                LookupFailure::Io,
                LookupFailure::Other,
            ]);
            return Some((within(self), LookupAnswer::Failed(kind)));
        }
        t -= f.error;
        if t < f.slow {
            // Past the deadline: the machine has already given up; a stale answer.
            let lat = Duration::from_millis(self.rng.range(timeout + 1, 3 * timeout + 1));
            let answer = ok_or_norecords(self, all);
            return Some((self.now + lat, answer));
        }
        t -= f.slow;
        if t < f.partial {
            let subset: Vec<IpAddr> = all.into_iter().filter(|_| self.rng.chance(600)).collect();
            let answer = ok_or_norecords(self, subset);
            return Some((within(self), answer));
        }
        t -= f.partial;
        if t < f.empty {
            // Only a static/custom source does this; the machine must still cope.
            return Some((within(self), LookupAnswer::Records(Vec::new())));
        }
        t -= f.empty;
        if t < f.other_family && self.params.family == Family::DualStack && !all.is_empty() {
            // Only the records of the family the replicas do not use (e.g. the A query failed
            // and the AAAA one answered): no usable record.
            let mut out: Vec<PeerAddr> = all
                .iter()
                .map(|ip| PeerAddr::from_ip(partner(*ip)))
                .collect();
            self.rng.shuffle(&mut out);
            return Some((within(self), LookupAnswer::Records(out)));
        }
        let answer = ok_or_norecords(self, all);
        Some((within(self), answer))
    }

    // ---- driving ----

    /// Drains replica `i` after an input and checks every per-drain invariant.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        self.drained_failures.clear();
        // Abandoned first, so that a lookup taken below finds the driver holding none.
        while let Some(id) = self.replicas[i].machine.poll_abandoned() {
            self.abandoned += 1;
            let r = &self.replicas[i];
            self.check(r.outstanding == Some(id), || {
                format!(
                    "abandoned {id:?}, but the driver holds {:?} (abandoned twice, answered, or never handed out)",
                    r.outstanding
                )
            });
            self.check(
                r.machine
                    .in_flight()
                    .is_none_or(|(current, _)| current != id),
                || format!("abandoned {id:?} is still in flight"),
            );
            self.replicas[i].outstanding = None;
        }
        let mut lookups = 0;
        while let Some(req) = self.replicas[i].machine.poll_lookup() {
            lookups += 1;
            self.lookups += 1;
            let r = &self.replicas[i];
            self.check(r.alive, || "a shut-down machine asked for a lookup".into());
            self.check(r.outstanding.is_none(), || {
                format!(
                    "lookup {:?} handed out while {:?} was neither answered nor abandoned",
                    req.id, r.outstanding
                )
            });
            self.check(req.deadline == now + self.params.lookup_timeout, || {
                format!("lookup deadline {:?}, expected now + timeout", req.deadline)
            });
            self.check(r.last_lookup.is_none_or(|last| req.id > last), || {
                format!("lookup id {:?} not after {:?}", req.id, r.last_lookup)
            });
            self.check(req.name == "orca-peers.default.svc.cluster.local", || {
                format!("lookup of {:?}", req.name)
            });
            self.replicas[i].last_lookup = Some(req.id);
            self.replicas[i].outstanding = Some(req.id);
            if let Some((at, answer)) = self.dns_outcome(i, req.deadline) {
                let uid = self.replicas[i].uid;
                let after = at.saturating_duration_since(now);
                self.schedule(
                    after,
                    Ev::Answer {
                        uid,
                        id: req.id,
                        answer,
                    },
                );
            }
        }
        let mut events = 0;
        while let Some(ev) = self.replicas[i].machine.poll_event() {
            events += 1;
            match ev {
                MembershipEvent::SnapshotChanged {
                    snapshot,
                    initial,
                    added,
                    removed,
                    reason,
                } => {
                    let r = &self.replicas[i];
                    self.check(initial == r.published.is_none(), || {
                        format!(
                            "initial flag {initial} with previous {:?}",
                            r.published.as_ref().map(Snapshot::generation)
                        )
                    });
                    self.check(snapshot.generation() > r.last_generation, || {
                        format!(
                            "generation {} after {} ({reason})",
                            snapshot.generation(),
                            r.last_generation
                        )
                    });
                    let prev = r.published.clone().unwrap_or_else(|| {
                        Snapshot::only_self(r.machine.self_identity(), self.params.scoring, 0)
                    });
                    let (want_added, want_removed) = snapshot.diff(&prev);
                    self.check(added == want_added && removed == want_removed, || {
                        format!(
                            "event diff {added:?}/{removed:?} != {want_added:?}/{want_removed:?}"
                        )
                    });
                    self.check(initial || prev != snapshot, || {
                        "published an unchanged snapshot".into()
                    });
                    let r = &mut self.replicas[i];
                    r.last_generation = snapshot.generation();
                    r.published = Some(snapshot);
                    r.changes += 1;
                }
                MembershipEvent::LookupFailed {
                    streak, failure, ..
                } => {
                    self.failures += 1;
                    self.drained_failures.push(failure);
                    self.check(streak >= 1, || "failure with streak 0".into());
                }
            }
        }
        // At most one lookup and two events (a failure and the resulting change) per input.
        self.check(lookups <= 1 && events <= 2, || {
            format!("{lookups} lookups and {events} events from one input")
        });
        self.check_snapshot(i);
        let r = &self.replicas[i];
        // The lookup the driver holds is the machine's lookup in flight (so a driver that drops
        // lookups only when told to never keeps a dead one, nor loses a live one).
        if let Some(held) = r.outstanding {
            self.check(
                r.machine.in_flight().map(|(id, _)| id) == Some(held),
                || {
                    format!(
                        "the driver holds {held:?}, the machine has {:?} in flight",
                        r.machine.in_flight()
                    )
                },
            );
        }
        let wake = r.machine.poll_timeout();
        if r.alive {
            match wake {
                Some(t) if t > now => {}
                Some(t) if r.spin => {
                    let _ = t;
                }
                other => self.fail(format!(
                    "replica {} after a full drain: poll_timeout {other:?} is not after now",
                    r.ip
                )),
            }
        } else {
            self.check(wake.is_none(), || {
                "a shut-down machine asks to be woken".into()
            });
        }
        let r = &mut self.replicas[i];
        r.wake = if r.spin { Some(now) } else { wake };
    }

    fn check_snapshot(&self, i: usize) {
        let r = &self.replicas[i];
        let snap = r.machine.snapshot();
        self.check(!snap.is_empty() && !snap.peers().is_empty(), || {
            "empty snapshot".into()
        });
        let selves: Vec<_> = snap.peers().iter().filter(|p| p.is_self).collect();
        self.check(
            selves.len() == 1 && selves[0].ip == canonical_ip(r.ip) && selves[0].port == 0,
            || format!("replica {}: self entries {selves:?}", r.ip),
        );
        self.check(snap.peers().windows(2).all(|w| w[0] < w[1]), || {
            format!("snapshot not sorted/deduplicated: {:?}", snap.peers())
        });
        let family = self.params.ip_family;
        self.check(snap.peers().iter().all(|p| family.matches(p.ip)), || {
            format!("a peer not of {family:?}: {:?}", snap.peers())
        });
        self.check(snap.generation() >= r.last_generation, || {
            format!(
                "generation went back: {} < {}",
                snap.generation(),
                r.last_generation
            )
        });
        if let Some(p) = &r.published {
            self.check(p.generation() == snap.generation() && p == snap, || {
                "the machine's snapshot is not the last published one".into()
            });
        }
        self.check(
            r.machine.has_initial_snapshot() == r.published.is_some(),
            || "has_initial_snapshot disagrees with the events".into(),
        );
    }

    fn churn(&mut self) {
        let live = self.live().count();
        let join =
            live < self.params.max_pods && (live <= self.params.min_pods || self.rng.chance(500));
        if join {
            let ip = self.start_pod();
            let lag = self.ms(0, 3_000);
            self.schedule(lag, Ev::DnsAdd(ip));
        } else {
            let live: Vec<usize> = (0..self.replicas.len())
                .filter(|&i| self.replicas[i].alive)
                .collect();
            let i = *self.rng.pick(&live);
            let now = self.now;
            let before = self.replicas[i].machine.snapshot().clone();
            let gen_before = before.generation();
            self.replicas[i].machine.handle_shutdown(now);
            self.replicas[i].alive = false;
            self.check(self.replicas[i].machine.is_closed(), || {
                "shutdown did not close".into()
            });
            self.drain(i);
            let snap = self.replicas[i].machine.snapshot();
            self.check(*snap == before && snap.generation() == gen_before, || {
                "shutdown changed the snapshot".into()
            });
            let ip = self.replicas[i].ip;
            let lag = self.ms(0, 5_000);
            self.schedule(lag, Ev::DnsRemove(ip));
        }
    }

    fn deliver(&mut self, ev: Ev) {
        match ev {
            Ev::Answer { uid, id, answer } => {
                let Some(i) = self.replicas.iter().position(|r| r.uid == uid) else {
                    self.fail("answer for an unknown replica");
                };
                self.spend();
                let in_flight = self.replicas[i].machine.in_flight();
                if in_flight.map(|(id, _)| id) != Some(id) {
                    self.stale_answers += 1;
                }
                if self.replicas[i].outstanding == Some(id) {
                    self.replicas[i].outstanding = None; // the driver answers the lookup it holds
                }
                // An in-time answer whose records are all of the other family: "no records".
                let family = self.params.ip_family;
                let other_family = in_flight
                    .is_some_and(|(current, deadline)| current == id && self.now <= deadline)
                    && matches!(&answer, LookupAnswer::Records(addrs)
                        if !addrs.is_empty() && addrs.iter().all(|a| !family.matches(a.ip)));
                let before = self.replicas[i].machine.snapshot().clone();
                let changes_before = self.replicas[i].changes;
                let now = self.now;
                self.replicas[i].machine.handle_lookup(now, id, answer);
                self.drain(i);
                if other_family {
                    self.other_family_answers += 1;
                    self.check(self.drained_failures == [LookupFailure::NoRecords], || {
                        format!(
                            "records of the other family only gave {:?}, not a no-records failure",
                            self.drained_failures
                        )
                    });
                }
                if !self.replicas[i].alive {
                    let r = &self.replicas[i];
                    self.check(
                        *r.machine.snapshot() == before && r.changes == changes_before,
                        || "a shut-down machine reacted to an answer".into(),
                    );
                }
            }
            Ev::DnsAdd(ip) => {
                // A late add for a pod that already left is dropped (its remove may be queued).
                if self.live_ips().contains(&canonical_ip(ip)) {
                    self.dns.insert(ip);
                }
            }
            Ev::DnsRemove(ip) => {
                if !self.live_ips().contains(&canonical_ip(ip)) {
                    self.dns.remove(&ip);
                }
            }
            Ev::Churn => {
                self.churn();
                let next = self.churn_delay();
                if self.now + next < self.stable_at {
                    self.schedule(next, Ev::Churn);
                }
            }
            Ev::Stabilize => {
                self.stable = true;
                // DNS settles on exactly the live pods; lagging record changes are moot.
                self.dns = self.live_ips();
                self.queue
                    .retain(|_, ev| !matches!(ev, Ev::DnsAdd(_) | Ev::DnsRemove(_) | Ev::Churn));
            }
        }
    }

    fn wake(&mut self, i: usize) {
        let r = &self.replicas[i];
        if !r.alive || r.wake.is_none_or(|t| t > self.now) {
            return; // woken earlier at this instant by another input, or no longer due
        }
        self.spend();
        let now = self.now;
        self.replicas[i].machine.handle_timeout(now);
        self.drain(i);
    }

    /// Runs every input due at or before `until`, then leaves the clock at `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_ev = self.queue.keys().next().map(|&(t, _)| t);
            let next_wake = self.live().filter_map(|r| r.wake).min();
            let Some(next) = [next_ev, next_wake].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            if next < self.now {
                self.fail(format!("time went backwards: {next:?} < {:?}", self.now));
            }
            self.now = next;
            // Everything due at this instant, in a seed-chosen order.
            let mut due: Vec<Due> = Vec::new();
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 != next {
                    break;
                }
                due.push(Due::Event(entry.remove()));
            }
            for (i, r) in self.replicas.iter().enumerate() {
                if r.alive && r.wake.is_some_and(|t| t <= next) {
                    due.push(Due::Wake(i));
                }
            }
            self.rng.shuffle(&mut due);
            for d in due {
                match d {
                    Due::Event(ev) => self.deliver(ev),
                    Due::Wake(i) => self.wake(i),
                }
            }
        }
        if until > self.now {
            self.now = until;
        }
    }

    // ---- convergence ----

    /// Checks that every live replica holds exactly the live pods and that all agree on the
    /// coordinator of `keys` (exactly one replica says it is the coordinator).
    pub fn check_converged(&self, keys: &[ChunkKey]) {
        let want: Vec<(IpAddr, u16)> = self.live_ips().into_iter().map(|ip| (ip, 0)).collect();
        for r in self.live() {
            let snap = r.machine.snapshot();
            let got: Vec<(IpAddr, u16)> = snap.peers().iter().map(|p| (p.ip, p.port)).collect();
            self.check(got == want, || {
                format!(
                    "replica {} did not converge: has {got:?}, DNS holds {want:?} (streak {})",
                    r.ip,
                    r.machine.failure_streak()
                )
            });
            self.check(
                r.machine.has_initial_snapshot() && r.machine.failure_streak() == 0,
                || format!("replica {}: no initial snapshot or failing", r.ip),
            );
        }
        for key in keys {
            let mut coordinators = BTreeSet::new();
            let mut claimers = Vec::new();
            for r in self.live() {
                let c = r.machine.snapshot().coordinator(key);
                coordinators.insert((c.ip, c.port));
                if r.machine.snapshot().is_coordinator(key) {
                    claimers.push(canonical_ip(r.ip));
                }
            }
            self.check(coordinators.len() == 1, || {
                format!("replicas disagree on the coordinator of {key:?}: {coordinators:?}")
            });
            let (ip, _) = *coordinators.first().expect("at least one live replica");
            self.check(claimers == [ip], || {
                format!("coordinator {ip}, but replicas claiming it: {claimers:?}")
            });
        }
    }
}

/// `n` realistic chunk keys.
pub fn sample_keys(rng: &mut Rng, n: usize) -> Vec<ChunkKey> {
    (0..n)
        .map(|_| {
            let id = rng.next_u64();
            ChunkKey {
                origin_id: (*rng.pick(&["azure-eastus", "s3-us-west-2", "gcs-eu"])).into(),
                bucket: format!("bucket-{}", id % 7),
                object_key: format!("datasets/{:016x}/part-{:05}.parquet", id, id % 100_000),
                etag: format!("{:032x}", u128::from(id) * 0x9e37_79b9),
                chunk_size: 8 << 20,
                index: rng.below(1_000),
            }
        })
        .collect()
}
