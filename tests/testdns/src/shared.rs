//! State shared between the handle and the server threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Mode;
use crate::records::RecordTable;

/// How long blocking socket calls wait before re-checking the stop flag.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Everything the server threads read and the handle writes.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) records: Mutex<RecordTable>,
    pub(crate) mode: Mutex<Mode>,
    pub(crate) ttl: AtomicU32,
    pub(crate) queries: AtomicU64,
    pub(crate) tcp_queries: AtomicU64,
    stop: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks `m`, ignoring poisoning (a panicking test thread must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            records: Mutex::new(RecordTable::default()),
            mode: Mutex::new(Mode::Normal),
            ttl: AtomicU32::new(30),
            queries: AtomicU64::new(0),
            tcp_queries: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Whether the server is shutting down.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks every server thread to exit.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Sleeps for `d`, waking early if the server stops. Returns `false` if it stopped.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Runs `f` on a new worker thread that is joined when the server stops.
    pub(crate) fn spawn_worker(&self, name: &str, f: impl FnOnce() + Send + 'static) {
        let Ok(handle) = thread::Builder::new().name(name.to_owned()).spawn(f) else {
            return;
        };
        let mut workers = lock(&self.workers);
        workers.retain(|h| !h.is_finished());
        workers.push(handle);
    }

    /// Joins all worker threads (after [`Shared::request_stop`]).
    pub(crate) fn join_workers(&self) {
        let workers = std::mem::take(&mut *lock(&self.workers));
        for handle in workers {
            let _ = handle.join();
        }
    }
}
