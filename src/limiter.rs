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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::block::block_on;
use crate::clock::Stamp;
use crate::core::{AbandonPolicy, CoreSnapshot, Hold, SemCore, acquire_permits, common_statistics};
use crate::error::AbandonReason;
use crate::error::HandOverError;
use crate::error::{AcquireError, PrimitiveKind, ReleaseError, RepairError, TryAcquireError};
use crate::info::{HoldInfo, PermitCounts};
use crate::loom::{AtomicU64, AtomicUsize, Mutex};
use crate::lot::GrantClaim;
use crate::owner::{
    Abandon, Abandoner, Caller, OrphanTag, OwnerGone, OwnerId, Site, caller_site, can_exit, is_live_owner,
    owner_id_for,
};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

#[cfg(feature = "tower")]
pub(crate) mod request;

enum Borrow {
    /// Waiting for a token; the claim says whether the queue granted it one already
    /// (see [`GrantClaim`]): then the borrower holds it, before its acquire returns.
    Pending(Arc<GrantClaim>),
    /// Holding one; `generation` tells this borrow from a later one in the same slot.
    Holding {
        generation: u64,
        hold: Hold,
        /// Where the token was taken, for diagnostics (`None` for an anonymous borrow
        /// named later: its site was not kept).
        site: Site,
    },
}

/// Hashes an [`OwnerId`] with one multiply. Ids are unique integers that only this crate
/// mints (no caller can pick one), so there is nothing to flood; SipHash cost more than
/// the rest of a borrow.
#[derive(Default)]
struct OwnerIdHasher(u64);

impl std::hash::Hasher for OwnerIdHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing: the high bits, which the table looks at first, mix all bits.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).rotate_left(5);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type OwnerIdMap<V> = HashMap<OwnerId, V, std::hash::BuildHasherDefault<OwnerIdHasher>>;

/// Every named borrow, waiting or holding, under the limiter's lock.
///
/// A borrow lives in a slab slot whose key its token keeps, so giving a token back
/// hashes nothing. Borrowers that can be named by id (tasks, threads, explicit ids) are
/// also indexed by id, for the one-borrow-per-borrower checks and
/// `release_on_behalf_of`. An anonymous borrow named later (a fresh id minted for it) is
/// not indexed: nobody could hold its id before, and the rare lookup by such an id
/// scans the slab.
///
/// An anonymous call's borrow (outside any owner) is not here at all until it is named:
/// see [`BorrowRef`]. How many tokens are borrowed is the core's count, which counts
/// both kinds.
#[derive(Default)]
struct Borrowers {
    slots: slab::Slab<(OwnerId, Borrow)>,
    by_id: OwnerIdMap<usize>,
    next_generation: u64,
    /// At least since when each holding borrow (by generation) is held: stamped by the
    /// first `statistics()`, `Debug` or snapshot that lists it, never on the acquire (a
    /// clock read, and a bigger entry to write, per borrow).
    first_seen: HashMap<u64, Stamp>,
}

impl Borrowers {
    /// The borrowers holding a token (not those still waiting for one): also those
    /// granted one whose acquire has not returned yet.
    fn holding(&self) -> impl Iterator<Item = OwnerId> + '_ {
        self.slots.iter().filter(|(_, (_, borrow))| borrow.holds()).map(|(_, (id, _))| *id)
    }

    /// Whether slot `key` is still the waiting borrow that `claim` belongs to (a release
    /// on its behalf may have ended it, and the slot gone to another borrow).
    fn is_pending_with(&self, key: usize, claim: &Arc<GrantClaim>) -> bool {
        matches!(self.slots.get(key), Some((_, Borrow::Pending(mine))) if Arc::ptr_eq(mine, claim))
    }

    /// Takes the token granted to the waiting borrow in slot `key` and ends the borrow, if
    /// it was granted one not collected yet: the caller releases it.
    fn take_granted(&mut self, key: usize) -> bool {
        let granted = matches!(self.slots.get(key), Some((_, Borrow::Pending(claim))) if claim.take_grant());
        if granted {
            self.remove(key);
        }
        granted
    }
    /// The slot of `id`'s borrow, if it has one.
    fn find(&self, id: OwnerId) -> Option<usize> {
        if id.is_anonymous() {
            self.slots.iter().find(|(_, (borrower, _))| *borrower == id).map(|(key, _)| key)
        } else {
            self.by_id.get(&id).copied()
        }
    }

    fn contains(&self, id: OwnerId) -> bool {
        self.find(id).is_some()
    }

    /// Records a borrow of `id` (which has none: see `key_for`); returns its slot.
    fn insert(&mut self, id: OwnerId, borrow: Borrow) -> usize {
        let key = self.slots.insert((id, borrow));
        if !id.is_anonymous() {
            self.by_id.insert(id, key);
        }
        key
    }

    fn remove(&mut self, key: usize) -> Borrow {
        let (id, borrow) = self.slots.remove(key);
        if !id.is_anonymous() {
            self.by_id.remove(&id);
        }
        borrow
    }

    /// The holding borrow in slot `key`, if it is still the one `generation` names (any
    /// holding borrow there, if `None`).
    fn holding_at(&mut self, key: usize, generation: Option<u64>) -> Option<&mut Hold> {
        match self.slots.get_mut(key) {
            Some((_, Borrow::Holding { generation: current, hold, .. }))
                if generation.is_none_or(|g| g == *current) =>
            {
                Some(hold)
            }
            _ => None,
        }
    }

    /// Ends the holding borrow in slot `key` if [`holding_at`](Self::holding_at) finds
    /// it; its hold is the caller's to end outside the lock.
    fn take_holding(&mut self, key: usize, generation: Option<u64>) -> Option<Hold> {
        self.holding_at(key, generation)?;
        match self.remove(key) {
            Borrow::Holding { hold, .. } => Some(hold),
            Borrow::Pending(_) => unreachable!("holding_at found it holding"),
        }
    }
}

impl Borrow {
    /// Whether the borrower holds a token: collected, or granted and not collected yet.
    fn holds(&self) -> bool {
        match self {
            Borrow::Holding { .. } => true,
            Borrow::Pending(claim) => claim.is_granted(),
        }
    }
}

struct LimiterInner {
    core: SemCore,
    borrowers: Mutex<Borrowers>,
}

#[cfg(feature = "diagnostics")]
impl crate::diagnostics::Tracked for LimiterInner {
    fn core(&self) -> &SemCore {
        &self.core
    }
    fn counted_holds(&self) -> Vec<HoldInfo> {
        self.listed_borrows()
    }
}

impl LimiterInner {
    /// Every token some owner answers for (a tracked task, a thread, the live owner it
    /// was borrowed on behalf of or handed to), with its site and how long it has been
    /// held at least (from when it was first listed). Anonymous borrows and orphaned
    /// tokens are not listed here: nobody answers for them (orphans are listed apart).
    fn listed_borrows(&self) -> Vec<HoldInfo> {
        let mut borrowers = self.borrowers.lock();
        let Borrowers { slots, first_seen, .. } = &mut *borrowers;
        // Only the borrows listed now are kept: the others have ended.
        let mut seen = HashMap::with_capacity(first_seen.len());
        let mut listed = Vec::new();
        for (_, (_, borrow)) in slots.iter_mut() {
            let Borrow::Holding { hold, site, generation } = borrow else { continue };
            // Takes the owner record's stripe: the borrower set -> stripe order is allowed.
            let Some(owner) = hold.answering_owner() else { continue };
            let since = *first_seen.entry(*generation).or_insert_with(Stamp::now);
            seen.insert(*generation, since);
            listed.push((since, HoldInfo { owner: Some(owner), permits: 1, site: *site, held_for: None }));
        }
        *first_seen = seen;
        drop(borrowers);
        // Longest held first; ties (one look stamped them) in owner order.
        listed.sort_by_key(|(since, hold)| (*since, hold.owner));
        listed.into_iter().map(|(since, hold)| HoldInfo { held_for: Some(since.elapsed()), ..hold }).collect()
    }
}

impl Abandon for LimiterInner {
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, site: Site) {
        // Not named (no exit calls this: see `abandon_hold`): the core alone.
        self.core.abandon(owner, reason, permits, site);
    }

    fn abandon_hold(
        &self,
        owner: &Abandoner,
        reason: AbandonReason,
        permits: usize,
        site: Site,
        hold: Option<OrphanTag>,
    ) {
        // An exit claimed the borrow whose ticket is `tag`: forget that entry (its ticket is
        // given back outside our lock). By the ticket, not by `owner`: a nested scope's
        // borrow is abandoned in the name of the enclosing owner that exited with it,
        // while its ticket still names the scope. `None` is a hand-over that found both
        // owners gone: its caller holds this set's lock and keeps the (now dead) hold.
        let borrow = hold.and_then(|tag| {
            let mut borrowers = self.borrowers.lock();
            let key = borrowers.slots.iter().find_map(|(key, (_, borrow))| match borrow {
                Borrow::Holding { hold, .. } if hold.ticket_tag() == Some(tag) => Some(key),
                _ => None,
            });
            key.map(|key| borrowers.remove(key))
        });
        drop(borrow);
        self.core.abandon(owner, reason, permits, site);
    }

    fn orphan(&self, owner: &Abandoner, permits: usize, site: Site, tag: OrphanTag) {
        self.core.orphan(owner, permits, site, tag);
    }

    fn adopt_orphan(&self, tag: OrphanTag) {
        self.core.adopt_orphan(tag);
    }
}

/// Who an acquire borrows for.
#[derive(Clone, Copy)]
enum Borrower {
    /// `acquire()`: the call itself, tied to the caller's owner (if it has one).
    Call,
    /// `acquire_on_behalf_of(id)`: one token per id, tied to that owner's exit if `id`
    /// is a live owner.
    Explicit(OwnerId),
}

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

/// Removes a borrower's `Pending` entry if its acquire fails or is dropped, giving back
/// a token granted to it meanwhile.
struct PendingBorrow<'a> {
    limiter: &'a CapacityLimiter,
    borrower: OwnerId,
    /// Its slot in the borrower set, `Pending` until the token is taken.
    slot: usize,
    /// Shared with the entry and the wait (see [`GrantClaim`]).
    claim: Arc<GrantClaim>,
    armed: bool,
}

impl Drop for PendingBorrow<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let granted = {
            let mut borrowers = self.limiter.inner.borrowers.lock();
            if borrowers.is_pending_with(self.slot, &self.claim) {
                borrowers.remove(self.slot);
            }
            // No grant yet: a later one is the wait's own to pass on. Else ours to give
            // back, unless released on the borrower's behalf already.
            !self.claim.give_up() && self.claim.take_grant()
        };
        if granted {
            self.limiter.inner.core.release(1);
        }
    }
}

/// A borrowed token of a [`CapacityLimiter`]; dropping it gives the token back.
///
/// ```
/// let limiter = ownsync::CapacityLimiter::new(1);
/// let token = limiter.try_acquire().unwrap();
/// drop(token);
/// assert_eq!(limiter.borrowed_tokens(), 0);
/// ```
#[must_use = "dropping the token returns it immediately"]
#[clippy::has_significant_drop]
pub struct CapacityToken<'a> {
    limiter: LimiterRef<'a>,
    borrow: BorrowRef,
}

/// Where a token's borrow is recorded: its borrower, its slot in the borrower set and
/// the generation that tells it from a later borrow in that slot.
///
/// An anonymous call's borrow (`acquire()` outside any owner: nobody answers for it and
/// nobody knows its id) starts *unnamed*: only the core's count knows of it, so taking
/// and giving back the token is one atomic each, as for a semaphore permit (the set's
/// lock, taken on both, cost twice the rest of the borrow). It is named, with a fresh
/// anonymous id and an entry in the set, the first time anything could look for it by
/// id: [`CapacityToken::borrower`], `detach`, a hand-over. Naming happens through
/// `&self`, under the set's lock: hence atomics, stored under that lock and read after
/// an `Acquire` of `borrower` (or through `&mut`, where nothing races).
struct BorrowRef {
    /// The borrower's raw id; 0 while unnamed.
    borrower: AtomicU64,
    slot: AtomicUsize,
    /// [`GONE`] once the borrow has moved to another token, or been detached: a drop
    /// then releases nothing (generations count up from 0 and never reach it).
    generation: AtomicU64,
}

const GONE: u64 = u64::MAX;

impl BorrowRef {
    fn unnamed() -> Self {
        BorrowRef { borrower: AtomicU64::new(0), slot: AtomicUsize::new(0), generation: AtomicU64::new(0) }
    }
    fn named(borrower: OwnerId, slot: usize, generation: u64) -> Self {
        BorrowRef {
            borrower: AtomicU64::new(borrower.as_u64()),
            slot: AtomicUsize::new(slot),
            generation: AtomicU64::new(generation),
        }
    }
    /// The borrower, if the borrow is named.
    fn name(&self) -> Option<OwnerId> {
        OwnerId::from_u64(self.borrower.load(Acquire))
    }
    /// The slot and generation of a named borrow (read after [`name`](Self::name)).
    fn place(&self) -> (usize, u64) {
        (self.slot.load(Relaxed), self.generation.load(Relaxed))
    }
    /// Moves the borrow out, leaving this one [`GONE`].
    fn take(&mut self) -> BorrowRef {
        let generation = self.generation.swap(GONE, Relaxed);
        BorrowRef {
            borrower: AtomicU64::new(self.borrower.load(Relaxed)),
            slot: AtomicUsize::new(self.slot.load(Relaxed)),
            generation: AtomicU64::new(generation),
        }
    }
}

/// The limiter a token returns to: borrowed, or a handle of its own (`'static` tokens).
enum LimiterRef<'a> {
    Borrowed(&'a CapacityLimiter),
    Owned(CapacityLimiter),
}

impl std::ops::Deref for LimiterRef<'_> {
    type Target = CapacityLimiter;
    fn deref(&self) -> &CapacityLimiter {
        match self {
            LimiterRef::Borrowed(limiter) => limiter,
            LimiterRef::Owned(limiter) => limiter,
        }
    }
}

impl CapacityToken<'_> {
    /// Who borrows this token. An anonymous borrow (outside any owner) gets its id here,
    /// the first time it is asked for: from then on the limiter lists it and finds it by
    /// that id (`release_on_behalf_of`, the one-token rule of `acquire_on_behalf_of`).
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// assert_eq!(limiter.blocking_acquire().unwrap().borrower(), ownsync::current_owner());
    /// ```
    pub fn borrower(&self) -> OwnerId {
        match self.borrow.name() {
            Some(id) => id,
            None => self.limiter.name_borrow(&self.borrow),
        }
    }

    /// The named borrow's slot and generation, naming it first if it is not.
    fn named_place(&self) -> (usize, u64) {
        self.borrower();
        self.borrow.place()
    }

    /// Keeps the token borrowed without a guard, to be given back with
    /// [`CapacityLimiter::release_on_behalf_of`] (Trio's manual style). The borrow is
    /// still owned: if its borrower exits first, the token is abandoned.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// limiter.try_acquire().unwrap().detach();
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// ```
    pub fn detach(mut self) {
        self.borrower(); // so that `release_on_behalf_of` finds it
        // The borrow stays in the set; the token goes (with its limiter handle, if owned).
        self.borrow.take();
    }

    /// The same token with a limiter handle of its own, so it can outlive the borrow of
    /// the limiter (move it into a spawned task, a response future, a struct).
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let token: ownsync::CapacityToken<'static> = limiter.try_acquire().unwrap().into_owned();
    /// let worker = std::thread::spawn(move || drop(token));
    /// worker.join().unwrap();
    /// assert_eq!(limiter.available_tokens(), 1);
    /// ```
    pub fn into_owned(mut self) -> CapacityToken<'static> {
        let limiter = (*self.limiter).clone();
        // A `'static` token may move: its acquirer's exit orphans it from now on instead
        // of abandoning it, since it may have moved. An unnamed borrow has no owner to exit.
        if self.borrow.name().is_some() {
            let (slot, generation) = self.borrow.place();
            limiter.with_hold(slot, generation, |hold, primitive| {
                hold.make_moving(1, primitive);
            });
        }
        // The borrow moves to the new token: this one's drop releases nothing.
        CapacityToken { limiter: LimiterRef::Owned(limiter), borrow: self.borrow.take() }
    }
}

impl CapacityToken<'_> {
    /// Hands this token to `owner`: from now on that owner answers for it,
    /// so if it exits holding the token the limiter breaks (or, with
    /// [`AbandonPolicy::Reclaim`], takes it back). The borrower id stays as it is.
    ///
    /// # Errors
    /// [`HandOverError::OwnerGone`] if `owner` is not a live owner (the token stays as it
    /// was); [`HandOverError::Abandoned`] if the previous owner's exit already abandoned
    /// it (or it was released with `release_on_behalf_of`).
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let mut token = limiter.try_acquire().unwrap().into_owned();
    /// let worker = ownsync::tracked(std::future::pending::<()>());
    /// token.hand_to(worker.owner()).unwrap();
    /// drop(worker); // cancelled while it answers for the token
    /// assert!(limiter.is_broken());
    /// ```
    #[track_caller]
    pub fn hand_to(&mut self, owner: OwnerId) -> Result<(), HandOverError> {
        let site = caller_site();
        let (slot, generation) = self.named_place();
        self.limiter
            .with_hold(slot, generation, |hold, primitive| hold.hand_to(owner, 1, primitive, site))
            .unwrap_or(Err(HandOverError::Abandoned))
    }

    /// [`hand_to`](Self::hand_to) the current owner: for the task (or thread) that
    /// received the token, to answer for it from now on.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// let mut token = limiter.try_acquire().unwrap().into_owned();
    /// std::thread::spawn(move || {
    ///     token.adopt().unwrap();
    ///     token.detach(); // this thread answers for it, and ends holding it
    /// })
    /// .join()
    /// .unwrap();
    /// assert!(limiter.is_broken());
    /// ```
    #[track_caller]
    pub fn adopt(&mut self) -> Result<(), HandOverError> {
        self.hand_to(crate::owner::current_owner())
    }

    /// The owner answering for this token: the task or thread that borrowed it (or the
    /// borrower it was taken on behalf of, or the owner it was handed to); `None` for an
    /// anonymous borrow.
    ///
    /// ```
    /// let limiter = ownsync::CapacityLimiter::new(1);
    /// assert_eq!(limiter.blocking_acquire().unwrap().owner(), Some(ownsync::current_owner()));
    /// ```
    pub fn owner(&self) -> Option<OwnerId> {
        // Unnamed: anonymous, and nobody answers for it.
        self.borrow.name()?;
        let (slot, generation) = self.borrow.place();
        self.limiter.with_hold(slot, generation, |hold, _| hold.owner_id()).flatten()
    }
}

impl crate::tracked::HandOver for CapacityToken<'_> {
    #[track_caller]
    fn hand_to(&mut self, owner: OwnerId) -> Result<(), HandOverError> {
        CapacityToken::hand_to(self, owner)
    }
}

impl Drop for CapacityToken<'_> {
    fn drop(&mut self) {
        let (slot, generation) = self.borrow.place();
        if generation == GONE {
            return;
        }
        if self.borrow.name().is_none() {
            // Unnamed: only the core's count knows of it.
            return self.limiter.inner.core.release(1);
        }
        // `None`: already released by `release_on_behalf_of` or abandoned by its exit.
        let _ = self.limiter.release_borrow(slot, generation);
    }
}

impl fmt::Debug for CapacityToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An unnamed borrow stays unnamed: formatting it is no reason to enter it in the set.
        let mut out = f.debug_struct("CapacityToken");
        match self.borrow.name() {
            Some(id) => out.field("borrower", &id),
            None => out.field("borrower", &format_args!("anonymous")),
        };
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
