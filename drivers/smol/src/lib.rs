//! # orca-cluster-smol
//!
//! The smol driver of orca-cluster: replicas of a Kubernetes Deployment discover each other
//! through DNS, agree on one coordinator per cache chunk by rendezvous hashing, and stream
//! chunks to each other over an internal HTTP/1.1 fill RPC — plain in development, mutual TLS
//! in production. It has the same handle API as the tokio driver (`orca-cluster-tokio`); every
//! decision (membership, wire format, admission, response checks) comes from the sans-IO core
//! (`orca-cluster-core`) and the runtime-agnostic driver crate (`orca-cluster-driver-common`).
//! No tokio is linked.
//!
//! - [`Cluster`] — start with a [`ClusterConfig`] and [`Options`]; look up coordinators
//!   lock-free; [`Cluster::fill_from_peer`] fetches a chunk as a verified [`FillBody`].
//! - [`FillListener`] — serves `GET /internal/fill` for the application's [`Filler`].
//! - DNS: hickory's resolver running on smol ([`dns_runtime`]): `/etc/resolv.conf` (search
//!   domains, ndots), A and AAAA, TCP when a UDP answer is truncated (a Service with 1000 pods
//!   works), no answer cache; each lookup is abandoned at `lookup_timeout`.
//! - HTTP/1.1 client: keep-alive connections pooled per peer (16 idle at most, 30 s idle
//!   timeout, closed when the peer leaves the snapshot), a stale pooled connection retried once
//!   on a fresh one, connect and TLS handshake timeouts of 10 s, framing with `httparse`.
//! - Listener: async-h1 request decoding behind a guard, bounded heads, bounded concurrency
//!   (503), aborted responses on bad filler streams, graceful shutdown.
//! - mTLS: rustls (ring) through `futures-rustls`, ALPN `http/1.1`, client certificates
//!   required, certificate files re-read when they change ([`tls`]).
//!
//! ## Example
//!
//! One replica serving synthetic chunks, and a second, client-only replica filling a chunk the
//! first one coordinates, over plain HTTP on loopback with a static peer source:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use orca_cluster_smol::{
//!     ChunkKey, Cluster, ClusterConfig, FillListener, ListenerSettings, Options,
//!     StaticPeerSource, SyntheticOrigin,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let listener = FillListener::bind("127.0.0.1:0".parse()?).await?;
//!     let server_addr = listener.local_addr();
//!     let client_addr: SocketAddr = "127.0.0.1:1".parse()?; // never dialed
//!     let peers = StaticPeerSource::new([server_addr, client_addr]);
//!     let config = ClusterConfig {
//!         service: "orca-peers".into(),
//!         self_pod_ip: vec!["127.0.0.1".parse()?],
//!         membership_refresh: Duration::from_secs(1),
//!         ..ClusterConfig::default()
//!     };
//!     let options = |port| Options::default().with_peer_source(peers.clone()).with_self_port(port);
//!
//!     // The serving replica (plain HTTP: it logs a loud warning).
//!     let server = Cluster::start(config.clone(), options(server_addr.port())).await?;
//!     let handle = listener.serve(&server, SyntheticOrigin, ListenerSettings::default());
//!
//!     // The client replica: both see the same snapshot, so they agree on every coordinator.
//!     let client = Cluster::start(config, options(client_addr.port())).await?;
//!     let object_size = 64 * 1024 * 1024; // 64 chunks: some are coordinated by the server
//!     let key = (0..64)
//!         .map(|index| ChunkKey {
//!             origin_id: "s3".into(),
//!             bucket: "media".into(),
//!             object_key: "videos/cat.mp4".into(),
//!             etag: "\"v1\"".into(),
//!             chunk_size: 1024 * 1024,
//!             index,
//!         })
//!         .find(|key| !client.is_coordinator(key))
//!         .expect("some chunk is coordinated by the server");
//!     let coordinator = client.coordinator(&key);
//!     assert_eq!(coordinator.port, server_addr.port());
//!
//!     let body = client.fill_from_peer(&coordinator, &key, object_size).await?;
//!     let bytes = body.collect_bytes().await?; // length verified
//!     assert_eq!(bytes.len(), 1024 * 1024);
//!     assert!(bytes == SyntheticOrigin::chunk_bytes(&key, object_size));
//!
//!     handle.shutdown(Duration::from_secs(1)).await;
//!     client.close(Duration::from_secs(1)).await?;
//!     server.close(Duration::from_secs(1)).await?;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! ## Dependencies worth knowing
//!
//! async-h1 2.3 and http-types 2.12 are unmaintained (RUSTSEC-2026-0174). This crate uses only
//! `async_h1::server::decode` (request heads) and `http_types::Request` as it returns it:
//! http-types' default features are off (no async-std, no cookies), its typed `Authorization`
//! headers (`http_types::auth`, the unsound part) are never used, and request heads reach the
//! decoder only through a guard that bounds them and rejects non-ASCII bytes (http-types would
//! panic on them). Responses are written by this crate; the client parses responses with
//! `httparse` and never touches async-h1 or http-types.

#![forbid(unsafe_code)]

mod client;
mod cluster;
pub mod dns_runtime;
mod listener;
mod options;
pub mod runtime;
mod stream;
pub mod tls;

pub use client::USER_AGENT;
pub use client::body::{FillBody, FillBodyReader};
pub use client::conn::CONNECT_TIMEOUT;
pub use client::pool::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_IDLE_PER_PEER, PoolSettings};
pub use cluster::{Cluster, POOL_SWEEP_INTERVAL};
pub use listener::{
    ASYNC_H1_MAX_HEAD_BYTES, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_HEADER_BYTES, FillListener,
    IDLE_TIMEOUT, ListenerHandle, ListenerSettings,
};
pub use options::Options;
pub use runtime::SmolRuntime;

pub use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Scoring, Snapshot, TlsSettings};
pub use orca_cluster_driver_common::{
    ChunkStream, CloseError, FillError, FillRequest, Filler, FillerError, PeerSource, StartError,
    StaticPeerSource, StatsSnapshot, Subscription, SyntheticOrigin,
};

/// The hickory resolver crate, for [`Options::with_resolver_config`].
pub use hickory_resolver;
