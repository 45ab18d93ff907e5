//! The life of one pooled connection: requests in flight (leases), idle timeout, eviction.
//!
//! Each connection's driver task runs until the connection ends by itself (peer closed it,
//! protocol error, keep-alive timeout) or until it has carried no request for the idle timeout,
//! or has been evicted (its peer left the snapshot, or the client closed) and carries no request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Shared between a connection's driver task, the pool and the requests using it.
#[derive(Debug)]
pub(crate) struct ConnWatch {
    created: Instant,
    /// Milliseconds since `created` when the last request finished (or the connection opened).
    last_used_ms: AtomicU64,
    in_flight: AtomicUsize,
    evicted: AtomicBool,
    closed: AtomicBool,
    /// Why the connection ended, when it ended with an error (e.g. a TLS alert the peer sent
    /// after the handshake: a rejected client certificate).
    error: std::sync::Mutex<Option<String>>,
    notify: Notify,
}

impl ConnWatch {
    pub(crate) fn new() -> Arc<ConnWatch> {
        Arc::new(ConnWatch {
            created: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            error: std::sync::Mutex::new(None),
            notify: Notify::new(),
        })
    }

    /// Marks one request in flight until the lease drops.
    pub(crate) fn lease(self: &Arc<Self>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
        Lease(self.clone())
    }

    /// No new requests will be sent; the connection closes once its requests finish.
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether the driver task has ended (the connection is gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether new requests may use the connection.
    pub(crate) fn is_usable(&self) -> bool {
        !self.is_closed() && !self.evicted.load(Ordering::Acquire)
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used_ms.load(Ordering::Acquire));
        self.created.elapsed().saturating_sub(last)
    }

    /// Completes when the connection should be closed by us: idle for `idle`, or evicted, with
    /// nothing in flight.
    async fn until_unwanted(&self, idle: Duration) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                if self.evicted.load(Ordering::Acquire) {
                    return;
                }
                let idle_for = self.idle_for();
                if idle_for >= idle {
                    return;
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(idle - idle_for) => {}
                }
            } else {
                notified.await;
            }
        }
    }

    /// Drives `connection` until it ends or is no longer wanted; then it is dropped (closing
    /// the socket) and the watch is marked closed.
    pub(crate) async fn drive<C>(self: Arc<Self>, connection: C, idle: Duration)
    where
        C: Future<Output = hyper::Result<()>>,
    {
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "fill connection ended with an error");
                    *self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(super::describe(&e));
                }
            }
            _ = self.until_unwanted(idle) => {
                tracing::debug!("closing idle or evicted fill connection");
            }
        }
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Why the connection ended, waiting at most `limit` for it to end: a request that failed
    /// because its connection went away is reported with the connection's own error.
    pub(crate) async fn end_error(&self, limit: Duration) -> Option<String> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.is_closed() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub(crate) struct Lease(Arc<ConnWatch>);

impl Drop for Lease {
    fn drop(&mut self) {
        let watch = &self.0;
        let now_ms = u64::try_from(watch.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        watch.last_used_ms.store(now_ms, Ordering::Release);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
        watch.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_and_eviction_end_the_driver() {
        let w = ConnWatch::new();
        let started = Instant::now();
        w.clone()
            .drive(std::future::pending(), Duration::from_millis(50))
            .await;
        assert!(w.is_closed() && started.elapsed() >= Duration::from_millis(50));

        let w = ConnWatch::new();
        let lease = w.lease();
        w.evict();
        let task = tokio::spawn(
            w.clone()
                .drive(std::future::pending(), Duration::from_secs(60)),
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !w.is_closed(),
            "a request in flight keeps an evicted connection"
        );
        drop(lease);
        task.await.unwrap();
        assert!(w.is_closed());
    }
}
