//! The conformance suite: every case below is written once, generic over
//! [`Driver`], and the `conformance_tests!` macro instantiates it as a `#[test]` for each
//! driver (`tokio_driver::<case>` and `smol_driver::<case>`).
//!
//! Cases:
//! - membership against the test DNS server (the core's membership rules): initial snapshot, changes at the next
//!   refresh, NXDOMAIN / SERVFAIL / no reply keeping the stale set for `max_stale_refreshes`
//!   failures then `[self]`, bootstrap failure, invalid configuration;
//! - fills between 3 replicas verified against `SyntheticOrigin::chunk_bytes`, 409 from a
//!   replica that does not coordinate, listener admission byte by byte (`core::admission`), aborted
//!   responses for bad filler streams;
//! - the client against a misbehaving raw server: request wire form, truncated and over-long
//!   bodies, lying lengths, stray bytes after a body, error statuses (`core::fill`);
//! - mutual TLS: members accepted, a client certificate from another CA rejected;
//! - close: idempotent, subscriptions end with `None`, later fills fail with `Closed`.
//!
//! Cases that were once written per driver follow (they reach each driver's own `Cluster`,
//! `Options`, `FillClient` and `ListenerHandle` through the local `Native` trait):
//! - lifecycle: `internal_tls` errors at start, `close` and dropping the last handle stop the
//!   refresh, static list changes reach subscribers, a standalone `FillClient`;
//! - DNS: REFUSED and empty answers, each failure kind as the source reports it, TCP fallback
//!   for 1000 pods, no answer cache, dual-stack self, a nameserver on ::1;
//! - the client: refused and timed-out connects, a chunk past the end, resets, stalls against
//!   the caller's deadline, `Content-Length` 0 or conflicting, error bodies small (connection
//!   kept) and huge (not read), malformed response heads; the HTTP/1.1 pool (reuse, limits,
//!   idle timeout, its counters) and `FillBody` as a stream and a reader;
//! - the listener: 503 when full, aborted responses, request-head limits (431), a NUL in a
//!   field, requests without `Host`, what admission answers say, graceful and forced shutdown,
//!   IPv6;
//! - TLS: `server_name` verification, the alerts the listener sends (and the client reports),
//!   a TLS client against a plain listener, handshake timeouts, certificate rotation.
//!
//! Some of them fail on one driver: each names the behaviour both must have (see the
//! assertions), and stays strict until the driver is fixed.

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
            invalid_tls_settings_fail_start,
            close_stops_the_refresh,
            dropping_the_last_handle_ends_subscriptions,
            static_source_changes_reach_subscribers,
            a_standalone_fill_client,
            dns_refused_keeps_the_stale_set_then_self,
            dns_empty_answer_keeps_the_stale_set_then_self,
            dns_failure_kinds_reach_the_core_as_themselves,
            dns_a_large_answer_falls_back_to_tcp,
            dns_answers_are_not_cached,
            dns_dual_stack_self,
            dns_over_an_ipv6_nameserver,
            connection_refused_is_a_connect_error,
            connect_timeout_is_bounded,
            a_chunk_past_the_end_is_refused_before_dialing,
            a_reset_mid_body_fails_the_fill,
            a_zero_content_length_is_a_length_mismatch,
            conflicting_content_lengths_are_a_malformed_head,
            a_small_error_body_keeps_the_connection,
            a_huge_error_body_is_not_read_to_its_end,
            malformed_response_heads_are_http_errors,
            a_stalled_peer_waits_for_the_callers_deadline,
            a_full_listener_answers_503_then_recovers,
            aborted_responses_are_truncated_and_not_reused,
            oversized_request_heads_get_431,
            a_smaller_max_header_bytes_is_enforced,
            a_nul_in_a_request_field_is_400,
            an_http11_request_without_host_is_400,
            admission_replies_name_their_cause,
            graceful_shutdown_finishes_in_flight_fills,
            the_shutdown_deadline_drops_stalled_fills,
            fills_over_ipv6_loopback,
            http1_connections_are_pooled_and_reused,
            idle_connections_close_after_the_idle_timeout,
            the_idle_timeout_empties_the_pool_counters,
            a_fill_body_streams_and_reads,
            mtls_server_name_is_verified,
            mtls_the_listener_names_why_it_refuses_a_client,
            a_rejected_client_reports_the_listeners_alert,
            a_tls_client_against_a_plain_listener_fails,
            tls_handshakes_time_out_on_both_sides,
            mtls_rotated_files_apply_to_new_connections,
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

    /// The admission rules (`core::admission`) through a raw HTTP/1.1 client: 404, 405, 400 (header), 400 (query, naming the
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

    /// The body check (`core::fill`): a 2xx body that ends early is `Truncated { got, expected }` — also when it
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
        // The listener rejects the client certificate with the TLS alert `UnknownCA`, which
        // arrives after the client's side of the TLS 1.3 handshake is done: the fill fails at
        // the first request. What exactly the client reports (the alert, or a reset that
        // discarded it) is pinned by `a_rejected_client_reports_the_listeners_alert`.
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

    // ================================================================ cases moved from the
    // drivers' own test suites. They need the driver's own `Cluster`, `Options`, `FillClient`
    // and `ListenerHandle` (any settings, a custom transport), reached through [`Native`].

    use std::io::{Read, Write};
    use std::net::{Ipv6Addr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use bytes::Bytes;
    use orca_cluster_core::admission::OVERLOADED_BODY;
    use orca_cluster_core::{IpFamily, LookupAnswer, LookupFailure, PeerAddr, TlsSettings};
    use orca_cluster_driver_common::{
        ChunkStream, ClientSettings, ConnectFuture, FillClient, FillRequest, Filler, FillerError,
        ListenerHandle, ListenerSettings, Options, TlsError, Transport,
    };
    use orca_cluster_test_support::{LEAF_NAMES, Pki, TempDir, rustls_error, skip_outside_ci};
    use orca_cluster_tests::harness::{LOCALHOST, SmolDriver, TokioDriver};
    use rustls::AlertDescription;
    use rustls_pki_types::ServerName;

    /// The shared cluster type of a driver.
    type NativeCluster<D> = orca_cluster_driver_common::Cluster<<D as Native>::Rt>;

    /// A harness driver together with its runtime type in the shared pipeline (`Tokio`, `Smol`),
    /// so that a case can use `Cluster`, `Options`, `FillClient` and `ListenerHandle` of that
    /// driver directly.
    pub(super) trait Native: Driver {
        /// The driver's runtime (`orca_cluster_tokio::Tokio`, `orca_cluster_smol::Smol`).
        type Rt: orca_cluster_driver_common::Driver;

        /// `listener.serve(cluster, filler, settings)`.
        fn serve_native(
            listener: Self::Listener,
            cluster: &NativeCluster<Self>,
            filler: impl Filler,
            settings: ListenerSettings,
        ) -> ListenerHandle<Self::Rt>;
    }

    impl Native for TokioDriver {
        type Rt = orca_cluster_tokio::Tokio;

        fn serve_native(
            listener: orca_cluster_tokio::FillListener,
            cluster: &orca_cluster_tokio::Cluster,
            filler: impl Filler,
            settings: ListenerSettings,
        ) -> orca_cluster_tokio::ListenerHandle {
            listener.serve(cluster, filler, settings)
        }
    }

    impl Native for SmolDriver {
        type Rt = orca_cluster_smol::Smol;

        fn serve_native(
            listener: orca_cluster_smol::FillListener,
            cluster: &orca_cluster_smol::Cluster,
            filler: impl Filler,
            settings: ListenerSettings,
        ) -> orca_cluster_smol::ListenerHandle {
            listener.serve(cluster, filler, settings)
        }
    }

    /// 127.0.0.1:1: a member that is listed but never dialed.
    const PHANTOM: SocketAddr = SocketAddr::new(LOCALHOST, 1);

    /// One serving replica of driver `D`.
    struct Alone<D: Native> {
        cluster: NativeCluster<D>,
        listener: ListenerHandle<D::Rt>,
        addr: SocketAddr,
    }

    impl<D: Native> Alone<D> {
        /// A replica on `bind` (port 0: any) with `config`, serving `filler` with `settings`;
        /// its static list is itself and `others`.
        async fn start_on(
            bind: SocketAddr,
            config: ClusterConfig,
            others: &[SocketAddr],
            filler: impl Filler,
            settings: ListenerSettings,
        ) -> std::io::Result<Alone<D>> {
            let listener = D::bind(bind).await?;
            let addr = D::listener_addr(&listener);
            let source = StaticPeerSource::new(std::iter::once(addr).chain(others.iter().copied()));
            let options = Options::<D::Rt>::default()
                .with_peer_source(source)
                .with_self_port(addr.port());
            let cluster = NativeCluster::<D>::start(config, options)
                .await
                .unwrap_or_else(|e| panic!("{}: start: {e}", D::NAME));
            let listener = D::serve_native(listener, &cluster, filler, settings);
            Ok(Alone {
                cluster,
                listener,
                addr,
            })
        }

        /// A replica on 127.0.0.1 alone in its snapshot (it coordinates every chunk).
        async fn start(config: ClusterConfig, filler: impl Filler) -> Alone<D> {
            Self::start_with(config, filler, ListenerSettings::default()).await
        }

        /// [`Alone::start`] with listener `settings`.
        async fn start_with(
            config: ClusterConfig,
            filler: impl Filler,
            settings: ListenerSettings,
        ) -> Alone<D> {
            Self::start_on(SocketAddr::new(LOCALHOST, 0), config, &[], filler, settings)
                .await
                .unwrap_or_else(|e| panic!("{}: bind: {e}", D::NAME))
        }

        fn peer(&self) -> orca_cluster_core::Peer {
            peer_at(self.addr)
        }

        async fn stop(self) {
            self.listener.shutdown(SOON).await;
            self.cluster.close(SOON).await.unwrap();
        }
    }

    /// A fill client of driver `D` (no cluster) with `config` and `options`.
    fn fill_client<D: Native>(
        config: &ClusterConfig,
        options: Options<D::Rt>,
    ) -> FillClient<D::Rt> {
        FillClient::new(config, &options).unwrap_or_else(|e| panic!("{}: client: {e}", D::NAME))
    }

    /// Fills `key` (of an `OBJECT`-byte object) from `peer` and collects the verified chunk.
    async fn fetch<D: Native>(
        client: &FillClient<D::Rt>,
        peer: &orca_cluster_core::Peer,
        key: &orca_cluster_core::ChunkKey,
    ) -> Result<Bytes, FillError> {
        client.fill(peer, key, OBJECT).await?.collect_bytes().await
    }

    /// A transport whose connects never complete.
    struct Blackhole;

    impl<Io: Send + 'static> Transport<Io> for Blackhole {
        fn connect(&self, _addr: SocketAddr) -> ConnectFuture<Io> {
            Box::pin(std::future::pending())
        }
    }

    /// A blocking peer on 127.0.0.1 for what [`FaultyServer`] cannot script (stalls, resets,
    /// counting what it manages to write): `script(connection index, stream)` runs on a thread
    /// per accepted connection. Streams have 5 s read and write timeouts, so every script ends;
    /// dropping the server stops the accept loop.
    struct ScriptServer {
        addr: SocketAddr,
        accepted: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        acceptor: Option<std::thread::JoinHandle<()>>,
    }

    impl ScriptServer {
        fn start(script: impl Fn(u64, TcpStream) + Send + Sync + 'static) -> ScriptServer {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let script = Arc::new(script);
            let (count, stopped) = (accepted.clone(), stop.clone());
            let acceptor = std::thread::spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let index = count.fetch_add(1, Ordering::SeqCst);
                            let script = script.clone();
                            std::thread::spawn(move || {
                                let limit = Some(Duration::from_secs(5));
                                if stream.set_nonblocking(false).is_ok()
                                    && stream.set_read_timeout(limit).is_ok()
                                    && stream.set_write_timeout(limit).is_ok()
                                {
                                    script(index, stream);
                                }
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
            ScriptServer {
                addr,
                accepted,
                stop,
                acceptor: Some(acceptor),
            }
        }

        fn peer(&self) -> orca_cluster_core::Peer {
            peer_at(self.addr)
        }

        fn accepted(&self) -> u64 {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    impl Drop for ScriptServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }

    /// Reads one request head; `None` at end of stream, on an error or past 64 KiB.
    fn read_request_head(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// Reads until the client closes the connection (`true`) or an error or timeout (`false`).
    fn wait_for_close(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Fills `raw_key()` from `peer`: the head's verdict, or the drained body.
    async fn fill_peer(
        cluster: &impl ClusterHandle,
        peer: &orca_cluster_core::Peer,
    ) -> Result<Drained, FillError> {
        let body = cluster.fill_body(peer, &raw_key(), RAW_OBJECT).await?;
        Ok(drain(body).await)
    }

    // ---------------------------------------------------------------- lifecycle

    /// `internal_tls` that cannot be loaded fails `start` with an error naming the setting:
    /// enabled without files, files that do not exist, a `server_name` that is not a DNS name.
    pub(super) async fn invalid_tls_settings_fail_start<D: Native>() {
        let nowhere = Setup::static_source(&StaticPeerSource::default());
        let start = |tls: TlsSettings| {
            D::start(
                ClusterConfig {
                    internal_tls: tls,
                    ..static_config()
                },
                nowhere.clone(),
            )
        };
        let enabled = TlsSettings {
            enabled: true,
            ..TlsSettings::default()
        };
        let result = start(enabled).await.map(|_| ());
        assert!(
            matches!(
                result,
                Err(StartError::Config(ConfigError::MissingTlsFile("cert_file")))
            ),
            "enabled without files: {result:?}"
        );

        let missing = TlsSettings {
            enabled: true,
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ca_file: "/nonexistent/ca.pem".into(),
            server_name: String::new(),
            client_name: String::new(),
        };
        let result = start(missing).await.map(|_| ());
        assert!(
            matches!(
                &result,
                Err(StartError::Tls(TlsError::File { field: "cert_file", path, .. }))
                    if path.as_path() == std::path::Path::new("/nonexistent/cert.pem")
            ),
            "missing files: {result:?}"
        );

        let pki = MtlsFixture::new(D::NAME);
        let bad_name = TlsSettings {
            server_name: "not a name!".into(),
            ..pki.member.clone()
        };
        let result = start(bad_name).await.map(|_| ());
        assert!(
            matches!(&result, Err(StartError::Tls(TlsError::ServerName(n))) if n == "not a name!"),
            "bad server_name: {result:?}"
        );
    }

    /// `close` returns at once and stops the refresh: a change of the static list after it is
    /// never looked up, the last snapshot stays.
    pub(super) async fn close_stops_the_refresh<D: Native>() {
        let other = SocketAddr::new(LOCALHOST, 2);
        let source = StaticPeerSource::new([PHANTOM, other]);
        let setup = Setup::static_source(&source).with_self_port(PHANTOM.port());
        let cluster = D::start(static_config(), setup).await.unwrap();
        assert!(
            eventually::<D>(SOON, || cluster.stats().lookups >= 3).await,
            "the refresh runs"
        );
        let started = Instant::now();
        cluster.close(SOON).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "close took {:?}",
            started.elapsed()
        );
        let lookups = cluster.stats().lookups;
        source.set([PHANTOM]);
        D::sleep(static_config().membership_refresh * 4).await;
        assert_eq!(cluster.stats().lookups, lookups, "no lookup after close");
        assert_eq!(cluster.peers().len(), 2, "the last snapshot stays");
    }

    /// Dropping the last handle stops the membership task (subscriptions end with `None`); a
    /// clone keeps it running.
    pub(super) async fn dropping_the_last_handle_ends_subscriptions<D: Native>() {
        let source = StaticPeerSource::new([PHANTOM]);
        let setup = Setup::static_source(&source).with_self_port(PHANTOM.port());
        let cluster = D::start(static_config(), setup).await.unwrap();
        let clone = cluster.clone();
        let mut changes = cluster.subscribe();
        drop(cluster);
        assert!(
            timeout::<D, _>(Duration::from_millis(300), changes.changed())
                .await
                .is_none(),
            "a clone keeps the cluster running: no change, no end"
        );
        drop(clone);
        let ended = timeout::<D, _>(SOON, changes.changed())
            .await
            .expect("the subscription ends when the last handle is dropped");
        assert!(ended.is_none(), "{ended:?}");
    }

    /// A change of the static list reaches subscribers at the next refresh and counts as one
    /// snapshot change; an empty list is `[self]`.
    pub(super) async fn static_source_changes_reach_subscribers<D: Native>() {
        let other = SocketAddr::new(LOCALHOST, 2);
        let source = StaticPeerSource::new([PHANTOM]);
        let setup = Setup::static_source(&source).with_self_port(PHANTOM.port());
        let cluster = D::start(static_config(), setup).await.unwrap();
        assert_eq!(cluster.peers().len(), 1);
        let before = cluster.stats().snapshot_changes;
        let mut changes = cluster.subscribe();
        source.set([PHANTOM, other]);
        let grown = next_change::<D>(&mut changes, SOON).await;
        let entries: Vec<_> = grown
            .peers()
            .iter()
            .map(|p| (p.ip, p.port, p.is_self))
            .collect();
        assert_eq!(entries, [(LOCALHOST, 1, true), (LOCALHOST, 2, false)]);
        assert_eq!(cluster.stats().snapshot_changes, before + 1);
        source.set([]);
        let alone = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(alone.len(), 1, "an empty list is [self]");
        assert!(alone.peers()[0].is_self);
        assert_eq!(cluster.stats().snapshot_changes, before + 2);
        cluster.close(SOON).await.unwrap();
    }

    /// A `FillClient` alone needs no service and no self IP: it fills, dials peers of port 0 at
    /// `internal_listen`'s port, and after `close` refuses fills and drops its connections.
    pub(super) async fn a_standalone_fill_client<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let client = fill_client::<D>(&ClusterConfig::default(), Options::default());
        let k = key(3, CHUNK);
        assert_chunk(
            &fetch::<D>(&client, &server.peer(), &k).await.unwrap(),
            &k,
            OBJECT,
        );
        assert_eq!(client.stats().fills_ok, 1);
        assert_eq!(client.connected_peers(), vec![server.addr]);

        let by_listen_port = fill_client::<D>(
            &ClusterConfig {
                internal_listen: server.addr,
                ..ClusterConfig::default()
            },
            Options::default(),
        );
        let port_zero = orca_cluster_core::Peer {
            port: 0,
            ..server.peer()
        };
        let bytes = fetch::<D>(&by_listen_port, &port_zero, &k).await.unwrap();
        assert_chunk(&bytes, &k, OBJECT);
        assert_settles::<D, _>("both fills served", 2, || server.cluster.stats().served_ok).await;

        client.close();
        let err = client.fill(&server.peer(), &k, OBJECT).await.unwrap_err();
        assert!(matches!(err, FillError::Closed), "{err:?}");
        assert_settles::<D, _>("close drops the connections", Vec::new(), || {
            client.connected_peers()
        })
        .await;
        by_listen_port.close();
        server.stop().await;
    }

    // ---------------------------------------------------------------- membership (DNS), more

    /// Rule 6 for a REFUSED answer.
    pub(super) async fn dns_refused_keeps_the_stale_set_then_self<D: Driver>() {
        stale_then_self::<D>(Mode::Refused, LOOKUP).await;
    }

    /// Rule 6 for an answer without records (a failure, not an empty peer set).
    pub(super) async fn dns_empty_answer_keeps_the_stale_set_then_self<D: Driver>() {
        stale_then_self::<D>(Mode::Empty, LOOKUP).await;
    }

    /// The DNS peer source reports every failure as its own kind, within the lookup timeout.
    pub(super) async fn dns_failure_kinds_reach_the_core_as_themselves<D: Native>() {
        let dns = TestDnsServer::start().unwrap();
        dns.set_records(NAME, &[v4(1)]);
        let source = Options::<D::Rt>::default()
            .with_nameserver(dns.addr())
            .peer_source(&dns_config(REFRESH, LOOKUP))
            .unwrap();
        assert_eq!(
            source.lookup(NAME).await,
            LookupAnswer::Records(vec![PeerAddr::from_ip(v4(1))])
        );
        assert_eq!(
            source.lookup("unknown.example").await,
            LookupAnswer::Failed(LookupFailure::NxDomain),
            "an unknown name"
        );
        for (mode, expected) in [
            (Mode::NxDomain, LookupFailure::NxDomain),
            (Mode::ServFail, LookupFailure::ServFail),
            (Mode::Refused, LookupFailure::Refused),
            (Mode::Empty, LookupFailure::NoRecords),
            (Mode::NoReply, LookupFailure::Timeout),
            (Mode::Delay(Duration::from_secs(2)), LookupFailure::Timeout),
        ] {
            dns.set_mode(mode);
            let started = Instant::now();
            assert_eq!(
                source.lookup(NAME).await,
                LookupAnswer::Failed(expected),
                "{mode:?}"
            );
            assert!(
                started.elapsed() < LOOKUP * 3,
                "{mode:?}: answered within the lookup timeout, took {:?}",
                started.elapsed()
            );
        }
        dns.set_mode(Mode::Normal);
        assert!(matches!(
            source.lookup(NAME).await,
            LookupAnswer::Records(_)
        ));
    }

    /// An answer too large for UDP (1000 pods) is fetched completely over TCP.
    pub(super) async fn dns_a_large_answer_falls_back_to_tcp<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        let pods: Vec<IpAddr> = (0..1000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)))
            .collect();
        dns.set_records(NAME, &pods);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, Duration::from_secs(2))).await;
        assert_eq!(cluster.peers().len(), 1001, "1000 pods and self");
        assert!(
            dns.tcp_query_count() > 0,
            "the truncated UDP answer was retried over TCP"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// No answer cache: every refresh asks the server, and a change shows at the next refresh
    /// despite a TTL of one hour.
    pub(super) async fn dns_answers_are_not_cached<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        dns.set_ttl(3600);
        dns.set_records(NAME, &[ME, v4(2)]);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, LOOKUP)).await;
        let queries = dns.query_count();
        assert!(
            eventually::<D>(SOON, || dns.query_count() >= queries + 3).await,
            "every refresh asks the server"
        );
        let mut changes = cluster.subscribe();
        dns.set_records(NAME, &[ME, v4(7)]);
        let next = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(ips(&next), vec![ME, v4(7)]);
        cluster.close(SOON).await.unwrap();
    }

    /// A dual-stack replica (two self IPs): self is stamped on whichever of its records the
    /// answer holds, on both with `IpFamily::Any`; a family without records in the answer is a
    /// failure, so bootstrap publishes `[self]`.
    pub(super) async fn dns_dual_stack_self<D: Driver>() {
        let dns = TestDnsServer::start().unwrap();
        let me6: IpAddr = "fd00::1".parse().unwrap();
        let other6: IpAddr = "fd00::2".parse().unwrap();
        let selves = |snapshot: &Snapshot| -> Vec<IpAddr> {
            snapshot
                .peers()
                .iter()
                .filter(|p| p.is_self)
                .map(|p| p.ip)
                .collect()
        };
        let dual = |family| ClusterConfig {
            self_pod_ip: vec![ME, me6],
            ip_family: family,
            ..dns_config(REFRESH, LOOKUP)
        };

        dns.set_records(NAME, &[me6, other6, v4(2)]);
        let cluster = start_dns::<D>(&dns, dual(IpFamily::Any)).await;
        let snapshot = cluster.peers();
        assert_eq!(ips(&snapshot), vec![v4(2), me6, other6]);
        assert_eq!(selves(&snapshot), vec![me6], "self is its IPv6 record");
        cluster.close(SOON).await.unwrap();

        dns.set_records(NAME, &[ME, v4(2), me6, other6]);
        let cluster = start_dns::<D>(&dns, dual(IpFamily::Any)).await;
        assert_eq!(
            selves(&cluster.peers()),
            vec![ME, me6],
            "both records are self"
        );
        cluster.close(SOON).await.unwrap();

        dns.set_records(NAME, &[me6, other6]);
        let cluster = start_dns::<D>(&dns, dual(IpFamily::Ipv4)).await;
        assert!(cluster.has_initial_snapshot());
        assert_eq!(ips(&cluster.peers()), vec![ME], "no A record: [self]");
        assert_eq!(cluster.stats().lookup_failures, 1);
        cluster.close(SOON).await.unwrap();
    }

    /// A nameserver on ::1 (skipped without IPv6 loopback, except under `CI=true`).
    pub(super) async fn dns_over_an_ipv6_nameserver<D: Driver>() {
        let Ok(dns) = TestDnsServer::start_on(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))) else {
            skip_outside_ci("no IPv6 loopback (::1)");
            return;
        };
        dns.set_records(NAME, &[ME, v4(5)]);
        let cluster = start_dns::<D>(&dns, dns_config(REFRESH, LOOKUP)).await;
        assert_eq!(ips(&cluster.peers()), vec![ME, v4(5)]);
        cluster.close(SOON).await.unwrap();
    }

    // ---------------------------------------------------------------- a misbehaving peer, more

    /// A refused connection is `Connect` (`ConnectionRefused`), counted as a failed fill.
    pub(super) async fn connection_refused_is_a_connect_error<D: Driver>() {
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let err = cluster
            .fill(&peer_at(addr), &raw_key(), RAW_OBJECT)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FillError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        assert_eq!(err.kind(), "connect");
        let stats = cluster.stats();
        assert_eq!((stats.fills_started, stats.fills_failed), (1, 1));
        cluster.close(SOON).await.unwrap();
    }

    /// A connect that never completes is `ConnectTimeout` after `connect_timeout`.
    pub(super) async fn connect_timeout_is_bounded<D: Native>() {
        let settings = ClientSettings {
            connect_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        };
        let options = Options::<D::Rt>::default()
            .with_transport(Blackhole)
            .with_client_settings(settings);
        let client = fill_client::<D>(&static_config(), options);
        let started = Instant::now();
        let err = client
            .fill(
                &peer_at(SocketAddr::new(LOCALHOST, 9)),
                &raw_key(),
                RAW_OBJECT,
            )
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, FillError::ConnectTimeout), "{err:?}");
        assert_eq!(err.kind(), "connect_timeout");
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    /// A chunk past the end of the object is refused before any connection is attempted.
    pub(super) async fn a_chunk_past_the_end_is_refused_before_dialing<D: Native>() {
        let options = Options::<D::Rt>::default().with_transport(Blackhole);
        let client = fill_client::<D>(&static_config(), options);
        let past = key(9, RAW_CHUNK);
        let err = timeout::<D, _>(
            SOON,
            client.fill(&peer_at(SocketAddr::new(LOCALHOST, 9)), &past, RAW_OBJECT),
        )
        .await
        .expect("refused at once, no dial")
        .unwrap_err();
        assert!(
            matches!(
                err,
                FillError::Descriptor(DescriptorError::EmptyChunk { index: 9, object_size })
                    if object_size == RAW_OBJECT
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), "descriptor");
    }

    /// A connection reset in the middle of a `Content-Length` body fails the fill (never a
    /// success), after at most a correct prefix.
    pub(super) async fn a_reset_mid_body_fails_the_fill<D: Driver>() {
        let response = Response::ok(&raw_bytes()).bytes;
        let server = ScriptServer::start(move |_, mut stream| {
            // The request is never read: closing with unread input sends a reset.
            let _ = stream.write_all(&response[..response.len() / 2]);
            std::thread::sleep(Duration::from_millis(100));
        });
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let error = match fill_peer(&cluster, &server.peer()).await {
            Ok(drained) => {
                let chunk = raw_bytes();
                assert!(
                    drained.bytes == chunk[..drained.bytes.len()],
                    "a correct prefix"
                );
                drained.error.expect("the fill fails")
            }
            Err(e) => e,
        };
        assert!(
            matches!(
                error,
                FillError::Http(_) | FillError::Check(FillCheckError::Truncated { .. })
            ),
            "{error:?}"
        );
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (0, 1));
        cluster.close(SOON).await.unwrap();
    }

    /// `Content-Length: 0` is a length mismatch, rejected before the body.
    pub(super) async fn a_zero_content_length_is_a_length_mismatch<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let zero = FaultyServer::serving(Response {
            bytes: b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
            after: orca_cluster_tests::faulty_server::After::KeepAlive,
        });
        let err = fill_from(&cluster, &zero).await.unwrap_err();
        assert!(
            matches!(
                err,
                FillError::Check(FillCheckError::LengthMismatch { declared: 0, expected })
                    if expected == RAW_CHUNK
            ),
            "{err:?}"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// Two `Content-Length` lines that disagree are a malformed head naming `content-length`
    /// (the core's framing rules, whatever parsed the head), rejected before the body.
    pub(super) async fn conflicting_content_lengths_are_a_malformed_head<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let mut conflicting =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {RAW_CHUNK}\r\ncontent-length: 5\r\n\r\n")
                .into_bytes();
        conflicting.extend_from_slice(&raw_bytes());
        let server = FaultyServer::serving(Response {
            bytes: conflicting,
            after: orca_cluster_tests::faulty_server::After::Close,
        });
        let err = fill_from(&cluster, &server).await.unwrap_err();
        assert!(
            matches!(
                err,
                FillError::Check(FillCheckError::MalformedHead {
                    field: "content-length",
                    ..
                })
            ),
            "{err:?}"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// A small error body is reported, read to its end, and its connection serves the next
    /// fill.
    pub(super) async fn a_small_error_body_keeps_the_connection<D: Driver>() {
        let server = FaultyServer::serving(Response::status(503, b"overloaded"));
        let cluster = client_cluster::<D>(static_config(), true, &[server.addr()]).await;
        for _ in 0..3 {
            let err = fill_from(&cluster, &server).await.unwrap_err();
            assert!(
                matches!(&err, FillError::Check(FillCheckError::Status { code: 503, body }) if body == b"overloaded"),
                "{err:?}"
            );
        }
        assert_eq!(server.accepted(), 1, "one connection for the three answers");
        assert_eq!(cluster.stats().fills_failed, 3);
        cluster.close(SOON).await.unwrap();
    }

    /// Of a huge error body the client reads what it reports (1 KiB) and then stops reading:
    /// the peer cannot push the rest.
    pub(super) async fn a_huge_error_body_is_not_read_to_its_end<D: Driver>() {
        const HUGE: u64 = 1 << 30;
        let written = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let (count, done) = (written.clone(), finished.clone());
        let server = ScriptServer::start(move |_, mut stream| {
            if read_request_head(&mut stream).is_some() {
                let head =
                    format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: {HUGE}\r\n\r\n");
                let block = vec![b'e'; 64 * 1024];
                if stream.write_all(head.as_bytes()).is_ok() {
                    while count.load(Ordering::SeqCst) < HUGE && stream.write_all(&block).is_ok() {
                        count.fetch_add(block.len() as u64, Ordering::SeqCst);
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let err = cluster
            .fill(&server.peer(), &raw_key(), RAW_OBJECT)
            .await
            .unwrap_err();
        match &err {
            FillError::Check(FillCheckError::Status { code: 500, body }) => {
                assert_eq!(body.len(), MAX_ERROR_BODY);
                assert!(body.iter().all(|&b| b == b'e'));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            eventually::<D>(SOON, || finished.load(Ordering::SeqCst)).await,
            "the peer's writes fail once the client is gone"
        );
        let sent = written.load(Ordering::SeqCst);
        assert!(
            sent < 64 << 20,
            "the client stopped reading: the peer wrote {sent} of {HUGE} bytes"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// Response heads that are not HTTP/1.1 (garbage, another protocol), that never end, or
    /// that carry 1000 fields are transport errors; an unknown status with a non-ASCII field
    /// value is judged by its status.
    pub(super) async fn malformed_response_heads_are_http_errors<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let close = |bytes: Vec<u8>| Response {
            bytes,
            after: orca_cluster_tests::faulty_server::After::Close,
        };
        let mut endless = b"HTTP/1.1 200 OK\r\nx-filler: ".to_vec();
        endless.resize(10 << 20, b'a');
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..1000 {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(format!("content-length: {RAW_CHUNK}\r\n\r\n").as_bytes());
        many.extend_from_slice(&raw_bytes());
        for (what, bytes) in [
            ("spdy", b"SPDY/9 what\r\n\r\n".to_vec()),
            ("endless head", endless),
            ("1000 fields", many),
        ] {
            let server = FaultyServer::serving(close(bytes));
            let result = timeout::<D, _>(SOON, fill_from(&cluster, &server))
                .await
                .unwrap_or_else(|| panic!("{what}: no verdict within {SOON:?}"));
            assert!(
                matches!(result, Err(FillError::Http(_))),
                "{what}: {result:?}"
            );
        }
        let odd = FaultyServer::serving(Response::status(599, b"no"));
        let err = fill_from(&cluster, &odd).await.unwrap_err();
        assert!(
            matches!(&err, FillError::Check(FillCheckError::Status { code: 599, body }) if body == b"no"),
            "{err:?}"
        );
        let accented = "HTTP/1.1 599 Odd\r\nx-name: caf\u{e9}\r\ncontent-length: 2\r\n\r\nno"
            .as_bytes()
            .to_vec();
        let server = FaultyServer::serving(close(accented));
        let err = fill_from(&cluster, &server).await.unwrap_err();
        assert!(
            matches!(
                err,
                FillError::Check(FillCheckError::Status { code: 599, .. })
            ),
            "non-ASCII field value: {err:?}"
        );
        cluster.close(SOON).await.unwrap();
    }

    /// A peer that stalls (before the head, or in the body) holds the fill until the caller's
    /// deadline; the fill dropped there closes its connection.
    pub(super) async fn a_stalled_peer_waits_for_the_callers_deadline<D: Driver>() {
        let closed = Arc::new(AtomicUsize::new(0));
        let seen = closed.clone();
        let server = ScriptServer::start(move |index, mut stream| {
            if read_request_head(&mut stream).is_none() {
                return;
            }
            if index == 1 {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {RAW_CHUNK}\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&raw_bytes()[..1000]);
            }
            if wait_for_close(&mut stream) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        let cluster = client_cluster::<D>(static_config(), true, &[server.addr]).await;
        let deadline = Duration::from_millis(300);

        let started = Instant::now();
        let outcome = timeout::<D, _>(deadline, fill_peer(&cluster, &server.peer())).await;
        assert!(outcome.is_none(), "stalled before the head: {outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_settles::<D, _>("the dropped fill closed its connection", 1, || {
            closed.load(Ordering::SeqCst)
        })
        .await;

        let outcome = timeout::<D, _>(deadline, fill_peer(&cluster, &server.peer())).await;
        assert!(outcome.is_none(), "stalled in the body: {outcome:?}");
        assert_settles::<D, _>("the dropped fill closed its connection", 2, || {
            closed.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(server.accepted(), 2);
        cluster.close(SOON).await.unwrap();
    }

    // ---------------------------------------------------------------- the listener, more

    /// A filler whose fills wait for a permit from [`Gate::open`] before streaming the chunk.
    #[derive(Clone)]
    struct Gate {
        calls: Arc<AtomicUsize>,
        permits: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
    }

    impl Gate {
        fn new() -> Gate {
            Gate {
                calls: Arc::new(AtomicUsize::new(0)),
                permits: smol::channel::unbounded(),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        /// Lets `n` waiting (or future) fills go on.
        fn open(&self, n: usize) {
            for _ in 0..n {
                self.permits.0.try_send(()).unwrap();
            }
        }
    }

    impl Filler for Gate {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.permits.1.recv().await?;
            Ok(SyntheticOrigin::stream(&request.key, request.object_size))
        }
    }

    /// A filler yielding the chunk in 10 frames, `pause` before each.
    #[derive(Clone, Copy)]
    struct Slow(Duration);

    impl Filler for Slow {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            let pause = self.0;
            let bytes = SyntheticOrigin::chunk_bytes(&request.key, request.object_size);
            let frames: Vec<Bytes> = bytes
                .chunks(bytes.len().div_ceil(10))
                .map(Bytes::copy_from_slice)
                .collect();
            let stream =
                futures_lite::stream::unfold(frames.into_iter(), move |mut rest| async move {
                    let frame = rest.next()?;
                    smol::Timer::after(pause).await;
                    Some((Ok(frame), rest))
                });
            Ok(Box::pin(stream))
        }
    }

    /// Beyond `max_concurrent` fills at once, admitted requests get 503 with the overload body
    /// at once; when the fills end, their permits serve again.
    pub(super) async fn a_full_listener_answers_503_then_recovers<D: Native>() {
        let gate = Gate::new();
        let settings = ListenerSettings {
            max_concurrent: 2,
            ..ListenerSettings::default()
        };
        let server = Alone::<D>::start_with(static_config(), gate.clone(), settings).await;
        let client = fill_client::<D>(&static_config(), Options::default());
        let k = key(0, CHUNK);
        let peer = server.peer();
        let busy = futures_util::future::join(
            fetch::<D>(&client, &peer, &k),
            fetch::<D>(&client, &peer, &k),
        );
        let ((first, second), ()) = futures_lite::future::zip(busy, async {
            assert!(
                eventually::<D>(SOON, || gate.calls() == 2).await,
                "two fills in the filler"
            );
            let err = client.fill(&peer, &k, OBJECT).await.unwrap_err();
            assert!(
                matches!(&err, FillError::Check(FillCheckError::Status { code: 503, body })
                    if body == OVERLOADED_BODY.as_bytes()),
                "{err:?}"
            );
            assert_eq!(gate.calls(), 2, "the 503 never reached the filler");
            gate.open(2);
        })
        .await;
        assert_chunk(&first.unwrap(), &k, OBJECT);
        assert_chunk(&second.unwrap(), &k, OBJECT);
        gate.open(1);
        assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
        assert_settles::<D, _>("3 served, the 503 failed", (3, 1), || {
            let s = server.cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;
        client.close();
        server.stop().await;
    }

    /// A filler stream that ends early or runs long aborts the response: the client's fill is
    /// `Truncated` after a correct prefix, the aborted connection is not reused, and a raw
    /// client sees fewer bytes than the `Content-Length` announced.
    pub(super) async fn aborted_responses_are_truncated_and_not_reused<D: Native>() {
        for how in [Misbehaviour::Short, Misbehaviour::Long] {
            let server = Alone::<D>::start(static_config(), BadFiller(how)).await;
            let client = fill_client::<D>(&static_config(), Options::default());
            let k = key(0, CHUNK);
            let good = SyntheticOrigin::chunk_bytes(&k, OBJECT);
            for _ in 0..2 {
                let mut body = client.fill(&server.peer(), &k, OBJECT).await.unwrap();
                let mut bytes = Vec::new();
                let error = loop {
                    match futures_lite::StreamExt::next(&mut body).await {
                        Some(Ok(frame)) => bytes.extend_from_slice(&frame),
                        Some(Err(e)) => break e,
                        None => panic!("{how:?}: the body completed"),
                    }
                };
                assert!(
                    matches!(error, FillError::Check(FillCheckError::Truncated { got, expected })
                        if got == bytes.len() as u64 && got < CHUNK && expected == CHUNK),
                    "{how:?}: {error:?}"
                );
                assert!(bytes == good[..bytes.len()], "{how:?}: a correct prefix");
            }
            assert_eq!(
                server.listener.accepted_connections(),
                2,
                "{how:?}: aborted connections are not reused"
            );
            let addr = server.addr;
            let request = raw_client::fill_request(&k, OBJECT);
            let response = off_thread(move || raw_client::exchange(addr, &request))
                .await
                .unwrap();
            assert_eq!(response.status, 200, "{how:?}");
            assert_eq!(
                response.header("content-length"),
                Some(CHUNK.to_string().as_str())
            );
            assert!(
                response.body.len() < CHUNK as usize,
                "{how:?}: the raw client got {} bytes",
                response.body.len()
            );
            assert_settles::<D, _>(&format!("{how:?}: counted as failed"), (0, 3), || {
                let s = server.cluster.stats();
                (s.served_ok, s.served_failed)
            })
            .await;
            client.close();
            server.stop().await;
        }
    }

    /// Sends `request` on a new connection and reads to the close: the response, and how long
    /// the listener took to close the connection.
    async fn exchange_timed(
        addr: SocketAddr,
        request: Vec<u8>,
    ) -> (raw_client::RawResponse, Duration) {
        let (response, took) = off_thread(move || {
            let started = Instant::now();
            let response = raw_client::exchange(addr, &request);
            (response, started.elapsed())
        })
        .await;
        (response.unwrap_or_else(|e| panic!("{e}")), took)
    }

    /// With `settings`, a request head of `over` bytes of padding is answered 431 and its
    /// connection closed; one of `under` bytes is served.
    async fn head_limit<D: Native>(settings: ListenerSettings, over: usize, under: usize) {
        let limit = settings.max_header_bytes;
        let server = Alone::<D>::start_with(static_config(), SyntheticOrigin, settings).await;
        let k = key(0, CHUNK);
        let target = format!("/internal/fill?{}", encode_query(&k, OBJECT));
        // Kept alive (no `connection: close`): only the listener can end the exchange early.
        let padded = format!(
            "GET {target} HTTP/1.1\r\nhost: test\r\nx-orca-internal: 1\r\nx-padding: {}\r\n\r\n",
            "p".repeat(over)
        );
        let (response, took) = exchange_timed(server.addr, padded.into_bytes()).await;
        assert_eq!(response.status, 431, "limit {limit}, head of {over}");
        assert!(
            took < raw_client::EXCHANGE_LIMIT / 2,
            "limit {limit}: the connection was closed after the 431 (took {took:?})"
        );
        let headers = format!("x-orca-internal: 1\r\nx-padding: {}\r\n", "p".repeat(under));
        let request = raw_client::request("GET", &target, &headers);
        let (response, _) = exchange_timed(server.addr, request).await;
        assert_eq!(response.status, 200, "limit {limit}, head of {under}");
        assert_chunk(&response.body, &k, OBJECT);
        server.stop().await;
    }

    /// A request head longer than the default `max_header_bytes` (16 KiB) is answered 431 and
    /// its connection closed; a head within the limit is served.
    pub(super) async fn oversized_request_heads_get_431<D: Native>() {
        head_limit::<D>(ListenerSettings::default(), 20_000, 4_000).await;
    }

    /// A `max_header_bytes` below the default (10 KiB) is the limit: a 12 000-byte head gets
    /// 431.
    pub(super) async fn a_smaller_max_header_bytes_is_enforced<D: Native>() {
        let settings = ListenerSettings {
            max_header_bytes: 10 * 1024,
            ..ListenerSettings::default()
        };
        head_limit::<D>(settings, 12_000, 4_000).await;
    }

    /// A NUL in a request field value is 400 (the rest of the request is a valid fill); the
    /// listener serves on.
    pub(super) async fn a_nul_in_a_request_field_is_400<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let k = key(0, CHUNK);
        let target = format!("/internal/fill?{}", encode_query(&k, OBJECT));
        let request = raw_client::request("GET", &target, "x-orca-internal: 1\r\nx-nul: a\0b\r\n");
        let (response, _) = exchange_timed(server.addr, request).await;
        assert_eq!(response.status, 400, "{}", response.text());
        let (response, _) = exchange_timed(server.addr, raw_client::fill_request(&k, OBJECT)).await;
        assert_eq!(response.status, 200, "still serving");
        assert_chunk(&response.body, &k, OBJECT);
        assert_eq!(server.cluster.stats().served_ok, 1);
        server.stop().await;
    }

    /// An HTTP/1.1 request without `Host` is answered 400 (RFC 9112, section 3.2), even when
    /// it is otherwise a valid fill request.
    pub(super) async fn an_http11_request_without_host_is_400<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let k = key(0, CHUNK);
        let request = format!(
            "GET /internal/fill?{} HTTP/1.1\r\nx-orca-internal: 1\r\nconnection: close\r\n\r\n",
            encode_query(&k, OBJECT)
        );
        let (response, _) = exchange_timed(server.addr, request.into_bytes()).await;
        assert_eq!(
            response.status,
            400,
            "answered with content-length {:?}",
            response.header("content-length")
        );
        assert_eq!(server.cluster.stats().served_ok, 0);
        server.stop().await;
    }

    /// What admission answers, beyond the status: a missing or unparsable parameter is named
    /// in the 400 body; the 409 is JSON.
    pub(super) async fn admission_replies_name_their_cause<D: Native>() {
        let server = Alone::<D>::start_on(
            SocketAddr::new(LOCALHOST, 0),
            static_config(),
            &[PHANTOM],
            SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await
        .unwrap();
        let h = "x-orca-internal: 1\r\n";
        let no_origin = "/internal/fill?bucket=b&chunk_size=10&etag=&index=0&key=k&object_size=100";
        let bad_size =
            "/internal/fill?bucket=b&chunk_size=x&etag=&index=0&key=k&object_size=100&origin_id=o";
        for (target, name) in [(no_origin, "origin_id"), (bad_size, "chunk_size")] {
            let (response, _) =
                exchange_timed(server.addr, raw_client::request("GET", target, h)).await;
            assert_eq!(response.status, 400, "{target}");
            assert!(
                response.text().contains(name),
                "{target}: {}",
                response.text()
            );
        }
        let theirs = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .find(|k| !server.cluster.is_coordinator(k))
            .unwrap();
        let (response, _) =
            exchange_timed(server.addr, raw_client::fill_request(&theirs, OBJECT)).await;
        assert_eq!(response.status, 409);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.text(), NOT_COORDINATOR_BODY);
        server.stop().await;
    }

    /// `shutdown(deadline)` stops accepting, lets a fill in flight finish within the deadline
    /// and closes the idle connections: the client's next fill cannot connect.
    pub(super) async fn graceful_shutdown_finishes_in_flight_fills<D: Native>() {
        let server = Alone::<D>::start(static_config(), Slow(Duration::from_millis(30))).await;
        let client = fill_client::<D>(&static_config(), Options::default());
        let (peer, k) = (server.peer(), key(1, CHUNK));
        assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
        assert_eq!(client.idle_connections(), 1, "an idle pooled connection");
        let Alone {
            cluster,
            listener,
            addr,
        } = server;
        let (in_flight, took) = futures_lite::future::zip(fetch::<D>(&client, &peer, &k), async {
            D::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            listener.shutdown(Duration::from_secs(10)).await;
            started.elapsed()
        })
        .await;
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
        assert_chunk(&in_flight.expect("the fill in flight finished"), &k, OBJECT);
        let refused = off_thread(move || TcpStream::connect(addr).is_err()).await;
        assert!(refused, "no longer accepting");
        let err = client.fill(&peer, &k, OBJECT).await.unwrap_err();
        assert!(
            matches!(&err, FillError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        assert_settles::<D, _>("both fills served", 2, || cluster.stats().served_ok).await;
        client.close();
        cluster.close(SOON).await.unwrap();
    }

    /// At the shutdown deadline, fills still in flight are dropped: the shutdown returns about
    /// then, and the fill fails.
    pub(super) async fn the_shutdown_deadline_drops_stalled_fills<D: Native>() {
        let server = Alone::<D>::start(static_config(), Slow(Duration::from_secs(3))).await;
        let client = fill_client::<D>(&static_config(), Options::default());
        let (peer, k) = (server.peer(), key(1, CHUNK));
        let Alone {
            cluster, listener, ..
        } = server;
        let (in_flight, took) = futures_lite::future::zip(fetch::<D>(&client, &peer, &k), async {
            D::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            listener.shutdown(Duration::from_millis(200)).await;
            started.elapsed()
        })
        .await;
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(1500),
            "shutdown took {took:?}"
        );
        let err = in_flight.expect_err("the stalled fill fails");
        assert!(
            matches!(
                err,
                FillError::Http(_) | FillError::Check(FillCheckError::Truncated { .. })
            ),
            "{err:?}"
        );
        client.close();
        cluster.close(SOON).await.unwrap();
    }

    /// A replica on ::1 serves fills (skipped without IPv6 loopback, except under `CI=true`).
    pub(super) async fn fills_over_ipv6_loopback<D: Native>() {
        let config = ClusterConfig {
            self_pod_ip: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
            ..static_config()
        };
        let bind = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
        let Ok(server) = Alone::<D>::start_on(
            bind,
            config,
            &[],
            SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await
        else {
            skip_outside_ci("no IPv6 loopback (::1)");
            return;
        };
        let client = fill_client::<D>(&static_config(), Options::default());
        let k = key(1, CHUNK);
        assert_chunk(
            &fetch::<D>(&client, &server.peer(), &k).await.unwrap(),
            &k,
            OBJECT,
        );
        assert_eq!(client.connected_peers(), vec![server.addr]);
        client.close();
        server.stop().await;
    }

    // ---------------------------------------------------------------- the client's pool

    /// HTTP/1.1 keep-alive: sequential fills share one connection; fills in flight together
    /// need one each and are pooled afterwards, up to `max_idle_per_peer` (16); a body dropped
    /// half-read closes its connection instead of returning it.
    pub(super) async fn http1_connections_are_pooled_and_reused<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let client = fill_client::<D>(&static_config(), Options::default());
        let (peer, k) = (server.peer(), key(0, CHUNK));
        for _ in 0..5 {
            assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
        }
        assert_eq!(
            server.listener.accepted_connections(),
            1,
            "sequential fills"
        );
        assert_eq!(client.idle_connections(), 1);

        let mut bodies = Vec::new();
        for _ in 0..4 {
            bodies.push(client.fill(&peer, &k, OBJECT).await.unwrap());
        }
        assert_eq!(client.idle_connections(), 0, "all four in use");
        for body in bodies {
            assert_chunk(&body.collect_bytes().await.unwrap(), &k, OBJECT);
        }
        assert_eq!(
            server.listener.accepted_connections(),
            4,
            "one per fill in flight"
        );
        assert_eq!(client.idle_connections(), 4);

        let mut half_read = client.fill(&peer, &k, OBJECT).await.unwrap();
        assert!(
            futures_lite::StreamExt::next(&mut half_read)
                .await
                .is_some()
        );
        drop(half_read);
        assert_eq!(
            client.idle_connections(),
            3,
            "the half-read body's connection is gone"
        );

        let mut bodies = Vec::new();
        for _ in 0..20 {
            bodies.push(client.fill(&peer, &k, OBJECT).await.unwrap());
        }
        for body in bodies {
            body.collect_bytes().await.unwrap();
        }
        assert_eq!(client.idle_connections(), 16, "at most 16 idle per peer");
        client.close();
        server.stop().await;
    }

    /// An idle pooled connection closes after `idle_timeout` (the listener sees it close, the
    /// next fill dials again); a connection whose body is still being read is busy, not idle;
    /// `max_idle_per_peer: 0` pools nothing.
    pub(super) async fn idle_connections_close_after_the_idle_timeout<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let (peer, k) = (server.peer(), key(0, CHUNK));
        let settings = ClientSettings {
            idle_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        };
        let client = fill_client::<D>(
            &static_config(),
            Options::default().with_client_settings(settings),
        );
        let body = client.fill(&peer, &k, OBJECT).await.unwrap();
        D::sleep(Duration::from_millis(400)).await;
        let bytes = body.collect_bytes().await;
        assert_chunk(
            &bytes.expect("a slow reader's connection is kept"),
            &k,
            OBJECT,
        );
        assert_eq!(client.idle_connections(), 1, "pooled once read");
        assert_settles::<D, _>("the idle connection closed", 0, || {
            server.listener.open_connections()
        })
        .await;
        assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
        assert_eq!(
            server.listener.accepted_connections(),
            2,
            "the next fill dialed again"
        );
        client.close();

        let no_pool = ClientSettings {
            max_idle_per_peer: 0,
            ..ClientSettings::default()
        };
        let client = fill_client::<D>(
            &static_config(),
            Options::default().with_client_settings(no_pool),
        );
        for _ in 0..2 {
            assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
            assert_eq!(client.idle_connections(), 0);
        }
        assert_eq!(
            server.listener.accepted_connections(),
            4,
            "no reuse without a pool"
        );
        client.close();
        server.stop().await;
    }

    /// `idle_connections` and `connected_peers` count connections that are open: once the idle
    /// timeout closed the only pooled connection, both are empty.
    pub(super) async fn the_idle_timeout_empties_the_pool_counters<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let (peer, k) = (server.peer(), key(0, CHUNK));
        let settings = ClientSettings {
            idle_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        };
        let client = fill_client::<D>(
            &static_config(),
            Options::default().with_client_settings(settings),
        );
        assert_chunk(&fetch::<D>(&client, &peer, &k).await.unwrap(), &k, OBJECT);
        assert_eq!(
            (client.idle_connections(), client.connected_peers()),
            (1, vec![server.addr])
        );
        assert_settles::<D, _>("the idle connection closed", 0, || {
            server.listener.open_connections()
        })
        .await;
        assert_settles::<D, _>("nothing pooled, no peer held", (0, Vec::new()), || {
            (client.idle_connections(), client.connected_peers())
        })
        .await;
        client.close();
        server.stop().await;
    }

    /// A `FillBody` is a stream of verified frames and an `AsyncRead`; it knows its expected
    /// length (the short tail chunk too); the byte counters of both sides add up.
    pub(super) async fn a_fill_body_streams_and_reads<D: Native>() {
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let client = fill_client::<D>(&static_config(), Options::default());
        let (peer, k) = (server.peer(), key(2, CHUNK));

        let mut body = client.fill(&peer, &k, OBJECT).await.unwrap();
        assert_eq!(body.expected_len(), CHUNK);
        let mut streamed = Vec::new();
        while let Some(frame) = futures_lite::StreamExt::next(&mut body).await {
            streamed.extend_from_slice(&frame.unwrap());
        }
        assert_eq!(body.received(), CHUNK);
        assert!(body.is_done());
        assert_chunk(&streamed, &k, OBJECT);

        let body = client.fill(&peer, &k, OBJECT).await.unwrap();
        let mut read = Vec::new();
        futures_lite::AsyncReadExt::read_to_end(&mut body.into_async_read(), &mut read)
            .await
            .unwrap();
        assert_chunk(&read, &k, OBJECT);

        let tail = key(INDICES, CHUNK);
        let body = client.fill(&peer, &tail, OBJECT).await.unwrap();
        assert_eq!(body.expected_len(), 12_345, "the tail chunk");
        assert_chunk(&body.collect_bytes().await.unwrap(), &tail, OBJECT);

        let total = 2 * CHUNK + 12_345;
        let stats = client.stats();
        assert_eq!(
            (stats.fills_started, stats.fills_ok, stats.bytes_received),
            (3, 3, total)
        );
        assert_settles::<D, _>("the listener's counters", (3, total), || {
            let s = server.cluster.stats();
            (s.served_ok, s.bytes_served)
        })
        .await;
        client.close();
        server.stop().await;
    }

    // ---------------------------------------------------------------- TLS, more

    /// With a configured `server_name` the listener's certificate is verified against that
    /// name: the right name passes; no name (the peer's IP) and a wrong name fail with the
    /// certificate error naming what was expected.
    pub(super) async fn mtls_server_name_is_verified<D: Native>() {
        const SERVICE: &str = "orca-peers.default.svc";
        let dir = TempDir::new(&format!("{}-server-name", D::NAME)).unwrap();
        let mut tls = Pki::new(&[SERVICE])
            .unwrap()
            .write_files(dir.path())
            .unwrap();
        tls.server_name = SERVICE.into();
        let config = |name: &str| ClusterConfig {
            internal_tls: TlsSettings {
                server_name: name.into(),
                ..tls.clone()
            },
            ..static_config()
        };
        let server = Alone::<D>::start(config(SERVICE), SyntheticOrigin).await;
        let k = key(0, CHUNK);
        let client = fill_client::<D>(&config(SERVICE), Options::default());
        assert_chunk(
            &fetch::<D>(&client, &server.peer(), &k).await.unwrap(),
            &k,
            OBJECT,
        );

        // The cause is checked in the error's text: the tokio driver's `FillError::Tls` carries
        // rustls' message, not the `rustls::Error` itself.
        let by_ip = server.addr.ip().to_string();
        for (name, expected) in [
            ("", by_ip.as_str()),
            ("other.default.svc", "other.default.svc"),
        ] {
            let client = fill_client::<D>(&config(name), Options::default());
            let err = fetch::<D>(&client, &server.peer(), &k).await.unwrap_err();
            let cause =
                format!("invalid peer certificate: certificate not valid for name \"{expected}\"");
            assert!(
                matches!(&err, FillError::Tls(e) if e.to_string().contains(&cause)),
                "{name:?}: {err:?}"
            );
            assert_eq!(err.kind(), "tls");
        }
        client.close();
        server.stop().await;
    }

    /// One request from a bare rustls client (blocking, `std::net`): trusts `ca_file`, presents
    /// `identity` (certificate and key files) if any. The bytes the listener sent, and the
    /// error that ended the exchange (`None`: a clean close).
    fn bare_tls_exchange(
        addr: SocketAddr,
        ca_file: &str,
        identity: Option<(&str, &str)>,
        request: &[u8],
    ) -> (Vec<u8>, Option<std::io::Error>) {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
        };
        let name = ServerName::IpAddress(addr.ip().into());
        let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = TcpStream::connect_timeout(&addr, SOON).unwrap();
        tcp.set_read_timeout(Some(SOON)).unwrap();
        let mut tls = rustls::Stream::new(&mut connection, &mut tcp);
        let mut response = Vec::new();
        if let Err(e) = tls.write_all(request) {
            return (response, Some(e));
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => return (response, None),
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(e) => return (response, Some(e)),
            }
        }
    }

    /// The listener answers a client without a certificate with the `certificate_required`
    /// alert and one whose certificate comes from another CA with `unknown_ca`, instead of a
    /// response; a member's certificate gets the response.
    pub(super) async fn mtls_the_listener_names_why_it_refuses_a_client<D: Native>() {
        let pki = MtlsFixture::new(D::NAME);
        let server = Alone::<D>::start(
            ClusterConfig {
                internal_tls: pki.member.clone(),
                ..static_config()
            },
            SyntheticOrigin,
        )
        .await;
        let k = key(0, CHUNK);
        let request = raw_client::fill_request(&k, OBJECT);
        let ca = pki.member.ca_file.clone();
        let member = (pki.member2.cert_file.clone(), pki.member2.key_file.clone());
        let impostor = (
            pki.impostor.cert_file.clone(),
            pki.impostor.key_file.clone(),
        );
        let addr = server.addr;
        let (none, foreign, good) = off_thread(move || {
            let ask = |identity: Option<&(String, String)>| {
                let identity = identity.map(|(c, k)| (c.as_str(), k.as_str()));
                bare_tls_exchange(addr, &ca, identity, &request)
            };
            (ask(None), ask(Some(&impostor)), ask(Some(&member)))
        })
        .await;
        for (what, (bytes, error), alert) in [
            (
                "no certificate",
                none,
                AlertDescription::CertificateRequired,
            ),
            ("another CA", foreign, AlertDescription::UnknownCA),
        ] {
            assert!(bytes.is_empty(), "{what}: no response");
            let err = error.unwrap_or_else(|| panic!("{what}: closed without an alert"));
            assert_eq!(
                rustls_error(&err),
                Some(&rustls::Error::AlertReceived(alert)),
                "{what}: {err:?}"
            );
        }
        let (good, _) = good;
        assert!(
            good.starts_with(b"HTTP/1.1 200 "),
            "a member gets the response: {}",
            String::from_utf8_lossy(&good[..good.len().min(64)])
        );
        assert_settles::<D, _>("only the member was served", (1, 0), || {
            let s = server.cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;
        server.stop().await;
    }

    /// A client whose certificate the listener rejects (another CA) reports the listener's
    /// `unknown_ca` alert: under TLS 1.3 the client's side of the handshake is complete before
    /// the listener checks the certificate, so the alert arrives in place of the response.
    pub(super) async fn a_rejected_client_reports_the_listeners_alert<D: Native>() {
        let pki = MtlsFixture::new(D::NAME);
        let tls = |tls: &TlsSettings| ClusterConfig {
            internal_tls: tls.clone(),
            ..static_config()
        };
        let server = Alone::<D>::start(tls(&pki.member), SyntheticOrigin).await;
        let impostor = fill_client::<D>(&tls(&pki.impostor), Options::default());
        let err = fetch::<D>(&impostor, &server.peer(), &key(0, CHUNK))
            .await
            .unwrap_err();
        // TLS 1.3: the client finishes its handshake before the listener judges its
        // certificate; the listener then sends the alert and closes. The client reports the
        // alert when it reads it first. When its own write hits the closed socket first, the
        // kernel's reset discards the unread alert and only the reset or broken pipe is left:
        // a race of the transport, seen with hyper's HTTP/2 client, which writes its preface
        // while the alert is in flight.
        let text = err.to_string();
        let alert = text.contains("received fatal alert: UnknownCA");
        let lost_to_reset = D::HTTP2
            && matches!(err, FillError::Http(_))
            && (text.contains("broken pipe") || text.contains("reset"));
        assert!(alert || lost_to_reset, "{err:?}");
        assert_eq!(
            server.cluster.stats().served_ok + server.cluster.stats().served_failed,
            0
        );
        impostor.close();
        server.stop().await;
    }

    /// A TLS client against a plain listener fails the handshake (`Tls`), never a fill.
    pub(super) async fn a_tls_client_against_a_plain_listener_fails<D: Native>() {
        let pki = MtlsFixture::new(D::NAME);
        let server = Alone::<D>::start(static_config(), SyntheticOrigin).await;
        let client = fill_client::<D>(
            &ClusterConfig {
                internal_tls: pki.member.clone(),
                ..static_config()
            },
            Options::default(),
        );
        let err = fetch::<D>(&client, &server.peer(), &key(0, CHUNK))
            .await
            .unwrap_err();
        // rustls reads the listener's plain HTTP answer as a corrupt TLS record.
        assert!(
            matches!(&err, FillError::Tls(e) if e.to_string().contains("received corrupt message")),
            "{err:?}"
        );
        assert_eq!(server.cluster.stats().served_ok, 0);
        client.close();
        server.stop().await;
    }

    /// TLS handshakes are bounded on both sides: the listener drops a connection that sends
    /// nothing after `tls_handshake_timeout`; the client gives up on a peer that never answers
    /// its hello with `TlsHandshakeTimeout`.
    pub(super) async fn tls_handshakes_time_out_on_both_sides<D: Native>() {
        let pki = MtlsFixture::new(D::NAME);
        let tls_config = ClusterConfig {
            internal_tls: pki.member.clone(),
            ..static_config()
        };
        let settings = ListenerSettings {
            tls_handshake_timeout: Duration::from_millis(200),
            ..ListenerSettings::default()
        };
        let server = Alone::<D>::start_with(tls_config.clone(), SyntheticOrigin, settings).await;
        let addr = server.addr;
        let (closed, took) = off_thread(move || {
            let mut silent = TcpStream::connect(addr).unwrap();
            silent
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let started = Instant::now();
            let closed = matches!(silent.read(&mut [0u8; 16]), Ok(0));
            (closed, started.elapsed())
        })
        .await;
        assert!(closed, "the listener closed the silent connection");
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
        server.stop().await;

        // Connections complete in the backlog; nobody ever reads the hello.
        let mute = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let settings = ClientSettings {
            tls_handshake_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        };
        let client = fill_client::<D>(
            &tls_config,
            Options::default().with_client_settings(settings),
        );
        let started = Instant::now();
        let err = fetch::<D>(
            &client,
            &peer_at(mute.local_addr().unwrap()),
            &key(0, CHUNK),
        )
        .await
        .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, FillError::TlsHandshakeTimeout), "{err:?}");
        assert_eq!(err.kind(), "tls_handshake_timeout");
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
        client.close();
    }

    /// Certificates rotated on disk (a new CA and new leaves, written in place) apply without a
    /// restart: an established connection keeps working; new connections, on both sides, use
    /// the new files; a client still holding the old material is refused.
    pub(super) async fn mtls_rotated_files_apply_to_new_connections<D: Native>() {
        let dir = TempDir::new(&format!("{}-rotation", D::NAME)).unwrap();
        let live = dir.join("live");
        let before = Pki::new(LEAF_NAMES).unwrap();
        let tls = before.write_files(&live).unwrap();
        let old = before.write_files(&dir.join("old")).unwrap();
        let config = |tls: &TlsSettings| ClusterConfig {
            internal_tls: tls.clone(),
            ..static_config()
        };
        let server = Alone::<D>::start(config(&tls), SyntheticOrigin).await;
        let peer = server.peer();
        let established = fill_client::<D>(&config(&tls), Options::default());
        let fill = |client: &FillClient<D::Rt>, index: u64| {
            let k = key(index, CHUNK);
            let client = client.clone();
            async move {
                let bytes = fetch::<D>(&client, &peer, &k).await?;
                assert_chunk(&bytes, &k, OBJECT);
                Ok::<(), FillError>(())
            }
        };
        fill(&established, 0).await.unwrap();
        assert_eq!(server.listener.accepted_connections(), 1);

        let rotated = Pki::new(LEAF_NAMES).unwrap().write_files(&live).unwrap();
        assert_eq!(rotated, tls, "the same paths");
        fill(&established, 1).await.unwrap();
        assert_eq!(
            server.listener.accepted_connections(),
            1,
            "the established connection still serves"
        );

        let fresh = fill_client::<D>(&config(&tls), Options::default());
        fill(&fresh, 2)
            .await
            .expect("a client of the new files reaches the listener, which reloaded them");

        let stale = fill_client::<D>(&config(&old), Options::default());
        let err = fill(&stale, 3).await.unwrap_err();
        // The new CA has the old one's name: the old trust anchor matches the issuer, and the
        // signature check fails.
        assert!(
            matches!(&err, FillError::Tls(e)
                if e.to_string().contains("invalid peer certificate: BadSignature")),
            "the old material does not trust the new listener: {err:?}"
        );

        established.evict(&[peer]);
        assert_settles::<D, _>("evicted", Vec::new(), || established.connected_peers()).await;
        fill(&established, 4)
            .await
            .expect("the established client's next connection uses the new files");
        assert_eq!(server.listener.accepted_connections(), 4);
        for client in [established, fresh, stale] {
            client.close();
        }
        server.stop().await;
    }
}
