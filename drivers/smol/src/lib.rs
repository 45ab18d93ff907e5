//! # orca-cluster-smol
//!
//! The smol driver of orca-cluster: replicas of a Kubernetes Deployment discover each other
//! through DNS, agree on one coordinator per cache chunk by rendezvous hashing, and stream
//! chunks to each other over an internal HTTP/1.1 fill RPC — plain in development, mutual TLS
//! in production. It has the same API as the tokio driver (`orca-cluster-tokio`) and no tokio
//! in its dependency tree.
//!
//! Every decision lives in the sans-IO core (`orca-cluster-core`, including the HTTP/1.1 codec
//! this driver frames with) and the one driver pipeline (`orca-cluster-driver-common`: the
//! handle, the fill client, the listener's request pipeline, the membership task). This crate
//! is runtime glue: [`Smol`] (spawn, timers, hickory on smol, TCP), the client's keep-alive
//! pool ([`SmolExchange`]) and the listener's accept loop ([`FillListener`]).
//!
//! It speaks HTTP/1.1 only: [`Protocol::Http2`] and non-default HTTP/2 client settings are
//! rejected at start ([`StartError::Unsupported`]). With TLS, ALPN offers `http/1.1`, so
//! tokio replicas talk to smol replicas with default options in both modes.
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
//!     // Both replicas share 127.0.0.1: each names its own port.
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
#![forbid(unsafe_code)]

mod client;
pub mod dns_runtime;
mod health;
mod listener;
mod runtime;
mod stream;
mod tls;

pub use client::{SmolBody, SmolExchange, USER_AGENT};
pub use health::{serve_health, serve_health_connection};
pub use runtime::{Smol, sleep, timeout};
pub use stream::{BoxIo, Io, TcpTransport};

/// Ready-made `ChunkStream`s for fillers: from `Bytes`, from a futures-io `AsyncRead`.
pub use orca_cluster_driver_common::chunk_stream;

orca_cluster_driver_common::driver_types!(Smol, dns_runtime::SmolRuntimeProvider);

/// The core crate, for its lower-level items (wire format, admission, fill checks, codec).
pub use orca_cluster_core as core;
/// The driver pipeline crate (TLS reloader, DNS source, listener pipeline).
pub use orca_cluster_driver_common as common;
