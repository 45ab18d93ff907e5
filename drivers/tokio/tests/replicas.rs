//! HTTP/2 between tokio replicas: three replicas on loopback filling every chunk from each
//! other over h2c, and concurrent first fills sharing one multiplexed connection. The same over
//! HTTP/1.1, the pool and eviction are in the conformance suite, for both drivers.

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use orca_cluster_tokio::core::fill::DescriptorError;
use orca_cluster_tokio::{FillError, Options, Peer, Protocol, SyntheticOrigin};
use support::{config, eventually, init_tracing, key, replicas};

const CHUNK: u64 = 300 * 1024 + 7;
const OBJECT: u64 = CHUNK * 5 + 1234; // 6 chunks, the last one short

/// Three replicas agree on every coordinator and fill every chunk they do not coordinate from
/// each other over h2c; the counters of both sides add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fill_from_each_other_over_h2c() {
    init_tracing();
    let options = Options::default().with_protocol(Protocol::Http2);
    let (nodes, _source) = replicas(3, config(None), options, SyntheticOrigin).await;
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

/// An object big enough that every replica coordinates some of its chunks.
const BIG: u64 = CHUNK * 1000;

/// Finds a chunk of `BIG` that replica `to` coordinates.
fn chunk_of(nodes: &[support::Replica], to: usize) -> orca_cluster_tokio::ChunkKey {
    (0..1000)
        .map(|i| key(i, CHUNK))
        .find(|k| nodes[to].cluster.is_coordinator(k))
        .expect("some chunk belongs to the replica")
}

/// 16 concurrent first fills to one peer over h2c open one connection, which later fills
/// reuse; closing the client closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_fills_share_one_h2_connection() {
    init_tracing();
    let options = Options::default().with_protocol(Protocol::Http2);
    let (nodes, _source) = replicas(2, config(None), options, SyntheticOrigin).await;
    let k = chunk_of(&nodes, 1);
    let peer = nodes[0].cluster.coordinator(&k);
    let fills = (0..16).map(|_| async {
        let body = nodes[0].cluster.fill_from_peer(&peer, &k, BIG).await?;
        body.collect_bytes().await
    });
    for result in join_all(fills).await {
        assert_eq!(result.unwrap().len() as u64, CHUNK);
    }
    let listener = &nodes[1].listener;
    assert_eq!(
        listener.accepted_connections(),
        1,
        "16 concurrent first fills open one connection"
    );
    for _ in 0..3 {
        let body = nodes[0]
            .cluster
            .fill_from_peer(&peer, &k, BIG)
            .await
            .unwrap();
        body.collect_bytes().await.unwrap();
    }
    assert_eq!(listener.accepted_connections(), 1, "later fills reuse it");
    assert_eq!(listener.open_connections(), 1);
    nodes[0]
        .cluster
        .close(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || listener.open_connections() == 0).await);
    for node in nodes {
        node.stop().await;
    }
}
