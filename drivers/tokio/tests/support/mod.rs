//! Helpers of the tokio driver's own tests (HTTP/2, hyper and tower, ALPN, curl): chunk keys,
//! a replica configuration, replicas on loopback. Behaviour both drivers share is tested once,
//! in the conformance suite (`tests/tests/conformance.rs`).
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use orca_cluster_tokio::{
    ChunkKey, Cluster, ClusterConfig, FillClient, FillListener, Filler, ListenerHandle,
    ListenerSettings, Options, Peer, Protocol, StaticPeerSource, TlsSettings,
};

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Chunk `index` of the test object with chunks of `chunk_size` bytes.
pub fn key(index: u64, chunk_size: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "s3".into(),
        bucket: "media".into(),
        object_key: "videos/cat 1.mp4".into(),
        etag: "\"v1\"".into(),
        chunk_size,
        index,
    }
}

/// A config for a replica on 127.0.0.1 with a static source: fast refresh and lookups, and
/// `internal_tls` if given.
pub fn config(tls: Option<&TlsSettings>) -> ClusterConfig {
    ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        membership_refresh: Duration::from_millis(100),
        lookup_timeout: Duration::from_millis(500),
        internal_tls: tls.cloned().unwrap_or_default(),
        ..ClusterConfig::default()
    }
}

/// `addr` as a non-self peer.
pub fn peer(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

/// A fill client (no cluster) with `config`'s TLS settings and `protocol`.
pub fn client(config: &ClusterConfig, protocol: Protocol) -> FillClient {
    FillClient::new(config, &Options::default().with_protocol(protocol)).unwrap()
}

/// One replica: its cluster handle and its serving listener.
pub struct Replica {
    pub cluster: Cluster,
    pub listener: ListenerHandle,
    pub addr: SocketAddr,
}

impl Replica {
    /// A replica on 127.0.0.1 with `config`, serving `filler` with `settings`; its static list
    /// is itself and `others`.
    pub async fn start(
        config: ClusterConfig,
        others: &[SocketAddr],
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> Replica {
        let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
        let addr = listener.local_addr();
        let source = StaticPeerSource::new(std::iter::once(addr).chain(others.iter().copied()));
        let options = Options::default()
            .with_peer_source(source)
            .with_self_port(addr.port());
        let cluster = Cluster::start(config, options).await.unwrap();
        let listener = listener.serve(&cluster, filler, settings);
        Replica {
            cluster,
            listener,
            addr,
        }
    }

    pub async fn stop(self) {
        self.listener.shutdown(Duration::from_secs(1)).await;
        self.cluster.close(Duration::from_secs(1)).await.unwrap();
    }
}

/// Starts `n` replicas on 127.0.0.1 with distinct ports, sharing one static peer source, each
/// with `options` (plus the source and its self port), `config` and `filler`.
pub async fn replicas<F: Filler + Clone>(
    n: usize,
    config: ClusterConfig,
    options: Options,
    filler: F,
) -> (Vec<Replica>, StaticPeerSource) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(FillListener::bind((LOCALHOST, 0).into()).await.unwrap());
    }
    let source = StaticPeerSource::new(listeners.iter().map(FillListener::local_addr));
    let mut out = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr();
        let options = options
            .clone()
            .with_peer_source(source.clone())
            .with_self_port(addr.port());
        let cluster = Cluster::start(config.clone(), options).await.unwrap();
        assert_eq!(cluster.peers().len(), n);
        let listener = listener.serve(&cluster, filler.clone(), ListenerSettings::default());
        out.push(Replica {
            cluster,
            listener,
            addr,
        });
    }
    (out, source)
}

/// Polls `cond` every 10 ms for up to `within`; returns whether it became true.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Captures formatted log lines (a `tracing_subscriber` writer).
#[derive(Clone, Default)]
pub struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
