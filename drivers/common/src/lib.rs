//! # orca-cluster-driver-common
//!
//! The one driver pipeline of orca-cluster, generic over a small [`Driver`] trait. The tokio and
//! smol drivers differ only in how they spawn, sleep, dial, run TLS and frame HTTP (hyper, or
//! the core's HTTP/1.1 codec); everything else lives here, written once (see `ARCHITECTURE.md`):
//!
//! - [`Cluster`] — the handle: start (validation, self identity, TLS, the membership task),
//!   lock-free lookups, subscriptions, stats, close; [`Options`] with the same defaults on both
//!   drivers;
//! - [`ClusterState`] / [`run_membership`] — the published snapshot and the one task that owns
//!   the core's state machine; peers the core removes are evicted from the client's pool;
//! - [`FillClient`] — descriptor → the driver's [`Exchange`](client::Exchange) → the core's verdict on the head →
//!   a counted, verified [`FillBody`] that completes with its last expected byte;
//! - [`listener`] — [`FillPipeline`] (admission → concurrency limit → filler → [`Reply`]),
//!   [`FillerBody`] (the length guard with the abort rule), [`ListenerHandle`] (the same
//!   shutdown and `Drop` on both drivers), [`ListenerSettings`];
//! - [`source`] — peer sources: [`DnsPeerSource`] (hickory, generic over its runtime provider)
//!   and [`StaticPeerSource`]; [`tls`] — mutual TLS from PEM files, re-read when they change;
//! - [`SyntheticOrigin`] / [`BytesFiller`] — deterministic chunk bytes for demos and tests;
//! - [`metrics`] — every metric name, recorded through the `metrics` facade.
//!
//! Applications use this crate through a driver, which names the generic types for its
//! runtime (`orca_cluster_tokio::Cluster` is `Cluster<Tokio>`).

#![forbid(unsafe_code)]

pub mod bytes_filler;
pub mod chunk_stream;
pub mod client;
pub mod cluster;
pub mod coalesce;
pub mod dir_origin;
pub mod driver;
pub mod error;
pub mod filler;
pub mod frame_pool;
pub mod health;
pub mod limit;
pub mod listener;
pub mod metrics;
pub mod options;
pub mod quick_ack;
pub mod read;
pub mod runtime;
pub mod source;
pub mod start;
pub mod state;
pub mod stats;
pub mod synthetic;
pub mod task;
pub mod tls;

pub use bytes_filler::BytesFiller;
pub use client::{FillBody, FillBodyReader, FillClient};
pub use cluster::Cluster;
pub use coalesce::{CoalescingFiller, SharedFillError, SharedFillStage};
pub use dir_origin::{DirOrigin, DirOriginError};
pub use driver::{
    AsyncIo, BoxAsyncIo, ConnectFuture, Driver, ListenerContext, ListenerSetup, Transport,
};
pub use error::{CloseError, FillError, StartError};
pub use filler::{ChunkStream, FillRequest, Filler, FillerError};
pub use frame_pool::FramePool;
pub use health::{Health, HealthLimits, HealthReply, Readiness};
pub use limit::{ConcurrencyLimit, Permit};
pub use listener::{
    ConnectionWatch, Expiry, FillListener, FillPipeline, FillerBody, FixedReply, ListenerControl,
    ListenerHandle, ListenerSettings, Reply, RequestGuard,
};
pub use options::{ClientSettings, Http2Settings, Options, Protocol};
pub use read::{ChunkRead, ReadError, ReadOptions, ReadSource};
pub use runtime::{Clock, Runtime, UnblockError};
pub use source::{DnsPeerSource, PeerSource, StaticPeerSource};
pub use start::{Discovery, MembershipStart};
pub use state::{ClusterState, Subscription};
pub use stats::{Stats, StatsSnapshot};
pub use synthetic::SyntheticOrigin;
pub use task::run_membership;
pub use tls::{TlsError, TlsFiles, TlsReloader};

pub use orca_cluster_core as core;

/// Reads the self IPs: `configured` if not empty, else the comma-separated `POD_IP` environment
/// variable. Errors name the field (`self_pod_ip`).
pub fn self_ips_or_env(
    configured: &[std::net::IpAddr],
) -> Result<Vec<std::net::IpAddr>, orca_cluster_core::ConfigError> {
    if !configured.is_empty() {
        return Ok(configured.to_vec());
    }
    match std::env::var("POD_IP") {
        Ok(text) => orca_cluster_core::ClusterConfig::parse_ips(&text),
        Err(_) => Err(orca_cluster_core::ConfigError::NoSelfIp),
    }
}
