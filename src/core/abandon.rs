//! What an owner's exit does to a core: break it (every waiter, now and later, gets the
//! error) or, for a counted primitive under `Reclaim`, return the permits; orphans of
//! owned holds; the errors a failed waiter gets; and the repair of a broken lock.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, Weak};

use crate::error::{AbandonReason, AcquireError, Broken, BrokenResourceError, RepairError};
use crate::info::OrphanInfo;
use crate::owner::{Abandon, Abandoner, OrphanSplit, OrphanTag, OwnerId, Site};
use crate::wake::WakeList;

use super::{BROKEN, CLOSED, FLAGS, NOT_EXCLUSIVE, SHIFT, SLOW, SemCore, Shared};

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

/// Something that must fail its own waiters when a primitive breaks (a condition).
pub(crate) trait BreakHook: Send + Sync {
    /// The primitive broke. Called with no lock held.
    fn primitive_broke(&self);
}

impl SemCore {
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
    pub(super) fn broken_error(&self) -> BrokenResourceError {
        let shared = self.shared.lock();
        shared
            .broken
            .clone()
            .or_else(|| shared.last_break.clone())
            .expect("BROKEN is set only together with the error")
    }

    /// Registers a condition to hear of this mutex's break.
    pub(crate) fn add_break_hook(&self, hook: Weak<dyn BreakHook>) {
        let mut shared = self.shared.lock();
        shared.break_hooks.retain(|hook| hook.strong_count() > 0);
        shared.break_hooks.push(hook);
    }

    /// The error of a waiter the queue failed (or granted, then broken): the break, now
    /// or before a repair, or the close.
    pub(crate) fn failure(&self) -> AcquireError {
        if self.is_broken() { AcquireError::Broken(self.broken_error()) } else { self.failed_error() }
    }

    /// Whether a break can be repaired (a mutex, an RwLock: the primitives with data),
    /// so the permits of guards dropped after it are counted back. A counted primitive
    /// keeps tokio-like counts: a broken one's count no longer changes.
    pub(super) fn repairable(&self) -> bool {
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

    /// Repairs a broken counted primitive (a semaphore, a limiter: no data). Every
    /// permit abandoned or released since the break goes back to the pool, and acquires
    /// succeed again. An abandoned permit is given back even if its permit object still
    /// exists somewhere (leaked, or moved away and alive): nothing tells that apart from a
    /// forgotten one, and it guards no data; its drop releases nothing, so it is never
    /// counted twice. The waiters the break failed keep their error (they are no longer
    /// queued); holds live at the break keep their permits and release them as usual.
    /// Returns how many permits went back.
    pub(crate) fn repair_counted(&self) -> Result<usize, RepairError> {
        debug_assert!(!self.repairable(), "a primitive with data repairs through RepairGuard");
        let mut wakes = WakeList::default();
        let given_back = {
            let mut shared = self.shared.lock();
            if shared.broken.is_none() {
                return Err(RepairError::NotBroken);
            }
            shared.broken = None;
            shared.held_when_broken = 0;
            let given_back = std::mem::take(&mut shared.given_back_while_broken);
            // Under the lot lock, as every change of `BROKEN`: a release that saw it set
            // decides again under this lock (`released_while_broken`). The break failed
            // every waiter and a broken core queues none, so this reaches the pool (and
            // pays a debt first); its last CAS clears a `SLOW` the break left.
            self.state.fetch_and(!BROKEN, AcqRel);
            self.release_locked(&mut shared, given_back, &mut wakes);
            given_back
        };
        wakes.wake_all();
        Ok(given_back)
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

    fn arm_cut_short(&self, tag: OrphanTag, permits: usize, owner: OwnerId) -> bool {
        self.arm_section(tag, permits, owner)
    }

    fn disarm_cut_short(&self, tag: OrphanTag) {
        self.disarm_section(tag);
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
        crate::wake::run_all(
            [Box::new(move || wakes.wake_all()) as Box<dyn FnOnce()>].into_iter().chain(
                hooks.into_iter().map(|hook| Box::new(move || hook.primitive_broke()) as Box<dyn FnOnce()>),
            ),
            |run| run(),
        );
    }
}
