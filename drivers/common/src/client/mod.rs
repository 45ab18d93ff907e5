//! The fill client, written once for both drivers: descriptor (core) → exchange (driver) →
//! classification of the head (core) → counted, verified body ([`FillBody`]).
//!
//! Plain mode speaks HTTP/1.1 by default (h2c with [`crate::Protocol::Http2`]); TLS mode speaks
//! what ALPN picks. Redirects are never followed (a 3xx is a `Status` error). There is no total
//! request timeout: the caller's deadline rules, and dropping the future or the body cancels
//! the fill.

mod body;
mod exchange;
mod health;
mod stats;

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orca_cluster_core::fill::{
    DeclaredFraming, DescriptorError, FillDescriptor, ResponseVerdict, Scheme,
};
use orca_cluster_core::{ChunkKey, ClusterConfig, Peer};
use tracing::Instrument;

pub use body::{FillBody, FillBodyReader};
pub use exchange::{ClientSetup, Exchange, Finish, RawBody, Response, ResponseHead, SendError};
pub(crate) use stats::StatsRef;

use health::{Gate, PeerHealth};

use crate::driver::Driver;
use crate::error::{FillError, StartError};
use crate::metrics::{FillTrack, Role};
use crate::options::{Options, Protocol};
use crate::state::ClusterState;
use crate::stats::{Stats, StatsSnapshot};
use crate::tls::TlsReloader;

/// Fills chunks from peers. Cheap to clone (clones share connections and counters).
///
/// A cluster has one (`Cluster::client`); a process that only fills (a command-line tool, a
/// proxy outside the Deployment) builds one with [`FillClient::new`] without running
/// membership or having a self IP.
pub struct FillClient<D: Driver> {
    inner: Arc<ClientInner<D>>,
}

impl<D: Driver> Clone for FillClient<D> {
    fn clone(&self) -> Self {
        FillClient {
            inner: self.inner.clone(),
        }
    }
}

struct ClientInner<D: Driver> {
    runtime: D,
    exchange: D::Exchange,
    health: PeerHealth,
    scheme: Scheme,
    /// The protocol setting (a field of each fill's span).
    protocol: Protocol,
    listen_port: u16,
    /// `ClusterConfig::max_chunk_size`: larger chunks are never asked for.
    max_chunk_size: u64,
    stats: StatsRef,
    closed: AtomicBool,
}

impl<D: Driver> fmt::Debug for FillClient<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillClient")
            .field("driver", &D::NAME)
            .field("scheme", &self.inner.scheme)
            .field("listen_port", &self.inner.listen_port)
            .field("closed", &self.inner.closed)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> FillClient<D> {
    /// A client-only handle on the current runtime: uses `config.internal_tls` (loading the PEM
    /// files when enabled), `config.internal_listen`'s port for peers with port 0, and the
    /// protocol, client settings and transport of `options` (its discovery options are
    /// ignored). Needs no self IP and opens no connection until the first fill.
    pub fn new(config: &ClusterConfig, options: &Options<D>) -> Result<FillClient<D>, StartError> {
        options.validate()?;
        crate::metrics::describe();
        let tls = crate::tls::load_for::<D>(&config.internal_tls, options)?;
        Ok(FillClient::build(
            &D::current(),
            config,
            options,
            tls,
            StatsRef::Own(Arc::new(Stats::default())),
        ))
    }

    pub(crate) fn for_cluster(
        runtime: &D,
        config: &ClusterConfig,
        options: &Options<D>,
        tls: Option<Arc<TlsReloader>>,
        state: Arc<ClusterState>,
    ) -> FillClient<D> {
        FillClient::build(runtime, config, options, tls, StatsRef::Cluster(state))
    }

    fn build(
        runtime: &D,
        config: &ClusterConfig,
        options: &Options<D>,
        tls: Option<Arc<TlsReloader>>,
        stats: StatsRef,
    ) -> FillClient<D> {
        let scheme = if tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let setup = ClientSetup {
            tls,
            settings: options.client.clone(),
            protocol: options.protocol,
            plain_h2: options.plain_h2(),
            transport: options.transport.clone(),
        };
        let health = PeerHealth::new(
            options.client.peer_backoff_initial,
            options.client.peer_backoff_max,
        );
        FillClient {
            inner: Arc::new(ClientInner {
                runtime: runtime.clone(),
                exchange: runtime.exchange(setup),
                health,
                scheme,
                protocol: options.protocol,
                listen_port: config.internal_listen.port(),
                max_chunk_size: config.max_chunk_size,
                stats,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// `GET /internal/fill` for chunk `key` of an object of `object_size` bytes on `peer`.
    ///
    /// Each fill runs in an INFO `tracing` span named `fill` with the fields `peer`, the chunk
    /// key (`origin_id`, `bucket`, `object_key`, `etag`, `chunk_size`, `index`), `object_size`,
    /// `protocol` (the setting: `auto`, `http1`, `http2`) and `tls`, and, when the fill ends (its
    /// body included), `outcome` (`ok`, `failed`, `cancelled`), `kind` (of a failure) and `bytes`;
    /// the client's events happen inside it.
    ///
    /// Resolves when the response head arrived and was accepted; the returned [`FillBody`]
    /// verifies the length of what follows. Errors ([`FillError`]): the peer is self
    /// (`Descriptor(TargetIsSelf)`: fill locally), the chunk is empty, or its `chunk_size` is
    /// above `ClusterConfig::max_chunk_size` (`Descriptor(Chunk(ChunkSizeTooLarge))`, sent to
    /// no peer); connect or TLS
    /// failures and timeouts; 409 ([`FillError::is_not_coordinator`]: fill locally); another
    /// status (with at most 1 KiB of its body); a malformed head or a `Content-Length` other
    /// than the chunk's length; a broken connection; `Closed` after [`FillClient::close`].
    ///
    /// A request that never reached the peer on a reused connection (closed while idle,
    /// `GOAWAY`) is retried once on a fresh connection; nothing else is retried.
    ///
    /// Peer health: after a connect failure (refused, timed out, TLS handshake failed) the peer
    /// is unavailable for a backoff window (`ClientSettings::peer_backoff_initial`, doubling to
    /// `peer_backoff_max`); fills to it fail at once with [`FillError::PeerUnavailable`], and
    /// one background probe per window finds out when it is back. See
    /// [`FillClient::unavailable_peers`].
    pub async fn fill(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        self.fill_inner(peer, key, object_size, None).await
    }

    /// [`FillClient::fill`] within `deadline`: the response head must arrive, and the body be
    /// complete, within `deadline` of this call, else [`FillError::Deadline`] (from the future,
    /// or as the body's last item).
    pub async fn fill_within(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
        deadline: Duration,
    ) -> Result<FillBody, FillError> {
        let expires: body::Expiry = Box::pin(self.inner.runtime.sleep(deadline));
        self.fill_inner(peer, key, object_size, Some((expires, deadline)))
            .await
    }

    /// Starts a fill (its checks, then the counters) and runs it: the exchange, within the
    /// deadline if any, then the body, which carries the fill's [`FillTrack`] to its end.
    async fn fill_inner(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
        mut deadline: Option<(body::Expiry, Duration)>,
    ) -> Result<FillBody, FillError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(FillError::Closed);
        }
        let descriptor =
            FillDescriptor::new(peer, key, object_size, inner.scheme, inner.listen_port)?;
        // Peers refuse a chunk above the maximum (400): do not ask.
        key.check_chunk_size(inner.max_chunk_size)
            .map_err(DescriptorError::Chunk)?;
        let stats = inner.stats.get();
        Stats::incr(&stats.fills_started);
        let span = tracing::info_span!(
            "fill",
            peer = %descriptor.authority,
            origin_id = %key.origin_id,
            bucket = %key.bucket,
            object_key = %key.object_key,
            etag = %key.etag,
            chunk_size = key.chunk_size,
            index = key.index,
            object_size,
            protocol = inner.protocol.name(),
            tls = matches!(inner.scheme, Scheme::Https),
            outcome = tracing::field::Empty,
            kind = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        // From here on the fill ends in exactly one outcome: dropping this future drops the
        // track (cancelled), and the body takes it over.
        let mut track = FillTrack::start(Role::Client, span.clone());
        let attempt = self.attempt(&descriptor).instrument(span.clone());
        let result = match deadline.as_mut() {
            None => attempt.await,
            Some((expires, limit)) => {
                let mut attempt = std::pin::pin!(attempt);
                poll_fn(|cx| {
                    if let std::task::Poll::Ready(r) = attempt.as_mut().poll(cx) {
                        return std::task::Poll::Ready(r);
                    }
                    expires
                        .as_mut()
                        .poll(cx)
                        .map(|()| Err(FillError::Deadline(*limit)))
                })
                .await
            }
        };
        match result {
            Ok(body) => {
                let body = body.tracked(track);
                Ok(match deadline {
                    Some((expires, limit)) => body.with_deadline(expires, limit),
                    None => body,
                })
            }
            Err(e) => {
                Stats::incr(&stats.fills_failed);
                if e.is_not_coordinator() {
                    Stats::incr(&stats.fills_not_coordinator);
                }
                track.failed(e.kind());
                span.in_scope(|| {
                    tracing::debug!(peer = %descriptor.authority, error = %e, kind = e.kind(), "fill failed");
                });
                Err(e)
            }
        }
    }

    /// The exchange of a started fill, through peer health's gate.
    async fn attempt(&self, descriptor: &FillDescriptor) -> Result<FillBody, FillError> {
        let inner = &self.inner;
        let addr = SocketAddr::new(descriptor.ip, descriptor.port);
        match inner.health.gate(addr) {
            Gate::Go => {
                let result = self.exchange(descriptor).await;
                match &result {
                    Err(e) if e.is_unreachable() => inner.health.failed(addr, e.kind()),
                    Err(FillError::Http(_)) => {}
                    _ => inner.health.reached(addr),
                }
                result
            }
            Gate::Refuse(e) => Err(e),
            Gate::RefuseAndProbe(e) => {
                self.probe(addr);
                Err(e)
            }
        }
    }

    async fn exchange(&self, d: &FillDescriptor) -> Result<FillBody, FillError> {
        let inner = &self.inner;
        let addr = SocketAddr::new(d.ip, d.port);
        let response = match inner.exchange.send(addr, d, false).await {
            Ok(response) => response,
            Err(SendError::Stale(e)) => {
                tracing::debug!(peer = %addr, error = %e, "reused connection unusable; retrying once on a new one");
                inner
                    .exchange
                    .send(addr, d, true)
                    .await
                    .map_err(SendError::into_error)?
            }
            Err(SendError::Failed(e)) => return Err(e),
        };
        let Response { head, body } = response;
        let mut body = body;
        match head.verdict(d.expected_len) {
            ResponseVerdict::Body(_) => Ok(FillBody::new(
                Box::new(body),
                d.expected_len,
                matches!(head.framing, Ok(DeclaredFraming::Length(_))),
                inner.stats.clone(),
            )),
            ResponseVerdict::Reject(rejection) => {
                if rejection == orca_cluster_core::fill::FillCheckError::NotCoordinator {
                    // Read a small 409 body to its end so the connection can be reused.
                    let mut left = orca_cluster_core::fill::MAX_ERROR_BODY;
                    while left > 0 {
                        match poll_fn(|cx| body.poll_data(cx)).await {
                            Some(Ok(data)) => left = left.saturating_sub(data.len()),
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                Err(FillError::Check(rejection))
            }
            ResponseVerdict::ErrorBody(mut collector) => {
                // At most 1 KiB of the body is read; dropping the rest closes the connection.
                while collector.remaining() > 0 {
                    match poll_fn(|cx| body.poll_data(cx)).await {
                        Some(Ok(data)) => collector.push(&data),
                        Some(Err(_)) | None => break,
                    }
                }
                Err(FillError::Check(collector.finish()))
            }
        }
    }

    /// Probes `addr` in the background; the result reaches peer health.
    fn probe(&self, addr: SocketAddr) {
        let client = self.clone();
        tracing::debug!(peer = %addr, "probing an unavailable peer");
        self.inner.runtime.spawn(async move {
            let inner = &client.inner;
            match inner.exchange.probe(addr).await {
                Ok(()) => {
                    tracing::info!(event = "peer_available", peer = %addr, "peer reachable again");
                    inner.health.reached(addr);
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "probe failed; peer stays unavailable");
                    inner.health.failed(addr, e.kind());
                }
            }
        });
    }

    /// Peers (dialed addresses) that failed to connect recently and are in their backoff
    /// window or being probed: fills to them fail at once with [`FillError::PeerUnavailable`].
    pub fn unavailable_peers(&self) -> Vec<SocketAddr> {
        self.inner.health.unavailable()
    }

    /// Closes the connections to `peers` (peers that left the snapshot) once their fills end.
    /// A cluster's client is told by the membership task at every change.
    pub fn evict(&self, peers: &[Peer]) {
        let port = self.inner.listen_port;
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.socket_addr(port)).collect();
        if !addrs.is_empty() {
            self.inner.health.forget(&addrs);
            tracing::debug!(peers = ?addrs, "evicting fill connections of departed peers");
            self.inner.exchange.evict(&addrs);
        }
    }

    pub(crate) fn downgrade(&self) -> WeakClient<D> {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// Closes idle connections now and every other connection when its fill ends; later fills
    /// fail with [`FillError::Closed`]. Idempotent.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.exchange.close();
    }

    /// Peers (dialed addresses) with an open pooled connection (an idle HTTP/1.1 one, or an
    /// HTTP/2 one) or a dial in progress; busy HTTP/1.1 connections are not counted.
    pub fn connected_peers(&self) -> Vec<SocketAddr> {
        self.inner.exchange.connected_peers()
    }

    /// Idle HTTP/1.1 keep-alive connections pooled now, over all peers (HTTP/2 connections
    /// are multiplexed and not counted).
    pub fn idle_connections(&self) -> usize {
        self.inner.exchange.idle_connections()
    }

    /// A copy of the counters (shared with the cluster for a cluster's client).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.get().snapshot()
    }
}

/// A weak reference to a [`FillClient`] (the eviction hook must not keep the client alive).
pub(crate) struct WeakClient<D: Driver>(std::sync::Weak<ClientInner<D>>);

impl<D: Driver> WeakClient<D> {
    pub(crate) fn upgrade(&self) -> Option<FillClient<D>> {
        self.0.upgrade().map(|inner| FillClient { inner })
    }
}

impl SendError {
    /// The underlying error.
    pub fn into_error(self) -> FillError {
        match self {
            SendError::Stale(e) | SendError::Failed(e) => e,
        }
    }
}
