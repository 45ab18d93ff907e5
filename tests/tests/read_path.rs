//! The read path (`Cluster::read`), written once and run against both drivers: coalescing of
//! concurrent reads and fills, the fallback to the local filler, and peer health (a dead or
//! blackholed coordinator costs at most one connect attempt per backoff window).

orca_cluster_tests::driver_cases!([
    concurrent_reads_read_each_chunk_from_the_origin_once,
    a_failing_origin_fails_every_waiter_and_dropped_readers_do_not_disturb_the_rest,
    a_dead_coordinator_costs_one_connect_per_backoff_window,
    a_blackholed_coordinator_is_read_around_fast_until_it_answers_again,
]);

mod cases {
    use std::net::{SocketAddr, TcpListener};
    use std::time::{Duration, Instant};

    use futures_util::future::join_all;
    use orca_cluster_core::ChunkKey;
    use orca_cluster_driver_common::{ClientSettings, ReadOptions, StaticPeerSource};
    use orca_cluster_tests::harness::read_path::{
        ConnectHook, CountingOrigin, Served, SharedOrigin,
    };
    use orca_cluster_tests::harness::{
        Driver, LOCALHOST, Replica, Setup, assert_chunk, bind_local, key, static_config,
    };

    /// Object size of the test chunks: 10,000 chunks of 64 KiB.
    const OBJECT: u64 = 10_000 * 64 * 1024;
    const CHUNK: u64 = 64 * 1024;

    /// `n` replicas of `D` sharing a static list (plus `extra` addresses), each serving and
    /// reading through its own coalescing filler over one shared counting origin.
    async fn replicas<D: Driver>(
        n: usize,
        extra: &[SocketAddr],
        origin: &CountingOrigin,
        setup: &Setup,
    ) -> Vec<(Replica, SharedOrigin)> {
        let listeners = bind_local::<D>(n).await;
        let addrs: Vec<SocketAddr> = listeners.iter().map(D::listener_addr).collect();
        let source = StaticPeerSource::new(addrs.iter().copied().chain(extra.iter().copied()));
        let mut out = Vec::new();
        for listener in listeners {
            let addr = D::listener_addr(&listener);
            let mut setup = setup.clone().with_self_port(addr.port());
            setup.source = Some(source.clone());
            let cluster = D::start(static_config(), setup)
                .await
                .unwrap_or_else(|e| panic!("{} start: {e}", D::NAME));
            let shared = SharedOrigin::new(origin.clone());
            let listener = D::serve(listener, &cluster, shared.clone(), 256);
            out.push((
                Replica {
                    driver: D::NAME,
                    cluster: Box::new(cluster),
                    listener,
                    addr,
                },
                shared,
            ));
        }
        out
    }

    /// A chunk coordinated by the replica or address `by` (index `from` onwards).
    fn chunk_of(r: &Replica, by: SocketAddr, from: u64) -> ChunkKey {
        (from..from + 4096)
            .map(|i| key(i, CHUNK))
            .find(|k| {
                let c = r.cluster.coordinator(k);
                c.ip == by.ip() && c.port == by.port()
            })
            .expect("a chunk of that peer")
    }

    async fn stop(replicas: Vec<(Replica, SharedOrigin)>) {
        for (r, _) in replicas {
            r.stop().await;
        }
    }

    /// Ten concurrent reads of each of two chunks, through each of three replicas: the origin
    /// is read once per chunk (coalesced on the coordinator, whether the readers are local or
    /// remote), and every reader gets the verified bytes.
    pub(super) async fn concurrent_reads_read_each_chunk_from_the_origin_once<D: Driver>() {
        let origin = CountingOrigin::slow(Duration::from_millis(300));
        let set = replicas::<D>(3, &[], &origin, &Setup::default()).await;
        for (round, (reader, shared)) in set.iter().enumerate() {
            let first = 1000 * round as u64;
            let chunks = [key(first, CHUNK), key(first + 1, CHUNK)];
            let reads = chunks.iter().flat_map(|k| {
                (0..10).map(move |_| {
                    reader
                        .cluster
                        .read(k, OBJECT, shared, ReadOptions::default())
                })
            });
            let results = join_all(reads).await;
            for (i, result) in results.into_iter().enumerate() {
                let k = &chunks[i / 10];
                let (served, bytes) = result.unwrap_or_else(|e| panic!("read {i}: {e}"));
                assert_chunk(&bytes, k, OBJECT);
                let expected = if reader.cluster.is_coordinator(k) {
                    Served::Local
                } else {
                    Served::Coordinator
                };
                assert_eq!(served, expected, "read {i} through {reader:?}");
            }
            for k in &chunks {
                assert_eq!(
                    origin.reads(k),
                    1,
                    "origin reads of {k:?} through {reader:?}"
                );
            }
        }
        stop(set).await;
    }

    /// An origin stream that breaks fails every one of the ten readers sharing it (none
    /// hangs); readers dropped while a shared read is in flight do not stop the others.
    pub(super) async fn a_failing_origin_fails_every_waiter_and_dropped_readers_do_not_disturb_the_rest<
        D: Driver,
    >() {
        let origin = CountingOrigin::slow(Duration::from_millis(200));
        let set = replicas::<D>(2, &[], &origin, &Setup::default()).await;
        let (reader, shared) = &set[0];
        origin.fail_streams(true);
        // Chunks this replica coordinates: its readers share its coalescing filler.
        let broken = chunk_of(reader, reader.addr, 7);
        let results = join_all((0..10).map(|_| {
            reader
                .cluster
                .read(&broken, OBJECT, shared, ReadOptions::default())
        }))
        .await;
        for result in results {
            assert!(result.is_err(), "a reader of the broken stream succeeded");
        }
        assert_eq!(origin.reads(&broken), 1);
        origin.fail_streams(false);
        // Ten readers; five are dropped while the shared read is waiting for the origin.
        let whole = chunk_of(reader, reader.addr, broken.index + 1);
        let mut readers: Vec<_> = (0..10)
            .map(|_| {
                reader
                    .cluster
                    .read(&whole, OBJECT, shared, ReadOptions::default())
            })
            .collect();
        let kept = readers.split_off(5);
        let dropping = async {
            let _ = futures_lite::future::or(join_all(readers), async {
                D::sleep(Duration::from_millis(50)).await;
                Vec::new()
            })
            .await;
        };
        let (results, ()) = futures_lite::future::zip(join_all(kept), dropping).await;
        for result in results {
            let (_, bytes) = result.expect("a kept reader");
            assert_chunk(&bytes, &whole, OBJECT);
        }
        stop(set).await;
    }

    fn settings(initial: Duration, max: Duration, connect: Duration) -> ClientSettings {
        ClientSettings {
            peer_backoff_initial: initial,
            peer_backoff_max: max,
            connect_timeout: connect,
            ..ClientSettings::default()
        }
    }

    /// A coordinator whose port refuses connections: every read is served locally at once,
    /// and the dead peer gets at most one connect attempt per backoff window.
    pub(super) async fn a_dead_coordinator_costs_one_connect_per_backoff_window<D: Driver>() {
        let dead = {
            let l = TcpListener::bind((LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap()
        };
        let hook = ConnectHook::default();
        let initial = Duration::from_millis(100);
        let setup = Setup::default()
            .with_client_settings(settings(initial, initial * 2, Duration::from_secs(2)))
            .with_connect_hook(&hook);
        let origin = CountingOrigin::default();
        let set = replicas::<D>(1, &[dead], &origin, &setup).await;
        let (reader, shared) = &set[0];
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..30 {
            let k = chunk_of(reader, dead, 100 * i);
            let t = Instant::now();
            let (served, bytes) = reader
                .cluster
                .read(&k, OBJECT, shared, ReadOptions::default())
                .await
                .unwrap();
            slowest = slowest.max(t.elapsed());
            assert_chunk(&bytes, &k, OBJECT);
            assert!(
                matches!(served, Served::Fallback("connect" | "peer_unavailable")),
                "{served:?}"
            );
            D::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let windows = (elapsed.as_millis() / initial.as_millis()) as usize + 1;
        let attempts = hook.attempts(dead);
        assert!(
            attempts >= 2 && attempts <= windows,
            "{attempts} connect attempts in {elapsed:?} ({windows} windows of {initial:?})"
        );
        eprintln!(
            "{}: dead coordinator: 30 reads in {elapsed:?}, slowest {slowest:?}, {attempts} \
             connect attempts ({windows} windows of {initial:?})",
            D::NAME
        );
        assert!(
            slowest < Duration::from_millis(250),
            "slowest read {slowest:?}"
        );
        assert_eq!(reader.cluster.unavailable_peers(), vec![dead]);
        stop(set).await;
    }

    /// A blackholed coordinator (connects never complete): the first read pays the connect
    /// timeout once, the reads after it are served locally at once, and when the coordinator
    /// answers again a probe finds it and reads go back to it; coordinator selection never
    /// changes.
    pub(super) async fn a_blackholed_coordinator_is_read_around_fast_until_it_answers_again<
        D: Driver,
    >() {
        let hook = ConnectHook::default();
        let connect = Duration::from_millis(300);
        let initial = Duration::from_millis(100);
        let setup = Setup::default()
            .with_client_settings(settings(initial, Duration::from_millis(400), connect))
            .with_connect_hook(&hook);
        let origin = CountingOrigin::default();
        let set = replicas::<D>(2, &[], &origin, &setup).await;
        let (reader, shared) = &set[0];
        let target = set[1].0.addr;
        hook.blackhole(target, true);
        // A deadline on the coordinator's fill: a blackholed coordinator is read around
        // within the deadline, before the connect timeout.
        let early = chunk_of(reader, target, 5000);
        let t = Instant::now();
        let (served, _) = reader
            .cluster
            .read(
                &early,
                OBJECT,
                shared,
                ReadOptions {
                    deadline: Some(Duration::from_millis(100)),
                },
            )
            .await
            .unwrap();
        assert_eq!(served, Served::Fallback("deadline"));
        assert!(t.elapsed() < connect, "{:?}", t.elapsed());
        let k = chunk_of(reader, target, 0);
        let t = Instant::now();
        let (served, _) = reader
            .cluster
            .read(&k, OBJECT, shared, ReadOptions::default())
            .await
            .unwrap();
        let first = t.elapsed();
        assert_eq!(served, Served::Fallback("connect_timeout"));
        assert!(first >= connect - Duration::from_millis(50), "{first:?}");
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 1..=20u64 {
            let k = chunk_of(reader, target, 50 * i);
            let t = Instant::now();
            let (served, bytes) = reader
                .cluster
                .read(&k, OBJECT, shared, ReadOptions::default())
                .await
                .unwrap();
            slowest = slowest.max(t.elapsed());
            assert_chunk(&bytes, &k, OBJECT);
            assert_eq!(served, Served::Fallback("peer_unavailable"));
            assert_eq!(
                reader.cluster.coordinator(&k).port,
                target.port(),
                "selection unchanged"
            );
            D::sleep(Duration::from_millis(25)).await;
        }
        eprintln!(
            "{}: blackholed coordinator: first read {first:?}, then 20 reads in {:?}, slowest \
             {slowest:?}, {} connect attempts",
            D::NAME,
            started.elapsed(),
            hook.attempts(target)
        );
        assert!(
            slowest < Duration::from_millis(100),
            "slowest read {slowest:?}"
        );
        let windows = (started.elapsed().as_millis() / initial.as_millis()) as usize + 2;
        assert!(
            hook.attempts(target) <= windows,
            "{} attempts",
            hook.attempts(target)
        );
        // The coordinator answers again: within a backoff window and a probe, reads go to it.
        hook.blackhole(target, false);
        let back = Instant::now();
        loop {
            let (served, _) = reader
                .cluster
                .read(&k, OBJECT, shared, ReadOptions::default())
                .await
                .unwrap();
            if served == Served::Coordinator {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(3),
                "still {served:?} after the coordinator came back"
            );
            D::sleep(Duration::from_millis(20)).await;
        }
        assert!(reader.cluster.unavailable_peers().is_empty());
        stop(set).await;
    }
}
