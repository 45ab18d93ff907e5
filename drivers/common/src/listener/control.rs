//! Shutdown of a listener, the same on both drivers: [`ListenerControl`] is shared by the
//! accept loop, its connections and the [`ListenerHandle`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use event_listener::Event;

use crate::runtime::Runtime;

/// How long [`ListenerHandle::shutdown`] waits for forced-closed connections to go: 1 s.
const FORCE_GRACE: Duration = Duration::from_secs(1);

/// Shutdown phases and counters of one listener.
///
/// The driver's accept loop stops accepting once [`ListenerControl::stopped`] completes; each
/// connection holds a [`ConnectionGuard`], finishes its in-flight response and closes once
/// stopped (HTTP/2: `GOAWAY`; HTTP/1.1: the response carries `Connection: close`, idle
/// connections close at once), and is dropped at once when [`ListenerControl::forced`]
/// completes.
#[derive(Debug, Default)]
pub struct ListenerControl {
    stopping: AtomicBool,
    forced: AtomicBool,
    connections: AtomicUsize,
    accepted: AtomicU64,
    changed: Event,
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<ListenerControl>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify(usize::MAX);
    }
}

impl ListenerControl {
    /// A new control, serving.
    pub fn new() -> Arc<ListenerControl> {
        Arc::new(ListenerControl::default())
    }

    /// Registers an accepted connection.
    pub fn open(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Connections accepted since the listener started.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Stops accepting; connections close after their in-flight response.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    /// Whether [`ListenerControl::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether the listener is serving: neither stopped nor forced (`!is_stopping()`).
    pub fn is_serving(&self) -> bool {
        !self.is_stopping()
    }

    /// Drops every remaining connection (and stops accepting).
    pub fn force(&self) {
        self.stopping.store(true, Ordering::Release);
        self.forced.store(true, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    async fn until(&self, condition: impl Fn(&ListenerControl) -> bool) {
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

    /// Completes once stopping (or forced).
    pub async fn stopped(&self) {
        self.until(|s| s.stopping.load(Ordering::Acquire)).await;
    }

    /// Completes once forced.
    pub async fn forced(&self) {
        self.until(|s| s.forced.load(Ordering::Acquire)).await;
    }

    /// Completes once fewer than `max` connections are open (or once stopping): the accept
    /// loop waits here before each accept.
    pub async fn room_for(&self, max: usize) {
        self.until(|s| {
            s.connections.load(Ordering::Acquire) < max || s.stopping.load(Ordering::Acquire)
        })
        .await;
    }

    /// Completes once no connection is open.
    pub async fn all_closed(&self) {
        self.until(|s| s.connections.load(Ordering::Acquire) == 0)
            .await;
    }
}

/// Controls a serving listener, the same on both drivers. **Dropping it stops the listener at
/// once** (open connections are dropped); [`ListenerHandle::shutdown`] stops it gracefully.
#[must_use = "dropping the ListenerHandle stops the listener"]
pub struct ListenerHandle<R: Runtime> {
    addr: SocketAddr,
    control: Arc<ListenerControl>,
    runtime: R,
}

impl<R: Runtime> fmt::Debug for ListenerHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerHandle")
            .field("addr", &self.addr)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> ListenerHandle<R> {
    /// The handle of a listener on `addr` whose accept loop and connections obey `control`.
    pub fn new(addr: SocketAddr, control: Arc<ListenerControl>, runtime: R) -> Self {
        ListenerHandle {
            addr,
            control,
            runtime,
        }
    }

    /// The address being served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.control.accepted()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.control.open_connections()
    }

    /// Whether the listener is serving (accepting connections): `false` once it is stopped.
    /// [`ListenerHandle::shutdown`] and dropping the handle stop it, so a handle still held
    /// is serving unless something else stopped its control; [`Health`](crate::health::Health) keeps
    /// watching the listener after its handle is gone.
    pub fn is_serving(&self) -> bool {
        self.control.is_serving()
    }

    /// The control shared with the accept loop (readiness checks watch it).
    pub(crate) fn control(&self) -> &Arc<ListenerControl> {
        &self.control
    }

    /// Stops accepting at once (the port is released), lets in-flight responses finish for up
    /// to `deadline` (HTTP/2 connections get `GOAWAY`, HTTP/1.1 responses carry
    /// `Connection: close`, idle connections close), then drops what is left. Returns when
    /// every connection is gone (or 1 s after the forced close).
    pub async fn shutdown(self, deadline: Duration) {
        let control = self.control.clone();
        control.stop();
        futures_lite::future::or(control.all_closed(), self.runtime.sleep(deadline)).await;
        control.force();
        futures_lite::future::or(control.all_closed(), self.runtime.sleep(FORCE_GRACE)).await;
    }
}

impl<R: Runtime> Drop for ListenerHandle<R> {
    fn drop(&mut self) {
        self.control.force();
    }
}
