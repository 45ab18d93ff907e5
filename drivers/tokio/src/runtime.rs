//! [`Tokio`]: the tokio runtime as an orca-cluster [`Driver`]: tasks on a tokio runtime handle,
//! tokio timers, hickory's tokio provider, TCP, and hyper for the client's HTTP.

use std::future::Future;
use std::time::Duration;

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use orca_cluster_driver_common::client::ClientSetup;
use orca_cluster_driver_common::runtime::{UnblockError, run_blocking};
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

    /// `spawn_blocking` on this runtime. `f`'s panic is caught on the blocking thread; a
    /// `JoinError` (the runtime shut down before `f` ran or finished) is
    /// [`UnblockError::Cancelled`].
    fn unblock<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, UnblockError>> + Send + 'static {
        let task = self.handle.spawn_blocking(move || run_blocking(f));
        async move {
            match task.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(UnblockError::Panicked(
                    "the blocking task panicked outside the call".into(),
                )),
                Err(_) => Err(UnblockError::Cancelled),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn unblock_runs_off_the_runtime_thread_and_reports_panics() {
        let tokio = Tokio::current();
        let caller = std::thread::current().id();
        let ran_on = tokio.unblock(|| std::thread::current().id()).await;
        assert_ne!(ran_on, Ok(caller));
        assert!(ran_on.is_ok());
        assert_eq!(
            tokio.unblock(|| -> u8 { panic!("bad sector") }).await,
            Err(UnblockError::Panicked("bad sector".into()))
        );
        // The runtime still serves blocking calls after a panic.
        assert_eq!(tokio.unblock(|| 7).await, Ok(7));
    }

    #[test]
    fn unblock_on_a_shut_down_runtime_is_cancelled() {
        let gone = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = gone.handle().clone();
        drop(gone);
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = other.block_on(Tokio::from_handle(handle).unblock(|| 7));
        assert_eq!(result, Err(UnblockError::Cancelled));
    }
}
