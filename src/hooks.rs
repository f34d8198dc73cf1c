//! A counter for the crate's own tests, hidden from the docs: the reference-model
//! property test checks with it that owner records go once nothing keeps them (no
//! hold, no forwarded scope), which the heap alone cannot tell while owners live.
//! Off until a test first asks, so that making and dropping a record costs one relaxed
//! load of a flag that never changes in a program that does not ask.

use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_RECORDS: AtomicIsize = AtomicIsize::new(0);

/// An owner record was made.
#[inline]
pub(crate) fn record_made() {
    if COUNTING.load(Relaxed) {
        LIVE_RECORDS.fetch_add(1, Relaxed);
    }
}

/// An owner record was dropped.
#[inline]
pub(crate) fn record_dropped() {
    if COUNTING.load(Relaxed) {
        LIVE_RECORDS.fetch_sub(1, Relaxed);
    }
}

/// Owner records made minus owner records dropped since the first call (which turns
/// the count on and returns 0). Only differences between two calls mean anything: a
/// record made before the first call and dropped after counts -1. Not a public API.
///
/// ```
/// let before = ownsync::owner_records_since_first_call();
/// let task = ownsync::tracked(async {});
/// // One more now, unless another thread dropped one meanwhile.
/// let _during = ownsync::owner_records_since_first_call() - before;
/// drop(task);
/// ```
#[doc(hidden)]
pub fn owner_records_since_first_call() -> isize {
    if !COUNTING.swap(true, Relaxed) {
        return 0;
    }
    LIVE_RECORDS.load(Relaxed)
}
