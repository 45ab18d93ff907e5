//! The harness of `orca-cluster-smol`: `smol::block_on` on the test thread (smol's global
//! executor runs the driver's tasks), `async-io` timers, `Options` from [`Setup`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use orca_cluster_core::ClusterConfig;
use orca_cluster_driver_common::{Filler, StartError};
use orca_cluster_smol::{Cluster, FillListener, ListenerHandle, ListenerSettings, Options};

use super::{Driver, LocalBoxFuture, ServingListener, Setup, TEST_LIMIT, impl_cluster_handle};

/// The smol/async-h1 driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolDriver;

impl_cluster_handle!(Cluster, "smol");

/// The driver's `Options` for `setup` (`http1` is accepted and ignored by this driver).
pub fn options(setup: &Setup) -> Options {
    let mut options = Options::default()
        .with_self_port(setup.self_port)
        .with_http1(setup.http1);
    if let Some(source) = &setup.source {
        options = options.with_peer_source(source.clone());
    }
    if let Some(nameserver) = setup.nameserver {
        options = options.with_nameserver(nameserver);
    }
    options
}

impl Driver for SmolDriver {
    const NAME: &'static str = "smol";
    type Cluster = Cluster;
    type Listener = FillListener;

    fn run<F: Future>(future: F) -> F::Output {
        smol::block_on(async {
            futures_lite::future::or(async { Some(future.await) }, async {
                smol::Timer::after(TEST_LIMIT).await;
                None
            })
            .await
        })
        .unwrap_or_else(|| panic!("smol: the test did not finish within {TEST_LIMIT:?}"))
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    fn start(
        config: ClusterConfig,
        setup: Setup,
    ) -> impl Future<Output = Result<Cluster, StartError>> {
        Cluster::start(config, options(&setup))
    }

    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<FillListener>> {
        FillListener::bind(addr)
    }

    fn listener_addr(listener: &FillListener) -> SocketAddr {
        listener.local_addr()
    }

    fn serve(
        listener: FillListener,
        cluster: &Cluster,
        filler: impl Filler,
        max_concurrent: usize,
    ) -> Box<dyn ServingListener> {
        let settings = ListenerSettings {
            max_concurrent,
            ..ListenerSettings::default()
        };
        Box::new(listener.serve(cluster, filler, settings))
    }
}

impl ServingListener for ListenerHandle {
    fn local_addr(&self) -> SocketAddr {
        ListenerHandle::local_addr(self)
    }

    fn shutdown(self: Box<Self>, deadline: Duration) -> LocalBoxFuture<'static, ()> {
        Box::pin(ListenerHandle::shutdown(*self, deadline))
    }
}
