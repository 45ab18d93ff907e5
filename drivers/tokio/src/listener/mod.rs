//! The fill listener: serves `GET /internal/fill` to peers with the application's filler.
//!
//! [`FillListener::serve`] runs an accept loop on the current tokio runtime: HTTP/1.1, h2c
//! (prior knowledge) and, with TLS, h2 or HTTP/1.1 by ALPN, all on one port; mutual TLS when
//! the cluster's `internal_tls.enabled`; the shared request pipeline
//! ([`orca_cluster_driver_common::FillPipeline`]); the shared shutdown ([`ListenerHandle`]).
//! [`FillService`] is the request handler alone, for applications that serve it from their
//! own server (axum, hyper).

mod body;
mod serve;
mod service;

use std::io;
use std::net::SocketAddr;

use orca_cluster_driver_common::listener::warn_plain_listener;
use orca_cluster_driver_common::{Filler, ListenerControl, ListenerSettings};
use tokio::net::TcpListener;

pub use body::FillResponseBody;
pub use service::{FillService, ResponseFuture};

use crate::{Cluster, ListenerHandle};

/// A bound, not yet serving, fill listener socket.
#[derive(Debug)]
pub struct FillListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl FillListener {
    /// Binds `addr` (e.g. the cluster's `internal_listen`, or `127.0.0.1:0` in tests).
    pub async fn bind(addr: SocketAddr) -> io::Result<FillListener> {
        FillListener::from_tokio(TcpListener::bind(addr).await?)
    }

    /// Wraps an already bound tokio listener.
    pub fn from_tokio(listener: TcpListener) -> io::Result<FillListener> {
        let addr = listener.local_addr()?;
        Ok(FillListener { listener, addr })
    }

    /// The bound address (with the OS-assigned port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Spawns the accept loop serving [`FillService`] for `cluster` with `filler`: mutual TLS
    /// with the cluster's certificates when `internal_tls.enabled`, else plain HTTP with a loud
    /// warning. Keep the handle: dropping it stops the listener at once.
    pub fn serve(
        self,
        cluster: &Cluster,
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> ListenerHandle {
        let service = FillService::new(cluster, filler, &settings);
        self.serve_service(cluster, service, settings)
    }

    /// Like [`FillListener::serve`] with a prepared service (e.g. one shared with an axum
    /// router, so both share the concurrency limit).
    pub fn serve_service(
        self,
        cluster: &Cluster,
        service: FillService,
        settings: ListenerSettings,
    ) -> ListenerHandle {
        let tls = cluster.tls().cloned();
        if tls.is_none() {
            warn_plain_listener(self.addr);
        }
        let control = ListenerControl::new();
        cluster.runtime().handle().spawn(serve::accept_loop(
            self.listener,
            service,
            tls,
            settings,
            control.clone(),
        ));
        ListenerHandle::new(self.addr, control, cluster.runtime().clone())
    }
}
