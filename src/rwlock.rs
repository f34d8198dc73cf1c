//! `RwLock<T>`: tokio's write-preferring, fair RwLock, on the same counted core as
//! `Mutex` (as tokio builds its RwLock on its semaphore).
//!
//! The core has `max_readers` permits: a reader takes one, a writer takes them all. The
//! core's queue is FIFO and a waiter at its head is never overtaken, so a queued writer
//! stops the readers that come after it (no writer starvation), exactly as in tokio.
//! What is new against the mutex is only which holds are *exclusive* (a writer's): those
//! record their holder, break the lock when dropped in a panic that began in their
//! section, and always break it when abandoned. A leaked read guard of a known owner
//! breaks the lock too, since it would starve every writer for ever, and under any
//! policy: its permit is never returned, because the guard may still be reachable (see
//! [`RwLock::with_policy`]).

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::core::{AbandonPolicy, CoreSnapshot, Hold, SemCore, acquire_permits, common_statistics};
use crate::error::{AcquireError, PrimitiveKind, RepairError, TryLockError};
use crate::owner::{Caller, OwnerId, Site, caller_site};
use crate::repair::RepairGuard;

/// The most readers an [`RwLock`] admits at once (tokio's limit: `u32::MAX >> 3`).
const MAX_READS: u32 = u32::MAX >> 3;

/// An async reader-writer lock that knows who holds it.
///
/// Like `tokio::sync::RwLock`: fair and write-preferring (one FIFO queue, so a waiting
/// writer stops the readers behind it), usable across `.await`, with owned, mapped and
/// downgradable guards. Unlike it, acquiring returns a `Result`: a writer that goes away
/// holding the lock (or panics inside its section), or a reader that leaks its guard,
/// breaks it, and every waiter, now and later, gets [`AcquireError::Broken`].
///
/// ```
/// use ownsync::RwLock;
/// # futures::executor::block_on(async {
/// let lock = RwLock::new(5);
/// {
///     let (r1, r2) = (lock.read().await?, lock.read().await?); // many readers at once
///     assert_eq!(*r1 + *r2, 10);
/// }
/// *lock.write().await? += 1; // one writer
/// assert_eq!(*lock.read().await?, 6);
/// # Ok::<(), ownsync::AcquireError>(())
/// # }).unwrap();
/// ```
///
/// With `with_max_readers(_, 1)` a read hold takes the one permit a write hold takes,
/// so it is treated as exclusive too (its holder is recorded; dropped in a panic, or
/// abandoned, it breaks the lock, as every abandoned hold of an RwLock does).
pub struct RwLock<T: ?Sized> {
    core: Arc<SemCore>,
    max_readers: u32,
    data: UnsafeCell<T>,
}

// SAFETY: as tokio's: the data is reached only through guards; sending the lock sends
// the data, and sharing it lets readers on many threads share `&T` (so `T: Sync`) and a
// writer on any thread reach `&mut T` (so `T: Send`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// A new, unlocked RwLock admitting up to `u32::MAX >> 3` readers at once.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(5);
    /// assert!(!lock.statistics().is_locked());
    /// ```
    pub fn new(value: T) -> Self {
        Self::build(value, MAX_READS, None, AbandonPolicy::Break)
    }

    /// A new RwLock admitting at most `max_reads` readers at once.
    ///
    /// # Panics
    /// If `max_reads` is 0 ("a RwLock may not be created with 0 readers") or more than
    /// `u32::MAX >> 3`, with tokio's messages.
    ///
    /// ```
    /// let lock = ownsync::RwLock::with_max_readers(5, 1024);
    /// let _r = lock.try_read().unwrap();
    /// ```
    #[track_caller]
    pub fn with_max_readers(value: T, max_reads: u32) -> Self {
        assert!(max_reads != 0, "a RwLock may not be created with 0 readers");
        assert!(max_reads <= MAX_READS, "a RwLock may not be created with more than {MAX_READS} readers");
        Self::build(value, max_reads, None, AbandonPolicy::Break)
    }

    /// A new RwLock with a name for error messages and `Debug`.
    ///
    /// ```
    /// let lock = ownsync::RwLock::with_name(5, "routes");
    /// assert_eq!(lock.name(), Some("routes"));
    /// ```
    pub fn with_name(value: T, name: impl Into<Arc<str>>) -> Self {
        Self::build(value, MAX_READS, Some(name.into()), AbandonPolicy::Break)
    }

    /// A new RwLock with the given abandon policy, which for an RwLock changes nothing:
    /// a primitive that guards data never reclaims. [`AbandonPolicy::Reclaim`] applies
    /// to [`Semaphore`](crate::semaphore::Semaphore) and [`CapacityLimiter`](crate::limiter::CapacityLimiter)
    /// only; on an RwLock an abandoned read hold breaks the lock, as an abandoned write
    /// hold does (its data may be half-updated). Why: no program can tell a read guard
    /// that was forgotten (`mem::forget`) from one that is still reachable and in use
    /// (returned from its task, returned through a thread's `join`, `Box::leak`ed);
    /// giving its permit back would let a writer get `&mut T` while that `&T` still
    /// reads, a data race and a use-after-free. Each abandonment is counted in
    /// `statistics().abandoned()` whatever the policy. (Kept so that code choosing a
    /// policy per primitive compiles alike for every kind.)
    ///
    /// ```
    /// use ownsync::{AbandonPolicy, RwLock, tracked};
    /// # futures::executor::block_on(async {
    /// let lock = RwLock::with_policy(0, AbandonPolicy::Reclaim);
    /// tracked(async { std::mem::forget(lock.read().await.unwrap()) }).await;
    /// // The leaked read guard broke the lock: its permit is not reclaimed.
    /// assert!(lock.is_broken() && lock.try_write().is_err());
    /// assert_eq!(lock.statistics().abandoned().count(), 1);
    /// # });
    /// ```
    pub fn with_policy(value: T, policy: AbandonPolicy) -> Self {
        Self::build(value, MAX_READS, None, policy)
    }

    fn build(value: T, max_readers: u32, name: Option<Arc<str>>, policy: AbandonPolicy) -> Self {
        let core = Arc::new(SemCore::new(max_readers as usize, PrimitiveKind::RwLock, name, policy));
        crate::diagnostics::track(&core);
        RwLock { core, max_readers, data: UnsafeCell::new(value) }
    }

    /// Consumes the lock, returning the data (even if it is broken).
    ///
    /// ```
    /// assert_eq!(ownsync::RwLock::new(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    pub(crate) fn core(&self) -> &Arc<SemCore> {
        &self.core
    }

    pub(crate) fn write_permits(&self) -> usize {
        self.max_readers as usize
    }

    fn try_acquire_hold(&self, permits: usize, moves: bool, site: Site) -> Result<Hold, TryLockError> {
        self.core.try_acquire(permits, Caller::Async)?;
        Ok(self.core.register(permits, Caller::Async, &self.core, moves, site))
    }

    fn read_guard(&self, hold: Hold) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard { core: &self.core, data: self.data.get(), hold, marker: PhantomData }
    }

    /// Locks for reading, waiting in FIFO order: behind a queued writer even while other
    /// readers hold the lock. Cancel-safe.
    ///
    /// # Errors
    /// [`AcquireError::Broken`] if a holder abandoned the lock (before or while we wait).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let lock = ownsync::RwLock::new(1);
    /// let a = lock.read().await.unwrap();
    /// let b = lock.read().await.unwrap();
    /// assert_eq!(*a + *b, 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn read(&self) -> impl Future<Output = Result<RwLockReadGuard<'_, T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, false, site);
            Ok(self.read_guard(hold))
        }
    }

    /// Locks for writing, waiting in FIFO order until every reader and writer before it
    /// is done. Cancel-safe. A task that holds a read or write guard of this lock and
    /// asks again waits, as in tokio (a sibling sub-future may hold the guard); if it
    /// holds the write guard itself this is a self-wait, shown in `statistics()`.
    ///
    /// # Errors
    /// [`AcquireError::Broken`] if a holder abandoned the lock (before or while we wait).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let lock = ownsync::RwLock::new(1);
    /// *lock.write().await.unwrap() += 1;
    /// assert_eq!(*lock.read().await.unwrap(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn write(&self) -> impl Future<Output = Result<RwLockWriteGuard<'_, T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, self.write_permits(), Caller::Async, site);
            let hold = self.core.register(self.write_permits(), Caller::Async, &self.core, false, site);
            Ok(RwLockWriteGuard::from_hold(self, hold))
        }
    }

    /// Locks for reading if that is possible right now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a writer holds the lock or anyone is queued (no
    /// barging), or every read slot is taken; [`TryLockError::Broken`].
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// let w = lock.try_write().unwrap();
    /// assert!(lock.try_read().is_err());
    /// drop(w);
    /// assert!(lock.try_read().is_ok());
    /// ```
    #[track_caller]
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        let hold = self.try_acquire_hold(1, false, caller_site())?;
        Ok(self.read_guard(hold))
    }

    /// Locks for writing if that is possible right now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if anyone holds the lock or is queued;
    /// [`TryLockError::Broken`].
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// let r = lock.try_read().unwrap();
    /// assert!(lock.try_write().is_err());
    /// drop(r);
    /// assert!(lock.try_write().is_ok());
    /// ```
    #[track_caller]
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        let hold = self.try_acquire_hold(self.write_permits(), false, caller_site())?;
        Ok(RwLockWriteGuard::from_hold(self, hold))
    }

    /// [`read`](Self::read) from synchronous code, blocking the thread (which owns the
    /// hold outside a tracked task). Do not call it from async code.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// assert_eq!(*lock.blocking_read().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn blocking_read(&self) -> Result<RwLockReadGuard<'_, T>, AcquireError> {
        let hold = self.core.blocking_hold(1, Caller::Blocking, false, caller_site())?;
        Ok(self.read_guard(hold))
    }

    /// [`write`](Self::write) from synchronous code, blocking the thread.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(1);
    /// *lock.blocking_write().unwrap() += 1;
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    #[track_caller]
    pub fn blocking_write(&self) -> Result<RwLockWriteGuard<'_, T>, AcquireError> {
        let hold = self.core.blocking_hold(self.write_permits(), Caller::Blocking, false, caller_site())?;
        Ok(RwLockWriteGuard::from_hold(self, hold))
    }

    /// Like [`read`](Self::read), with a guard that keeps the lock alive (`'static`).
    /// Owned guards may move to another task: their acquirer's exit breaks nothing; hand one
    /// over ([`OwnedRwLockReadGuard::hand_to`]) to make a task answer for it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let lock = Arc::new(ownsync::RwLock::new(1));
    /// let guard = lock.clone().read_owned().await.unwrap();
    /// std::thread::spawn(move || assert_eq!(*guard, 1)).join().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn read_owned(
        self: Arc<Self>,
    ) -> impl Future<Output = Result<OwnedRwLockReadGuard<T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, true, site);
            let data = self.data.get();
            Ok(OwnedRwLockReadGuard { lock: self, data, hold })
        }
    }

    /// Like [`write`](Self::write), with an owned guard.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let lock = Arc::new(ownsync::RwLock::new(1));
    /// *lock.clone().write_owned().await.unwrap() += 1;
    /// assert_eq!(*lock.read().await.unwrap(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn write_owned(
        self: Arc<Self>,
    ) -> impl Future<Output = Result<OwnedRwLockWriteGuard<T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, self.write_permits(), Caller::Async, site);
            let hold = self.core.register(self.write_permits(), Caller::Async, &self.core, true, site);
            Ok(OwnedRwLockWriteGuard::from_hold(self, hold))
        }
    }

    /// Like [`try_read`](Self::try_read), with an owned guard.
    ///
    /// ```
    /// let lock = std::sync::Arc::new(ownsync::RwLock::new(1));
    /// assert_eq!(*lock.try_read_owned().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_read_owned(self: Arc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError> {
        let hold = self.try_acquire_hold(1, true, caller_site())?;
        let data = self.data.get();
        Ok(OwnedRwLockReadGuard { lock: self, data, hold })
    }

    /// Like [`try_write`](Self::try_write), with an owned guard.
    ///
    /// ```
    /// let lock = std::sync::Arc::new(ownsync::RwLock::new(1));
    /// *lock.clone().try_write_owned().unwrap() += 1;
    /// assert_eq!(*lock.try_read().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn try_write_owned(self: Arc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError> {
        let hold = self.try_acquire_hold(self.write_permits(), true, caller_site())?;
        Ok(OwnedRwLockWriteGuard::from_hold(self, hold))
    }

    /// The data, through a unique borrow: no locking needed (works even when broken).
    ///
    /// ```
    /// let mut lock = ownsync::RwLock::new(1);
    /// *lock.get_mut() = 2;
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Whether a holder abandoned this lock. Permanent once true.
    ///
    /// ```
    /// assert!(!ownsync::RwLock::new(()).is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        self.core.is_broken()
    }

    /// The name given with [`with_name`](RwLock::with_name).
    ///
    /// ```
    /// assert_eq!(ownsync::RwLock::new(()).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.core.name()
    }

    /// Starts repairing a broken lock, as [`Mutex::try_repair`](crate::Mutex::try_repair)
    /// does: possible once every read and write guard is dropped.
    ///
    /// # Errors
    /// [`RepairError::NotBroken`]; [`RepairError::InUse`] while guards are out.
    ///
    /// ```
    /// use ownsync::RwLock;
    /// let lock = RwLock::new(vec![1]);
    /// let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     let mut w = lock.blocking_write().unwrap();
    ///     w.clear();
    ///     panic!("half-way");
    /// }));
    /// let mut repair = lock.try_repair().unwrap();
    /// repair.push(1);
    /// repair.mark_consistent();
    /// assert_eq!(*lock.try_read().unwrap(), [1]);
    /// ```
    #[track_caller]
    pub fn try_repair(&self) -> Result<RepairGuard<'_, T>, RepairError> {
        RepairGuard::begin(&self.core, self.write_permits(), self.data.get())
    }

    /// A snapshot of the lock's state.
    ///
    /// ```
    /// let lock = ownsync::RwLock::new(());
    /// let _r = lock.try_read().unwrap();
    /// let stats = lock.statistics();
    /// assert_eq!((stats.readers(), stats.writer()), (1, None));
    /// ```
    pub fn statistics(&self) -> RwLockStatistics {
        RwLockStatistics { core: self.core.snapshot(), max_readers: self.write_permits() }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::debug::debug_lock(&self.core, f, "RwLock", self.data.get(), "writer")
    }
}

/// A snapshot of an [`RwLock`]'s state. Never decide on it: `try_*` decides.
///
/// ```
/// let lock = ownsync::RwLock::new(());
/// let _w = lock.try_write().unwrap();
/// assert!(lock.statistics().is_locked());
/// ```
#[derive(Clone)]
pub struct RwLockStatistics {
    core: CoreSnapshot,
    max_readers: usize,
}

impl fmt::Debug for RwLockStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RwLockStatistics");
        out.field("max_readers", &self.max_readers)
            .field("readers", &self.readers())
            .field("writer", &self.core.holder)
            .field("self_waits", &self.core.self_waits);
        crate::debug::core_fields(&mut out, &self.core);
        out.field("cut_short", &self.core.cut_short);
        out.finish()
    }
}

impl RwLockStatistics {
    /// Whether a reader or a writer held it.
    pub fn is_locked(&self) -> bool {
        self.core.available < self.max_readers
    }
    /// How many read slots were taken (all of them while a writer holds it).
    pub fn readers(&self) -> usize {
        self.max_readers - self.core.available
    }
    /// The known owner of the write hold (a tracked task or a thread), if a writer held
    /// it and was not anonymous; for a broken lock, who broke it.
    pub fn writer(&self) -> Option<OwnerId> {
        self.core.holder
    }
    /// Waiters that are the writer itself (a self-wait: see `MutexStatistics::self_waits`).
    pub fn self_waits(&self) -> usize {
        self.core.self_waits
    }
    /// Write sections cut short by a cancellation so far (see
    /// [`RwLock::break_on_cancel`] and [`RwLock::with_write`]).
    ///
    /// ```
    /// assert_eq!(ownsync::RwLock::new(()).statistics().cut_short().count(), 0);
    /// ```
    pub fn cut_short(&self) -> crate::core::CutShort {
        self.core.cut_short
    }
}

common_statistics!(RwLockStatistics);

mod guards;
pub use guards::{
    OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLockMappedWriteGuard,
    RwLockReadGuard, RwLockWriteGuard,
};
#[cfg(test)]
mod tests;
