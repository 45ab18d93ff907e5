//! A non-blocking concurrency limit: the listener answers 503 instead of queueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most `max` permits at once; [`ConcurrencyLimit::try_acquire`] never waits.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    current: AtomicUsize,
}

/// Held while a request is being served; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
}

impl ConcurrencyLimit {
    /// A limit of `max` concurrent permits (`max` of 0 admits nothing).
    pub fn new(max: usize) -> ConcurrencyLimit {
        ConcurrencyLimit {
            inner: Arc::new(Inner {
                max,
                current: AtomicUsize::new(0),
            }),
        }
    }

    /// A permit, or `None` when `max` permits are out.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.inner
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit {
                inner: self.inner.clone(),
            })
    }

    /// Permits currently out.
    pub fn in_use(&self) -> usize {
        self.inner.current.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.inner.max
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.current.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let l = ConcurrencyLimit::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.in_use(), 1);
        assert!(l.try_acquire().is_some());
        assert!(ConcurrencyLimit::new(0).try_acquire().is_none());
    }
}
