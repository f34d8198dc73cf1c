//! `CapacityLimiter`: the counted core plus a borrower set (Trio's and anyio's limiter).
//!
//! One token per explicit borrower (`acquire_on_behalf_of`): a borrower that already
//! holds a token, *or already waits for one*, gets `WouldDeadlock` at once (Trio checks
//! holders only). `acquire()` borrows for the call: sub-futures of one
//! task each take a token of their own, all tied to the task's exit. A token is handed to a
//! waiter at wake time by the core, from what is actually free, never from a delta
//! (anyio's over-grant bug). Shrinking the total never revokes: the core keeps the
//! difference as debt that releases pay off first.
//!
//! Why an anonymous borrow is not in the borrower set until named: outside any owner
//! nobody answers for a token and nobody knows its id, so the set has nothing to check
//! or find; keeping it there anyway took the set's lock twice per borrow, more than the
//! borrow itself (2.3x a semaphore permit). Such a token is counted by the core alone
//! (how many are borrowed is `total + debt - free`, read under the core's lock) and
//! enters the set when its id is first asked for.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::block::block_on;
use crate::core::{AbandonPolicy, CoreSnapshot, Hold, SemCore, acquire_permits, common_statistics};
use crate::error::{AcquireError, PrimitiveKind, ReleaseError, RepairError, TryAcquireError};
use crate::info::{HoldInfo, PermitCounts};
use crate::loom::Mutex;
use crate::lot::GrantClaim;
use crate::owner::{
    Abandon, Caller, OwnerGone, OwnerId, Site, caller_site, can_exit, is_live_owner, owner_id_for,
};
use std::sync::atomic::Ordering::{Relaxed, Release};

mod borrowers;
#[cfg(feature = "tower")]
pub(crate) mod request;
mod token;

use borrowers::*;
pub use token::CapacityToken;
use token::*;

/// Limits how many borrowers may proceed at once, one token each (Trio's
/// `CapacityLimiter`), and knows who they are.
///
/// ```
/// use ownsync::CapacityLimiter;
/// # futures::executor::block_on(ownsync::tracked(async {
/// let limiter = CapacityLimiter::new(2);
/// let token = limiter.acquire().await.unwrap();
/// assert_eq!(limiter.borrowed_tokens(), 1);
/// assert_eq!(token.borrower(), ownsync::current_owner()); // the tracked task
/// drop(token);
/// assert_eq!(limiter.available_tokens(), 2);
/// # }));
/// ```
pub struct CapacityLimiter {
    inner: Arc<LimiterInner>,
}

/// Another handle to the same limiter (as cloning an `Arc` would be): clones share the
/// tokens, the borrowers and the broken state.
///
/// ```
/// let limiter = ownsync::CapacityLimiter::new(1);
/// let handle = limiter.clone();
/// let _token = handle.try_acquire().unwrap();
/// assert_eq!(limiter.available_tokens(), 0);
/// ```
impl Clone for CapacityLimiter {
    fn clone(&self) -> Self {
        CapacityLimiter { inner: self.inner.clone() }
    }
}

impl CapacityLimiter {
    /// A limiter with `total_tokens` tokens (0 is allowed: it admits nobody until raised).
    ///
    /// # Panics
    /// If `total_tokens` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(3).total_tokens(), 3);
    /// ```
    #[track_caller]
    pub fn new(total_tokens: usize) -> Self {
        Self::build(total_tokens, None, AbandonPolicy::Break)
    }

    /// A limiter with a name (for errors and `Debug`) and an abandon policy.
    ///
    /// ```
    /// use ownsync::{AbandonPolicy, CapacityLimiter};
    /// let limiter = CapacityLimiter::with_name_and_policy(3, "workers", AbandonPolicy::Reclaim);
    /// assert_eq!((limiter.name(), limiter.policy()), (Some("workers"), AbandonPolicy::Reclaim));
    /// ```
    #[track_caller]
    pub fn with_name_and_policy(
        total_tokens: usize,
        name: impl Into<Arc<str>>,
        policy: AbandonPolicy,
    ) -> Self {
        Self::build(total_tokens, Some(name.into()), policy)
    }

    /// A limiter with the given abandon policy.
    ///
    /// ```
    /// use ownsync::{AbandonPolicy, CapacityLimiter};
    /// assert_eq!(CapacityLimiter::with_policy(1, AbandonPolicy::Reclaim).policy(), AbandonPolicy::Reclaim);
    /// ```
    #[track_caller]
    pub fn with_policy(total_tokens: usize, policy: AbandonPolicy) -> Self {
        Self::build(total_tokens, None, policy)
    }

    #[track_caller]
    fn build(total: usize, name: Option<Arc<str>>, policy: AbandonPolicy) -> Self {
        let core = SemCore::new(total, PrimitiveKind::CapacityLimiter, name, policy);
        let inner = Arc::new(LimiterInner { core, borrowers: Mutex::new(Borrowers::default()) });
        crate::diagnostics::track(&inner);
        CapacityLimiter { inner }
    }

    /// The key a borrow is recorded under, checked in the locked borrower map: an
    /// explicit borrower's id (`WouldDeadlock` if it already holds or waits, or
    /// `OwnerGone` if it names an owner that exited); for a call, the caller's owner if
    /// it borrows nothing here yet (so a task's one token has `borrower() ==
    /// current_owner()`, as in Trio), else a fresh id of its own.
    fn key_for(
        borrowers: &Borrowers,
        borrower: Borrower,
        caller: Caller,
    ) -> Result<OwnerId, TryAcquireError> {
        match borrower {
            Borrower::Explicit(id) if borrowers.contains(id) => Err(TryAcquireError::WouldDeadlock),
            Borrower::Explicit(id)
                if can_exit(id) && owner_id_for(caller) != Some(id) && !is_live_owner(id) =>
            {
                Err(TryAcquireError::OwnerGone(id))
            }
            Borrower::Explicit(id) => Ok(id),
            Borrower::Call => Ok(owner_id_for(caller)
                .filter(|&me| !borrowers.contains(me))
                .unwrap_or_else(OwnerId::next_anonymous)),
        }
    }

    /// Records a borrow as waiting, under the key [`key_for`](Self::key_for) gives.
    fn begin(&self, borrower: Borrower, caller: Caller) -> Result<PendingBorrow<'_>, AcquireError> {
        let mut borrowers = self.inner.borrowers.lock();
        let key = Self::key_for(&borrowers, borrower, caller).map_err(|err| match err {
            TryAcquireError::OwnerGone(id) => AcquireError::OwnerGone(id),
            _ => AcquireError::WouldDeadlock,
        })?;
        let claim = Arc::new(GrantClaim::new());
        let slot = borrowers.insert(key, Borrow::Pending(claim.clone()));
        Ok(PendingBorrow { limiter: self, borrower: key, slot, claim, armed: true })
    }

    /// The token is ours (taken at once, or granted): register it and record the borrow.
    /// If it was released on the borrower's behalf since the grant, the token returned
    /// is already given back (its drop releases nothing).
    fn finish(
        &self,
        mut pending: PendingBorrow<'_>,
        borrower: Borrower,
        caller: Caller,
        site: Site,
    ) -> Result<CapacityToken<'_>, AcquireError> {
        let hold = self.hold_for(borrower, caller, site);
        pending.armed = false;
        let mut borrowers = self.inner.borrowers.lock();
        if !borrowers.is_pending_with(pending.slot, &pending.claim) {
            // Granted, then released on the borrower's behalf: nothing is ours to keep.
            drop(borrowers);
            let gone = BorrowRef::named(pending.borrower, pending.slot, GONE);
            return match hold {
                Ok(hold) => {
                    hold.forget(|| self.inner.clone() as Arc<dyn Abandon>);
                    Ok(CapacityToken { limiter: LimiterRef::Borrowed(self), borrow: gone })
                }
                Err(gone) => Err(AcquireError::OwnerGone(gone.0)),
            };
        }
        // Ours from here: taken from the queue's grant (if it came that way) for good.
        pending.claim.take_grant();
        let hold = match hold {
            Ok(hold) => hold,
            Err(gone) => {
                // The borrower exited while we waited: give the token back untouched.
                borrowers.remove(pending.slot);
                drop(borrowers);
                self.inner.core.release(1);
                return Err(AcquireError::OwnerGone(gone.0));
            }
        };
        let generation = Self::next_generation(&mut borrowers);
        borrowers.slots[pending.slot].1 = Borrow::Holding { generation, hold, site };
        Ok(CapacityToken {
            limiter: LimiterRef::Borrowed(self),
            borrow: BorrowRef::named(pending.borrower, pending.slot, generation),
        })
    }

    /// The hold of a token just taken by `caller`: tied to the caller's owner for a
    /// call; for an explicit borrower, to that owner's exit if it is a live owner (an
    /// anonymous id stays untied).
    fn hold_for(&self, borrower: Borrower, caller: Caller, site: Site) -> Result<Hold, OwnerGone> {
        match borrower {
            Borrower::Explicit(id) if owner_id_for(caller) != Some(id) => {
                if can_exit(id) {
                    Hold::registered_to(id, 1, self.inner.clone(), site)
                } else {
                    Ok(Hold::default())
                }
            }
            _ => Ok(self.inner.core.register(1, caller, &self.inner, false, site)),
        }
    }

    /// Records that `borrower` holds a token (in the locked borrower set).
    fn record(
        &self,
        borrowers: &mut Borrowers,
        borrower: OwnerId,
        hold: Hold,
        site: Site,
    ) -> CapacityToken<'_> {
        let generation = Self::next_generation(borrowers);
        let slot = borrowers.insert(borrower, Borrow::Holding { generation, hold, site });
        CapacityToken {
            limiter: LimiterRef::Borrowed(self),
            borrow: BorrowRef::named(borrower, slot, generation),
        }
    }

    /// Whether an acquire borrows anonymously: a call (`acquire()`) outside any owner.
    /// Nobody answers for such a borrow and nobody can know its id yet, so it starts
    /// unnamed (see [`BorrowRef`]).
    fn is_anonymous_call(borrower: Borrower, caller: Caller) -> bool {
        matches!(borrower, Borrower::Call) && owner_id_for(caller).is_none()
    }

    /// The token of a borrow just taken that starts unnamed.
    fn unnamed_token(&self) -> CapacityToken<'_> {
        CapacityToken { limiter: LimiterRef::Borrowed(self), borrow: BorrowRef::unnamed() }
    }

    /// Borrows a token for nobody, whoever `caller` is: anonymous and untied, and unnamed
    /// until asked. An anonymous call's borrow, and the tower layer's for a request,
    /// whose token moves into the response future.
    pub(crate) async fn acquire_unnamed(
        &self,
        caller: Caller,
        site: Site,
    ) -> Result<CapacityToken<'_>, AcquireError> {
        acquire_permits!(self.inner.core, 1, caller, site);
        Ok(self.unnamed_token())
    }

    /// Names an unnamed borrow: a fresh anonymous id and an entry in the borrower set,
    /// under the set's lock (so two namings through `&token` agree). Returns its id.
    fn name_borrow(&self, borrow: &BorrowRef) -> OwnerId {
        let mut borrowers = self.inner.borrowers.lock();
        if let Some(id) = OwnerId::from_u64(borrow.borrower.load(Relaxed)) {
            return id; // named meanwhile, under this lock
        }
        let id = OwnerId::next_anonymous();
        let generation = Self::next_generation(&mut borrowers);
        let slot = borrowers.insert(id, Borrow::Holding { generation, hold: Hold::default(), site: None });
        borrow.slot.store(slot, Relaxed);
        borrow.generation.store(generation, Relaxed);
        borrow.borrower.store(id.as_u64(), Release);
        id
    }

    /// A generation for a new holding borrow: it tells the borrow from a later one in
    /// the same slot.
    fn next_generation(borrowers: &mut Borrowers) -> u64 {
        let generation = borrowers.next_generation;
        borrowers.next_generation += 1;
        generation
    }

    async fn acquire_for(
        &self,
        borrower: Borrower,
        caller: Caller,
        site: Site,
    ) -> Result<CapacityToken<'_>, AcquireError> {
        if Self::is_anonymous_call(borrower, caller) {
            let token = self.acquire_unnamed(caller, site).await?;
            self.inner.core.note_anonymous_hold(site);
            return Ok(token);
        }
        let pending = self.begin(borrower, caller)?;
        // As `acquire_permits!`, with the grant claimed by the borrow's entry.
        let core = &self.inner.core;
        if !core.take_uncontended(1).await {
            core.acquire(1, caller, site).claimed_by(pending.claim.clone()).await?;
        }
        self.finish(pending, borrower, caller, site)
    }

    /// Without waiting, nobody can see a pending borrow: the check, the take and the
    /// record happen under one lock of the borrower map.
    fn try_acquire_for(&self, borrower: Borrower, site: Site) -> Result<CapacityToken<'_>, TryAcquireError> {
        let caller = Caller::Async;
        if Self::is_anonymous_call(borrower, caller) {
            self.inner.core.try_acquire(1, caller)?;
            self.inner.core.note_anonymous_hold(site);
            return Ok(self.unnamed_token());
        }
        let mut borrowers = self.inner.borrowers.lock();
        let key = Self::key_for(&borrowers, borrower, caller)?;
        self.inner.core.try_acquire(1, caller)?;
        let hold = self.hold_for(borrower, caller, site).map_err(|OwnerGone(id)| {
            self.inner.core.release(1);
            TryAcquireError::OwnerGone(id)
        })?;
        Ok(self.record(&mut borrowers, key, hold, site))
    }

    /// Borrows a token for this call, waiting in FIFO order (a limiter's `acquire()`
    /// borrows for the call, not for the task). Inside a tracked task the token is tied to the
    /// task's exit, and its borrower is the task (`current_owner()`) unless the task
    /// already borrows here (a sibling sub-future): then the call borrows under an id
    /// of its own, still tied to the task. Outside a tracked task the borrow is
    /// anonymous, under a fresh id. Never `WouldDeadlock`: Trio's one-token-per-borrower
    /// rule is [`acquire_on_behalf_of`](Self::acquire_on_behalf_of)'s.
    ///
    /// # Errors
    /// `Broken` if a borrower abandoned its token (with the default policy), until
    /// [`try_repair`](Self::try_repair).
    ///
    /// ```
    /// # futures::executor::block_on(ownsync::tracked(async {
    /// let limiter = ownsync::CapacityLimiter::new(2);
    /// let first = limiter.acquire().await.unwrap();
    /// let second = limiter.acquire().await.unwrap(); // another sub-future's, say
    /// assert_eq!(first.borrower(), ownsync::current_owner());
    /// assert_ne!(second.borrower(), first.borrower());
    /// # }));
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<CapacityToken<'_>, AcquireError>> {
        let site = caller_site();
        async move { self.acquire_for(Borrower::Call, Caller::Async, site).await }
    }

    /// Borrows a token on behalf of `borrower` (for example a worker the caller hands the
    /// job to; Trio's `acquire_on_behalf_of`). If `borrower` is a live owner (a tracked
    /// task, by the id `Tracked::owner` gave, or a thread) the token is tied to *its*
    /// exit: if it exits still holding the token, the limiter breaks. Any other id (an
    /// anonymous borrower's) stays untied.
    ///
    /// # Errors
    /// `WouldDeadlock` at once if `borrower` already holds or awaits a token here;
    /// `OwnerGone` at once (nothing taken) if `borrower` names an owner that exited.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let worker = ownsync::tracked(std::future::pending::<()>());
    /// let token = limiter.acquire_on_behalf_of(worker.owner()).await.unwrap();
    /// assert_eq!(limiter.statistics().borrowers(), [worker.owner()]);
    /// token.detach(); // the worker is to release it...
    /// drop(worker); // ...but is cancelled first
    /// assert!(limiter.is_broken());
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_on_behalf_of(
        &self,
        borrower: OwnerId,
    ) -> impl Future<Output = Result<CapacityToken<'_>, AcquireError>> {
        let site = caller_site();
        async move { self.acquire_for(Borrower::Explicit(borrower), Caller::Async, site).await }
    }

    /// Borrows a token for the current owner without waiting (anonymous outside a
    /// tracked task, as for [`acquire`](Self::acquire)).
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(0);
    /// assert_eq!(limiter.try_acquire().unwrap_err(), ownsync::TryAcquireError::NoPermits);
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> Result<CapacityToken<'_>, TryAcquireError> {
        self.try_acquire_for(Borrower::Call, caller_site())
    }

    /// Borrows a token on behalf of `borrower` without waiting.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let id = ownsync::current_owner();
    /// let token = limiter.try_acquire_on_behalf_of(id).unwrap();
    /// assert_eq!(token.borrower(), id);
    /// ```
    #[track_caller]
    pub fn try_acquire_on_behalf_of(&self, borrower: OwnerId) -> Result<CapacityToken<'_>, TryAcquireError> {
        self.try_acquire_for(Borrower::Explicit(borrower), caller_site())
    }

    /// Borrows a token from synchronous code; outside a tracked task the thread borrows.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let token = limiter.blocking_acquire().unwrap();
    /// assert_eq!(token.borrower(), ownsync::current_owner());
    /// ```
    #[track_caller]
    pub fn blocking_acquire(&self) -> Result<CapacityToken<'_>, AcquireError> {
        block_on(self.acquire_for(Borrower::Call, Caller::Blocking, caller_site()))
    }

    /// [`blocking_acquire`](Self::blocking_acquire) on behalf of `borrower`.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(2);
    /// let worker = ownsync::tracked(async {}); // alive until dropped
    /// assert!(limiter.blocking_acquire_on_behalf_of(worker.owner()).is_ok());
    /// let gone = worker.owner();
    /// drop(worker); // exited: nothing is taken on its behalf any more
    /// assert_eq!(limiter.blocking_acquire_on_behalf_of(gone).unwrap_err(), ownsync::AcquireError::OwnerGone(gone));
    /// ```
    #[track_caller]
    pub fn blocking_acquire_on_behalf_of(
        &self,
        borrower: OwnerId,
    ) -> Result<CapacityToken<'_>, AcquireError> {
        block_on(self.acquire_for(Borrower::Explicit(borrower), Caller::Blocking, caller_site()))
    }

    /// Releases `borrower`'s token (one kept with [`CapacityToken::detach`], or one whose
    /// guard is still alive: the guard's drop then does nothing). A token handed to a
    /// queued borrower is its borrower's from the hand-off, so it can be released here
    /// before the borrower's acquire runs again; that acquire then returns a token already
    /// given back (as a released guard's, its drop does nothing).
    ///
    /// # Errors
    /// [`ReleaseError::NotHeld`] if `borrower` holds no token here.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let token = limiter.try_acquire().unwrap();
    /// let id = token.borrower();
    /// token.detach();
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// limiter.release_on_behalf_of(id).unwrap();
    /// assert_eq!(limiter.release_on_behalf_of(id), Err(ownsync::ReleaseError::NotHeld));
    /// ```
    pub fn release_on_behalf_of(&self, borrower: OwnerId) -> Result<(), ReleaseError> {
        let hold = {
            let mut borrowers = self.inner.borrowers.lock();
            let slot = borrowers.find(borrower).ok_or(ReleaseError::NotHeld)?;
            match borrowers.take_holding(slot, None) {
                Some(hold) => hold,
                // Granted a token its acquire has not collected yet: it is the
                // borrower's, so released here; the acquire returns a spent token.
                None if borrowers.take_granted(slot) => Hold::default(),
                None => return Err(ReleaseError::NotHeld),
            }
        };
        self.inner.core.end_hold(hold, 1);
        Ok(())
    }

    /// Runs `f` on the hold of the borrow in `slot` if it is still the one `generation`
    /// names, under the borrower set's lock.
    fn with_hold<R>(
        &self,
        slot: usize,
        generation: u64,
        f: impl FnOnce(&mut Hold, &dyn Fn() -> Arc<dyn Abandon>) -> R,
    ) -> Option<R> {
        let mut borrowers = self.inner.borrowers.lock();
        let hold = borrowers.holding_at(slot, Some(generation))?;
        Some(f(hold, &|| self.inner.clone() as Arc<dyn Abandon>))
    }

    /// Ends the holding borrow in `slot` if it is still the one `generation` names.
    fn release_borrow(&self, slot: usize, generation: u64) -> Option<()> {
        let hold = self.inner.borrowers.lock().take_holding(slot, Some(generation))?;
        self.inner.core.end_hold(hold, 1);
        Some(())
    }

    /// The number of tokens.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(4).total_tokens(), 4);
    /// ```
    pub fn total_tokens(&self) -> usize {
        self.inner.core.pool().0
    }

    /// Changes the number of tokens. Growing hands the new tokens to waiters in FIFO
    /// order; shrinking never revokes a token (borrowed may exceed total until enough
    /// are released).
    ///
    /// # Panics
    /// If `total` exceeds `Semaphore::MAX_PERMITS`.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let token = limiter.try_acquire().unwrap();
    /// limiter.set_total_tokens(0);
    /// assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens()), (1, 0));
    /// drop(token);
    /// limiter.set_total_tokens(2);
    /// assert_eq!(limiter.available_tokens(), 2);
    /// ```
    #[track_caller]
    pub fn set_total_tokens(&self, total: usize) {
        self.inner.core.set_pool_total(total);
    }

    /// Tokens currently borrowed.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(4).borrowed_tokens(), 0);
    /// ```
    pub fn borrowed_tokens(&self) -> usize {
        self.inner.core.pool().1
    }

    /// `total - borrowed`, or 0 while borrowed exceeds a lowered total, and 0 once the
    /// limiter is broken (no acquire can take a token then). A snapshot:
    /// `try_acquire` decides.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(4).available_tokens(), 4);
    /// ```
    pub fn available_tokens(&self) -> usize {
        if self.is_broken() {
            return 0;
        }
        let (total, borrowed) = self.inner.core.pool();
        total.saturating_sub(borrowed)
    }

    /// Whether a borrower abandoned its token and broke the limiter. It stays broken
    /// until [`try_repair`](Self::try_repair).
    ///
    /// ```
    /// assert!(!ownsync::CapacityLimiter::new(1).is_broken());
    /// ```
    pub fn is_broken(&self) -> bool {
        self.inner.core.is_broken()
    }

    /// Makes a broken limiter work again, and returns how many tokens went back to it.
    ///
    /// Every token abandoned since the break (its borrower exited holding it) is **given
    /// back**, not written off, and so is every token returned while it was broken. An
    /// abandoned token whose borrower is gone is gone for good; one leaked but still
    /// reachable cannot be told apart from it, and a limiter guards no data, so giving
    /// it back is safe: that token's drop returns nothing, so it is never counted twice.
    /// Tokens borrowed by live borrowers at the break stay theirs. Acquires succeed
    /// again from now on; the waiters the break woke keep their `Broken` error.
    ///
    /// # Errors
    /// [`RepairError::NotBroken`] if the limiter is not broken (nothing is changed).
    ///
    /// ```
    /// use ownsync::{CapacityLimiter, RepairError, tracked};
    /// # futures::executor::block_on(async {
    /// let limiter = CapacityLimiter::new(1);
    /// tracked(async { limiter.acquire().await.unwrap().detach() }).await; // a leak
    /// assert!(limiter.is_broken());
    /// assert_eq!(limiter.try_repair(), Ok(1));
    /// assert_eq!(limiter.available_tokens(), 1);
    /// assert_eq!(limiter.try_repair(), Err(RepairError::NotBroken));
    /// # });
    /// ```
    pub fn try_repair(&self) -> Result<usize, RepairError> {
        self.inner.core.repair_counted()
    }

    /// The abandon policy chosen at construction.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(1).policy(), ownsync::AbandonPolicy::Break);
    /// ```
    pub fn policy(&self) -> AbandonPolicy {
        self.inner.core.policy()
    }

    /// The name given at construction.
    ///
    /// ```
    /// assert_eq!(ownsync::CapacityLimiter::new(1).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    /// A snapshot: borrowed, total, borrowers, waiting, broken, abandonments.
    ///
    /// `borrowers()` lists every borrower with an id: tasks, threads, explicit
    /// borrowers, and anonymous borrows (outside any owner) once their id has been asked
    /// for; `borrowed_tokens()` counts every token. A queued borrower is listed from the
    /// moment a release (or `set_total_tokens`) hands it a token, before its acquire
    /// returns.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(2);
    /// let token = limiter.try_acquire().unwrap(); // outside any owner: anonymous
    /// assert!(limiter.statistics().borrowers().is_empty()); // counted, not yet named
    /// let id = token.borrower(); // named now
    /// let stats = limiter.statistics();
    /// assert_eq!((stats.borrowed_tokens(), stats.total_tokens(), stats.waiters()), (1, 2, 0));
    /// assert_eq!(stats.borrowers(), [id]);
    /// ```
    pub fn statistics(&self) -> LimiterStatistics {
        let mut borrowers = self.inner.borrowers.lock().holding().collect::<Vec<_>>();
        borrowers.sort();
        let borrows = self.inner.listed_borrows();
        let core = self.inner.core.snapshot();
        let mut permits = self.inner.core.permit_counts();
        permits.listed = borrows.len() + core.orphans.iter().map(|orphan| orphan.permits).sum::<usize>();
        LimiterStatistics { core, total: permits.total, borrowed: permits.held, borrowers, borrows, permits }
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.statistics();
        let mut out = f.debug_struct("CapacityLimiter");
        if let Some(name) = self.name() {
            out.field("name", &name);
        }
        let permits = stats.permits();
        out.field("tokens", &format_args!("{permits}"))
            .field("borrowers", &crate::debug::ShowHolds(stats.borrows()));
        if permits.unlisted() > 0 {
            out.field("anonymous", &permits.unlisted());
        }
        if !stats.orphans().is_empty() {
            out.field("orphaned", &crate::debug::ShowOrphans(stats.orphans()));
        }
        out.field("waiters", &stats.waiters());
        if let Some(broken) = stats.broken() {
            crate::debug::broken_fields(&mut out, broken);
        }
        out.finish()
    }
}

/// A snapshot of a [`CapacityLimiter`]'s state.
///
/// ```
/// let limiter = ownsync::CapacityLimiter::new(1);
/// assert!(limiter.statistics().borrowers().is_empty());
/// ```
#[derive(Clone)]
pub struct LimiterStatistics {
    core: CoreSnapshot,
    total: usize,
    borrowed: usize,
    borrowers: Vec<OwnerId>,
    borrows: Vec<HoldInfo>,
    permits: PermitCounts,
}

impl fmt::Debug for LimiterStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("LimiterStatistics");
        out.field("permits", &self.permits)
            .field("borrowers", &self.borrowers)
            .field("borrows", &self.borrows);
        crate::debug::core_fields(&mut out, &self.core);
        out.finish()
    }
}

impl LimiterStatistics {
    /// Every token some owner answers for, with that owner, the acquire site and how long
    /// it has been held at least: measured from when a `statistics()`, `Debug` or
    /// snapshot first listed it (timing every borrow would cost each a clock read), so
    /// the first look says about zero. Longest held first. Anonymous borrows (outside any
    /// owner) are counted in [`permits`](Self::permits)`().unlisted()` instead, orphaned
    /// tokens in [`orphans`](Self::orphans).
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(2);
    /// let token = limiter.blocking_acquire().unwrap(); // this thread's
    /// let stats = limiter.statistics();
    /// assert_eq!(stats.borrows()[0].owner(), Some(ownsync::current_owner()));
    /// assert_eq!(stats.borrows()[0].site().unwrap().line(), line!() - 3);
    /// assert_eq!(stats.permits().unlisted(), 0);
    /// # drop(token);
    /// ```
    pub fn borrows(&self) -> &[HoldInfo] {
        &self.borrows
    }
    /// Free, total and borrowed tokens, and how many borrowed ones nobody answers for
    /// (anonymous borrows). Displays as `k of n available`.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(2);
    /// let _token = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.statistics().permits().to_string(), "1 of 2 available");
    /// ```
    pub fn permits(&self) -> PermitCounts {
        self.permits
    }
    /// Tokens borrowed (by every borrower, named or not).
    pub fn borrowed_tokens(&self) -> usize {
        self.borrowed
    }
    /// Total tokens.
    pub fn total_tokens(&self) -> usize {
        self.total
    }
    /// Who holds tokens, sorted: every borrower with an id, which is all of them but
    /// anonymous borrows nobody has asked the id of yet (see [`CapacityToken::borrower`]);
    /// [`borrowed_tokens`](Self::borrowed_tokens) counts those too.
    pub fn borrowers(&self) -> &[OwnerId] {
        &self.borrowers
    }
}

common_statistics!(LimiterStatistics);
