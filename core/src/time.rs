//! The core's notion of time.
//!
//! The core never reads a clock. Drivers pick an epoch (usually the moment they start) and pass
//! every input an [`Instant`]: nanoseconds elapsed on a monotonic clock since that epoch. The core
//! clamps time so that it never goes backwards (an older `now` is treated as the latest seen).

use core::time::Duration;

/// A point in time on the driver's monotonic clock, in nanoseconds since a driver-chosen epoch.
///
/// Arithmetic saturates: adding a huge [`Duration`] yields [`Instant::MAX`], never a wrap or a
/// panic.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Instant(u64);

impl Instant {
    /// The epoch (0 ns).
    pub const ZERO: Instant = Instant(0);
    /// The largest representable instant (about 584 years after the epoch).
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// An instant `elapsed` after the epoch (saturating at [`Instant::MAX`]).
    pub fn from_elapsed(elapsed: Duration) -> Instant {
        Instant(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the epoch.
    pub const fn elapsed_since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(d))
    }

    /// `self - earlier`, or zero when `earlier` is later than `self`.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating addition (see [`Instant::saturating_add`]).
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
        assert_eq!(
            Instant::ZERO.saturating_duration_since(Instant::from_nanos(5)),
            Duration::ZERO
        );
        assert_eq!(Instant::from_millis(2).as_nanos(), 2_000_000);
        assert_eq!(
            Instant::from_elapsed(Duration::from_secs(3)),
            Instant::from_millis(3000)
        );
    }
}
