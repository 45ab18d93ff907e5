//! The little a driver's async runtime must provide, and the clock that turns
//! `std::time::Instant` into the core's [`orca_cluster_core::Instant`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// Spawning, sleeping and blocking work, implemented by each driver for its runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Runs `future` in the background until it completes.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Runs the blocking `f` (file I/O, a slow syscall) on the runtime's blocking thread pool
    /// and completes with its result, without blocking the runtime's tasks.
    ///
    /// A panic of `f` is caught and reported as [`UnblockError::Panicked`]; a runtime that
    /// drops the call without running it (shutting down) reports [`UnblockError::Cancelled`].
    /// Dropping the future does not stop `f` once it runs; its result is discarded. Drivers
    /// run `f` through [`run_blocking`], which catches the panic.
    fn unblock<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, UnblockError>> + Send + 'static;
}

/// Why [`Runtime::unblock`] produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnblockError {
    /// The blocking function panicked; the panic message (when it was a string).
    Panicked(String),
    /// The runtime dropped the call before it finished (it was shutting down).
    Cancelled,
}

impl fmt::Display for UnblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnblockError::Panicked(message) => write!(f, "blocking call panicked: {message}"),
            UnblockError::Cancelled => f.write_str("blocking call cancelled: runtime shut down"),
        }
    }
}

impl std::error::Error for UnblockError {}

impl From<UnblockError> for std::io::Error {
    /// An `io::Error` of kind `Other` (a panic) or `Interrupted` (cancelled) wrapping it.
    fn from(e: UnblockError) -> Self {
        let kind = match e {
            UnblockError::Panicked(_) => std::io::ErrorKind::Other,
            UnblockError::Cancelled => std::io::ErrorKind::Interrupted,
        };
        std::io::Error::new(kind, e)
    }
}

/// Runs `f`, catching a panic as [`UnblockError::Panicked`] (what a driver's
/// [`Runtime::unblock`] runs on its blocking thread).
pub fn run_blocking<T>(f: impl FnOnce() -> T) -> Result<T, UnblockError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| UnblockError::Panicked(message(&*payload)))
}

/// The message of a panic payload (`&str` or `String`), else a placeholder.
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_blocking_returns_the_value_or_the_panic_message() {
        assert_eq!(run_blocking(|| 7), Ok(7));
        assert_eq!(
            run_blocking(|| -> u8 { panic!("disk on fire") }),
            Err(UnblockError::Panicked("disk on fire".into()))
        );
        let n = 3;
        assert_eq!(
            run_blocking(|| -> u8 { panic!("{n} disks on fire") }),
            Err(UnblockError::Panicked("3 disks on fire".into()))
        );
        assert_eq!(
            run_blocking(|| -> u8 { std::panic::panic_any(5u32) }),
            Err(UnblockError::Panicked("a non-string panic payload".into()))
        );
        let io: std::io::Error = UnblockError::Cancelled.into();
        assert_eq!(io.kind(), std::io::ErrorKind::Interrupted);
        assert_eq!(io.to_string(), "blocking call cancelled: runtime shut down");
    }
}
