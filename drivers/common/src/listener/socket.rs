//! [`FillListener`]: a bound fill listener socket, the same on both drivers.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::{FillPipeline, ListenerControl, ListenerHandle, ListenerSettings, warn_plain_listener};
use crate::cluster::Cluster;
use crate::driver::Driver;
use crate::filler::Filler;

/// A bound, not yet serving, fill listener socket.
pub struct FillListener<D: Driver> {
    socket: std::net::TcpListener,
    addr: SocketAddr,
    driver: std::marker::PhantomData<fn() -> D>,
}

impl<D: Driver> fmt::Debug for FillListener<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillListener")
            .field("driver", &D::NAME)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> FillListener<D> {
    /// Binds `addr` (e.g. the cluster's `internal_listen`, or `127.0.0.1:0` in tests: port 0
    /// picks a free port, see [`FillListener::local_addr`]). Binding does not wait; it is
    /// `async` for symmetry with the runtimes' own listeners.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        FillListener::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Wraps an already bound std socket (it is switched to non-blocking mode).
    pub fn from_std(socket: std::net::TcpListener) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(FillListener {
            socket,
            addr,
            driver: std::marker::PhantomData,
        })
    }

    /// The bound address (with the OS-assigned port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Spawns the accept loop serving `GET /internal/fill` for `cluster`'s current snapshot
    /// with `filler` through the shared [`FillPipeline`]: mutual TLS with the cluster's
    /// certificates when `internal_tls.enabled`, else plain HTTP with a loud warning. Keep the
    /// handle: dropping it stops the listener at once.
    pub fn serve(
        self,
        cluster: &Cluster<D>,
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> ListenerHandle<D> {
        let pipeline = FillPipeline::new(cluster.state().clone(), filler, &settings);
        self.serve_pipeline(cluster, pipeline, settings)
    }

    /// Like [`FillListener::serve`] with a prepared pipeline (e.g. one also mounted in an axum
    /// router, so both share the concurrency limit). `settings.max_concurrent` is the
    /// pipeline's own; the other settings apply to the connections.
    pub fn serve_pipeline(
        self,
        cluster: &Cluster<D>,
        pipeline: FillPipeline,
        settings: ListenerSettings,
    ) -> ListenerHandle<D> {
        let tls = cluster.tls().cloned();
        if tls.is_none() {
            warn_plain_listener(self.addr);
        }
        let control = ListenerControl::new();
        let runtime = cluster.runtime().clone();
        runtime.serve(crate::driver::ListenerSetup {
            socket: self.socket,
            context: crate::driver::ListenerContext {
                pipeline,
                tls,
                settings,
                control: control.clone(),
            },
        });
        ListenerHandle::new(self.addr, control, runtime)
    }
}
