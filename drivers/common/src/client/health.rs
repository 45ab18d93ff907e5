//! Peer health in the client: the core's state machine (`orca_cluster_core::peer_health`: one
//! connect attempt per backoff window to a peer that failed to connect, never a change of
//! coordinator) behind a lock, fed with this process's clock, its refusals turned into
//! [`FillError::PeerUnavailable`]. The peers down are counted in the
//! `orca_cluster_peers_unavailable` gauge ([`crate::metrics`]).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use orca_cluster_core::peer_health::{self, PeerHealth as Machine};

use crate::error::FillError;
use crate::runtime::Clock;

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

/// The health of the peers one client talks to.
#[derive(Debug)]
pub(crate) struct PeerHealth {
    clock: Clock,
    machine: Mutex<Machine>,
}

impl PeerHealth {
    /// Backoff windows start at `initial` and double up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> PeerHealth {
        PeerHealth {
            clock: Clock::new(),
            machine: Mutex::new(Machine::new(initial, max)),
        }
    }

    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` and moves the gauge by the change in peers down.
    fn update(&self, change: impl FnOnce(&mut Machine)) {
        let mut machine = self.machine();
        let before = machine.down_count();
        change(&mut machine);
        let after = machine.down_count();
        if after != before {
            crate::metrics::peers_unavailable(after as i64 - before as i64);
        }
    }

    /// Whether a fill to `addr` may be sent now.
    pub(crate) fn gate(&self, addr: SocketAddr) -> Gate {
        let mut machine = self.machine();
        if machine.all_up() {
            return Gate::Go;
        }
        match machine.gate(addr, self.clock.now()) {
            peer_health::Gate::Go => Gate::Go,
            peer_health::Gate::Refuse { retry_in, cause } => {
                Gate::Refuse(FillError::PeerUnavailable { retry_in, cause })
            }
            peer_health::Gate::Probe { cause } => {
                Gate::RefuseAndProbe(FillError::PeerUnavailable {
                    retry_in: Duration::ZERO,
                    cause,
                })
            }
        }
    }

    /// A fill or probe to `addr` failed to connect (`cause`: the error's kind).
    pub(crate) fn failed(&self, addr: SocketAddr, cause: &'static str) {
        let now = self.clock.now();
        self.update(|m| m.failed(addr, cause, now));
    }

    /// `addr` answered (a response head arrived, or a probe connected): it is up.
    pub(crate) fn reached(&self, addr: SocketAddr) {
        self.update(|m| {
            if !m.all_up() {
                m.reached(addr);
            }
        });
    }

    /// Forgets `addrs` (peers that left the snapshot).
    pub(crate) fn forget(&self, addrs: &[SocketAddr]) {
        self.update(|m| m.forget(addrs));
    }

    /// Peers down now (in a window or being probed).
    pub(crate) fn unavailable(&self) -> Vec<SocketAddr> {
        self.machine().unavailable()
    }
}

impl Drop for PeerHealth {
    fn drop(&mut self) {
        let down = self.machine().down_count();
        if down > 0 {
            crate::metrics::peers_unavailable(-(down as i64));
        }
    }
}
