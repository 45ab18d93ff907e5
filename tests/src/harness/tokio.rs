//! The harness of `orca-cluster-tokio`: a multi-threaded tokio runtime (2 workers) per test,
//! `tokio::time` timers, `Options` from [`Setup`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use orca_cluster_core::ClusterConfig;
use orca_cluster_driver_common::{Filler, StartError};
use orca_cluster_tokio::{Cluster, FillListener, ListenerHandle, ListenerSettings, Options};

use super::{Driver, LocalBoxFuture, ServingListener, Setup, TEST_LIMIT, impl_cluster_handle};

/// The tokio/hyper driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioDriver;

impl_cluster_handle!(Cluster, "tokio");

/// The driver's `Options` for `setup`.
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

impl Driver for TokioDriver {
    const NAME: &'static str = "tokio";
    type Cluster = Cluster;
    type Listener = FillListener;

    fn run<F: Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let outcome = runtime.block_on(async { tokio::time::timeout(TEST_LIMIT, future).await });
        runtime.shutdown_timeout(Duration::from_secs(1));
        outcome.unwrap_or_else(|_| panic!("tokio: the test did not finish within {TEST_LIMIT:?}"))
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
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
