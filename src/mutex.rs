//! `Mutex<T>` and `Lock`: a 1-permit core plus the data.
//!
//! Same names and meanings as `tokio::sync::Mutex`, except that acquiring returns a
//! `Result`: a mutex whose holder went away (exited or was cancelled still holding, or
//! panicked inside the critical section) is broken, and says so to every waiter instead
//! of hanging them or handing them half-updated data.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::core::{AbandonPolicy, CoreSnapshot, Hold, SemCore, acquire_permits, common_statistics};
use crate::error::{AcquireError, PrimitiveKind, ReleaseError, RepairError, TryLockError};
use crate::guard::{HoldSlot, InCore, guard_deref_mut, hold_guard, owned_into_parts};
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
    pub fn cut_short(&self) -> crate::CutShort {
        self.core.cut_short
    }
}

common_statistics!(MutexStatistics);

/// The examples of the mutex guards' `hand_to` and `adopt`.
macro_rules! mutex_hand_doc {
    () => {
        r#"```
use std::sync::Arc;
use ownsync::{Mutex, OwnedMutexGuard, tracked};
let mutex = Arc::new(Mutex::new(0));
let mut guard = mutex.clone().try_lock_owned().unwrap();
let worker = tracked(std::future::pending::<()>());
OwnedMutexGuard::hand_to(&mut guard, worker.owner()).unwrap();
assert_eq!(mutex.owner(), Some(worker.owner()));
drop(worker); // cancelled while it answers for the guard
assert!(mutex.is_broken());
drop(guard); // releases nothing: the mutex is broken
```"#
    };
}
macro_rules! mutex_adopt_doc {
    () => {
        r#"```
use std::sync::Arc;
let mutex = Arc::new(ownsync::Mutex::new(0));
let mut guard = mutex.clone().try_lock_owned().unwrap();
std::thread::spawn(move || {
    ownsync::OwnedMutexGuard::adopt(&mut guard).unwrap();
    std::mem::forget(guard); // this thread now answers for it...
})
.join()
.unwrap();
assert!(mutex.is_broken()); // ...and ended holding it
```"#
    };
}

/// Access to a [`Mutex`]'s data; dropping it unlocks (hands the lock to the next
/// waiter). Dropped while its thread panics, it breaks the mutex (`Panicked`).
///
/// ```
/// # futures::executor::block_on(async {
/// let mutex = ownsync::Mutex::new(vec![1]);
/// mutex.lock().await.unwrap().push(2);
/// assert_eq!(*mutex.lock().await.unwrap(), [1, 2]);
/// # });
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    hold: InCore,
}

hold_guard!(MutexGuard<'a, T>, T, |g| g.mutex.data.get(), core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(MutexGuard<'a, T>, T, |g| g.mutex.data.get());

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The guard of the lock its caller has just taken, with that hold's registration.
    pub(crate) fn from_hold(mutex: &'a Mutex<T>, hold: Hold) -> Self {
        // SAFETY: a guard is made only for the mutex's one permit, just taken by the
        // caller for this guard (the same fact that makes its `&mut T` sound).
        MutexGuard { mutex, hold: unsafe { InCore::keep(&mutex.core, hold) } }
    }

    /// Gives the hold up to the caller without ending it (a condition's wait).
    pub(crate) fn into_parts(mut this: Self) -> (&'a Mutex<T>, Hold) {
        let (mutex, hold) = (this.mutex, this.hold.take_hold(&this.mutex.core));
        std::mem::forget(this);
        (mutex, hold)
    }

    /// The mutex this guard locks.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(());
    /// let guard = mutex.try_lock().unwrap();
    /// assert!(std::ptr::eq(ownsync::MutexGuard::mutex(&guard), &mutex));
    /// ```
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.mutex
    }

    /// A guard for a part of the data; the lock stays held until it drops.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new((1, 2));
    /// let mut second = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |pair| &mut pair.1);
    /// *second += 1;
    /// drop(second);
    /// assert_eq!(mutex.into_inner(), (1, 3));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> MappedMutexGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (core, hold) = (&this.mutex.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        MappedMutexGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(Some(1));
    /// let guard = mutex.try_lock().unwrap();
    /// let inner = ownsync::MutexGuard::try_map(guard, |v| v.as_mut()).unwrap();
    /// assert_eq!(*inner, 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (&this.mutex.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(MappedMutexGuard { core, data, hold, marker: PhantomData })
    }
}

/// A [`MutexGuard`] that keeps its mutex alive through an `Arc` (`'static`).
///
/// ```
/// use std::sync::Arc;
/// let mutex = Arc::new(ownsync::Mutex::new(1));
/// let guard: ownsync::OwnedMutexGuard<i32> = mutex.try_lock_owned().unwrap();
/// std::thread::spawn(move || assert_eq!(*guard, 1)).join().unwrap();
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedMutexGuard<T: ?Sized> {
    mutex: Arc<Mutex<T>>,
    hold: InCore,
}

hold_guard!(OwnedMutexGuard<T>, T, |g| g.mutex.data.get(), core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(OwnedMutexGuard<T>, T, |g| g.mutex.data.get());
owned_into_parts!(OwnedMutexGuard<T>, mutex: Arc<Mutex<T>>, hold: InCore);

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for OwnedMutexGuard<T> {}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// The guard of the lock its caller has just taken, with that hold's registration.
    fn from_hold(mutex: Arc<Mutex<T>>, hold: Hold) -> Self {
        // SAFETY: as for `MutexGuard::from_hold`.
        let hold = unsafe { InCore::keep(&mutex.core, hold) };
        OwnedMutexGuard { mutex, hold }
    }

    /// The mutex this guard locks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(()));
    /// let guard = mutex.clone().try_lock_owned().unwrap();
    /// assert!(Arc::ptr_eq(guard.mutex(), &mutex));
    /// ```
    pub fn mutex(&self) -> &Arc<Mutex<T>> {
        &self.mutex
    }
}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// An owned guard for a part of the data (tokio's `OwnedMutexGuard::map`); the lock
    /// stays held until it drops.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new((1, 2)));
    /// let mut second = ownsync::OwnedMutexGuard::map(mutex.clone().try_lock_owned().unwrap(), |p| &mut p.1);
    /// *second += 1;
    /// drop(second);
    /// assert_eq!(*mutex.try_lock().unwrap(), (1, 3));
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, U> {
        let data: *mut U = f(&mut *this);
        let (mutex, hold) = Self::into_parts(this);
        OwnedMappedMutexGuard { mutex, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(Some(1)));
    /// let guard = mutex.try_lock_owned().unwrap();
    /// assert_eq!(*ownsync::OwnedMutexGuard::try_map(guard, |v| v.as_mut()).unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (mutex, hold) = Self::into_parts(this);
        Ok(OwnedMappedMutexGuard { mutex, data, hold })
    }
}

/// An owned guard for part of a mutex's data (`'static`), made by
/// [`OwnedMutexGuard::map`].
///
/// ```
/// use std::sync::Arc;
/// let mutex = Arc::new(ownsync::Mutex::new([1, 2]));
/// let first = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |a| &mut a[0]);
/// std::thread::spawn(move || assert_eq!(*first, 1)).join().unwrap();
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct OwnedMappedMutexGuard<T: ?Sized, U: ?Sized = T> {
    mutex: Arc<Mutex<T>>,
    data: *mut U,
    hold: InCore,
}

hold_guard!(OwnedMappedMutexGuard<T, U>, U, |g| g.data, core: |g| &g.mutex.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(OwnedMappedMutexGuard<T, U>, U, |g| g.data);
owned_into_parts!(OwnedMappedMutexGuard<T, U>, mutex: Arc<Mutex<T>>, hold: InCore);

// SAFETY: a unique borrow of `U` plus the mutex it keeps alive (as tokio's).
unsafe impl<T: ?Sized + Send, U: ?Sized + Send> Send for OwnedMappedMutexGuard<T, U> {}
// SAFETY: sharing it shares `&U` only.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Send + Sync> Sync for OwnedMappedMutexGuard<T, U> {}

impl<T: ?Sized, U: ?Sized> OwnedMappedMutexGuard<T, U> {
    /// The mutex this guard locks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(((), ())));
    /// let guard = ownsync::OwnedMutexGuard::map(mutex.clone().try_lock_owned().unwrap(), |p| &mut p.0);
    /// assert!(Arc::ptr_eq(ownsync::OwnedMappedMutexGuard::mutex(&guard), &mutex));
    /// ```
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.mutex
    }

    /// Maps further into the data.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new(((1, 2), 3)));
    /// let outer = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |v| &mut v.0);
    /// assert_eq!(*ownsync::OwnedMappedMutexGuard::map(outer, |v| &mut v.1), 2);
    /// ```
    pub fn map<V: ?Sized, F: FnOnce(&mut U) -> &mut V>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, V> {
        let data: *mut V = f(&mut *this);
        let (mutex, hold) = Self::into_parts(this);
        OwnedMappedMutexGuard { mutex, data, hold }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let mutex = Arc::new(ownsync::Mutex::new((Some(1), 2)));
    /// let outer = ownsync::OwnedMutexGuard::map(mutex.try_lock_owned().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::OwnedMappedMutexGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<V: ?Sized, F: FnOnce(&mut U) -> Option<&mut V>>(
        mut this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, V>, Self> {
        let data: *mut V = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (mutex, hold) = Self::into_parts(this);
        Ok(OwnedMappedMutexGuard { mutex, data, hold })
    }
}

/// A guard for part of a mutex's data, made by [`MutexGuard::map`].
///
/// ```
/// let mutex = ownsync::Mutex::new([1, 2, 3]);
/// let first = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |a| &mut a[0]);
/// assert_eq!(*first, 1);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    core: &'a Arc<SemCore>,
    data: *mut T,
    hold: InCore,
    marker: PhantomData<&'a mut T>,
}

hold_guard!(MappedMutexGuard<'a, T>, T, |g| g.data, core: |g| g.core, permits: |_g| 1,
    docs: (mutex_hand_doc!(), mutex_adopt_doc!()));
guard_deref_mut!(MappedMutexGuard<'a, T>, T, |g| g.data);

// SAFETY: the guard is a unique borrow of the data (`&mut T`) plus the hold.
unsafe impl<T: ?Sized + Send> Send for MappedMutexGuard<'_, T> {}
// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for MappedMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Maps further into the data.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new(((1, 2), 3));
    /// let outer = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |v| &mut v.0);
    /// let inner = ownsync::MappedMutexGuard::map(outer, |v| &mut v.1);
    /// assert_eq!(*inner, 2);
    /// ```
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(mut this: Self, f: F) -> MappedMutexGuard<'a, U> {
        let data: *mut U = f(&mut *this);
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        MappedMutexGuard { core, data, hold, marker: PhantomData }
    }

    /// Like [`map`](Self::map), but `f` may decline, giving the guard back.
    ///
    /// ```
    /// let mutex = ownsync::Mutex::new((Some(1), 2));
    /// let outer = ownsync::MutexGuard::map(mutex.try_lock().unwrap(), |v| &mut v.0);
    /// assert!(ownsync::MappedMutexGuard::try_map(outer, |v| v.as_mut()).is_ok());
    /// ```
    #[track_caller]
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let data: *mut U = match f(&mut *this) {
            Some(data) => data,
            None => return Err(this),
        };
        let (core, hold) = (this.core, std::mem::take(&mut this.hold));
        std::mem::forget(this);
        Ok(MappedMutexGuard { core, data, hold, marker: PhantomData })
    }
}

/// Unit tests that reach every `unsafe` block of this file, so Miri checks them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracked::tracked;
    use std::future::Future;
    use std::task::{Context, Waker};

    #[test]
    fn guards_map_and_debug_are_sound() {
        let mutex = Mutex::new((1u8, String::from("a")));
        {
            let mut guard = mutex.try_lock().unwrap();
            guard.1.push('b');
            let mut mapped = MutexGuard::map(guard, |pair| &mut pair.1);
            mapped.push('c');
            let mut text = MappedMutexGuard::map(mapped, |text| text);
            text.insert(0, 'z');
            assert_eq!(format!("{mutex:?}"), "Mutex { data: <locked>, holder: None }");
        }
        assert_eq!(format!("{mutex:?}"), "Mutex { data: (1, \"zabc\"), holder: None }");
        let guard = mutex.try_lock().unwrap();
        let guard = MutexGuard::try_map(guard, |_| None::<&mut u8>).unwrap_err();
        let mapped = MutexGuard::try_map(guard, |pair| Some(&mut pair.0)).unwrap();
        assert_eq!(*mapped, 1);
        drop(mapped);
        let shared = Arc::new(mutex);
        let mut owned = shared.clone().try_lock_owned().unwrap();
        owned.0 = 2;
        let owned = OwnedMutexGuard::map(owned, |pair| &mut pair.1);
        let mut owned = OwnedMappedMutexGuard::map(owned, |text| text);
        owned.push('!');
        drop(owned);
        let refused = OwnedMutexGuard::try_map(shared.clone().try_lock_owned().unwrap(), |_| None::<&mut u8>);
        drop(refused.unwrap_err());
        assert_eq!(Arc::try_unwrap(shared).ok().unwrap().into_inner().0, 2);
    }

    /// An exclusive hold's registration lives in the mutex's core while its guard does
    /// (`InCore`, the one `unsafe` of the exclusive guards; under Miri too): registered
    /// by a thread, carried through `map` and a hand-over to another thread, given back
    /// by the guard's drop there; the next registration is its holder's own, and a
    /// thread that leaves holding the lock is named by the break.
    #[test]
    fn an_exclusive_holds_registration_lives_in_its_core() {
        let mutex = Arc::new(Mutex::new((0u8, 0u8)));
        let guard = mutex.clone().blocking_lock_owned().unwrap(); // registered to this thread
        // An owned guard may move: its acquirer is not recorded as the holder.
        assert_eq!(mutex.owner(), None);
        let mut mapped = OwnedMutexGuard::map(guard, |pair| &mut pair.1);
        let adopter = std::thread::spawn(move || {
            OwnedMappedMutexGuard::adopt(&mut mapped).unwrap(); // answers for it now
            *mapped += 1;
            current_owner()
        });
        let adopter = adopter.join().unwrap();
        assert!(!mutex.is_broken(), "released by its guard on {adopter}");
        let again = mutex.blocking_lock().unwrap();
        assert_eq!((again.1, mutex.owner()), (1, Some(current_owner())));
        drop(again);
        let leaver = std::thread::spawn({
            let mutex = mutex.clone();
            move || {
                std::mem::forget(mutex.blocking_lock().unwrap());
                current_owner()
            }
        });
        let leaver = leaver.join().unwrap();
        assert_eq!(mutex.statistics().broken().map(|e| e.owner()), Some(leaver));
    }

    #[test]
    fn tracked_owner_registers_and_exit_breaks() {
        let mutex = Arc::new(Mutex::new(0));
        let mut task = Box::pin(tracked({
            let mutex = mutex.clone();
            async move {
                std::mem::forget(mutex.lock().await.unwrap());
                std::future::pending::<()>().await;
            }
        }));
        let owner = task.owner();
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(mutex.owner(), Some(owner));
        drop(task); // cancelled while the leaked guard is registered
        assert!(mutex.is_broken());
        assert_eq!(mutex.statistics().broken().map(|e| e.owner()), Some(owner));
    }
}
