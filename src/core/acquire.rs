//! The acquire futures: [`TakeUncontended`] (one CAS, the uncontended path) and
//! [`AcquireFuture`] (queued, FIFO, cancel-safe), and the one macro that runs them from
//! a public `async fn`.

use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::task::{Context, Poll, ready};

use crate::error::{AcquireError, TryAcquireError};
use crate::loom::{SPIN_LIMIT, spin_hint};
use crate::lot::{GrantClaim, Outcome, WaitMeta, Waiter};
use crate::owner::{Caller, Site, identity_for};
use crate::wake::WakeList;

use super::{BROKEN, CLOSED, Hold, SHIFT, SLOW, SemCore};

/// Acquires `$permits` of `$core` for `$caller` inside the calling `async` block, `?`-ing
/// the error: the one-CAS [`TakeUncontended`] first, the queued [`AcquireFuture`] only if
/// that fails. The permits are then held anonymously; the caller registers them
/// ([`SemCore::register`], or a limiter's borrow). The crate's one acquire macro, and a
/// macro rather than an `async fn` because each `async fn` layer between a public
/// acquire and the core costs more than the fast path saves (measured: 4-6 ns
/// uncontended, ~15 ns per contended hand-off). Every public acquire reads the same:
/// `acquire_permits!(core, n, caller, site); let hold = core.register(..);`.
macro_rules! acquire_permits {
    ($core:expr, $permits:expr, $caller:expr, $site:expr) => {
        if !$core.take_uncontended($permits).await {
            $core.acquire($permits, $caller, $site).await?;
        }
    };
}
pub(crate) use acquire_permits;

/// How many spin steps a thread waiting on an eventually fair primitive tries for the
/// permits before it queues (a few microseconds): the longer it stays out of the queue,
/// the more of the holder's releases take the fast path (measured on 2 threads: 189 ns
/// per lock at 50 steps, 142 at 200, 128 at 2,000). None under loom.
const BARGE_SPIN_LIMIT: u32 = SPIN_LIMIT * 10;

impl SemCore {
    /// Waits for `permits` in FIFO order. The permits are held (anonymously) when it
    /// returns `Ok`; register them with [`SemCore::register`].
    pub(crate) fn acquire(&self, permits: usize, caller: Caller, site: Site) -> AcquireFuture<'_> {
        AcquireFuture {
            core: self,
            permits,
            caller,
            site,
            queued: false,
            parked_before: false,
            waiter: Waiter::new(),
            _pinned: PhantomPinned,
        }
    }

    /// [`acquire_permits!`] and [`SemCore::register`] for a blocking entry point, blocking the thread. The uncontended
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
            crate::block::block_on(self.acquire(permits, caller, site))?;
        }
        Ok(self.register(permits, caller, self, moves, site))
    }

    /// `permits` with one CAS if that is possible now (see [`TakeUncontended`]).
    pub(crate) fn take_uncontended(&self, permits: usize) -> TakeUncontended<'_> {
        TakeUncontended { core: self, permits }
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

    #[inline(always)]
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
/// While queued it is pinned, and its [`Waiter`] is the node the queue links (see
/// [`WaitQueue::park`](crate::lot::WaitQueue::park)): queueing allocates nothing, and a
/// woken acquire collects its grant from the node's word without the lot's lock.
pub(crate) struct AcquireFuture<'a> {
    core: &'a SemCore,
    permits: usize,
    caller: Caller,
    site: Site,
    /// Whether `waiter` is (or was until its settlement) linked in the queue: from the
    /// poll that parks it until a poll or the drop collects its outcome.
    queued: bool,
    /// Whether it queued before: a waiter woken to try again (eventual fairness) that
    /// loses the race queues again, at the front, keeping the start of its wait (which
    /// its waiter keeps).
    parked_before: bool,
    waiter: Waiter,
    _pinned: PhantomPinned,
}

impl Future for AcquireFuture<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the future; `waiter`, the one field the queue
        // points at, stays where it is until the future is dropped.
        let this = unsafe { self.get_unchecked_mut() };
        // An acquire that queued spends none of the task's cooperative budget: its first
        // poll was pending, so its task has yielded already and is polled anew (tokio
        // refills a task's budget at every poll); a budget check here would only add
        // tokio's thread-local lookups to every contended hand-off (measured: 58
        // instructions of 1,150). The common wake is kept small: a grant settled while
        // queued, collected with no lock and no call.
        if this.queued {
            if this.waiter.outcome() == Outcome::Granted && !this.core.is_broken() {
                this.queued = false;
                return Poll::Ready(Ok(()));
            }
            return this.poll_acquire(cx);
        }
        // An acquire that completes at its first poll spends a unit, as tokio's own
        // primitives do, after the fact: one that queues spends nothing (a pending poll
        // never does), and one that took the permits with the budget spent gives them
        // back and yields, as `TakeUncontended` does.
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
        if self.queued {
            let mut outcome = self.waiter.outcome();
            if outcome == Outcome::Waiting {
                let mut shared = core.shared.lock();
                // Settled between the load and the lock? Then it is unlinked: go on below.
                outcome = self.waiter.outcome();
                if outcome == Outcome::Waiting {
                    // SAFETY: still waiting, read under the lock: linked in this queue.
                    let replaced = unsafe { shared.queue.update_waker(&self.waiter, cx.waker()) };
                    let overdue = core.overdue(&mut shared);
                    drop(shared);
                    drop(replaced); // a waker's drop may re-enter: never under the lock
                    core.report(overdue);
                    return Poll::Pending;
                }
            }
            self.queued = false;
            match outcome {
                // Out of the queue, nothing granted (eventual fairness): try for the
                // permits like a first poll (anyone may have taken them), below, and
                // queue again at the front if they are gone. Not a recursive call: that
                // would keep this function from being inlined into `poll`.
                Outcome::Woken => {}
                Outcome::Granted if !core.is_broken() => return Poll::Ready(Ok(())),
                Outcome::Granted => {
                    // Granted, then broken before we ran: the permits go back (counted in
                    // by a repairable primitive, so a repair does not wait for them for ever),
                    // by us unless a claim answers for them.
                    if self.waiter.passes_on_grant() {
                        core.pass_on_grant(self.permits);
                    }
                    return Poll::Ready(Err(core.failure()));
                }
                _ => return Poll::Ready(Err(core.failure())),
            }
        }
        // The common first poll follows a failed one-CAS try (`acquire_permits!`, or a
        // blocking hold's): `park` decides under the lock, taking the permits if they
        // are free, without trying the state word once more first.
        if self.permits != 0 && !self.spins() && !core.would_deadlock(self.caller) {
            return self.park(cx);
        }
        self.try_then_park(cx)
    }

    /// The first poll of an acquire of no permits, of a thread that spins before it
    /// queues, or of a holder asking again (a certain deadlock, refused rather than
    /// queued, unless the primitive is broken or closed: `try_acquire` tells every
    /// failure apart, in that order): try the state word, spin if that is the caller's
    /// way, then park.
    #[cold]
    fn try_then_park(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AcquireError>> {
        match self.core.try_acquire(self.permits, self.caller) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TryAcquireError::Broken(err)) => Poll::Ready(Err(AcquireError::Broken(err))),
            Err(TryAcquireError::Closed) => Poll::Ready(Err(AcquireError::Closed)),
            Err(TryAcquireError::WouldDeadlock) => Poll::Ready(Err(AcquireError::WouldDeadlock)),
            Err(TryAcquireError::OwnerGone(owner)) => Poll::Ready(Err(AcquireError::OwnerGone(owner))),
            Err(TryAcquireError::NoPermits) if self.spins() && self.spin_a_while() => Poll::Ready(Ok(())),
            Err(TryAcquireError::NoPermits) => self.park(cx),
        }
    }

    /// Whether this caller tries for the permits a while, spinning, before it queues:
    /// a thread waiting on an eventually fair primitive. While it spins it is not
    /// queued, so the holder's release and re-lock stay on their fast paths; a queued
    /// waiter would make every release wake it (parking_lot's spin-then-park, and why it
    /// is fast between two threads).
    #[inline]
    fn spins(&self) -> bool {
        self.caller.blocks() && self.core.is_eventually_fair()
    }

    /// The spin of a caller that [`spins`](AcquireFuture::spins) before it queues.
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
        let mut meta = match self.parked_before {
            true => WaitMeta::with_since(me, self.site, self.waiter.parked_since()),
            false => WaitMeta::new(me, self.site),
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
        // The holder is recorded for exclusive holds only (a mutex's, a writer's).
        let self_wait = me.is_some() && me == core.holder();
        let since = meta.since();
        // A waiter woken to try again, which lost: back to the front, where it was.
        let front = std::mem::replace(&mut self.parked_before, true);
        self.waiter.reset();
        // SAFETY: the future is pinned (it is only polled through `Pin`, and it is
        // `!Unpin`), so `waiter` stays put; it is linked nowhere (a first poll, or woken
        // and unlinked); `Drop` unlinks it under the lock unless the queue settled it
        // first, and after that the queue no longer has the pointer.
        unsafe {
            shared.queue.park(&self.waiter, self.permits, cx.waker().clone(), meta, self_wait, front);
        }
        self.queued = true;
        core.stamp_hold(&mut shared, || since);
        let overdue = core.overdue(&mut shared);
        drop(shared);
        core.report(overdue);
        Poll::Pending
    }
}

impl AcquireFuture<'_> {
    /// The same acquire, whose grant `claim` answers for (a limiter's named borrow: see
    /// [`GrantClaim`]): the queue marks it as it grants, and a grant this future does
    /// not collect is passed on by the claim's holder, not by this future. Before the
    /// first poll.
    pub(crate) fn claimed_by(mut self, claim: Arc<GrantClaim>) -> Self {
        self.waiter = Waiter::claimed_by(claim);
        self
    }
}

impl Drop for AcquireFuture<'_> {
    #[inline]
    fn drop(&mut self) {
        if std::mem::take(&mut self.queued) {
            self.leave_queue();
        }
    }
}

impl AcquireFuture<'_> {
    /// Dropped while queued: leave the queue, or pass on what it was given meanwhile.
    #[cold]
    #[inline(never)]
    fn leave_queue(&mut self) {
        let core = self.core;
        let mut wakes = WakeList::default();
        // Our own stored waker, dropped after the lock is released (tokio #5429).
        let mut own_waker = None;
        match self.waiter.outcome() {
            Outcome::Waiting => {
                let mut shared = core.shared.lock();
                match self.waiter.outcome() {
                    // Left the queue: the waiters behind it may now fit (a big head
                    // blocked them).
                    Outcome::Waiting => {
                        // SAFETY: still waiting, read under the lock: linked in this queue.
                        own_waker = unsafe { shared.queue.remove(&self.waiter) };
                        core.grant_waiters(&mut shared, &mut wakes);
                    }
                    // Granted while we took the lock, never returned: pass it on.
                    Outcome::Granted if self.waiter.passes_on_grant() => {
                        core.forget_grantee(self.permits);
                        core.release_locked(&mut shared, self.permits, &mut wakes)
                    }
                    // Woken to try again while we took the lock: pass the wake on.
                    Outcome::Woken => core.wake_waiter(&mut shared, &mut wakes),
                    // (`Requeued` is a condition waiter's, never an acquire's; a claimed
                    // grant is its claim's to pass on.)
                    Outcome::Granted | Outcome::Failed | Outcome::Requeued => {}
                }
            }
            // Granted but never returned: pass the permits on (unless claimed).
            Outcome::Granted if self.waiter.passes_on_grant() => core.pass_on_grant(self.permits),
            // Woken to try again, never to: whoever is at the front now tries instead.
            Outcome::Woken => core.wake_waiter(&mut core.shared.lock(), &mut wakes),
            Outcome::Granted | Outcome::Failed | Outcome::Requeued => {}
        }
        // Wake the granted first: if dropping our waker panics, nobody is left asleep.
        wakes.wake_all();
        drop(own_waker);
    }
}

#[cfg(test)]
impl AcquireFuture<'_> {
    /// What the queue settled for this waiter (the unit tests look).
    pub(super) fn outcome(&self) -> Outcome {
        self.waiter.outcome()
    }
}
