//! # orca-cluster-tokio
//!
//! The tokio/hyper driver of orca-cluster: replicas of a Kubernetes Deployment discover each
//! other through DNS, agree on one coordinator per cache chunk by rendezvous hashing, and
//! stream chunks to each other over an internal fill RPC (`GET /internal/fill`): h2c or
//! HTTP/1.1 in development, mutual TLS in production.
//!
//! Decisions live in the sans-IO core ([`orca_cluster_core`]: membership rules, wire format,
//! admission, response checks) and the runtime-agnostic driver crate
//! (`orca-cluster-driver-common`: the membership task, TLS reloading, body guards); this crate
//! does the IO with tokio, hyper and hickory.
//!
//! - [`Cluster`] — start with a [`ClusterConfig`] and [`Options`]; read [`Cluster::peers`],
//!   [`Cluster::coordinator`], [`Cluster::ranked`]; [`Cluster::subscribe`] to changes;
//!   [`Cluster::fill_from_peer`] returns a length-verified [`FillBody`]; [`Cluster::close`].
//! - [`FillListener`] / [`FillService`] — the listener side, with the application's [`Filler`].
//! - [`FillClient`] — the client alone, for processes that only fill.
//! - [`dns`] — the hickory peer source.
//!
//! The `orca-cluster` command and the loopback fill benchmarks live in the
//! `orca-cluster-cli` crate; this crate's dependencies are only what a replica needs.
//!
//! ## Example: one replica, static peers, a synthetic origin
//!
//! ```
//! use std::time::Duration;
//! use orca_cluster_tokio::{
//!     ChunkKey, Cluster, ClusterConfig, FillListener, ListenerSettings, Options, Peer,
//!     StaticPeerSource, SyntheticOrigin,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The fill listener of this replica, on a free loopback port.
//! let listener = FillListener::bind("127.0.0.1:0".parse()?).await?;
//! let addr = listener.local_addr();
//!
//! // Peers from a static list (DNS in production: leave the source out).
//! let peers = StaticPeerSource::new([addr]);
//! let config = ClusterConfig {
//!     service: "orca-peers".into(),
//!     self_pod_ip: vec![addr.ip()],
//!     membership_refresh: Duration::from_millis(200),
//!     ..ClusterConfig::default()
//! };
//! let options = Options::default()
//!     .with_peer_source(peers.clone())
//!     .with_self_port(addr.port());
//! let cluster = Cluster::start(config, options).await?;
//! assert!(cluster.has_initial_snapshot());
//!
//! // Serve chunks (plain HTTP here: it logs a warning; enable internal_tls in production).
//! let server = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
//!
//! let key = ChunkKey {
//!     origin_id: "s3".into(),
//!     bucket: "media".into(),
//!     object_key: "movie.mp4".into(),
//!     etag: "v1".into(),
//!     chunk_size: 1 << 20,
//!     index: 0,
//! };
//! // Alone in the cluster, this replica coordinates every chunk...
//! assert!(cluster.is_coordinator(&key));
//! // ...and filling from self is refused: fill locally instead.
//! let me = cluster.coordinator(&key);
//! assert!(cluster.fill_from_peer(&me, &key, 3 << 20).await.is_err());
//!
//! // A second client-only process fetches the chunk from this replica over h2c.
//! let fetcher = orca_cluster_tokio::FillClient::new(&ClusterConfig::default(), &Options::default())?;
//! let peer = Peer { ip: addr.ip(), port: addr.port(), is_self: false };
//! let body = fetcher.fill(&peer, &key, 3 << 20).await?;
//! assert_eq!(body.expected_len(), 1 << 20);
//! let bytes = body.collect_bytes().await?; // length verified
//! assert_eq!(bytes, SyntheticOrigin::chunk_bytes(&key, 3 << 20));
//!
//! server.shutdown(Duration::from_secs(1)).await;
//! cluster.close(Duration::from_secs(1)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Production settings
//! DNS: hickory with `/etc/resolv.conf`, A and AAAA, TCP fallback, no cache, lookup timeout
//! 3 s, refresh 5 s. Client: connect 10 s, TLS handshake 10 s, idle 30 s, HTTP/2 pings every
//! 10 s, 8 MiB stream / 16 MiB connection windows ([`ClientSettings`]), no total timeout.
//! Listener: 256 concurrent fills, 16 KiB request heads, TLS handshake 10 s
//! ([`ListenerSettings`]).

#![forbid(unsafe_code)]

mod client;
mod cluster;
pub mod dns;
mod listener;
mod options;
pub mod runtime;
pub mod tls;

pub use client::{
    BoxIo, ClientSettings, ConnectFuture, DEFAULT_CONNECTION_WINDOW, DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_SEND_BUF, DEFAULT_STREAM_WINDOW, FillBody, FillClient, Io, TcpTransport, Transport,
};
pub use cluster::Cluster;
pub use listener::{
    FillListener, FillResponseBody, FillService, ListenerHandle, ListenerSettings, ResponseFuture,
};
pub use options::Options;

pub use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Scoring, Snapshot, TlsSettings};
pub use orca_cluster_driver_common::{
    ChunkStream, CloseError, FillError, FillRequest, Filler, FillerError, PeerSource, StartError,
    StaticPeerSource, StatsSnapshot, Subscription, SyntheticOrigin,
};

/// The core crate, for its lower-level items (wire format, admission, fill checks, config
/// constants).
pub use orca_cluster_core as core;
/// The runtime-agnostic driver crate (TLS reloader, DNS source, body guards).
pub use orca_cluster_driver_common as common;
