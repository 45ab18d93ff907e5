//! Three replicas on loopback with a static peer list, and the read path of a cache through
//! each: `Cluster::read` fetches a chunk from its coordinator (or from the local filler when
//! this replica coordinates it, or when the coordinator cannot serve it), the bytes are
//! checked, and concurrent reads of one chunk read the origin once.
//!
//! Run: `cargo run -p orca-cluster-tokio --example three_replicas` (no Kubernetes, no DNS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orca_cluster_tokio::{
    ChunkKey, ChunkStream, Cluster, ClusterConfig, CoalescingFiller, FillListener, FillRequest,
    Filler, FillerError, ListenerHandle, ListenerSettings, Options, StaticPeerSource,
    SyntheticOrigin,
};

/// The "object store": deterministic bytes, 20 ms of latency, and a count of reads per chunk.
#[derive(Clone, Default)]
struct Origin {
    reads: Arc<Mutex<HashMap<u64, usize>>>,
}

impl Filler for Origin {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(request.key.index)
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(SyntheticOrigin::stream(&request.key, request.object_size))
    }
}

struct Replica {
    cluster: Cluster,
    listener: ListenerHandle,
    /// What this replica serves to its peers and reads with: one coalescing scope.
    filler: CoalescingFiller<Origin>,
}

fn chunk(index: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "example".into(),
        bucket: "media".into(),
        object_key: "videos/intro.mp4".into(),
        etag: "v1".into(),
        chunk_size: 1 << 20,
        index,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const OBJECT_SIZE: u64 = 6 << 20; // six chunks of 1 MiB
    let origin = Origin::default();

    // Three listeners on free loopback ports; every replica lists all three.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(FillListener::bind("127.0.0.1:0".parse()?).await?);
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(FillListener::local_addr).collect();
    let peers = StaticPeerSource::new(addrs.clone());
    let mut replicas = Vec::new();
    for listener in listeners {
        let config = ClusterConfig {
            // With a static list the service name only labels logs.
            service: "three-replicas.example".into(),
            self_pod_ip: vec!["127.0.0.1".parse()?],
            ..ClusterConfig::default()
        };
        let options = Options::default()
            .with_peer_source(peers.clone())
            .with_self_port(listener.local_addr().port());
        let cluster = Cluster::start(config, options).await?;
        let filler = CoalescingFiller::new(origin.clone());
        let listener = listener.serve(&cluster, filler.clone(), ListenerSettings::default());
        replicas.push(Replica {
            cluster,
            listener,
            filler,
        });
    }

    // Every chunk through every replica: each read says where its bytes came from.
    for (i, r) in replicas.iter().enumerate() {
        for index in 0..6 {
            let key = chunk(index);
            let read = r.cluster.read(&key, OBJECT_SIZE, &r.filler).await?;
            let source = read.source().to_string();
            let bytes = read.collect_bytes().await?;
            assert_eq!(bytes, SyntheticOrigin::chunk_bytes(&key, OBJECT_SIZE));
            println!(
                "replica {i} chunk {index}: {} bytes from {source}",
                bytes.len()
            );
        }
    }

    // Ten concurrent reads of one chunk through each replica: one origin read per replica
    // round, on the chunk's coordinator.
    for (i, r) in replicas.iter().enumerate() {
        let key = chunk(10 + i as u64);
        let before = origin
            .reads
            .lock()
            .unwrap()
            .get(&key.index)
            .copied()
            .unwrap_or(0);
        let reads = (0..10).map(|_| async {
            let read = r.cluster.read(&key, 64 << 20, &r.filler).await?;
            read.collect_bytes()
                .await
                .map_err(Box::<dyn std::error::Error>::from)
        });
        for bytes in futures_util::future::join_all(reads).await {
            assert_eq!(bytes?, SyntheticOrigin::chunk_bytes(&key, 64 << 20));
        }
        let after = origin
            .reads
            .lock()
            .unwrap()
            .get(&key.index)
            .copied()
            .unwrap_or(0);
        println!(
            "replica {i}: 10 concurrent reads of chunk {}: {} origin read(s)",
            key.index,
            after - before
        );
        assert_eq!(after - before, 1);
    }

    for r in replicas {
        r.listener.shutdown(Duration::from_secs(2)).await;
        r.cluster.close(Duration::from_secs(2)).await?;
    }
    println!("ok");
    Ok(())
}
