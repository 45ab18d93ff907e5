//! Three replicas with a static peer source filling from each other over plain HTTP/1.1 on
//! loopback: bytes verified, keep-alive reuse, pool limits and eviction, close.

mod support;

use std::time::Duration;

use futures_lite::{AsyncReadExt, StreamExt};
use orca_cluster_smol::{FillError, ListenerSettings, SyntheticOrigin};
use support::*;

const CHUNK: u64 = 1024 * 1024 + 17;

#[test]
fn three_replicas_fill_from_each_other() {
    run(30, async {
        let (replicas, _source) =
            replicas(3, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let object_size = CHUNK * 5 + 1000;
        let mut remote = 0;
        for r in &replicas {
            assert!(r.cluster.has_initial_snapshot());
            for index in 0..6 {
                let k = key(index, CHUNK);
                let coordinator = r.cluster.coordinator(&k);
                // Every replica agrees on the coordinator.
                for other in &replicas {
                    assert_eq!(other.cluster.coordinator(&k).port, coordinator.port);
                }
                if coordinator.is_self {
                    assert!(matches!(
                        r.cluster
                            .fill_from_peer(&coordinator, &k, object_size)
                            .await,
                        Err(FillError::Descriptor(_))
                    ));
                    continue;
                }
                remote += 1;
                let body = r
                    .cluster
                    .fill_from_peer(&coordinator, &k, object_size)
                    .await
                    .expect("fill");
                let expected = SyntheticOrigin::chunk_bytes(&k, object_size);
                assert_eq!(body.expected_len(), expected.len() as u64);
                let got = body.collect_bytes().await.expect("verified body");
                assert_eq!(got.len(), expected.len());
                assert!(got == expected, "bytes differ for chunk {index}");
            }
        }
        assert!(remote >= 6, "most chunks are remote for some replica");
        let stats: u64 = replicas.iter().map(|r| r.cluster.stats().fills_ok).sum();
        assert_eq!(stats, remote);
        // The listener counts a fill once its last write returned, which may be just after the
        // client has read the last byte.
        let served = || -> u64 { replicas.iter().map(|r| r.cluster.stats().served_ok).sum() };
        assert!(
            eventually(5, || served() == remote).await,
            "served {}",
            served()
        );
    });
}

#[test]
fn body_streams_and_reads() {
    run(30, async {
        let (replicas, _source) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (k, owner) = remote_key(&replicas, CHUNK);
        let peer = replicas[0].cluster.coordinator(&k);
        assert_eq!(owner, 1);
        let object_size = CHUNK * REMOTE_KEY_SEARCH;
        let expected = SyntheticOrigin::chunk_bytes(&k, object_size);

        let mut body = replicas[0]
            .cluster
            .fill_from_peer(&peer, &k, object_size)
            .await
            .unwrap();
        let mut streamed = Vec::new();
        while let Some(frame) = body.next().await {
            streamed.extend_from_slice(&frame.unwrap());
        }
        assert!(streamed == expected);

        let body = replicas[0]
            .cluster
            .fill_from_peer(&peer, &k, object_size)
            .await
            .unwrap();
        let mut read = Vec::new();
        body.into_async_read().read_to_end(&mut read).await.unwrap();
        assert!(read == expected);
    });
}

#[test]
fn keep_alive_connections_are_reused() {
    run(30, async {
        let (replicas, _source) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (k, owner) = remote_key(&replicas, 4096);
        let peer = replicas[0].cluster.coordinator(&k);
        for _ in 0..10 {
            let body = replicas[0]
                .cluster
                .fill_from_peer(&peer, &k, 100_000)
                .await
                .unwrap();
            body.collect_bytes().await.unwrap();
        }
        assert_eq!(replicas[owner].listener.accepted_connections(), 1);
        assert_eq!(replicas[0].cluster.client().idle_connections(), 1);

        // Concurrent fills need one connection each; the pool keeps them afterwards.
        let fills = (0..4).map(|_| {
            let c = replicas[0].cluster.clone();
            let k = k.clone();
            async move { c.fill_from_peer(&peer, &k, 100_000).await.unwrap() }
        });
        let mut bodies = Vec::new();
        for f in fills {
            bodies.push(f.await);
        }
        for b in bodies {
            b.collect_bytes().await.unwrap();
        }
        assert_eq!(replicas[owner].listener.accepted_connections(), 4);
        assert_eq!(replicas[0].cluster.client().idle_connections(), 4);

        // A body dropped half-read closes its connection instead of returning it.
        let (big, _) = remote_key(&replicas, CHUNK);
        let mut body = replicas[0]
            .cluster
            .fill_from_peer(&peer, &big, CHUNK * REMOTE_KEY_SEARCH)
            .await
            .unwrap();
        let _ = body.next().await;
        drop(body);
        assert_eq!(replicas[0].cluster.client().idle_connections(), 3);
    });
}

#[test]
fn pool_limits_and_eviction() {
    run(30, async {
        let (replicas, source) =
            replicas(3, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (k, owner) = remote_key(&replicas, 4096);
        let peer = replicas[0].cluster.coordinator(&k);
        let body = replicas[0]
            .cluster
            .fill_from_peer(&peer, &k, 100_000)
            .await
            .unwrap();
        body.collect_bytes().await.unwrap();
        assert_eq!(replicas[0].cluster.client().idle_connections(), 1);
        // The coordinator leaves the snapshot: its pooled connection is closed.
        let remaining: Vec<_> = source
            .get()
            .into_iter()
            .filter(|a| *a != replicas[owner].addr)
            .collect();
        source.set(remaining);
        assert!(eventually(5, || replicas[0].cluster.client().idle_connections() == 0).await);
        assert_eq!(replicas[0].cluster.peers().len(), 2);

        // At most 16 idle connections are kept per peer.
        let (k, _) = remote_key(&replicas, 4096);
        let peer = replicas[0].cluster.coordinator(&k);
        let mut bodies = Vec::new();
        for _ in 0..20 {
            bodies.push(
                replicas[0]
                    .cluster
                    .fill_from_peer(&peer, &k, 100_000)
                    .await
                    .unwrap(),
            );
        }
        for b in bodies {
            b.collect_bytes().await.unwrap();
        }
        assert_eq!(replicas[0].cluster.client().idle_connections(), 16);
    });
}

#[test]
fn idle_timeout_and_zero_pool() {
    use orca_cluster_smol::{ClientSettings, Cluster, Options};
    run(30, async {
        let (replicas, source) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (k, owner) = remote_key(&replicas, 4096);
        for (settings, expect_idle) in [
            (
                ClientSettings {
                    max_idle_per_peer: 0,
                    idle_timeout: Duration::from_secs(30),
                    ..ClientSettings::default()
                },
                0,
            ),
            (
                ClientSettings {
                    max_idle_per_peer: 4,
                    idle_timeout: Duration::from_millis(1),
                    ..ClientSettings::default()
                },
                1,
            ),
        ] {
            // The client is 127.0.0.1:1 in its own copy of the list (self must be listed).
            let phantom = std::net::SocketAddr::new(LOCALHOST, 1);
            let client_source =
                orca_cluster_smol::StaticPeerSource::new(source.get().into_iter().chain([phantom]));
            let client = Cluster::start(
                config(None),
                Options::default()
                    .with_peer_source(client_source)
                    .with_self_port(1)
                    .with_client_settings(settings),
            )
            .await
            .unwrap();
            let peer = orca_cluster_smol::Peer {
                ip: LOCALHOST,
                port: replicas[owner].addr.port(),
                is_self: false,
            };
            let before = replicas[owner].listener.accepted_connections();
            for _ in 0..2 {
                let body = client.fill_from_peer(&peer, &k, 100_000).await.unwrap();
                body.collect_bytes().await.unwrap();
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
            // No reuse: disabled, or expired before the second fill.
            assert_eq!(replicas[owner].listener.accepted_connections() - before, 2);
            // With a 1 ms idle timeout the pool's sweeper may already have closed it.
            assert!(client.client().idle_connections() <= expect_idle);
            client.close(Duration::from_secs(2)).await.unwrap();
        }
    });
}

#[test]
fn close_is_idempotent_and_stops_fills() {
    run(30, async {
        let (replicas, _source) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (k, _) = remote_key(&replicas, 4096);
        let peer = replicas[0].cluster.coordinator(&k);
        let mut changes = replicas[0].cluster.subscribe();
        replicas[0]
            .cluster
            .close(Duration::from_secs(2))
            .await
            .unwrap();
        replicas[0]
            .cluster
            .close(Duration::from_secs(2))
            .await
            .unwrap();
        replicas[0]
            .cluster
            .clone()
            .close(Duration::ZERO)
            .await
            .unwrap();
        assert!(changes.changed().await.is_none());
        assert_eq!(
            replicas[0].cluster.peers().len(),
            2,
            "snapshot stays readable"
        );
        assert!(matches!(
            replicas[0].cluster.fill_from_peer(&peer, &k, 100_000).await,
            Err(FillError::Closed)
        ));
        let lookups = replicas[0].cluster.stats().lookups;
        async_io::Timer::after(Duration::from_millis(300)).await;
        assert_eq!(
            replicas[0].cluster.stats().lookups,
            lookups,
            "refresh stopped"
        );
    });
}
