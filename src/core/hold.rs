//! The hold lifecycle, written once. A *hold* is some permits of one core, taken by one
//! acquire; its registration ([`Hold`], around an `Option<HoldTicket>`) says who answers
//! for it. Every guard, permit and token wraps one, and every state a hold can be in and
//! every event that moves it is in the table below, each transition one function. The
//! reference model in the test tree (`tests/reference_model/`) mirrors this table.
//!
//! **States.**
//!
//! | state | what it is | its ticket |
//! |---|---|---|
//! | *anonymous* | taken outside any owner (async, untracked), 0 permits, or refused because the owner had exited; released on drop, never abandoned | `None` |
//! | *borrowed* | certainly owned: a borrowed guard, permit or token of a tracked task or thread, or any hold handed over explicitly; its owner's exit is an abandonment | live, no `MOVES` |
//! | *moving* | an owned guard or permit (`lock_owned`, `acquire_owned`, `into_owned`): may have moved, so its acquirer's exit is no evidence | live, `MOVES` |
//! | *forwarded* | a borrowed or moving hold of a nested scope that completed holding it: the scope's record is registered to the enclosing owner as one entry, whose exit decides | unchanged (the scope's record) |
//! | *orphaned* | a moving hold whose acquirer exited: counted in `statistics().orphaned()`, never broken, never reclaimed; its release or hand-over un-counts it | claimed as orphaned |
//! | *dead* | a borrowed hold whose owner's exit claimed and abandoned it: its drop releases nothing | claimed (`DEAD`) |
//! | *manual* | a `Lock::acquire` without a guard, kept in the core with its owner until `release` | as borrowed, kept in `Shared::manual` |
//!
//! **Events.** Under `Break` an abandonment breaks the primitive (every waiter, now and
//! later, gets `Broken` naming owner, reason and site); under `Reclaim` (Semaphore,
//! CapacityLimiter only: a primitive that guards data never reclaims) its permits return.
//!
//! | event | from -> to | function |
//! |---|---|---|
//! | acquire | none -> anonymous, borrowed or moving | [`SemCore::register`] (owner found by `owner::register_hold`); to a named live owner: [`Hold::registered_to`] |
//! | a condition waiter gets the mutex back | none -> as the guard it gave up | [`SemCore::register_granted`] |
//! | release (guard, permit or token dropped) | anonymous, borrowed, moving -> gone | [`SemCore::end_hold`] -> `HoldTicket::unregister` (`Claim::Ours`) -> [`SemCore::release`] |
//! | release of an orphan | orphaned -> gone (un-counted) | [`SemCore::end_hold`] -> `ended_after_claim` -> `settle_claim` (`Claim::Orphaned`) |
//! | release of a dead hold | dead -> gone, nothing released | `settle_claim` (`Claim::Abandoned`) -> `dead_guard_dropped` (a lock with data counts it back, for repair) |
//! | exclusive guard dropped in a panic that began in its section | any -> gone, the primitive broken (`Panicked`), naming its owner, or the panicking one for an owned or forwarded guard | `end_hold_in_panic` |
//! | split (`split`) | borrowed/moving -> two; orphaned -> two orphans; dead -> nothing | [`Hold::split_off`] |
//! | a writer's downgrade | the same hold, fewer permits (a racing exit abandons one hold); abandoned whole -> the let-go permits counted back for a repair | [`SemCore::downgrade`] -> [`Hold::shrink_to`] |
//! | merge | two -> one; a dead side brings no permits; two orphans -> one | [`Hold::merge`] |
//! | hand over / adopt | any live -> borrowed by the target; dead -> `Err(Abandoned)`; target gone -> `Err(OwnerGone)`, unchanged | [`Hold::hand_to`] (`owner::hand_over`) |
//! | made `'static` (`CapacityToken::into_owned`) | borrowed -> moving | [`Hold::make_moving`] |
//! | forget (`SemaphorePermit::forget`) | registered -> gone, permits kept out | [`Hold::forget`] |
//! | owner exits: completed, cancelled, panicked | borrowed -> dead (abandoned); moving -> orphaned | `OwnerInner::exit_as` (owner/record.rs) -> [`Abandon::abandon`](crate::owner::Abandon) / `Abandon::orphan` -> `SemCore::abandon` / `SemCore::orphan` (abandon.rs) |
//! | a hooked tokio task ends (`track_all`) | as an owner's exit: `Exited` when terminated inside its own run (completed, panicked or aborted), `Cancelled` at runtime shutdown | tokio's `on_task_terminate` -> `track_all::terminate` -> `OwnerInner::exit` (tokio/track_all.rs) |
//! | exit with a manual hold | manual -> settled (the break counts it back; `release` says `NotHeld`) | `SemCore::abandon` -> [`SemCore::settle_abandoned_manual`] |
//! | a limiter's grant to a queued named borrow | waiting -> held by its borrower before its acquire returns | `WaitQueue::grant_front` marks the `GrantClaim` (lot.rs); `CapacityLimiter::finish` registers it, or `release_on_behalf_of` / a dropped acquire's `PendingBorrow` releases it (limiter.rs) |
//! | a limiter's borrow abandoned | the borrower set's entry -> gone, then as any abandonment | `OwnerInner::exit_as` -> `LimiterInner::abandon_hold(.., Some(tag))`, the entry found by [`Hold::ticket_tag`] |
//! | owner cancelled holding a borrowed exclusive hold (a section cut short) | borrowed -> armed -> gone: released and counted (`cut_short()`, WARN), or with `break_on_cancel()` broken (`Cancelled`) | `Tracked::drop`, before dropping its future: `OwnerInner::arm_cut_short` (owner/cut_short.rs) -> `SemCore::arm_section`; the guard's drop in the owner's context: [`SemCore::end_hold`] -> `end_hold_armed` -> `end_hold_cut_short` (cut_short.rs); the same hold released elsewhere meanwhile is a plain release |
//! | `with_lock` / `with_write` dropped inside its section | any -> gone, the lock broken (`Cancelled`); during a panic, `Panicked` as any guard | `Section::drop` (section.rs) -> `SemCore::end_hold_cancelled` (cut_short.rs) |
//! | nested scope completes holding | borrowed/moving -> forwarded | `OwnerInner::complete` (owner/scope.rs) |
//! | enclosing owner exits | forwarded -> as an exit of the scope, naming the enclosing owner | `ForwardedScope::abandon` -> `OwnerInner::exit_as` |
//! | repair of a lock with data (`try_repair`, `mark_consistent`) | broken core, no guard left -> whole | `SemCore::try_begin_repair`, `SemCore::end_repair` (abandon.rs) |
//! | repair of a counted primitive (`Semaphore::try_repair`, `CapacityLimiter::try_repair`) | broken core -> whole: every permit abandoned, released or added since the break goes back; dead holds stay dead (their drop releases nothing) | `SemCore::repair_counted` (abandon.rs); a release racing it decides again under the lot lock (`released_while_broken`) |
//!
//! The race every row must survive is an exit in the owner's context against a
//! release, split or hand-over elsewhere. It is decided once by the record's locks
//! (`HoldTicket::give_back`, owner/ticket.rs): either the release gets the hold
//! (`Claim::Ours`) or the exit did (`Abandoned`, `Orphaned`). An exit claims a hold under
//! its record's lock and breaks the primitive only after, so a guard dropped in between
//! leaves its permits in `Shared::returned_before_break` for the break to count in.

use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use crate::error::{AbandonReason, HandOverError, ReleaseError};
use crate::owner::{
    Abandon, Caller, Claim, HandedOver, HoldTicket, OrphanSplit, OrphanTag, OwnerId, Site, current_abandoner,
    hand_over, is_live_owner, owner_id_for, register_hold, register_to,
};

use super::{SHIFT, SemCore, Shared};

/// A hold's registration to its owner; `None` for an anonymous hold.
///
/// Every guard, permit and token wraps one, so what can happen to a registration
/// (release, split, merge, hand-over, an exit that claimed it) is written once, here.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    pub(super) ticket: Option<HoldTicket>,
}

/// Gives `ticket` back; whether its permits are still the caller's to release (an
/// orphan, which is, is first un-counted at its primitive).
fn give_back(ticket: HoldTicket, primitive: impl FnOnce() -> Arc<dyn Abandon>) -> bool {
    let tag = ticket.orphan_tag();
    match ticket.unregister() {
        Claim::Ours => true,
        Claim::Orphaned => {
            primitive().adopt_orphan(tag);
            true
        }
        Claim::Abandoned => false,
    }
}

impl Hold {
    /// The owner the hold is registered to, also after that owner's exit claimed it (what
    /// the exit's `abandon` looks for).
    pub(crate) fn owner_id(&self) -> Option<OwnerId> {
        self.ticket.as_ref().and_then(HoldTicket::owner_id)
    }

    /// The owner answering for the hold now: `None` if anonymous, or once its owner's
    /// exit claimed it (abandoned, or orphaned: nobody answers for it then).
    pub(crate) fn answering_owner(&self) -> Option<OwnerId> {
        self.ticket.as_ref().and_then(HoldTicket::answering_owner)
    }

    /// A hold of `permits` registered to the live owner `owner`, certainly owned by it.
    pub(crate) fn registered_to(
        owner: OwnerId,
        permits: usize,
        primitive: Arc<dyn Abandon>,
        site: Site,
    ) -> Result<Hold, crate::owner::OwnerGone> {
        Ok(Hold { ticket: Some(register_to(owner, primitive, permits, site)?) })
    }

    /// Whether its owner's exit abandoned it: dropping it releases nothing.
    fn is_dead(&self) -> bool {
        self.ticket.as_ref().is_some_and(|ticket| !ticket.is_live())
    }

    /// Whether this hold is an orphan (see [`HoldTicket::is_orphaned`]): after
    /// `set_permits` failed, it is still ours, and stays an orphan; else it is dead (its
    /// owner's exit abandoned it).
    fn is_orphaned(&self) -> bool {
        self.ticket.as_ref().is_some_and(HoldTicket::is_orphaned)
    }

    /// Moves `taken` of this hold's permits into a new hold registered to the same owner,
    /// leaving `remaining`. `None` if the owner's exit already abandoned this hold (it was
    /// broken or reclaimed with all its permits): nothing is left to split, and neither
    /// side may release anything. A side left with 0 permits is never registered:
    /// nothing held, nothing to abandon.
    pub(crate) fn split_off(
        &mut self,
        remaining: usize,
        taken: usize,
        primitive: impl Fn() -> Arc<dyn Abandon>,
    ) -> Option<Hold> {
        let Some(ticket) = self.ticket.as_mut() else { return Some(Hold::default()) };
        if remaining == 0 {
            // Everything moves: the new hold takes the registration as it is (a dead one
            // included, whose drop then releases nothing, as it should).
            return Some(Hold { ticket: self.ticket.take() });
        }
        if taken == 0 {
            return Some(Hold::default());
        }
        if !ticket.set_permits(remaining, &primitive) {
            // An orphan splits into two orphans: nobody answers for either half, so
            // both are counted until each is released or adopted.
            if !self.is_orphaned() {
                return None;
            }
            let ticket = self.ticket.as_ref().expect("an orphan is registered");
            let piece = ticket.orphan_piece();
            primitive().split_orphan(OrphanSplit {
                tag: ticket.orphan_tag(),
                kept: remaining,
                piece: piece.orphan_tag(),
                taken,
                acquirer: ticket.owner_id().expect("an orphan's ticket is live"),
            });
            return Some(Hold { ticket: Some(piece) });
        }
        // `None` if the owner exited since: it abandoned (or orphaned) `remaining`, and
        // the `taken` permits, registered nowhere, are released by the new hold's drop.
        Some(Hold { ticket: ticket.register_sibling(taken, primitive()) })
    }

    /// Absorbs `other` (same primitive, `theirs` permits) into this hold (`mine`
    /// permits). Returns how many permits the merged hold really has: a side whose
    /// owner's exit already abandoned it (broken or reclaimed) brings none, so nothing is
    /// released twice and nothing live is lost.
    pub(crate) fn merge(
        &mut self,
        mine: usize,
        other: Hold,
        theirs: usize,
        primitive: impl Fn() -> Arc<dyn Abandon>,
    ) -> usize {
        // The registration kept, the permits it covers now, and the other side's live
        // permits, which are held anonymously unless the kept registration takes them.
        let (kept, covered, other_live) = match (self.ticket.take(), other.ticket) {
            (None, None) => return mine + theirs,
            (Some(kept), None) => (kept, mine, theirs),
            (None, Some(kept)) => (kept, theirs, mine),
            (Some(kept), Some(absorbed)) => {
                (kept, mine, if give_back(absorbed, &primitive) { theirs } else { 0 })
            }
        };
        self.ticket = Some(kept);
        let kept = self.ticket.as_mut().expect("just stored");
        // Still registered, or an orphan (still ours, and still an orphan, of both
        // sides' permits: two orphan halves merge back into one): both sides count.
        if kept.set_permits(covered + other_live, &primitive) {
            covered + other_live
        } else if self.is_orphaned() {
            let tag = self.ticket.as_ref().expect("an orphan is registered").orphan_tag();
            primitive().resize_orphan(tag, covered + other_live);
            covered + other_live
        } else {
            // Abandoned by its owner's exit: its permits are gone; the other side's live
            // permits stay, held anonymously (dropping the dead ticket gives it back).
            self.ticket = None;
            other_live
        }
    }

    /// Registers this hold of `permits` to the live owner `owner`, as certainly owned:
    /// from now on that owner's exit with it breaks the primitive. An
    /// exit of either owner racing this is decided once ([`crate::owner::hand_over`]).
    /// `site`: where the hand-over was called, the hold's site from now on if its own is
    /// not known (an anonymous hold: it becomes certainly owned here).
    pub(crate) fn hand_to(
        &mut self,
        owner: OwnerId,
        permits: usize,
        primitive: impl Fn() -> Arc<dyn Abandon>,
        site: Site,
    ) -> Result<(), HandOverError> {
        if self.is_dead() {
            return Err(HandOverError::Abandoned);
        }
        if permits == 0 {
            // Nothing held, nothing to abandon: never registered (a leaked empty piece
            // must not break anything), but the target must still be a live owner.
            return if is_live_owner(owner) { Ok(()) } else { Err(HandOverError::OwnerGone(owner)) };
        }
        match hand_over(self.ticket.take(), owner, permits, &primitive, site) {
            HandedOver::To(ticket) => {
                self.ticket = Some(ticket);
                Ok(())
            }
            HandedOver::TargetGone(ticket) => {
                self.ticket = ticket;
                Err(HandOverError::OwnerGone(owner))
            }
            HandedOver::Abandoned(ticket) => {
                self.ticket = Some(ticket);
                Err(HandOverError::Abandoned)
            }
        }
    }

    /// Turns a certainly owned registration into a moving one (a borrowed token made
    /// `'static`): its owner's exit then orphans it instead of abandoning it.
    pub(crate) fn make_moving(&mut self, permits: usize, primitive: impl Fn() -> Arc<dyn Abandon>) {
        let Some(ticket) = self.ticket.as_ref() else { return };
        if !ticket.is_live() || ticket.moves() {
            return;
        }
        let moving = ticket.register_sibling_as(permits, primitive(), true);
        let previous = self.ticket.take().expect("checked above");
        if give_back(previous, &primitive) {
            self.ticket = moving;
        } else if let Some(mut moving) = moving {
            // Abandoned meanwhile by its owner's exit, which orphaned the moving sibling
            // too: un-count that orphan, and keep the hold dead.
            let tag = moving.orphan_tag();
            if moving.give_back() == Claim::Orphaned {
                primitive().adopt_orphan(tag);
            }
            self.ticket = Some(moving);
        }
    }

    /// Gives up the registration without releasing (`forget`).
    pub(crate) fn forget(self, primitive: impl FnOnce() -> Arc<dyn Abandon>) {
        if let Some(ticket) = self.ticket {
            give_back(ticket, primitive);
        }
    }

    /// What names this hold's registration: its ticket's [`HoldTicket::orphan_tag`], the
    /// tag an exit passes to [`Abandon::abandon_hold`] when it claims the hold; `None`
    /// if anonymous or given back.
    pub(crate) fn ticket_tag(&self) -> Option<OrphanTag> {
        self.ticket.as_ref().filter(|ticket| ticket.is_live()).map(HoldTicket::orphan_tag)
    }

    /// Leaves this hold `keep` of its permits, registered as it is (a downgrade). Whether
    /// the rest are the caller's to release: yes if it is anonymous, still registered, or
    /// an orphan (still ours; the orphan counts `keep` from now on); no if its owner's
    /// exit abandoned it whole. Nothing else is registered meanwhile, so an exit racing
    /// this abandons one hold.
    pub(crate) fn shrink_to(&mut self, keep: usize, primitive: impl Fn() -> Arc<dyn Abandon>) -> bool {
        let Some(ticket) = self.ticket.as_mut() else { return true };
        if ticket.set_permits(keep, &primitive) {
            return true;
        }
        if !self.is_orphaned() {
            return false;
        }
        let tag = self.ticket.as_ref().expect("an orphan is registered").orphan_tag();
        primitive().resize_orphan(tag, keep);
        true
    }

    /// [`Hold::forget`], saying whether the permits were still the holder's: `false` if
    /// its owner's exit abandoned them already (broken or reclaimed).
    pub(crate) fn forget_live(self, primitive: impl FnOnce() -> Arc<dyn Abandon>) -> bool {
        self.ticket.is_none_or(|ticket| give_back(ticket, primitive))
    }
}

impl SemCore {
    /// An exclusive hold (`permits` of them) becomes a shared one of `keep` permits (an
    /// RwLock writer's downgrade): the holder is no longer recorded, the rest of the
    /// permits return, and the kept ones stay registered to the same owner.
    pub(crate) fn downgrade(&self, hold: &mut Hold, permits: usize, keep: usize, primitive: &Arc<SemCore>) {
        debug_assert!(permits == self.exclusive);
        if keep >= permits {
            return; // a lock of one permit: its read holds are as exclusive as a write
        }
        if self.holder.load(Relaxed) != 0 {
            self.holder.store(0, Relaxed);
        }
        // The write hold ends here: its mark must not pass to the next writer's.
        self.end_panicking_mark();
        // The permits let go are never registered (an exit racing this abandons one
        // hold, of `keep` or of all). If the owner's exit abandoned the whole hold already
        // (the lock is broken), nothing is released, but the permits let go are counted
        // back as a dead guard's would be, so that once the read guard is dropped too a
        // repair finds no guard left.
        if hold.shrink_to(keep, || primitive.clone() as Arc<dyn Abandon>) {
            self.release(permits - keep);
        } else {
            self.dead_guard_dropped(permits - keep);
        }
    }

    /// Records `permits` just acquired as held by the caller's owner, if it has one.
    /// `primitive` is what the owner's exit will hand the hold back to.
    /// `moves`: an owned hold (owned guard or permit), which its acquirer's exit orphans
    /// rather than abandons (it may have moved).
    #[inline(always)]
    pub(crate) fn register<P: Abandon + 'static>(
        &self,
        permits: usize,
        caller: Caller,
        primitive: &Arc<P>,
        moves: bool,
        site: Site,
    ) -> Hold {
        // Nothing held, nothing to abandon: a 0-permit hold stays anonymous.
        if permits == 0 {
            return Hold::default();
        }
        if permits == self.exclusive {
            self.begin_panicking_mark();
        }
        // Registration fails only if the owner already exited, which the code running now
        // cannot be, except when a `Tracked` is polled again after its poll panicked: such
        // a hold is kept anonymous (released on drop) rather than failing the acquire.
        // The holder is recorded only for a hold its owner certainly has (a borrowed
        // guard): an owned hold may move to another task at once, and its acquirer
        // would then be taken for the holder (a false `WouldDeadlock` on a strict mutex).
        // A grant recorded the grantee already (see `grant_front`): cleared for it.
        let Some((owner, ticket)) = register_hold(caller, permits, primitive, moves, site) else {
            return self.register_anonymous(permits, moves, site);
        };
        if permits == self.exclusive {
            if moves {
                self.clear_holder();
            } else {
                self.record_holder(owner, site);
            }
        }
        Hold { ticket }
    }

    /// [`SemCore::register`] of a hold nobody answers for (an async acquire outside any
    /// owner): counted if the code running now is an untracked runtime task, whose id
    /// (read once) is also the holder's identity for would-deadlock checks.
    #[inline]
    fn register_anonymous(&self, permits: usize, moves: bool, site: Site) -> Hold {
        let task = crate::runtime::task_identity();
        if task.is_some() {
            self.anonymous.note_in_task(self.kind, self.name.as_deref(), site, permits == self.exclusive);
        }
        if permits == self.exclusive {
            if moves {
                self.clear_holder();
            } else if let Some(identity) = task {
                self.record_holder(identity, site);
            }
        }
        Hold::default()
    }

    /// Ends a hold whose guard is being dropped: a normal release, or, for a mutex guard
    /// dropped while its thread panics, an abandonment (`Panicked`).
    #[inline(always)]
    pub(crate) fn end_hold(&self, hold: Hold, permits: usize) {
        // Inline, and small: the common end (no panic, and a hold still registered or
        // anonymous). The rest is out of line, in `ended_after_claim` and
        // `end_hold_in_panic`: as one call with its register saves, this function cost a
        // tracked lock + unlock about 20 instructions (callgrind).
        if permits == self.exclusive && self.cut_short_armed.load(Relaxed) {
            return self.end_hold_armed(hold, permits);
        }
        let panicking = permits == self.exclusive && self.panic_began_in_section();
        match hold.ticket {
            Some(ticket) if !panicking => {
                let tag = ticket.orphan_tag();
                match ticket.unregister() {
                    Claim::Ours => {}
                    claim => return self.ended_after_claim(claim, tag, permits),
                }
            }
            None if !panicking => {}
            ticket => return self.end_hold_in_panic(ticket, permits),
        }
        self.release_hold(permits);
    }

    /// The normal release of an ended hold.
    #[inline]
    pub(super) fn release_hold(&self, permits: usize) {
        if permits == self.exclusive {
            self.clear_holder();
        }
        self.release(permits);
    }

    /// [`SemCore::end_hold`] of a hold whose owner's exit claimed it first.
    #[cold]
    #[inline(never)]
    fn ended_after_claim(&self, claim: Claim, tag: OrphanTag, permits: usize) {
        if self.settle_claim(claim, tag, permits) {
            self.release_hold(permits);
        }
    }

    /// Acts on what giving an ended hold's ticket back found: whether its permits are
    /// still the caller's to release (or abandon). `false` if the owner's exit abandoned
    /// the hold already (its guard is gone now); an orphan is adopted, and is the caller's.
    pub(super) fn settle_claim(&self, claim: Claim, tag: OrphanTag, permits: usize) -> bool {
        match claim {
            Claim::Abandoned => {
                self.dead_guard_dropped(permits);
                false
            }
            Claim::Orphaned => {
                self.adopt_orphan(tag);
                true
            }
            Claim::Ours => true,
        }
    }

    /// [`SemCore::end_hold`] of a mutex guard dropped in a panic that began inside its
    /// critical section: an abandonment (`Panicked`), naming the owner.
    #[cold]
    #[inline(never)]
    fn end_hold_in_panic(&self, ticket: Option<HoldTicket>, permits: usize) {
        let abandoner = match ticket {
            // Who to name is read while the ticket still keeps its record alive: its
            // owner, or for an owned hold (which may have moved) or one forwarded from a
            // completed nested scope (its enclosing owner's now) whoever panics here.
            Some(ref ticket) if ticket.moves() || ticket.is_forwarded() => {
                current_abandoner(Caller::Blocking).or_else(|| ticket.abandoner())
            }
            Some(ref ticket) => ticket.abandoner(),
            // No tracked owner: the panicking thread is who abandoned it.
            None => current_abandoner(Caller::Blocking),
        };
        let site = ticket.as_ref().and_then(HoldTicket::site);
        if let Some(ticket) = ticket {
            let tag = ticket.orphan_tag();
            if !self.settle_claim(ticket.unregister(), tag, permits) {
                return;
            }
        }
        match abandoner {
            Some(abandoner) => {
                self.abandon(&abandoner, AbandonReason::Panicked, permits, site);
                self.return_after_break(permits);
            }
            None => self.release_hold(permits),
        }
    }

    /// Whether the mutex hold ending now ends in a panic that began inside its critical
    /// section: the thread unwinds, and it did not yet when the hold was taken (a
    /// complete section run by a `Drop` during an unrelated unwind breaks nothing, as
    /// std's mutex stays unpoisoned there). Resets the mark for the next hold.
    #[inline(always)]
    fn panic_began_in_section(&self) -> bool {
        let taken_while_panicking = self.taken_while_panicking.load(Relaxed);
        if taken_while_panicking {
            self.taken_while_panicking.store(false, Relaxed);
        }
        !taken_while_panicking && std::thread::panicking()
    }

    /// An exclusive hold begins: its mark says whether its thread unwinds now. Set or
    /// cleared, whatever an earlier hold left (one that ended without a drop, as a
    /// downgrade or a leaked guard does, must not lend its mark to this one). Stored only
    /// when it changes: the common case, no panic and no mark, is one load.
    #[inline(always)]
    fn begin_panicking_mark(&self) {
        let panicking = std::thread::panicking();
        if self.taken_while_panicking.load(Relaxed) != panicking {
            self.taken_while_panicking.store(panicking, Relaxed);
        }
    }

    /// An exclusive hold ends without its guard's drop (a downgrade): its mark goes.
    #[inline]
    fn end_panicking_mark(&self) {
        if self.taken_while_panicking.load(Relaxed) {
            self.taken_while_panicking.store(false, Relaxed);
        }
    }

    /// The guard of a hold its owner's exit abandoned is dropped. A primitive that guards
    /// data was broken by that abandonment (it never reclaims): the permits come back
    /// into its count, so that a repair can tell when no guard of it is left (see
    /// [`SemCore::try_begin_repair`]). A counted primitive's count does not change.
    #[cold]
    fn dead_guard_dropped(&self, permits: usize) {
        if self.repairable() {
            self.return_after_break(permits);
        }
    }

    /// Counts `permits` back into a primitive that is broken, or about to be: an exit
    /// claims a hold under its owner's lock and breaks the primitive just after, so a
    /// guard dropped in between leaves its permits for the break to count in.
    #[cold]
    pub(super) fn return_after_break(&self, permits: usize) {
        if !self.repairable() {
            return;
        }
        let mut shared = self.shared.lock();
        if shared.broken.is_some() {
            self.state.fetch_add(permits << SHIFT, AcqRel);
        } else {
            shared.returned_before_break += permits;
        }
    }

    /// Registers a mutex hold granted to a condition waiter, to `owner`, who answered for
    /// the guard the waiter gave up (the guard comes back as it was); to the owner of the
    /// `caller` kind of entry point if there was none (anonymous, in async code outside
    /// any tracked task), or if `owner` is gone by now.
    pub(crate) fn register_granted(
        self: &Arc<Self>,
        owner: Option<OwnerId>,
        caller: Caller,
        site: Site,
    ) -> Hold {
        // Handed to another owner before the wait (`hand_to`): it answers for it again.
        let elsewhere = owner.filter(|&owner| owner_id_for(caller) != Some(owner));
        if let Some(owner) = elsewhere {
            if let Ok(hold) = Hold::registered_to(owner, 1, self.clone(), site) {
                self.begin_panicking_mark();
                self.record_holder(owner, site);
                return hold;
            }
        }
        self.register(1, caller, self, false, site)
    }

    /// Stores a `Lock`'s manual hold.
    pub(crate) fn store_manual(&self, hold: Hold) {
        let owner = hold.owner_id();
        let previous = self.shared.lock().manual.replace((owner, hold));
        debug_assert!(previous.is_none(), "a mutex has one holder");
    }

    /// A `Lock`'s manual hold whose owner has exited, taken out of the broken mutex (call
    /// it with the lot locked, after the break): the hold being abandoned now. A mutex has
    /// one hold at a time, and an abandoned one keeps its permit out until the break, so
    /// while an abandonment is settled no other manual hold can be stored. No guard of it
    /// exists anywhere, so its permit is counted back into the broken count at once, as a
    /// dead guard's is when dropped: a repair can begin, and a `release` says `NotHeld`
    /// (rather than `NotOwner` naming the exited owner, for ever). Returns the hold, whose
    /// dead ticket the caller gives back once the lot is unlocked.
    pub(super) fn settle_abandoned_manual(&self, shared: &mut Shared) -> Option<Hold> {
        // Its owner's exit detached the owner's body before abandoning, so nobody answers
        // for it any more (an anonymous manual hold has no owner to exit: never here).
        let exited = |hold: &Hold| hold.ticket.is_some() && hold.answering_owner().is_none();
        if !shared.manual.as_ref().is_some_and(|(_, hold)| exited(hold)) {
            return None;
        }
        let (_, hold) = shared.manual.take().expect("checked above");
        debug_assert!(shared.broken.is_some(), "settled by its break");
        self.state.fetch_add(self.exclusive << SHIFT, AcqRel);
        self.end_panicking_mark();
        Some(hold)
    }

    /// Takes a `Lock`'s manual hold back for `caller`, checking it is the holder.
    pub(crate) fn take_manual(&self, caller: OwnerId) -> Result<Hold, ReleaseError> {
        let mut shared = self.shared.lock();
        match &shared.manual {
            Some((Some(holder), _)) if *holder != caller => {
                Err(ReleaseError::NotOwner { holder: Some(*holder), caller })
            }
            Some(_) => Ok(shared.manual.take().expect("checked above").1),
            None => {
                // Not manually held. Held through someone's guard, or not at all.
                let locked = self.state.load(Acquire) >> SHIFT == 0;
                match self.holder() {
                    Some(holder) if locked && holder != caller => {
                        Err(ReleaseError::NotOwner { holder: Some(holder), caller })
                    }
                    None if locked => Err(ReleaseError::NotOwner { holder: None, caller }),
                    _ => Err(ReleaseError::NotHeld),
                }
            }
        }
    }
}
