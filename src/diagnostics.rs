//! What ownsync tells about holds and waits that may never end.
//!
//! ownsync never errors where tokio would succeed, so a wait is never refused on a
//! guess: a self-wait (an owner parked on a hold it owns itself) or a wait-for cycle
//! between owners may still resolve, since a sibling sub-future of a waiting task can
//! release. So instead of errors, ownsync
//! shows what it knows, for a person (or a health check) to judge:
//!
//! - each primitive's `statistics()` lists its exclusive hold, its waiters and its
//!   orphaned owned holds ([`HoldInfo`], [`WaitInfo`], [`OrphanInfo`]), with owners,
//!   acquire sites and durations;
//! - a semaphore's and a limiter's `statistics().permits()` say `k of n available`
//!   ([`PermitCounts`]), and a limiter's `statistics().borrows()` lists every token some
//!   owner answers for, with its site and age;
//! - with the `diagnostics` feature, `snapshot()` does so for every live primitive and
//!   finds the wait-for cycles among owners (possible deadlocks), and `watchdog(period)`
//!   starts a thread that reports lasting waits and cycles even while nothing in the
//!   process runs (every other report here waits for a slow path to run again);
//! - with the `tracing` feature, `WARN` events (target `ownsync`) report a self-wait that
//!   lasts ([`set_self_wait_warning`]: a futurelock, if no sibling will release) and,
//!   once a threshold is set, any wait or contended hold that lasts
//!   ([`set_long_wait_warning`]). They are checked lazily, with no timer: whenever the
//!   primitive is next touched on its slow path (a waiter queues or is polled again,
//!   `statistics()` or `Debug` is taken), each one past its threshold is reported, once.
//!
//! Nothing here touches the uncontended path but one relaxed store of an exclusive
//! hold's site: waits are stamped when they queue (a coarse clock, a few ns), holds only
//! once someone waits for them.

pub use crate::info::{
    DEFAULT_SELF_WAIT_WARNING, HoldInfo, OrphanInfo, PermitCounts, Site, WaitInfo, long_wait_warning,
    self_wait_warning, set_long_wait_warning, set_self_wait_warning,
};

#[cfg(feature = "diagnostics")]
#[cfg_attr(docsrs, doc(cfg(feature = "diagnostics")))]
pub use crate::snapshot::{PrimitiveSnapshot, Snapshot, WaitCycle, WaitStep, snapshot};

#[cfg(feature = "diagnostics")]
#[cfg_attr(docsrs, doc(cfg(feature = "diagnostics")))]
pub use crate::watchdog::{Watchdog, WatchdogHandle, WatchdogReport, watchdog};

/// Adds a primitive to the process-wide registry (feature `diagnostics`; nothing
/// without it).
#[inline]
#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
pub(crate) fn track<P: Tracked + 'static>(primitive: &std::sync::Arc<P>) {
    #[cfg(feature = "diagnostics")]
    crate::snapshot::track(primitive);
}

#[cfg(feature = "diagnostics")]
pub(crate) use crate::snapshot::Diagnosed as Tracked;

/// Without the `diagnostics` feature nothing is tracked.
#[cfg(not(feature = "diagnostics"))]
pub(crate) trait Tracked {}
#[cfg(not(feature = "diagnostics"))]
impl<T> Tracked for T {}
