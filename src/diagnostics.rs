//! Knobs for what ownsync reports about waits that may never end.
//!
//! A self-wait (an owner parked on a hold it owns itself: DESIGN.md 2b) is not an error,
//! because a sibling sub-future of the same task may still release the hold. But if
//! none will (the holding sub-future is no longer polled: a futurelock), nothing else
//! ever says so. So a self-wait that lasts is reported by a `WARN` event (target
//! `ownsync`, feature `tracing`). It is checked lazily, with no timer: whenever the
//! primitive is next touched on its slow path (another waiter parks, a waiter is
//! polled again, `statistics()` or `Debug` is taken), each self-wait queued for at
//! least the threshold is reported, once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The default threshold of [`set_self_wait_warning`]: one second.
pub const DEFAULT_SELF_WAIT_WARNING: Duration = Duration::from_secs(1);

const OFF: u64 = u64::MAX;
static SELF_WAIT_WARNING_NANOS: AtomicU64 = AtomicU64::new(DEFAULT_SELF_WAIT_WARNING.as_nanos() as u64);

/// Sets how long a self-wait lasts before it is reported (see the module docs), for
/// the whole process; `None` turns the report off. The default is
/// [`DEFAULT_SELF_WAIT_WARNING`]. Without the `tracing` feature nothing is reported,
/// but self-waits are still counted in `statistics()` and shown in `Debug`.
///
/// ```
/// use std::time::Duration;
/// ownsync::diagnostics::set_self_wait_warning(Some(Duration::from_millis(250)));
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), Some(Duration::from_millis(250)));
/// ownsync::diagnostics::set_self_wait_warning(None);
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), None);
/// # ownsync::diagnostics::set_self_wait_warning(Some(ownsync::diagnostics::DEFAULT_SELF_WAIT_WARNING));
/// ```
pub fn set_self_wait_warning(threshold: Option<Duration>) {
    let nanos = threshold.map_or(OFF, |t| u64::try_from(t.as_nanos()).unwrap_or(OFF - 1).min(OFF - 1));
    SELF_WAIT_WARNING_NANOS.store(nanos, Relaxed);
}

/// The threshold set by [`set_self_wait_warning`].
///
/// ```
/// assert_eq!(ownsync::diagnostics::self_wait_warning(), Some(ownsync::diagnostics::DEFAULT_SELF_WAIT_WARNING));
/// ```
pub fn self_wait_warning() -> Option<Duration> {
    match SELF_WAIT_WARNING_NANOS.load(Relaxed) {
        OFF => None,
        nanos => Some(Duration::from_nanos(nanos)),
    }
}
