//! A hold's ticket: the proof of its registration (record and slot), and the one place
//! that decides, once, whether a release or the owner's exit got the hold ([`Claim`]).

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::AbandonReason;

use super::abandon::{Abandon, Abandoner, OrphanTag};
use super::record::{OwnerInner, RecordRef, sweep_released_elsewhere};
use super::slabs::{HoldEntry, SHARED_SLOT, drop_entry};
use crate::id::{OwnerId, Site};

impl RecordRef<'_> {
    /// Registers a hold from the owner's own context; returns the owner's id with the
    /// ticket. Fails with the exit reason if the owner already exited (the caller must
    /// then treat the hold as anonymous). `identity` is the address of the primitive that
    /// `primitive` clones.
    #[inline]
    pub(super) fn register_here(
        self,
        identity: *const (),
        primitive: impl FnOnce() -> Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> (OwnerId, Result<HoldTicket, AbandonReason>) {
        debug_assert!(self.is_current());
        // SAFETY: in the owner's context (the caller found the record there).
        let body = match unsafe { self.body() } {
            Ok(body) => body,
            Err(reason) => return (self.exited_id(), Err(reason)),
        };
        if body.released_elsewhere.load(Relaxed) {
            sweep_released_elsewhere(body);
        }
        // SAFETY: in the owner's context; the closure only moves `primitive` into the slab.
        let key = unsafe { body.with_local(|local| local.insert(identity, primitive, permits, moves, site)) };
        (body.id, Ok(HoldTicket { owner: self.ptr, slot: key | moves_flag(moves) }))
    }

    /// Registers a hold from another context.
    fn register_elsewhere(
        self,
        primitive: Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> Result<HoldTicket, AbandonReason> {
        // Moved in only if it is registered: a refusal drops it after the stripe lock,
        // since dropping a primitive may drop anything, holds of other records included.
        let mut primitive = Some(primitive);
        let key = self.with_body(|body| {
            body.map(|body| {
                let primitive = primitive.take().expect("registered once");
                body.shared.lock().holds.insert(HoldEntry { primitive, permits, moves, site })
            })
        })?;
        Ok(HoldTicket { owner: self.ptr, slot: key | SHARED_SLOT | moves_flag(moves) })
    }

    /// Registers a hold from whichever context the code running now is in.
    pub(super) fn register(
        self,
        primitive: Arc<dyn Abandon>,
        permits: usize,
        moves: bool,
        site: Site,
    ) -> Result<HoldTicket, AbandonReason> {
        if self.is_current() {
            self.register_here(Arc::as_ptr(&primitive).cast(), || primitive, permits, moves, site).1
        } else {
            self.register_elsewhere(primitive, permits, moves, site)
        }
    }
}

/// Marks a ticket of an owned hold that may move: orphaned, not abandoned, at the exit.
pub(super) const MOVES: usize = 1 << (usize::BITS - 2);
/// Marks a ticket already given back (claimed by the exit, or unregistered): it never
/// touches its record again, and anything asked of it answers "not ours".
pub(super) const DEAD: usize = 1 << (usize::BITS - 3);
pub(super) const SLOT_KEY: usize = !(SHARED_SLOT | MOVES | DEAD);
/// The keys of the pieces split off an orphan ([`HoldTicket::orphan_piece`]): above any
/// slab key, so that their tags never name a hold the exit claimed.
pub(super) const PIECE_KEYS: usize = 1 << (usize::BITS - 4);
/// The next piece's key, below [`PIECE_KEYS`] (unique per record and run, but for a
/// wrap-around after 2^60 splits on 64-bit targets).
pub(super) static NEXT_PIECE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(super) fn moves_flag(moves: bool) -> usize {
    if moves { MOVES } else { 0 }
}

/// Proof that a hold is registered to an owner. Dropping it gives the registration back
/// without releasing anything; [`HoldTicket::unregister`] says whether it was still ours.
///
/// The ticket points at its owner's record without owning a count of it. That is sound
/// because a live ticket keeps the record alive either way: until the owner exits, its
/// `Tracked` (or thread-local) holds the record; at the exit, the hold is still
/// registered (the ticket has not given it back), so the exit takes one strong count for
/// this ticket, which the ticket gives back when it is done. A ticket that is never done
/// (its guard leaked with `mem::forget`) keeps the record's head, 24 bytes,
/// for good: a small leak beside the one the caller chose.
pub(crate) struct HoldTicket {
    pub(super) owner: NonNull<OwnerInner>,
    /// The key in the local slab, or with `SHARED_SLOT` in the shared one.
    pub(super) slot: usize,
}

// SAFETY: a ticket reaches its record only through the record's locks, or in the owner's
// context (checked on the thread doing it), so it may move and be shared across threads.
unsafe impl Send for HoldTicket {}
// SAFETY: see above; `&HoldTicket` only reads the id.
unsafe impl Sync for HoldTicket {}

/// What giving a ticket back found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The hold was still registered: the caller now has it to release.
    Ours,
    /// The owner's exit claimed it first and abandoned it (broken or reclaimed): the
    /// caller must not release it.
    Abandoned,
    /// The owner's exit claimed an owned hold that may have moved and counted it as
    /// orphaned: it is still the caller's, to release or hand over, once it tells the
    /// primitive ([`Abandon::adopt_orphan`]).
    Orphaned,
}

impl HoldTicket {
    /// The ticket as its two words, for a place that keeps them apart (a mutex's cell for
    /// its exclusive hold: see `SemCore::put_exclusive_hold`); [`from_words`](Self::from_words)
    /// puts it back together.
    pub(crate) fn into_words(self) -> (NonNull<()>, usize) {
        let ticket = std::mem::ManuallyDrop::new(self);
        (ticket.owner.cast(), ticket.slot)
    }

    /// # Safety
    /// `owner` and `slot` are the words of one ticket from [`into_words`](Self::into_words),
    /// put back together once.
    pub(crate) unsafe fn from_words(owner: NonNull<()>, slot: usize) -> Self {
        HoldTicket { owner: owner.cast(), slot }
    }

    /// A ticket already given back, standing for a hold abandoned without one: it never
    /// touches a record, and its hold's drop releases nothing.
    pub(super) fn dead() -> Self {
        HoldTicket { owner: NonNull::dangling(), slot: DEAD }
    }

    pub(super) fn record(&self) -> RecordRef<'_> {
        debug_assert!(self.slot & DEAD == 0, "a dead ticket has no record");
        // SAFETY: the pointer came from a `RecordRef`, so from `Arc::as_ptr`, and a live
        // ticket keeps its record alive (see the type's docs).
        unsafe { RecordRef::from_raw(self.owner.as_ptr()) }
    }

    /// Whether the hold is still registered (or may be: an exit may be under way).
    pub(crate) fn is_live(&self) -> bool {
        self.slot & DEAD == 0
    }

    /// Whether this is an owned hold's ticket, orphaned rather than abandoned at the exit.
    pub(crate) fn moves(&self) -> bool {
        self.slot & MOVES != 0
    }

    /// The owner it is registered to, also after that owner's exit claimed it; `None`
    /// once given back.
    pub(crate) fn owner_id(&self) -> Option<OwnerId> {
        self.is_live().then(|| self.record().id())
    }

    /// The owner it is registered to, while that owner lives; `None` once its exit claimed
    /// the hold, or once given back.
    pub(crate) fn answering_owner(&self) -> Option<OwnerId> {
        if !self.is_live() {
            return None;
        }
        self.record().with_body(|body| body.ok().map(|body| body.id))
    }

    /// Where the hold was taken, if it can be read from here: in its owner's context, or
    /// for a hold in the shared slab.
    pub(crate) fn site(&self) -> Site {
        if !self.is_live() {
            return None;
        }
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            return record.with_body(|body| body.ok()?.shared.lock().holds.get(key)?.site);
        }
        if record.is_current() {
            // SAFETY: in the owner's context; the closure only reads.
            return unsafe { record.with_local(|local| local.holds.get(key).and_then(|entry| entry.site)) }
                .flatten();
        }
        None
    }

    /// What names this hold among its primitive's orphans, should its owner's exit have
    /// orphaned it: its record's address and slot. Unique among listed orphans, since an
    /// orphan's ticket keeps its record (and so the address) alive until it is adopted.
    #[inline]
    pub(crate) fn orphan_tag(&self) -> OrphanTag {
        (self.owner.as_ptr() as usize, self.slot & (SLOT_KEY | SHARED_SLOT))
    }

    /// Who would be named if this hold were abandoned now.
    pub(crate) fn abandoner(&self) -> Option<Abandoner> {
        self.is_live().then(|| self.record().abandoner())
    }

    /// What the exit's claim of this hold made of it.
    fn claimed(&self) -> Claim {
        if self.moves() { Claim::Orphaned } else { Claim::Abandoned }
    }

    /// Takes the registration back (or learns that the exit took it), once. The common
    /// case, a local hold given back in its owner's context, is kept small and inline;
    /// the rest is in [`HoldTicket::claim_elsewhere`].
    #[inline(always)]
    fn claim(&self) -> Claim {
        let record = self.record();
        if self.slot & SHARED_SLOT != 0 || !record.is_current() {
            return self.claim_elsewhere();
        }
        let key = self.slot & SLOT_KEY;
        // SAFETY: in the owner's context. The removed entry is dropped after the
        // closure: its `Arc` may be the primitive's last, and dropping that must not
        // happen while `local` is borrowed.
        let removed = unsafe { record.with_local(|local| local.release(key)) };
        match removed {
            Some(previous_spare) => {
                if previous_spare.is_some() {
                    drop_entry(previous_spare);
                }
                Claim::Ours
            }
            None => self.claimed(),
        }
    }

    /// [`HoldTicket::claim`] of a hold in the shared slab, or from outside its owner's
    /// context: through the record's locks.
    #[cold]
    #[inline(never)]
    fn claim_elsewhere(&self) -> Claim {
        let claimed = self.claimed();
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            // The entry is dropped after the stripe lock (see `register_elsewhere`).
            let removed = record.with_body(|body| body.ok()?.shared.lock().holds.try_remove(key));
            return match removed {
                Some(_) => Claim::Ours,
                None => claimed,
            };
        }
        record.with_body(|body| match body {
            Err(_) => claimed,
            Ok(body) => {
                body.shared.lock().released_local.push(key);
                body.released_elsewhere.store(true, Relaxed);
                Claim::Ours
            }
        })
    }

    /// Claims the hold back, once; if the exit claimed it first, gives back the count
    /// the exit took for this ticket (the record may be freed then). The ticket is dead
    /// afterwards. A dead ticket answers `Abandoned` and touches nothing.
    #[inline(always)]
    pub(crate) fn give_back(&mut self) -> Claim {
        if !self.is_live() {
            return Claim::Abandoned;
        }
        let claim = self.claim();
        if claim != Claim::Ours {
            self.return_exit_count();
        }
        self.slot |= DEAD;
        claim
    }

    /// Gives back the strong count the exit took for this ticket.
    #[cold]
    #[inline(never)]
    fn return_exit_count(&self) {
        // SAFETY: the exit took one strong count for this ticket (it was still registered
        // then) and only this, called once from the ticket's single give-back (it is dead
        // from then on), returns it; nothing touches the record after this line.
        unsafe { Arc::decrement_strong_count(self.owner.as_ptr().cast_const()) };
    }

    /// Gives the registration back ([`HoldTicket::give_back`]) and drops the ticket.
    #[inline(always)]
    pub(crate) fn unregister(mut self) -> Claim {
        let claim = self.give_back();
        // Dead now: its drop would only check that again.
        std::mem::forget(self);
        claim
    }

    /// Changes how many permits the registered hold has (`split` / `merge`). `false` if the
    /// owner's exit already claimed it. `primitive` is the hold's primitive, needed when
    /// the change is made outside the owner's context and the hold moves to the shared
    /// slab.
    pub(crate) fn set_permits(
        &mut self,
        permits: usize,
        primitive: impl FnOnce() -> Arc<dyn Abandon>,
    ) -> bool {
        if !self.is_live() {
            return false;
        }
        let record = self.record();
        let key = self.slot & SLOT_KEY;
        if self.slot & SHARED_SLOT != 0 {
            return record
                .with_body(|body| {
                    body.ok()?.shared.lock().holds.get_mut(key).map(|entry| entry.permits = permits)
                })
                .is_some();
        }
        if record.is_current() {
            // SAFETY: in the owner's context; the closure only writes a count.
            return unsafe { record.with_local(|local| local.holds[key].permits = permits) }.is_some();
        }
        // Elsewhere: move the hold to the shared slab, where this context may change it.
        // Where it was taken is in the owner's local slab, out of reach from here. The
        // clone is made (and, if the owner exited, dropped) outside the stripe lock.
        let mut entry = Some(HoldEntry { primitive: primitive(), permits, moves: self.moves(), site: None });
        let moved = record.with_body(|body| {
            let body = body.ok()?;
            let mut shared = body.shared.lock();
            shared.released_local.push(key);
            body.released_elsewhere.store(true, Relaxed);
            Some(shared.holds.insert(entry.take().expect("moved once")))
        });
        drop(entry);
        match moved {
            Some(moved) => {
                self.slot = moved | SHARED_SLOT | (self.slot & MOVES);
                true
            }
            None => false,
        }
    }

    /// Whether this is an owned hold's ticket that its owner's exit claimed, so orphaned
    /// (the record has exited; a live moving ticket is never abandoned). Then
    /// [`HoldTicket::set_permits`] fails, and the hold is the caller's still.
    pub(crate) fn is_orphaned(&self) -> bool {
        self.is_live() && self.moves() && self.record().with_body(|body| body.is_err())
    }

    /// A ticket for a piece split off this orphaned hold ([`HoldTicket::is_orphaned`]):
    /// an orphan of the same exited owner, with a tag of its own, which gives back its
    /// own count of the record (taken here) and says `Orphaned` when given back, as the
    /// exit's claim of a moving hold does.
    pub(crate) fn orphan_piece(&self) -> HoldTicket {
        debug_assert!(self.is_orphaned());
        let key = PIECE_KEYS | (NEXT_PIECE.fetch_add(1, Relaxed) & (PIECE_KEYS - 1));
        // SAFETY: this live ticket of an exited record holds a strong count of it (the
        // exit took one for it), so the record is alive; the count taken here is the new
        // ticket's, given back once by its `give_back` (`return_exit_count`): a shared
        // slot of an exited record always finds the hold claimed.
        unsafe { Arc::increment_strong_count(self.owner.as_ptr().cast_const()) };
        HoldTicket { owner: self.owner, slot: key | SHARED_SLOT | MOVES }
    }

    /// Registers another hold, on the same primitive, to the same owner, of the same kind.
    pub(crate) fn register_sibling(&self, permits: usize, primitive: Arc<dyn Abandon>) -> Option<HoldTicket> {
        self.register_sibling_as(permits, primitive, self.moves())
    }

    /// Registers another hold, on the same primitive, to the same owner; `moves` as given.
    pub(crate) fn register_sibling_as(
        &self,
        permits: usize,
        primitive: Arc<dyn Abandon>,
        moves: bool,
    ) -> Option<HoldTicket> {
        if !self.is_live() {
            return None;
        }
        self.record().register(primitive, permits, moves, self.site()).ok()
    }

    /// Whether the hold's owner is a nested scope that completed holding it: the hold
    /// is its enclosing owner's now ([`OwnerInner::complete`]), so it is not the scope's
    /// to be named for.
    pub(crate) fn is_forwarded(&self) -> bool {
        self.is_live() && self.record().with_body(|body| body.is_ok_and(|body| body.forwarded.load(Relaxed)))
    }
}

impl Drop for HoldTicket {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl fmt::Debug for HoldTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner_id() {
            Some(owner) => write!(f, "HoldTicket({owner})"),
            None => f.write_str("HoldTicket(given back)"),
        }
    }
}
