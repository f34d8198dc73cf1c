//! The things ownsync takes from an async runtime when a feature names one, kept in
//! one place so the core reads the same with or without it:
//!
//! - a cooperative budget: tokio gives each task a budget of operations per poll, and its
//!   own primitives yield once it is spent, so a task that locks and unlocks in a tight
//!   loop cannot starve its worker. Our acquire futures take part in the same budget.
//! - an identity for untracked tasks: an async acquire outside any tracked task has no
//!   owner, but inside a tokio task the task id tells *who* holds, which is enough to
//!   refuse a re-lock that could never succeed (`WouldDeadlock`). It is never used for
//!   exit: tokio tells nobody when a task ends, so such holds stay anonymous.
//!
//! - whether this thread may block: a blocking entry point called on a thread that drives
//!   tokio tasks panics, as tokio's own do, instead of blocking the runtime.
//!
//! Without the feature all three are no-ops the compiler removes.

use std::task::{Context, Poll};

use crate::id::OwnerId;

/// Budget taken by one acquire poll; [`Progress::made_progress`] keeps it spent,
/// dropping it without that gives it back (the poll did not get anywhere).
#[must_use]
pub(crate) struct Progress {
    /// Held for its drop, which gives the unit back.
    #[cfg(feature = "tokio")]
    _restore: ::tokio::task::coop::RestoreOnPending,
}

impl Progress {
    /// Keeps the unit spent. As tokio's `made_progress` and then the drop would, but
    /// without either: a `RestoreOnPending` that is never dropped restores nothing (its
    /// drop is its only effect, and it owns nothing), and its out-of-line drop cost every
    /// uncontended acquire a call.
    #[inline(always)]
    pub(crate) fn made_progress(self) {
        #[cfg(feature = "tokio")]
        std::mem::forget(self._restore);
    }
}

/// Takes one unit of the current task's cooperative budget, or `Pending` (with the task
/// already scheduled to run again) when it is spent.
#[inline]
pub(crate) fn poll_budget(cx: &mut Context<'_>) -> Poll<Progress> {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::coop::poll_proceed(cx).map(|restore| Progress { _restore: restore })
    }
    #[cfg(not(feature = "tokio"))]
    {
        let _ = cx;
        Poll::Ready(Progress {})
    }
}

/// The runtime's identity for the task running now, if the feature is on and this is a
/// runtime task.
#[inline]
pub(crate) fn task_identity() -> Option<OwnerId> {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::try_id().map(|id| OwnerId::runtime_task(tokio_id_number(id)))
    }
    #[cfg(not(feature = "tokio"))]
    {
        None
    }
}

/// Whether the code running now is a runtime task (with the feature: a tokio task, a
/// blocking one included). One thread-local read.
#[inline]
pub(crate) fn in_runtime_task() -> bool {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::try_id().is_some()
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

/// The number inside a tokio task id. tokio keeps it private but hashes exactly that
/// number, so a hasher that keeps what it is given reads it back without formatting.
#[cfg(feature = "tokio")]
pub(crate) fn tokio_id_number(id: ::tokio::task::Id) -> u64 {
    use std::hash::{Hash, Hasher};

    struct Keep(u64);
    impl Hasher for Keep {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            // Only reached if tokio ever hashes something other than one u64: still a
            // deterministic function of the id, so equal ids stay equal.
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = self.0.rotate_left(32) ^ n;
        }
    }
    let mut keep = Keep(0);
    id.hash(&mut keep);
    keep.finish()
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;

    #[test]
    fn reads_the_number_tokio_displays() {
        let rt = ::tokio::runtime::Builder::new_current_thread().build().unwrap();
        let id = rt.block_on(rt.spawn(async { ::tokio::task::id() })).unwrap();
        assert_eq!(tokio_id_number(id).to_string(), id.to_string());
    }
}

/// Panics if the calling thread must not block: with the `tokio` feature, a tokio worker
/// driving tasks (a blocking wait there can hang the runtime for good: on a
/// current-thread runtime the holder can never run). Decided by tokio's own rule, through
/// an uncontended `tokio::sync::Mutex::blocking_lock`, so that whatever tokio allows
/// (`spawn_blocking`, `block_in_place`, a plain thread) stays allowed. Threads outside any
/// runtime pay one thread-local read. Without the feature: nothing (documented on the
/// blocking entry points).
#[track_caller]
#[inline]
pub(crate) fn assert_can_block() {
    #[cfg(feature = "tokio")]
    if ::tokio::runtime::Handle::try_current().is_ok() {
        let probe = ::tokio::sync::Mutex::new(());
        let allowed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(probe.blocking_lock()))).is_ok();
        assert!(
            allowed,
            "Cannot block the current thread from within a runtime. This happens because a \
             blocking ownsync call (`blocking_lock`, `blocking_acquire`, `blocking_read`, \
             `blocking_wait`, ...) was made on a thread that drives async tasks: it would \
             block the runtime (for good on a current-thread runtime). In async code, await \
             the async form (`lock().await`); for code that must block, run it in \
             `tokio::task::spawn_blocking` or `tokio::task::block_in_place`"
        );
    }
}
