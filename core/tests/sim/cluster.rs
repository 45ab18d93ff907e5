//! The cluster both simulations run in, and the loop that drives its replicas.
//!
//! A [`Cluster`] holds the virtual clock, one queue of timed events, the pods' address plan and
//! the headless Service's DNS records. During the churn phase pods join and leave (never fewer
//! than `min_pods` nor more than `max_pods` live ones) and DNS follows them with a lag; when the
//! phase ends (`stable_at`) DNS holds exactly the live pods and lagging record changes are
//! dropped. Pod IPs are recycled now and then, as Kubernetes does.
//!
//! What a replica is, how DNS answers its lookups and what is checked after each input belong to
//! each simulation, which implements [`Simulation`]. Its [`Simulation::run_until`] jumps the
//! clock to the earliest due event or replica wake-up, feeds every input due at that instant in
//! a seed-chosen order, and fails on time going backwards or on a livelock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use orca_cluster_core::peer::canonical_ip;
use orca_cluster_core::{
    ChunkKey, ConfigError, Instant, IpFamily, Membership, MembershipConfig, Scoring,
};

use super::rng::{Rng, replay_command};

/// The headless Service every replica looks up.
pub const SERVICE: &str = "orca-peers.default.svc.cluster.local";

/// Rounds of inputs at one instant, in a row, that make a livelock.
const MAX_ROUNDS_AT_ONE_INSTANT: u32 = 10_000;

/// Address family of the simulated cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// IPv4 pods; DNS sometimes returns records (and replicas sometimes configure their own IP)
    /// as IPv4-mapped IPv6.
    V4Mapped,
    /// Every pod has an IPv4 and an IPv6 address (see [`partner`]) and configures both; DNS
    /// answers A and AAAA records; the peer set is made of the family `ClusterParams::ip_family`.
    DualStack,
}

/// The other address of a dual-stack pod: `10.244.a.b` <-> `fd00:10:244::ab` (the forms the
/// cluster gives IPv4 and IPv6 pods).
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

/// The cluster's shape and the replicas' membership settings, drawn by each simulation from its
/// seed (each in its own order, so that a seed keeps replaying the same run).
#[derive(Clone, Debug)]
pub struct ClusterParams {
    pub family: Family,
    /// The replicas' `ip_family`: one of the two on a dual-stack cluster, else `Any` or the
    /// cluster's family (a filter that must drop nothing).
    pub ip_family: IpFamily,
    pub refresh: Duration,
    pub lookup_timeout: Duration,
    pub max_stale: u32,
    pub scoring: Scoring,
    pub initial_pods: usize,
    pub min_pods: usize,
    pub max_pods: usize,
    /// Length of the churn phase (pod joins and leaves, and whatever else the simulation's DNS
    /// model does before it becomes stable).
    pub chaos: Duration,
    /// Mean time between pod joins and leaves during churn.
    pub churn_every: Duration,
}

/// An event in the queue: the cluster's own, or one of the simulation's.
#[derive(Debug)]
enum Queued<E> {
    DnsAdd(IpAddr),
    DnsRemove(IpAddr),
    Churn,
    Stabilize,
    Sim(E),
}

/// What one due input is, once the instant's inputs are collected and shuffled.
enum Due<E> {
    Event(Queued<E>),
    Wake(usize),
}

/// The virtual clock, the event queue (with events of type `E` of the simulation), the pods'
/// address plan and the Service's DNS records.
pub struct Cluster<E> {
    pub seed: u64,
    pub params: ClusterParams,
    pub rng: Rng,
    pub now: Instant,
    /// The A/AAAA records of the headless Service, as DNS holds them.
    pub dns: BTreeSet<IpAddr>,
    /// The churn phase is over: DNS holds exactly the live pods.
    pub stable: bool,
    /// When the churn phase ends.
    pub stable_at: Instant,
    queue: BTreeMap<(Instant, u64), Queued<E>>,
    /// The inputs due at `now` not fed yet, in the order they are fed.
    due: VecDeque<Due<E>>,
    seq: u64,
    next_host: u32,
}

impl<E> Cluster<E> {
    /// A cluster with no pod yet, at 1 s on the virtual clock; `rng` continues the seed's stream
    /// after the parameters were drawn from it.
    pub fn new(seed: u64, rng: Rng, params: ClusterParams) -> Cluster<E> {
        let now = Instant::from_millis(1_000);
        Cluster {
            seed,
            stable_at: now + params.chaos,
            params,
            rng,
            now,
            dns: BTreeSet::new(),
            stable: false,
            queue: BTreeMap::new(),
            due: VecDeque::new(),
            seq: 0,
            next_host: 1,
        }
    }

    /// Panics with the seed, the instant, the parameters and the replay command.
    #[track_caller]
    pub fn fail(&self, what: impl Display) -> ! {
        panic!(
            "seed {}: at {:?}: {what}\n  params: {:?}\n  replay: {}",
            self.seed,
            self.now,
            self.params,
            replay_command(self.seed)
        )
    }

    /// A random duration of `lo..=hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.range(lo, hi))
    }

    /// Queues `ev` for `after` from now (events at the same instant keep their order here and
    /// are shuffled when fed).
    pub fn schedule(&mut self, after: Duration, ev: E) {
        self.push(after, Queued::Sim(ev));
    }

    /// The simulation's events still queued.
    pub fn pending(&self) -> impl Iterator<Item = &E> {
        self.queue.values().filter_map(|q| match q {
            Queued::Sim(ev) => Some(ev),
            _ => None,
        })
    }

    /// Drops the simulation's events that `cancelled` selects, whether queued or already due at
    /// this instant but not fed yet: a cancelled event never arrives.
    pub fn cancel(&mut self, mut cancelled: impl FnMut(&E) -> bool) {
        self.queue
            .retain(|_, q| !matches!(q, Queued::Sim(ev) if cancelled(ev)));
        self.due
            .retain(|d| !matches!(d, Due::Event(Queued::Sim(ev)) if cancelled(ev)));
    }

    /// A new replica's machine for the pod at `ip`, configured with the cluster's settings. An
    /// IPv4 pod of an IPv4-mapped cluster sometimes configures its IP in the mapped form; a
    /// dual-stack pod configures both of its IPs, in either order.
    pub fn start_machine(&mut self, ip: IpAddr) -> Result<Membership, ConfigError> {
        let mut configured = match (self.params.family, ip) {
            (Family::V4Mapped, IpAddr::V4(v4)) if self.rng.chance(500) => {
                vec![IpAddr::V6(v4.to_ipv6_mapped())]
            }
            (Family::DualStack, _) => vec![ip, partner(ip)],
            _ => vec![ip],
        };
        self.rng.shuffle(&mut configured);
        let mut config = MembershipConfig::new(SERVICE, configured);
        config.ip_family = self.params.ip_family;
        config.membership_refresh = self.params.refresh;
        config.lookup_timeout = self.params.lookup_timeout;
        config.max_stale_refreshes = self.params.max_stale;
        config.scoring = self.params.scoring;
        Membership::new(&config, self.now)
    }

    fn push(&mut self, after: Duration, ev: Queued<E>) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), ev);
    }

    fn churn_delay(&mut self) -> Duration {
        let mean = self.params.churn_every.as_millis() as u64;
        self.ms(mean / 4, mean * 2)
    }

    /// The IP of a new pod: now and then one a pod that left had (and no live pod has), else the
    /// next of the cluster's family (the peer set's family on a dual-stack cluster).
    fn pod_ip(&mut self, recyclable: &[IpAddr]) -> IpAddr {
        if !recyclable.is_empty() && self.rng.chance(200) {
            return *self.rng.pick(recyclable);
        }
        let n = self.next_host;
        self.next_host += 1;
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 244, (n >> 8) as u8, n as u8));
        match (self.params.family, self.params.ip_family) {
            (Family::V6, _) | (Family::DualStack, IpFamily::Ipv6) => partner(v4),
            _ => v4,
        }
    }
}

/// A pod and the replica it runs: the replica's machine, and what the simulation's driver keeps
/// for it (`D`).
pub struct Pod<D> {
    /// The pod's IP of the peer set's family, in canonical form (IPv4 for IPv4-mapped).
    pub ip: IpAddr,
    pub machine: Membership,
    /// Not shut down.
    pub alive: bool,
    /// When the machine asked to be woken (`None`: it did not, or it is shut down).
    pub wake: Option<Instant>,
    pub driver: D,
}

impl<D> Pod<D> {
    /// A replica just started at `ip`, not drained yet.
    pub fn new(ip: IpAddr, machine: Membership, driver: D) -> Pod<D> {
        Pod {
            ip,
            machine,
            alive: true,
            wake: None,
            driver,
        }
    }
}

/// A simulation of replicas in a [`Cluster`]: its pods, how it starts, stops and wakes their
/// replicas, and what it does with its own events. The provided methods are the shared part:
/// populating the cluster, the driving loop, and the convergence checks.
pub trait Simulation {
    /// What the simulation's driver keeps for each replica.
    type Driver;
    /// The simulation's own events (lookup answers, requests, ...).
    type Event;

    fn cluster(&self) -> &Cluster<Self::Event>;
    fn cluster_mut(&mut self) -> &mut Cluster<Self::Event>;
    /// Every pod ever started, by index (stopped ones stay).
    fn pods(&self) -> &[Pod<Self::Driver>];
    /// Starts a replica in a new pod at `ip` and drains it (its DNS records are the cluster's
    /// business).
    fn start_pod(&mut self, ip: IpAddr);
    /// Shuts down the replica of live pod `i` and drains it.
    fn stop_pod(&mut self, i: usize);
    /// Feeds one of the simulation's own events.
    fn deliver(&mut self, ev: Self::Event);
    /// Wakes the replica of pod `i`, which is alive and due.
    fn wake(&mut self, i: usize);
    /// Fails the run: panics with the seed, the parameters and the replay command.
    fn fail(&self, what: impl Display) -> !;

    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    /// The indices of the live pods.
    fn live_pods(&self) -> Vec<usize> {
        let pods = self.pods();
        (0..pods.len()).filter(|&i| pods[i].alive).collect()
    }

    fn live_ips(&self) -> BTreeSet<IpAddr> {
        self.pods()
            .iter()
            .filter(|p| p.alive)
            .map(|p| canonical_ip(p.ip))
            .collect()
    }

    /// Starts the initial pods (most already in DNS, the others within a second), and queues the
    /// first churn and the end of the churn phase.
    fn start_cluster(&mut self) {
        for _ in 0..self.cluster().params.initial_pods {
            let ip = start_new_pod(self);
            let c = self.cluster_mut();
            if c.rng.chance(700) {
                c.dns.insert(ip);
            } else {
                let lag = c.ms(0, 1_000);
                c.push(lag, Queued::DnsAdd(ip));
            }
        }
        let c = self.cluster_mut();
        let chaos = c.params.chaos;
        c.push(chaos, Queued::Stabilize);
        let first = c.churn_delay();
        c.push(first, Queued::Churn);
    }

    /// Runs every input due at or before `until`, then leaves the clock at `until`.
    fn run_until(&mut self, until: Instant) {
        let mut rounds_at_instant = 0u32;
        loop {
            let next_event = self.cluster().queue.keys().next().map(|&(t, _)| t);
            let next_wake = self
                .pods()
                .iter()
                .filter(|p| p.alive)
                .filter_map(|p| p.wake)
                .min();
            let Some(next) = [next_event, next_wake].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            let now = self.cluster().now;
            if next < now {
                self.fail(format!("time went backwards: {next:?} < {now:?}"));
            }
            if next == now {
                rounds_at_instant += 1;
                self.check(rounds_at_instant < MAX_ROUNDS_AT_ONE_INSTANT, || {
                    format!("livelock: {MAX_ROUNDS_AT_ONE_INSTANT} rounds of inputs at one instant")
                });
            } else {
                rounds_at_instant = 0;
            }
            // Everything due at this instant, in a seed-chosen order.
            let c = self.cluster_mut();
            c.now = next;
            let mut due: Vec<Due<Self::Event>> = Vec::new();
            while let Some(entry) = c.queue.first_entry() {
                if entry.key().0 != next {
                    break;
                }
                due.push(Due::Event(entry.remove()));
            }
            for (i, p) in self.pods().iter().enumerate() {
                if p.alive && p.wake.is_some_and(|t| t <= next) {
                    due.push(Due::Wake(i));
                }
            }
            let c = self.cluster_mut();
            c.rng.shuffle(&mut due);
            c.due = due.into();
            while let Some(d) = self.cluster_mut().due.pop_front() {
                match d {
                    Due::Event(ev) => feed(self, ev),
                    Due::Wake(i) => {
                        // Not if woken earlier at this instant by another input, or shut down.
                        let p = &self.pods()[i];
                        if p.alive && p.wake.is_some_and(|t| t <= next) {
                            self.wake(i);
                        }
                    }
                }
            }
        }
        let c = self.cluster_mut();
        if until > c.now {
            c.now = until;
        }
    }

    /// Every live replica holds exactly the live pods, has its initial snapshot and is not
    /// failing.
    fn check_holds_live_pods(&self) {
        let want: Vec<(IpAddr, u16)> = self.live_ips().into_iter().map(|ip| (ip, 0)).collect();
        for p in self.pods().iter().filter(|p| p.alive) {
            let m = &p.machine;
            let got: Vec<(IpAddr, u16)> = m
                .snapshot()
                .peers()
                .iter()
                .map(|peer| (peer.ip, peer.port))
                .collect();
            self.check(got == want, || {
                format!(
                    "replica {} did not converge: has {got:?}, DNS holds {want:?} (streak {})",
                    p.ip,
                    m.failure_streak()
                )
            });
            self.check(m.has_initial_snapshot() && m.failure_streak() == 0, || {
                format!("replica {}: no initial snapshot, or failing", p.ip)
            });
        }
    }

    /// Every live replica names the same coordinator of `key`, and exactly that replica claims
    /// it; returns the coordinator's address.
    fn check_one_coordinator(&self, key: &ChunkKey) -> (IpAddr, u16) {
        let mut coordinators = BTreeSet::new();
        let mut claimers = Vec::new();
        for p in self.pods().iter().filter(|p| p.alive) {
            let snap = p.machine.snapshot();
            let c = snap.coordinator(key);
            coordinators.insert((c.ip, c.port));
            if snap.is_coordinator(key) {
                claimers.push(canonical_ip(p.ip));
            }
        }
        self.check(coordinators.len() == 1, || {
            format!("replicas disagree on the coordinator of {key:?}: {coordinators:?}")
        });
        let coordinator = *coordinators.first().expect("at least one live replica");
        self.check(claimers == [coordinator.0], || {
            format!("coordinator {coordinator:?}, but replicas claiming it: {claimers:?}")
        });
        coordinator
    }
}

/// Starts a pod at a new (or recycled) IP and returns the IP.
fn start_new_pod<S: Simulation + ?Sized>(s: &mut S) -> IpAddr {
    let live = s.live_ips();
    let recyclable: Vec<IpAddr> = s
        .pods()
        .iter()
        .filter(|p| !p.alive && !live.contains(&p.ip))
        .map(|p| p.ip)
        .collect();
    let ip = s.cluster_mut().pod_ip(&recyclable);
    s.start_pod(ip);
    ip
}

/// Feeds one due event: the cluster's own here, the simulation's to [`Simulation::deliver`].
fn feed<S: Simulation + ?Sized>(s: &mut S, ev: Queued<S::Event>) {
    match ev {
        Queued::Sim(ev) => s.deliver(ev),
        Queued::DnsAdd(ip) => {
            // A late add for a pod that already left is dropped (its remove may be queued).
            if s.live_ips().contains(&canonical_ip(ip)) {
                s.cluster_mut().dns.insert(ip);
            }
        }
        Queued::DnsRemove(ip) => {
            // A late remove for an IP a new pod reuses is dropped.
            if !s.live_ips().contains(&canonical_ip(ip)) {
                s.cluster_mut().dns.remove(&ip);
            }
        }
        Queued::Churn => {
            churn(s);
            let c = s.cluster_mut();
            let next = c.churn_delay();
            if c.now + next < c.stable_at {
                c.push(next, Queued::Churn);
            }
        }
        Queued::Stabilize => {
            // DNS settles on exactly the live pods; lagging record changes are moot.
            let live = s.live_ips();
            let c = s.cluster_mut();
            c.stable = true;
            c.dns = live;
            c.queue.retain(|_, q| {
                !matches!(q, Queued::DnsAdd(_) | Queued::DnsRemove(_) | Queued::Churn)
            });
        }
    }
}

/// A pod joins (DNS adds it within 3 s) or leaves (DNS removes it within 5 s).
fn churn<S: Simulation + ?Sized>(s: &mut S) {
    let live = s.live_pods();
    let c = s.cluster_mut();
    let join =
        live.len() < c.params.max_pods && (live.len() <= c.params.min_pods || c.rng.chance(500));
    if join {
        let ip = start_new_pod(s);
        let c = s.cluster_mut();
        let lag = c.ms(0, 3_000);
        c.push(lag, Queued::DnsAdd(ip));
    } else {
        let i = *s.cluster_mut().rng.pick(&live);
        s.stop_pod(i);
        let ip = s.pods()[i].ip;
        let c = s.cluster_mut();
        let lag = c.ms(0, 5_000);
        c.push(lag, Queued::DnsRemove(ip));
    }
}
