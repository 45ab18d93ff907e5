//! Peer health: which peers failed to connect recently, so that fills to them fail at once
//! instead of each paying the connect timeout. Coordinator selection never looks here (every
//! replica keeps agreeing on the coordinator); only where a reader gets its bytes changes.
//!
//! Per peer address:
//! - a connect failure (refused, timed out, TLS handshake failed) of a fill marks the peer
//!   **down** for `peer_backoff_initial`; fills to it fail at once with
//!   [`FillError::PeerUnavailable`];
//! - when the window has passed, the next fill to it starts **one probe** (a connect and, with
//!   TLS, a handshake, in the background) and still fails at once; a successful probe marks the
//!   peer up, a failed one doubles the window (at most `peer_backoff_max`);
//! - a fill that reaches the peer (any response head) marks it up; so does its leaving the
//!   snapshot ([`PeerHealth::forget`]).
//!
//! So a dead or blackholed peer costs at most one connect attempt per window. The peers down
//! are counted in the `orca_cluster_peers_unavailable` gauge ([`crate::metrics`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::FillError;

/// What [`PeerHealth::gate`] decided for one fill.
#[derive(Debug)]
pub(crate) enum Gate {
    /// Send the fill.
    Go,
    /// Fail the fill with this error ([`FillError::PeerUnavailable`]).
    Refuse(FillError),
    /// Fail the fill with this error, and start a probe of the peer.
    RefuseAndProbe(FillError),
}

#[derive(Debug)]
struct Down {
    until: Instant,
    delay: Duration,
    cause: &'static str,
    probing: bool,
}

/// The health of the peers one client talks to.
#[derive(Debug)]
pub(crate) struct PeerHealth {
    initial: Duration,
    max: Duration,
    down: Mutex<HashMap<SocketAddr, Down>>,
}

impl PeerHealth {
    /// Backoff windows start at `initial` and double up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> PeerHealth {
        PeerHealth {
            initial,
            max: max.max(initial),
            down: Mutex::new(HashMap::new()),
        }
    }

    fn down(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a fill to `addr` may be sent now.
    pub(crate) fn gate(&self, addr: SocketAddr) -> Gate {
        let mut down = self.down();
        let Some(d) = down.get_mut(&addr) else {
            return Gate::Go;
        };
        let now = Instant::now();
        let unavailable = |retry_in| FillError::PeerUnavailable {
            retry_in,
            cause: d.cause,
        };
        if d.probing {
            return Gate::Refuse(unavailable(Duration::ZERO));
        }
        if now < d.until {
            return Gate::Refuse(unavailable(d.until - now));
        }
        let error = unavailable(Duration::ZERO);
        d.probing = true;
        Gate::RefuseAndProbe(error)
    }

    /// A fill or probe to `addr` failed to connect (`cause`: the error's kind). A peer already
    /// down and not probing keeps its window (fills that were in flight when it went down
    /// fail too, and must not stretch it).
    pub(crate) fn failed(&self, addr: SocketAddr, cause: &'static str) {
        let mut down = self.down();
        let now = Instant::now();
        match down.get_mut(&addr) {
            Some(d) if d.probing => {
                d.delay = (d.delay * 2).min(self.max);
                d.until = now + d.delay;
                d.cause = cause;
                d.probing = false;
            }
            Some(_) => {}
            None => {
                down.insert(
                    addr,
                    Down {
                        until: now + self.initial,
                        delay: self.initial,
                        cause,
                        probing: false,
                    },
                );
                crate::metrics::peers_unavailable(1);
            }
        }
    }

    /// `addr` answered (a response head arrived, or a probe connected): it is up.
    pub(crate) fn reached(&self, addr: SocketAddr) {
        let mut down = self.down();
        if !down.is_empty() && down.remove(&addr).is_some() {
            crate::metrics::peers_unavailable(-1);
        }
    }

    /// Forgets `addrs` (peers that left the snapshot).
    pub(crate) fn forget(&self, addrs: &[SocketAddr]) {
        let mut down = self.down();
        for addr in addrs {
            if down.remove(addr).is_some() {
                crate::metrics::peers_unavailable(-1);
            }
        }
    }

    /// Peers down now (in a window or being probed).
    pub(crate) fn unavailable(&self) -> Vec<SocketAddr> {
        self.down().keys().copied().collect()
    }
}

impl Drop for PeerHealth {
    fn drop(&mut self) {
        let down = self.down().len();
        if down > 0 {
            crate::metrics::peers_unavailable(-(down as i64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn a_failure_closes_the_gate_for_a_window_then_one_probe_goes() {
        let h = PeerHealth::new(Duration::from_millis(50), Duration::from_millis(200));
        assert!(matches!(h.gate(addr()), Gate::Go));
        h.failed(addr(), "connect");
        // In-flight fills failing as well do not stretch the window.
        h.failed(addr(), "connect");
        match h.gate(addr()) {
            Gate::Refuse(FillError::PeerUnavailable { retry_in, cause }) => {
                assert!(retry_in <= Duration::from_millis(50));
                assert_eq!(cause, "connect");
            }
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(h.gate(addr()), Gate::RefuseAndProbe(_)));
        // One probe at a time.
        assert!(matches!(h.gate(addr()), Gate::Refuse(_)));
        h.failed(addr(), "connect_timeout");
        match h.gate(addr()) {
            Gate::Refuse(FillError::PeerUnavailable { retry_in, cause }) => {
                assert!(
                    retry_in > Duration::from_millis(50),
                    "doubled: {retry_in:?}"
                );
                assert_eq!(cause, "connect_timeout");
            }
            other => panic!("{other:?}"),
        }
        h.reached(addr());
        assert!(matches!(h.gate(addr()), Gate::Go));
    }

    #[test]
    fn the_window_doubles_up_to_the_cap_and_forgetting_clears_it() {
        let h = PeerHealth::new(Duration::from_millis(10), Duration::from_millis(25));
        h.failed(addr(), "connect");
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(30));
            assert!(matches!(h.gate(addr()), Gate::RefuseAndProbe(_)));
            h.failed(addr(), "connect");
        }
        assert!(h.down().get(&addr()).unwrap().delay <= Duration::from_millis(25));
        assert_eq!(h.unavailable(), vec![addr()]);
        h.forget(&[addr()]);
        assert!(matches!(h.gate(addr()), Gate::Go));
    }
}
