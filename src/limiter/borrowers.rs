//! A limiter's borrower set: who borrows which token (Trio's rule of one token per
//! explicit borrower), the borrow each exit or release finds by its ticket's tag, and
//! the named waits a grant names at the hand-off.

use crate::clock::Stamp;
use crate::core::{Hold, SemCore};
use crate::error::AbandonReason;
use crate::info::HoldInfo;
use crate::loom::Mutex;
use crate::lot::GrantClaim;
use crate::owner::{Abandon, Abandoner, OrphanTag, OwnerId, Site};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) enum Borrow {
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
pub(super) struct OwnerIdHasher(u64);

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

pub(super) type OwnerIdMap<V> = HashMap<OwnerId, V, std::hash::BuildHasherDefault<OwnerIdHasher>>;

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
/// see [`BorrowRef`](super::token::BorrowRef). How many tokens are borrowed is the core's count, which counts
/// both kinds.
#[derive(Default)]
pub(super) struct Borrowers {
    pub(super) slots: slab::Slab<(OwnerId, Borrow)>,
    pub(super) by_id: OwnerIdMap<usize>,
    pub(super) next_generation: u64,
    /// At least since when each holding borrow (by generation) is held: stamped by the
    /// first `statistics()`, `Debug` or snapshot that lists it, never on the acquire (a
    /// clock read, and a bigger entry to write, per borrow).
    pub(super) first_seen: HashMap<u64, Stamp>,
}

impl Borrowers {
    /// The borrowers holding a token (not those still waiting for one): also those
    /// granted one whose acquire has not returned yet.
    pub(super) fn holding(&self) -> impl Iterator<Item = OwnerId> + '_ {
        self.slots.iter().filter(|(_, (_, borrow))| borrow.holds()).map(|(_, (id, _))| *id)
    }

    /// Whether slot `key` is still the waiting borrow that `claim` belongs to (a release
    /// on its behalf may have ended it, and the slot gone to another borrow).
    pub(super) fn is_pending_with(&self, key: usize, claim: &Arc<GrantClaim>) -> bool {
        matches!(self.slots.get(key), Some((_, Borrow::Pending(mine))) if Arc::ptr_eq(mine, claim))
    }

    /// Takes the token granted to the waiting borrow in slot `key` and ends the borrow, if
    /// it was granted one not collected yet: the caller releases it.
    pub(super) fn take_granted(&mut self, key: usize) -> bool {
        let granted = matches!(self.slots.get(key), Some((_, Borrow::Pending(claim))) if claim.take_grant());
        if granted {
            self.remove(key);
        }
        granted
    }
    /// The slot of `id`'s borrow, if it has one.
    pub(super) fn find(&self, id: OwnerId) -> Option<usize> {
        if id.is_anonymous() {
            self.slots.iter().find(|(_, (borrower, _))| *borrower == id).map(|(key, _)| key)
        } else {
            self.by_id.get(&id).copied()
        }
    }

    pub(super) fn contains(&self, id: OwnerId) -> bool {
        self.find(id).is_some()
    }

    /// Records a borrow of `id` (which has none: see `key_for`); returns its slot.
    pub(super) fn insert(&mut self, id: OwnerId, borrow: Borrow) -> usize {
        let key = self.slots.insert((id, borrow));
        if !id.is_anonymous() {
            self.by_id.insert(id, key);
        }
        key
    }

    pub(super) fn remove(&mut self, key: usize) -> Borrow {
        let (id, borrow) = self.slots.remove(key);
        if !id.is_anonymous() {
            self.by_id.remove(&id);
        }
        borrow
    }

    /// The holding borrow in slot `key`, if it is still the one `generation` names (any
    /// holding borrow there, if `None`).
    pub(super) fn holding_at(&mut self, key: usize, generation: Option<u64>) -> Option<&mut Hold> {
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
    pub(super) fn take_holding(&mut self, key: usize, generation: Option<u64>) -> Option<Hold> {
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

pub(super) struct LimiterInner {
    pub(super) core: SemCore,
    pub(super) borrowers: Mutex<Borrowers>,
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
    pub(super) fn listed_borrows(&self) -> Vec<HoldInfo> {
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
pub(super) enum Borrower {
    /// `acquire()`: the call itself, tied to the caller's owner (if it has one).
    Call,
    /// `acquire_on_behalf_of(id)`: one token per id, tied to that owner's exit if `id`
    /// is a live owner.
    Explicit(OwnerId),
}
