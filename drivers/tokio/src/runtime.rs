//! The tokio implementation of the drivers' small [`Runtime`] trait (spawn and sleep).

use std::future::Future;
use std::time::Duration;

use orca_cluster_driver_common::Runtime;
use tokio::runtime::Handle;

/// Spawns on the tokio runtime that was current when the value was created, and sleeps with
/// tokio's timer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime of the current context.
    ///
    /// # Panics
    /// Outside a tokio runtime (like `tokio::spawn`). Every `async` entry point of this crate
    /// runs inside one, so this is only reachable through misuse, never from network input.
    pub fn current() -> TokioRuntime {
        TokioRuntime {
            handle: Handle::current(),
        }
    }

    /// Uses `handle` for spawning.
    pub fn from_handle(handle: Handle) -> TokioRuntime {
        TokioRuntime { handle }
    }

    /// The runtime handle tasks are spawned on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Runtime for TokioRuntime {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }
}
