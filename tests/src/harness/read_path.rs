//! What the read-path tests share: an origin that counts how often each chunk is read (and
//! can be slow or fail), the coalescing filler over it that a replica serves and reads with,
//! and a connect hook that counts connect attempts per address and blackholes some of them.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use orca_cluster_core::ChunkKey;
use orca_cluster_driver_common::{
    ChunkStream, CoalescingFiller, ConnectFuture, FillRequest, Filler, FillerError,
    SyntheticOrigin, Transport,
};

/// Synthetic bytes ([`SyntheticOrigin`]) after `delay`, counting every read per chunk; when
/// `fail` is set, the stream fails after its first frame.
#[derive(Clone, Debug, Default)]
pub struct CountingOrigin {
    reads: Arc<Mutex<HashMap<ChunkKey, usize>>>,
    /// How long each read waits before its stream starts.
    pub delay: Duration,
    fail: Arc<AtomicBool>,
}

impl CountingOrigin {
    /// An origin whose reads each wait `delay` first.
    pub fn slow(delay: Duration) -> CountingOrigin {
        CountingOrigin {
            delay,
            ..CountingOrigin::default()
        }
    }

    /// How often `key` was read (clones share the counts).
    pub fn reads(&self, key: &ChunkKey) -> usize {
        self.reads.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Makes later reads fail after their first frame.
    pub fn fail_streams(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
}

impl Filler for CountingOrigin {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(request.key.clone())
            .or_default() += 1;
        if !self.delay.is_zero() {
            // async-io's timer runs on its own thread, so it works on either runtime.
            smol::Timer::after(self.delay).await;
        }
        let stream = SyntheticOrigin.fill(request).await?;
        if !self.fail.load(Ordering::SeqCst) {
            return Ok(stream);
        }
        let first = stream.take(1);
        let failed = futures_lite::stream::once(Err(io::Error::other("the origin broke")));
        Ok(Box::pin(first.chain(failed)))
    }
}

/// The filler a read-path replica serves and reads with: one coalescing scope per replica.
pub type SharedOrigin = CoalescingFiller<CountingOrigin>;

/// Where [`crate::harness::ClusterHandle::read`] got its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// Self coordinates the chunk.
    Local,
    /// From the coordinator.
    Coordinator,
    /// Locally, after the coordinator failed with this `FillError::kind`.
    Fallback(&'static str),
}

/// Counts connect attempts per address, and makes connects to blackholed addresses never
/// complete. Clones share the state.
#[derive(Clone, Debug, Default)]
pub struct ConnectHook {
    attempts: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    blackholed: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl ConnectHook {
    /// Connect attempts to `addr` so far.
    pub fn attempts(&self, addr: SocketAddr) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .get(&addr)
            .copied()
            .unwrap_or(0)
    }

    /// Connects to `addr` never complete (`true`) or go through again (`false`).
    pub fn blackhole(&self, addr: SocketAddr, on: bool) {
        let mut set = self.blackholed.lock().unwrap();
        if on {
            set.insert(addr);
        } else {
            set.remove(&addr);
        }
    }

    /// Records an attempt; whether `addr` is blackholed.
    fn attempt(&self, addr: SocketAddr) -> bool {
        *self.attempts.lock().unwrap().entry(addr).or_default() += 1;
        self.blackholed.lock().unwrap().contains(&addr)
    }
}

/// A driver's TCP transport behind a [`ConnectHook`].
pub struct HookedTransport<T> {
    /// The driver's transport.
    pub inner: T,
    /// The hook.
    pub hook: ConnectHook,
}

impl<Io: Send + 'static, T: Transport<Io>> Transport<Io> for HookedTransport<T> {
    fn connect(&self, addr: SocketAddr) -> ConnectFuture<Io> {
        if self.hook.attempt(addr) {
            return Box::pin(std::future::pending());
        }
        self.inner.connect(addr)
    }
}
