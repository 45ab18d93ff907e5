//! Helpers shared by the integration tests: chunk keys, replica sets on loopback, small
//! hand-written HTTP servers, and a bounded wait. Test certificates come from
//! `orca-cluster-test-support`.

#![allow(dead_code)]

pub mod rawserver;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use orca_cluster_smol::{
    ChunkKey, Cluster, ClusterConfig, FillListener, Filler, ListenerHandle, ListenerSettings,
    Options, StaticPeerSource, TlsSettings,
};

/// How many chunk indices [`remote_key`] tries: objects in the tests have at least this many
/// chunks.
pub const REMOTE_KEY_SEARCH: u64 = 24;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Runs `future` on smol, failing the test if it takes longer than `secs` seconds.
pub fn run<F: Future>(secs: u64, future: F) -> F::Output {
    smol::block_on(async {
        match futures_lite::future::or(async { Some(future.await) }, async {
            async_io::Timer::after(Duration::from_secs(secs)).await;
            None
        })
        .await
        {
            Some(out) => out,
            None => panic!("test did not finish within {secs} s"),
        }
    })
}

/// Polls `condition` every 10 ms for at most `secs` seconds; returns whether it became true.
pub async fn eventually(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        async_io::Timer::after(Duration::from_millis(10)).await;
    }
    condition()
}

pub fn key(index: u64, chunk_size: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "origin-1".into(),
        bucket: "bucket".into(),
        object_key: "path/to/object with spaces".into(),
        etag: "\"etag-1\"".into(),
        chunk_size,
        index,
    }
}

/// A config for a replica on 127.0.0.1 with a fast refresh.
pub fn config(tls: Option<TlsSettings>) -> ClusterConfig {
    ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        membership_refresh: Duration::from_millis(100),
        lookup_timeout: Duration::from_secs(1),
        internal_tls: tls.unwrap_or_default(),
        ..ClusterConfig::default()
    }
}

pub struct Replica {
    pub cluster: Cluster,
    pub listener: ListenerHandle,
    pub addr: SocketAddr,
}

/// `n` replicas on 127.0.0.1 sharing one static source, each serving `filler()`.
pub async fn replicas<F: Filler>(
    n: usize,
    tls: impl Fn(usize) -> Option<TlsSettings>,
    filler: impl Fn() -> F,
    settings: ListenerSettings,
) -> (Vec<Replica>, StaticPeerSource) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(
            FillListener::bind(SocketAddr::new(LOCALHOST, 0))
                .await
                .expect("bind"),
        );
    }
    let source = StaticPeerSource::new(listeners.iter().map(FillListener::local_addr));
    let mut out = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let addr = listener.local_addr();
        let cluster = Cluster::start(
            config(tls(i)),
            Options::default()
                .with_peer_source(source.clone())
                .with_self_port(addr.port()),
        )
        .await
        .expect("start");
        let handle = listener.serve(&cluster, filler(), settings.clone());
        out.push(Replica {
            cluster,
            listener: handle,
            addr,
        });
    }
    for r in &out {
        assert!(
            eventually(5, || r.cluster.peers().len() == n).await,
            "replicas see each other"
        );
    }
    (out, source)
}

/// A key whose coordinator (in `replicas[0]`'s snapshot) is not replica 0, with the index of
/// the coordinating replica. Only the first two chunks are considered, so any object of at
/// least two chunks has it (with two replicas, either chunk may be remote: callers use more).
pub fn remote_key(replicas: &[Replica], chunk_size: u64) -> (ChunkKey, usize) {
    for i in 0..REMOTE_KEY_SEARCH {
        let k = key(i, chunk_size);
        let c = replicas[0].cluster.coordinator(&k);
        if !c.is_self {
            let owner = replicas
                .iter()
                .position(|r| r.addr.port() == c.port)
                .expect("coordinator is a replica");
            return (k, owner);
        }
    }
    panic!("no remote key found");
}
