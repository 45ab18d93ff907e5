//! Keep-alive connections kept per peer between fills.
//!
//! HTTP/1.1 carries one request at a time per connection, so concurrent fills to one peer use
//! separate connections; when a response body has been read completely, its connection comes
//! back here. At most `max_idle_per_peer` idle connections are kept per peer (most recently
//! used first), each for at most `idle_timeout`; connections to peers that left the snapshot are
//! closed. Checkout skips connections that have gone stale (closed by the peer, or with
//! unexpected bytes pending).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::conn::Connection;

/// Default for [`PoolSettings::max_idle_per_peer`]: 16.
pub const DEFAULT_MAX_IDLE_PER_PEER: usize = 16;
/// Default for [`PoolSettings::idle_timeout`]: 30 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits of the client's connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle connections kept per peer (default 16; 0 disables reuse).
    pub max_idle_per_peer: usize,
    /// How long an idle connection is kept (default 30 s).
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_idle_per_peer: DEFAULT_MAX_IDLE_PER_PEER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

#[derive(Debug, Default)]
struct Idle {
    peers: HashMap<SocketAddr, Vec<Connection>>,
    closed: bool,
}

/// The pool. Connections are dropped (closed) outside the lock.
#[derive(Debug)]
pub(crate) struct Pool {
    settings: PoolSettings,
    idle: Mutex<Idle>,
}

impl Pool {
    pub(crate) fn new(settings: PoolSettings) -> Pool {
        Pool {
            settings,
            idle: Mutex::new(Idle::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A healthy idle connection to `addr`, most recently used first.
    pub(crate) fn checkout(&self, addr: SocketAddr) -> Option<Connection> {
        let mut discard = Vec::new();
        let found = {
            let mut idle = self.lock();
            let list = idle.peers.get_mut(&addr)?;
            let mut found = None;
            while let Some(mut conn) = list.pop() {
                if conn.idle_since.elapsed() < self.settings.idle_timeout && conn.is_idle_healthy()
                {
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
        let mut conn = found?;
        conn.reused = true;
        Some(conn)
    }

    /// Returns a connection whose last response was read completely.
    pub(crate) fn checkin(&self, addr: SocketAddr, mut conn: Connection) {
        conn.idle_since = Instant::now();
        let mut idle = self.lock();
        if idle.closed || self.settings.max_idle_per_peer == 0 {
            drop(idle);
            return;
        }
        let list = idle.peers.entry(addr).or_default();
        list.push(conn);
        let excess = list.len().saturating_sub(self.settings.max_idle_per_peer);
        let dropped: Vec<Connection> = list.drain(..excess).collect();
        drop(idle);
        drop(dropped);
    }

    /// Closes idle connections older than the idle timeout and those to peers not in `keep`
    /// (when given).
    pub(crate) fn evict(&self, keep: Option<&HashSet<SocketAddr>>) {
        let timeout = self.settings.idle_timeout;
        let mut dropped = Vec::new();
        {
            let mut idle = self.lock();
            idle.peers.retain(|addr, list| {
                if keep.is_some_and(|k| !k.contains(addr)) {
                    dropped.append(list);
                    return false;
                }
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
}
