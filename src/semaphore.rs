//! `Semaphore`: the counted core with tokio's API.
//!
//! Each permit hold records its owner and its count, so a hold that outlives its owner
//! breaks the semaphore (or, with [`AbandonPolicy::Reclaim`], returns to the pool)
//! instead of shrinking capacity silently, which is what a leaked permit does in tokio
//! and Trio.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::core::{
    AbandonPolicy, CoreSnapshot, Hold, MAX_PERMITS, SemCore, acquire_permits, common_statistics,
};
use crate::error::{AcquireError, HandOverError, PrimitiveKind, RepairError, TryAcquireError};
use crate::info::PermitCounts;
use crate::owner::{Abandon, Caller, Site, caller_site};

/// A counting semaphore that knows who holds its permits.
///
/// Fair: waiters are served in FIFO order, and a large `acquire_many` at the head is not
/// starved by small requests behind it.
///
/// ```
/// use ownsync::Semaphore;
/// # futures::executor::block_on(async {
/// let sem = Semaphore::new(2);
/// let a = sem.acquire().await.unwrap();
/// let b = sem.try_acquire().unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop((a, b));
/// assert_eq!(sem.available_permits(), 2);
/// # });
/// ```
pub struct Semaphore {
    core: Arc<SemCore>,
}

impl Semaphore {
    /// The most permits a semaphore can hold (`usize::MAX >> 3`, as in tokio).
    pub const MAX_PERMITS: usize = MAX_PERMITS;

    /// A semaphore with `permits` permits and the default [`AbandonPolicy::Break`].
    ///
    /// # Panics
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// assert_eq!(ownsync::Semaphore::new(3).available_permits(), 3);
    /// ```
    #[track_caller]
    pub fn new(permits: usize) -> Self {
        Self::build(permits, None, AbandonPolicy::Break)
    }

    /// A semaphore with a name for error messages and `Debug`.
    ///
    /// ```
    /// assert_eq!(ownsync::Semaphore::with_name(3, "db").name(), Some("db"));
    /// ```
    #[track_caller]
    pub fn with_name(permits: usize, name: impl Into<Arc<str>>) -> Self {
        Self::build(permits, Some(name.into()), AbandonPolicy::Break)
    }

    /// A semaphore with the given abandon policy.
    ///
    /// ```
    /// use ownsync::{AbandonPolicy, Semaphore};
    /// let sem = Semaphore::with_policy(3, AbandonPolicy::Reclaim);
    /// assert_eq!(sem.policy(), AbandonPolicy::Reclaim);
    /// ```
    #[track_caller]
    pub fn with_policy(permits: usize, policy: AbandonPolicy) -> Self {
        Self::build(permits, None, policy)
    }

    /// A semaphore with a name and an abandon policy.
    ///
    /// ```
    /// use ownsync::{AbandonPolicy, Semaphore};
    /// let sem = Semaphore::with_name_and_policy(3, "db", AbandonPolicy::Reclaim);
    /// assert_eq!((sem.name(), sem.policy()), (Some("db"), AbandonPolicy::Reclaim));
    /// ```
    #[track_caller]
    pub fn with_name_and_policy(permits: usize, name: impl Into<Arc<str>>, policy: AbandonPolicy) -> Self {
        Self::build(permits, Some(name.into()), policy)
    }

    #[track_caller]
    fn build(permits: usize, name: Option<Arc<str>>, policy: AbandonPolicy) -> Self {
        let core = Arc::new(SemCore::new(permits, PrimitiveKind::Semaphore, name, policy));
        crate::diagnostics::track(&core);
        Semaphore { core }
    }

    fn primitive(&self) -> Arc<dyn Abandon> {
        self.core.clone()
    }

    fn try_acquire_hold(&self, permits: usize, moves: bool, site: Site) -> Result<Hold, TryAcquireError> {
        self.core.try_acquire(permits, Caller::Async)?;
        Ok(self.core.register(permits, Caller::Async, &self.core, moves, site))
    }

    /// Free permits right now. A snapshot: `try_acquire` decides.
    ///
    /// ```
    /// assert_eq!(ownsync::Semaphore::new(1).available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.core.available()
    }

    /// Adds `n` permits, handing them to queued waiters first (FIFO). On a broken
    /// semaphore they are kept for its [`try_repair`](Self::try_repair).
    ///
    /// # Panics
    /// If the total would exceed [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        self.core.add_pool_permits(n);
    }

    /// Removes up to `n` free permits; returns how many it removed. Held permits are
    /// untouched.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(3);
    /// assert_eq!(sem.forget_permits(5), 3);
    /// ```
    pub fn forget_permits(&self, n: usize) -> usize {
        self.core.forget_pool_permits(n)
    }

    /// Acquires one permit, waiting in FIFO order. Cancel-safe.
    ///
    /// # Errors
    /// `Closed` after [`close`](Self::close); `Broken` if a holder abandoned permits
    /// (with the default [`AbandonPolicy::Break`]), until [`try_repair`](Self::try_repair).
    /// Where tokio's acquire fails only once closed, this one can also fail with
    /// `Broken`: code ported with `.unwrap()` should handle it (or use `Reclaim`).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let sem = ownsync::Semaphore::new(1);
    /// let permit = sem.acquire().await.unwrap();
    /// assert_eq!(permit.num_permits(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<SemaphorePermit<'_>, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, false, site);
            Ok(SemaphorePermit { sem: self, permits: 1, hold })
        }
    }

    /// Acquires `n` permits at once, waiting in FIFO order.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let sem = ownsync::Semaphore::new(5);
    /// let permit = sem.acquire_many(3).await.unwrap();
    /// assert_eq!(sem.available_permits(), 2);
    /// # drop(permit);
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_many(&self, n: u32) -> impl Future<Output = Result<SemaphorePermit<'_>, AcquireError>> {
        let site = caller_site();
        async move {
            let permits = n as usize;
            acquire_permits!(self.core, permits, Caller::Async, site);
            let hold = self.core.register(permits, Caller::Async, &self.core, false, site);
            Ok(SemaphorePermit { sem: self, permits, hold })
        }
    }

    /// Acquires one permit without waiting.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(1);
    /// let _permit = sem.try_acquire().unwrap();
    /// assert_eq!(sem.try_acquire().unwrap_err(), ownsync::TryAcquireError::NoPermits);
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Acquires `n` permits without waiting (never ahead of queued waiters).
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(2);
    /// assert!(sem.try_acquire_many(3).is_err());
    /// assert!(sem.try_acquire_many(2).is_ok());
    /// ```
    #[track_caller]
    pub fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let permits = n as usize;
        let hold = self.try_acquire_hold(permits, false, caller_site())?;
        Ok(SemaphorePermit { sem: self, permits, hold })
    }

    /// Acquires one permit from synchronous code; outside a tracked task the thread owns it.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(1);
    /// let _permit = sem.blocking_acquire().unwrap();
    /// ```
    #[track_caller]
    pub fn blocking_acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.blocking_acquire_many(1)
    }

    /// Acquires `n` permits from synchronous code.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(2);
    /// assert_eq!(sem.blocking_acquire_many(2).unwrap().num_permits(), 2);
    /// ```
    #[track_caller]
    pub fn blocking_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, AcquireError> {
        let permits = n as usize;
        let hold = self.core.blocking_hold(permits, Caller::Blocking, false, caller_site())?;
        Ok(SemaphorePermit { sem: self, permits, hold })
    }

    /// Like [`acquire`](Self::acquire), with a permit that keeps the semaphore alive.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire): `Closed`, or `Broken` until
    /// [`try_repair`](Self::try_repair), so `acquire_owned().await.unwrap()`, which
    /// cannot fail on tokio's semaphore unless closed, can fail here.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let sem = Arc::new(ownsync::Semaphore::new(1));
    /// let permit = sem.clone().acquire_owned().await.unwrap();
    /// assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_owned(
        self: Arc<Self>,
    ) -> impl Future<Output = Result<OwnedSemaphorePermit, AcquireError>> {
        let site = caller_site();
        async move {
            acquire_permits!(self.core, 1, Caller::Async, site);
            let hold = self.core.register(1, Caller::Async, &self.core, true, site);
            Ok(OwnedSemaphorePermit { sem: self, permits: 1, hold })
        }
    }

    /// Like [`acquire_many`](Self::acquire_many), with an owned permit.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(3));
    /// assert_eq!(sem.acquire_many_owned(2).await.unwrap().num_permits(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_many_owned(
        self: Arc<Self>,
        n: u32,
    ) -> impl Future<Output = Result<OwnedSemaphorePermit, AcquireError>> {
        let site = caller_site();
        async move {
            let permits = n as usize;
            acquire_permits!(self.core, permits, Caller::Async, site);
            let hold = self.core.register(permits, Caller::Async, &self.core, true, site);
            Ok(OwnedSemaphorePermit { sem: self, permits, hold })
        }
    }

    /// Like [`try_acquire`](Self::try_acquire), with an owned permit.
    ///
    /// ```
    /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(1));
    /// assert!(sem.try_acquire_owned().is_ok());
    /// ```
    #[track_caller]
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Like [`try_acquire_many`](Self::try_acquire_many), with an owned permit.
    ///
    /// ```
    /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(2));
    /// assert!(sem.try_acquire_many_owned(2).is_ok());
    /// ```
    #[track_caller]
    pub fn try_acquire_many_owned(self: Arc<Self>, n: u32) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let permits = n as usize;
        let hold = self.try_acquire_hold(permits, true, caller_site())?;
        Ok(OwnedSemaphorePermit { sem: self, permits, hold })
    }

    /// Like [`blocking_acquire`](Self::blocking_acquire), with an owned permit.
    ///
    /// ```
    /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(1));
    /// assert!(sem.blocking_acquire_owned().is_ok());
    /// ```
    #[track_caller]
    pub fn blocking_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.blocking_acquire_many_owned(1)
    }

    /// Like [`blocking_acquire_many`](Self::blocking_acquire_many), with an owned permit.
    ///
    /// ```
    /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(2));
    /// assert_eq!(sem.blocking_acquire_many_owned(2).unwrap().num_permits(), 2);
    /// ```
    #[track_caller]
    pub fn blocking_acquire_many_owned(
        self: Arc<Self>,
        n: u32,
    ) -> Result<OwnedSemaphorePermit, AcquireError> {
        let permits = n as usize;
        let hold = self.core.blocking_hold(permits, Caller::Blocking, true, caller_site())?;
        Ok(OwnedSemaphorePermit { sem: self, permits, hold })
    }

    /// Closes the semaphore: queued waiters and every later acquire get `Closed`.
    /// Permits already held stay valid.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(1);
    /// sem.close();
    /// assert!(sem.is_closed());
    /// assert_eq!(sem.try_acquire().unwrap_err(), ownsync::TryAcquireError::Closed);
    /// ```
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// assert!(!ownsync::Semaphore::new(1).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Whether a holder abandoned permits and broke the semaphore. It stays broken until
    /// [`try_repair`](Self::try_repair).
    ///
    /// ```
    /// assert!(!ownsync::Semaphore::new(1).is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        self.core.is_broken()
    }

    /// Makes a broken semaphore work again, and returns how many permits went back to
    /// the pool.
    ///
    /// Every permit abandoned since the break (its owner exited holding it) is **given
    /// back**, not written off, and so is every permit released while it was broken
    /// (a broken semaphore grants nothing, so those were kept aside). An abandoned permit
    /// whose owner is gone is gone for good; one that was leaked but is still reachable
    /// cannot be told apart from it, and a semaphore guards no data, so giving it back
    /// is safe: that permit's drop releases nothing, so it is never counted twice.
    /// Permits held by live holders at the break stay theirs and come back when
    /// released. Acquires succeed again from now on; the waiters the break woke keep
    /// their `Broken` error. A semaphore broken again later can be repaired again.
    ///
    /// # Errors
    /// [`RepairError::NotBroken`] if the semaphore is not broken (nothing is changed).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ownsync::{RepairError, Semaphore, tracked};
    /// # futures::executor::block_on(async {
    /// let pool = Arc::new(Semaphore::new(2));
    /// // A task leaks a permit: the semaphore breaks.
    /// tracked(async { pool.acquire().await.unwrap().forget() }).await;
    /// tracked({
    ///     let pool = pool.clone();
    ///     async move { std::mem::forget(pool.acquire().await.unwrap()) }
    /// })
    /// .await;
    /// assert!(pool.is_broken() && pool.try_acquire().is_err());
    /// assert_eq!(pool.try_repair(), Ok(1)); // the leaked permit is back
    /// assert_eq!(pool.available_permits(), 1); // the forgotten one stays forgotten
    /// assert!(pool.acquire().await.is_ok());
    /// assert_eq!(pool.try_repair(), Err(RepairError::NotBroken));
    /// # });
    /// ```
    pub fn try_repair(&self) -> Result<usize, RepairError> {
        self.core.repair_counted()
    }

    /// The abandon policy chosen at construction.
    ///
    /// ```
    /// assert_eq!(ownsync::Semaphore::new(1).policy(), ownsync::AbandonPolicy::Break);
    /// ```
    pub fn policy(&self) -> AbandonPolicy {
        self.core.policy()
    }

    /// The name given at construction.
    ///
    /// ```
    /// assert_eq!(ownsync::Semaphore::new(1).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.core.name()
    }

    /// A snapshot of the semaphore's state.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(2);
    /// let stats = sem.statistics();
    /// assert_eq!((stats.available(), stats.waiters()), (2, 0));
    /// ```
    pub fn statistics(&self) -> SemaphoreStatistics {
        let core = self.core.snapshot();
        let mut permits = self.core.permit_counts();
        permits.listed = core.orphans.iter().map(|orphan| orphan.permits).sum();
        SemaphoreStatistics { core, permits }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.statistics();
        let mut out = f.debug_struct("Semaphore");
        if let Some(name) = self.name() {
            out.field("name", &name);
        }
        let permits = stats.permits();
        out.field("permits", &format_args!("{permits}"));
        if permits.held() > 0 {
            // Who holds them is not kept per semaphore (see `PermitCounts::unlisted`):
            // the held count, and the orphans by name; the process-wide snapshot lists
            // the holds it can find.
            out.field("held", &permits.held());
        }
        if !stats.orphans().is_empty() {
            out.field("orphaned", &crate::debug::ShowOrphans(stats.orphans()));
        }
        out.field("waiters", &stats.waiters());
        if stats.is_closed() {
            out.field("closed", &true);
        }
        if let Some(broken) = stats.broken() {
            crate::debug::broken_fields(&mut out, broken);
        }
        out.finish()
    }
}

/// A snapshot of a [`Semaphore`]'s state. Never decide on it: `try_acquire` decides.
///
/// ```
/// let sem = ownsync::Semaphore::new(1);
/// assert!(!sem.statistics().is_closed());
/// ```
#[derive(Clone)]
pub struct SemaphoreStatistics {
    core: CoreSnapshot,
    permits: PermitCounts,
}

impl fmt::Debug for SemaphoreStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("SemaphoreStatistics");
        out.field("permits", &self.permits);
        crate::debug::core_fields(&mut out, &self.core);
        out.finish()
    }
}

impl SemaphoreStatistics {
    /// Free, total and held permits, and how many held ones no orphan accounts for (a
    /// semaphore does not list its holders: see [`PermitCounts::unlisted`]). Displays as
    /// `k of n available`.
    ///
    /// ```
    /// let sem = ownsync::Semaphore::new(3);
    /// let _permit = sem.try_acquire_many(2).unwrap();
    /// sem.add_permits(1);
    /// let counts = sem.statistics().permits();
    /// assert_eq!((counts.available(), counts.total(), counts.held()), (2, 4, 2));
    /// assert_eq!(counts.to_string(), "2 of 4 available");
    /// ```
    pub fn permits(&self) -> PermitCounts {
        self.permits
    }
    /// Free permits.
    pub fn available(&self) -> usize {
        self.core.available
    }
    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.core.closed
    }
}

common_statistics!(SemaphoreStatistics);

macro_rules! permit_common {
    ($permit:ident $(<$lt:lifetime>)?, |$this:ident| $sem:expr) => {
        impl $(<$lt>)? $permit $(<$lt>)? {
            /// Gives the permits up without returning them to the semaphore.
            pub fn forget(mut self) {
                let primitive = { let $this = &self; let sem: &Semaphore = $sem; sem.primitive() };
                let live = std::mem::take(&mut self.hold).forget_live(|| primitive);
                let sem: &Semaphore = { let $this = &self; $sem };
                if live {
                    // Gone for good: no longer part of the semaphore's total (permits
                    // its owner's exit abandoned are counted as the abandonment said).
                    sem.core.give_up_held(self.permits);
                }
                self.permits = 0;
            }

            /// Hands these permits to `owner`: from now on that owner
            /// answers for them, so if it exits with them the semaphore breaks (or, with
            /// [`AbandonPolicy::Reclaim`](crate::AbandonPolicy::Reclaim), takes them
            /// back). For permits that move to another task or thread.
            ///
            /// # Errors
            /// [`HandOverError::OwnerGone`] if `owner` is not a live owner (the permits
            /// stay as they were); [`HandOverError::Abandoned`] if the previous owner's
            /// exit already abandoned them.
            ///
            /// ```
            /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(1));
            /// let mut permit = sem.clone().try_acquire_owned().unwrap();
            /// let worker = ownsync::tracked(std::future::pending::<()>());
            /// permit.hand_to(worker.owner()).unwrap();
            /// assert_eq!(permit.owner(), Some(worker.owner()));
            /// drop(worker); // cancelled while it answers for the permit
            /// assert!(sem.is_broken());
            /// ```
            #[track_caller]
            pub fn hand_to(&mut self, owner: crate::id::OwnerId) -> Result<(), HandOverError> {
                let sem: &Semaphore = { let $this = &*self; $sem };
                let primitive = sem.primitive();
                self.hold.hand_to(owner, self.permits, || primitive.clone(), caller_site())
            }

            /// [`hand_to`](Self::hand_to) the current owner: for the task (or thread)
            /// that received the permits, to answer for them from now on.
            ///
            /// ```
            /// let sem = std::sync::Arc::new(ownsync::Semaphore::new(1));
            /// let mut permit = sem.clone().try_acquire_owned().unwrap();
            /// let task = ownsync::tracked(async move {
            ///     permit.adopt().unwrap();
            ///     assert_eq!(permit.owner(), Some(ownsync::current_owner()));
            /// });
            /// futures::executor::block_on(task);
            /// assert_eq!(sem.available_permits(), 1);
            /// ```
            #[track_caller]
            pub fn adopt(&mut self) -> Result<(), HandOverError> {
                self.hand_to(crate::owner::current_owner())
            }

            /// The owner answering for these permits: a tracked task or thread that took
            /// them borrowed or was handed them; for an owned permit not handed over,
            /// its acquirer. `None` if anonymous, or once abandoned.
            pub fn owner(&self) -> Option<crate::id::OwnerId> {
                self.hold.answering_owner()
            }

            /// How many permits this holds.
            pub fn num_permits(&self) -> usize {
                self.permits
            }

            /// Moves `n` of these permits into a new permit; `None` if it holds fewer.
            ///
            /// If the owner these permits were registered to has exited meanwhile (so
            /// they were abandoned: broken, or reclaimed by the pool), both permits hold
            /// 0 afterwards: there is nothing left to split or to release.
            pub fn split(&mut self, n: usize) -> Option<Self> {
                let remaining = self.permits.checked_sub(n)?;
                let mut mine = std::mem::take(&mut self.hold);
                let sem: &Semaphore = { let $this = &*self; $sem };
                let split = mine.split_off(remaining, n, || sem.primitive());
                self.hold = mine;
                let (remaining, n, hold) = match split {
                    Some(hold) => (remaining, n, hold),
                    None => (0, 0, Default::default()),
                };
                self.permits = remaining;
                Some(Self { sem: self.sem.clone(), permits: n, hold })
            }

            /// Absorbs `other`'s permits.
            ///
            /// # Panics
            /// If `other` is from a different semaphore.
            #[track_caller]
            pub fn merge(&mut self, mut other: Self) {
                let same = { let $this = &*self; let a: &Semaphore = $sem; let $this = &other; let b: &Semaphore = $sem; std::ptr::eq(a, b) };
                assert!(same, "merging permits from different semaphore instances");
                let mut mine = std::mem::take(&mut self.hold);
                let sem: &Semaphore = { let $this = &*self; $sem };
                let theirs = std::mem::take(&mut other.hold);
                self.permits = mine.merge(self.permits, theirs, other.permits, || sem.primitive());
                self.hold = mine;
                other.permits = 0;
            }
        }

        impl $(<$lt>)? crate::tracked::HandOver for $permit $(<$lt>)? {
            #[track_caller]
            fn hand_to(&mut self, owner: crate::id::OwnerId) -> Result<(), HandOverError> {
                $permit::hand_to(self, owner)
            }
        }

        impl $(<$lt>)? Drop for $permit $(<$lt>)? {
            #[inline]
            fn drop(&mut self) {
                let hold = std::mem::take(&mut self.hold);
                let $this = &*self;
                let sem: &Semaphore = $sem;
                sem.core.end_hold(hold, self.permits);
            }
        }

        impl $(<$lt>)? fmt::Debug for $permit $(<$lt>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($permit))
                    .field("permits", &self.permits)
                    .field("owner", &self.hold.owner_id())
                    .finish()
            }
        }
    };
}

/// Permits borrowed from a [`Semaphore`]; dropping it returns them.
///
/// ```
/// let sem = ownsync::Semaphore::new(4);
/// let mut permit = sem.try_acquire_many(3).unwrap();
/// let one = permit.split(1).unwrap();
/// assert_eq!((permit.num_permits(), one.num_permits()), (2, 1));
/// permit.merge(one);
/// assert_eq!(permit.num_permits(), 3);
/// permit.forget();
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "dropping the permit returns it immediately"]
#[clippy::has_significant_drop]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
    hold: Hold,
}

permit_common!(SemaphorePermit<'a>, |p| p.sem);

/// Permits that keep their [`Semaphore`] alive through an `Arc` (`'static`).
///
/// ```
/// use std::sync::Arc;
/// let sem = Arc::new(ownsync::Semaphore::new(1));
/// let permit = sem.clone().try_acquire_owned().unwrap();
/// std::thread::spawn(move || drop(permit)).join().unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "dropping the permit returns it immediately"]
#[clippy::has_significant_drop]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    permits: usize,
    hold: Hold,
}

permit_common!(OwnedSemaphorePermit, |p| &p.sem);

impl OwnedSemaphorePermit {
    /// The semaphore these permits belong to.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(ownsync::Semaphore::new(1));
    /// let permit = sem.clone().try_acquire_owned().unwrap();
    /// assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    /// ```
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}
