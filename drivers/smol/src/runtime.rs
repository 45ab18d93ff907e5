//! The smol implementation of the drivers' [`Runtime`] trait: tasks go to smol's global
//! executor ([`smol::spawn`], detached), timers are [`async_io::Timer`]s.

use std::future::Future;
use std::time::Duration;

use orca_cluster_driver_common::Runtime;

/// Spawns on smol's global executor and sleeps with `async-io` timers.
///
/// smol's global executor runs on `SMOL_THREADS` background threads (default 1); the reactor is
/// driven by those threads and by any `smol::block_on`. Nothing here needs a handle: every value
/// of this type is the same runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        sleep(duration)
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
            SmolRuntime.spawn(async move { flag.store(true, Ordering::SeqCst) });
            for _ in 0..200 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                SmolRuntime.sleep(Duration::from_millis(5)).await;
            }
            assert!(done.load(Ordering::SeqCst));
            assert_eq!(
                timeout(Duration::from_millis(5), std::future::pending::<()>()).await,
                None
            );
            assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Some(7));
        });
    }
}
