//! State shared by a listener's accept loop, its connection tasks and its handle: the shutdown
//! phases and the counters that graceful shutdown waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use event_listener::Event;

/// Shutdown phases and counters of one listener.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    stopping: AtomicBool,
    forced: AtomicBool,
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    accepted: AtomicU64,
    changed: Event,
}

/// Counts one request from admission until its response is written (or its connection ends).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Shared>);

/// Counts one open connection task.
#[derive(Debug)]
pub(crate) struct Open(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify(usize::MAX);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify(usize::MAX);
    }
}

impl Shared {
    pub(crate) fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub(crate) fn open(self: &Arc<Self>) -> Open {
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// Connections accepted since the listener started.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stop accepting; responses from now on close their connection.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Drop every remaining connection.
    pub(crate) fn force(&self) {
        self.forced.store(true, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    /// Completes once `condition` holds (re-checked at every change).
    async fn until(&self, condition: impl Fn(&Shared) -> bool) {
        loop {
            if condition(self) {
                return;
            }
            let listener = self.changed.listen();
            if condition(self) {
                return;
            }
            listener.await;
        }
    }

    pub(crate) async fn stopped(&self) {
        self.until(|s| s.stopping.load(Ordering::Acquire)).await;
    }

    pub(crate) async fn forced(&self) {
        self.until(|s| s.forced.load(Ordering::Acquire)).await;
    }

    pub(crate) async fn idle(&self) {
        self.until(|s| s.in_flight.load(Ordering::Acquire) == 0)
            .await;
    }

    pub(crate) async fn all_closed(&self) {
        self.until(|s| s.connections.load(Ordering::Acquire) == 0)
            .await;
    }
}
