//! Connections per peer. HTTP/2: one multiplexed connection, opened once even when many fills
//! start at the same moment (they all await the same dial). HTTP/1.1: a stack of idle
//! keep-alive connections, since each carries one request at a time.
//!
//! A peer that leaves the snapshot is evicted: its slot is removed, so new fills dial afresh,
//! and its connections close as soon as their fills finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;
use futures_util::future::Shared;

use super::connect::{Conn, DialContext, DialError, H1Conn, H2Conn, dial};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outcome of a shared HTTP/2 dial. TLS peers may pick HTTP/1.1 by ALPN; that connection
/// goes to the first waiter that takes it.
#[derive(Clone, Debug)]
enum Dialed {
    H2(H2Conn),
    H1(Arc<Mutex<Option<H1Conn>>>),
}

type SharedDial = Shared<Pin<Box<dyn Future<Output = Result<Dialed, DialError>> + Send>>>;

enum H2State {
    Empty,
    Connecting(SharedDial),
    Ready(H2Conn),
}

/// The connections of one peer address.
pub(crate) struct PeerSlot {
    addr: SocketAddr,
    h2: Mutex<H2State>,
    h1_idle: Mutex<Vec<H1Conn>>,
    /// The peer answered ALPN with `http/1.1`: use the HTTP/1.1 pool for it.
    speaks_h1: AtomicBool,
    /// Evicted from the pool: connections opened from now on close when idle.
    removed: AtomicBool,
}

impl std::fmt::Debug for PeerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSlot")
            .field("addr", &self.addr)
            .field("speaks_h1", &self.speaks_h1)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

impl PeerSlot {
    fn new(addr: SocketAddr) -> PeerSlot {
        PeerSlot {
            addr,
            h2: Mutex::new(H2State::Empty),
            h1_idle: Mutex::new(Vec::new()),
            speaks_h1: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        }
    }

    /// A connection for one request, and whether it was used before (a failure to send on a
    /// reused connection may be retried once on a fresh one).
    pub(crate) async fn acquire(
        &self,
        ctx: &Arc<DialContext>,
        fresh: bool,
    ) -> Result<(Conn, bool), DialError> {
        if fresh && (!ctx.multiplexes() || self.speaks_h1.load(Ordering::Acquire)) {
            return self.acquire_h1_from(ctx, false).await;
        }
        if !ctx.multiplexes() || self.speaks_h1.load(Ordering::Acquire) {
            return self.acquire_h1(ctx).await;
        }
        let shared = {
            let mut state = lock(&self.h2);
            match &*state {
                H2State::Ready(c) if c.watch.is_usable() && !c.send.is_closed() => {
                    return Ok((Conn::H2(c.clone()), true));
                }
                H2State::Connecting(d) => d.clone(),
                _ => {
                    let ctx = ctx.clone();
                    let addr = self.addr;
                    let fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
                        match dial(&ctx, addr).await? {
                            Conn::H2(c) => Ok(Dialed::H2(c)),
                            Conn::H1(c) => Ok(Dialed::H1(Arc::new(Mutex::new(Some(c))))),
                        }
                    });
                    let d = fut.shared();
                    *state = H2State::Connecting(d.clone());
                    d
                }
            }
        };
        let result = shared.clone().await;
        {
            let mut state = lock(&self.h2);
            if let H2State::Connecting(d) = &*state
                && d.ptr_eq(&shared)
            {
                *state = match &result {
                    Ok(Dialed::H2(c)) => H2State::Ready(c.clone()),
                    _ => H2State::Empty,
                };
            }
        }
        match result? {
            Dialed::H2(c) => {
                if self.removed.load(Ordering::Acquire) {
                    c.watch.evict();
                }
                Ok((Conn::H2(c), false))
            }
            Dialed::H1(cell) => {
                self.speaks_h1.store(true, Ordering::Release);
                let taken = lock(&cell).take();
                match taken {
                    Some(c) => Ok((Conn::H1(c), false)),
                    None => self.acquire_h1(ctx).await,
                }
            }
        }
    }

    async fn acquire_h1(&self, ctx: &Arc<DialContext>) -> Result<(Conn, bool), DialError> {
        self.acquire_h1_from(ctx, true).await
    }

    /// An HTTP/1.1 connection: an idle pooled one when `pooled`, else a new one.
    pub(crate) async fn acquire_h1_from(
        &self,
        ctx: &Arc<DialContext>,
        pooled: bool,
    ) -> Result<(Conn, bool), DialError> {
        loop {
            let candidate = if pooled {
                lock(&self.h1_idle).pop()
            } else {
                None
            };
            let Some(mut c) = candidate else { break };
            if c.watch.is_usable() && !c.send.is_closed() && c.send.ready().await.is_ok() {
                return Ok((Conn::H1(c), true));
            }
        }
        match dial(ctx, self.addr).await? {
            Conn::H1(c) => Ok((Conn::H1(c), false)),
            Conn::H2(c) => {
                // The peer now negotiates h2 (e.g. it was upgraded): multiplex again.
                self.speaks_h1.store(false, Ordering::Release);
                let mut state = lock(&self.h2);
                if matches!(&*state, H2State::Empty) {
                    *state = H2State::Ready(c.clone());
                }
                Ok((Conn::H2(c), false))
            }
        }
    }

    /// An HTTP/1.1 connection whose response was read completely: keep it for the next fill
    /// (at most `max_idle` per peer), unless the peer was evicted.
    pub(crate) fn release_h1(&self, conn: H1Conn, max_idle: usize) {
        if self.removed.load(Ordering::Acquire) || !conn.watch.is_usable() {
            conn.watch.evict();
            return;
        }
        let mut idle = lock(&self.h1_idle);
        if idle.len() < max_idle {
            idle.push(conn);
        } else {
            conn.watch.evict();
        }
    }

    /// Forgets the HTTP/2 connection `conn` after a failure on it (the next fill dials anew).
    pub(crate) fn forget_h2(&self, conn: &H2Conn) {
        let mut state = lock(&self.h2);
        if let H2State::Ready(c) = &*state
            && Arc::ptr_eq(&c.watch, &conn.watch)
        {
            *state = H2State::Empty;
        }
        conn.watch.evict();
    }

    fn idle_h1(&self) -> usize {
        lock(&self.h1_idle)
            .iter()
            .filter(|c| c.watch.is_usable())
            .count()
    }

    fn holds_connection(&self) -> bool {
        let h2 = match &*lock(&self.h2) {
            H2State::Empty => false,
            H2State::Connecting(_) => true,
            H2State::Ready(c) => c.watch.is_usable(),
        };
        h2 || self.idle_h1() > 0
    }

    fn evict(&self) {
        self.removed.store(true, Ordering::Release);
        if let H2State::Ready(c) = std::mem::replace(&mut *lock(&self.h2), H2State::Empty) {
            c.watch.evict();
        }
        for c in lock(&self.h1_idle).drain(..) {
            c.watch.evict();
        }
    }
}

/// Per-peer slots, keyed by the dialed address.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    slots: Mutex<HashMap<SocketAddr, Arc<PeerSlot>>>,
}

impl Pool {
    /// The slot of `addr`, created on first use.
    pub(crate) fn slot(&self, addr: SocketAddr) -> Arc<PeerSlot> {
        lock(&self.slots)
            .entry(addr)
            .or_insert_with(|| Arc::new(PeerSlot::new(addr)))
            .clone()
    }

    /// Evicts every slot whose address `keep` rejects; returns how many were evicted.
    pub(crate) fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) -> usize {
        let mut evicted = Vec::new();
        lock(&self.slots).retain(|addr, slot| {
            let k = keep(addr);
            if !k {
                evicted.push(slot.clone());
            }
            k
        });
        for slot in &evicted {
            tracing::debug!(peer = %slot.addr, "evicting fill connections of a departed peer");
            slot.evict();
        }
        evicted.len()
    }

    /// Idle HTTP/1.1 connections still open, over all slots.
    pub(crate) fn idle_h1(&self) -> usize {
        lock(&self.slots).values().map(|slot| slot.idle_h1()).sum()
    }

    /// Peers with an open pooled connection (idle HTTP/1.1, or HTTP/2) or a dial in progress.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        lock(&self.slots)
            .iter()
            .filter(|(_, slot)| slot.holds_connection())
            .map(|(addr, _)| *addr)
            .collect()
    }
}
