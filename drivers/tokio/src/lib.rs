//! # orca-cluster-tokio
//!
//! The tokio/hyper driver of orca-cluster: replicas of a Kubernetes Deployment discover each
//! other through DNS, agree on one coordinator per cache chunk by rendezvous hashing, and
//! stream chunks to each other over an internal fill RPC (`GET /internal/fill`): HTTP/1.1 or
//! h2c in development, mutual TLS (h2 or HTTP/1.1 by ALPN) in production.
//!
//! Every decision lives in the sans-IO core ([`orca_cluster_core`]) and the one driver pipeline
//! (`orca-cluster-driver-common`: the handle, the fill client, the listener's request pipeline,
//! the membership task). This crate is runtime glue: [`Tokio`] (spawn, timers, hickory's tokio
//! provider, TCP), hyper connections for the client ([`HyperExchange`]) and the listener
//! ([`FillListener`], [`FillService`]). The smol driver (`orca-cluster-smol`) has the same API.
//!
//! - [`Cluster`] — start with a [`ClusterConfig`] and [`Options`]; read [`Cluster::peers`],
//!   [`Cluster::coordinator`], [`Cluster::ranked`]; [`Cluster::subscribe`] to changes;
//!   [`Cluster::fill_from_peer`] returns a length-verified [`FillBody`]; [`Cluster::close`].
//! - [`FillListener`] / [`FillService`] — the listener side, with the application's [`Filler`].
//! - [`FillClient`] — the client alone, for processes that only fill.
//!
//! ## Example: one replica, static peers, a synthetic origin
//!
//! ```
//! use std::time::Duration;
//! use orca_cluster_tokio::{
//!     ChunkKey, Cluster, ClusterConfig, FillClient, FillListener, ListenerSettings, Options,
//!     Peer, StaticPeerSource, SyntheticOrigin,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The fill listener of this replica, on a free loopback port.
//! let listener = FillListener::bind("127.0.0.1:0".parse()?).await?;
//! let addr = listener.local_addr();
//!
//! // Peers from a static list (DNS in production: leave the source out). The list carries
//! // ports, so this replica's entry is found by its IP.
//! let peers = StaticPeerSource::new([addr]);
//! let config = ClusterConfig {
//!     service: "orca-peers".into(),
//!     self_pod_ip: vec![addr.ip()],
//!     membership_refresh: Duration::from_millis(200),
//!     ..ClusterConfig::default()
//! };
//! let cluster = Cluster::start(config, Options::default().with_peer_source(peers)).await?;
//! assert!(cluster.has_initial_snapshot());
//! assert_eq!(cluster.self_port(), addr.port());
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
//! // A second, client-only process fetches the chunk from this replica.
//! let fetcher = FillClient::new(&ClusterConfig::default(), &Options::default())?;
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
//! ## Defaults
//! The same on both drivers (see `orca_cluster_driver_common::ClientSettings` and
//! [`ListenerSettings`]): DNS through `/etc/resolv.conf`, A and AAAA, TCP fallback, no cache,
//! lookup timeout 3 s, refresh 5 s. Client: connect 10 s, TLS handshake 10 s, idle 30 s,
//! 16 idle HTTP/1.1 connections per peer; HTTP/2: pings every 10 s, 8 MiB stream / 16 MiB
//! connection windows; no total timeout. Listener: 256 concurrent fills, 16 KiB request heads,
//! TLS handshake 10 s, request head 30 s.

#![forbid(unsafe_code)]

pub mod chunk_stream;
mod client;
mod health;
mod listener;
mod runtime;

use hickory_resolver::net::runtime::TokioRuntimeProvider;

pub use client::{BoxIo, HyperBody, HyperExchange, Io, TcpTransport};
pub use health::{HealthResponse, HealthService};
pub use listener::{FillResponseBody, FillService, ResponseFuture};
pub use runtime::Tokio;

orca_cluster_driver_common::driver_types!(Tokio, TokioRuntimeProvider);

/// The core crate, for its lower-level items (wire format, admission, fill checks, config
/// constants).
pub use orca_cluster_core as core;
/// The driver pipeline crate (TLS reloader, DNS source, listener pipeline).
pub use orca_cluster_driver_common as common;
