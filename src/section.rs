//! Critical sections that know when they were cut short.
//!
//! A future dropped at an `.await` inside a critical section (a timeout, a `select!`
//! that another branch won, an aborted task) drops its guard like any other, and the
//! next holder finds the data as the section left it at that `.await`. A plain guard
//! cannot tell that drop from a finished section; the two ways here can:
//!
//! - [`Mutex::with_lock`] and [`RwLock::with_write`] run the section themselves: its
//!   future dropped before it finished breaks the lock (`Cancelled`), for the next holder
//!   to see and repair. Opt-in by use, so no program written against tokio's API changes.
//! - A tracked task dropped unfinished while it holds a borrowed guard: that guard's
//!   drop is counted (`statistics().cut_short()`, a `tracing` warning), or breaks the
//!   lock with [`Mutex::break_on_cancel`] / [`RwLock::break_on_cancel`].

use crate::core::acquire_permits;
use crate::error::AcquireError;
use crate::guard::HoldSlot;
use crate::mutex::{Mutex, MutexGuard};
use crate::owner::{Caller, Site, caller_site};
use crate::rwlock::{RwLock, RwLockWriteGuard};

/// A guard whose section can be cut short.
trait SectionGuard {
    /// The section's future was dropped before it finished: end the hold as such.
    fn end_cut_short(self, site: Site);
}

impl<T: ?Sized> SectionGuard for MutexGuard<'_, T> {
    #[cold]
    #[inline(never)]
    fn end_cut_short(self, site: Site) {
        let (mutex, hold) = MutexGuard::into_parts(self);
        mutex.core().end_hold_cancelled(hold, 1, site);
    }
}

impl<T: ?Sized> SectionGuard for RwLockWriteGuard<'_, T> {
    #[cold]
    #[inline(never)]
    fn end_cut_short(self, site: Site) {
        let (lock, mut slot) = RwLockWriteGuard::into_parts(self);
        let hold = slot.take_hold(lock.core());
        lock.core().end_hold_cancelled(hold, lock.write_permits(), site);
    }
}

/// The guard of a section under way: dropped before [`Section::finish`], the section
/// was cut short. (Its field is an `Option` only so that `finish` can take the guard.)
struct Section<G: SectionGuard> {
    guard: Option<G>,
    site: Site,
}

impl<G: SectionGuard> Section<G> {
    #[inline]
    fn guard(&mut self) -> &mut G {
        self.guard.as_mut().expect("taken only by finish or drop")
    }

    /// The section finished (whatever it returned): an ordinary release.
    #[inline]
    fn finish(mut self) {
        drop(self.guard.take());
    }
}

impl<G: SectionGuard> Drop for Section<G> {
    #[inline]
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.end_cut_short(self.site);
        }
    }
}

impl<T> Mutex<T> {
    /// The same mutex, broken rather than counted when a tracked task (or tracked scope)
    /// is dropped unfinished while it holds a borrowed guard of it (a section cut short:
    /// a timeout, an abort, a losing `select!` branch). The error names the task, with
    /// [`AbandonReason::Cancelled`](crate::AbandonReason::Cancelled), and where the guard
    /// was taken. By default such a drop releases the mutex, counts it in
    /// [`statistics().cut_short()`](crate::MutexStatistics::cut_short) and reports it
    /// (feature `tracing`), since a section written to be cancel-safe is valid code.
    /// Owned guards (which may have moved), guards dropped before the cancellation, and
    /// tasks that complete are never cut short.
    ///
    /// ```
    /// use futures::FutureExt;
    /// use ownsync::{AbandonReason, Mutex, tracked};
    /// let mutex = Mutex::new((0, 0)).break_on_cancel();
    /// let task = tracked(async {
    ///     let mut pair = mutex.lock().await.unwrap();
    ///     pair.0 += 1;
    ///     std::future::pending::<()>().await; // cancelled here, half-way
    ///     pair.1 += 1;
    /// });
    /// let id = task.owner();
    /// assert!(task.now_or_never().is_none()); // polled once, then dropped
    /// let err = mutex.statistics().broken().cloned().unwrap();
    /// assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    /// ```
    pub fn break_on_cancel(self) -> Self {
        self.core().set_break_on_cancel();
        self
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Whether [`break_on_cancel`](Mutex::break_on_cancel) is on.
    ///
    /// ```
    /// assert!(ownsync::Mutex::new(()).break_on_cancel().is_break_on_cancel());
    /// ```
    pub fn is_break_on_cancel(&self) -> bool {
        self.core().is_break_on_cancel()
    }

    /// Locks, runs `section` on the data, and unlocks: a critical section that knows
    /// when it is cut short. If this future is dropped after the section began and
    /// before it finished (a timeout, a `select!` that another branch won, an aborted
    /// task), the mutex breaks with
    /// [`AbandonReason::Cancelled`](crate::AbandonReason::Cancelled), naming the owner
    /// and where `with_lock` was called, so every later `lock()` gets
    /// [`AcquireError::Broken`] until [`try_repair`](Mutex::try_repair) and
    /// `mark_consistent`. The owner named is the tracked task (or thread) that held it;
    /// for a caller in no tracked task, the tokio task (feature `tokio`) or else a fresh
    /// anonymous id that no owner has.
    ///
    /// A section that finishes releases the mutex, whatever it returns (an `Err` too); a
    /// drop while still waiting for the lock breaks nothing (as [`lock`](Mutex::lock)); a
    /// panic inside breaks it with `Panicked`, as a guard's drop does.
    ///
    /// # Errors
    /// As [`lock`](Mutex::lock): the section does not run.
    ///
    /// ```
    /// use futures::FutureExt;
    /// use ownsync::{AbandonReason, AcquireError, Mutex};
    /// # futures::executor::block_on(async {
    /// let pair = Mutex::new((0, 0));
    /// let sum = pair.with_lock(async |pair| { pair.0 += 1; pair.1 += 1; pair.0 + pair.1 }).await?;
    /// assert_eq!(sum, 2);
    ///
    /// // Dropped at an `.await` half-way (`now_or_never` polls once and drops it).
    /// let cut = pair.with_lock(async |pair| {
    ///     pair.0 += 1;
    ///     std::future::pending::<()>().await;
    ///     pair.1 += 1;
    /// });
    /// assert!(cut.now_or_never().is_none());
    /// match pair.lock().await {
    ///     Err(AcquireError::Broken(err)) => assert_eq!(err.reason(), AbandonReason::Cancelled),
    ///     other => panic!("expected a broken mutex, got {other:?}"),
    /// }
    /// let mut repair = pair.try_repair().unwrap();
    /// repair.1 = repair.0; // put the data right
    /// repair.mark_consistent();
    /// assert_eq!(*pair.lock().await?, (2, 2));
    /// # Ok::<(), AcquireError>(())
    /// # }).unwrap();
    /// ```
    #[track_caller]
    pub fn with_lock<R>(
        &self,
        section: impl AsyncFnOnce(&mut T) -> R,
    ) -> impl Future<Output = Result<R, AcquireError>> {
        let site = caller_site();
        async move {
            let core = self.core();
            acquire_permits!(core, 1, Caller::Async, site);
            let hold = core.register(1, Caller::Async, core, false, site);
            let mut entered = Section { guard: Some(MutexGuard::from_hold(self, hold)), site };
            let value = section(&mut **entered.guard()).await;
            entered.finish();
            Ok(value)
        }
    }
}

impl<T> RwLock<T> {
    /// The same lock, broken rather than counted when a tracked task (or tracked scope)
    /// is dropped unfinished while it holds a borrowed write guard of it: see
    /// [`Mutex::break_on_cancel`].
    ///
    /// ```
    /// use futures::FutureExt;
    /// use ownsync::{AbandonReason, RwLock, tracked};
    /// let lock = RwLock::new(0).break_on_cancel();
    /// let task = tracked(async {
    ///     let _writer = lock.write().await.unwrap();
    ///     std::future::pending::<()>().await;
    /// });
    /// assert!(task.now_or_never().is_none());
    /// assert_eq!(lock.statistics().broken().map(|err| err.reason()), Some(AbandonReason::Cancelled));
    /// ```
    pub fn break_on_cancel(self) -> Self {
        self.core().set_break_on_cancel();
        self
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Whether [`break_on_cancel`](RwLock::break_on_cancel) is on.
    ///
    /// ```
    /// assert!(!ownsync::RwLock::new(()).is_break_on_cancel());
    /// ```
    pub fn is_break_on_cancel(&self) -> bool {
        self.core().is_break_on_cancel()
    }

    /// Write-locks, runs `section` on the data, and unlocks: a write section that knows
    /// when it is cut short. As [`Mutex::with_lock`]: dropped after the section began and
    /// before it finished, the lock breaks with
    /// [`AbandonReason::Cancelled`](crate::AbandonReason::Cancelled), naming the owner and
    /// where `with_write` was called; a finished section releases, whatever it returns.
    ///
    /// # Errors
    /// As [`write`](RwLock::write): the section does not run.
    ///
    /// ```
    /// use futures::FutureExt;
    /// use ownsync::RwLock;
    /// # futures::executor::block_on(async {
    /// let lock = RwLock::new(vec![1]);
    /// let len = lock.with_write(async |v| { v.push(2); v.len() }).await?;
    /// assert_eq!(len, 2);
    /// let cut = lock.with_write(async |v| { v.clear(); std::future::pending::<()>().await });
    /// assert!(cut.now_or_never().is_none());
    /// assert!(lock.read().await.is_err()); // broken: the section was cut short
    /// # Ok::<(), ownsync::AcquireError>(())
    /// # }).unwrap();
    /// ```
    #[track_caller]
    pub fn with_write<R>(
        &self,
        section: impl AsyncFnOnce(&mut T) -> R,
    ) -> impl Future<Output = Result<R, AcquireError>> {
        let site = caller_site();
        async move {
            let core = self.core();
            let permits = self.write_permits();
            acquire_permits!(core, permits, Caller::Async, site);
            let hold = core.register(permits, Caller::Async, core, false, site);
            let mut entered = Section { guard: Some(RwLockWriteGuard::from_hold(self, hold)), site };
            let value = section(&mut **entered.guard()).await;
            entered.finish();
            Ok(value)
        }
    }
}
