//! The fill client: `GET /internal/fill` on a peer, with pooled connections.
//!
//! Plain mode speaks h2c with prior knowledge (or HTTP/1.1 with
//! [`crate::Options::with_http1`]); TLS mode speaks whatever ALPN picks (`h2`, else
//! `http/1.1`). HTTP/2 peers get one multiplexed connection each; HTTP/1.1 peers a pool of
//! keep-alive connections. Redirects are never followed (a 3xx is an error status). There is no
//! total request timeout: the caller's deadline rules, and dropping the future or the body
//! cancels the fill.

mod body;
mod connect;
mod pool;
mod response;
mod settings;
mod stats;
mod transport;
mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Request;
use http::header::{HOST, HeaderValue};
use http_body_util::Empty;
use orca_cluster_core::fill::{FillDescriptor, Scheme};
use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Snapshot};
use orca_cluster_driver_common::{
    ClusterState, FillError, StartError, Stats, StatsSnapshot, TlsReloader,
};

pub use body::FillBody;
pub use settings::{
    ClientSettings, DEFAULT_CONNECTION_WINDOW, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_SEND_BUF,
    DEFAULT_STREAM_WINDOW,
};
pub use transport::{BoxIo, ConnectFuture, Io, TcpTransport, Transport};

use body::BodyGuard;
use connect::{Conn, DialContext, ReqBody};
use pool::Pool;
use stats::StatsRef;

use crate::options::Options;

/// Fills chunks from peers. Cheap to clone (clones share connections and counters).
///
/// A [`crate::Cluster`] has one ([`crate::Cluster::client`]); a process that only fills (a
/// command-line tool, a proxy outside the Deployment) can build one with
/// [`FillClient::new`] without running membership or having a self IP.
#[derive(Clone)]
pub struct FillClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    ctx: Arc<DialContext>,
    pool: Pool,
    scheme: Scheme,
    listen_port: u16,
    stats: StatsRef,
    closed: AtomicBool,
}

impl fmt::Debug for FillClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillClient")
            .field("scheme", &self.inner.scheme)
            .field("listen_port", &self.inner.listen_port)
            .field("ctx", &self.inner.ctx)
            .field("closed", &self.inner.closed)
            .finish_non_exhaustive()
    }
}

impl FillClient {
    /// A client-only handle: uses `config.internal_tls` (loading the PEM files when enabled),
    /// `config.internal_listen`'s port for peers with port 0, and the transport, HTTP/1.1 mode
    /// and client settings of `options` (its peer-source options are ignored). Needs no self
    /// IP and starts no task until the first fill.
    pub fn new(config: &ClusterConfig, options: &Options) -> Result<FillClient, StartError> {
        let tls = crate::tls::load_reloader(&config.internal_tls, options.http1)?;
        Ok(FillClient::build(
            config,
            options,
            tls,
            StatsRef::Own(Arc::new(Stats::default())),
        ))
    }

    pub(crate) fn for_cluster(
        config: &ClusterConfig,
        options: &Options,
        tls: Option<Arc<TlsReloader>>,
        state: Arc<ClusterState>,
    ) -> FillClient {
        FillClient::build(config, options, tls, StatsRef::Cluster(state))
    }

    fn build(
        config: &ClusterConfig,
        options: &Options,
        tls: Option<Arc<TlsReloader>>,
        stats: StatsRef,
    ) -> FillClient {
        let scheme = if tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let ctx = DialContext {
            transport: options
                .transport
                .clone()
                .unwrap_or_else(|| Arc::new(TcpTransport)),
            tls,
            settings: options.client.clone(),
            http1: options.http1,
        };
        FillClient {
            inner: Arc::new(ClientInner {
                ctx: Arc::new(ctx),
                pool: Pool::default(),
                scheme,
                listen_port: config.internal_listen.port(),
                stats,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// `GET /internal/fill` for chunk `key` of an object of `object_size` bytes on `peer`.
    ///
    /// Resolves when the response head arrived and was accepted; the returned [`FillBody`]
    /// verifies the length of what follows. Errors ([`FillError`]): the peer is self
    /// (`Descriptor(TargetIsSelf)`: fill locally) or the chunk is empty; connect or TLS
    /// failures and timeouts (10 s each by default); 409 (`is_not_coordinator()`: fill locally);
    /// another status (with at most 1 KiB of its body); a `Content-Length` other than the
    /// chunk's length; a broken connection; `Closed` after [`FillClient::close`].
    ///
    /// A request that could not even be sent on a reused connection (the peer closed it while
    /// idle, or sent `GOAWAY`) is retried once on a fresh connection.
    pub async fn fill(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(FillError::Closed);
        }
        let descriptor =
            FillDescriptor::new(peer, key, object_size, inner.scheme, inner.listen_port)?;
        let stats = inner.stats.get();
        Stats::incr(&stats.fills_started);
        let result = self.send(&descriptor).await;
        if let Err(e) = &result {
            Stats::incr(&stats.fills_failed);
            if e.is_not_coordinator() {
                Stats::incr(&stats.fills_not_coordinator);
            }
            tracing::debug!(peer = %descriptor.authority, error = %e, kind = e.kind(), "fill failed");
        }
        result
    }

    async fn send(&self, d: &FillDescriptor) -> Result<FillBody, FillError> {
        let inner = &self.inner;
        let addr = SocketAddr::new(d.ip, d.port);
        let slot = inner.pool.slot(addr);
        let mut retried = false;
        loop {
            let (conn, reused) = slot.acquire(&inner.ctx).await?;
            let (sent, guard) = match conn {
                Conn::H2(c) => {
                    let lease = c.watch.lease();
                    let sent = c.send.clone().try_send_request(request(d, true)?).await;
                    if matches!(&sent, Err(e) if e.message().is_some()) {
                        // Not even sent: the connection is unusable (closed, GOAWAY).
                        slot.forget_h2(&c);
                    }
                    let guard = BodyGuard {
                        lease: Some(lease),
                        h1: None,
                    };
                    (sent, guard)
                }
                Conn::H1(mut c) => {
                    let lease = c.watch.lease();
                    let sent = match c.send.ready().await {
                        Ok(()) => c.send.try_send_request(request(d, false)?).await,
                        Err(e) => return Err(FillError::Http(format!("{addr}: {}", describe(&e)))),
                    };
                    let max_idle = inner.ctx.settings.max_idle_per_peer;
                    let guard = BodyGuard {
                        lease: Some(lease),
                        h1: Some((slot.clone(), c, max_idle)),
                    };
                    (sent, guard)
                }
            };
            match sent {
                Ok(response) => {
                    return response::into_fill_body(
                        response,
                        d.expected_len,
                        guard,
                        inner.stats.clone(),
                    )
                    .await;
                }
                Err(mut e) => {
                    let unsent = e.take_message().is_some();
                    let error = e.into_error();
                    if unsent && reused && !retried {
                        tracing::debug!(peer = %addr, error = %error, "reused connection unusable; retrying once on a new one");
                        retried = true;
                        continue;
                    }
                    return Err(FillError::Http(format!("{addr}: {}", describe(&error))));
                }
            }
        }
    }

    /// Closes connections to peers not in `snapshot` (after their fills finish). The cluster
    /// calls this on every snapshot change.
    pub fn retain_peers(&self, snapshot: &Snapshot) -> usize {
        let port = self.inner.listen_port;
        let keep: Vec<SocketAddr> = snapshot
            .peers()
            .iter()
            .map(|p| p.socket_addr(port))
            .collect();
        self.inner.pool.retain(|addr| keep.contains(addr))
    }

    /// Closes idle connections now and every other connection when its fills finish; later
    /// fills fail with [`FillError::Closed`]. Idempotent.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.pool.retain(|_| false);
    }

    /// Peers (dialed addresses) this client currently holds connections or a dial for.
    pub fn connected_peers(&self) -> Vec<SocketAddr> {
        self.inner.pool.addrs()
    }

    /// A copy of the counters (shared with the cluster for a cluster's client).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.get().snapshot()
    }
}

/// An error and its sources, `outer: inner: ...` (hyper's own messages are terse).
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The request of descriptor `d`: absolute URI for HTTP/2 (`:scheme`, `:authority`),
/// origin-form plus `Host` for HTTP/1.1.
fn request(d: &FillDescriptor, h2: bool) -> Result<Request<ReqBody>, FillError> {
    let bad = |e: http::Error| FillError::Http(format!("building the request: {e}"));
    let mut builder = Request::builder().method(FillDescriptor::METHOD);
    for (name, value) in FillDescriptor::HEADERS {
        builder = builder.header(name, HeaderValue::from_static(value));
    }
    let builder = if h2 {
        builder.uri(d.uri())
    } else {
        builder
            .uri(d.path_and_query.as_str())
            .header(HOST, d.authority.as_str())
    };
    builder.body(Empty::new()).map_err(bad)
}
