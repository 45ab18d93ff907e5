//! The conformance suite: every case below is written once, generic over
//! [`Driver`], and the `conformance_tests!` macro instantiates it as a `#[test]` for each
//! driver (`tokio_driver::<case>` and `smol_driver::<case>`).
//!
//! Cases:
//! - membership against the test DNS server (DESIGN 3.4): initial snapshot, changes at the next
//!   refresh, NXDOMAIN / SERVFAIL / no reply keeping the stale set for `max_stale_refreshes`
//!   failures then `[self]`, bootstrap failure, invalid configuration;
//! - fills between 3 replicas verified against `SyntheticOrigin::chunk_bytes`, 409 from a
//!   replica that does not coordinate, listener admission byte by byte (DESIGN 3.6), aborted
//!   responses for bad filler streams;
//! - the client against a misbehaving raw server: request wire form, truncated and over-long
//!   bodies, lying lengths, stray bytes after a body, error statuses (DESIGN 3.5, 7);
//! - mutual TLS: members accepted, a client certificate from another CA rejected;
//! - close: idempotent, subscriptions end with `None`, later fills fail with `Closed`.

use orca_cluster_tests::harness::Driver;

/// Instantiates every case for one driver:
/// `conformance_tests!(module, DriverType, known_failures: { attributes })`, where the
/// attributes (e.g. `#[ignore = "why"]`) apply to the strict cases that document a driver bug
/// still open for that driver.
macro_rules! conformance_tests {
    ($module:ident, $driver:ty, known_failures: { $(#[$known:meta])* }) => {
        conformance_tests!(@cases $module, $driver, [
            dns_initial_snapshot,
            dns_ip_family_keeps_one_record_type,
            dns_changes_show_at_the_next_refresh,
            dns_nxdomain_keeps_the_stale_set_then_self,
            dns_servfail_keeps_the_stale_set_then_self,
            dns_no_reply_is_a_timeout_failure,
            dns_bootstrap_failure_publishes_self_as_initial,
            invalid_config_is_an_error,
            three_replicas_fill_each_other,
            a_non_coordinator_answers_409,
            listener_admission_in_order,
            listener_aborts_bad_filler_streams,
            request_wire_form,
            truncated_bodies_are_rejected,
            over_length_bodies_are_rejected,
            trailing_bytes_never_reach_the_next_fill,
            error_statuses_are_bounded_and_not_followed,
            mtls_members_are_accepted,
            mtls_other_ca_is_rejected,
            close_is_idempotent_and_ends_subscriptions,
        ], strict: [
            content_length_body_cut_short_is_truncated,
        ], $(#[$known])*);
    };
    (@cases $module:ident, $driver:ty, [$($case:ident),* $(,)?],
        strict: [$strict:ident $(,)?], $(#[$known:meta])*) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    <$driver as super::Driver>::run(super::cases::$case::<$driver>());
                }
            )*

            #[test]
            $(#[$known])*
            fn $strict() {
                <$driver as super::Driver>::run(super::cases::$strict::<$driver>());
            }
        }
    };
}

conformance_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver, known_failures: {});
conformance_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver, known_failures: {});

mod cases {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use orca_cluster_core::admission::NOT_COORDINATOR_BODY;
    use orca_cluster_core::fill::{DescriptorError, FillCheckError, MAX_ERROR_BODY};
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_core::{ClusterConfig, ConfigError, Snapshot};
    use orca_cluster_driver_common::{FillError, StartError, StaticPeerSource, SyntheticOrigin};
    use orca_cluster_testdns::{Mode, TestDnsServer};
    use orca_cluster_tests::faulty_server::{FaultyServer, Response};
    use orca_cluster_tests::harness::{
        BadFiller, ClusterHandle, Drained, Driver, Misbehaviour, Replica, Setup, assert_chunk,
        assert_settles, bind_local, client_cluster, drain, eventually, key, key_coordinated_by,
        next_change, off_thread, peer_at, replica, replica_of, start_static, static_config,
        static_replicas, stop_all, timeout,
    };
    use orca_cluster_tests::pki::MtlsFixture;
    use orca_cluster_tests::raw_client;

    // ---------------------------------------------------------------- membership (DNS)

    const NAME: &str = "orca-peers.default.svc.cluster.local";
    const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const REFRESH: Duration = Duration::from_millis(150);
    const LOOKUP: Duration = Duration::from_millis(400);
    const MAX_STALE: u32 = 2;
    /// Generous bound for anything that should happen within a refresh or two.
    const SOON: Duration = Duration::from_secs(5);

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn dns_config(refresh: Duration, lookup: Duration) -> ClusterConfig {
        ClusterConfig {
            service: NAME.into(),
            self_pod_ip: vec![ME],
            membership_refresh: refresh,
            lookup_timeout: lookup,
            max_stale_refreshes: MAX_STALE,
            ..ClusterConfig::default()
        }
    }

    fn ips(snapshot: &Snapshot) -> Vec<IpAddr> {
        snapshot.peers().iter().map(|p| p.ip).collect()
    }

    fn sorted(mut list: Vec<IpAddr>) -> Vec<IpAddr> {
        list.sort();
        list
    }

    async fn start_dns<D: Driver>(dns: &TestDnsServer, config: ClusterConfig) -> D::Cluster {
        D::start(config, Setup::dns(dns.addr()))
            .await
            .unwrap_or_else(|e| panic!("{}: start: {e}", D::NAME))
    }

    /// Rule 2-4: the first answer is the initial snapshot (A and AAAA, sorted, de-duplicated,
    /// self stamped with port 0), available when `start` returns.
    pub(super) async fn dns_initial_snapshot<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        let fd = "fd00::5".parse::<IpAddr>().unwrap();
        dns.set_records(NAME, &[v4(3), fd, ME, v4(2), v4(3)]);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, LOOKUP)).await;
        assert!(
            cluster.has_initial_snapshot(),
            "start returns after the first refresh"
        );
        let snapshot = cluster.peers();
        assert_eq!(
            ips(&snapshot),
            sorted(vec![ME, v4(2), v4(3), fd]),
            "sorted, de-duplicated"
        );
        let selves: Vec<_> = snapshot.peers().iter().filter(|p| p.is_self).collect();
        assert_eq!(selves.len(), 1, "exactly one self");
        assert_eq!((selves[0].ip, selves[0].port), (ME, 0));
        assert_eq!(cluster.stats().lookup_failures, 0);
        // Agreement with the core's rendezvous on the published snapshot.
        let k = key(7, 1 << 20);
        assert_eq!(cluster.coordinator(&k), *snapshot.coordinator(&k));
        assert_eq!(cluster.ranked(&k), snapshot.ranked(&k));
        assert_eq!(cluster.is_coordinator(&k), snapshot.coordinator(&k).is_self);
        cluster.close(SOON).await.unwrap();
    }

    /// `ip_family`: on a dual-stack Service only the chosen record type makes up the peer set.
    pub(super) async fn dns_ip_family_keeps_one_record_type<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        let fd = "fd00::5".parse::<IpAddr>().unwrap();
        dns.set_records(NAME, &[ME, v4(2), fd]);
        let mut config = dns_config(REFRESH, LOOKUP);
        config.ip_family = orca_cluster_core::IpFamily::Ipv4;
        let cluster = start_dns::<D>(&dns, config.clone()).await;
        assert_eq!(ips(&cluster.peers()), vec![ME, v4(2)]);
        cluster.close(SOON).await.unwrap();
        config.ip_family = orca_cluster_core::IpFamily::Ipv6;
        let cluster = start_dns::<D>(&dns, config).await;
        assert_eq!(
            ips(&cluster.peers()),
            sorted(vec![ME, fd]),
            "self added, v4 peers dropped"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// Rule 4: additions and removals show at the next refresh; an unchanged answer does not
    /// advance the generation.
    pub(super) async fn dns_changes_show_at_the_next_refresh<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        dns.set_records(NAME, &[ME, v4(2)]);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, LOOKUP)).await;
        let first = cluster.peers();
        assert_eq!(ips(&first), vec![ME, v4(2)]);
        let mut changes = cluster.subscribe();

        dns.set_records(NAME, &[ME, v4(2), v4(3)]);
        let added = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(ips(&added), vec![ME, v4(2), v4(3)], "addition");
        assert!(added.generation() > first.generation());

        dns.set_records(NAME, &[v4(3), ME]);
        let removed = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(ips(&removed), vec![ME, v4(3)], "removal");

        // Three more refreshes with the same answer: no new generation.
        let lookups = cluster.stats().lookups;
        assert!(eventually::<D>(SOON, || cluster.stats().lookups >= lookups + 3).await);
        assert_eq!(
            cluster.peers().generation(),
            removed.generation(),
            "no change, no generation"
        );
        assert_eq!(cluster.stats().lookup_failures, 0);
        cluster.close(SOON).await.unwrap();
    }

    /// Rule 6: with a discovered set, failures keep it while the streak is at most
    /// `max_stale_refreshes`, the next failure publishes `[self]`, and recovery publishes the
    /// set again.
    async fn stale_then_self<D: Driver>(mode: Mode, lookup: Duration) {
        let dns = TestDnsServer::start().unwrap();
        dns.set_records(NAME, &[ME, v4(2), v4(3)]);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, lookup)).await;
        assert_eq!(cluster.peers().len(), 3);
        let mut changes = cluster.subscribe();
        let base = cluster.stats().lookup_failures;
        assert_eq!(base, 0);

        dns.set_mode(mode);
        let deadline = Instant::now() + SOON;
        let mut highest_stale_streak = 0;
        let fell_at = loop {
            // Snapshot first, count second: a count of at most MAX_STALE read after the
            // snapshot proves the snapshot was taken with a streak of at most MAX_STALE.
            let peers = cluster.peers();
            let failures = cluster.stats().lookup_failures;
            if failures <= u64::from(MAX_STALE) {
                assert_eq!(
                    peers.len(),
                    3,
                    "{mode:?}: stale set kept at streak {failures}"
                );
                highest_stale_streak = highest_stale_streak.max(failures);
            }
            if peers.len() == 1 {
                break failures;
            }
            assert!(
                Instant::now() < deadline,
                "{mode:?}: never fell back to [self]"
            );
            D::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(
            highest_stale_streak,
            u64::from(MAX_STALE),
            "{mode:?}: the stale set was seen at every streak up to the ceiling"
        );
        // The next failure is a refresh interval away, so the count read at once is exact.
        assert_eq!(
            fell_at,
            u64::from(MAX_STALE) + 1,
            "{mode:?}: [self] at streak MAX+1"
        );
        let fallen = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(
            ips(&fallen),
            vec![ME],
            "{mode:?}: the first change is straight to [self]"
        );
        assert!(fallen.peers()[0].is_self);

        dns.set_mode(Mode::Normal);
        let back = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(back.len(), 3, "{mode:?}: recovery");
        cluster.close(SOON).await.unwrap();
    }

    pub(super) async fn dns_nxdomain_keeps_the_stale_set_then_self<D: Driver>() {
        stale_then_self::<D>(Mode::NxDomain, LOOKUP).await;
    }

    pub(super) async fn dns_servfail_keeps_the_stale_set_then_self<D: Driver>() {
        stale_then_self::<D>(Mode::ServFail, LOOKUP).await;
    }

    /// Rules 3, 6, 7: a server that never answers is a failure at the lookup deadline — at
    /// bootstrap (`start` is bounded by the lookup timeout and publishes `[self]`) and later
    /// (the stale set, then `[self]`).
    pub(super) async fn dns_no_reply_is_a_timeout_failure<D: Driver>() {
        let lookup = Duration::from_millis(300);
        let dns = TestDnsServer::start().unwrap();
        dns.set_mode(Mode::NoReply);
        let started = Instant::now();
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, lookup)).await;
        let took = started.elapsed();
        assert!(
            took >= lookup - Duration::from_millis(50),
            "waited for the deadline: {took:?}"
        );
        assert!(
            took < lookup + Duration::from_millis(1500),
            "bounded by the timeout: {took:?}"
        );
        assert!(
            cluster.has_initial_snapshot(),
            "a timed-out bootstrap is the initial snapshot"
        );
        assert_eq!(ips(&cluster.peers()), vec![ME]);
        assert_eq!(
            cluster.stats().lookup_failures,
            1,
            "the timeout counted as a failure"
        );
        cluster.close(SOON).await.unwrap();
        dns.set_mode(Mode::Normal);

        stale_then_self::<D>(Mode::NoReply, lookup).await;
    }

    /// Rule 6: a failed first lookup publishes `[self]` at once and counts as the initial
    /// snapshot; discovery recovers at a later refresh.
    pub(super) async fn dns_bootstrap_failure_publishes_self_as_initial<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        for mode in [Mode::ServFail, Mode::NxDomain] {
            dns.set_mode(mode);
            let started = Instant::now();
            let cluster = start_dns::<D>(&dns, dns_config(REFRESH, LOOKUP)).await;
            assert!(
                started.elapsed() < LOOKUP,
                "{mode:?}: start returns at the failed answer, not the deadline"
            );
            assert!(cluster.has_initial_snapshot(), "{mode:?}");
            assert_eq!(ips(&cluster.peers()), vec![ME], "{mode:?}");
            assert!(cluster.peers().peers()[0].is_self);

            let mut changes = cluster.subscribe();
            dns.set_records(NAME, &[ME, v4(9)]);
            dns.set_mode(Mode::Normal);
            let found = next_change::<D>(&mut changes, SOON).await;
            assert_eq!(ips(&found), vec![ME, v4(9)], "{mode:?}: recovery");
            cluster.close(SOON).await.unwrap();
            dns.remove_name(NAME);
        }
    }

    /// Rule 1: invalid configuration is a typed error, not a panic.
    pub(super) async fn invalid_config_is_an_error<D: Driver>() {
        let nowhere = Setup::static_source(&StaticPeerSource::default());
        let bad = [
            (
                ClusterConfig {
                    service: String::new(),
                    ..static_config()
                },
                ConfigError::EmptyService,
            ),
            (
                ClusterConfig {
                    membership_refresh: Duration::ZERO,
                    ..static_config()
                },
                ConfigError::ZeroRefresh,
            ),
            (
                ClusterConfig {
                    lookup_timeout: Duration::ZERO,
                    ..static_config()
                },
                ConfigError::ZeroLookupTimeout,
            ),
        ];
        for (config, want) in bad {
            let result = D::start(config.clone(), nowhere.clone()).await;
            assert!(
                matches!(&result, Err(StartError::Config(e)) if *e == want),
                "{config:?}: want {want:?}, got {:?}",
                result.map(|_| ())
            );
        }
    }

    // ---------------------------------------------------------------- fills between replicas

    const CHUNK: u64 = 256 * 1024;
    /// How many chunk indices the tests search for a chunk with a given coordinator.
    const INDICES: u64 = 64;
    /// 64 full chunks and a 12 345-byte tail chunk.
    const OBJECT: u64 = CHUNK * INDICES + 12_345;

    /// Three replicas agree on every coordinator and fill from each other, bytes verified.
    pub(super) async fn three_replicas_fill_each_other<D: Driver>() {
        let (replicas, _source) = static_replicas::<D>(3, &static_config(), false).await;

        for i in 0..=INDICES {
            let k = key(i, CHUNK);
            let coordinator = replicas[0].cluster.coordinator(&k);
            let owners = replicas
                .iter()
                .filter(|r| r.cluster.is_coordinator(&k))
                .count();
            assert_eq!(owners, 1, "chunk {i}: exactly one replica coordinates");
            for r in &replicas {
                let c = r.cluster.coordinator(&k);
                assert_eq!(
                    (c.ip, c.port),
                    (coordinator.ip, coordinator.port),
                    "chunk {i}"
                );
            }
        }

        let mut fills = 0;
        for (i, r) in replicas.iter().enumerate() {
            for j in (0..replicas.len()).filter(|&j| j != i) {
                let k = key_coordinated_by(&replicas, i, j, CHUNK, INDICES)
                    .unwrap_or_else(|| panic!("no chunk coordinated by replica {j}"));
                let peer = r.cluster.coordinator(&k);
                assert!(!peer.is_self);
                let bytes = r.cluster.fill(&peer, &k, OBJECT).await.unwrap();
                assert_chunk(&bytes, &k, OBJECT);
                fills += 1;
            }
        }

        // The short tail chunk, from a replica that does not coordinate it.
        let tail = key(INDICES, CHUNK);
        let owner = replica_of(&replicas, &replicas[0].cluster.coordinator(&tail));
        let asker = &replicas[(owner + 1) % 3];
        let bytes = asker
            .cluster
            .fill(&asker.cluster.coordinator(&tail), &tail, OBJECT)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 12_345);
        assert_chunk(&bytes, &tail, OBJECT);
        fills += 1;

        // Concurrent fills from one replica to its coordinators.
        let keys: Vec<_> = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .filter(|k| !replicas[0].cluster.is_coordinator(k))
            .take(8)
            .collect();
        let peers: Vec<_> = keys
            .iter()
            .map(|k| replicas[0].cluster.coordinator(k))
            .collect();
        let results = futures_util::future::join_all(
            keys.iter()
                .zip(&peers)
                .map(|(k, p)| replicas[0].cluster.fill(p, k, OBJECT)),
        )
        .await;
        for (k, result) in keys.iter().zip(results) {
            assert_chunk(&result.unwrap(), k, OBJECT);
            fills += 1;
        }

        // Filling from self is refused before any IO.
        let mine = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .find(|k| replicas[1].cluster.is_coordinator(k))
            .unwrap();
        let err = replicas[1]
            .cluster
            .fill(&replicas[1].cluster.coordinator(&mine), &mine, OBJECT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FillError::Descriptor(DescriptorError::TargetIsSelf)),
            "{err:?}"
        );

        let ok: u64 = replicas.iter().map(|r| r.cluster.stats().fills_ok).sum();
        assert_eq!(ok, fills, "every fill was verified");
        assert_settles::<D, _>("every fill was served completely", fills, || {
            replicas
                .iter()
                .map(|r| r.cluster.stats().served_ok)
                .sum::<u64>()
        })
        .await;
        stop_all(replicas).await;
    }

    /// A replica asked for a chunk it does not coordinate (in its own snapshot) answers 409,
    /// which the client reports as `NotCoordinator`.
    pub(super) async fn a_non_coordinator_answers_409<D: Driver>() {
        let (replicas, _source) = static_replicas::<D>(3, &static_config(), false).await;
        let k = key_coordinated_by(&replicas, 0, 2, CHUNK, INDICES).expect("a chunk of replica 2");
        let wrong = peer_at(replicas[1].addr);
        let err = replicas[0]
            .cluster
            .fill(&wrong, &k, OBJECT)
            .await
            .unwrap_err();
        assert!(err.is_not_coordinator(), "{err:?}");
        assert_eq!(err.kind(), "not_coordinator");
        let stats = replicas[0].cluster.stats();
        assert_eq!((stats.fills_not_coordinator, stats.fills_failed), (1, 1));
        assert_settles::<D, _>("409 counted as a failure", (0, 1), || {
            let s = replicas[1].cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;

        // The same connection pool still works against the right replica.
        let right = replicas[0].cluster.coordinator(&k);
        assert_chunk(
            &replicas[0].cluster.fill(&right, &k, OBJECT).await.unwrap(),
            &k,
            OBJECT,
        );
        stop_all(replicas).await;
    }

    /// DESIGN 3.6 through a raw HTTP/1.1 client: 404, 405, 400 (header), 400 (query, naming the
    /// parameter), 409, then 200 with the right headers and bytes; the checks apply in order.
    pub(super) async fn listener_admission_in_order<D: Driver>() {
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let phantom = SocketAddr::new(addr.ip(), 1);
        let source = StaticPeerSource::new([addr, phantom]);
        let setup = Setup::static_source(&source).with_self_port(addr.port());
        let r = replica::<D>(listener, static_config(), setup, SyntheticOrigin).await;
        let mine = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .find(|k| r.cluster.is_coordinator(k))
            .unwrap();
        let theirs = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .find(|k| !r.cluster.is_coordinator(k))
            .unwrap();
        let query = encode_query(&mine, OBJECT);
        let bad_query = query.replace(&format!("chunk_size={CHUNK}"), "chunk_size=0");
        assert_ne!(bad_query, query);
        let past_end = encode_query(&key(INDICES + 1, CHUNK), OBJECT);
        const H: &str = "x-orca-internal: 1\r\n";
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (
                raw_client::request("GET", &format!("/other?{query}"), H),
                404,
                "not found",
            ),
            (
                raw_client::request("POST", &format!("/other?{query}"), ""),
                404,
                "not found",
            ),
            (
                raw_client::request("POST", &format!("/internal/fill?{query}"), ""),
                405,
                "GET",
            ),
            (
                raw_client::request("GET", &format!("/internal/fill?{query}"), ""),
                400,
                "x-orca-internal",
            ),
            (
                raw_client::request("GET", &format!("/internal/fill?{bad_query}"), ""),
                400,
                "x-orca-internal",
            ),
            (
                raw_client::request("GET", &format!("/internal/fill?{bad_query}"), H),
                400,
                "chunk_size",
            ),
            (
                raw_client::request("GET", &format!("/internal/fill?{past_end}"), H),
                400,
                "index",
            ),
            (
                raw_client::fill_request(&theirs, OBJECT),
                409,
                NOT_COORDINATOR_BODY,
            ),
        ];
        for (request, status, mention) in cases {
            let text = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap()
                .to_owned();
            let response = off_thread(move || raw_client::exchange(addr, &request))
                .await
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(response.status, status, "{text}: {}", response.text());
            assert!(
                response.text().contains(mention),
                "{text}: {}",
                response.text()
            );
            if status == 405 {
                assert_eq!(response.header("allow"), Some("GET"), "{text}");
            }
        }

        let request = raw_client::fill_request(&mine, OBJECT);
        let response = off_thread(move || raw_client::exchange(addr, &request))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-length"),
            Some(CHUNK.to_string().as_str())
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream")
        );
        assert_chunk(&response.body, &mine, OBJECT);
        assert_settles::<D, _>("listener counters", (1, CHUNK, 8), || {
            let s = r.cluster.stats();
            (s.served_ok, s.bytes_served, s.served_failed)
        })
        .await;
        r.stop().await;
    }

    /// A filler stream that ends early or runs long makes the listener abort the response (the
    /// client never gets a complete, wrong body); a failing filler is a 502.
    pub(super) async fn listener_aborts_bad_filler_streams<D: Driver>() {
        let mut listeners = bind_local::<D>(4).await;
        let source = StaticPeerSource::new(listeners.iter().map(D::listener_addr));
        let setup = Setup::static_source(&source);
        let config = static_config();
        let bad = listeners.split_off(1);
        let mut replicas: Vec<Replica> =
            start_static::<D>(listeners, &config, &setup, SyntheticOrigin).await;
        for (listener, how) in
            bad.into_iter()
                .zip([Misbehaviour::Short, Misbehaviour::Long, Misbehaviour::Fail])
        {
            let port = D::listener_addr(&listener).port();
            replicas.push(
                replica::<D>(
                    listener,
                    config.clone(),
                    setup.clone().with_self_port(port),
                    BadFiller(how),
                )
                .await,
            );
        }
        for (owner, how) in [
            (1, Misbehaviour::Short),
            (2, Misbehaviour::Long),
            (3, Misbehaviour::Fail),
        ] {
            let k = key_coordinated_by(&replicas, 0, owner, CHUNK, INDICES).expect("a chunk");
            let peer = replicas[0].cluster.coordinator(&k);
            let outcome = match replicas[0].cluster.fill_body(&peer, &k, OBJECT).await {
                Ok(body) => Ok(drain(body).await),
                Err(e) => Err(e),
            };
            match (how, outcome) {
                (
                    Misbehaviour::Fail,
                    Err(FillError::Check(FillCheckError::Status { code, body })),
                ) => {
                    assert_eq!(code, 502);
                    assert_eq!(body, b"fill failed");
                }
                // DIVERGENCE: the same aborted response gives different errors. smol (HTTP/1.1):
                // `Ok(Drained { error: Some(Check(Truncated { got, expected: CHUNK })) })` with
                // `got` < CHUNK, for both Short and Long; tokio (h2c): `Err(Http("<addr>: http2
                // error: stream error received: unexpected internal error encountered"))`, the
                // stream reset before the body. Left tolerant until the drivers share one client.
                (
                    Misbehaviour::Short | Misbehaviour::Long,
                    Ok(Drained {
                        bytes,
                        error: Some(e),
                    }),
                ) => {
                    assert!(
                        matches!(
                            e,
                            FillError::Http(_) | FillError::Check(FillCheckError::Truncated { .. })
                        ),
                        "{how:?}: {e:?}"
                    );
                    assert!(
                        bytes.len() < CHUNK as usize,
                        "{how:?}: never a complete body"
                    );
                    let good = SyntheticOrigin::chunk_bytes(&k, OBJECT);
                    assert!(bytes == good[..bytes.len()], "{how:?}: the prefix is right");
                }
                // HTTP/2: the stream reset can overtake the response head.
                (Misbehaviour::Short | Misbehaviour::Long, Err(FillError::Http(_))) => {}
                (how, other) => panic!("{how:?}: {other:?}"),
            }
            assert_settles::<D, _>(
                &format!("{how:?}: aborted, counted as failed"),
                (0, 1),
                || {
                    let s = replicas[owner].cluster.stats();
                    (s.served_ok, s.served_failed)
                },
            )
            .await;
        }
        stop_all(replicas).await;
    }

    // ---------------------------------------------------------------- a misbehaving peer

    const RAW_CHUNK: u64 = 64 * 1024;
    const RAW_OBJECT: u64 = RAW_CHUNK * 4;

    fn raw_key() -> orca_cluster_core::ChunkKey {
        key(1, RAW_CHUNK)
    }

    fn raw_bytes() -> Vec<u8> {
        SyntheticOrigin::chunk_bytes(&raw_key(), RAW_OBJECT)
    }

    /// Fills `raw_key()` from `server`: the head's verdict, or the drained body.
    async fn fill_from(
        cluster: &impl ClusterHandle,
        server: &FaultyServer,
    ) -> Result<Drained, FillError> {
        let body = cluster
            .fill_body(&server.peer(), &raw_key(), RAW_OBJECT)
            .await?;
        Ok(drain(body).await)
    }

    /// The request is `GET /internal/fill?<the Go wire form>` with `x-orca-internal: 1` and the
    /// peer as `host`, over HTTP/1.1; a correct keep-alive answer is accepted and reused.
    pub(super) async fn request_wire_form<D: Driver>() {
        let server = FaultyServer::serving(Response::ok(&raw_bytes()));
        // A member, so that its keep-alive connection is never evicted as a departed peer's.
        let cluster = client_cluster::<D>(static_config(), true, &[server.addr()]).await;
        for _ in 0..2 {
            let bytes = cluster
                .fill(&server.peer(), &raw_key(), RAW_OBJECT)
                .await
                .unwrap();
            assert_chunk(&bytes, &raw_key(), RAW_OBJECT);
        }
        let heads = server.heads();
        assert_eq!(heads.len(), 2);
        let head = heads[0].to_ascii_lowercase();
        let line = format!(
            "get /internal/fill?{} http/1.1\r\n",
            encode_query(&raw_key(), RAW_OBJECT)
        );
        assert!(head.starts_with(&line.to_ascii_lowercase()), "{}", heads[0]);
        assert!(head.contains("\r\nx-orca-internal: 1\r\n"), "{}", heads[0]);
        assert!(
            head.contains(&format!("\r\nhost: {}\r\n", server.addr())),
            "{}",
            heads[0]
        );
        assert_eq!(server.accepted(), 1, "the keep-alive connection was reused");
        cluster.close(SOON).await.unwrap();
    }

    /// Bodies that end early are `Truncated` (or a transport error when the connection dies
    /// inside a `Content-Length` body), never a success.
    pub(super) async fn truncated_bodies_are_rejected<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let chunk = raw_bytes();
        let short = &chunk[..chunk.len() - 10];
        for response in [Response::chunked(short), Response::close_delimited(short)] {
            let server = FaultyServer::serving(response);
            let drained = fill_from(&cluster, &server).await.unwrap();
            assert!(
                matches!(
                    drained.error,
                    Some(FillError::Check(FillCheckError::Truncated { got, expected }))
                        if got == RAW_CHUNK - 10 && expected == RAW_CHUNK
                ),
                "{:?}",
                drained.error
            );
            assert!(drained.bytes == short, "the verified prefix");
        }
        // Content-Length right, connection closed half-way.
        let half = chunk.len() / 2;
        let server = FaultyServer::serving(Response::content_length(RAW_CHUNK, &chunk[..half]));
        let drained = fill_from(&cluster, &server).await.unwrap();
        assert!(
            matches!(
                drained.error,
                Some(FillError::Check(FillCheckError::Truncated { got, expected }))
                    if got == half as u64 && expected == RAW_CHUNK
            ),
            "{:?}",
            drained.error
        );
        assert!(drained.bytes == chunk[..half], "the verified prefix");
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (0, 3));
        cluster.close(SOON).await.unwrap();
    }

    /// DESIGN 3.5: a 2xx body that ends early is `Truncated { got, expected }` — also when it
    /// was framed by `Content-Length` and the peer closed the connection (a clean FIN) after
    /// half of it. The same peer fault must give the same error kind (`FillError::kind`, used
    /// for metrics) on both drivers.
    pub(super) async fn content_length_body_cut_short_is_truncated<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let chunk = raw_bytes();
        let half = chunk.len() / 2;
        let server = FaultyServer::serving(Response::content_length(RAW_CHUNK, &chunk[..half]));
        let drained = fill_from(&cluster, &server).await.unwrap();
        assert!(
            drained.bytes == chunk[..drained.bytes.len()],
            "a correct prefix"
        );
        let error = drained.error.expect("the fill fails");
        assert_eq!(error.kind(), "truncated", "{error:?}");
        assert!(
            matches!(
                error,
                FillError::Check(FillCheckError::Truncated { got, expected })
                    if got == half as u64 && expected == RAW_CHUNK
            ),
            "{error:?}"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// Bodies that run long are `TooLong` (the extra bytes are never handed out); a
    /// `Content-Length` other than the chunk's is rejected before the body, in both directions.
    pub(super) async fn over_length_bodies_are_rejected<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let chunk = raw_bytes();
        let mut long = chunk.clone();
        long.extend_from_slice(&[0u8; 10]);
        for response in [Response::chunked(&long), Response::close_delimited(&long)] {
            let server = FaultyServer::serving(response);
            let drained = fill_from(&cluster, &server).await.unwrap();
            assert!(
                matches!(
                    drained.error,
                    Some(FillError::Check(FillCheckError::TooLong { expected })) if expected == RAW_CHUNK
                ),
                "{:?}",
                drained.error
            );
            assert!(
                drained.bytes.len() <= chunk.len(),
                "never more than the chunk"
            );
            assert!(drained.bytes == chunk[..drained.bytes.len()]);
        }
        for declared in [RAW_CHUNK + 1, RAW_CHUNK - 1] {
            let server = FaultyServer::serving(Response::content_length(
                declared,
                &long[..declared as usize],
            ));
            let err = fill_from(&cluster, &server).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    FillError::Check(FillCheckError::LengthMismatch { declared: d, expected })
                        if d == declared && expected == RAW_CHUNK
                ),
                "{declared}: {err:?}"
            );
        }
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (0, 4));
        cluster.close(SOON).await.unwrap();
    }

    /// 409 is `NotCoordinator`; another status is `Status` with at most 1 KiB of its body;
    /// redirects are not followed.
    pub(super) async fn error_statuses_are_bounded_and_not_followed<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let server = FaultyServer::serving(Response::status(409, NOT_COORDINATOR_BODY.as_bytes()));
        assert!(
            fill_from(&cluster, &server)
                .await
                .unwrap_err()
                .is_not_coordinator()
        );

        let huge = vec![b'x'; 256 * 1024];
        let server = FaultyServer::serving(Response::status(500, &huge));
        match fill_from(&cluster, &server).await.unwrap_err() {
            FillError::Check(FillCheckError::Status { code, body }) => {
                assert_eq!(code, 500);
                assert!(
                    body == huge[..MAX_ERROR_BODY],
                    "the first {MAX_ERROR_BODY} bytes of the body, got {}",
                    body.len()
                );
            }
            other => panic!("{other:?}"),
        }

        let target = FaultyServer::serving(Response::ok(&raw_bytes()));
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{}/internal/fill\r\ncontent-length: 0\r\n\r\n",
            target.addr()
        );
        let server = FaultyServer::serving(Response {
            bytes: redirect.into_bytes(),
            after: orca_cluster_tests::faulty_server::After::KeepAlive,
        });
        match fill_from(&cluster, &server).await.unwrap_err() {
            FillError::Check(FillCheckError::Status { code, .. }) => assert_eq!(code, 302),
            other => panic!("{other:?}"),
        }
        assert_eq!(target.accepted(), 0, "the redirect was not followed");
        cluster.close(SOON).await.unwrap();
    }

    /// A peer that sends more bytes than its `Content-Length` on a keep-alive connection (here:
    /// a whole second response nobody asked for): the chunk is right, and the connection is
    /// not reused in a way that hands the stray bytes to the next fill.
    pub(super) async fn trailing_bytes_never_reach_the_next_fill<D: Driver>() {
        let mut response = Response::ok(&raw_bytes());
        response
            .bytes
            .extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc");
        let server = FaultyServer::serving(response);
        let cluster = client_cluster::<D>(static_config(), true, &[server.addr()]).await;
        for i in 0..4 {
            let bytes = cluster
                .fill(&server.peer(), &raw_key(), RAW_OBJECT)
                .await
                .unwrap_or_else(|e| panic!("fill {i}: {e:?}"));
            assert_chunk(&bytes, &raw_key(), RAW_OBJECT);
            if i % 2 == 1 {
                D::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(cluster.stats().fills_ok, 4);
        cluster.close(SOON).await.unwrap();
    }

    // ---------------------------------------------------------------- mutual TLS

    fn tls_config(tls: &orca_cluster_core::TlsSettings) -> ClusterConfig {
        ClusterConfig {
            internal_tls: tls.clone(),
            ..static_config()
        }
    }

    /// Two members with certificates of the cluster CA fill from each other over mTLS.
    pub(super) async fn mtls_members_are_accepted<D: Driver>() {
        let pki = MtlsFixture::new(D::NAME);
        let listeners = bind_local::<D>(2).await;
        let source = StaticPeerSource::new(listeners.iter().map(D::listener_addr));
        let setup = Setup::static_source(&source);
        let mut replicas = Vec::new();
        for (listener, tls) in listeners.into_iter().zip([&pki.member, &pki.member2]) {
            let port = D::listener_addr(&listener).port();
            replicas.push(
                replica::<D>(
                    listener,
                    tls_config(tls),
                    setup.clone().with_self_port(port),
                    SyntheticOrigin,
                )
                .await,
            );
        }
        for (asker, owner) in [(0, 1), (1, 0)] {
            let k = key_coordinated_by(&replicas, asker, owner, CHUNK, INDICES).expect("a chunk");
            let peer = replicas[asker].cluster.coordinator(&k);
            let bytes = replicas[asker]
                .cluster
                .fill(&peer, &k, OBJECT)
                .await
                .unwrap();
            assert_chunk(&bytes, &k, OBJECT);
        }
        assert_settles::<D, _>("both fills served", 2, || {
            replicas[0].cluster.stats().served_ok + replicas[1].cluster.stats().served_ok
        })
        .await;
        stop_all(replicas).await;
    }

    /// The listener rejects a client whose certificate comes from another CA (even though the
    /// client trusts the listener), a client of another CA altogether, and a plain client.
    pub(super) async fn mtls_other_ca_is_rejected<D: Driver>() {
        let pki = MtlsFixture::new(D::NAME);
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let source = StaticPeerSource::new([addr]);
        let setup = Setup::static_source(&source).with_self_port(addr.port());
        let server = replica::<D>(listener, tls_config(&pki.member), setup, SyntheticOrigin).await;
        let k = key(0, CHUNK);
        let peer = peer_at(addr);

        let impostor = client_cluster::<D>(tls_config(&pki.impostor), false, &[]).await;
        let err = impostor.fill(&peer, &k, OBJECT).await.unwrap_err();
        // DIVERGENCE: the listener rejects the client certificate with the TLS alert
        // `UnknownCA`, which arrives after the client's side of the TLS 1.3 handshake is done.
        // smol always reports `Http("request: received fatal alert: UnknownCA")`; tokio reports
        // `Http("<addr>: ...")` with, from run to run, "connection error: received fatal alert:
        // UnknownCA", "operation was canceled: connection was not ready", "operation was
        // canceled: connection closed" or "connection error: stream closed because of a broken
        // pipe" (the alert is usually lost). Left tolerant until the drivers share one client.
        assert!(
            matches!(err, FillError::Tls(_) | FillError::Http(_)),
            "impostor: {err:?}"
        );

        let stranger = client_cluster::<D>(tls_config(&pki.stranger), false, &[]).await;
        let err = stranger.fill(&peer, &k, OBJECT).await.unwrap_err();
        // The client rejects the listener's certificate (not from its CA) during the handshake.
        assert!(
            matches!(
                &err,
                FillError::Tls(e) if e.kind() == std::io::ErrorKind::InvalidData
                    && e.to_string().contains("invalid peer certificate: UnknownIssuer")
            ),
            "stranger: {err:?}"
        );

        let plain = client_cluster::<D>(static_config(), true, &[]).await;
        let err = timeout::<D, _>(SOON, plain.fill(&peer, &k, OBJECT))
            .await
            .expect("a plain client fails fast")
            .unwrap_err();
        // The listener answers the plain request with TLS bytes: not an HTTP response (hyper:
        // "invalid HTTP version parsed"; the core's codec: "version: malformed HTTP/1.1 head").
        assert!(
            matches!(&err, FillError::Http(m) if m.contains("version")),
            "plain: {err:?}"
        );

        let stats = server.cluster.stats();
        assert_eq!(
            (stats.served_ok, stats.served_failed),
            (0, 0),
            "nothing was served"
        );

        let member = client_cluster::<D>(tls_config(&pki.member2), false, &[]).await;
        assert_chunk(&member.fill(&peer, &k, OBJECT).await.unwrap(), &k, OBJECT);
        assert_settles::<D, _>("the member's fill served", 1, || {
            server.cluster.stats().served_ok
        })
        .await;

        for c in [impostor, stranger, plain, member] {
            c.close(SOON).await.unwrap();
        }
        server.stop().await;
    }

    // ---------------------------------------------------------------- close

    /// `close` is idempotent; waiting and later subscriptions end with `None`; the last
    /// snapshot stays readable; fills fail with `Closed`.
    pub(super) async fn close_is_idempotent_and_ends_subscriptions<D: Driver>() {
        let (replicas, _source) = static_replicas::<D>(2, &static_config(), false).await;
        let r = &replicas[0];
        let mut before = r.cluster.subscribe();
        let mut waiting = r.cluster.subscribe();
        let (waited, closed) =
            futures_lite::future::zip(timeout::<D, _>(SOON, waiting.changed()), async {
                D::sleep(Duration::from_millis(50)).await;
                r.cluster.close(SOON).await
            })
            .await;
        closed.expect("close");
        assert!(
            matches!(waited, Some(None)),
            "a waiting subscription ends: {waited:?}"
        );
        r.cluster.close(SOON).await.expect("close again");
        r.cluster
            .close(Duration::ZERO)
            .await
            .expect("close again, no time needed");
        assert!(matches!(
            timeout::<D, _>(SOON, before.changed()).await,
            Some(None)
        ));
        assert!(matches!(
            timeout::<D, _>(SOON, r.cluster.subscribe().changed()).await,
            Some(None)
        ));
        assert_eq!(
            r.cluster.peers().len(),
            2,
            "the last snapshot stays readable"
        );

        let k = key_coordinated_by(&replicas, 0, 1, CHUNK, INDICES).expect("a chunk");
        let err = r
            .cluster
            .fill(&r.cluster.coordinator(&k), &k, OBJECT)
            .await
            .unwrap_err();
        assert!(matches!(err, FillError::Closed), "{err:?}");
        // The other replica is unaffected.
        let k = key_coordinated_by(&replicas, 1, 0, CHUNK, INDICES).expect("a chunk");
        let bytes = replicas[1]
            .cluster
            .fill(&replicas[1].cluster.coordinator(&k), &k, OBJECT)
            .await;
        assert_chunk(&bytes.unwrap(), &k, OBJECT);
        stop_all(replicas).await;
    }
}
