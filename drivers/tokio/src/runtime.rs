//! [`Tokio`]: the tokio runtime as an orca-cluster [`Driver`]: tasks on a tokio runtime handle,
//! tokio timers, hickory's tokio provider, TCP, and hyper for the client's HTTP.

use std::future::Future;
use std::time::Duration;

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use orca_cluster_driver_common::client::ClientSetup;
use orca_cluster_driver_common::{Driver, ListenerSetup, Protocol, Runtime};
use tokio::runtime::Handle;

use crate::client::{BoxIo, HyperExchange};
use crate::listener::accept_loop;

/// The tokio driver: a handle on the runtime that runs the cluster's tasks.
#[derive(Clone, Debug)]
pub struct Tokio {
    handle: Handle,
}

impl Tokio {
    /// The runtime of the calling context. Panics outside a tokio runtime (as
    /// `tokio::runtime::Handle::current` does).
    pub fn current() -> Tokio {
        Tokio {
            handle: Handle::current(),
        }
    }

    /// A driver running its tasks on `handle`.
    pub fn from_handle(handle: Handle) -> Tokio {
        Tokio { handle }
    }

    /// The runtime handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Runtime for Tokio {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }
}

impl Driver for Tokio {
    const NAME: &'static str = "tokio";
    const PROTOCOLS: &'static [Protocol] = &[Protocol::Http2, Protocol::Http1];
    type Dns = TokioRuntimeProvider;
    type Io = BoxIo;
    type Exchange = HyperExchange;

    fn current() -> Self {
        Tokio::current()
    }

    fn dns(&self) -> TokioRuntimeProvider {
        TokioRuntimeProvider::default()
    }

    fn serve(&self, setup: ListenerSetup) {
        drop(self.handle.spawn(accept_loop(setup)));
    }

    fn exchange(&self, setup: ClientSetup<Self>) -> HyperExchange {
        HyperExchange::new(setup)
    }
}
