//! The counted core under every primitive: permits, a FIFO lot, owner registration,
//! break/close (what tokio's `batch_semaphore` is to tokio, plus owners). Every
//! primitive is a thin layer on one [`SemCore`]: a mutex is a core of one permit, an
//! RwLock one of `max_readers` permits whose writer takes them all, a semaphore and a
//! limiter are cores of their permits.
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
//!
//! One concern a file, each an `impl SemCore` block over the state defined here:
//! - [`acquire`]: the acquire futures, from a public `async fn` to a grant;
//! - [`permits`]: counting, FIFO grants, releases, the pool, close, fairness, requeue;
//! - [`hold`]: the hold lifecycle, its table of states and events, and [`Hold`];
//! - [`holder`]: the exclusive hold's recorded holder, site and registration; strict mode;
//! - [`abandon`]: break and reclaim, orphans, failed waiters' errors, repair;
//! - [`cut_short`]: a critical section cut short by a cancellation;
//! - [`watch`]: statistics snapshots, `Debug`, and the lazy warnings.

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, Weak};

use crate::clock::Stamp;
use crate::error::{BrokenResourceError, PrimitiveKind};
use crate::info::OrphanInfo;
use crate::loom::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, UnsafeCell};
use crate::lot::WaitQueue;
use crate::owner::{OrphanTag, OwnerId};

mod abandon;
mod acquire;
pub(crate) mod cut_short;
mod hold;
mod holder;
mod permits;
#[cfg(test)]
mod tests;
mod watch;

pub(crate) use abandon::BreakHook;
pub use abandon::{AbandonPolicy, Abandonments};
pub(crate) use acquire::acquire_permits;
pub use cut_short::CutShort;
pub(crate) use hold::Hold;
use holder::HoldWords;
pub(crate) use watch::{CoreSnapshot, common_statistics};

const CLOSED: usize = 1;
const BROKEN: usize = 2;
const SLOW: usize = 4;
const FLAGS: usize = CLOSED | BROKEN | SLOW;
const SHIFT: u32 = 3;

/// The most permits a semaphore can hold, as in tokio (3 bits are flags).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> SHIFT;

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
    /// Permits released or abandoned since a counted primitive broke (every call of
    /// [`Shared::held_no_more`]): the ones its repair gives back to the pool (see
    /// [`SemCore::repair_counted`]). A primitive with data counts its permits back in its
    /// state word instead and never reads this.
    given_back_while_broken: usize,
    /// Who else must hear of a break: the conditions used with this mutex, whose
    /// waiters are not in this queue until notified.
    break_hooks: Vec<Weak<dyn BreakHook>>,
    /// The exclusive hold of an owner being cancelled, and that owner (see [`cut_short`]).
    armed: Option<cut_short::Armed>,
    /// Sections cut short so far.
    cut_short: cut_short::CutShort,
}

impl Shared {
    /// Forgets the exclusive hold's stamp once nobody waits (see [`Shared::hold_since`]).
    pub(super) fn forget_hold_stamp_if_idle(&mut self) {
        if self.queue.is_empty() {
            self.hold_since = None;
        }
    }

    /// What a pool holds while `free` of its permits are free: `total + debt - free` (a
    /// limiter's; see [`SemCore::pool`]).
    pub(super) fn held_with_free(&self, free: usize) -> usize {
        (self.pool_total + self.debt).saturating_sub(free)
    }

    /// What a pool holds, its state word last read as `state`: taken and not given back,
    /// `total + debt - free`; once broken, what was held then less what came back since
    /// (see [`SemCore::pool`]).
    pub(super) fn held(&self, state: usize) -> usize {
        if state & BROKEN != 0 { self.held_when_broken } else { self.held_with_free(state >> SHIFT) }
    }

    /// `permits` of a broken pool came back or were abandoned: no longer held (see
    /// `held_when_broken`).
    pub(super) fn held_no_more(&mut self, permits: usize) {
        self.held_when_broken = self.held_when_broken.saturating_sub(permits);
        self.given_back_while_broken = self.given_back_while_broken.saturating_add(permits);
    }
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
    /// Holds taken by untracked runtime tasks (see [`crate::anonymous`]).
    anonymous: crate::anonymous::AnonymousHolds,
    /// Strict mode (a mutex): a self-wait is `WouldDeadlock` at once instead of a wait.
    /// (An atomic rather than a `bool` set through `Arc::get_mut`: the `diagnostics`
    /// registry keeps a weak reference from the start.)
    strict: AtomicBool,
    /// Eventual fairness (opt-in): a release puts its permits back for anyone to take
    /// and wakes the head waiter to try again, except for a fair hand-off at least every
    /// [`FAIR_INTERVAL`](permits::FAIR_INTERVAL). See [`SemCore::set_eventually_fair`].
    barging: AtomicBool,
    /// How many permits an exclusive hold takes: 1 for a mutex, every permit for an
    /// RwLock's writer; [`NOT_EXCLUSIVE`] for counted primitives. An exclusive hold
    /// records its holder, breaks the primitive when dropped in a panic that began in its
    /// section (its data may be half-updated), and always breaks it when abandoned.
    exclusive: usize,
    /// A section cut short: set while an owner being cancelled has this core's exclusive
    /// hold (see [`cut_short`]); the one load the release path pays for it.
    cut_short_armed: AtomicBool,
    /// `break_on_cancel()`: a section cut short by its owner's cancellation breaks the
    /// lock instead of being counted and released.
    break_on_cancel: AtomicBool,
}

/// [`SemCore::exclusive`] of a primitive without exclusive holds: no hold has that many
/// permits (more than `MAX_PERMITS`).
const NOT_EXCLUSIVE: usize = usize::MAX;

// SAFETY: `exclusive_hold` is the one field not `Sync` by itself (an `UnsafeCell`); it is
// reached only by the guard of the exclusive hold, one at a time (see
// `put_exclusive_hold`), exactly as a mutex's data is.
unsafe impl Sync for SemCore {}

impl SemCore {
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
            anonymous: Default::default(),
            cut_short_armed: AtomicBool::new(false),
            break_on_cancel: AtomicBool::new(false),
            strict: AtomicBool::new(false),
            barging: AtomicBool::new(false),
            exclusive: match kind {
                PrimitiveKind::Mutex => 1,
                PrimitiveKind::RwLock => permits,
                _ => NOT_EXCLUSIVE,
            },
        }
    }

    /// An anonymous borrow of a limiter (taken without [`SemCore::register`]): counted
    /// as every anonymous hold is.
    pub(crate) fn note_anonymous_hold(&self, site: crate::id::Site) {
        self.anonymous.note(self.kind, self.name.as_deref(), site);
    }

    /// Turns eventual fairness on: an acquire may take free permits while others wait
    /// (barging), a release wakes the head waiter to try again instead of handing the
    /// permits to it, and a release hands them over strictly (FIFO) when
    /// [`FAIR_INTERVAL`](permits::FAIR_INTERVAL) has passed since the last such hand-off, so no waiter starves.
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
}
