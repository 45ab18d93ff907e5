//! Three replicas on loopback with a static peer list, one of which then dies without leaving
//! the list (as a terminating pod stays in its Service's DNS answer): reads through the others
//! keep succeeding, and fast — the dead coordinator's chunks are read locally after one failed
//! connect, and its backoff window spares every later read the connect attempt.
//!
//! Run: `cargo run -p orca-cluster-smol --example three_replicas` (no Kubernetes, no DNS).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orca_cluster_smol::{
    ChunkKey, Cluster, ClusterConfig, CoalescingFiller, FillListener, ListenerHandle,
    ListenerSettings, Options, ReadSource, StaticPeerSource, SyntheticOrigin,
};

/// A started replica: its handle, its serving listener and the filler it reads with.
type Replica = (Cluster, ListenerHandle, CoalescingFiller<SyntheticOrigin>);

async fn start(
    listener: FillListener,
    peers: &StaticPeerSource,
) -> Result<Replica, Box<dyn std::error::Error>> {
    let port = listener.local_addr().port();
    let config = ClusterConfig {
        // With a static list the service name only labels logs.
        service: "three-replicas.example".into(),
        self_pod_ip: vec!["127.0.0.1".parse()?],
        ..ClusterConfig::default()
    };
    let options = Options::default()
        .with_peer_source(peers.clone())
        .with_self_port(port);
    let cluster = Cluster::start(config, options).await?;
    let filler = CoalescingFiller::new(SyntheticOrigin);
    let handle = listener.serve(&cluster, filler.clone(), ListenerSettings::default());
    Ok((cluster, handle, filler))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let bound = [
            FillListener::bind("127.0.0.1:0".parse()?).await?,
            FillListener::bind("127.0.0.1:0".parse()?).await?,
            FillListener::bind("127.0.0.1:0".parse()?).await?,
        ];
        let addrs: Vec<SocketAddr> = bound.iter().map(FillListener::local_addr).collect();
        let peers = StaticPeerSource::new(addrs.clone());
        let mut replicas = Vec::new();
        for listener in bound {
            replicas.push(start(listener, &peers).await?);
        }
        let object_size = 32u64 << 20;
        let key = |index| ChunkKey {
            origin_id: "example".into(),
            bucket: "media".into(),
            object_key: "videos/intro.mp4".into(),
            etag: "v1".into(),
            chunk_size: 1 << 20,
            index,
        };

        // Replica 2 dies; the others still list it.
        let (dead_cluster, dead_listener, _) = replicas.pop().ok_or("no replica")?;
        dead_listener.shutdown(Duration::from_secs(1)).await;
        dead_cluster.close(Duration::from_secs(1)).await?;
        let dead = addrs[2];

        for (i, (cluster, _, filler)) in replicas.iter().enumerate() {
            let mut slowest = Duration::ZERO;
            let mut from_dead = 0;
            for index in 0..32 {
                let started = Instant::now();
                let read = cluster.read(&key(index), object_size, filler).await?;
                if let ReadSource::Fallback { coordinator, error } = read.source() {
                    assert_eq!(coordinator.port, dead.port());
                    if from_dead == 0 {
                        println!("replica {i}: coordinator {dead} is gone: {error}");
                    }
                    from_dead += 1;
                }
                let bytes = read.collect_bytes().await?;
                assert_eq!(
                    bytes,
                    SyntheticOrigin::chunk_bytes(&key(index), object_size)
                );
                slowest = slowest.max(started.elapsed());
            }
            println!(
                "replica {i}: 32 chunks verified, {from_dead} of them read locally around the \
                 dead coordinator, slowest read {slowest:?}"
            );
        }

        for (cluster, listener, _) in replicas {
            listener.shutdown(Duration::from_secs(1)).await;
            cluster.close(Duration::from_secs(1)).await?;
        }
        println!("ok");
        Ok(())
    })
}
