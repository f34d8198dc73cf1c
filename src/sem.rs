//! The counted core: permits, a FIFO lot, owner registration, break/close, all in one
//! place (what tokio's `batch_semaphore` is to tokio, plus owners).
//!
//! The permit count and three flags share one atomic word, so the uncontended acquire
//! and release are one CAS each. `SLOW` changes only under the lot's lock. It is set
//! while waiters are queued or permits are owed (`debt`, from shrinking a limiter), and
//! it may stay set a while after: a release that hands its permits to the last waiter
//! leaves it, when no permit is free, for the next release to clear (see
//! [`SemCore::release_locked`]). Both fast paths refuse to run while it is set, so once
//! anyone waits, every acquire queues behind them and every release goes through the
//! lock and hands its permits straight to the head of the queue: strict FIFO, no
//! barging, no lost wake-up. `BROKEN` and `CLOSED` are only ever added with `fetch_or`
//! or carried through every CAS, so no path can clear them (tokio #8020).

use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::clock::Stamp;
use crate::diagnostics::{HoldInfo, OrphanInfo, WaitInfo};
#[cfg(feature = "tracing")]
use crate::diagnostics::{ShowDuration, ShowSite};
use crate::error::{
    AbandonReason, AcquireError, Broken, BrokenResourceError, HandOverError, PrimitiveKind, ReleaseError,
    RepairError, TryAcquireError,
};
use crate::loom::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, SPIN_LIMIT, UnsafeCell, spin_hint};
use crate::lot::{Outcome, Parked, Settlement, WaitMeta, WaitQueue, WakeList};
use crate::owner::{
    Abandon, Abandoner, Caller, Claim, HandedOver, HoldTicket, OrphanSplit, OrphanTag, OwnerId, Site,
    current_abandoner, hand_over, identity_for, is_live_owner, owner_id_for, register_hold, register_to,
};
use crate::runtime;

const CLOSED: usize = 1;
const BROKEN: usize = 2;
const SLOW: usize = 4;
const FLAGS: usize = CLOSED | BROKEN | SLOW;
const SHIFT: u32 = 3;

/// The most permits a semaphore can hold, as in tokio (3 bits are flags).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> SHIFT;

/// What a counted primitive does when an owner abandons a hold on it.
///
/// ```
/// use ownsync::{AbandonPolicy, Semaphore};
/// let sem = Semaphore::with_policy(4, AbandonPolicy::Reclaim);
/// assert_eq!(sem.policy(), AbandonPolicy::Reclaim);
/// assert_eq!(Semaphore::new(4).policy(), AbandonPolicy::Break);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbandonPolicy {
    /// The primitive breaks: every waiter, now and later, gets `Broken` (Trio's rule).
    #[default]
    Break,
    /// The abandoned permits return to the pool and waiters are served; the event is
    /// counted in `statistics()`. For a server that must keep its capacity even when a
    /// handler leaks. Semaphore and CapacityLimiter only, which guard no data: a
    /// primitive that guards data never reclaims (an `RwLock` built with it breaks on an
    /// abandoned read hold as on a write hold: the leaked read guard may still be in use,
    /// and a writer let in beside it would alias it).
    Reclaim,
}

/// How often a primitive's holds were abandoned, and the latest one.
///
/// ```
/// use ownsync::{AbandonPolicy, Semaphore};
/// let sem = Semaphore::with_policy(1, AbandonPolicy::Reclaim);
/// assert_eq!(sem.statistics().abandoned().count(), 0);
/// assert!(sem.statistics().abandoned().last().is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Abandonments {
    count: u64,
    last: Option<(OwnerId, AbandonReason)>,
}

impl Abandonments {
    /// How many holds were abandoned (broken or reclaimed).
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The owner and reason of the latest abandoned hold.
    pub fn last(&self) -> Option<(OwnerId, AbandonReason)> {
        self.last
    }
}

/// A hold's registration to its owner; `None` for an anonymous hold.
///
/// Every guard, permit and token wraps one, so what can happen to a registration
/// (release, split, merge, hand-over, an exit that claimed it) is written once, here.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    ticket: Option<HoldTicket>,
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

    /// An owned hold whose acquirer's exit is no evidence (it is orphaned, not abandoned).
    pub(crate) fn moves(&self) -> bool {
        self.ticket.as_ref().is_some_and(HoldTicket::moves)
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
}

#[derive(Default)]
struct Shared {
    queue: WaitQueue,
    broken: Option<BrokenResourceError>,
    /// Permits owed after a shrink below what is held: releases pay this first.
    debt: usize,
    /// A pool's total (a `CapacityLimiter`'s tokens), kept beside `debt` under this lock
    /// so that what is held, `total + debt - free`, reads consistently (see
    /// [`SemCore::pool`]). Maintained only by [`SemCore::set_pool_total`].
    pool_total: usize,
    /// What was held when the primitive broke, less what was released or abandoned
    /// since: a broken pool no longer counts releases back, so this is what
    /// [`SemCore::pool`] reports as held from then on.
    held_when_broken: usize,
    abandoned: Abandonments,
    /// Owned holds whose acquirer exited while they were registered to it, not released
    /// or adopted since (visible, never silent).
    orphans: Vec<OrphanInfo>,
    /// Orphans adopted before they were counted: an owner's exit claims a moved hold
    /// under its record's lock and counts it here only after, so the hold's release
    /// elsewhere can come in between. The count then skips it (see `Abandon::orphan`).
    adopted_before_counted: Vec<OrphanTag>,
    /// Orphans split or merged before they were counted (the same race): the permits
    /// each has now, for the count to use (see `Abandon::orphan`).
    resized_before_counted: Vec<(OrphanTag, usize)>,
    /// At least since when the current exclusive hold is held, from when it was first
    /// seen with a waiter behind it: stamped when it is handed to a waiter while others
    /// still wait (a clock read at that hand-off), else, with no clock read of its own,
    /// by the next waiter that queues behind it (with the time that waiter read for its
    /// own start), or by the next snapshot that sees it with waiters. Forgotten whenever
    /// the queue empties (the next hold may then be taken and given back on the fast
    /// paths, which never look here). So it is never too early.
    hold_since: Option<Stamp>,
    /// Whether the long-hold warning was given for the hold of `hold_since`.
    hold_warned: bool,
    /// When an eventually fair primitive's next strict hand-off is due (see
    /// [`SemCore::set_eventually_fair`]). Unread under loom, whose `fair_turn` counts.
    #[cfg_attr(loom, allow(dead_code))]
    fair_deadline: Option<std::time::Instant>,
    /// Contended releases so far, under loom (see `fair_turn`).
    #[cfg(loom)]
    fair_releases: u64,
    /// A `Lock`'s manual hold (`acquire`/`release` without a guard) and its owner.
    manual: Option<(Option<OwnerId>, Hold)>,
    /// Permits of abandoned holds whose guards were dropped after their owner's exit
    /// claimed them but before its abandonment broke the primitive: counted back in by
    /// the break (see [`SemCore::return_after_break`]).
    returned_before_break: usize,
    /// The latest break's error, kept after a repair for the waiters it failed.
    last_break: Option<BrokenResourceError>,
    /// Who else must hear of a break: the conditions used with this mutex, whose
    /// waiters are not in this queue until notified.
    break_hooks: Vec<Weak<dyn BreakHook>>,
}

impl Shared {
    /// Forgets the exclusive hold's stamp once nobody waits (see [`Shared::hold_since`]).
    fn forget_hold_stamp_if_idle(&mut self) {
        if self.queue.is_empty() {
            self.hold_since = None;
        }
    }

    /// What a pool holds while `free` of its permits are free: `total + debt - free` (a
    /// limiter's; see [`SemCore::pool`]).
    fn held_with_free(&self, free: usize) -> usize {
        (self.pool_total + self.debt).saturating_sub(free)
    }

    /// `permits` of a broken pool came back or were abandoned: no longer held (see
    /// `held_when_broken`).
    fn held_no_more(&mut self, permits: usize) {
        self.held_when_broken = self.held_when_broken.saturating_sub(permits);
    }
}

/// Something that must fail its own waiters when a primitive breaks (a condition).
pub(crate) trait BreakHook: Send + Sync {
    /// The primitive broke. Called with no lock held.
    fn primitive_broke(&self);
}

/// Acquires `$permits` of `$core` for `$caller` inside the calling `async fn`, `?`-ing
/// the error: the one-CAS [`TakeUncontended`] first, the queued [`AcquireFuture`] only if
/// that fails. A macro rather than an `async fn` because each `async fn` layer between a
/// public acquire and the core costs more than the fast path saves (measured: 4-6 ns
/// uncontended, ~15 ns per contended hand-off).
macro_rules! acquire_permits {
    ($core:expr, $permits:expr, $caller:expr, $site:expr) => {
        if !$core.take_uncontended($permits).await {
            $core.acquire($permits, $caller, $site).await?;
        }
    };
}
pub(crate) use acquire_permits;

/// [`acquire_permits!`], then registers them: evaluates to the [`Hold`]. `$primitive`
/// is the `Arc` the owner's exit hands the hold back to; `moves` is true for owned holds.
macro_rules! acquire_hold {
    ($core:expr, $permits:expr, $caller:expr, $primitive:expr, moves: $moves:expr, site: $site:expr) => {{
        crate::sem::acquire_permits!($core, $permits, $caller, $site);
        $core.register($permits, $caller, $primitive, $moves, $site)
    }};
}
pub(crate) use acquire_hold;

/// The accessors every primitive's statistics snapshot shares (a struct with a
/// `core: CoreSnapshot` field), so the three primitives report them alike.
macro_rules! common_statistics {
    ($stats:ty) => {
        impl $stats {
            /// How many waiters were queued.
            pub fn waiters(&self) -> usize {
                self.core.waiters
            }
            /// Why it is broken, if it is.
            pub fn broken(&self) -> Option<&crate::error::BrokenResourceError> {
                self.core.broken.as_ref()
            }
            /// Abandoned holds so far (broken or reclaimed) and the latest one.
            pub fn abandoned(&self) -> crate::sem::Abandonments {
                self.core.abandoned
            }
            /// Owned holds (owned guards, permits, `'static` tokens) whose acquirer
            /// exited while they were still out, and that nobody has released or
            /// adopted since: they may be in use elsewhere, or leaked. They never break
            /// the primitive; hand them over to make their next owner answer for them.
            /// Counted by holds, not permits: an orphaned permit split in two is two
            /// orphans (each half answered for by nobody) until each is released,
            /// adopted or merged into another hold; two orphans merged are one. The
            /// permits of each are in [`Self::orphans`].
            pub fn orphaned(&self) -> usize {
                self.core.orphans.len()
            }
            /// The exclusive hold (a mutex's, a writer's), with its owner, site and how
            /// long it has been held; empty when there is none (counted holds are only
            /// counted here: see [`crate::diagnostics::HoldInfo`]).
            pub fn holds(&self) -> &[crate::diagnostics::HoldInfo] {
                &self.core.holds
            }
            /// The queued waiters in queue order, with their owners, sites, how long
            /// each has waited, and which are self-waits.
            pub fn waits(&self) -> &[crate::diagnostics::WaitInfo] {
                &self.core.waits
            }
            /// The orphaned owned holds (see [`Self::orphaned`]), with their acquirers
            /// and sites.
            pub fn orphans(&self) -> &[crate::diagnostics::OrphanInfo] {
                &self.core.orphans
            }
        }
    };
}
pub(crate) use common_statistics;

/// A snapshot of the core for `statistics()`.
#[derive(Clone, Debug)]
pub(crate) struct CoreSnapshot {
    pub(crate) available: usize,
    pub(crate) waiters: usize,
    pub(crate) broken: Option<BrokenResourceError>,
    pub(crate) closed: bool,
    pub(crate) abandoned: Abandonments,
    pub(crate) orphans: Vec<OrphanInfo>,
    pub(crate) holder: Option<OwnerId>,
    pub(crate) holds: Vec<HoldInfo>,
    pub(crate) waits: Vec<WaitInfo>,
    /// Waiters that are the holder itself (a mutex only): a sibling sub-future of the
    /// holding task may still release, or this is a futurelock.
    pub(crate) self_waits: usize,
}

/// What [`SemCore::overdue`] found, to report once the lock is released. Empty (and
/// free to pass around) without the `tracing` feature.
#[derive(Default)]
struct Overdue {
    #[cfg(feature = "tracing")]
    self_waits: Vec<(Option<OwnerId>, Site, Duration)>,
    #[cfg(feature = "tracing")]
    waits: Vec<(Option<OwnerId>, Site, Duration, usize)>,
    /// The long exclusive hold, and how many wait for it.
    #[cfg(feature = "tracing")]
    hold: Option<(HoldInfo, usize)>,
}

/// The counted core under every primitive.
pub(crate) struct SemCore {
    state: AtomicUsize,
    /// The owner of the current exclusive hold (0: none, or anonymous).
    holder: AtomicU64,
    /// Where the current exclusive hold was taken (null: none, or unknown). Only ever a
    /// `&'static Location` or null.
    holder_site: AtomicPtr<std::panic::Location<'static>>,
    /// Whether the current exclusive hold was taken while its thread was already
    /// unwinding: a panic that did not begin inside the critical section, so dropping the
    /// guard during it is no abandonment (std's poisoning rule). It describes that one
    /// hold: recomputed by every exclusive hold that registers, cleared when one ends
    /// (dropped, or downgraded to a shared hold). Written only by the holder.
    taken_while_panicking: AtomicBool,
    /// The registration of the current exclusive hold (a mutex's, an RwLock writer's),
    /// kept here rather than in its guard, so that such a guard is one pointer (tokio's
    /// size). Reached only by that hold's guard, through [`InCore`](crate::guard::InCore),
    /// as the data is: see [`SemCore::put_exclusive_hold`].
    exclusive_hold: UnsafeCell<HoldWords>,
    shared: Mutex<Shared>,
    kind: PrimitiveKind,
    name: Option<Arc<str>>,
    policy: AbandonPolicy,
    /// Strict mode (a mutex): a self-wait is `WouldDeadlock` at once instead of a wait.
    /// (An atomic rather than a `bool` set through `Arc::get_mut`: the `diagnostics`
    /// registry keeps a weak reference from the start.)
    strict: AtomicBool,
    /// Eventual fairness (opt-in): a release puts its permits back for anyone to take
    /// and wakes the head waiter to try again, except for a fair hand-off at least every
    /// [`FAIR_INTERVAL`]. See [`SemCore::set_eventually_fair`].
    barging: AtomicBool,
    /// How many permits an exclusive hold takes: 1 for a mutex, every permit for an
    /// RwLock's writer; [`NOT_EXCLUSIVE`] for counted primitives. An exclusive hold
    /// records its holder, breaks the primitive when dropped in a panic that began in its
    /// section (its data may be half-updated), and always breaks it when abandoned.
    exclusive: usize,
}

/// How many spin steps a thread waiting on an eventually fair primitive tries for the
/// permits before it queues (a few microseconds): the longer it stays out of the queue,
/// the more of the holder's releases take the fast path (measured on 2 threads: 189 ns
/// per lock at 50 steps, 142 at 200, 128 at 2,000). None under loom.
const BARGE_SPIN_LIMIT: u32 = SPIN_LIMIT * 10;

/// How long an eventually fair primitive may let acquires barge before a release hands
/// over strictly to the head waiter (parking_lot's figure). Unused under loom, whose
/// `fair_turn` counts instead.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const FAIR_INTERVAL: Duration = Duration::from_micros(500);

/// [`SemCore::exclusive`] of a primitive without exclusive holds: no hold has that many
/// permits (more than `MAX_PERMITS`).
const NOT_EXCLUSIVE: usize = usize::MAX;

/// A registered [`Hold`]'s ticket taken apart into its two words (the owner record,
/// null while the cell is empty; the slot). Stored and loaded a word at a time, never as
/// one 16-byte copy, whose load right after two 8-byte stores stalls store-to-load
/// forwarding (measured: an uncontended `try_lock` + drop 17 -> 22 ns).
struct HoldWords(*mut (), usize);

impl HoldWords {
    const EMPTY: HoldWords = HoldWords(std::ptr::null_mut(), 0);
}

// SAFETY: the words of a `Hold`, which is `Send`.
unsafe impl Send for HoldWords {}

// SAFETY: `exclusive_hold` is the one field not `Sync` by itself (an `UnsafeCell`); it is
// reached only by the guard of the exclusive hold, one at a time (see
// `put_exclusive_hold`), exactly as a mutex's data is.
unsafe impl Sync for SemCore {}

impl SemCore {
    /// Keeps the registration of the exclusive hold just taken, for its guard.
    ///
    /// # Safety
    /// For this and [`take_exclusive_hold`](Self::take_exclusive_hold): the caller is the
    /// guard of the current exclusive hold (it holds this core's exclusive permits and
    /// has not given them back), reached through `&mut`: no other guard can exist, and
    /// this one makes no second call at the same time. Each access before the permits'
    /// release happens before the next holder's, through the release and acquire of the
    /// permits themselves. The cell is empty between holds: a guard takes the hold out
    /// before its permits go back, and a hold is put once.
    #[inline]
    pub(crate) unsafe fn put_exclusive_hold(&self, hold: Hold) {
        // Anonymous: the cell is empty already, nothing to store and nothing to load later.
        let Some(ticket) = hold.ticket else { return };
        let (owner, slot) = ticket.into_words();
        // SAFETY: by the caller's contract, this is the only access to the cell now.
        self.exclusive_hold.with_mut(|cell| unsafe {
            debug_assert!((*cell).0.is_null(), "a previous exclusive hold left its registration");
            (*cell).0 = owner.as_ptr();
            (*cell).1 = slot;
        });
    }

    /// Takes the registration of the current exclusive hold out, leaving the cell empty.
    ///
    /// # Safety
    /// As for [`put_exclusive_hold`](Self::put_exclusive_hold).
    #[inline]
    pub(crate) unsafe fn take_exclusive_hold(&self) -> Hold {
        // SAFETY: by the caller's contract, this is the only access to the cell now; the
        // words are one hold's, put once and taken once (the owner word is cleared).
        self.exclusive_hold.with_mut(|cell| unsafe {
            let Some(owner) = std::ptr::NonNull::new((*cell).0) else { return Hold::default() };
            (*cell).0 = std::ptr::null_mut();
            Hold { ticket: Some(HoldTicket::from_words(owner, (*cell).1)) }
        })
    }

    #[track_caller]
    pub(crate) fn new(
        permits: usize,
        kind: PrimitiveKind,
        name: Option<Arc<str>>,
        policy: AbandonPolicy,
    ) -> Self {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore may not have more than MAX_PERMITS permits ({MAX_PERMITS})"
        );
        SemCore {
            state: AtomicUsize::new(permits << SHIFT),
            holder: AtomicU64::new(0),
            holder_site: AtomicPtr::new(std::ptr::null_mut()),
            taken_while_panicking: AtomicBool::new(false),
            exclusive_hold: UnsafeCell::new(HoldWords::EMPTY),
            shared: Mutex::new(Shared { pool_total: permits, ..Shared::default() }),
            kind,
            name,
            policy,
            strict: AtomicBool::new(false),
            barging: AtomicBool::new(false),
            exclusive: match kind {
                PrimitiveKind::Mutex => 1,
                PrimitiveKind::RwLock => permits,
                _ => NOT_EXCLUSIVE,
            },
        }
    }

    /// Turns eventual fairness on: an acquire may take free permits while others wait
    /// (barging), a release wakes the head waiter to try again instead of handing the
    /// permits to it, and a release hands them over strictly (FIFO) when
    /// [`FAIR_INTERVAL`] has passed since the last such hand-off, so no waiter starves.
    /// parking_lot's rule; it spares two threads a cross-core wake per lock.
    pub(crate) fn set_eventually_fair(&self) {
        self.barging.store(true, Relaxed);
    }
    pub(crate) fn is_eventually_fair(&self) -> bool {
        self.barging.load(Relaxed)
    }

    /// Turns strict mode on: see [`SemCore::would_deadlock`].
    pub(crate) fn set_strict(&self) {
        self.strict.store(true, Relaxed);
    }
    pub(crate) fn is_strict(&self) -> bool {
        self.strict.load(Relaxed)
    }

    /// Records `owner` as the holder of an exclusive hold of `permits` (a hand-over).
    pub(crate) fn set_holder(&self, owner: OwnerId, permits: usize) {
        if permits == self.exclusive {
            self.holder.store(owner.as_u64(), Relaxed);
        }
    }

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
        // The permits let go are registered nowhere; if the owner's exit abandoned the
        // whole hold already (the lock is broken), nothing is released.
        if let Some(released) = hold.split_off(keep, permits - keep, || primitive.clone() as Arc<dyn Abandon>)
        {
            released.forget(|| primitive.clone() as Arc<dyn Abandon>);
            self.release(permits - keep);
        }
    }

    /// How many permits an exclusive hold takes (see [`SemCore::exclusive`]).
    pub(crate) fn exclusive_permits(&self) -> usize {
        self.exclusive
    }

    #[cfg(feature = "diagnostics")]
    pub(crate) fn kind(&self) -> PrimitiveKind {
        self.kind
    }
    #[cfg(feature = "diagnostics")]
    pub(crate) fn name_arc(&self) -> Option<Arc<str>> {
        self.name.clone()
    }
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub(crate) fn policy(&self) -> AbandonPolicy {
        self.policy
    }

    pub(crate) fn available(&self) -> usize {
        self.state.load(Acquire) >> SHIFT
    }
    pub(crate) fn is_broken(&self) -> bool {
        self.state.load(Acquire) & BROKEN != 0
    }
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }
    /// Whether waiters are queued or permits are owed.
    #[cfg(test)]
    pub(crate) fn is_contended(&self) -> bool {
        self.state.load(Acquire) & SLOW != 0
    }

    /// The registered holder of a mutex (`None` when free or held anonymously).
    pub(crate) fn holder(&self) -> Option<OwnerId> {
        OwnerId::from_u64(self.holder.load(Relaxed))
    }

    pub(crate) fn snapshot(&self) -> CoreSnapshot {
        let mut shared = self.shared.lock();
        self.stamp_hold(&mut shared, Stamp::now);
        let snapshot = self.snapshot_locked(&mut shared);
        let overdue = self.overdue(&mut shared);
        drop(shared);
        self.report(overdue);
        snapshot
    }

    /// The snapshot, taken under the lot's lock (`shared`).
    fn snapshot_locked(&self, shared: &mut Shared) -> CoreSnapshot {
        let state = self.state.load(Acquire);
        let holder = self.holder();
        let self_waits = holder.map_or(0, |holder| shared.queue.waiting_as(holder));
        let waits = shared
            .queue
            .waits()
            .map(|(permits, meta)| WaitInfo {
                owner: meta.owner(),
                permits,
                site: meta.site,
                waited_for: meta.since().elapsed(),
                self_wait: holder.is_some() && meta.owner() == holder,
                #[cfg(feature = "diagnostics")]
                holding: meta.holding.to_vec(),
            })
            .collect();
        CoreSnapshot {
            available: state >> SHIFT,
            waiters: shared.queue.len(),
            broken: shared.broken.clone(),
            closed: state & CLOSED != 0,
            abandoned: shared.abandoned,
            orphans: shared.orphans.clone(),
            holder,
            holds: self.exclusive_hold(shared, state).into_iter().collect(),
            waits,
            self_waits,
        }
    }

    /// The exclusive hold, if there is one: its holder is recorded, or, for a mutex
    /// without a recorded holder (held anonymously), its one permit is out.
    fn exclusive_hold(&self, shared: &Shared, state: usize) -> Option<HoldInfo> {
        let owner = self.holder();
        let held = owner.is_some() || (self.kind == PrimitiveKind::Mutex && state >> SHIFT == 0);
        if !held || state & BROKEN != 0 {
            return None;
        }
        Some(HoldInfo {
            owner,
            permits: self.exclusive,
            site: self.holder_site(),
            held_for: shared.hold_since.map(Stamp::elapsed),
        })
    }

    /// Where the current exclusive hold was taken.
    pub(crate) fn holder_site(&self) -> Site {
        let site = self.holder_site.load(Relaxed);
        // SAFETY: `holder_site` only ever holds null or a pointer made from a
        // `&'static Location` (see `record_holder`), valid for the whole program.
        unsafe { site.as_ref() }
    }

    /// Records the owner and site of an exclusive hold that begins now.
    #[inline]
    fn record_holder(&self, owner: OwnerId, site: Site) {
        self.holder.store(owner.as_u64(), Relaxed);
        let site = site.map_or(std::ptr::null_mut(), |site| std::ptr::from_ref(site).cast_mut());
        self.holder_site.store(site, Relaxed);
    }

    /// Clears the exclusive holder (the hold ends, or will never be collected).
    #[inline]
    fn clear_holder(&self) {
        // Only if one was recorded: an anonymous hold leaves it 0, and a store just
        // before the release's CAS would make that CAS wait for it to drain.
        // A swap, not a store: a scope's forward (`forward_holder`) may move the holder
        // meanwhile, and a plain store after a load of the old value may be ordered
        // before that compare-exchange, leaving the forward's owner recorded (loom's
        // `a_scopes_forward_races_a_release_elsewhere`).
        if self.holder.load(Relaxed) != 0 {
            self.holder.swap(0, Relaxed);
            self.holder_site.store(std::ptr::null_mut(), Relaxed);
        }
    }

    /// What lasted past the thresholds of [`crate::diagnostics`] and was not reported
    /// yet: self-waits, long waits, a long exclusive hold that others wait for. The lazy
    /// check, run wherever the slow path holds the lot's lock anyway: one load of each
    /// threshold when they are off (long waits are, by default), O(1) otherwise.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn overdue(&self, shared: &mut Shared) -> Option<Overdue> {
        #[cfg(feature = "tracing")]
        if shared.queue.has_self_waits() || crate::diagnostics::long_wait_warning().is_some() {
            return self.find_overdue(shared);
        }
        None
    }

    #[cfg(feature = "tracing")]
    #[cold]
    #[inline(never)]
    fn find_overdue(&self, shared: &mut Shared) -> Option<Overdue> {
        let mut overdue = Overdue::default();
        if let Some(threshold) =
            shared.queue.has_self_waits().then(crate::diagnostics::self_wait_warning).flatten()
        {
            overdue.self_waits = shared.queue.lasting_self_waits(threshold, self.holder());
        }
        if let Some(threshold) = crate::diagnostics::long_wait_warning() {
            overdue.waits = shared.queue.long_waits(threshold);
            if shared.hold_since.is_some_and(|since| !shared.hold_warned && since.elapsed() >= threshold) {
                shared.hold_warned = true;
                let state = self.state.load(Acquire);
                overdue.hold = self.exclusive_hold(shared, state).map(|hold| (hold, shared.queue.len()));
            }
        }
        let found = !overdue.self_waits.is_empty() || !overdue.waits.is_empty() || overdue.hold.is_some();
        found.then_some(overdue)
    }

    /// One `WARN` event (target `ownsync`) per overdue wait or hold. Call unlocked.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    #[inline]
    fn report(&self, overdue: Option<Overdue>) {
        #[cfg(feature = "tracing")]
        if let Some(overdue) = overdue {
            self.report_overdue(overdue);
        }
    }

    #[cfg(feature = "tracing")]
    #[cold]
    fn report_overdue(&self, overdue: Overdue) {
        let (kind, name) = (self.kind, self.name.as_deref());
        let show = |owner: Option<OwnerId>| {
            owner.map_or_else(|| "an anonymous waiter".to_owned(), |o| o.to_string())
        };
        // Every event names the primitive, the owner and the site; the rest is its own.
        macro_rules! warn_about {
            ($owner:expr, $site:expr, $($rest:tt)*) => {
                tracing::warn!(target: "ownsync", primitive = %kind, name, owner = %$owner, site = %$site, $($rest)*)
            };
        }
        for (owner, site, waited, permits) in overdue.waits {
            let (owner, site) = (show(owner), ShowSite(site));
            warn_about!(
                owner,
                site,
                permits,
                waited_ms = waited.as_millis() as u64,
                "{kind} long wait: {owner} has waited {} (since {site})",
                ShowDuration(waited)
            );
        }
        if let Some((hold, waiters)) = overdue.hold {
            let (owner, site) = (show(hold.owner), ShowSite(hold.site));
            let held = hold.held_for.unwrap_or_default();
            warn_about!(
                owner,
                site,
                waiters,
                held_ms = held.as_millis() as u64,
                "{kind} long hold: {owner} has held it for at least {} (taken at {site}), \
                 with {waiters} waiting",
                ShowDuration(held)
            );
        }
        let held_at = ShowSite(self.holder_site());
        for (owner, site, waited) in overdue.self_waits {
            let (owner, site) = (show(owner), ShowSite(site));
            warn_about!(
                owner,
                site,
                held_at = %held_at,
                waited_ms = waited.as_millis() as u64,
                "{kind} self-wait: {owner} has waited {} at {site} for a hold it owns itself \
                 (taken at {held_at}); fine if a sibling sub-future of {owner} releases it, a \
                 deadlock (futurelock) if none will",
                ShowDuration(waited)
            );
        }
    }

    /// Stamps the exclusive hold as held at least since `now()` (read only if it
    /// stamps), if it has no stamp yet and someone waits for it (see
    /// [`Shared::hold_since`]).
    #[inline]
    fn stamp_hold(&self, shared: &mut Shared, now: impl FnOnce() -> Stamp) {
        if self.exclusive != NOT_EXCLUSIVE && shared.hold_since.is_none() && !shared.queue.is_empty() {
            shared.hold_since = Some(now());
            shared.hold_warned = false;
        }
    }

    /// An acquire's result spends a unit of the task's cooperative budget, as tokio's
    /// own primitives do; on a spent budget the task yields instead, and the `taken`
    /// permits the result holds go back first (none for a failure).
    #[inline(always)]
    fn spend_budget(&self, taken: usize, cx: &mut Context<'_>) -> Poll<()> {
        match runtime::poll_budget(cx) {
            Poll::Ready(progress) => {
                progress.made_progress();
                Poll::Ready(())
            }
            Poll::Pending => {
                self.release_out_of_line(taken);
                Poll::Pending
            }
        }
    }

    /// Why a waiter was failed, when the core is no longer broken: it was closed, or
    /// broken and repaired since (the waiter keeps the break's error).
    fn failed_error(&self) -> AcquireError {
        match (self.is_closed(), self.shared.lock().last_break.clone()) {
            (false, Some(err)) => AcquireError::Broken(err),
            _ => AcquireError::Closed,
        }
    }

    /// The error of the break the caller saw in the state word. A repair may have ended
    /// it since: the caller's acquire failed before that, with the same error.
    fn broken_error(&self) -> BrokenResourceError {
        let shared = self.shared.lock();
        shared
            .broken
            .clone()
            .or_else(|| shared.last_break.clone())
            .expect("BROKEN is set only together with the error")
    }

    /// The fast path: take `permits` with one CAS if nobody waits and enough are free
    /// (or, eventually fair, if enough are free even though others wait).
    fn try_take(&self, permits: usize) -> Result<(), usize> {
        match self.take_unless(FLAGS, permits, self.state.load(Relaxed)) {
            Err(state) if state & SLOW != 0 && self.is_eventually_fair() => self.barge(permits, state),
            taken => taken,
        }
    }

    /// [`SemCore::try_take`] of an eventually fair primitive while others wait: free
    /// permits are anyone's.
    #[cold]
    fn barge(&self, permits: usize, state: usize) -> Result<(), usize> {
        self.take_unless(CLOSED | BROKEN, permits, state)
    }

    /// Takes `permits` from the state word (last read as `state`) with a CAS, unless one
    /// of the `blockers` flags is set or too few are free; `Err` with the state that
    /// stopped it.
    #[inline(always)]
    fn take_unless(&self, blockers: usize, permits: usize, mut state: usize) -> Result<(), usize> {
        loop {
            if state & blockers != 0 || state >> SHIFT < permits {
                return Err(state);
            }
            match self.state.compare_exchange_weak(state, state - (permits << SHIFT), AcqRel, Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => state = actual,
            }
        }
    }

    /// Whether this contended release of an eventually fair primitive is the one that
    /// hands over strictly: the first since [`FAIR_INTERVAL`] passed.
    #[cold]
    #[cfg(not(loom))]
    fn fair_turn(&self, shared: &mut Shared) -> bool {
        let now = std::time::Instant::now();
        match shared.fair_deadline {
            Some(deadline) if now < deadline => false,
            _ => {
                shared.fair_deadline = Some(now + FAIR_INTERVAL);
                true
            }
        }
    }

    /// Under loom, time is not part of the model: every other contended release is the
    /// strict one, so a model runs both kinds (and stays deterministic).
    #[cfg(loom)]
    fn fair_turn(&self, shared: &mut Shared) -> bool {
        shared.fair_releases += 1;
        shared.fair_releases % 2 == 1
    }

    /// Would waiting certainly deadlock (a wait is refused only then)? Only a mutex's holder asking
    /// again through an identity API (`Lock::acquire`: a manual hold is never a sibling
    /// sub-future's), or any self-wait on a strict mutex. An RAII re-lock by the same
    /// task waits, as in tokio: a sibling sub-future may hold the guard.
    fn would_deadlock(&self, caller: Caller) -> bool {
        if self.kind != PrimitiveKind::Mutex {
            return false;
        }
        let holder = self.holder.load(Relaxed);
        let me = if caller.is_manual() {
            owner_id_for(caller)
        } else if self.is_strict() {
            identity_for(caller)
        } else {
            None
        };
        holder != 0 && me.is_some_and(|me| me.as_u64() == holder)
    }

    pub(crate) fn try_acquire(&self, permits: usize, caller: Caller) -> Result<(), TryAcquireError> {
        let state = match self.try_take(permits) {
            Ok(()) => return Ok(()),
            Err(state) => state,
        };
        if state & BROKEN != 0 {
            Err(TryAcquireError::Broken(self.broken_error()))
        } else if state & CLOSED != 0 {
            Err(TryAcquireError::Closed)
        } else if permits == 0 {
            Ok(())
        } else if self.would_deadlock(caller) {
            Err(TryAcquireError::WouldDeadlock)
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }

    /// Waits for `permits` in FIFO order. The permits are held (anonymously) when it
    /// returns `Ok`; register them with [`SemCore::register`].
    pub(crate) fn acquire(&self, permits: usize, caller: Caller, site: Site) -> AcquireFuture<'_> {
        AcquireFuture {
            core: self,
            permits,
            caller,
            site,
            slot: None,
            waiting_since: None,
            settlement: Settlement::new(),
            _pinned: PhantomPinned,
        }
    }

    /// [`acquire_hold!`] for a blocking entry point, blocking the thread. The uncontended
    /// case is the same one CAS as an async acquire's, without a future to poll or a
    /// cooperative budget to spend (a blocked thread has none); the rest waits exactly
    /// as an async acquire does.
    #[track_caller]
    pub(crate) fn blocking_hold(
        self: &Arc<Self>,
        permits: usize,
        caller: Caller,
        moves: bool,
        site: Site,
    ) -> Result<Hold, AcquireError> {
        crate::runtime::assert_can_block();
        if self.try_take(permits).is_err() {
            crate::lot::block_on(self.acquire(permits, caller, site))?;
        }
        Ok(self.register(permits, caller, self, moves, site))
    }

    /// `permits` with one CAS if that is possible now (see [`TakeUncontended`]).
    pub(crate) fn take_uncontended(&self, permits: usize) -> TakeUncontended<'_> {
        TakeUncontended { core: self, permits }
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
            if permits == self.exclusive {
                if moves {
                    self.clear_holder();
                } else if let Some(identity) = crate::runtime::task_identity() {
                    self.record_holder(identity, site);
                }
            }
            return Hold::default();
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

    /// Ends a hold whose guard is being dropped: a normal release, or, for a mutex guard
    /// dropped while its thread panics, an abandonment (`Panicked`).
    #[inline(always)]
    pub(crate) fn end_hold(&self, hold: Hold, permits: usize) {
        // Inline, and small: the common end (no panic, and a hold still registered or
        // anonymous). The rest is out of line, in `ended_after_claim` and
        // `end_hold_in_panic`: as one call with its register saves, this function cost a
        // tracked lock + unlock about 20 instructions (callgrind).
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
    fn release_hold(&self, permits: usize) {
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
    fn settle_claim(&self, claim: Claim, tag: OrphanTag, permits: usize) -> bool {
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
            // owner, or for an owned hold (which may have moved) whoever panics here.
            Some(ref ticket) if ticket.moves() => {
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
    fn return_after_break(&self, permits: usize) {
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

    /// A grant (of `permits`) that its waiter will never collect: it was recorded as the
    /// holder if exclusive (see `grant_waiters`), which it no longer is.
    pub(crate) fn forget_grantee(&self, permits: usize) {
        if permits == self.exclusive {
            self.clear_holder();
        }
    }

    /// Passes on a grant its waiter will never collect (a cancelled waiter).
    pub(crate) fn pass_on_grant(&self, permits: usize) {
        self.forget_grantee(permits);
        self.release(permits);
    }

    /// Registers a condition to hear of this mutex's break.
    pub(crate) fn add_break_hook(&self, hook: Weak<dyn BreakHook>) {
        let mut shared = self.shared.lock();
        shared.break_hooks.retain(|hook| hook.strong_count() > 0);
        shared.break_hooks.push(hook);
    }

    /// A notified condition waiter moves onto this mutex's queue: granted at once if the
    /// mutex is free and nobody queues, failed if it is broken, else queued at the back
    /// (no thundering herd: it is woken only when the mutex is handed to it).
    pub(crate) fn requeue(&self, parked: Parked, wakes: &mut WakeList) {
        let mut shared = self.shared.lock();
        let wants = parked.wants();
        let mut state = self.state.load(Acquire);
        loop {
            if state & BROKEN != 0 {
                return parked.settle(false, wakes);
            }
            // (A `SLOW` left by the last hand-off is left only while no permit is free.)
            let next = if state & SLOW == 0 && state >> SHIFT >= wants {
                state - (wants << SHIFT)
            } else {
                state | SLOW
            };
            match self.state.compare_exchange_weak(state, next, AcqRel, Acquire) {
                Ok(_) if next & SLOW == 0 => return parked.settle(true, wakes),
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        shared.queue.push_requeued(parked);
    }

    /// Refreshes the waker of a requeued condition waiter; `false` if it was settled in
    /// the meantime (granted or failed).
    pub(crate) fn update_requeued_waker(&self, settlement: &Settlement, waker: &std::task::Waker) -> bool {
        let mut shared = self.shared.lock();
        let Outcome::Requeued(key) = settlement.outcome() else { return false };
        let replaced = shared.queue.update_waker(key, waker);
        drop(shared);
        drop(replaced);
        true
    }

    /// A requeued condition waiter is cancelled: takes it out of the queue. Returns
    /// whether it had been granted the mutex meanwhile (the caller passes it on).
    pub(crate) fn cancel_requeued(&self, settlement: &Settlement) -> bool {
        let mut wakes = WakeList::default();
        let mut own_waker = None;
        let granted = {
            let mut shared = self.shared.lock();
            match settlement.outcome() {
                Outcome::Requeued(key) => {
                    own_waker = shared.queue.remove(key);
                    self.grant_waiters(&mut shared, &mut wakes);
                    false
                }
                outcome => outcome == Outcome::Granted,
            }
        };
        wakes.wake_all();
        drop(own_waker);
        granted
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

    /// The error of a waiter the queue failed (or granted, then broken): the break, now
    /// or before a repair, or the close.
    pub(crate) fn failure(&self) -> AcquireError {
        if self.is_broken() { AcquireError::Broken(self.broken_error()) } else { self.failed_error() }
    }

    /// Whether a break can be repaired (a mutex, an RwLock: the primitives with data),
    /// so the permits of guards dropped after it are counted back. A counted primitive
    /// keeps tokio-like counts: a broken one's count no longer changes.
    fn repairable(&self) -> bool {
        self.guards_data()
    }

    /// Whether the primitive guards data (a mutex, an RwLock: it has exclusive holds). Its
    /// abandoned holds always break it, whatever its policy (see `abandon`).
    fn guards_data(&self) -> bool {
        self.exclusive != NOT_EXCLUSIVE
    }

    /// Starts a repair of a broken primitive of `total` permits: takes them all, which
    /// is possible only once every guard (live, or dead since its owner's exit) has been
    /// dropped, so the repairer's `&mut T` aliases nothing.
    pub(crate) fn try_begin_repair(&self, total: usize) -> Result<(), RepairError> {
        let mut state = self.state.load(Acquire);
        loop {
            if state & BROKEN == 0 {
                return Err(RepairError::NotBroken);
            }
            if state >> SHIFT != total {
                return Err(RepairError::InUse { guards_out: total - (state >> SHIFT) });
            }
            match self.state.compare_exchange_weak(state, state & FLAGS, AcqRel, Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => state = actual,
            }
        }
    }

    /// Ends a repair: marked consistent, the primitive is whole again with all `total`
    /// permits free (its waiters were failed by the break, so nobody is queued); given
    /// up, it stays broken, with the permits back for another repair.
    pub(crate) fn end_repair(&self, total: usize, consistent: bool) {
        if !consistent {
            self.state.fetch_add(total << SHIFT, AcqRel);
            return;
        }
        let mut shared = self.shared.lock();
        shared.broken = None;
        let slow = if shared.queue.is_empty() && shared.debt == 0 { 0 } else { SLOW };
        let _ = self
            .state
            .fetch_update(AcqRel, Acquire, |state| Some((total << SHIFT) | (state & CLOSED) | slow));
        if self.holder.load(Relaxed) != 0 {
            self.holder.store(0, Relaxed);
        }
    }

    /// Returns `permits` to the pool, handing them to queued waiters first. The common
    /// case, nobody waiting and nothing broken, is one CAS inline; the rest is out of line.
    #[inline]
    pub(crate) fn release(&self, permits: usize) {
        let mut state = self.state.load(Relaxed);
        while permits != 0 && state & (SLOW | BROKEN) == 0 {
            let next = Self::add_to(state, permits);
            match self.state.compare_exchange_weak(state, next, Release, Relaxed) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        self.release_out_of_line(permits);
    }

    /// [`SemCore::release`] out of line, for every case: its own slow path (waiters
    /// queued, or the primitive broken), and rare callers on hot paths (a spent budget's
    /// give-back), where the inline CAS would only make the caller too big to inline.
    #[inline(never)]
    fn release_out_of_line(&self, permits: usize) {
        if permits == 0 {
            return;
        }
        let mut state = self.state.load(Relaxed);
        loop {
            // Broken: nobody is granted any more. A repairable primitive still counts the
            // permits back, so a repair can tell when every guard is gone.
            if state & BROKEN != 0 && !self.repairable() {
                return self.released_while_broken(permits);
            }
            if state & SLOW != 0 && state & BROKEN == 0 {
                break;
            }
            let next = Self::add_to(state, permits);
            match self.state.compare_exchange_weak(state, next, Release, Relaxed) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        let mut wakes = WakeList::default();
        {
            let mut shared = self.shared.lock();
            self.release_locked(&mut shared, permits, &mut wakes);
        }
        wakes.wake_all();
    }

    /// Permits given back to a broken pool, which grants them to nobody: they are no
    /// longer held (see [`Shared::held_when_broken`]).
    #[cold]
    fn released_while_broken(&self, permits: usize) {
        self.shared.lock().held_no_more(permits);
    }

    #[track_caller]
    fn add_to(state: usize, permits: usize) -> usize {
        let available = state >> SHIFT;
        match available.checked_add(permits) {
            Some(total) if total <= MAX_PERMITS => (total << SHIFT) | (state & FLAGS),
            _ => panic!("number of added permits ({permits}) would overflow MAX_PERMITS ({MAX_PERMITS})"),
        }
    }

    #[track_caller]
    fn release_locked(&self, shared: &mut Shared, mut permits: usize, wakes: &mut WakeList) {
        if self.state.load(Relaxed) & BROKEN != 0 && !self.repairable() {
            // Granted to nobody (and `BROKEN` changes only under this lock).
            shared.held_no_more(permits);
            return;
        }
        let paid = permits.min(shared.debt);
        shared.debt -= paid;
        permits -= paid;
        let mut state = self.state.load(Relaxed);
        let fair = shared.queue.is_empty() || !self.is_eventually_fair() || self.fair_turn(shared);
        // The contended case: hand the permits straight to the waiters at the head that
        // they satisfy, never through the state word (its two read-modify-writes, add
        // then take, would each pull its cache line from the other core). `BROKEN` and
        // `CLOSED` change only under the lot's lock, held here: the load is current. The
        // grantee's acquire synchronizes with this release through its settlement.
        if state & BROKEN == 0 && fair {
            while let Some(wanted) = shared.queue.front_wants().filter(|&wanted| wanted <= permits) {
                permits -= wanted;
                self.grant_front(shared, wanted, wakes);
            }
            if permits == 0 {
                // Free permits in the pool may now serve the new head (a semaphore whose
                // head wanted more than were free): a mutex's pool is empty here.
                if state >> SHIFT != 0 {
                    return self.grant_waiters(shared, wakes);
                }
                // Nothing is free, so `SLOW` stays set even if that was the last waiter:
                // the fast paths would find nothing to take, and the next release comes
                // here and clears it. In a contended loop the releaser queues again at
                // once, so clearing it now and setting it again then would be two
                // read-modify-writes of the shared word per hand-off for nothing
                // (measured: 10% of a hand-off between two tasks on one thread).
                return shared.forget_hold_stamp_if_idle();
            }
        }
        // Nobody to serve: the same CAS clears a `SLOW` left by the last hand-off.
        let idle = if shared.queue.is_empty() && shared.debt == 0 { !SLOW } else { !0 };
        loop {
            let next = Self::add_to(state, permits) & idle;
            match self.state.compare_exchange_weak(state, next, AcqRel, Relaxed) {
                Ok(_) if next & BROKEN != 0 => return, // counted back, granted to nobody
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if fair {
            self.grant_waiters(shared, wakes);
        } else {
            self.wake_waiter(shared, wakes);
        }
    }

    /// The eventually fair release's end: the permits are back in the pool; if they are
    /// enough for the head waiter, wake it to try for them (a requeued condition waiter,
    /// which cannot try, is granted instead). Call with the lot locked.
    fn wake_waiter(&self, shared: &mut Shared, wakes: &mut WakeList) {
        let state = self.state.load(Acquire);
        if shared.queue.front_wants().is_some_and(|wanted| state & BROKEN == 0 && state >> SHIFT >= wanted)
            && !shared.queue.wake_front(wakes)
        {
            return self.grant_waiters(shared, wakes);
        }
        self.match_slow(shared);
    }

    /// Hands free permits to the head of the queue, in order, while the head can be
    /// satisfied; then makes `SLOW` match the queue. Call with the lot locked.
    fn grant_waiters(&self, shared: &mut Shared, wakes: &mut WakeList) {
        while let Some(wanted) = shared.queue.front_wants() {
            if self.state.load(Acquire) & BROKEN != 0 {
                break;
            }
            if self.take_locked(wanted).is_err() {
                break;
            }
            self.grant_front(shared, wanted, wakes);
        }
        self.match_slow(shared);
    }

    /// Grants the head waiter, which wants `wanted` permits already taken for it.
    fn grant_front(&self, shared: &mut Shared, wanted: usize, wakes: &mut WakeList) {
        let (grantee, site) = shared.queue.grant_front(wakes);
        // An exclusive hold is its grantee's from now on, before that future runs again
        // to collect it: if it never does (a futurelock: its task no longer polls it),
        // the task's next wait for this lock shows as the self-wait it is.
        if wanted == self.exclusive {
            if let Some(grantee) = grantee {
                self.record_holder(grantee, site);
            }
            // A new hold, seen with waiters behind it from its start if any are left.
            shared.hold_since = None;
            self.stamp_hold(shared, Stamp::now);
        }
    }

    /// Makes `SLOW` say whether waiters are queued or permits owed. `SLOW` changes only
    /// under the lot's lock (held here), so a bit that is right already is left alone:
    /// no read-modify-write of the shared word on every contended release.
    fn match_slow(&self, shared: &mut Shared) {
        shared.forget_hold_stamp_if_idle();
        let slow = !shared.queue.is_empty() || shared.debt > 0;
        let state = self.state.load(Relaxed);
        if slow && state & SLOW == 0 {
            self.state.fetch_or(SLOW, Release);
        } else if !slow && state & SLOW != 0 {
            self.state.fetch_and(!SLOW, Release);
        }
    }

    /// Takes `permits` regardless of `SLOW` (the lot is locked, so we are the queue).
    fn take_locked(&self, permits: usize) -> Result<(), ()> {
        self.take_unless(0, permits, self.state.load(Relaxed)).map_err(drop)
    }

    /// Removes up to `permits` free permits; returns how many it removed.
    pub(crate) fn forget_permits(&self, permits: usize) -> usize {
        let mut state = self.state.load(Relaxed);
        loop {
            let taken = permits.min(state >> SHIFT);
            match self.state.compare_exchange_weak(state, state - (taken << SHIFT), AcqRel, Relaxed) {
                Ok(_) => return taken,
                Err(actual) => state = actual,
            }
        }
    }

    /// Removes `permits` from the pool: the free ones now, the rest as debt paid by the
    /// next releases (a limiter shrinking below what is borrowed never revokes).
    fn shrink_locked(&self, shared: &mut Shared, permits: usize) {
        let taken = self.forget_permits(permits);
        shared.debt += permits - taken;
        if shared.debt > 0 {
            self.state.fetch_or(SLOW, Release);
        }
    }

    /// Makes the pool's total `total` (a limiter's `set_total_tokens`): growing hands the
    /// new permits to waiters in FIFO order, shrinking takes free ones and owes the rest
    /// (never revokes). Under the lot's lock with the count, so [`SemCore::pool`] never
    /// sees the new total with the old count; waiters are woken after it.
    ///
    /// # Panics
    /// If `total` exceeds `MAX_PERMITS`.
    #[track_caller]
    pub(crate) fn set_pool_total(&self, total: usize) {
        assert!(
            total <= MAX_PERMITS,
            "a semaphore may not have more than MAX_PERMITS permits ({MAX_PERMITS})"
        );
        let mut wakes = WakeList::default();
        {
            let mut shared = self.shared.lock();
            let old = std::mem::replace(&mut shared.pool_total, total);
            if total > old {
                self.release_locked(&mut shared, total - old, &mut wakes);
            } else {
                self.shrink_locked(&mut shared, old - total);
            }
        }
        wakes.wake_all();
    }

    /// The pool's total and how many of its permits are held: taken and not given back
    /// (by guards, or granted to waiters not yet polled), `total + debt - free`; once
    /// broken, what was held then less what came back since. One consistent snapshot:
    /// a permit is counted by the one atomic that takes or returns it, so a borrow need
    /// not be recorded anywhere else to be counted.
    pub(crate) fn pool(&self) -> (usize, usize) {
        let shared = self.shared.lock();
        let state = self.state.load(Acquire);
        let held =
            if state & BROKEN != 0 { shared.held_when_broken } else { shared.held_with_free(state >> SHIFT) };
        (shared.pool_total, held)
    }

    /// Closes: every queued waiter and every later acquire gets `Closed`.
    pub(crate) fn close(&self) {
        let mut wakes = WakeList::default();
        {
            let mut shared = self.shared.lock();
            self.state.fetch_or(CLOSED, Release);
            shared.queue.fail_all(&mut wakes);
            shared.hold_since = None;
            if shared.debt == 0 {
                self.state.fetch_and(!SLOW, Release);
            }
        }
        wakes.wake_all();
    }

    /// Breaks the primitive for good and wakes every waiter with the error. O(waiters);
    /// the wakes happen after the lock is released.
    fn break_locked(
        &self,
        shared: &mut Shared,
        owner: &Abandoner,
        reason: AbandonReason,
        site: Site,
        wakes: &mut WakeList,
    ) {
        if shared.broken.is_some() {
            return;
        }
        shared.broken = Some(BrokenResourceError::new(Broken {
            kind: self.kind,
            name: self.name.clone(),
            owner: owner.id,
            owner_name: owner.name.clone(),
            reason,
            site,
        }));
        shared.last_break.clone_from(&shared.broken);
        let before = self.state.fetch_or(BROKEN, Release);
        shared.held_when_broken = shared.held_with_free(before >> SHIFT);
        let returned = std::mem::take(&mut shared.returned_before_break);
        if returned > 0 {
            self.state.fetch_add(returned << SHIFT, AcqRel);
        }
        shared.queue.fail_all(wakes);
        shared.hold_since = None;
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
    fn settle_abandoned_manual(&self, shared: &mut Shared) -> Option<Hold> {
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

impl Hold {
    /// [`Hold::forget`], saying whether the permits were still the holder's: `false` if
    /// its owner's exit abandoned them already (broken or reclaimed).
    pub(crate) fn forget_live(self, primitive: impl FnOnce() -> Arc<dyn Abandon>) -> bool {
        self.ticket.is_none_or(|ticket| give_back(ticket, primitive))
    }
}

/// The pool's counts for diagnostics (`k of n available`), and a semaphore's total kept
/// as permits are added, forgotten or given up, so that what is held can be told.
impl SemCore {
    /// Free permits, the pool's total and how many are held ([`SemCore::pool`]), read
    /// under one lock; `listed` is 0, for the caller to fill.
    pub(crate) fn permit_counts(&self) -> crate::diagnostics::PermitCounts {
        let shared = self.shared.lock();
        let state = self.state.load(Acquire);
        let held =
            if state & BROKEN != 0 { shared.held_when_broken } else { shared.held_with_free(state >> SHIFT) };
        crate::diagnostics::PermitCounts {
            available: state >> SHIFT,
            total: shared.pool_total,
            held,
            listed: 0,
        }
    }

    /// A semaphore's `add_permits`: like a release (waiters first, in FIFO order), but
    /// panics on overflow even when broken, and grows the total in the same lock (not
    /// a broken semaphore's, whose total stays as it broke).
    #[track_caller]
    pub(crate) fn add_pool_permits(&self, permits: usize) {
        Self::add_to(self.state.load(Relaxed), permits); // panics on overflow, as tokio
        let mut wakes = WakeList::default();
        {
            let mut shared = self.shared.lock();
            if self.state.load(Relaxed) & BROKEN == 0 {
                shared.pool_total = shared.pool_total.saturating_add(permits);
            }
            self.release_locked(&mut shared, permits, &mut wakes);
        }
        wakes.wake_all();
    }

    /// A semaphore's `forget_permits`: [`SemCore::forget_permits`], with the total shrunk
    /// by what it took, in the same lock.
    pub(crate) fn forget_pool_permits(&self, permits: usize) -> usize {
        let mut shared = self.shared.lock();
        let taken = self.forget_permits(permits);
        shared.pool_total = shared.pool_total.saturating_sub(taken);
        taken
    }

    /// `permits` held are given up for good (`SemaphorePermit::forget`): they leave the
    /// total, and a broken pool's count of what is held.
    pub(crate) fn give_up_held(&self, permits: usize) {
        let mut shared = self.shared.lock();
        shared.pool_total = shared.pool_total.saturating_sub(permits);
        if self.state.load(Relaxed) & BROKEN != 0 {
            shared.held_no_more(permits);
        }
    }
}

/// What an abandonment led to, for the `tracing` feature's events.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
enum Aftermath {
    Broke { waiters: usize },
    Reclaimed { permits: usize },
}

impl SemCore {
    /// One event (target `ownsync`) per abandonment that broke the primitive (`WARN`) or
    /// returned its permits (`INFO`). Only an abandonment reaches here, never the hot
    /// path; without the feature it compiles to nothing.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn trace(&self, owner: &Abandoner, reason: AbandonReason, aftermath: Aftermath) {
        #[cfg(feature = "tracing")]
        {
            let (kind, name, id, owner_name) = (self.kind, self.name.as_deref(), owner.id, &owner.name);
            macro_rules! event {
                ($level:ident, $field:ident = $value:expr, $($message:tt)+) => {
                    tracing::$level!(
                        target: "ownsync",
                        primitive = %kind,
                        name,
                        owner = %id,
                        owner_name = owner_name.as_deref(),
                        reason = %reason,
                        $field = $value,
                        $($message)+
                    )
                };
            }
            match aftermath {
                Aftermath::Broke { waiters } => event!(
                    warn,
                    waiters_woken = waiters,
                    "{kind} broken: {id} {reason} while holding it; {waiters} waiter(s) woken with the error"
                ),
                Aftermath::Reclaimed { permits } => {
                    event!(
                        info,
                        permits = permits,
                        "{kind} reclaimed {permits} permit(s) that {id} {reason} holding"
                    )
                }
            }
        }
    }
}

/// Notes that the orphan `tag`, claimed by an exit that has not counted it yet, has
/// `permits` now: the count will use them (see `Abandon::orphan`).
fn resize_uncounted(shared: &mut Shared, tag: OrphanTag, permits: usize) {
    match shared.resized_before_counted.iter_mut().find(|(early, _)| *early == tag) {
        Some((_, resized)) => *resized = permits,
        None => shared.resized_before_counted.push((tag, permits)),
    }
}

impl Abandon for SemCore {
    fn orphan(&self, owner: &Abandoner, permits: usize, site: Site, tag: OrphanTag) {
        let mut shared = self.shared.lock();
        let resized = shared.resized_before_counted.iter().position(|&(early, _)| early == tag);
        let permits = resized.map_or(permits, |index| shared.resized_before_counted.swap_remove(index).1);
        // Released (and adopted) already, after the exit claimed it: nothing to count.
        if let Some(index) = shared.adopted_before_counted.iter().position(|&early| early == tag) {
            shared.adopted_before_counted.swap_remove(index);
            return;
        }
        shared.orphans.push(OrphanInfo { acquirer: owner.id, permits, site, tag });
    }

    fn split_orphan(&self, split: OrphanSplit) {
        let mut shared = self.shared.lock();
        let site = match shared.orphans.iter_mut().find(|orphan| orphan.tag == split.tag) {
            Some(orphan) => {
                orphan.permits = split.kept;
                orphan.site
            }
            // Claimed by an exit that has not counted it yet: it will, with `kept`.
            None => {
                resize_uncounted(&mut shared, split.tag, split.kept);
                None
            }
        };
        let piece = OrphanInfo { acquirer: split.acquirer, permits: split.taken, site, tag: split.piece };
        shared.orphans.push(piece);
    }

    fn resize_orphan(&self, tag: OrphanTag, permits: usize) {
        let mut shared = self.shared.lock();
        match shared.orphans.iter_mut().find(|orphan| orphan.tag == tag) {
            Some(orphan) => orphan.permits = permits,
            None => resize_uncounted(&mut shared, tag, permits),
        }
    }

    fn forward_holder(&self, from: OwnerId, to: OwnerId) {
        // Only if `from` holds it still: its guard may have been dropped elsewhere, and
        // the mutex taken by someone else, meanwhile.
        let _ = self.holder.compare_exchange(from.as_u64(), to.as_u64(), Relaxed, Relaxed);
    }

    fn adopt_orphan(&self, tag: OrphanTag) {
        let mut shared = self.shared.lock();
        match shared.orphans.iter().position(|orphan| orphan.tag == tag) {
            Some(index) => {
                shared.orphans.remove(index);
            }
            // Claimed as orphaned by an exit that has not counted it yet: it will, and
            // must find it adopted. (Its record, and so its tag, lives until then.)
            None => shared.adopted_before_counted.push(tag),
        }
    }

    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, site: Site) {
        let mut wakes = WakeList::default();
        let mut hooks: Vec<Arc<dyn BreakHook>> = Vec::new();
        // A `Lock`'s manual hold settled by this break: its dead ticket is given back after
        // the lock (giving back takes its owner record's lock).
        let mut settled_manual = None;
        {
            let mut shared = self.shared.lock();
            shared.abandoned.count += 1;
            shared.abandoned.last = Some((owner.id, reason));
            // A primitive that guards data (a mutex, an RwLock) never reclaims: an
            // exclusive hold's data may be half-updated, and a shared (read) hold's guard
            // may still be reachable and deref'ing (returned from its task, `Box::leak`ed:
            // no program can tell it from a forgotten one), so a writer let in beside it
            // would alias it. Only counted primitives (no data) follow their policy.
            let policy = if self.guards_data() { AbandonPolicy::Break } else { self.policy };
            match policy {
                AbandonPolicy::Break => {
                    let already_broken = shared.broken.is_some();
                    let waiters = shared.queue.len();
                    self.break_locked(&mut shared, owner, reason, site, &mut wakes);
                    // The abandoned hold is never given back: it is held by nobody now.
                    shared.held_no_more(permits);
                    settled_manual = self.settle_abandoned_manual(&mut shared);
                    if !already_broken {
                        self.trace(owner, reason, Aftermath::Broke { waiters });
                        hooks = shared.break_hooks.iter().filter_map(Weak::upgrade).collect();
                    }
                }
                AbandonPolicy::Reclaim => {
                    self.release_locked(&mut shared, permits, &mut wakes);
                    self.trace(owner, reason, Aftermath::Reclaimed { permits });
                }
            }
        }
        drop(settled_manual);
        // Every waiter is woken even if a wake (or a hook's) panics: run_all goes on.
        crate::lot::run_all(
            [Box::new(move || wakes.wake_all()) as Box<dyn FnOnce()>].into_iter().chain(
                hooks.into_iter().map(|hook| Box::new(move || hook.primitive_broke()) as Box<dyn FnOnce()>),
            ),
            |run| run(),
        );
    }
}

/// The uncontended acquire: one CAS in one poll, before any waiter state exists.
///
/// A success spends the cooperative budget as a queued acquire does; if the budget is
/// already spent, the permits go straight back and the task yields (once per budget, so
/// rarely). A failure touches nothing but one load of the state and leaves the budget to
/// the queued acquire: taking it and giving it back there cost more, under contention,
/// than the fast path saves.
pub(crate) struct TakeUncontended<'a> {
    core: &'a SemCore,
    permits: usize,
}

impl Future for TakeUncontended<'_> {
    type Output = bool;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if self.core.try_take(self.permits).is_err() {
            return Poll::Ready(false);
        }
        ready!(self.core.spend_budget(self.permits, cx));
        Poll::Ready(true)
    }
}

/// Waits for permits in FIFO order. Dropping it while queued leaves the queue; dropping
/// it after it was granted passes the permits on, so nothing is lost.
///
/// While queued it is pinned, and the queue writes its outcome into `settlement` (see
/// [`WaitQueue::park`]), so a woken acquire collects its grant without the lot's lock.
pub(crate) struct AcquireFuture<'a> {
    core: &'a SemCore,
    permits: usize,
    caller: Caller,
    site: Site,
    /// The queue slot, while queued and not yet settled.
    slot: Option<usize>,
    /// When it first queued: a waiter woken to try again (eventual fairness) that loses
    /// the race queues again, at the front, keeping the start of its wait.
    waiting_since: Option<Stamp>,
    settlement: Settlement,
    _pinned: PhantomPinned,
}

impl Future for AcquireFuture<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the future; `settlement`, the one field the
        // queue points at, stays where it is until the future is dropped.
        let this = unsafe { self.get_unchecked_mut() };
        // Every result spends a unit of the task's cooperative budget, as tokio's own
        // primitives do. A queued acquire asks first: a spent budget yields here, keeping
        // any grant already settled for the next poll.
        if this.slot.is_some() {
            let progress = ready!(runtime::poll_budget(cx));
            // The common wake, kept small: a grant settled while queued, collected with
            // no lock and no call.
            if this.settlement.outcome() == Outcome::Granted && !this.core.is_broken() {
                this.slot = None;
                progress.made_progress();
                return Poll::Ready(Ok(()));
            }
            let result = ready!(this.poll_acquire(cx));
            progress.made_progress();
            return Poll::Ready(result);
        }
        // The first poll asks after: one that queues spends nothing (a pending poll
        // never does), so it skips the budget altogether, and one that took the permits
        // with the budget spent gives them back and yields, as `TakeUncontended` does.
        let result = ready!(this.poll_acquire(cx));
        ready!(this.core.spend_budget(if result.is_ok() { this.permits } else { 0 }, cx));
        Poll::Ready(result)
    }
}

impl AcquireFuture<'_> {
    /// Every poll but the common wake (the inline check in `poll`): the first poll, which
    /// takes the permits or queues, a poll while still queued, and a woken or failed
    /// waiter. Out of line, so that the common wake stays small.
    #[inline(never)]
    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        let core = self.core;
        if let Some(key) = self.slot {
            let mut outcome = self.settlement.outcome();
            if outcome == Outcome::Waiting {
                let mut shared = core.shared.lock();
                // Settled between the load and the lock? Then the slot is gone: go on below.
                outcome = self.settlement.outcome();
                if outcome == Outcome::Waiting {
                    let replaced = shared.queue.update_waker(key, cx.waker());
                    let overdue = core.overdue(&mut shared);
                    drop(shared);
                    drop(replaced); // a waker's drop may re-enter: never under the lock
                    core.report(overdue);
                    return Poll::Pending;
                }
            }
            self.slot = None;
            match outcome {
                // Out of the queue, nothing granted (eventual fairness): try for the
                // permits like a first poll (anyone may have taken them), below, and
                // queue again at the front if they are gone. Not a recursive call: that
                // would keep this function from being inlined into `poll`.
                Outcome::Woken => {}
                Outcome::Granted if !core.is_broken() => return Poll::Ready(Ok(())),
                Outcome::Granted => {
                    // Granted, then broken before we ran: the permits go back (counted in
                    // by a repairable primitive, so a repair does not wait for them for ever).
                    core.pass_on_grant(self.permits);
                    return Poll::Ready(Err(core.failure()));
                }
                _ => return Poll::Ready(Err(core.failure())),
            }
        }
        match core.try_acquire(self.permits, self.caller) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TryAcquireError::Broken(err)) => Poll::Ready(Err(AcquireError::Broken(err))),
            Err(TryAcquireError::Closed) => Poll::Ready(Err(AcquireError::Closed)),
            Err(TryAcquireError::WouldDeadlock) => Poll::Ready(Err(AcquireError::WouldDeadlock)),
            Err(TryAcquireError::OwnerGone(owner)) => Poll::Ready(Err(AcquireError::OwnerGone(owner))),
            Err(TryAcquireError::NoPermits) if self.spin_for_permits() => Poll::Ready(Ok(())),
            Err(TryAcquireError::NoPermits) => self.park(cx),
        }
    }

    /// Eventually fair, from a thread: try for the permits a while, spinning, before
    /// queueing. While this thread spins it is not queued, so the holder's release and
    /// re-lock stay on their fast paths; a queued waiter would make every release wake
    /// it (parking_lot's spin-then-park, and why it is fast between two threads).
    #[inline]
    fn spin_for_permits(&self) -> bool {
        self.caller.blocks() && self.core.is_eventually_fair() && self.spin_a_while()
    }

    /// [`AcquireFuture::spin_for_permits`]'s loop.
    #[cold]
    #[inline(never)]
    fn spin_a_while(&self) -> bool {
        let mut spun = 0;
        let mut round = 0;
        while spun < BARGE_SPIN_LIMIT {
            let steps = 1 << round.min(6);
            for _ in 0..steps {
                spin_hint();
            }
            spun += steps;
            round += 1;
            if self.core.available() >= self.permits && self.core.try_take(self.permits).is_ok() {
                return true;
            }
        }
        false
    }

    /// The slow path of the first poll: under the lock, take the permits if nobody is
    /// queued, else queue at the back.
    fn park(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        let core = self.core;
        let me = identity_for(self.caller);
        #[cfg_attr(not(feature = "diagnostics"), allow(unused_mut))]
        let mut meta = match self.waiting_since {
            Some(since) => WaitMeta::with_since(me, self.site, since),
            None => WaitMeta::new(me, self.site),
        };
        // Read before the lot is locked: it takes the owner's record lock.
        #[cfg(feature = "diagnostics")]
        {
            meta.holding = crate::owner::holds_of_current(self.caller).into_boxed_slice();
        }
        let mut shared = core.shared.lock();
        let mut state = core.state.load(Acquire);
        loop {
            if state & BROKEN != 0 {
                let err = shared.broken.clone().expect("BROKEN is set only together with the error");
                return Poll::Ready(Err(AcquireError::Broken(err)));
            }
            if state & CLOSED != 0 {
                return Poll::Ready(Err(AcquireError::Closed));
            }
            let free = state >> SHIFT >= self.permits;
            // A `SLOW` left by the last hand-off (nobody queued, nothing owed) is left
            // only while no permit is free; an eventually fair release may leave it with
            // free permits, which are anyone's (below).
            debug_assert!(
                state & SLOW == 0
                    || !shared.queue.is_empty()
                    || shared.debt > 0
                    || state >> SHIFT == 0
                    || core.is_eventually_fair(),
                "SLOW left set with permits free"
            );
            // Others queue: so do we (`SLOW` is cleared only under the lock), unless free
            // permits are anyone's (eventual fairness).
            if state & SLOW != 0 && !(free && core.is_eventually_fair()) {
                break;
            }
            let next = if free { state - (self.permits << SHIFT) } else { state | SLOW };
            match core.state.compare_exchange_weak(state, next, AcqRel, Acquire) {
                Ok(_) if free => return Poll::Ready(Ok(())),
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        // SAFETY: the future is pinned (it is only polled through `Pin`, and it is
        // `!Unpin`), so `settlement` stays put; `Drop` removes the slot under the lock
        // unless the queue settled it first, and after that the queue no longer has the
        // pointer.
        // The holder is recorded for exclusive holds only (a mutex's, a writer's).
        let self_wait = me.is_some() && me == core.holder();
        let since = meta.since();
        // A waiter woken to try again, which lost: back to the front, where it was.
        let front = self.waiting_since.replace(since).is_some();
        self.settlement.reset();
        self.slot = Some(unsafe {
            shared.queue.park(self.permits, cx.waker().clone(), &self.settlement, meta, self_wait, front)
        });
        core.stamp_hold(&mut shared, || since);
        let overdue = core.overdue(&mut shared);
        drop(shared);
        core.report(overdue);
        Poll::Pending
    }
}

impl Drop for AcquireFuture<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.leave_queue(key);
        }
    }
}

impl AcquireFuture<'_> {
    /// Dropped while queued: leave the queue, or pass on what it was given meanwhile.
    #[cold]
    #[inline(never)]
    fn leave_queue(&mut self, key: usize) {
        let core = self.core;
        let mut wakes = WakeList::default();
        // Our own stored waker, dropped after the lock is released (tokio #5429).
        let mut own_waker = None;
        match self.settlement.outcome() {
            Outcome::Waiting => {
                let mut shared = core.shared.lock();
                match self.settlement.outcome() {
                    // Left the queue: the waiters behind it may now fit (a big head
                    // blocked them).
                    Outcome::Waiting => {
                        own_waker = shared.queue.remove(key);
                        core.grant_waiters(&mut shared, &mut wakes);
                    }
                    // Granted while we took the lock, never returned: pass it on.
                    Outcome::Granted => {
                        core.forget_grantee(self.permits);
                        core.release_locked(&mut shared, self.permits, &mut wakes)
                    }
                    // Woken to try again while we took the lock: pass the wake on.
                    Outcome::Woken => core.wake_waiter(&mut shared, &mut wakes),
                    // (`Requeued` is a condition waiter's, never an acquire's.)
                    Outcome::Failed | Outcome::Requeued(_) => {}
                }
            }
            // Granted but never returned: pass the permits on.
            Outcome::Granted => core.pass_on_grant(self.permits),
            // Woken to try again, never to: whoever is at the front now tries instead.
            Outcome::Woken => core.wake_waiter(&mut core.shared.lock(), &mut wakes),
            Outcome::Failed | Outcome::Requeued(_) => {}
        }
        // Wake the granted first: if dropping our waker panics, nobody is left asleep.
        wakes.wake_all();
        drop(own_waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn core(permits: usize) -> SemCore {
        SemCore::new(permits, PrimitiveKind::Semaphore, None, AbandonPolicy::Break)
    }

    #[test]
    fn fast_paths_refuse_while_anyone_waits() {
        let core = core(1);
        core.try_acquire(1, Caller::Async).unwrap();
        let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(waiter.as_mut().now_or_never().is_none());
        assert!(core.is_contended());
        core.release(1); // handed to the waiter, not to the pool
        assert_eq!(core.available(), 0);
        assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits));
        assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())));
        // The hand-off to the last waiter leaves `SLOW` while nothing is free; the next
        // release clears it (in the CAS that returns the permit), and the fast paths run
        // again.
        assert!(core.is_contended());
        core.release(1);
        assert!(!core.is_contended());
        assert_eq!(core.available(), 1);
        assert_eq!(core.try_acquire(1, Caller::Async), Ok(()));
    }

    #[test]
    fn a_grant_from_another_thread_is_collected_and_a_dropped_grant_passes_on() {
        let core = core(1);
        core.try_acquire(1, Caller::Async).unwrap();
        let mut first = Box::pin(core.acquire(1, Caller::Async, None));
        let mut second = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(first.as_mut().now_or_never().is_none());
        assert!(second.as_mut().now_or_never().is_none());
        // The releasing thread settles `first` through the queue's pointer into it.
        std::thread::scope(|scope| scope.spawn(|| core.release(1)).join().unwrap());
        assert_eq!(first.as_mut().now_or_never(), Some(Ok(())));
        drop(first);
        // Granted to `second` on another thread, then dropped unpolled: passed back.
        std::thread::scope(|scope| scope.spawn(|| core.release(1)).join().unwrap());
        drop(second);
        assert_eq!(core.available(), 1);
        assert!(!core.is_contended());
    }

    #[test]
    fn a_break_fails_every_waiter_through_its_settlement() {
        let core = core(1);
        core.try_acquire(1, Caller::Async).unwrap();
        let mut waiters: Vec<_> = (0..3).map(|_| Box::pin(core.acquire(1, Caller::Async, None))).collect();
        for waiter in &mut waiters {
            assert!(waiter.as_mut().now_or_never().is_none());
        }
        let owner = Abandoner { id: crate::current_owner(), name: None };
        std::thread::scope(|scope| {
            scope.spawn(|| core.abandon(&owner, AbandonReason::Exited, 1, None)).join().unwrap()
        });
        for waiter in &mut waiters {
            assert!(matches!(waiter.as_mut().now_or_never(), Some(Err(AcquireError::Broken(_)))));
        }
    }

    #[test]
    fn debt_is_paid_before_permits_return() {
        let core = core(2);
        core.try_acquire(2, Caller::Async).unwrap();
        core.set_pool_total(1);
        assert_eq!(core.pool(), (1, 2), "shrinking never revokes");
        core.release(1);
        assert_eq!(core.available(), 0, "the first released permit pays the debt");
        assert_eq!(core.pool(), (1, 1));
        core.release(1);
        assert_eq!(core.available(), 1);
        assert_eq!(core.pool(), (1, 0));
        assert!(!core.is_contended());
    }

    /// The one `unsafe` read of the diagnostics (under Miri too): the holder's site goes
    /// into an atomic pointer and comes back as the same `&'static Location`.
    #[test]
    fn the_holders_site_round_trips_and_clears() {
        let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
        let site = crate::owner::caller_site();
        core.record_holder(crate::current_owner(), site);
        assert_eq!(core.holder_site(), site);
        assert_eq!(core.holder_site().unwrap().line(), line!() - 3);
        core.clear_holder();
        assert_eq!(core.holder_site(), None);
    }

    /// An eventually fair mutex core, held, its next contended release set to barge
    /// (`fair: false`) or to hand over strictly (`true`).
    fn barging_mutex(fair: bool) -> SemCore {
        let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
        core.set_eventually_fair();
        core.try_acquire(1, Caller::Async).unwrap();
        let now = std::time::Instant::now();
        let deadline = if fair { now } else { now + Duration::from_secs(3600) };
        core.shared.lock().fair_deadline = Some(deadline);
        core
    }

    #[test]
    fn an_eventually_fair_release_wakes_the_head_and_anyone_may_take_the_lock() {
        let core = barging_mutex(false);
        let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(waiter.as_mut().now_or_never().is_none());
        assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits));
        core.release(1);
        assert_eq!(waiter.settlement.outcome(), Outcome::Woken, "woken to try, not granted");
        core.try_acquire(1, Caller::Async).expect("barging: a free lock is anyone's");
        let mut later = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(later.as_mut().now_or_never().is_none());
        // The woken waiter lost: it queues again at the front, ahead of the later one.
        assert!(waiter.as_mut().now_or_never().is_none());
        core.release(1);
        assert_eq!(waiter.settlement.outcome(), Outcome::Woken, "the front waiter is woken again");
        assert_eq!(later.settlement.outcome(), Outcome::Waiting);
        assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())), "and takes the lock");
        core.release(1);
        assert_eq!(later.as_mut().now_or_never(), Some(Ok(())));
    }

    #[test]
    fn an_eventually_fair_release_hands_over_strictly_when_its_turn_is_due() {
        let core = barging_mutex(true);
        let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(waiter.as_mut().now_or_never().is_none());
        let released_at = std::time::Instant::now();
        core.release(1);
        assert_eq!(waiter.settlement.outcome(), Outcome::Granted);
        assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits), "no barging past it");
        // No clock comparison against "now" (a slow run, Miri, may pass the interval):
        // the turn moved the deadline to one interval after the release.
        assert!(
            core.shared.lock().fair_deadline.unwrap() >= released_at + FAIR_INTERVAL,
            "the next one is due an interval later"
        );
        assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())));
    }

    /// A woken waiter dropped before it tried passes the wake on: nobody sleeps while the
    /// lock is free.
    #[test]
    fn a_woken_waiter_that_is_dropped_wakes_the_next() {
        let core = barging_mutex(false);
        let mut first = Box::pin(core.acquire(1, Caller::Async, None));
        let mut second = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(first.as_mut().now_or_never().is_none());
        assert!(second.as_mut().now_or_never().is_none());
        core.release(1);
        assert_eq!(first.settlement.outcome(), Outcome::Woken);
        assert_eq!(second.settlement.outcome(), Outcome::Waiting);
        drop(first);
        assert_eq!(second.settlement.outcome(), Outcome::Woken, "the wake was passed on");
        assert_eq!(second.as_mut().now_or_never(), Some(Ok(())));
    }

    /// A close reaches a woken waiter too, when it tries.
    #[test]
    fn a_woken_waiter_sees_a_close() {
        let core = barging_mutex(false);
        let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(waiter.as_mut().now_or_never().is_none());
        core.release(1);
        core.close();
        assert_eq!(waiter.as_mut().now_or_never(), Some(Err(AcquireError::Closed)));
    }

    /// The direct hand-off of released permits must not strand free ones: a head that
    /// wanted more than were free takes the released permits, and the next waiter the
    /// free one (found by the model fuzz).
    #[test]
    fn a_release_to_a_big_head_also_serves_the_next_from_free_permits() {
        let core = core(1);
        let mut big = Box::pin(core.acquire(2, Caller::Async, None));
        let mut small = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(big.as_mut().now_or_never().is_none(), "1 free, 2 wanted");
        assert!(small.as_mut().now_or_never().is_none(), "FIFO: behind the big one");
        core.add_pool_permits(2);
        assert_eq!(big.as_mut().now_or_never(), Some(Ok(())));
        assert_eq!(small.as_mut().now_or_never(), Some(Ok(())), "the free permit was not stranded");
        assert_eq!(core.available(), 0);
    }

    /// An owner's exit claims a moved hold, then counts it as orphaned; the hold's release
    /// elsewhere adopts it, and may come in between (found by the storm, modelled in
    /// loom's `task_exit_races_a_release_elsewhere`). Either order ends uncounted.
    #[test]
    fn an_orphan_adopted_before_it_is_counted_is_never_counted() {
        let core = core(1);
        let owner = Abandoner { id: crate::current_owner(), name: None };
        core.adopt_orphan((1, 2)); // released between the exit's claim and its count
        core.orphan(&owner, 1, None, (1, 2));
        core.orphan(&owner, 1, None, (3, 4)); // counted, then released
        assert_eq!(core.shared.lock().orphans.len(), 1);
        core.adopt_orphan((3, 4));
        let shared = core.shared.lock();
        assert!(shared.orphans.is_empty() && shared.adopted_before_counted.is_empty());
    }

    /// The same race for a split (issue 29, defect 7): an orphan split between the exit's
    /// claim and its count is counted as its two halves, each of its own permits, and
    /// either half's release un-counts only that half.
    #[test]
    fn an_orphan_split_before_it_is_counted_is_counted_as_two() {
        let core = core(3);
        let id = crate::current_owner();
        let owner = Abandoner { id, name: None };
        let split = OrphanSplit { tag: (1, 2), kept: 2, piece: (1, 9), taken: 1, acquirer: id };
        core.split_orphan(split); // split between the exit's claim and its count
        core.orphan(&owner, 3, None, (1, 2));
        let counted: Vec<_> = core.shared.lock().orphans.iter().map(|o| (o.tag, o.permits)).collect();
        assert_eq!(counted, [((1, 9), 1), ((1, 2), 2)]);
        core.adopt_orphan((1, 9));
        core.adopt_orphan((1, 2));
        let shared = core.shared.lock();
        assert!(shared.orphans.is_empty() && shared.resized_before_counted.is_empty());
    }

    /// A mutex handed to a waiter while others still wait is a new hold seen with waiters
    /// behind it from its start: timed from the hand-off (never earlier), not from
    /// whenever a snapshot first looks. Once the queue empties it is not timed.
    #[test]
    fn a_hold_handed_over_with_waiters_left_is_timed_from_the_hand_off() {
        let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
        core.try_acquire(1, Caller::Async).unwrap();
        let mut first = Box::pin(core.acquire(1, Caller::Async, None));
        let mut second = Box::pin(core.acquire(1, Caller::Async, None));
        assert!(first.as_mut().now_or_never().is_none());
        assert!(second.as_mut().now_or_never().is_none());
        let before = Stamp::now();
        core.release(1); // to `first`; `second` waits for it
        let since = core.shared.lock().hold_since.expect("timed from the hand-off");
        assert!(since >= before, "never earlier than the hold began");
        assert_eq!(first.as_mut().now_or_never(), Some(Ok(())));
        core.release(1); // to `second`, the last waiter
        assert_eq!(core.shared.lock().hold_since, None, "nobody waits for it");
        assert_eq!(second.as_mut().now_or_never(), Some(Ok(())));
    }

    /// A queued acquire's first poll spends no budget unless it has a result, so one that
    /// takes the permits with the task's budget spent must give them back and yield: never
    /// ready on a spent budget, never a permit lost.
    #[cfg(feature = "tokio")]
    #[test]
    fn a_first_poll_that_takes_the_permits_on_a_spent_budget_gives_them_back() {
        let runtime = ::tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            ::tokio::spawn(async {
                let core = core(1);
                let mut acquire = Box::pin(core.acquire(1, Caller::Async, None));
                std::future::poll_fn(|cx| {
                    while let Poll::Ready(progress) = ::tokio::task::coop::poll_proceed(cx) {
                        progress.made_progress();
                    }
                    assert!(acquire.as_mut().poll(cx).is_pending(), "ready on a spent budget");
                    assert_eq!(core.available(), 1, "the permit taken was not given back");
                    Poll::Ready(())
                })
                .await;
                // The budget is refilled at the task's next poll, after its yield.
                ::tokio::task::yield_now().await;
                assert_eq!(acquire.await, Ok(()));
                assert_eq!(core.available(), 0);
            })
            .await
            .unwrap();
        });
    }

    #[test]
    fn flags_survive_forget_and_release() {
        let core = core(3);
        core.close();
        assert_eq!(core.forget_permits(1), 1);
        core.release(1);
        assert!(core.is_closed(), "tokio #8020: no CAS path may clear CLOSED");
        assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::Closed));
    }
}
