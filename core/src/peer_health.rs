//! Peer health: which peers failed to connect recently, so that fills to them fail at once
//! instead of each paying the connect timeout. Sans-IO: the caller passes the time and
//! reports connect outcomes; coordinator selection never looks here (every replica keeps
//! agreeing on the coordinator), only where a reader gets its bytes changes.
//!
//! Per peer address:
//! - a connect failure (refused, timed out, TLS handshake failed) marks the peer **down** for
//!   the initial window; [`PeerHealth::gate`] answers [`Gate::Refuse`] meanwhile;
//! - when the window has passed, the next gate answers [`Gate::Probe`] once: the caller starts
//!   one probe (a connect) and still fails that fill; a failed probe doubles the window (up to
//!   the maximum), a successful one marks the peer up;
//! - any response from the peer marks it up ([`PeerHealth::reached`]); so does its leaving the
//!   snapshot ([`PeerHealth::forget`]).
//!
//! So a dead or blackholed peer costs at most one connect attempt per window.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::time::Instant;

/// What [`PeerHealth::gate`] decided for one fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send the fill.
    Go,
    /// Fail the fill at once: the peer is down for `retry_in` more (zero while a probe is in
    /// flight) after a failure of kind `cause`.
    Refuse {
        /// Time left in the window.
        retry_in: Duration,
        /// The kind of the failure that opened or extended the window.
        cause: &'static str,
    },
    /// Fail the fill at once, and start one probe of the peer; report its outcome with
    /// [`PeerHealth::failed`] or [`PeerHealth::reached`].
    Probe {
        /// The kind of the failure that opened or extended the window.
        cause: &'static str,
    },
}

#[derive(Clone, Copy, Debug)]
struct Down {
    until: Instant,
    delay: Duration,
    cause: &'static str,
    probing: bool,
}

/// The health of the peers one client talks to; see the module docs.
#[derive(Clone, Debug)]
pub struct PeerHealth {
    initial: Duration,
    max: Duration,
    down: BTreeMap<SocketAddr, Down>,
}

impl PeerHealth {
    /// Windows start at `initial` and double up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> PeerHealth {
        PeerHealth {
            initial,
            max: if max < initial { initial } else { max },
            down: BTreeMap::new(),
        }
    }

    /// Whether a fill to `addr` may be sent at `now`.
    pub fn gate(&mut self, addr: SocketAddr, now: Instant) -> Gate {
        let Some(d) = self.down.get_mut(&addr) else {
            return Gate::Go;
        };
        if d.probing {
            return Gate::Refuse {
                retry_in: Duration::ZERO,
                cause: d.cause,
            };
        }
        if now < d.until {
            return Gate::Refuse {
                retry_in: d.until.saturating_duration_since(now),
                cause: d.cause,
            };
        }
        d.probing = true;
        Gate::Probe { cause: d.cause }
    }

    /// A fill or probe to `addr` failed to connect at `now` (`cause`: the failure's kind). A
    /// peer already down and not probing keeps its window (fills that were in flight when it
    /// went down fail too, and must not stretch it); a failed probe doubles the window.
    pub fn failed(&mut self, addr: SocketAddr, cause: &'static str, now: Instant) {
        match self.down.get_mut(&addr) {
            Some(d) if d.probing => {
                d.delay = d.delay.saturating_mul(2).min(self.max);
                d.until = now.saturating_add(d.delay);
                d.cause = cause;
                d.probing = false;
            }
            Some(_) => {}
            None => {
                self.down.insert(
                    addr,
                    Down {
                        until: now.saturating_add(self.initial),
                        delay: self.initial,
                        cause,
                        probing: false,
                    },
                );
            }
        }
    }

    /// `addr` answered (a response head arrived, or a probe connected): it is up.
    pub fn reached(&mut self, addr: SocketAddr) {
        self.down.remove(&addr);
    }

    /// Forgets `addrs` (peers that left the snapshot).
    pub fn forget(&mut self, addrs: &[SocketAddr]) {
        for addr in addrs {
            self.down.remove(addr);
        }
    }

    /// Whether no peer is down (the common case: nothing to look up).
    pub fn all_up(&self) -> bool {
        self.down.is_empty()
    }

    /// How many peers are down now.
    pub fn down_count(&self) -> usize {
        self.down.len()
    }

    /// Peers down now (in a window or being probed), in address order.
    pub fn unavailable(&self) -> Vec<SocketAddr> {
        self.down.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn a_failure_closes_the_gate_for_a_window_then_one_probe_goes() {
        let mut h = PeerHealth::new(Duration::from_millis(50), Duration::from_millis(200));
        assert_eq!(h.gate(addr(), ms(0)), Gate::Go);
        h.failed(addr(), "connect", ms(0));
        // In-flight fills failing as well do not stretch the window.
        h.failed(addr(), "connect", ms(10));
        assert_eq!(
            h.gate(addr(), ms(20)),
            Gate::Refuse {
                retry_in: Duration::from_millis(30),
                cause: "connect"
            }
        );
        assert_eq!(h.gate(addr(), ms(50)), Gate::Probe { cause: "connect" });
        // One probe at a time.
        assert!(
            matches!(h.gate(addr(), ms(51)), Gate::Refuse { retry_in, .. } if retry_in.is_zero())
        );
        h.failed(addr(), "connect_timeout", ms(60));
        assert_eq!(
            h.gate(addr(), ms(60)),
            Gate::Refuse {
                retry_in: Duration::from_millis(100),
                cause: "connect_timeout"
            }
        );
        h.reached(addr());
        assert!(h.all_up());
        assert_eq!(h.gate(addr(), ms(61)), Gate::Go);
    }

    #[test]
    fn the_window_doubles_up_to_the_cap_and_forgetting_clears_it() {
        let mut h = PeerHealth::new(Duration::from_millis(10), Duration::from_millis(25));
        h.failed(addr(), "connect", ms(0));
        let mut now = 0;
        for expected in [20, 25, 25] {
            now += 100;
            assert_eq!(h.gate(addr(), ms(now)), Gate::Probe { cause: "connect" });
            h.failed(addr(), "connect", ms(now));
            assert_eq!(
                h.gate(addr(), ms(now)),
                Gate::Refuse {
                    retry_in: Duration::from_millis(expected),
                    cause: "connect"
                }
            );
        }
        assert_eq!(h.unavailable(), alloc::vec![addr()]);
        h.forget(&[addr()]);
        assert_eq!(h.gate(addr(), ms(now)), Gate::Go);
    }
}
