//! Metrics of both drivers, through a real recorder (`metrics-exporter-prometheus`, rendered
//! and parsed as a scraper would): one scenario of real fills, written once and run against
//! each driver, with every count checked; and the same metric names from both drivers.
//!
//! The recorder: the `metrics` facade takes one global recorder per process, so this binary
//! installs a switch once that forwards to the recorder of the test holding it; tests take
//! turns (a lock), each with a fresh Prometheus recorder, so every count below is absolute.
//!
//! The scenario, between a client replica `A` and a listener replica `B` (concurrency limit 1):
//! two fills served in full; a 409 (a chunk `A` coordinates, asked of `B`); a raw 404, a raw 400
//! (no internal header) and a bad request head; a filler error (502); a filler stream that ends
//! short (aborted); a body dropped after its first frame and a fill future dropped before its
//! head (both cancelled, on both sides); a 503 while a slow fill holds the slot; a dead peer
//! (a connect failure, then `peer_unavailable` at once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use orca_cluster_driver_common::metrics as names;
use orca_cluster_tests::harness::{Driver, SmolDriver, TokioDriver};

#[test]
fn tokio_fills_add_up() {
    let _turn = Turn::take();
    let scrape = TokioDriver::run(cases::scenario::<TokioDriver>());
    cases::check(&scrape, "tokio");
}

#[test]
fn smol_fills_add_up() {
    let _turn = Turn::take();
    let scrape = SmolDriver::run(cases::scenario::<SmolDriver>());
    cases::check(&scrape, "smol");
}

/// The same scenario on each driver yields the same metric names, each with the same label
/// names, every one of them a name of `orca_cluster_driver_common::metrics`.
#[test]
fn both_drivers_emit_the_same_names() {
    let _turn = Turn::take();
    let tokio = TokioDriver::run(cases::scenario::<TokioDriver>()).families();
    let smol = SmolDriver::run(cases::scenario::<SmolDriver>()).families();
    assert_eq!(tokio, smol, "metric names and label names per driver");
    let known: BTreeSet<&str> = names::ALL.iter().copied().collect();
    for name in tokio.keys() {
        assert!(
            known.contains(name.as_str()),
            "{name} is not in metrics::ALL"
        );
    }
    // Everything but what this scenario cannot produce (lookup failures of a static list,
    // TLS reloads without TLS).
    for name in names::ALL {
        if [names::LOOKUP_FAILURES, names::TLS_RELOADS].contains(name) {
            continue;
        }
        assert!(tokio.contains_key(*name), "{name} was not emitted");
    }
    println!("metric names of both drivers: {tokio:?}");
}

/// The recorder installed for this process: forwards to the recorder of the test whose turn it
/// is (none: metrics are dropped).
struct Switch {
    current: RwLock<Option<Arc<PrometheusRecorder>>>,
}

static SWITCH: Switch = Switch {
    current: RwLock::new(None),
};

impl Switch {
    fn current(&self) -> Option<Arc<PrometheusRecorder>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, recorder: Option<Arc<PrometheusRecorder>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = recorder;
    }
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(r) = self.current() {
            r.describe_counter(key, unit, description);
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(r) = self.current() {
            r.describe_gauge(key, unit, description);
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(r) = self.current() {
            r.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.current() {
            Some(r) => r.register_counter(key, metadata),
            None => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.current() {
            Some(r) => r.register_gauge(key, metadata),
            None => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.current() {
            Some(r) => r.register_histogram(key, metadata),
            None => Histogram::noop(),
        }
    }
}

/// One test's turn with a fresh recorder; ends (the switch forwarding nowhere) when dropped.
struct Turn {
    _lock: MutexGuard<'static, ()>,
}

static TURNS: Mutex<()> = Mutex::new(());
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

impl Turn {
    fn take() -> Turn {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            metrics::set_global_recorder(&SWITCH).expect("the only recorder of this binary");
        });
        let lock = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::FILL_DURATION.into()),
                names::FILL_DURATION_BUCKETS,
            )
            .expect("buckets")
            .build_recorder();
        *HANDLE.lock().unwrap_or_else(|p| p.into_inner()) = Some(recorder.handle());
        SWITCH.set(Some(Arc::new(recorder)));
        Turn { _lock: lock }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        SWITCH.set(None);
        *HANDLE.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Renders the current turn's recorder and parses it.
fn scrape() -> Scrape {
    let handle = HANDLE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Scrape::parse(&handle.expect("a turn is held").render())
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Default)]
struct Scrape {
    /// `# TYPE` of each family.
    types: BTreeMap<String, String>,
    /// Every sample: name, labels, value.
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                scrape.types.insert(name.into(), kind.into());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value: f64 = value.parse().expect("a sample value");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    let labels = body
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let (k, v) = l.split_once('=').expect("label=value");
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            scrape.samples.push((name, labels, value));
        }
        scrape
    }

    /// The sum of the samples of `name` whose labels include `labels` (0 when none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The values of label `label` among the samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, _)| l.get(label).cloned())
            .collect()
    }

    /// Each metric family with the names of its labels (histogram samples folded into their
    /// family, `le` left out).
    fn families(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in self.types.keys() {
            out.entry(name.clone()).or_default();
        }
        for (name, labels, _) in &self.samples {
            let family = self
                .types
                .keys()
                .find(|f| {
                    name == *f
                        || name
                            .strip_prefix(f.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
                })
                .unwrap_or_else(|| panic!("{name} has no # TYPE"));
            out.entry(family.clone())
                .or_default()
                .extend(labels.keys().filter(|k| *k != "le").cloned());
        }
        out
    }
}

mod cases {
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    use bytes::Bytes;
    use futures_lite::StreamExt;
    use orca_cluster_core::ChunkKey;
    use orca_cluster_driver_common::{
        ChunkStream, FillError, FillRequest, Filler, FillerError, StaticPeerSource, SyntheticOrigin,
    };
    use orca_cluster_tests::harness::{
        ClusterHandle, Driver, LOCALHOST, Setup, assert_chunk, bind_local, eventually, off_thread,
        origin_chunk_coordinated_by, peer_at, start_static_limited, static_config, stop_all,
        timeout,
    };
    use orca_cluster_tests::raw_client;

    use super::{Scrape, names, scrape};

    /// 1 MiB chunks of a 4 MiB object.
    const CHUNK: u64 = 1 << 20;
    const OBJECT: u64 = 4 << 20;
    /// How long the `slow` filler waits between its two halves, and the `late` one before.
    const PAUSE: Duration = Duration::from_millis(300);

    /// Serves the synthetic chunk, misbehaving as the key's `origin_id` says: `ok`, `fail`
    /// (an error: 502), `short` (1000 bytes short), `slow` (a first third, [`PAUSE`], the
    /// rest in two frames), `late` ([`PAUSE`], then as `slow`).
    #[derive(Clone, Copy, Debug)]
    struct Scripted;

    impl Filler for Scripted {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            let mut bytes = SyntheticOrigin::chunk_bytes(&request.key, request.object_size);
            let pause_first = match request.key.origin_id.as_str() {
                "fail" => return Err("the origin is down".into()),
                "short" => {
                    bytes.truncate(bytes.len() - 1000);
                    None
                }
                "slow" => Some(false),
                "late" => Some(true),
                _ => None,
            };
            let mut first = Bytes::from(bytes);
            let Some(late) = pause_first else {
                let second = first.split_off(first.len() / 2);
                return Ok(Box::pin(futures_lite::stream::iter([
                    Ok(first),
                    Ok(second),
                ])));
            };
            if late {
                smol::Timer::after(PAUSE).await;
            }
            // Thirds: the pause comes before a frame that is not the last, so a listener
            // whose client has gone finds out when it writes that frame.
            let mut second = first.split_off(first.len() / 3);
            let third = second.split_off(second.len() / 2);
            let frames = futures_lite::stream::unfold(0, move |n| {
                let frame = [&first, &second, &third].get(n).map(|f| Bytes::clone(f));
                async move {
                    if n == 1 {
                        smol::Timer::after(PAUSE).await;
                    }
                    frame.map(|f| (Ok(f), n + 1))
                }
            });
            Ok(Box::pin(frames))
        }
    }

    /// A chunk of `origin` coordinated by `owner` in `observer`'s snapshot.
    fn chunk(observer: &dyn ClusterHandle, owner: SocketAddr, origin: &str) -> ChunkKey {
        origin_chunk_coordinated_by(observer, owner, origin, CHUNK, 4)
    }

    /// Waits until no fill of either role is in flight.
    async fn settle<D: Driver>() {
        let quiet = eventually::<D>(Duration::from_secs(5), || {
            let s = scrape();
            s.value(names::FILLS_IN_FLIGHT, &[("role", "listener")]) == 0.0
                && s.value(names::FILLS_IN_FLIGHT, &[("role", "client")]) == 0.0
        })
        .await;
        assert!(quiet, "{}: fills still in flight: {:?}", D::NAME, scrape());
    }

    /// Runs the scenario of the module docs on driver `D` and returns the final scrape.
    pub(super) async fn scenario<D: Driver>() -> Scrape {
        let listeners = bind_local::<D>(2).await;
        let addrs: Vec<SocketAddr> = listeners.iter().map(D::listener_addr).collect();
        let (a_addr, b_addr) = (addrs[0], addrs[1]);
        let source = StaticPeerSource::new(addrs.clone());
        let setup = Setup::static_source(&source);
        let replicas =
            start_static_limited::<D>(listeners, &static_config(), &setup, Scripted, 1).await;
        for r in &replicas {
            assert_eq!(r.cluster.peers().len(), 2);
        }
        let a = &*replicas[0].cluster;
        let b = peer_at(b_addr);

        // Two fills served in full.
        for origin in ["ok", "slow"] {
            let k = chunk(a, b_addr, origin);
            let bytes = a.fill(&b, &k, OBJECT).await.expect("fill");
            assert_chunk(&bytes, &k, OBJECT);
        }
        // 409: a chunk A coordinates, asked of B.
        let k = chunk(a, a_addr, "ok");
        let e = a.fill(&b, &k, OBJECT).await.expect_err("409");
        assert!(e.is_not_coordinator(), "{e}");
        // Refused before admission could start a fill: 404, 400, a bad head.
        let target = format!(
            "/internal/fill?{}",
            orca_cluster_core::wire::encode_query(&k, OBJECT)
        );
        let raw = [
            (
                raw_client::request("GET", "/nowhere", "x-orca-internal: 1\r\n"),
                404,
            ),
            (raw_client::request("GET", &target, ""), 400),
            (
                b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n".to_vec(),
                400,
            ),
        ];
        for (request, status) in raw {
            let response = off_thread(move || raw_client::exchange(b_addr, &request))
                .await
                .expect("raw exchange");
            assert_eq!(response.status, status, "{}", response.text());
        }
        // The filler fails (502); its stream ends short (the response is aborted).
        let e = a
            .fill(&b, &chunk(a, b_addr, "fail"), OBJECT)
            .await
            .expect_err("502");
        assert_eq!(e.status(), Some(502), "{e}");
        settle::<D>().await;
        let e = a
            .fill(&b, &chunk(a, b_addr, "short"), OBJECT)
            .await
            .expect_err("short");
        assert!(!e.is_not_coordinator(), "{e}");
        settle::<D>().await;
        // A body dropped after its first frame: cancelled on both sides (the listener finds
        // out when it writes the second third).
        let mut body = a
            .fill_body(&b, &chunk(a, b_addr, "slow"), OBJECT)
            .await
            .expect("slow fill");
        let first = body.next().await.expect("a frame").expect("verified");
        assert!(!first.is_empty());
        drop(body);
        settle::<D>().await;
        // A fill future dropped before its head: cancelled on both sides.
        let k = chunk(a, b_addr, "late");
        let gave_up = timeout::<D, _>(PAUSE / 3, a.fill_body(&b, &k, OBJECT)).await;
        assert!(gave_up.is_none(), "the late fill answered early");
        settle::<D>().await;
        // 503 while a slow fill holds B's only slot; the slow one then completes.
        let k = chunk(a, b_addr, "slow");
        let mut held = a.fill_body(&b, &k, OBJECT).await.expect("slow fill");
        let mut bytes = held
            .next()
            .await
            .expect("a frame")
            .expect("verified")
            .to_vec();
        let e = a
            .fill(&b, &chunk(a, b_addr, "ok"), OBJECT)
            .await
            .expect_err("503");
        assert_eq!(e.status(), Some(503), "{e}");
        while let Some(frame) = held.next().await {
            bytes.extend_from_slice(&frame.expect("verified"));
        }
        assert_chunk(&bytes, &k, OBJECT);
        // A dead peer: a connect failure, then a fast failure in its backoff window.
        let dead = TcpListener::bind((LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let k = chunk(a, b_addr, "ok");
        let e = a.fill(&peer_at(dead), &k, OBJECT).await.expect_err("dead");
        assert_eq!(e.kind(), "connect", "{e}");
        let e = a.fill(&peer_at(dead), &k, OBJECT).await.expect_err("dead");
        assert!(
            matches!(e, FillError::PeerUnavailable { .. }),
            "{e}: second fill to a dead peer"
        );
        settle::<D>().await;
        let s = scrape();
        stop_all(replicas).await;
        s
    }

    /// Checks the counts of [`scenario`]'s scrape.
    pub(super) fn check(s: &Scrape, driver: &str) {
        let v = |name: &str, labels: &[(&str, &str)]| s.value(name, labels);
        let completed = |role: &str, outcome: &str| {
            v(
                names::FILLS_COMPLETED,
                &[("role", role), ("outcome", outcome)],
            )
        };
        for role in ["client", "listener"] {
            let started = v(names::FILLS_STARTED, &[("role", role)]);
            let ended =
                completed(role, "ok") + completed(role, "failed") + completed(role, "cancelled");
            assert_eq!(
                started, ended,
                "{driver} {role}: started = ok + failed + cancelled"
            );
            assert_eq!(
                v(names::FILL_FAILURES, &[("role", role)]),
                completed(role, "failed"),
                "{driver} {role}: failures by kind sum to the failed outcome"
            );
            assert_eq!(v(names::FILLS_IN_FLIGHT, &[("role", role)]), 0.0);
            // Every ended fill is in the duration histogram, by outcome.
            for outcome in ["ok", "failed", "cancelled"] {
                assert_eq!(
                    v(
                        &format!("{}_count", names::FILL_DURATION),
                        &[("role", role), ("outcome", outcome)]
                    ),
                    completed(role, outcome),
                    "{driver} {role} {outcome}: durations"
                );
            }
        }
        // Client: 3 ok (two fills and the slow one that held the slot), 6 failed (409, 502,
        // short, 503, connect, peer_unavailable), 2 cancelled (a body, a future).
        assert_eq!(completed("client", "ok"), 3.0, "{driver}");
        assert_eq!(completed("client", "failed"), 6.0, "{driver}");
        assert_eq!(completed("client", "cancelled"), 2.0, "{driver}");
        let client_kind = |kind| v(names::FILL_FAILURES, &[("role", "client"), ("kind", kind)]);
        assert_eq!(client_kind("not_coordinator"), 1.0, "{driver}");
        assert_eq!(client_kind("status"), 2.0, "{driver}: 502 and 503");
        assert_eq!(client_kind("connect"), 1.0, "{driver}");
        assert_eq!(client_kind("peer_unavailable"), 1.0, "{driver}");
        // Listener: 3 ok, 2 failed (filler error, short stream), 2 cancelled.
        assert_eq!(completed("listener", "ok"), 3.0, "{driver}");
        assert_eq!(completed("listener", "failed"), 2.0, "{driver}");
        assert_eq!(completed("listener", "cancelled"), 2.0, "{driver}");
        let listener_kinds = s.label_values(names::FILL_FAILURES, "kind");
        for kind in ["filler_error", "aborted_short"] {
            assert!(
                listener_kinds.contains(kind),
                "{driver}: {kind} in {listener_kinds:?}"
            );
            assert_eq!(
                v(
                    names::FILL_FAILURES,
                    &[("role", "listener"), ("kind", kind)]
                ),
                1.0,
                "{driver} {kind}"
            );
        }
        // Refusals by reason.
        let refused = |reason| v(names::REFUSALS, &[("reason", reason)]);
        assert_eq!(refused("not_coordinator"), 1.0, "{driver}");
        assert_eq!(refused("not_found"), 1.0, "{driver}");
        assert_eq!(refused("bad_request"), 1.0, "{driver}");
        assert_eq!(refused("bad_head"), 1.0, "{driver}");
        assert_eq!(refused("overloaded"), 1.0, "{driver}");
        assert_eq!(v(names::REFUSALS, &[]), 5.0, "{driver}: no other refusal");
        // Bytes: the client's three whole chunks plus the first half of the dropped body (and
        // whatever arrived of the short one); the listener sent at least the three chunks.
        let client_bytes = v(names::FILL_BYTES, &[("role", "client")]);
        assert!(
            client_bytes >= 3.5 * CHUNK as f64,
            "{driver}: {client_bytes}"
        );
        let listener_bytes = v(names::FILL_BYTES, &[("role", "listener")]);
        assert!(
            listener_bytes >= 3.0 * CHUNK as f64,
            "{driver}: {listener_bytes}"
        );
        // Membership and peer health.
        assert_eq!(v(names::PEERS, &[]), 2.0, "{driver}");
        assert!(v(names::SNAPSHOT_GENERATION, &[]) >= 1.0, "{driver}");
        assert!(v(names::LOOKUPS, &[]) >= 2.0, "{driver}");
        assert_eq!(v(names::LOOKUP_FAILURE_STREAK, &[]), 0.0, "{driver}");
        assert_eq!(
            v(names::PEERS_UNAVAILABLE, &[]),
            1.0,
            "{driver}: the dead peer"
        );
    }
}
