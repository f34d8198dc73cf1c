//! A cheap, coarse monotonic clock for "since when" of waits and holds.
//!
//! Diagnostics need durations in milliseconds to minutes (a wait that lasts a second is
//! the news), but they are stamped on the contended path, where `Instant::now` (about 19 ns
//! here, two reads per stamp and report) is a tenth of a whole hand-off. On Linux the
//! kernel keeps a coarse clock (`CLOCK_MONOTONIC_COARSE`: the time of the last tick, a few
//! milliseconds at worst) that the vDSO reads in about 4 ns; elsewhere, and under Miri,
//! `Instant` is used. Either way a [`Stamp`] is nanoseconds on one monotonic timeline.

use std::time::Duration;

const MARK: u64 = 1 << 63;

/// A point in time on the crate's coarse monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The clock's origin, for a stamp about to be overwritten.
    pub(crate) const ZERO: Stamp = Stamp(0);

    /// Now, to within the coarse clock's resolution.
    #[inline]
    pub(crate) fn now() -> Stamp {
        Stamp(now_nanos() & !MARK)
    }

    /// How long ago this was (zero if the clock has not moved since).
    pub(crate) fn elapsed(self) -> Duration {
        Duration::from_nanos(now_nanos().saturating_sub(self.without_mark().0))
    }

    /// The stamp with its mark bit set: one flag packed into the top bit, which no
    /// stamp uses (2^63 ns is 292 years of uptime).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn marked(self) -> Stamp {
        Stamp(self.0 | MARK)
    }
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by the `tracing` reports
    pub(crate) fn is_marked(self) -> bool {
        self.0 & MARK != 0
    }
    pub(crate) fn without_mark(self) -> Stamp {
        Stamp(self.0 & !MARK)
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
#[inline]
fn now_nanos() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable `timespec`; `clock_gettime` only writes it.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) } != 0;
    if failed {
        return fallback_nanos(); // a kernel without the coarse clock (before 2.6.32)
    }
    (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

#[cfg(not(all(target_os = "linux", not(miri))))]
#[inline]
fn now_nanos() -> u64 {
    fallback_nanos()
}

/// Nanoseconds since the first call, from `Instant`.
#[cold]
fn fallback_nanos() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_monotonic_and_elapsed_grows() {
        let first = Stamp::now();
        let second = Stamp::now();
        assert!(second >= first);
        // The coarse clock ticks every few milliseconds: wait for it to move, without
        // timing anything (a busy loop that ends when the clock has advanced).
        while Stamp::now() == first {
            std::hint::spin_loop();
        }
        assert!(first.elapsed() > Duration::ZERO);
    }
}
