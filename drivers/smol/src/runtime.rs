//! [`Smol`]: smol as an orca-cluster [`Driver`]: tasks on smol's global executor (detached),
//! `async-io` timers, hickory on smol ([`crate::dns_runtime`]), TCP, and the core's HTTP/1.1
//! codec for the client ([`SmolExchange`]).

use std::future::Future;
use std::time::Duration;

use orca_cluster_driver_common::client::ClientSetup;
use orca_cluster_driver_common::runtime::{UnblockError, run_blocking};
use orca_cluster_driver_common::{Driver, ListenerSetup, Protocol, Runtime};

use crate::client::SmolExchange;
use crate::dns_runtime::SmolRuntimeProvider;
use crate::stream::BoxIo;

/// The smol driver. smol's global executor runs on `SMOL_THREADS` background threads (default
/// 1); the reactor is driven by those threads and by any `smol::block_on`. Every value of this
/// type is the same runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

impl Runtime for Smol {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        sleep(duration)
    }

    /// `smol::unblock` (the `blocking` crate's thread pool); `f`'s panic is caught on the
    /// blocking thread. The pool never drops a call it accepted, so this never reports
    /// [`UnblockError::Cancelled`].
    fn unblock<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, UnblockError>> + Send + 'static {
        smol::unblock(move || run_blocking(f))
    }
}

impl Driver for Smol {
    const NAME: &'static str = "smol";
    const PROTOCOLS: &'static [Protocol] = &[Protocol::Http1];
    type Dns = SmolRuntimeProvider;
    type Io = BoxIo;
    type Exchange = SmolExchange;

    fn current() -> Self {
        Smol
    }

    fn dns(&self) -> SmolRuntimeProvider {
        SmolRuntimeProvider
    }

    fn exchange(&self, setup: ClientSetup<Self>) -> SmolExchange {
        SmolExchange::new(setup)
    }

    fn serve(&self, setup: ListenerSetup) {
        smol::spawn(crate::listener::accept_loop(setup)).detach();
    }
}

/// Completes after `duration` (an [`async_io::Timer`]; durations too large to represent as an
/// instant never complete).
pub async fn sleep(duration: Duration) {
    async_io::Timer::after(duration).await;
}

/// Runs `future` for at most `limit`; `None` if the limit passed first (the future is dropped).
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep(limit).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn spawns_and_sleeps() {
        smol::block_on(async {
            let done = Arc::new(AtomicBool::new(false));
            let flag = done.clone();
            Smol.spawn(async move { flag.store(true, Ordering::SeqCst) });
            for _ in 0..200 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                Smol.sleep(Duration::from_millis(5)).await;
            }
            assert!(done.load(Ordering::SeqCst));
            assert_eq!(
                timeout(Duration::from_millis(5), std::future::pending::<()>()).await,
                None
            );
            assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Some(7));
        });
    }

    #[test]
    fn unblock_runs_off_the_calling_thread_and_reports_panics() {
        smol::block_on(async {
            let caller = std::thread::current().id();
            let ran_on = Smol.unblock(|| std::thread::current().id()).await;
            assert!(ran_on.is_ok());
            assert_ne!(ran_on, Ok(caller));
            assert_eq!(
                Smol.unblock(|| -> u8 { panic!("bad sector") }).await,
                Err(UnblockError::Panicked("bad sector".into()))
            );
            assert_eq!(Smol.unblock(|| 7).await, Ok(7));
        });
    }
}
