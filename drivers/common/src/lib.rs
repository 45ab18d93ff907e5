//! # orca-cluster-driver-common
//!
//! The runtime-agnostic half of the orca-cluster drivers. The tokio and smol drivers differ only
//! in how they spawn, sleep, dial and serve; everything else lives here, written once:
//!
//! - [`ClusterState`] — the published snapshot (lock-free reads), subscriptions, stats, and the
//!   membership task that owns the core state machine ([`run_membership`]);
//! - [`start`] — [`Discovery`] (where peers come from) and [`MembershipStart`] (validate the
//!   configuration, then spawn the membership task), shared by both drivers' `Cluster::start`;
//! - [`source`] — peer sources: [`DnsPeerSource`] (hickory, generic over its runtime provider)
//!   and [`StaticPeerSource`];
//! - [`tls`] — mutual TLS configuration from PEM files, re-read when the files change;
//! - [`FillError`], [`CheckedBody`] — the client's error type and verified body stream;
//! - [`Filler`], [`CheckedFillerStream`], [`ConcurrencyLimit`] — the listener's application hook,
//!   its byte-count guard and its admission limit;
//! - [`SyntheticOrigin`] — deterministic chunk bytes for demos, tests and benchmarks.
//!
//! Applications normally use this crate through a driver's re-exports.

#![forbid(unsafe_code)]

pub mod body;
pub mod bytes_filler;
pub mod error;
pub mod filler;
pub mod limit;
pub mod runtime;
pub mod source;
pub mod start;
pub mod state;
pub mod stats;
pub mod synthetic;
pub mod task;
pub mod tls;

pub use body::{CheckedBody, CheckedFillerStream};
pub use bytes_filler::BytesFiller;
pub use error::{CloseError, FillError, StartError};
pub use filler::{ChunkStream, FillRequest, Filler, FillerError};
pub use limit::{ConcurrencyLimit, Permit};
pub use runtime::{Clock, Runtime};
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
