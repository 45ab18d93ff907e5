//! Helpers shared by the integration tests: replicas on loopback, chunk keys, a counting
//! transport.
#![allow(dead_code)] // each test binary uses a different subset

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use orca_cluster_tokio::{
    BoxIo, ChunkKey, Cluster, ClusterConfig, ConnectFuture, FillListener, Filler, ListenerHandle,
    ListenerSettings, Options, StaticPeerSource, Transport,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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

/// A config for a replica on 127.0.0.1 with a static source: fast refresh and lookups.
pub fn config() -> ClusterConfig {
    ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        membership_refresh: Duration::from_millis(100),
        lookup_timeout: Duration::from_millis(500),
        ..ClusterConfig::default()
    }
}

/// One replica: its cluster handle and its serving listener.
pub struct Replica {
    pub cluster: Cluster,
    pub listener: ListenerHandle,
    pub addr: SocketAddr,
}

impl Replica {
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
    settings: ListenerSettings,
) -> (Vec<Replica>, StaticPeerSource) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(FillListener::bind((LOCALHOST, 0).into()).await.unwrap());
    }
    let source = StaticPeerSource::new(listeners.iter().map(FillListener::local_addr));
    let mut out = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr();
        let cluster = Cluster::start(
            config.clone(),
            options
                .clone()
                .with_peer_source(source.clone())
                .with_self_port(addr.port()),
        )
        .await
        .unwrap();
        assert!(cluster.has_initial_snapshot());
        assert_eq!(cluster.peers().len(), n);
        let handle = listener.serve(&cluster, filler.clone(), settings.clone());
        out.push(Replica {
            cluster,
            listener: handle,
            addr,
        });
    }
    (out, source)
}

/// A TCP transport that counts dials and live connections.
#[derive(Clone, Debug, Default)]
pub struct CountingTransport {
    pub dials: Arc<AtomicUsize>,
    pub live: Arc<AtomicUsize>,
}

impl CountingTransport {
    pub fn dials(&self) -> usize {
        self.dials.load(Ordering::SeqCst)
    }
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

impl Transport<BoxIo> for CountingTransport {
    fn connect(&self, addr: SocketAddr) -> ConnectFuture<BoxIo> {
        let dials = self.dials.clone();
        let live = self.live.clone();
        Box::pin(async move {
            dials.fetch_add(1, Ordering::SeqCst);
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            live.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Counted { stream, live }) as BoxIo)
        })
    }
}

struct Counted {
    stream: TcpStream,
    live: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
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
