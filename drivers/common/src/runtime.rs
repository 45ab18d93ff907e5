//! The little a driver's async runtime must provide, and the clock that turns
//! `std::time::Instant` into the core's [`orca_cluster_core::Instant`].

use std::future::Future;
use std::time::Duration;

/// Spawning and sleeping, implemented by each driver for its runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Runs `future` in the background until it completes.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;
}

/// A monotonic clock whose epoch is its creation; `now()` is what the core's inputs carry.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    /// Time since the epoch as a core instant.
    pub fn now(&self) -> orca_cluster_core::Instant {
        orca_cluster_core::Instant::from_elapsed(self.epoch.elapsed())
    }

    /// How long from now until `at` (zero if `at` has passed).
    pub fn until(&self, at: orca_cluster_core::Instant) -> Duration {
        at.saturating_duration_since(self.now())
    }
}
