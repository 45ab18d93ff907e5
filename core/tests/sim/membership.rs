//! A deterministic simulation of a Deployment's replicas, each owning a [`Membership`], driven
//! by the drain contract against a virtual clock and a model of cluster DNS.
//!
//! The world runs in a [`Cluster`] (one queue of timed events, pods joining and leaving, DNS
//! record changes lagging them, and the loop that feeds every due input, in a seed-chosen order
//! when several fall on the same instant). Its own events are lookup answers with latency; after
//! every input it drains the machine completely and checks the invariants. A failing check
//! panics with the seed.
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

use std::net::IpAddr;
use std::time::Duration;

use orca_cluster_core::peer::canonical_ip;
use orca_cluster_core::{
    ChunkKey, Instant, IpFamily, LookupAnswer, LookupFailure, LookupId, MembershipEvent, PeerAddr,
    Scoring, Snapshot,
};

use super::cluster::{Cluster, ClusterParams, Family, Pod, SERVICE, Simulation, partner};
use super::rng::Rng;

/// The parameters of one run, drawn from the seed.
pub fn draw_params(rng: &mut Rng) -> ClusterParams {
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
    let max_stale = rng.range(0, 6) as u32;
    let chaos = Duration::from_millis(rng.range(10_000, 90_000));
    let churn_every = Duration::from_millis(rng.range(2_000, 20_000));
    ClusterParams {
        family,
        ip_family,
        refresh,
        lookup_timeout: Duration::from_millis(timeout_ms),
        max_stale,
        scoring,
        initial_pods,
        min_pods: 5,
        max_pods: 12,
        chaos,
        churn_every,
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

/// A replica of this simulation: its pod, and what its driver keeps.
pub type Replica = Pod<Driver>;

/// What a replica's driver keeps, and checks the machine against.
pub struct Driver {
    pub uid: u64,
    /// The snapshot last published through `SnapshotChanged` (None before the first).
    pub published: Option<Snapshot>,
    /// Snapshot changes seen so far.
    pub changes: u64,
    last_generation: u64,
    last_lookup: Option<LookupId>,
    /// The lookup this replica's driver holds: taken, neither answered nor abandoned yet.
    outstanding: Option<LookupId>,
    flaky: Flakiness,
    /// Test hook: a broken driver that ignores `poll_timeout` and re-wakes at once.
    spin: bool,
}

/// A lookup's answer (or failure), as it arrives at the replica with `uid`.
#[derive(Debug)]
pub struct Answer {
    uid: u64,
    id: LookupId,
    answer: LookupAnswer,
}

pub struct World {
    pub cluster: Cluster<Answer>,
    pub replicas: Vec<Replica>,
    next_uid: u64,
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
        let params = draw_params(&mut rng);
        let budget_limit = 16 * params.max_pods + 64;
        let mut w = World {
            cluster: Cluster::new(seed, rng, params),
            replicas: Vec::new(),
            next_uid: 0,
            budget_at: Instant::ZERO,
            budget_used: 0,
            budget_limit,
            inputs: 0,
            lookups: 0,
            failures: 0,
            stale_answers: 0,
            abandoned: 0,
            other_family_answers: 0,
            drained_failures: Vec::new(),
        };
        w.start_cluster();
        w
    }

    /// The convergence bound after DNS becomes stable: the lookup in flight at that moment ends
    /// by `max(refresh, timeout)` later at the latest, and the next (clean) one answers within
    /// `lookup_timeout`. With the usual `timeout <= refresh` this is `refresh + lookup_timeout`.
    pub fn convergence_bound(&self) -> Duration {
        let p = &self.cluster.params;
        p.refresh.max(p.lookup_timeout) + p.lookup_timeout
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

    /// Makes replica `i` a broken driver that re-wakes at once (for the livelock guard's test).
    pub fn make_spinner(&mut self, i: usize) {
        self.replicas[i].driver.spin = true;
    }

    /// Counts one input at `now`; too many at one instant is a livelock.
    fn spend(&mut self) {
        if self.budget_at != self.cluster.now {
            self.budget_at = self.cluster.now;
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
        let timeout = self.cluster.params.lookup_timeout.as_millis() as u64;
        let f = self.replicas[i].driver.flaky;
        let records = |w: &mut World, ips: Vec<IpAddr>| -> LookupAnswer {
            let mut out = Vec::new();
            for ip in ips {
                let shown = match (w.cluster.params.family, ip) {
                    (Family::V4Mapped, IpAddr::V4(v4)) if w.cluster.rng.chance(300) => {
                        IpAddr::V6(v4.to_ipv6_mapped())
                    }
                    _ => ip,
                };
                out.push(PeerAddr::from_ip(shown));
                if w.cluster.rng.chance(50) {
                    out.push(PeerAddr::from_ip(ip)); // a duplicate record
                }
                if w.cluster.params.family == Family::DualStack {
                    out.push(PeerAddr::from_ip(partner(ip))); // the other record type
                }
            }
            w.cluster.rng.shuffle(&mut out);
            LookupAnswer::Records(out)
        };
        let all: Vec<IpAddr> = self.cluster.dns.iter().copied().collect();
        // DNS never answers "no records" with an empty success; NoRecords is a failure.
        let ok_or_norecords = |w: &mut World, ips: Vec<IpAddr>| {
            if ips.is_empty() {
                LookupAnswer::Failed(LookupFailure::NoRecords)
            } else {
                records(w, ips)
            }
        };
        if self.cluster.stable {
            // Always correct, always before the deadline (strictly).
            let lat = Duration::from_millis(self.cluster.rng.below(timeout));
            let answer = ok_or_norecords(self, all);
            return Some((self.cluster.now + lat, answer));
        }
        let roll = self.cluster.rng.below(1000);
        let mut t = roll;
        let within =
            |w: &mut World| w.cluster.now + Duration::from_millis(w.cluster.rng.below(timeout + 1));
        if t < f.no_answer {
            return None;
        }
        t -= f.no_answer;
        if t < f.explicit_timeout {
            return Some((deadline, LookupAnswer::Failed(LookupFailure::Timeout)));
        }
        t -= f.explicit_timeout;
        if t < f.error {
            let kind = *self.cluster.rng.pick(&[
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
            let lat = Duration::from_millis(self.cluster.rng.range(timeout + 1, 3 * timeout + 1));
            let answer = ok_or_norecords(self, all);
            return Some((self.cluster.now + lat, answer));
        }
        t -= f.slow;
        if t < f.partial {
            let subset: Vec<IpAddr> = all
                .into_iter()
                .filter(|_| self.cluster.rng.chance(600))
                .collect();
            let answer = ok_or_norecords(self, subset);
            return Some((within(self), answer));
        }
        t -= f.partial;
        if t < f.empty {
            // Only a static/custom source does this; the machine must still cope.
            return Some((within(self), LookupAnswer::Records(Vec::new())));
        }
        t -= f.empty;
        if t < f.other_family && self.cluster.params.family == Family::DualStack && !all.is_empty()
        {
            // Only the records of the family the replicas do not use (e.g. the A query failed
            // and the AAAA one answered): no usable record.
            let mut out: Vec<PeerAddr> = all
                .iter()
                .map(|ip| PeerAddr::from_ip(partner(*ip)))
                .collect();
            self.cluster.rng.shuffle(&mut out);
            return Some((within(self), LookupAnswer::Records(out)));
        }
        let answer = ok_or_norecords(self, all);
        Some((within(self), answer))
    }

    // ---- driving ----

    /// Drains replica `i` after an input and checks every per-drain invariant.
    fn drain(&mut self, i: usize) {
        let now = self.cluster.now;
        self.drained_failures.clear();
        // Abandoned first, so that a lookup taken below finds the driver holding none.
        while let Some(id) = self.replicas[i].machine.poll_abandoned() {
            self.abandoned += 1;
            let r = &self.replicas[i];
            self.check(r.driver.outstanding == Some(id), || {
                format!(
                    "abandoned {id:?}, but the driver holds {:?} (abandoned twice, answered, or never handed out)",
                    r.driver.outstanding
                )
            });
            self.check(
                r.machine
                    .in_flight()
                    .is_none_or(|(current, _)| current != id),
                || format!("abandoned {id:?} is still in flight"),
            );
            self.replicas[i].driver.outstanding = None;
        }
        let mut lookups = 0;
        while let Some(req) = self.replicas[i].machine.poll_lookup() {
            lookups += 1;
            self.lookups += 1;
            let r = &self.replicas[i];
            self.check(r.alive, || "a shut-down machine asked for a lookup".into());
            self.check(r.driver.outstanding.is_none(), || {
                format!(
                    "lookup {:?} handed out while {:?} was neither answered nor abandoned",
                    req.id, r.driver.outstanding
                )
            });
            self.check(
                req.deadline == now + self.cluster.params.lookup_timeout,
                || format!("lookup deadline {:?}, expected now + timeout", req.deadline),
            );
            self.check(
                r.driver.last_lookup.is_none_or(|last| req.id > last),
                || {
                    format!(
                        "lookup id {:?} not after {:?}",
                        req.id, r.driver.last_lookup
                    )
                },
            );
            self.check(req.name == SERVICE, || format!("lookup of {:?}", req.name));
            self.replicas[i].driver.last_lookup = Some(req.id);
            self.replicas[i].driver.outstanding = Some(req.id);
            if let Some((at, answer)) = self.dns_outcome(i, req.deadline) {
                let uid = self.replicas[i].driver.uid;
                let after = at.saturating_duration_since(now);
                self.cluster.schedule(
                    after,
                    Answer {
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
                    self.check(initial == r.driver.published.is_none(), || {
                        format!(
                            "initial flag {initial} with previous {:?}",
                            r.driver.published.as_ref().map(Snapshot::generation)
                        )
                    });
                    self.check(snapshot.generation() > r.driver.last_generation, || {
                        format!(
                            "generation {} after {} ({reason})",
                            snapshot.generation(),
                            r.driver.last_generation
                        )
                    });
                    let prev = r.driver.published.clone().unwrap_or_else(|| {
                        Snapshot::only_self(
                            r.machine.self_identity(),
                            self.cluster.params.scoring,
                            0,
                        )
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
                    r.driver.last_generation = snapshot.generation();
                    r.driver.published = Some(snapshot);
                    r.driver.changes += 1;
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
        if let Some(held) = r.driver.outstanding {
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
                Some(t) if r.driver.spin => {
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
        r.wake = if r.driver.spin { Some(now) } else { wake };
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
        let family = self.cluster.params.ip_family;
        self.check(snap.peers().iter().all(|p| family.matches(p.ip)), || {
            format!("a peer not of {family:?}: {:?}", snap.peers())
        });
        self.check(snap.generation() >= r.driver.last_generation, || {
            format!(
                "generation went back: {} < {}",
                snap.generation(),
                r.driver.last_generation
            )
        });
        if let Some(p) = &r.driver.published {
            self.check(p.generation() == snap.generation() && p == snap, || {
                "the machine's snapshot is not the last published one".into()
            });
        }
        self.check(
            r.machine.has_initial_snapshot() == r.driver.published.is_some(),
            || "has_initial_snapshot disagrees with the events".into(),
        );
    }

    // ---- convergence ----

    /// Checks that every live replica holds exactly the live pods and that all agree on the
    /// coordinator of `keys` (exactly one replica says it is the coordinator).
    pub fn check_converged(&self, keys: &[ChunkKey]) {
        self.check_holds_live_pods();
        for key in keys {
            self.check_one_coordinator(key);
        }
    }
}

impl Simulation for World {
    type Driver = Driver;
    type Event = Answer;

    fn cluster(&self) -> &Cluster<Answer> {
        &self.cluster
    }

    fn cluster_mut(&mut self) -> &mut Cluster<Answer> {
        &mut self.cluster
    }

    fn pods(&self) -> &[Replica] {
        &self.replicas
    }

    /// Panics with the seed and the replay hint.
    #[track_caller]
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        self.cluster.fail(what)
    }

    fn start_pod(&mut self, ip: IpAddr) {
        // Dual-stack: both addresses, in either order; the machine must stamp self by the
        // family's.
        let machine = self
            .cluster
            .start_machine(ip)
            .unwrap_or_else(|e| self.fail(format!("valid config rejected: {e}")));
        self.check(!machine.has_initial_snapshot(), || {
            "initial snapshot before any answer".into()
        });
        let flaky = Flakiness::draw(&mut self.cluster.rng);
        self.next_uid += 1;
        let driver = Driver {
            uid: self.next_uid,
            published: None,
            changes: 0,
            last_generation: 0,
            last_lookup: None,
            outstanding: None,
            flaky,
            spin: false,
        };
        self.replicas.push(Pod::new(ip, machine, driver));
        let i = self.replicas.len() - 1;
        self.check_bootstrap(i);
        // Construction queued the first lookup: drain like after any input.
        self.drain(i);
    }

    fn stop_pod(&mut self, i: usize) {
        let now = self.cluster.now;
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
    }

    fn deliver(&mut self, Answer { uid, id, answer }: Answer) {
        let Some(i) = self.replicas.iter().position(|r| r.driver.uid == uid) else {
            self.fail("answer for an unknown replica");
        };
        self.spend();
        let in_flight = self.replicas[i].machine.in_flight();
        if in_flight.map(|(id, _)| id) != Some(id) {
            self.stale_answers += 1;
        }
        if self.replicas[i].driver.outstanding == Some(id) {
            self.replicas[i].driver.outstanding = None; // the driver answers the lookup it holds
        }
        // An in-time answer whose records are all of the other family: "no records".
        let family = self.cluster.params.ip_family;
        let other_family = in_flight
            .is_some_and(|(current, deadline)| current == id && self.cluster.now <= deadline)
            && matches!(&answer, LookupAnswer::Records(addrs)
                        if !addrs.is_empty() && addrs.iter().all(|a| !family.matches(a.ip)));
        let before = self.replicas[i].machine.snapshot().clone();
        let changes_before = self.replicas[i].driver.changes;
        let now = self.cluster.now;
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
                *r.machine.snapshot() == before && r.driver.changes == changes_before,
                || "a shut-down machine reacted to an answer".into(),
            );
        }
    }

    fn wake(&mut self, i: usize) {
        self.spend();
        let now = self.cluster.now;
        self.replicas[i].machine.handle_timeout(now);
        self.drain(i);
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
