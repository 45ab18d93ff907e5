//! [`FillBench`]: a serving and a filling replica on loopback.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use orca_cluster_driver_common::BytesFiller;
use orca_cluster_smol::{
    ChunkKey, Cluster, ClusterConfig, FillError, FillListener, ListenerHandle, ListenerSettings,
    Options, Peer, StaticPeerSource, TlsSettings,
};

use super::filler::payload;
use super::{FRAME, LOCALHOST};

type FillFuture<'a> = Pin<Box<dyn Future<Output = Result<Duration, FillError>> + Send + 'a>>;

/// Two replicas on loopback: `server` serves a [`BytesFiller`], `client` fills from it.
#[derive(Debug)]
pub struct FillBench {
    /// The filling replica.
    pub client: Cluster,
    /// The serving replica.
    pub server: Cluster,
    listener: ListenerHandle,
    peer: Peer,
    key: ChunkKey,
    object_size: u64,
}

impl FillBench {
    /// Starts both replicas. `tls` is `(server, client)` settings for mutual TLS, or `None` for
    /// plain HTTP/1.1. Each fill moves `fill_bytes` bytes.
    pub async fn start(
        tls: Option<(TlsSettings, TlsSettings)>,
        fill_bytes: usize,
    ) -> Result<FillBench, Box<dyn Error + Send + Sync>> {
        let listener = FillListener::bind(SocketAddr::new(LOCALHOST, 0)).await?;
        let server_addr = listener.local_addr();
        // The client's "address" only has to be distinct; nothing dials it.
        let client_addr = SocketAddr::new(LOCALHOST, 1);
        let source = StaticPeerSource::new([server_addr, client_addr]);
        let (server_tls, client_tls) = match tls {
            Some((s, c)) => (s, c),
            None => (TlsSettings::default(), TlsSettings::default()),
        };
        let config = |tls: TlsSettings| ClusterConfig {
            service: "bench".into(),
            self_pod_ip: vec![LOCALHOST],
            internal_tls: tls,
            membership_refresh: Duration::from_secs(60),
            ..ClusterConfig::default()
        };
        let options = |port| {
            Options::default()
                .with_peer_source(source.clone())
                .with_self_port(port)
        };
        let server = Cluster::start(config(server_tls), options(server_addr.port())).await?;
        let client = Cluster::start(config(client_tls), options(client_addr.port())).await?;
        let filler = BytesFiller::new(payload(fill_bytes), FRAME);
        let settings = ListenerSettings::default();
        let listener = listener.serve(&server, filler, settings);
        let chunk_size = fill_bytes as u64;
        let key = (0..10_000)
            .map(|index| ChunkKey {
                origin_id: "bench".into(),
                bucket: "b".into(),
                object_key: "object".into(),
                etag: "1".into(),
                chunk_size,
                index,
            })
            .find(|k| server.is_coordinator(k) && !client.is_coordinator(k))
            .ok_or("no chunk coordinated by the server")?;
        let peer = client.coordinator(&key);
        Ok(FillBench {
            client,
            server,
            listener,
            peer,
            object_size: chunk_size * 10_001,
            key,
        })
    }

    /// One fill, its body consumed frame by frame (no copy); returns the bytes received.
    pub async fn fill_once(&self) -> Result<u64, FillError> {
        let mut body = self
            .client
            .fill_from_peer(&self.peer, &self.key, self.object_size)
            .await?;
        let mut total = 0u64;
        while let Some(frame) = body.next().await {
            total += frame?.len() as u64;
        }
        Ok(total)
    }

    /// `n` fills at once; returns the latency of each.
    pub async fn fill_concurrent(&self, n: usize) -> Result<Vec<Duration>, FillError> {
        let fills = (0..n).map(|_| async {
            let started = Instant::now();
            self.fill_once().await.map(|_| started.elapsed())
        });
        let mut tasks: Vec<FillFuture<'_>> = fills.map(|f| Box::pin(f) as _).collect();
        let mut results = Vec::with_capacity(n);
        // Poll all together (HTTP/1.1: one connection each).
        futures_lite::future::poll_fn(|cx| {
            let mut i = 0;
            while i < tasks.len() {
                if let std::task::Poll::Ready(r) = tasks[i].as_mut().poll(cx) {
                    results.push(r);
                    drop(tasks.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if tasks.is_empty() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().collect()
    }

    /// Shuts the listener down and closes both clusters.
    pub async fn shutdown(self) {
        self.listener.shutdown(Duration::from_secs(1)).await;
        let _ = self.client.close(Duration::from_secs(1)).await;
        let _ = self.server.close(Duration::from_secs(1)).await;
    }
}
