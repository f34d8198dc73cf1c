//! Counting and FIFO grants: the state word's fast paths, the queued acquire's first
//! try, releases that hand permits straight to the head waiter, the pool's total and
//! debt (a limiter's), close, eventual fairness, and a condition waiter's requeue.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::Stamp;
use crate::error::TryAcquireError;
use crate::lot::{Outcome, Parked, Waiter};
use crate::owner::Caller;
use crate::runtime;
use crate::wake::WakeList;

use super::{BROKEN, CLOSED, FLAGS, MAX_PERMITS, SHIFT, SLOW, SemCore, Shared};

/// How long an eventually fair primitive may let acquires barge before a release hands
/// over strictly to the head waiter (parking_lot's figure). Unused under loom, whose
/// `fair_turn` counts instead.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const FAIR_INTERVAL: Duration = Duration::from_micros(500);

impl SemCore {
    /// An acquire's result spends a unit of the task's cooperative budget, as tokio's
    /// own primitives do; on a spent budget the task yields instead, and the `taken`
    /// permits the result holds go back first (none for a failure).
    #[inline(always)]
    pub(super) fn spend_budget(&self, taken: usize, cx: &mut Context<'_>) -> Poll<()> {
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

    /// The fast path: take `permits` with one CAS if nobody waits and enough are free
    /// (or, eventually fair, if enough are free even though others wait). Inline: it is
    /// most of the uncontended acquire (as a call, 16 instructions of a 155-instruction
    /// lock and unlock).
    #[inline]
    pub(super) fn try_take(&self, permits: usize) -> Result<(), usize> {
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

    /// Passes on a grant its waiter will never collect (a cancelled waiter).
    pub(crate) fn pass_on_grant(&self, permits: usize) {
        self.forget_grantee(permits);
        self.release(permits);
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
    pub(crate) fn update_requeued_waker(&self, waiter: &Waiter, waker: &std::task::Waker) -> bool {
        let mut shared = self.shared.lock();
        if waiter.outcome() != Outcome::Requeued {
            return false;
        }
        // SAFETY: still requeued, read under this mutex's lock: linked in its queue.
        let replaced = unsafe { shared.queue.update_waker(waiter, waker) };
        drop(shared);
        drop(replaced);
        true
    }

    /// A requeued condition waiter is cancelled: takes it out of the queue. Returns
    /// whether it had been granted the mutex meanwhile (the caller passes it on). Its
    /// waker and the wakes of the waiters it lets through go to the caller, which holds
    /// the condition's lock: they are dropped and woken only once that is released too
    /// (a waker's drop or wake may run any code, a notify of this condition included).
    pub(crate) fn cancel_requeued(
        &self,
        waiter: &Waiter,
        wakes: &mut WakeList,
        own_waker: &mut Option<std::task::Waker>,
    ) -> bool {
        let mut shared = self.shared.lock();
        match waiter.outcome() {
            Outcome::Requeued => {
                // SAFETY: still requeued, read under this mutex's lock: linked in its
                // queue.
                *own_waker = unsafe { shared.queue.remove(waiter) };
                self.grant_waiters(&mut shared, wakes);
                false
            }
            outcome => outcome == Outcome::Granted,
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
    ///
    /// Decided again under the lot lock, as `release_locked` does: a repair may have
    /// ended the break since the caller looked, and then the permits go to the pool.
    #[cold]
    fn released_while_broken(&self, permits: usize) {
        let mut wakes = WakeList::default();
        self.release_locked(&mut self.shared.lock(), permits, &mut wakes);
        wakes.wake_all();
    }

    /// `state` with `permits` more free. Inline, its panic out of line: it is on every
    /// uncontended release (as a call, 14 instructions of a 155-instruction lock and
    /// unlock).
    #[inline(always)]
    #[track_caller]
    fn add_to(state: usize, permits: usize) -> usize {
        let available = state >> SHIFT;
        match available.checked_add(permits) {
            Some(total) if total <= MAX_PERMITS => (total << SHIFT) | (state & FLAGS),
            _ => Self::too_many_permits(permits),
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn too_many_permits(permits: usize) -> ! {
        panic!("number of added permits ({permits}) would overflow MAX_PERMITS ({MAX_PERMITS})")
    }

    #[track_caller]
    pub(super) fn release_locked(&self, shared: &mut Shared, mut permits: usize, wakes: &mut WakeList) {
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
        // grantee's acquire synchronizes with this release through its waiter's word.
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
    pub(super) fn wake_waiter(&self, shared: &mut Shared, wakes: &mut WakeList) {
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
    pub(super) fn grant_waiters(&self, shared: &mut Shared, wakes: &mut WakeList) {
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

    /// Adds `permits` new permits to the pool (a limiter's growth): to the waiters and the
    /// pool as a release would, but on a broken pool nothing: a release there means "no
    /// longer held" (see [`Shared::held_when_broken`]), and new permits were never held,
    /// so counting them as returned would hide live borrows. `BROKEN` changes only under
    /// the lot's lock, held here.
    fn grow_pool_locked(&self, shared: &mut Shared, permits: usize, wakes: &mut WakeList) {
        if self.state.load(Relaxed) & BROKEN != 0 && !self.repairable() {
            // Free once repaired: the repair gives them back with the rest.
            shared.given_back_while_broken = shared.given_back_while_broken.saturating_add(permits);
            return;
        }
        self.release_locked(shared, permits, wakes);
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
                self.grow_pool_locked(&mut shared, total - old, &mut wakes);
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
        (shared.pool_total, shared.held(self.state.load(Acquire)))
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
}

/// The pool's counts for diagnostics (`k of n available`), and a semaphore's total kept
/// as permits are added, forgotten or given up, so that what is held can be told.
impl SemCore {
    /// Free permits, the pool's total and how many are held ([`SemCore::pool`]), read
    /// under one lock; `listed` is 0, for the caller to fill.
    pub(crate) fn permit_counts(&self) -> crate::info::PermitCounts {
        let shared = self.shared.lock();
        let state = self.state.load(Acquire);
        crate::info::PermitCounts {
            available: state >> SHIFT,
            total: shared.pool_total,
            held: shared.held(state),
            listed: 0,
        }
    }

    /// A semaphore's `add_permits`: like a release (waiters first, in FIFO order), but
    /// panics on overflow even when broken, and grows the total in the same lock (a
    /// broken semaphore's too: its repair gives the added permits out).
    #[track_caller]
    pub(crate) fn add_pool_permits(&self, permits: usize) {
        Self::add_to(self.state.load(Relaxed), permits); // panics on overflow, as tokio
        let mut wakes = WakeList::default();
        {
            let mut shared = self.shared.lock();
            // A broken semaphore's total grows too: its repair hands these out.
            shared.pool_total = shared.pool_total.saturating_add(permits);
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
            // No longer held, and never given back: not `held_no_more`, which would
            // return them to the pool at the repair.
            shared.held_when_broken = shared.held_when_broken.saturating_sub(permits);
        }
    }
}
