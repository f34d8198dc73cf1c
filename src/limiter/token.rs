//! A limiter's token (`CapacityToken`) and the borrow it stands for, and the guard that
//! cleans up a borrow whose acquire failed or was dropped.

use super::CapacityLimiter;
use crate::error::HandOverError;
use crate::loom::{AtomicU64, AtomicUsize};
use crate::lot::GrantClaim;
use crate::owner::{OwnerId, caller_site};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// Removes a borrower's `Pending` entry if its acquire fails or is dropped, giving back
/// a token granted to it meanwhile.
pub(super) struct PendingBorrow<'a> {
    pub(super) limiter: &'a CapacityLimiter,
    pub(super) borrower: OwnerId,
    /// Its slot in the borrower set, `Pending` until the token is taken.
    pub(super) slot: usize,
    /// Shared with the entry and the wait (see [`GrantClaim`]).
    pub(super) claim: Arc<GrantClaim>,
    pub(super) armed: bool,
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
    pub(super) limiter: LimiterRef<'a>,
    pub(super) borrow: BorrowRef,
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
pub(super) struct BorrowRef {
    /// The borrower's raw id; 0 while unnamed.
    pub(super) borrower: AtomicU64,
    pub(super) slot: AtomicUsize,
    /// [`GONE`] once the borrow has moved to another token, or been detached: a drop
    /// then releases nothing (generations count up from 0 and never reach it).
    pub(super) generation: AtomicU64,
}

pub(super) const GONE: u64 = u64::MAX;

impl BorrowRef {
    pub(super) fn unnamed() -> Self {
        BorrowRef { borrower: AtomicU64::new(0), slot: AtomicUsize::new(0), generation: AtomicU64::new(0) }
    }
    pub(super) fn named(borrower: OwnerId, slot: usize, generation: u64) -> Self {
        BorrowRef {
            borrower: AtomicU64::new(borrower.as_u64()),
            slot: AtomicUsize::new(slot),
            generation: AtomicU64::new(generation),
        }
    }
    /// The borrower, if the borrow is named.
    pub(super) fn name(&self) -> Option<OwnerId> {
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
pub(super) enum LimiterRef<'a> {
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
    /// [`AbandonPolicy::Reclaim`](crate::core::AbandonPolicy::Reclaim), takes it back). The borrower id stays as it is.
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
