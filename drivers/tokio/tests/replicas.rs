//! Three replicas on loopback (static peer source, distinct ports) filling from each other,
//! over h2c and HTTP/1.1; connection reuse and eviction.

mod support;

use orca_cluster_tokio::Protocol;
use std::time::Duration;

use futures_util::future::join_all;
use orca_cluster_tokio::core::fill::DescriptorError;
use orca_cluster_tokio::{FillError, ListenerSettings, Options, Peer, SyntheticOrigin};
use support::{CountingTransport, config, eventually, init_tracing, key, replicas};

const CHUNK: u64 = 300 * 1024 + 7;
const OBJECT: u64 = CHUNK * 5 + 1234; // 6 chunks, the last one short

async fn every_replica_fills_every_chunk(options: Options) {
    init_tracing();
    let (nodes, _source) = replicas(
        3,
        config(),
        options,
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    let chunks = OBJECT.div_ceil(CHUNK);
    let mut remote_fills = 0;
    for index in 0..chunks {
        let k = key(index, CHUNK);
        let expected = SyntheticOrigin::chunk_bytes(&k, OBJECT);
        let coordinators: Vec<Peer> = nodes
            .iter()
            .map(|n| {
                let mut c = n.cluster.coordinator(&k);
                c.is_self = false;
                c
            })
            .collect();
        assert!(
            coordinators.windows(2).all(|w| w[0] == w[1]),
            "replicas agree on the coordinator of chunk {index}: {coordinators:?}"
        );
        for node in &nodes {
            let coordinator = node.cluster.coordinator(&k);
            assert_eq!(node.cluster.ranked(&k)[0].0, coordinator);
            if coordinator.is_self {
                assert!(node.cluster.is_coordinator(&k));
                let err = node
                    .cluster
                    .fill_from_peer(&coordinator, &k, OBJECT)
                    .await
                    .unwrap_err();
                assert!(matches!(
                    err,
                    FillError::Descriptor(DescriptorError::TargetIsSelf)
                ));
                continue;
            }
            let body = node
                .cluster
                .fill_from_peer(&coordinator, &k, OBJECT)
                .await
                .unwrap();
            assert_eq!(body.expected_len(), expected.len() as u64);
            let bytes = body.collect_bytes().await.unwrap();
            assert_eq!(bytes.len(), expected.len(), "chunk {index}");
            assert!(bytes == expected, "chunk {index} bytes differ");
            remote_fills += 1;
        }
    }
    assert_eq!(
        remote_fills,
        chunks * 2,
        "each chunk is remote for 2 of 3 replicas"
    );
    let started: u64 = nodes.iter().map(|n| n.cluster.stats().fills_started).sum();
    let ok: u64 = nodes.iter().map(|n| n.cluster.stats().fills_ok).sum();
    let served: u64 = nodes.iter().map(|n| n.cluster.stats().served_ok).sum();
    let bytes_in: u64 = nodes.iter().map(|n| n.cluster.stats().bytes_received).sum();
    let bytes_out: u64 = nodes.iter().map(|n| n.cluster.stats().bytes_served).sum();
    assert_eq!(
        (started, ok, served),
        (remote_fills, remote_fills, remote_fills)
    );
    assert_eq!(bytes_in, OBJECT * 2);
    assert_eq!(bytes_out, bytes_in);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fill_from_each_other_over_h2c() {
    every_replica_fills_every_chunk(Options::default().with_protocol(Protocol::Http2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fill_from_each_other_over_http1() {
    every_replica_fills_every_chunk(Options::default().with_protocol(Protocol::Http1)).await;
}

/// An object big enough that every replica coordinates some of its chunks.
const BIG: u64 = CHUNK * 1000;

/// Finds a chunk of `BIG` that replica `to` coordinates.
fn chunk_of(nodes: &[support::Replica], to: usize) -> orca_cluster_tokio::ChunkKey {
    (0..1000)
        .map(|i| key(i, CHUNK))
        .find(|k| nodes[to].cluster.is_coordinator(k))
        .expect("some chunk belongs to the replica")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_fills_share_one_h2_connection() {
    init_tracing();
    let transport = CountingTransport::default();
    let (nodes, _source) = replicas(
        2,
        config(),
        Options::default()
            .with_protocol(Protocol::Http2)
            .with_transport(transport.clone()),
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    let k = chunk_of(&nodes, 1);
    let peer = nodes[0].cluster.coordinator(&k);
    let fills = (0..16).map(|_| async {
        let body = nodes[0].cluster.fill_from_peer(&peer, &k, BIG).await?;
        body.collect_bytes().await
    });
    for result in join_all(fills).await {
        assert_eq!(result.unwrap().len() as u64, CHUNK);
    }
    assert_eq!(
        transport.dials(),
        1,
        "16 concurrent first fills open one connection"
    );
    // Later fills reuse it.
    for _ in 0..3 {
        let body = nodes[0]
            .cluster
            .fill_from_peer(&peer, &k, BIG)
            .await
            .unwrap();
        body.collect_bytes().await.unwrap();
    }
    assert_eq!(transport.dials(), 1);
    assert_eq!(transport.live(), 1);
    for node in nodes {
        node.stop().await;
    }
    assert!(eventually(Duration::from_secs(2), || transport.live() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_connections_are_pooled_and_reused() {
    init_tracing();
    let transport = CountingTransport::default();
    let (nodes, _source) = replicas(
        2,
        config(),
        Options::default()
            .with_protocol(Protocol::Http1)
            .with_transport(transport.clone()),
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    let k = chunk_of(&nodes, 1);
    let peer = nodes[0].cluster.coordinator(&k);
    for _ in 0..5 {
        let body = nodes[0]
            .cluster
            .fill_from_peer(&peer, &k, BIG)
            .await
            .unwrap();
        body.collect_bytes().await.unwrap();
    }
    assert_eq!(
        transport.dials(),
        1,
        "sequential HTTP/1.1 fills reuse one connection"
    );
    let fills = (0..4).map(|_| async {
        let body = nodes[0].cluster.fill_from_peer(&peer, &k, BIG).await?;
        body.collect_bytes().await
    });
    for result in join_all(fills).await {
        result.unwrap();
    }
    let after_burst = transport.dials();
    assert!(
        (2..=4).contains(&after_burst),
        "a burst of 4 opens up to 3 more: {after_burst}"
    );
    // An abandoned body cannot be reused: its connection is closed, not pooled.
    let body = nodes[0]
        .cluster
        .fill_from_peer(&peer, &k, BIG)
        .await
        .unwrap();
    drop(body);
    assert!(eventually(Duration::from_secs(2), || transport.live() < after_burst).await);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_peer_loses_its_connection() {
    init_tracing();
    let transport = CountingTransport::default();
    let (nodes, source) = replicas(
        3,
        config(),
        Options::default().with_transport(transport.clone()),
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    let k = chunk_of(&nodes, 2);
    let peer = nodes[0].cluster.coordinator(&k);
    let body = nodes[0]
        .cluster
        .fill_from_peer(&peer, &k, BIG)
        .await
        .unwrap();
    body.collect_bytes().await.unwrap();
    assert_eq!(transport.live(), 1);
    assert_eq!(
        nodes[0].cluster.client().connected_peers(),
        vec![nodes[2].addr]
    );

    let mut changes = nodes[0].cluster.subscribe();
    source.set([nodes[0].addr, nodes[1].addr]);
    let snapshot = tokio::time::timeout(Duration::from_secs(2), changes.changed())
        .await
        .expect("a change within the refresh")
        .expect("not closed");
    assert_eq!(snapshot.len(), 2);
    assert!(
        eventually(Duration::from_secs(2), || transport.live() == 0).await,
        "the departed peer's connection is closed"
    );
    assert!(nodes[0].cluster.client().connected_peers().is_empty());
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_the_idle_timeout() {
    init_tracing();
    let transport = CountingTransport::default();
    let settings = orca_cluster_tokio::ClientSettings {
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (nodes, _source) = replicas(
        2,
        config(),
        Options::default()
            .with_transport(transport.clone())
            .with_client_settings(settings),
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    let k = chunk_of(&nodes, 1);
    let peer = nodes[0].cluster.coordinator(&k);
    let body = nodes[0]
        .cluster
        .fill_from_peer(&peer, &k, BIG)
        .await
        .unwrap();
    // A slow reader keeps the connection: it is busy, not idle.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(transport.live(), 1);
    body.collect_bytes().await.unwrap();
    assert!(eventually(Duration::from_secs(2), || transport.live() == 0).await);
    // The next fill dials again.
    let body = nodes[0]
        .cluster
        .fill_from_peer(&peer, &k, BIG)
        .await
        .unwrap();
    body.collect_bytes().await.unwrap();
    assert_eq!(transport.dials(), 2);
    for node in nodes {
        node.stop().await;
    }
}
