//! Former divergences between the tokio and smol drivers, one conformance case each. The two
//! drivers now share one pipeline (driver-common); every case below pins the behaviour they
//! must both have, written once, generic over [`Driver`], and instantiated as a `#[test]` for
//! each driver by the `divergence_tests!` macro (`tokio_driver::<case>`, `smol_driver::<case>`).
//! Cases that mix drivers run on [`run_mixed`](orca_cluster_tests::harness::run_mixed).
//!
//! Cases:
//! 1. `ip_family_applies_to_static_sources` — a static list of dual-stack replicas (127.0.0.1
//!    and ::1, one port each) keeps only the configured family (`Ipv4`, `Ipv6`; `Any` keeps
//!    both), and fills travel over that family. Without ::1 the case is skipped, except under
//!    `CI=true`, where it fails.
//! 2. `repeated_equal_content_lengths_are_malformed` — `Content-Length: n, n`, `n,n` and two
//!    equal `Content-Length` lines are `MalformedHead { field: "content-length", .. }`.
//! 3. `duplicated_internal_header_is_400` — two `x-orca-internal: 1` lines, or the list
//!    `1, 1`, are answered 400 with the body naming `x-orca-internal`.
//! 4. `admission_reads_the_raw_target` — `/internal/../internal/fill`, `/internal/fill/.`,
//!    `//internal/fill` and `/internal/%66ill` are 404; an absolute-form
//!    `http://host/internal/fill?...` target is served (200).
//! 5. `retry_policy` — a pooled connection the peer closed while idle is replaced by a fresh
//!    one; a request whose reused connection is reset before the peer read it is retried once
//!    on a fresh connection; a fresh connection that fails is not retried, nor is the retry.
//! 6. `a_409_keeps_the_connection` — after a 409 (small body) the next fill to the same peer
//!    reuses the connection (one accepted connection for 409 then 200, over HTTP/1.1).
//! 7. `defaults_are_one_type_with_the_documented_values` (once, not per driver) — the
//!    `ListenerSettings`, `ClientSettings` and `Options` defaults of both crates;
//!    `idle_keep_alive_closes_after_header_read_timeout` — an idle keep-alive connection is
//!    closed after `header_read_timeout`; `silent_connection_closes_after_header_read_timeout`
//!    — so is a connection that never sends a request.
//! 8. `departed_peer_is_evicted` — after the static source drops a peer, the client holds no
//!    connection to it (`connected_peers`, `idle_connections`) and the peer's listener sees the
//!    connection closed.
//! 9. `listener_body_rules` — a filler yielding thousands of empty frames around the chunk is
//!    served completely; the chunk, then an empty frame, then more bytes is aborted.
//! 10. `dropping_the_listener_handle_stops_it` — new connections are refused (or closed
//!     without an answer) and an in-flight slow response is cut, promptly.
//! 11. `protocol_settings_are_checked_at_start` — `Protocol::Http2` and non-default
//!     `ClientSettings::http2` start on tokio (h2c fills work) and are
//!     `StartError::Unsupported` on smol; and, mixed, `default_options_fill_across_drivers` —
//!     with default options each driver's client fills from the other driver's listener.
//! 12. `fill_body_completes_with_its_last_byte` (mixed) — a `FillBody` forwarded as a hyper
//!     HTTP/1.1 response body with `Content-Length` (hyper stops polling there): 12 fills
//!     through that proxy are all counted `fills_ok` and reuse one connection to the origin.
//! 13. `static_list_without_self_port` — a static `ip:port` list finds this replica by its IP
//!     (`self_port()` is that entry's port, fills get 200, not 409); no matching entry fails
//!     start with `ConfigError::NoSelfPeerEntry`, naming `self_port`.

use orca_cluster_tests::harness::Driver;

/// Instantiates every case for one driver: `divergence_tests!(module, DriverType)`. The cases
/// of the first list run on the driver's runtime ([`Driver::run`]), those of the second (which
/// mix drivers, or a driver and hyper) on `run_mixed`.
macro_rules! divergence_tests {
    ($module:ident, $driver:ty) => {
        divergence_tests!(@cases $module, $driver, [
            ip_family_applies_to_static_sources,
            repeated_equal_content_lengths_are_malformed,
            duplicated_internal_header_is_400,
            admission_reads_the_raw_target,
            retry_policy,
            a_409_keeps_the_connection,
            idle_keep_alive_closes_after_header_read_timeout,
            silent_connection_closes_after_header_read_timeout,
            departed_peer_is_evicted,
            listener_body_rules,
            dropping_the_listener_handle_stops_it,
            protocol_settings_are_checked_at_start,
            static_list_without_self_port,
        ], mixed: [
            default_options_fill_across_drivers,
            fill_body_completes_with_its_last_byte,
        ]);
    };
    (@cases $module:ident, $driver:ty, [$($case:ident),* $(,)?],
        mixed: [$($mixed:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    <$driver as super::Driver>::run(super::cases::$case::<$driver>());
                }
            )*
            $(
                #[test]
                fn $mixed() {
                    orca_cluster_tests::harness::run_mixed(super::cases::$mixed::<$driver>());
                }
            )*
        }
    };
}

divergence_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver);
divergence_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver);

/// Case 7, first half: one type, the documented values, through both crates' re-exports.
#[test]
fn defaults_are_one_type_with_the_documented_values() {
    use std::time::Duration;

    // Compile-time: each crate's name is the other's type.
    let listener: orca_cluster_tokio::ListenerSettings =
        orca_cluster_smol::ListenerSettings::default();
    let smol_listener: orca_cluster_smol::ListenerSettings =
        orca_cluster_tokio::ListenerSettings::default();
    assert_eq!(listener, smol_listener);
    assert_eq!(listener.max_concurrent, 256);
    assert_eq!(listener.max_header_bytes, 16 * 1024);
    assert_eq!(listener.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(listener.header_read_timeout, Duration::from_secs(30));
    assert_eq!(listener.idle_timeout, Duration::from_secs(90));
    assert_eq!(listener.send_timeout, Duration::from_secs(60));
    assert_eq!(listener.max_concurrent_per_connection, 64);
    assert_eq!(listener.max_connections, 1024);

    let client: orca_cluster_tokio::ClientSettings = orca_cluster_smol::ClientSettings::default();
    let smol_client: orca_cluster_smol::ClientSettings =
        orca_cluster_tokio::ClientSettings::default();
    assert_eq!(client, smol_client);
    assert_eq!(client.connect_timeout, Duration::from_secs(2));
    assert_eq!(client.peer_backoff_initial, Duration::from_millis(250));
    assert_eq!(client.peer_backoff_max, Duration::from_secs(10));
    assert_eq!(client.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(client.idle_timeout, Duration::from_secs(30));
    assert_eq!(client.max_idle_per_peer, 16);
    let h2: orca_cluster_tokio::Http2Settings = orca_cluster_smol::Http2Settings::default();
    assert_eq!(client.http2, h2);
    assert_eq!(h2.stream_window, 8 << 20);
    assert_eq!(h2.connection_window, 16 << 20);
    assert_eq!(h2.max_frame_size, 1 << 20);
    assert_eq!(h2.keep_alive_interval, Duration::from_secs(10));
    assert_eq!(h2.keep_alive_timeout, Duration::from_secs(10));

    let protocol: orca_cluster_tokio::Protocol = orca_cluster_smol::Protocol::default();
    assert_eq!(protocol, orca_cluster_smol::Protocol::Auto);
    let tokio_options = orca_cluster_tokio::Options::default();
    let smol_options = orca_cluster_smol::Options::default();
    assert_eq!(tokio_options.protocol(), orca_cluster_tokio::Protocol::Auto);
    assert_eq!(smol_options.protocol(), orca_cluster_smol::Protocol::Auto);
    assert_eq!(tokio_options.client_settings(), &client);
    assert_eq!(smol_options.client_settings(), &client);
}

mod cases {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures_lite::StreamExt;
    use orca_cluster_core::admission::Rejection;
    use orca_cluster_core::fill::{FillCheckError, HeaderProblem};
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_core::{ChunkKey, ClusterConfig, ConfigError, IpFamily, Snapshot};
    use orca_cluster_driver_common::{
        ChunkStream, ClientSettings, FillError, FillRequest, Filler, FillerError, Http2Settings,
        ListenerSettings, Protocol, StartError, StaticPeerSource, SyntheticOrigin,
    };
    use orca_cluster_tests::faulty_server::{After, FaultyServer, Response};
    use orca_cluster_tests::harness::{
        ClusterHandle, Drained, Driver, LOCALHOST, STOP_DEADLINE, ServingListener, Setup,
        assert_chunk, assert_settles, bind_local, client_cluster, drain, key, next_change,
        off_thread, peer_at, static_config, timeout,
    };
    use orca_cluster_tests::raw_client::{self, RawConnection};

    const CHUNK: u64 = 256 * 1024;
    /// Chunk indices searched for a chunk with a given coordinator.
    const INDICES: u64 = 64;
    const OBJECT: u64 = CHUNK * INDICES;
    /// Generous bound for anything that should happen at once or within a refresh or two.
    const SOON: Duration = Duration::from_secs(5);
    const INTERNAL: &str = "x-orca-internal: 1\r\n";
    /// Scheduling slack allowed on top of a timeout that should fire (a busy 2-core machine).
    const SLACK: Duration = Duration::from_secs(2);

    /// A replica serving alone except for a phantom member (`127.0.0.1:1`, never dialed by
    /// these tests), so that it coordinates some chunks ([`Lone::mine`]) and not others
    /// ([`Lone::theirs`]). Clients see the same two members ([`Lone::client`]), so they agree.
    struct Lone<D: Driver> {
        cluster: D::Cluster,
        listener: Box<dyn ServingListener>,
        addr: SocketAddr,
    }

    const PHANTOM: SocketAddr = SocketAddr::new(LOCALHOST, 1);

    impl<D: Driver> Lone<D> {
        async fn start(filler: impl Filler, settings: ListenerSettings) -> Lone<D> {
            let listener = bind_local::<D>(1).await.pop().unwrap();
            let addr = D::listener_addr(&listener);
            let source = StaticPeerSource::new([addr, PHANTOM]);
            let setup = Setup::static_source(&source).with_self_port(addr.port());
            let cluster = D::start(static_config(), setup)
                .await
                .unwrap_or_else(|e| panic!("{}: start: {e}", D::NAME));
            let listener = D::serve_with(listener, &cluster, filler, settings);
            Lone {
                cluster,
                listener,
                addr,
            }
        }

        fn keys(&self, mine: bool) -> impl Iterator<Item = ChunkKey> + '_ {
            (0..INDICES)
                .map(|i| key(i, CHUNK))
                .filter(move |k| self.cluster.is_coordinator(k) == mine)
        }

        /// A chunk this replica coordinates.
        fn mine(&self) -> ChunkKey {
            self.keys(true).next().expect("a chunk of this replica")
        }

        /// A chunk the phantom member coordinates.
        fn theirs(&self) -> ChunkKey {
            self.keys(false).next().expect("a chunk of the phantom")
        }

        /// A client-only cluster of driver `C` with the same two members.
        async fn client<C: Driver>(&self, setup: Setup) -> C::Cluster {
            let source = StaticPeerSource::new([PHANTOM, self.addr]);
            let setup = Setup {
                source: Some(source),
                self_port: PHANTOM.port(),
                ..setup
            };
            C::start(static_config(), setup)
                .await
                .unwrap_or_else(|e| panic!("{} client start: {e}", C::NAME))
        }

        async fn stop(self) {
            self.listener.shutdown(STOP_DEADLINE).await;
            self.cluster.close(STOP_DEADLINE).await.unwrap();
        }
    }

    /// The fill request of `key` as the raw client sends it, with the internal header.
    fn fill_target(key: &ChunkKey) -> String {
        format!("/internal/fill?{}", encode_query(key, OBJECT))
    }

    /// Sends `request` to `addr` on a new connection from another thread.
    async fn raw(addr: SocketAddr, request: Vec<u8>) -> raw_client::RawResponse {
        let line = String::from_utf8_lossy(&request)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        off_thread(move || raw_client::exchange(addr, &request))
            .await
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    // ------------------------------------------------------------------ 1. ip_family

    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    /// Whether a bind error means the address does not exist on this machine.
    fn address_missing(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
        ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT: IPv6 disabled
    }

    /// A listener on 127.0.0.1 and one on ::1 with the same port; `None` (a skip) when ::1 does
    /// not exist here, which fails instead under `CI=true`.
    async fn bind_dual_stack<D: Driver>() -> Option<(D::Listener, D::Listener)> {
        for _ in 0..20 {
            let v4 = bind_local::<D>(1).await.pop().unwrap();
            let port = D::listener_addr(&v4).port();
            match D::bind(SocketAddr::new(V6, port)).await {
                Ok(v6) => return Some((v4, v6)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) if address_missing(&e) => {
                    // Fails under CI=true (.ci/run adds ::1 to the loopback).
                    orca_cluster_test_support::skip_outside_ci(&format!(
                        "{}: [::1] is not available here: {e}",
                        D::NAME
                    ));
                    return None;
                }
                Err(e) => panic!("{}: bind [::1]:{port}: {e}", D::NAME),
            }
        }
        panic!("{}: no port free on both 127.0.0.1 and [::1]", D::NAME);
    }

    /// Addresses of a snapshot with their self flag, sorted.
    fn entries(snapshot: &Snapshot) -> Vec<(SocketAddr, bool)> {
        let mut out: Vec<_> = snapshot
            .peers()
            .iter()
            .map(|p| (SocketAddr::new(p.ip, p.port), p.is_self))
            .collect();
        out.sort();
        out
    }

    /// `ip_family` applies to static lists: two dual-stack replicas listed under both IPs
    /// keep only the configured family, agree on coordinators, and fill over that family
    /// (the other family's listener accepts nothing).
    pub(super) async fn ip_family_applies_to_static_sources<D: Driver>() {
        for family in [IpFamily::Ipv4, IpFamily::Ipv6, IpFamily::Any] {
            let mut pairs = Vec::new();
            for _ in 0..2 {
                match bind_dual_stack::<D>().await {
                    Some(pair) => pairs.push(pair),
                    None => return,
                }
            }
            let ports: Vec<u16> = pairs
                .iter()
                .map(|(v4, _)| D::listener_addr(v4).port())
                .collect();
            let list: Vec<SocketAddr> = ports
                .iter()
                .flat_map(|&p| [SocketAddr::new(LOCALHOST, p), SocketAddr::new(V6, p)])
                .collect();
            let source = StaticPeerSource::new(list.iter().copied());
            let config = ClusterConfig {
                self_pod_ip: vec![LOCALHOST, V6],
                ip_family: family,
                ..static_config()
            };
            let mut replicas = Vec::new();
            for ((v4, v6), &port) in pairs.into_iter().zip(&ports) {
                let setup = Setup::static_source(&source).with_self_port(port);
                let cluster = D::start(config.clone(), setup)
                    .await
                    .unwrap_or_else(|e| panic!("{} {family:?}: start: {e}", D::NAME));
                let on_v4 = D::serve(v4, &cluster, SyntheticOrigin, 256);
                let on_v6 = D::serve(v6, &cluster, SyntheticOrigin, 256);
                replicas.push((cluster, on_v4, on_v6));
            }

            for (i, (cluster, _, _)) in replicas.iter().enumerate() {
                let got = entries(&cluster.peers());
                match family {
                    IpFamily::Any => {
                        let addrs: Vec<SocketAddr> = got.iter().map(|(a, _)| *a).collect();
                        let mut all = list.clone();
                        all.sort();
                        assert_eq!(addrs, all, "{family:?}: both families kept");
                    }
                    _ => {
                        let ip = if family == IpFamily::Ipv4 {
                            LOCALHOST
                        } else {
                            V6
                        };
                        let mut want: Vec<(SocketAddr, bool)> = ports
                            .iter()
                            .enumerate()
                            .map(|(j, &p)| (SocketAddr::new(ip, p), i == j))
                            .collect();
                        want.sort();
                        assert_eq!(got, want, "{family:?}: replica {i} keeps only {ip}");
                    }
                }
            }
            if family == IpFamily::Any {
                for (cluster, a, b) in replicas {
                    a.shutdown(STOP_DEADLINE).await;
                    b.shutdown(STOP_DEADLINE).await;
                    cluster.close(STOP_DEADLINE).await.unwrap();
                }
                continue;
            }

            // Replica 0 fills a chunk of replica 1 over the family's address.
            let (asker, owner) = (&replicas[0].0, &replicas[1].0);
            let k = (0..INDICES)
                .map(|i| key(i, CHUNK))
                .find(|k| !asker.is_coordinator(k))
                .expect("a chunk of replica 1");
            let peer = asker.coordinator(&k);
            assert_eq!(
                (peer.ip.is_ipv4(), peer.port),
                (family == IpFamily::Ipv4, ports[1]),
                "{family:?}: {peer}"
            );
            assert!(owner.is_coordinator(&k), "{family:?}: the replicas agree");
            assert_chunk(&asker.fill(&peer, &k, OBJECT).await.unwrap(), &k, OBJECT);
            let (v4_accepted, v6_accepted) = (
                replicas[1].1.accepted_connections(),
                replicas[1].2.accepted_connections(),
            );
            let want = if family == IpFamily::Ipv4 {
                (1, 0)
            } else {
                (0, 1)
            };
            assert_eq!(
                (v4_accepted, v6_accepted),
                want,
                "{family:?}: connections accepted on (127.0.0.1, ::1)"
            );
            for (cluster, a, b) in replicas {
                a.shutdown(STOP_DEADLINE).await;
                b.shutdown(STOP_DEADLINE).await;
                cluster.close(STOP_DEADLINE).await.unwrap();
            }
        }
    }

    // ------------------------------------------------------------------ 2. Content-Length

    const RAW_CHUNK: u64 = 64 * 1024;
    const RAW_OBJECT: u64 = RAW_CHUNK * 4;

    fn raw_key() -> ChunkKey {
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

    /// A list of equal `Content-Length` values and two equal `Content-Length` lines (shapes
    /// hyper itself accepts) are refused by the one rule of the core, before the body; a single
    /// line is accepted.
    pub(super) async fn repeated_equal_content_lengths_are_malformed<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), false, &[]).await;
        let body = raw_bytes();
        let n = body.len();
        for fields in [
            format!("content-length: {n}, {n}\r\n"),
            format!("content-length: {n},{n}\r\n"),
            format!("content-length: {n}\r\ncontent-length: {n}\r\n"),
            format!("Content-Length: {n}\r\ncontent-type: x\r\ncontent-length: {n}\r\n"),
        ] {
            let mut bytes = format!("HTTP/1.1 200 OK\r\n{fields}\r\n").into_bytes();
            bytes.extend_from_slice(&body);
            let server = FaultyServer::serving(Response {
                bytes,
                after: After::Close,
            });
            let outcome = fill_from(&cluster, &server).await;
            assert!(
                matches!(
                    outcome,
                    Err(FillError::Check(FillCheckError::MalformedHead {
                        field: "content-length",
                        problem: HeaderProblem::Repeated,
                    }))
                ),
                "{fields:?}: {outcome:?}"
            );
        }
        let server = FaultyServer::serving(Response::content_length(n as u64, &body));
        let drained = fill_from(&cluster, &server).await.unwrap();
        assert!(drained.error.is_none(), "{:?}", drained.error);
        assert_chunk(&drained.bytes, &raw_key(), RAW_OBJECT);
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (1, 4));
        cluster.close(SOON).await.unwrap();
    }

    // ------------------------------------------------------------------ 3. x-orca-internal

    /// The internal header must come exactly once with the value 1: two lines (any case) are
    /// `RepeatedInternalHeader`, the list `1, 1` is `NotInternal`; both 400 naming the header.
    pub(super) async fn duplicated_internal_header_is_400<D: Driver>() {
        let lone = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let mine = lone.mine();
        let target = fill_target(&mine);
        for (headers, rejection) in [
            (
                "x-orca-internal: 1\r\nx-orca-internal: 1\r\n",
                Rejection::RepeatedInternalHeader,
            ),
            (
                "X-Orca-Internal: 1\r\nx-orca-internal: 1\r\n",
                Rejection::RepeatedInternalHeader,
            ),
            ("x-orca-internal: 1, 1\r\n", Rejection::NotInternal),
            ("x-orca-internal: 1,1\r\n", Rejection::NotInternal),
        ] {
            let response = raw(lone.addr, raw_client::request("GET", &target, headers)).await;
            assert_eq!(response.status, 400, "{headers:?}: {}", response.text());
            assert_eq!(response.text(), rejection.body(), "{headers:?}");
            assert!(response.text().contains("x-orca-internal"), "{headers:?}");
        }
        let response = raw(lone.addr, raw_client::request("GET", &target, INTERNAL)).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_chunk(&response.body, &mine, OBJECT);
        assert_settles::<D, _>("listener counters", (1, 4), || {
            let s = lone.cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 4. raw target

    /// The path is compared byte for byte, without dot-segment removal or percent-decoding;
    /// an absolute-form target is admitted by its origin part.
    pub(super) async fn admission_reads_the_raw_target<D: Driver>() {
        let lone = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let mine = lone.mine();
        let query = encode_query(&mine, OBJECT);
        for target in [
            format!("/internal/../internal/fill?{query}"),
            format!("/internal/fill/.?{query}"),
            format!("//internal/fill?{query}"),
            format!("/internal/%66ill?{query}"),
            format!("/internal/fill/?{query}"),
        ] {
            let response = raw(lone.addr, raw_client::request("GET", &target, INTERNAL)).await;
            assert_eq!(response.status, 404, "{target}: {}", response.text());
            assert_eq!(response.text(), Rejection::NotFound.body(), "{target}");
        }
        let addr = lone.addr;
        for target in [
            format!("http://{addr}/internal/fill?{query}"),
            format!("http://test/internal/fill?{query}"),
        ] {
            let response = raw(addr, raw_client::request("GET", &target, INTERNAL)).await;
            assert_eq!(response.status, 200, "{target}: {}", response.text());
            assert_chunk(&response.body, &mine, OBJECT);
        }
        assert_settles::<D, _>("listener counters", (2, 5), || {
            let s = lone.cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 5. retries

    /// The raw chunk with a correct `Content-Length` and no `connection` field.
    fn ok_bytes() -> Vec<u8> {
        Response::ok(&raw_bytes()).bytes
    }

    /// Answers request `n` (from 0) with `script(n)`.
    fn counting(script: impl Fn(usize) -> Response + Send + Sync + 'static) -> FaultyServer {
        let count = AtomicUsize::new(0);
        FaultyServer::start(move |_| script(count.fetch_add(1, Ordering::SeqCst)))
    }

    async fn raw_fill(
        cluster: &impl ClusterHandle,
        server: &FaultyServer,
    ) -> Result<(), FillError> {
        let bytes = cluster.fill(&server.peer(), &raw_key(), RAW_OBJECT).await?;
        assert_chunk(&bytes, &raw_key(), RAW_OBJECT);
        Ok(())
    }

    /// Retries: only a request that never reached the peer on a reused connection is retried,
    /// once, on a fresh connection.
    pub(super) async fn retry_policy<D: Driver>() {
        // (a) The server closes every connection after its response, without saying so: the
        // pooled connection is dead by the next fill, which succeeds on a fresh one.
        let server = FaultyServer::serving(Response {
            bytes: ok_bytes(),
            after: After::Close,
        });
        let cluster = client_cluster::<D>(static_config(), false, &[server.addr()]).await;
        raw_fill(&cluster, &server).await.unwrap();
        D::sleep(Duration::from_millis(200)).await;
        raw_fill(&cluster, &server).await.unwrap();
        assert_eq!(
            (server.accepted(), server.heads().len()),
            (2, 2),
            "(a) one connection per fill"
        );
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (2, 0), "(a)");
        cluster.close(SOON).await.unwrap();

        // (b) The server drops the kept-alive connection when the next request arrives,
        // without reading it (a reset): that request is retried once on a fresh connection.
        let server = counting(|n| match n {
            0 => Response {
                bytes: ok_bytes(),
                after: After::ResetNext,
            },
            _ => Response::ok(&raw_bytes()),
        });
        let cluster = client_cluster::<D>(static_config(), false, &[server.addr()]).await;
        raw_fill(&cluster, &server).await.unwrap();
        assert_eq!(
            cluster.idle_connections(),
            1,
            "(b) the connection is pooled"
        );
        raw_fill(&cluster, &server)
            .await
            .unwrap_or_else(|e| panic!("(b) the reset request is retried: {e:?}"));
        assert_eq!(
            (server.accepted(), server.heads().len()),
            (2, 2),
            "(b) the retry used a second connection; the reset request was never read"
        );
        let stats = cluster.stats();
        assert_eq!((stats.fills_ok, stats.fills_failed), (2, 0), "(b)");
        cluster.close(SOON).await.unwrap();

        // (c) A fresh connection that fails (the server hangs up without answering) is not
        // retried.
        let server = FaultyServer::serving(Response::hang_up());
        let cluster = client_cluster::<D>(static_config(), false, &[server.addr()]).await;
        let err = raw_fill(&cluster, &server).await.unwrap_err();
        assert!(matches!(err, FillError::Http(_)), "(c) {err:?}");
        assert_eq!(
            (server.accepted(), server.heads().len()),
            (1, 1),
            "(c) not retried"
        );

        // (d) The retry of (b) is not retried in turn: when the fresh connection fails too,
        // the fill fails after exactly two connections.
        let server = counting(|n| match n {
            0 => Response {
                bytes: ok_bytes(),
                after: After::ResetNext,
            },
            _ => Response::hang_up(),
        });
        let cluster2 = client_cluster::<D>(static_config(), false, &[server.addr()]).await;
        raw_fill(&cluster2, &server).await.unwrap();
        let err = raw_fill(&cluster2, &server).await.unwrap_err();
        assert!(matches!(err, FillError::Http(_)), "(d) {err:?}");
        assert_eq!(
            (server.accepted(), server.heads().len()),
            (2, 2),
            "(d) one retry, on a fresh connection, and no more"
        );
        cluster.close(SOON).await.unwrap();
        cluster2.close(SOON).await.unwrap();
    }

    // ------------------------------------------------------------------ 6. 409

    /// A 409's small body is read to its end, so its connection serves the next fill.
    pub(super) async fn a_409_keeps_the_connection<D: Driver>() {
        let lone = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let client = lone.client::<D>(Setup::default()).await;
        let peer = peer_at(lone.addr);
        let err = client
            .fill(&peer, &lone.theirs(), OBJECT)
            .await
            .unwrap_err();
        assert!(err.is_not_coordinator(), "{err:?}");
        assert_eq!(
            client.idle_connections(),
            1,
            "the 409's connection is pooled"
        );
        let mine = lone.mine();
        assert_chunk(
            &client.fill(&peer, &mine, OBJECT).await.unwrap(),
            &mine,
            OBJECT,
        );
        assert_eq!(
            lone.listener.accepted_connections(),
            1,
            "409 then 200 on one connection"
        );
        let stats = client.stats();
        assert_eq!(
            (
                stats.fills_ok,
                stats.fills_failed,
                stats.fills_not_coordinator
            ),
            (1, 1, 1)
        );
        client.close(SOON).await.unwrap();
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 7. header timeout

    /// `header_read_timeout` closes an idle keep-alive connection (after two requests on it)
    /// after about that long.
    pub(super) async fn idle_keep_alive_closes_after_header_read_timeout<D: Driver>() {
        let timeout = Duration::from_millis(300);
        let settings = ListenerSettings {
            header_read_timeout: timeout,
            ..ListenerSettings::default()
        };
        let lone = Lone::<D>::start(SyntheticOrigin, settings).await;
        let mine = lone.mine();
        let request = raw_client::keep_alive_request("GET", &fill_target(&mine), INTERNAL);
        let addr = lone.addr;
        let (responses, idle_closed) = off_thread(move || {
            let mut connection = RawConnection::connect(addr)?;
            let mut responses = Vec::new();
            for _ in 0..2 {
                connection.send(&request)?;
                responses.push(connection.read_response()?);
            }
            Ok::<_, io::Error>((responses, connection.wait_closed(SOON)?))
        })
        .await
        .unwrap();
        for response in &responses {
            assert_eq!(response.status, 200, "{}", response.text());
            assert_eq!(response.header("connection"), None, "kept alive");
            assert_chunk(&response.body, &mine, OBJECT);
        }
        assert_eq!(lone.listener.accepted_connections(), 1, "one connection");
        let idle = idle_closed.expect("the idle connection was closed");
        assert!(
            idle >= timeout - Duration::from_millis(100) && idle < timeout + SLACK,
            "idle keep-alive closed after {idle:?}, expected about {timeout:?}"
        );

        lone.stop().await;
    }

    /// A connection that never sends a request is closed after `header_read_timeout` too (the
    /// wait for the first request head is bounded like the wait for the next one).
    pub(super) async fn silent_connection_closes_after_header_read_timeout<D: Driver>() {
        let timeout = Duration::from_millis(300);
        let settings = ListenerSettings {
            header_read_timeout: timeout,
            ..ListenerSettings::default()
        };
        let lone = Lone::<D>::start(SyntheticOrigin, settings).await;
        let addr = lone.addr;
        let silent_closed = off_thread(move || RawConnection::connect(addr)?.wait_closed(SOON))
            .await
            .unwrap();
        let silent = silent_closed.expect("the silent connection was closed");
        assert!(
            silent >= timeout - Duration::from_millis(100) && silent < timeout + SLACK,
            "a connection without a request closed after {silent:?}, expected about {timeout:?}"
        );
        assert_eq!(lone.listener.accepted_connections(), 1);
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 8. eviction

    /// A peer that leaves the static list loses its client connections, and its listener sees
    /// them close.
    pub(super) async fn departed_peer_is_evicted<D: Driver>() {
        let lone = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let source = StaticPeerSource::new([PHANTOM, lone.addr]);
        let setup = Setup::static_source(&source).with_self_port(PHANTOM.port());
        let client = D::start(static_config(), setup).await.unwrap();
        let mine = lone.mine();
        let peer = peer_at(lone.addr);
        assert_chunk(
            &client.fill(&peer, &mine, OBJECT).await.unwrap(),
            &mine,
            OBJECT,
        );
        assert_eq!(client.connected_peers(), vec![lone.addr]);
        assert_eq!(client.idle_connections(), 1);
        assert_settles::<D, _>("the listener holds the connection", 1, || {
            lone.listener.open_connections()
        })
        .await;

        let mut changes = client.subscribe();
        source.set([PHANTOM]);
        let snapshot = next_change::<D>(&mut changes, SOON).await;
        assert_eq!(snapshot.len(), 1, "the peer left");
        assert_settles::<D, _>(
            "no client connection to the departed peer",
            (Vec::new(), 0),
            || (client.connected_peers(), client.idle_connections()),
        )
        .await;
        assert_settles::<D, _>("the departed peer's listener saw the close", 0, || {
            lone.listener.open_connections()
        })
        .await;
        client.close(SOON).await.unwrap();
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 9. filler frames

    /// How [`FramesFiller`] cuts the chunk into frames.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Frames {
        /// 1000 empty frames, the first half, 1000 empty frames, the second half, 1000 empty
        /// frames.
        EmptyAround,
        /// The first half, the second half (the whole chunk), one empty frame, 10 more bytes.
        EmptyThenMore,
    }

    struct FramesFiller(Frames);

    impl Filler for FramesFiller {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            let mut first = Bytes::from(SyntheticOrigin::chunk_bytes(
                &request.key,
                request.object_size,
            ));
            let second = first.split_off(first.len() / 2);
            let empties = |n| std::iter::repeat_n(Bytes::new(), n);
            let frames: Vec<Bytes> = match self.0 {
                Frames::EmptyAround => empties(1000)
                    .chain([first])
                    .chain(empties(1000))
                    .chain([second])
                    .chain(empties(1000))
                    .collect(),
                Frames::EmptyThenMore => {
                    vec![first, second, Bytes::new(), Bytes::from_static(&[7; 10])]
                }
            };
            let stream = futures_lite::stream::iter(frames.into_iter().map(Ok));
            Ok(Box::pin(stream))
        }
    }

    /// Empty frames are skipped (never an end); bytes after the complete chunk abort the
    /// response even when an empty frame comes between.
    pub(super) async fn listener_body_rules<D: Driver>() {
        for how in [Frames::EmptyAround, Frames::EmptyThenMore] {
            let lone = Lone::<D>::start(FramesFiller(how), ListenerSettings::default()).await;
            let client = lone.client::<D>(Setup::default()).await;
            let mine = lone.mine();
            let good = SyntheticOrigin::chunk_bytes(&mine, OBJECT);
            let outcome = match client.fill_body(&peer_at(lone.addr), &mine, OBJECT).await {
                Ok(body) => Ok(timeout::<D, _>(SOON, drain(body))
                    .await
                    .unwrap_or_else(|| panic!("{how:?}: the body never ended"))),
                Err(e) => Err(e),
            };
            match (how, outcome) {
                (Frames::EmptyAround, Ok(Drained { bytes, error: None })) => {
                    assert_chunk(&bytes, &mine, OBJECT);
                    assert_settles::<D, _>("served completely", (1, 0, CHUNK), || {
                        let s = lone.cluster.stats();
                        (s.served_ok, s.served_failed, s.bytes_served)
                    })
                    .await;
                }
                (
                    Frames::EmptyThenMore,
                    Ok(Drained {
                        bytes,
                        error: Some(e),
                    }),
                ) => {
                    assert!(
                        matches!(
                            e,
                            FillError::Http(_)
                                | FillError::Check(FillCheckError::Truncated {
                                    expected: CHUNK,
                                    ..
                                })
                        ),
                        "{how:?}: {e:?}"
                    );
                    assert!(bytes.len() < CHUNK as usize, "{how:?}: never complete");
                    assert!(bytes == good[..bytes.len()], "{how:?}: a correct prefix");
                }
                // The reset may overtake the response head.
                (Frames::EmptyThenMore, Err(FillError::Http(_))) => {}
                (how, outcome) => panic!("{how:?}: {outcome:?}"),
            }
            if how == Frames::EmptyThenMore {
                assert_settles::<D, _>("aborted, counted as failed", (0, 1), || {
                    let s = lone.cluster.stats();
                    (s.served_ok, s.served_failed)
                })
                .await;
            }
            client.close(SOON).await.unwrap();
            lone.stop().await;
        }
    }

    // ------------------------------------------------------------------ 10. handle drop

    /// Half the chunk at once, the rest after 20 s.
    struct SlowFiller;

    const SLOW: Duration = Duration::from_secs(20);

    impl Filler for SlowFiller {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            let mut first = Bytes::from(SyntheticOrigin::chunk_bytes(
                &request.key,
                request.object_size,
            ));
            let second = first.split_off(first.len() / 2);
            let later = async move {
                smol::Timer::after(SLOW).await;
                Ok(second)
            };
            let stream = futures_lite::stream::once(Ok(first))
                .chain(futures_lite::stream::once_future(later));
            Ok(Box::pin(stream))
        }
    }

    /// Dropping the `ListenerHandle` stops the listener at once: the slow response in flight
    /// is cut (the client sees `Truncated` at the half it got), and new connections are
    /// refused or closed without an answer.
    pub(super) async fn dropping_the_listener_handle_stops_it<D: Driver>() {
        let lone = Lone::<D>::start(SlowFiller, ListenerSettings::default()).await;
        let client = lone.client::<D>(Setup::default()).await;
        let mine = lone.mine();
        let half = CHUNK / 2;
        let mut body = client
            .fill_body(&peer_at(lone.addr), &mine, OBJECT)
            .await
            .unwrap();
        let mut received = 0;
        while received < half {
            let frame = timeout::<D, _>(SOON, body.next())
                .await
                .expect("the first half arrives at once")
                .expect("more frames")
                .expect("a good frame");
            received += frame.len() as u64;
        }
        assert_eq!(received, half);

        let Lone {
            cluster,
            listener,
            addr,
        } = lone;
        let dropped_at = Instant::now();
        drop(listener);
        let rest = timeout::<D, _>(SOON, drain(body))
            .await
            .expect("the response is cut within 5 s, not after the filler's 20 s");
        assert!(
            matches!(
                rest.error,
                Some(FillError::Check(FillCheckError::Truncated { got, expected: CHUNK }))
                    if got == half
            ),
            "{:?} after {} more bytes",
            rest.error,
            rest.bytes.len()
        );
        assert!(rest.bytes.is_empty());
        let cut_after = dropped_at.elapsed();
        assert!(
            cut_after < Duration::from_secs(2),
            "cut after {cut_after:?}"
        );

        let request = raw_client::fill_request(&mine, OBJECT);
        let refused = off_thread(move || {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match RawConnection::connect(addr) {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
                    // Queued by the kernel as the socket closed: reset during the handshake.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ) => {}
                    Err(e) => return Err(format!("connect: {e}")),
                    Ok(mut connection) => {
                        // Accepted by the kernel before the socket closed: never answered.
                        let _ = connection.send(&request);
                        match connection.wait_closed(Duration::from_secs(2)) {
                            Ok(Some(_)) => {}
                            other => return Err(format!("an accepted connection: {other:?}")),
                        }
                    }
                }
                if Instant::now() >= deadline {
                    return Err("still accepting connections after 2 s".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await;
        refused.unwrap();
        assert_settles::<D, _>("the cut response counted as failed", (0, 1), || {
            let s = cluster.stats();
            (s.served_ok, s.served_failed)
        })
        .await;
        client.close(SOON).await.unwrap();
        cluster.close(SOON).await.unwrap();
    }

    // ------------------------------------------------------------------ 11. protocols

    /// `Protocol::Http2` and non-default HTTP/2 client settings: accepted by a driver that
    /// speaks HTTP/2 (and then used: an h2c fill leaves no idle HTTP/1.1 connection), refused
    /// at start by one that does not, naming the setting.
    pub(super) async fn protocol_settings_are_checked_at_start<D: Driver>() {
        let lone = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let mine = lone.mine();
        let peer = peer_at(lone.addr);
        let http2_settings = ClientSettings {
            http2: Http2Settings {
                stream_window: 1 << 20,
                ..Http2Settings::default()
            },
            ..ClientSettings::default()
        };
        for (setup, setting) in [
            (Setup::default().with_protocol(Protocol::Http2), "protocol"),
            (
                Setup::default().with_client_settings(http2_settings),
                "client.http2",
            ),
        ] {
            let source = StaticPeerSource::new([PHANTOM, lone.addr]);
            let setup = Setup {
                source: Some(source),
                self_port: PHANTOM.port(),
                ..setup
            };
            let started = D::start(static_config(), setup).await;
            if D::HTTP2 {
                let client = started.unwrap_or_else(|e| panic!("{setting}: {e}"));
                assert_chunk(
                    &client.fill(&peer, &mine, OBJECT).await.unwrap(),
                    &mine,
                    OBJECT,
                );
                if setting == "protocol" {
                    assert_eq!(
                        (client.connected_peers(), client.idle_connections()),
                        (vec![lone.addr], 0),
                        "one multiplexed (h2c) connection, no idle HTTP/1.1 one"
                    );
                }
                client.close(SOON).await.unwrap();
            } else {
                let err = started.err().expect("refused at start");
                assert!(
                    matches!(
                        err,
                        StartError::Unsupported { setting: s, driver, .. }
                            if s == setting && driver == D::NAME
                    ),
                    "{setting}: {err:?}"
                );
                assert!(err.to_string().starts_with(setting), "{err}");
            }
        }
        lone.stop().await;
    }

    /// With default options (plain mode: HTTP/1.1), a client of driver `D` fills from a
    /// listener of the other driver.
    pub(super) async fn default_options_fill_across_drivers<D: Driver>() {
        let lone = Lone::<D::Other>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let client = lone.client::<D>(Setup::default()).await;
        let peer = peer_at(lone.addr);
        for k in lone.keys(true).take(3).collect::<Vec<_>>() {
            let bytes = client
                .fill(&peer, &k, OBJECT)
                .await
                .unwrap_or_else(|e| panic!("{} -> {}: {e:?}", D::NAME, <D::Other>::NAME));
            assert_chunk(&bytes, &k, OBJECT);
        }
        assert_eq!(client.stats().fills_ok, 3);
        assert_eq!(client.idle_connections(), 1, "HTTP/1.1 keep-alive");
        assert_eq!(lone.listener.accepted_connections(), 1);
        client.close(SOON).await.unwrap();
        lone.stop().await;
    }

    // ------------------------------------------------------------------ 12. FillBody in hyper

    /// A hyper HTTP/1.1 server on the current (tokio) runtime answering `GET /chunk/<index>`
    /// with the `FillBody` of `fill` for that chunk as its body, with `Content-Length`.
    async fn proxy(
        fill: orca_cluster_tests::harness::SendFill,
        origin: orca_cluster_core::Peer,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        use http_body_util::{Either, Empty};
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let fill = fill.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let fill = fill.clone();
                    async move {
                        let index = request
                            .uri()
                            .path()
                            .strip_prefix("/chunk/")
                            .and_then(|i| i.parse::<u64>().ok());
                        let mut response = hyper::Response::new(Either::Right(Empty::new()));
                        *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                        if let Some(index) = index
                            && let Ok(body) = fill(origin, key(index, CHUNK), OBJECT).await
                        {
                            let length = body.expected_len();
                            response = hyper::Response::new(Either::Left(body));
                            response
                                .headers_mut()
                                .insert(hyper::header::CONTENT_LENGTH, length.into());
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (addr, task)
    }

    /// A `FillBody` completes in the poll that delivers its last byte: forwarded by a hyper
    /// server that stops polling at `Content-Length`, every fill is counted `fills_ok`, none
    /// failed, and the HTTP/1.1 connection to the origin goes back to the pool each time.
    pub(super) async fn fill_body_completes_with_its_last_byte<D: Driver>() {
        let origin = Lone::<D>::start(SyntheticOrigin, ListenerSettings::default()).await;
        let client = origin.client::<D>(Setup::default()).await;
        let keys: Vec<ChunkKey> = origin.keys(true).take(12).collect();
        assert_eq!(
            keys.len(),
            12,
            "the origin coordinates 12 of {INDICES} chunks"
        );
        let (addr, task) = proxy(D::send_fill(&client), peer_at(origin.addr)).await;
        for k in &keys {
            let request = raw_client::request("GET", &format!("/chunk/{}", k.index), "");
            let response = raw(addr, request).await;
            assert_eq!(response.status, 200, "chunk {}", k.index);
            assert_eq!(
                response.header("content-length"),
                Some(CHUNK.to_string().as_str())
            );
            assert_chunk(&response.body, k, OBJECT);
        }
        let stats = client.stats();
        assert_eq!(
            (stats.fills_ok, stats.fills_failed, stats.bytes_received),
            (12, 0, 12 * CHUNK),
            "every forwarded body completed"
        );
        assert_eq!(
            origin.listener.accepted_connections(),
            1,
            "one connection to the origin, reused by every fill"
        );
        task.abort();
        client.close(SOON).await.unwrap();
        origin.stop().await;
    }

    // ------------------------------------------------------------------ 13. self port

    const SECOND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    /// A static `ip:port` list without a configured self port: each replica is the one entry
    /// with its IP, so both agree and fill from each other (200, not 409); a replica whose IP
    /// is in no entry fails to start, naming `self_port`.
    pub(super) async fn static_list_without_self_port<D: Driver>() {
        let first = bind_local::<D>(1).await.pop().unwrap();
        let second = match D::bind(SocketAddr::new(SECOND, 0)).await {
            Ok(listener) => listener,
            Err(e) if address_missing(&e) => {
                // Fails under CI=true.
                orca_cluster_test_support::skip_outside_ci(&format!(
                    "{}: 127.0.0.2 is not available here: {e}",
                    D::NAME
                ));
                return;
            }
            Err(e) => panic!("{}: bind 127.0.0.2: {e}", D::NAME),
        };
        let addrs = [D::listener_addr(&first), D::listener_addr(&second)];
        let source = StaticPeerSource::new(addrs);
        let mut replicas = Vec::new();
        for (listener, addr) in [first, second].into_iter().zip(addrs) {
            let config = ClusterConfig {
                self_pod_ip: vec![addr.ip()],
                ..static_config()
            };
            let cluster = D::start(config, Setup::static_source(&source))
                .await
                .unwrap_or_else(|e| panic!("{addr}: start: {e}"));
            assert_eq!(cluster.self_port(), addr.port(), "{addr}: the entry's port");
            let mut want = vec![(addrs[0], addr == addrs[0]), (addrs[1], addr == addrs[1])];
            want.sort();
            assert_eq!(entries(&cluster.peers()), want, "{addr}");
            let listener = D::serve(listener, &cluster, SyntheticOrigin, 256);
            replicas.push((cluster, listener));
        }
        for (asker, owner) in [(0, 1), (1, 0)] {
            let k = (0..INDICES)
                .map(|i| key(i, CHUNK))
                .find(|k| replicas[owner].0.is_coordinator(k))
                .expect("a chunk");
            let peer = replicas[asker].0.coordinator(&k);
            assert_eq!(SocketAddr::new(peer.ip, peer.port), addrs[owner]);
            let bytes = replicas[asker].0.fill(&peer, &k, OBJECT).await;
            assert_chunk(
                &bytes.unwrap_or_else(|e| panic!("{asker} -> {owner}: {e:?}")),
                &k,
                OBJECT,
            );
        }

        let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let config = ClusterConfig {
            self_pod_ip: vec![stranger],
            ..static_config()
        };
        let err = D::start(config, Setup::static_source(&source))
            .await
            .err()
            .expect("no entry is this replica");
        assert!(
            matches!(
                &err,
                StartError::Config(ConfigError::NoSelfPeerEntry { self_ips })
                    if *self_ips == [stranger]
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("self_port"), "{err}");
        for (cluster, listener) in replicas {
            listener.shutdown(STOP_DEADLINE).await;
            cluster.close(STOP_DEADLINE).await.unwrap();
        }
    }
}
