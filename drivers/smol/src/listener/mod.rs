//! The fill listener: serves `GET /internal/fill` (DESIGN 3.6) over HTTP/1.1, plain or with
//! mutual TLS. async-h1 decodes request heads (behind a guard, see below); responses are written
//! by this driver, so body frames go from the filler to the socket without an intermediate copy
//! (async-h1's own `accept` copies bodies through an 8 KiB buffer, which measured at about 1.2
//! GB/s on loopback here against about 4 GB/s with 1 MiB writes).
//!
//! - Admission comes from the core ([`orca_cluster_core::admission::admit`]) against the
//!   cluster's current snapshot; at most [`ListenerSettings::max_concurrent`] fills run at once
//!   and further admitted requests get 503 at once (no queueing).
//! - Request heads are bounded by [`ListenerSettings::max_header_bytes`] (and by async-h1's own
//!   8 KiB limit, whichever is lower): a larger head gets 431, a malformed or non-ASCII one 400,
//!   and the connection is closed. Requests that are not a body-less GET are answered, then
//!   their connection is closed.
//! - A filler stream that ends short, runs long or fails aborts its response: the connection is
//!   closed mid-body, so the client sees a truncated response, never a complete one.
//! - Idle keep-alive connections are closed after [`IDLE_TIMEOUT`] (75 s) without a request;
//!   a response write that makes no progress for as long drops the connection.
//! - With TLS (`internal_tls.enabled`) client certificates are required and verified; without,
//!   a loud `tracing::warn!` says the listener is plain.
//! - [`ListenerHandle::shutdown`] stops accepting, lets in-flight responses finish until its
//!   deadline, then closes everything.

mod body;
mod io;
mod reply;
mod serve;
mod service;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orca_cluster_driver_common::{ConcurrencyLimit, Filler};
use smol::net::TcpListener;

use crate::cluster::Cluster;
use serve::{Context, accept_loop};
use service::Service;
use shared::Shared;

pub use serve::IDLE_TIMEOUT;

/// Default for [`ListenerSettings::max_concurrent`]: 256.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default for [`ListenerSettings::max_header_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The longest request head async-h1's decoder accepts: 8 KiB - 1 byte (it refuses heads of
/// 8 KiB or more). The effective limit is the lower of this and
/// [`ListenerSettings::max_header_bytes`].
pub const ASYNC_H1_MAX_HEAD_BYTES: usize = 8 * 1024 - 1;
/// How long [`ListenerHandle::shutdown`] waits for forced-closed connection tasks to exit: 1 s.
const FORCE_GRACE: Duration = Duration::from_secs(1);

/// Limits of a fill listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Fills served at once (default 256); admitted requests beyond it get 503 at once. A
    /// fill counts from the filler call until its response body is done.
    pub max_concurrent: usize,
    /// Bytes a request head may have (default 16 KiB, capped at [`ASYNC_H1_MAX_HEAD_BYTES`]);
    /// a longer head is answered 431 and its connection closed.
    pub max_header_bytes: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// A bound, not yet serving, fill listener socket.
#[derive(Debug)]
pub struct FillListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl FillListener {
    /// Binds `addr` (port 0 picks a free port; see [`FillListener::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<FillListener> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(FillListener { listener, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Spawns the accept loop on smol and serves DESIGN 3.6 with `cluster`'s current snapshot
    /// and TLS configuration: mutual TLS when `internal_tls.enabled` (certificate files re-read
    /// when they change), else plain HTTP with a loud warning. The listener keeps serving when
    /// the handle is dropped; stop it with [`ListenerHandle::shutdown`]. It holds a clone of
    /// `cluster`, so membership keeps running while it serves (unless the cluster is closed,
    /// after which admission uses the last snapshot).
    pub fn serve(
        self,
        cluster: &Cluster,
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> ListenerHandle {
        let inner = cluster.inner();
        if inner.tls.is_none() {
            tracing::warn!(
                event = "plain_fill_listener",
                addr = %self.addr,
                "FILL LISTENER IS PLAIN HTTP: no TLS, no client authentication. Any host that \
                 can reach this port can read cached chunks. Enable internal_tls in production."
            );
        }
        let shared = Arc::new(Shared::default());
        let context = Arc::new(Context {
            _cluster: cluster.clone(),
            service: Service {
                state: inner.state.clone(),
                filler: Arc::new(filler),
                limit: ConcurrencyLimit::new(settings.max_concurrent),
            },
            tls: inner.tls.clone(),
            max_header_bytes: settings.max_header_bytes.min(ASYNC_H1_MAX_HEAD_BYTES),
            shared: shared.clone(),
        });
        smol::spawn(accept_loop(self.listener, context)).detach();
        ListenerHandle {
            addr: self.addr,
            shared,
        }
    }
}

/// Controls a serving listener.
#[derive(Debug)]
pub struct ListenerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ListenerHandle {
    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far (each keep-alive connection counts once).
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted()
    }

    /// Stops accepting at once (the port is released), lets in-flight responses finish for up
    /// to `deadline` (responses sent meanwhile carry `Connection: close`), then closes every
    /// remaining connection, idle keep-alive ones included.
    pub async fn shutdown(self, deadline: Duration) {
        self.shared.stop();
        crate::runtime::timeout(deadline, self.shared.idle()).await;
        self.shared.force();
        crate::runtime::timeout(FORCE_GRACE, self.shared.all_closed()).await;
    }
}
