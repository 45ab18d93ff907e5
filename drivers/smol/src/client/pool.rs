//! Keep-alive connections kept per peer between fills.
//!
//! HTTP/1.1 carries one request at a time per connection, so concurrent fills to one peer use
//! separate connections; when a response body has been read completely, its connection comes
//! back here. At most `max_idle_per_peer` idle connections are kept per peer (most recently
//! used first), each for at most `idle_timeout`; connections to peers that left the snapshot
//! are closed, and connections busy at that moment are closed when their fill ends. Checkout
//! skips connections that have gone stale (closed by the peer, or with unexpected bytes).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::conn::Connection;

#[derive(Debug, Default)]
struct Idle {
    peers: HashMap<SocketAddr, Vec<Connection>>,
    /// Evicted peers: their busy connections are not taken back.
    departed: HashSet<SocketAddr>,
    closed: bool,
}

/// The pool. Connections are dropped (closed) outside the lock.
#[derive(Debug)]
pub(crate) struct Pool {
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Idle>,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            max_idle,
            idle_timeout,
            idle: Mutex::new(Idle::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A healthy idle connection to `addr`, most recently used first. Marks `addr` as in use
    /// again (a peer that came back after an eviction).
    pub(crate) fn checkout(&self, addr: SocketAddr) -> Option<Connection> {
        let mut discard = Vec::new();
        let found = {
            let mut idle = self.lock();
            idle.departed.remove(&addr);
            let list = idle.peers.get_mut(&addr)?;
            let mut found = None;
            while let Some(mut conn) = list.pop() {
                if conn.idle_since.elapsed() < self.idle_timeout && conn.is_idle_healthy() {
                    found = Some(conn);
                    break;
                }
                discard.push(conn);
            }
            if list.is_empty() {
                idle.peers.remove(&addr);
            }
            found
        };
        drop(discard);
        found
    }

    /// Returns a connection whose last response was read completely.
    pub(crate) fn checkin(&self, addr: SocketAddr, mut conn: Connection) {
        conn.idle_since = std::time::Instant::now();
        let mut idle = self.lock();
        if idle.closed || self.max_idle == 0 || idle.departed.contains(&addr) {
            drop(idle);
            return;
        }
        let list = idle.peers.entry(addr).or_default();
        list.push(conn);
        let excess = list.len().saturating_sub(self.max_idle);
        let dropped: Vec<Connection> = list.drain(..excess).collect();
        drop(idle);
        drop(dropped);
    }

    /// Closes the idle connections of `addrs`; their busy ones close when their fill ends.
    pub(crate) fn evict(&self, addrs: &[SocketAddr]) {
        let mut dropped = Vec::new();
        {
            let mut idle = self.lock();
            for addr in addrs {
                idle.departed.insert(*addr);
                if let Some(list) = idle.peers.remove(addr) {
                    dropped.extend(list);
                }
            }
        }
        drop(dropped);
    }

    /// Closes idle connections older than the idle timeout.
    pub(crate) fn expire(&self) {
        let timeout = self.idle_timeout;
        let mut dropped = Vec::new();
        {
            let mut idle = self.lock();
            idle.peers.retain(|_, list| {
                let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|c| c.idle_since.elapsed() >= timeout);
                dropped.extend(old);
                *list = fresh;
                !list.is_empty()
            });
        }
        drop(dropped);
    }

    /// Closes every idle connection; later check-ins are closed at once.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut idle = self.lock();
            idle.closed = true;
            std::mem::take(&mut idle.peers)
        };
        drop(dropped);
    }

    /// Idle connections held, over all peers.
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().peers.values().map(Vec::len).sum()
    }

    /// Peers with idle connections.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.lock().peers.keys().copied().collect()
    }
}
