//! `Mutex<T>` and `Lock`: a 1-permit core plus the data.
//!
//! Same names and meanings as `tokio::sync::Mutex`, except that acquiring returns a
//! `Result`: a mutex whose holder went away (exited or was cancelled still holding, or
//! panicked inside the critical section) is broken, and says so to every waiter instead
//! of hanging them or handing them half-updated data.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Arc;

use crate::core::{AbandonPolicy, CoreSnapshot, Hold, SemCore, acquire_permits, common_statistics};
use crate::error::{AcquireError, PrimitiveKind, ReleaseError, RepairError, TryLockError};
use crate::owner::{Caller, OwnerId, Site, caller_site, current_owner};
use crate::repair::RepairGuard;

/// An async mutex that knows who holds it.
///
/// Like `tokio::sync::Mutex`: fair (FIFO hand-off), usable across `.await`, with owned
/// guards and `map`. Unlike it, a hold abandoned by its owner breaks the mutex:
/// every waiter, now and later, gets [`AcquireError::Broken`] naming the owner.
///
/// ```
/// use ownsync::Mutex;
/// # futures::executor::block_on(async {
/// let counter = Mutex::new(0);
/// *counter.lock().await? += 1;
/// assert_eq!(*counter.lock().await?, 1);
/// # Ok::<(), ownsync::AcquireError>(())
/// # }).unwrap();
/// ```
///
/// `Mutex::new` allocates (the core that owners' records point back to lives on the
/// heap), so there is no `const_new`; use a `static` with `std::sync::LazyLock`.
pub struct Mutex<T: ?Sized> {
    core: Arc<SemCore>,
    data: UnsafeCell<T>,
}

/// A mutex without data, for the cases where the lock *is* the point: `acquire` and
/// `release` by hand (checked against the owner, as in Trio), or guards of `()`.
///
/// ```
/// use ownsync::Lock;
/// let lock = Lock::default();
/// lock.blocking_acquire().unwrap();
/// assert!(lock.is_locked());
/// lock.release().unwrap();
/// assert!(!lock.is_locked());
/// ```
pub type Lock = Mutex<()>;

// SAFETY: the data is only reached through a guard, and a guard exists only while its
// hold (the core's single permit) is held, so at most one thread touches it at a time.
// Sending the mutex sends the data; sharing it lets any thread lock and reach `&mut T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(5);
    /// assert!(!mutex.is_locked());
    /// ```
    pub fn new(value: T) -> Self {
        Self::build(value, None)
    }

    /// A new mutex with a name for error messages and `Debug`.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::with_name(5, "config");
    /// assert_eq!(mutex.name(), Some("config"));
    /// ```
    pub fn with_name(value: T, name: impl Into<Arc<str>>) -> Self {
        Self::build(value, Some(name.into()))
    }

    /// The same mutex in strict mode: a self-wait (the owner that holds it asking for
    /// it again, through any entry point) is [`AcquireError::WouldDeadlock`] at once
    /// instead of a wait. For code without intra-task concurrency, where such a wait can
    /// never end; the default waits, as tokio does, because a sibling sub-future may
    /// hold the guard. With the `tokio` feature an untracked tokio task counts as one
    /// owner here.
    ///
    /// ```
    /// use ownsync::{AcquireError, Mutex};
    /// let mutex = Mutex::new(0).strict();
    /// let _guard = mutex.blocking_lock().unwrap(); // this thread holds it
    /// assert_eq!(mutex.blocking_lock().unwrap_err(), AcquireError::WouldDeadlock);
    /// ```
    pub fn strict(self) -> Self {
        self.core.set_strict();
        self
    }

    /// The same mutex, eventually fair instead of strictly FIFO: for threads that
    /// contend through [`blocking_lock`](Self::blocking_lock), where a strict hand-off
    /// to a parked thread costs a cross-core wake per lock (a convoy).
    ///
    /// A lock may be taken while others wait, if it is free (the releasing thread takes
    /// it back at once, as with `parking_lot` and `std`); a release wakes the first
    /// waiter to try for it rather than handing it over. So that nobody starves, a
    /// release hands the lock strictly to the first waiter when 0.5 ms have passed
    /// since the last such hand-off (parking_lot's bound): a waiter at the head of the
    /// queue gets the lock within about 0.5 ms plus one critical section of reaching it.
    /// Everything else is unchanged (breaks, owners, cancellation, diagnostics). Async
    /// waiters on the same mutex follow the same rule; the default is strict FIFO.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let counter = Arc::new(ownsync::Mutex::new(0).eventually_fair());
    /// let threads: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let counter = counter.clone();
    ///         std::thread::spawn(move || {
    ///             for _ in 0..1000 {
    ///                 *counter.blocking_lock().unwrap() += 1;
    ///             }
    ///         })
    ///     })
    ///     .collect();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// assert_eq!(*counter.blocking_lock().unwrap(), 2000);
    /// assert!(counter.is_eventually_fair());
    /// ```
    pub fn eventually_fair(self) -> Self {
        self.core.set_eventually_fair();
        self
    }

    /// Whether the mutex is [eventually fair](Self::eventually_fair) (the default is
    /// strict FIFO).
    ///
    /// ```
    /// assert!(!ownsync::Mutex::new(()).is_eventually_fair());
    /// ```
    pub fn is_eventually_fair(&self) -> bool {
        self.core.is_eventually_fair()
    }

    /// Whether [`strict`](Self::strict) mode is on.
    ///
    /// ```
    /// assert!(!ownsync::Mutex::new(()).is_strict());
    /// ```
    pub fn is_strict(&self) -> bool {
        self.core.is_strict()
    }

    fn build(value: T, name: Option<Arc<str>>) -> Self {
        let core = Arc::new(SemCore::new(1, PrimitiveKind::Mutex, name, AbandonPolicy::Break));
        crate::diagnostics::track(&core);
        Mutex { core, data: UnsafeCell::new(value) }
    }

    /// Consumes the mutex, returning the data (even if the mutex is broken).
    ///
    /// ```
    /// assert_eq!(ownsync::Mutex::new(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    pub(crate) fn core(&self) -> &Arc<SemCore> {
        &self.core
    }

    fn try_acquire_hold(&self, caller: Caller, moves: bool, site: Site) -> Result<Hold, TryLockError> {
        self.core.try_acquire(1, caller)?;
        Ok(self.core.register(1, caller, &self.core, moves, site))
    }

    /// Locks, waiting in FIFO order. Cancel-safe: dropping the future gives up its place,
    /// or passes the lock on if it had already been handed over.
    ///
    /// Locking again while the same task holds a guard waits, as in tokio: a sibling
    /// sub-future (`join!`, `select!`, `join_all`) may hold it and release it. Such a
    /// self-wait is shown in [`statistics`](Self::statistics) and `Debug`; a
    /// [`strict`](Self::strict) mutex refuses it instead.
    ///
    /// # Errors
    /// [`AcquireError::Broken`] if a holder abandoned the mutex (before or while we wait);
    /// [`AcquireError::WouldDeadlock`] only for a self-wait on a strict mutex.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let mutex = ownsync::Mutex::new(1);
    /// let mut guard = mutex.lock().await.unwrap();
    /// *guard += 1;
    /// # });
    /// ```
    #[track_caller]
    pub fn lock(&self) -> impl Future<Output = Result<MutexGuard<'_, T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, false, site);
            Ok(MutexGuard::from_hold(self, hold))
        }
    }

    /// Locks if that is possible right now, without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if held (by anyone, the caller's own task included,
    /// as in tokio) or waiters are queued (no barging), [`TryLockError::Broken`], or on
    /// a [`strict`](Self::strict) mutex [`TryLockError::WouldDeadlock`] for the holder.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(1);
    /// let guard = mutex.try_lock().unwrap();
    /// assert!(mutex.try_lock().is_err());
    /// drop(guard);
    /// assert!(mutex.try_lock().is_ok());
    /// ```
    #[track_caller]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let hold = self.try_acquire_hold(Caller::Async, false, caller_site())?;
        Ok(MutexGuard::from_hold(self, hold))
    }

    /// Locks from synchronous code, blocking the thread. Outside a tracked task the
    /// thread is the owner: if it ends still holding, the mutex breaks.
    ///
    /// Do not call it from async code: it blocks the executor's thread.
    ///
    /// # Panics
    /// With the `tokio` feature, on a thread that drives tokio tasks (as tokio's
    /// `blocking_lock` does); in `spawn_blocking` or `block_in_place` it works. The same
    /// holds for every `blocking_*` entry point of the crate.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(1);
    /// *mutex.blocking_lock().unwrap() += 1;
    /// assert_eq!(mutex.into_inner(), 2);
    /// ```
    #[track_caller]
    pub fn blocking_lock(&self) -> Result<MutexGuard<'_, T>, AcquireError> {
        let hold = self.core.blocking_hold(1, Caller::Blocking, false, caller_site())?;
        Ok(MutexGuard::from_hold(self, hold))
    }

    /// Like [`lock`](Self::lock), with a guard that keeps the mutex alive (`'static`).
    ///
    /// An owned guard may move (into a spawned task, over a channel), so its acquirer's
    /// exit does not break the mutex: the guard is released when dropped, wherever. If
    /// the acquirer exits while the guard is out, the guard shows as orphaned in
    /// [`statistics`](Self::statistics). [`OwnedMutexGuard::hand_to`] makes a task
    /// answer for it (its exit with the guard then breaks the mutex).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let mutex = Arc::new(ownsync::Mutex::new(1));
    /// let guard = mutex.clone().lock_owned().await.unwrap();
    /// assert!(Arc::ptr_eq(ownsync::OwnedMutexGuard::mutex(&guard), &mutex));
    /// # });
    /// ```
    #[track_caller]
    pub fn lock_owned(self: Arc<Self>) -> impl Future<Output = Result<OwnedMutexGuard<T>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, true, site);
            Ok(OwnedMutexGuard::from_hold(self, hold))
        }
    }

    /// Like [`try_lock`](Self::try_lock), with an owned guard.
    ///
    /// ```
    /// let mutex = std::sync::Arc::new(ownsync::Mutex::new(1));
    /// let guard = mutex.clone().try_lock_owned().unwrap();
    /// assert_eq!(*guard, 1);
    /// ```
    #[track_caller]
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        let hold = self.try_acquire_hold(Caller::Async, true, caller_site())?;
        Ok(OwnedMutexGuard::from_hold(self, hold))
    }

    /// Like [`blocking_lock`](Self::blocking_lock), with an owned guard.
    ///
    /// ```
    /// let mutex = std::sync::Arc::new(ownsync::Mutex::new(1));
    /// let guard = mutex.clone().blocking_lock_owned().unwrap();
    /// assert_eq!(*guard, 1);
    /// ```
    #[track_caller]
    pub fn blocking_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, AcquireError> {
        let hold = self.core.blocking_hold(1, Caller::Blocking, true, caller_site())?;
        Ok(OwnedMutexGuard::from_hold(self, hold))
    }

    /// The data, through a unique borrow: no locking needed (works even when broken).
    ///
    /// ```
    /// let mut mutex = ownsync::Mutex::new(1);
    /// *mutex.get_mut() = 2;
    /// assert_eq!(mutex.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Whether a holder abandoned this mutex. Permanent once true.
    ///
    /// ```
    /// assert!(!ownsync::Mutex::new(()).is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        self.core.is_broken()
    }

    /// Whether the mutex is held right now. A snapshot: use `try_lock` to decide.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(());
    /// let _guard = mutex.try_lock().unwrap();
    /// assert!(mutex.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.core.available() == 0
    }

    /// The owner holding the mutex, if it is held by a known owner (a tracked task or a
    /// thread); `None` if free or held anonymously. An owned guard may move to another
    /// task, so its acquirer is not taken for its holder: `None` until it is handed over
    /// (`OwnedMutexGuard::hand_to` or `adopt`). For a broken mutex: who broke it.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(());
    /// let _guard = mutex.blocking_lock().unwrap();
    /// assert_eq!(mutex.owner(), Some(ownsync::current_owner()));
    /// ```
    pub fn owner(&self) -> Option<OwnerId> {
        self.core.holder()
    }

    /// The name given with [`with_name`](Mutex::with_name).
    ///
    /// ```
    /// assert_eq!(ownsync::Mutex::new(()).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.core.name()
    }

    /// Starts repairing a broken mutex (as POSIX's
    /// `pthread_mutex_consistent`, std's `clear_poison`): the data for a program that
    /// knows how to restore it, then [`RepairGuard::mark_consistent`] makes the mutex
    /// usable again. Dropping the repair guard without it leaves the mutex broken.
    ///
    /// # Errors
    /// [`RepairError::NotBroken`]; [`RepairError::InUse`] while a guard of the mutex is
    /// still out (the abandoned hold's own guard if it was moved elsewhere or leaked,
    /// or another repairer's): the data may still be reached through it.
    ///
    /// ```
    /// use ownsync::{Mutex, RepairError, tracked};
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(1);
    /// // A task that leaks its guard: the guard is never dropped, so no repair is safe.
    /// tracked(async { std::mem::forget(mutex.lock().await.unwrap()) }).await;
    /// assert_eq!(mutex.try_repair().err(), Some(RepairError::InUse { guards_out: 1 }));
    /// # });
    /// ```
    #[track_caller]
    pub fn try_repair(&self) -> Result<RepairGuard<'_, T>, RepairError> {
        RepairGuard::begin(&self.core, 1, self.data.get())
    }

    /// A snapshot of the mutex's state.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(());
    /// let stats = mutex.statistics();
    /// assert_eq!(stats.waiters(), 0);
    /// assert_eq!(stats.holder(), None);
    /// assert!(!stats.is_locked());
    /// ```
    pub fn statistics(&self) -> MutexStatistics {
        MutexStatistics { core: self.core.snapshot() }
    }
}

impl Mutex<()> {
    /// Acquires the lock without a guard (Trio's `acquire`); give it back with
    /// [`release`](Mutex::release). Owned like any hold: if the owner exits before
    /// releasing, the lock breaks.
    ///
    /// # Errors
    /// [`AcquireError::WouldDeadlock`] at once if the calling owner (a tracked task or,
    /// for [`blocking_acquire`](Mutex::blocking_acquire), a thread) holds it already: a
    /// manual hold is nobody's sibling sub-future, so that wait could never end (Trio's
    /// rule); [`AcquireError::Broken`] if a holder abandoned it.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let lock = ownsync::Lock::default();
    /// lock.acquire().await.unwrap();
    /// lock.release().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<(), AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::ManualAsync, site);
            let hold = self.core.register(1, Caller::ManualAsync, &self.core, false, site);
            self.core.store_manual(hold);
            Ok(())
        }
    }

    /// [`acquire`](Mutex::acquire) without waiting.
    ///
    /// ```
    /// let lock = ownsync::Lock::default();
    /// lock.try_acquire().unwrap();
    /// assert!(lock.try_acquire().is_err());
    /// lock.release().unwrap();
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> Result<(), TryLockError> {
        let hold = self.try_acquire_hold(Caller::ManualAsync, false, caller_site())?;
        self.core.store_manual(hold);
        Ok(())
    }

    /// [`acquire`](Mutex::acquire) from synchronous code; the thread is the owner.
    ///
    /// ```
    /// let lock = ownsync::Lock::default();
    /// lock.blocking_acquire().unwrap();
    /// lock.release().unwrap();
    /// ```
    #[track_caller]
    pub fn blocking_acquire(&self) -> Result<(), AcquireError> {
        let hold = self.core.blocking_hold(1, Caller::ManualBlocking, false, caller_site())?;
        self.core.store_manual(hold);
        Ok(())
    }

    /// Releases a hold taken with `acquire`. Only its owner may release it (a hold taken
    /// anonymously, by an untracked task, may be released by anyone).
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if another owner holds it; [`ReleaseError::NotHeld`] if
    /// no manual hold exists (also once an owner that exited without releasing broke the
    /// lock: the break settled that hold). Either way the hold is untouched.
    ///
    /// ```
    /// use ownsync::{Lock, ReleaseError};
    /// let lock = Lock::default();
    /// assert_eq!(lock.release(), Err(ReleaseError::NotHeld));
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        let hold = self.core.take_manual(current_owner())?;
        self.core.end_hold(hold, 1);
        Ok(())
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::debug::debug_lock(&self.core, f, "Mutex", self.data.get(), "holder")
    }
}

/// A snapshot of a [`Mutex`]'s state. Never decide on it: `try_lock` decides.
///
/// ```
/// let mutex = ownsync::Mutex::new(());
/// assert!(mutex.statistics().broken().is_none());
/// ```
#[derive(Clone)]
pub struct MutexStatistics {
    core: CoreSnapshot,
}

impl fmt::Debug for MutexStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("MutexStatistics");
        out.field("holder", &self.core.holder).field("self_waits", &self.core.self_waits);
        crate::debug::core_fields(&mut out, &self.core);
        out.field("cut_short", &self.core.cut_short);
        out.finish()
    }
}

impl MutexStatistics {
    /// Whether it was held.
    pub fn is_locked(&self) -> bool {
        self.core.available == 0
    }
    /// Its known holder (or who broke it).
    pub fn holder(&self) -> Option<OwnerId> {
        self.core.holder
    }
    /// How many waiters are the holder itself: the task holding the guard waits for the
    /// mutex again. Fine while a sibling sub-future holds the guard and will release it
    /// (`join_all` taking turns); a hang if the guard's sub-future is no longer polled
    /// (a futurelock) or was leaked.
    pub fn self_waits(&self) -> usize {
        self.core.self_waits
    }
    /// Critical sections cut short by a cancellation so far (see
    /// [`Mutex::break_on_cancel`] and [`Mutex::with_lock`]).
    ///
    /// ```
    /// assert_eq!(ownsync::Mutex::new(()).statistics().cut_short().count(), 0);
    /// ```
    pub fn cut_short(&self) -> crate::core::CutShort {
        self.core.cut_short
    }
}

common_statistics!(MutexStatistics);

mod guards;
pub use guards::{MappedMutexGuard, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard};
#[cfg(test)]
mod tests;
