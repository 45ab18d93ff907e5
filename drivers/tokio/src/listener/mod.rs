//! The fill listener: serves `GET /internal/fill` to peers with the application's filler.
//!
//! [`FillListener::serve`] runs an accept loop on the current tokio runtime: HTTP/1.1, h2c
//! (prior knowledge) and, with TLS, h2 or HTTP/1.1 by ALPN, all on one port; mutual TLS when
//! the cluster's `internal_tls.enabled` (client certificates required and verified, files
//! re-read on change for new connections); bounded concurrency (503), bounded request heads,
//! graceful shutdown. [`FillService`] is the request handler alone, for applications that serve
//! it from their own server (axum, hyper).

mod body;
mod serve;
mod service;
mod settings;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use orca_cluster_driver_common::Filler;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use body::FillResponseBody;
pub use service::{FillService, ResponseFuture};
pub use settings::ListenerSettings;

use crate::cluster::Cluster;

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
    #[must_use = "dropping the ListenerHandle stops the listener"]
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
    #[must_use = "dropping the ListenerHandle stops the listener"]
    pub fn serve_service(
        self,
        cluster: &Cluster,
        service: FillService,
        settings: ListenerSettings,
    ) -> ListenerHandle {
        let tls = cluster.tls().cloned();
        if tls.is_none() {
            tracing::warn!(
                event = "plain_listener",
                addr = %self.addr,
                "fill listener serving WITHOUT TLS: any host that can reach this port can read \
                 cached chunks; enable cluster.internal_tls in production"
            );
        }
        let (shutdown, receiver) = watch::channel(None);
        let task = tokio::spawn(
            serve::AcceptLoop {
                listener: self.listener,
                service,
                tls,
                settings,
                shutdown: receiver,
            }
            .run(),
        );
        ListenerHandle {
            addr: self.addr,
            shutdown,
            task: Some(task),
        }
    }
}

/// Controls a serving [`FillListener`]. Dropping it stops the listener at once (open
/// connections are dropped); [`ListenerHandle::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct ListenerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl ListenerHandle {
    /// The address being served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting at once, lets in-flight responses finish for up to `deadline` (HTTP/2
    /// connections get `GOAWAY`, idle HTTP/1.1 connections are closed), then drops what is
    /// left. Returns when the accept loop and every connection are gone.
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.shutdown.send(Some(deadline));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
