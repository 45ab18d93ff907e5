//! The fill listener: serves `GET /internal/fill` over HTTP/1.1, plain or with mutual TLS.
//! Request heads are parsed and response heads written by the core's codec
//! ([`orca_cluster_core::h1`]); requests go through the shared pipeline
//! ([`orca_cluster_driver_common::FillPipeline`]); shutdown is the shared
//! [`ListenerHandle`]. Body frames go from the filler to the socket without a copy.

mod serve;

use std::net::SocketAddr;

use orca_cluster_driver_common::listener::warn_plain_listener;
use orca_cluster_driver_common::{FillPipeline, Filler, ListenerControl, ListenerSettings};
use smol::net::TcpListener;

use crate::{Cluster, ListenerHandle, Smol};

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

    /// Spawns the accept loop on smol serving `cluster`'s current snapshot with `filler`:
    /// mutual TLS with the cluster's certificates when `internal_tls.enabled`, else plain HTTP
    /// with a loud warning. Keep the handle: dropping it stops the listener at once.
    pub fn serve(
        self,
        cluster: &Cluster,
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> ListenerHandle {
        let tls = cluster.tls().cloned();
        if tls.is_none() {
            warn_plain_listener(self.addr);
        }
        let control = ListenerControl::new();
        let pipeline = FillPipeline::new(cluster.state().clone(), filler, &settings);
        let context = serve::Context {
            pipeline,
            tls,
            settings,
            control: control.clone(),
        };
        smol::spawn(serve::accept_loop(
            self.listener,
            std::sync::Arc::new(context),
        ))
        .detach();
        ListenerHandle::new(self.addr, control, Smol)
    }
}
