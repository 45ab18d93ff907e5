//! [`ConnectionWatch`]: the deadlines of one listener connection, the same on both drivers.
//!
//! A driver creates one watch per accepted connection, registers every request it answers
//! ([`ConnectionWatch::request`]), answers through [`super::FillPipeline::respond_on`] (which
//! takes the connection's fill slot and lets the response body report its progress), and races
//! the connection against [`ConnectionWatch::expired`]. When that completes, the driver drops the
//! connection, which aborts its responses and frees their fill slots.
//!
//! The rules (each a [`ListenerSettings`] field; decided by the core's
//! `orca_cluster_core::connection_deadlines::verdict`, this watch only observes):
//! - **first request** — a connection that has not delivered a complete request head within
//!   `header_read_timeout` of being accepted (a TLS handshake counts against it) is closed:
//!   silence, a partial HTTP/2 preface, or an idle connection after a mutual-TLS handshake;
//! - **idle** — a connection with no request in flight for `idle_timeout` is closed, whatever
//!   else it sends (HTTP/2 PINGs and SETTINGS do not count);
//! - **stalled** — a connection with a fill response that has waited `send_timeout` for the
//!   client to take its next bytes (HTTP/2 flow-control window never opened, an HTTP/1.1 client
//!   that stops reading) is closed; time the application's filler spends producing bytes does
//!   not count;
//! - **fill slots** — at most `max_concurrent_per_connection` fills of one connection hold a
//!   slot of the listener-wide `max_concurrent` at once; more are answered 503.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use orca_cluster_core::connection_deadlines::Expiry;
use orca_cluster_core::connection_deadlines::{Limits, Observed, verdict};

use super::ListenerSettings;
use crate::runtime::Runtime;

/// `waiting_since` of a fill that is not waiting on the client.
const NOT_WAITING: u64 = u64::MAX;

/// The deadlines of one connection; see the module docs. Cheap to clone (clones share state).
#[derive(Clone, Debug)]
pub struct ConnectionWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    limits: Limits,
    max_fills: usize,
    /// Requests registered so far.
    requests: AtomicU64,
    /// Requests in flight.
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when `in_flight` last became 0.
    idle_since: AtomicU64,
    /// The fills holding a slot of this connection.
    fills: Mutex<Vec<Arc<Progress>>>,
}

/// How far one fill response is: since when (ms since the watch's epoch) it waits for the
/// client to take the bytes it handed out, or [`NOT_WAITING`].
#[derive(Debug)]
struct Progress {
    waiting_since: AtomicU64,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn fills(&self) -> MutexGuard<'_, Vec<Arc<Progress>>> {
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ConnectionWatch {
    /// The watch of a connection accepted now, with `settings`' deadlines and per-connection
    /// fill limit.
    pub fn new(settings: &ListenerSettings) -> ConnectionWatch {
        ConnectionWatch {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                limits: Limits {
                    first_request: settings.header_read_timeout,
                    idle: settings.idle_timeout,
                    send: settings.send_timeout,
                },
                max_fills: settings.max_concurrent_per_connection,
                requests: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle_since: AtomicU64::new(0),
                fills: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Registers a request whose head has been read; it is in flight until the guard is
    /// dropped (the driver drops it with the response, once sent or abandoned).
    pub fn request(&self) -> RequestGuard {
        self.inner.requests.fetch_add(1, Ordering::AcqRel);
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            inner: self.inner.clone(),
        }
    }

    /// Requests registered so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Acquire)
    }

    /// The per-connection fill limit ([`ListenerSettings::max_concurrent_per_connection`]).
    pub fn max_fills(&self) -> usize {
        self.inner.max_fills
    }

    /// Fills of this connection holding a slot now.
    pub fn fills_in_flight(&self) -> usize {
        self.inner.fills().len()
    }

    /// A fill slot of this connection, or `None` when `max_concurrent_per_connection` are
    /// taken.
    pub(crate) fn try_fill_slot(&self) -> Option<FillSlot> {
        let mut fills = self.inner.fills();
        if fills.len() >= self.inner.max_fills {
            return None;
        }
        let progress = Arc::new(Progress {
            waiting_since: AtomicU64::new(NOT_WAITING),
        });
        fills.push(progress.clone());
        Some(FillSlot {
            inner: self.inner.clone(),
            progress,
        })
    }

    /// The verdict now: why the connection must close, or how long until the next deadline
    /// could pass.
    fn check(&self) -> Result<Expiry, Duration> {
        let inner = &*self.inner;
        let ms = Duration::from_millis;
        let oldest = inner
            .fills()
            .iter()
            .map(|p| p.waiting_since.load(Ordering::Acquire))
            .min()
            .filter(|&since| since != NOT_WAITING);
        let seen = Observed {
            now: ms(inner.now_ms()),
            had_request: inner.requests.load(Ordering::Acquire) > 0,
            idle_since: (inner.in_flight.load(Ordering::Acquire) == 0)
                .then(|| ms(inner.idle_since.load(Ordering::Acquire))),
            oldest_waiting: oldest.map(ms),
        };
        verdict(&inner.limits, &seen)
    }

    /// Completes when the connection must be closed, with the reason; checks the state at its
    /// deadlines, and at least every quarter of `send_timeout` and of `idle_timeout` (never
    /// more often than every 50 ms): a stall or idleness is seen within 1.25 × its timeout.
    pub async fn expired<R: Runtime>(&self, runtime: &R) -> Expiry {
        loop {
            match self.check() {
                Ok(expiry) => return expiry,
                Err(wait) => runtime.sleep(wait).await,
            }
        }
    }
}

/// A request in flight on a watched connection; see [`ConnectionWatch::request`].
#[derive(Debug)]
pub struct RequestGuard {
    inner: Arc<Inner>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Stamp first, so the watch never sees 0 in flight with an old stamp.
        self.inner
            .idle_since
            .store(self.inner.now_ms(), Ordering::Release);
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A fill's slot on its connection, held by the response body until it ends; reports whether
/// the body waits on the client.
#[derive(Debug)]
pub(crate) struct FillSlot {
    inner: Arc<Inner>,
    progress: Arc<Progress>,
}

impl FillSlot {
    /// The driver asked for more bytes: not waiting on the client.
    pub(crate) fn resumed(&self) {
        self.progress
            .waiting_since
            .store(NOT_WAITING, Ordering::Release);
    }

    /// Bytes were handed to the driver: waiting on the client until the next request.
    pub(crate) fn handed_out(&self) {
        self.progress
            .waiting_since
            .store(self.inner.now_ms(), Ordering::Release);
    }
}

impl Drop for FillSlot {
    fn drop(&mut self) {
        self.inner
            .fills()
            .retain(|p| !Arc::ptr_eq(p, &self.progress));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ms: u64) -> ListenerSettings {
        ListenerSettings {
            header_read_timeout: Duration::from_millis(ms),
            idle_timeout: Duration::from_millis(2 * ms),
            send_timeout: Duration::from_millis(3 * ms),
            max_concurrent_per_connection: 2,
            ..ListenerSettings::default()
        }
    }

    fn wait_until(watch: &ConnectionWatch, limit: Duration) -> Option<Expiry> {
        let start = Instant::now();
        while start.elapsed() < limit {
            match watch.check() {
                Ok(e) => return Some(e),
                Err(w) => std::thread::sleep(w.min(Duration::from_millis(10))),
            }
        }
        None
    }

    #[test]
    fn a_connection_without_a_request_expires_first() {
        let watch = ConnectionWatch::new(&settings(100));
        assert!(watch.check().is_err());
        assert_eq!(
            wait_until(&watch, Duration::from_secs(2)),
            Some(Expiry::FirstRequest)
        );
    }

    #[test]
    fn requests_in_flight_are_never_idle_and_the_idle_clock_starts_when_they_end() {
        let watch = ConnectionWatch::new(&settings(100));
        let request = watch.request();
        assert_eq!(wait_until(&watch, Duration::from_millis(400)), None);
        let ended = Instant::now();
        drop(request);
        assert_eq!(
            wait_until(&watch, Duration::from_secs(2)),
            Some(Expiry::Idle)
        );
        assert!(ended.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_fill_waiting_on_the_client_stalls_but_one_with_the_filler_does_not() {
        let watch = ConnectionWatch::new(&settings(100));
        let _request = watch.request();
        let slot = watch.try_fill_slot().unwrap();
        slot.resumed();
        assert_eq!(wait_until(&watch, Duration::from_millis(500)), None);
        slot.handed_out();
        assert_eq!(
            wait_until(&watch, Duration::from_secs(2)),
            Some(Expiry::Stalled)
        );
        slot.resumed();
        assert!(watch.check().is_err());
    }

    #[test]
    fn fill_slots_are_limited_per_connection_and_freed_on_drop() {
        let watch = ConnectionWatch::new(&settings(100));
        let a = watch.try_fill_slot().unwrap();
        let _b = watch.try_fill_slot().unwrap();
        assert!(watch.try_fill_slot().is_none());
        assert_eq!(watch.fills_in_flight(), 2);
        drop(a);
        assert_eq!(watch.fills_in_flight(), 1);
        assert!(watch.try_fill_slot().is_some());
    }
}
