//! `Condition` (Trio's): wait for a notification while giving up a mutex, and get the
//! mutex back with it.
//!
//! A condition has its own FIFO queue (the same lot every primitive uses). A notify does
//! not wake anyone: it *requeues* the waiters it picks onto the mutex's queue, so each is
//! woken only when the mutex is handed to it, in order, and nothing re-contends (no
//! thundering herd on `notify_all`). Every move between the two queues happens with the
//! condition's lock and then the mutex core's lock held (always in that order), and the
//! waiter's word says which queue holds it, so a cancellation finds it in
//! either. A waiter cancelled after it was notified passes the notification on to the
//! next waiter (the classic lost-notification bug cannot happen). When the mutex breaks,
//! every condition waiter gets `Broken` (Trio leaves unnotified ones hanging).

use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::core::{BreakHook, SemCore};
use crate::error::AcquireError;
use crate::loom::Mutex as LotMutex;
use crate::lot::{Outcome, WaitMeta, WaitQueue, Waiter};
use crate::mutex::{Mutex, MutexGuard};
use crate::owner::{Caller, OwnerId, Site, caller_site, identity_for};
use crate::wake::WakeList;

/// A condition variable for a [`Mutex`], as in Trio: [`wait`] gives the
/// mutex up and parks until notified, then returns holding it again. Use one condition
/// with one mutex (the first it waits with); waiting with another panics.
///
/// [`wait`]: Condition::wait
///
/// ```
/// use std::sync::Arc;
/// use ownsync::{Condition, Mutex};
/// # futures::executor::block_on(async {
/// let queue = Arc::new(Mutex::new(Vec::new()));
/// let not_empty = Arc::new(Condition::new());
/// let consumer = {
///     let (queue, not_empty) = (queue.clone(), not_empty.clone());
///     async move {
///         let mut items = queue.lock().await?;
///         while items.is_empty() {
///             items = not_empty.wait(items).await?;
///         }
///         Ok::<_, ownsync::AcquireError>(items.pop())
///     }
/// };
/// let producer = async {
///     queue.lock().await?.push(7);
///     not_empty.notify_one();
///     Ok::<_, ownsync::AcquireError>(())
/// };
/// let (item, _) = futures::join!(consumer, producer);
/// assert_eq!(item.unwrap(), Some(7));
/// # });
/// ```
pub struct Condition {
    inner: Arc<Inner>,
}

struct Inner {
    shared: LotMutex<CondShared>,
}

#[derive(Default)]
struct CondShared {
    queue: WaitQueue,
    /// The mutex this condition is used with, bound by the first wait.
    mutex: Option<Weak<SemCore>>,
}

impl BreakHook for Inner {
    fn primitive_broke(&self) {
        let mut wakes = WakeList::default();
        self.shared.lock().queue.fail_all(&mut wakes);
        wakes.wake_all();
    }
}

impl Condition {
    /// A new condition, not yet used with any mutex.
    ///
    /// ```
    /// assert_eq!(ownsync::Condition::new().statistics().waiters(), 0);
    /// ```
    pub fn new() -> Self {
        Condition { inner: Arc::new(Inner { shared: LotMutex::new(CondShared::default()) }) }
    }

    /// Gives `guard`'s mutex up, waits for a notification, and returns holding the mutex
    /// again (after the waiters before it on the mutex). Wakeups are never spurious, but
    /// another task may change the data between the notify and the return: check the
    /// predicate in a loop. Cancel-safe: a cancelled wait leaves the queue, and if it had
    /// been notified it passes the notification on.
    ///
    /// # Errors
    /// [`AcquireError::Broken`] if the mutex breaks while waiting (notified or not).
    ///
    /// # Panics
    /// If this condition was used with another mutex.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let (mutex, cond) = (Arc::new(ownsync::Mutex::new(false)), ownsync::Condition::new());
    /// let waiter = async {
    ///     let mut ready = mutex.lock().await?;
    ///     while !*ready {
    ///         ready = cond.wait(ready).await?;
    ///     }
    ///     Ok::<_, ownsync::AcquireError>(())
    /// };
    /// let notifier = async {
    ///     *mutex.lock().await? = true;
    ///     cond.notify_all();
    ///     Ok::<_, ownsync::AcquireError>(())
    /// };
    /// let (waited, notified) = futures::join!(waiter, notifier);
    /// assert!(waited.is_ok() && notified.is_ok());
    /// # });
    /// ```
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&'a self, guard: MutexGuard<'a, T>) -> ConditionWait<'a, T> {
        self.wait_as(guard, Caller::Async)
    }

    /// [`wait`](Self::wait) for an entry point of the `caller` kind: whose the mutex is
    /// again if the guard's owner is gone by then (see `ConditionWait`'s `owner`).
    #[track_caller]
    fn wait_as<'a, T: ?Sized>(&'a self, guard: MutexGuard<'a, T>, caller: Caller) -> ConditionWait<'a, T> {
        ConditionWait {
            site: caller_site(),
            caller,
            owner: None,
            condition: self,
            guard: Some(guard),
            mutex: None,
            queued: false,
            waiter: Waiter::new(),
            _pinned: PhantomPinned,
        }
    }

    /// [`wait`](Self::wait) from synchronous code, blocking the thread.
    ///
    /// # Errors
    /// [`AcquireError::Broken`] if the mutex breaks while waiting.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let (mutex, cond) = (Arc::new(ownsync::Mutex::new(false)), Arc::new(ownsync::Condition::new()));
    /// let waiter = std::thread::spawn({
    ///     let (mutex, cond) = (mutex.clone(), cond.clone());
    ///     move || {
    ///         let mut ready = mutex.blocking_lock().unwrap();
    ///         while !*ready {
    ///             ready = cond.blocking_wait(ready).unwrap();
    ///         }
    ///     }
    /// });
    /// *mutex.blocking_lock().unwrap() = true;
    /// cond.notify_all();
    /// waiter.join().unwrap();
    /// ```
    #[track_caller]
    pub fn blocking_wait<'a, T: ?Sized>(
        &'a self,
        guard: MutexGuard<'a, T>,
    ) -> Result<MutexGuard<'a, T>, AcquireError> {
        crate::block::block_on(self.wait_as(guard, Caller::Blocking))
    }

    /// Wakes the first waiter, if any (moves it onto the mutex's queue).
    ///
    /// ```
    /// let cond = ownsync::Condition::new();
    /// cond.notify_one(); // nobody waits: nothing happens, nothing is remembered
    /// ```
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes the first `n` waiters (or all, if fewer), in order.
    ///
    /// ```
    /// ownsync::Condition::new().notify(3);
    /// ```
    pub fn notify(&self, n: usize) {
        let mut wakes = WakeList::default();
        {
            let mut shared = self.inner.shared.lock();
            let Some(mutex) = shared.mutex.as_ref().and_then(Weak::upgrade) else { return };
            for _ in 0..n {
                let Some(parked) = shared.queue.pop_front() else { break };
                mutex.requeue(parked, &mut wakes);
            }
        }
        wakes.wake_all();
    }

    /// Wakes every waiter, in order: each gets the mutex in turn.
    ///
    /// ```
    /// ownsync::Condition::new().notify_all();
    /// ```
    pub fn notify_all(&self) {
        self.notify(usize::MAX);
    }

    /// A snapshot: how many tasks wait for a notification (not counting those already
    /// notified and waiting for the mutex).
    ///
    /// ```
    /// assert_eq!(ownsync::Condition::new().statistics().waiters(), 0);
    /// ```
    pub fn statistics(&self) -> ConditionStatistics {
        ConditionStatistics { waiters: self.inner.shared.lock().queue.len() }
    }

    /// Binds this condition to `mutex` on first use; panics on another mutex.
    fn bind(&self, shared: &mut CondShared, mutex: &Arc<SemCore>) {
        match &shared.mutex {
            Some(bound) => assert!(
                std::ptr::eq(bound.as_ptr(), Arc::as_ptr(mutex)),
                "a Condition may only be used with one mutex"
            ),
            None => {
                shared.mutex = Some(Arc::downgrade(mutex));
                let hook: Weak<dyn BreakHook> = Arc::downgrade(&self.inner) as Weak<dyn BreakHook>;
                mutex.add_break_hook(hook);
            }
        }
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("waiters", &self.statistics().waiters()).finish()
    }
}

/// A snapshot of a [`Condition`] (Trio's `tasks_waiting`).
///
/// ```
/// let stats = ownsync::Condition::new().statistics();
/// assert_eq!(stats.waiters(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionStatistics {
    waiters: usize,
}

impl ConditionStatistics {
    /// Tasks waiting for a notification.
    pub fn waiters(&self) -> usize {
        self.waiters
    }
}

/// The future of [`Condition::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct ConditionWait<'a, T: ?Sized> {
    /// Where `wait` was called: the site of the hold it returns.
    site: Site,
    /// The kind of entry point (`wait`: async; `blocking_wait`: blocking): who answers for
    /// the hold it returns if the guard's owner is gone by then.
    caller: Caller,
    /// Who answered for the guard given up (`None`: nobody, it was anonymous). The hold
    /// returned is registered to it again, so the guard comes back exactly as it was:
    /// the same owner, whose exit with it breaks the mutex.
    owner: Option<OwnerId>,
    condition: &'a Condition,
    /// The guard given up, until the first poll parks and releases it.
    guard: Option<MutexGuard<'a, T>>,
    /// Its mutex, from then on.
    mutex: Option<&'a Mutex<T>>,
    /// Whether `waiter` may be linked in a queue (the condition's, then its mutex's):
    /// from the first poll until it returns.
    queued: bool,
    /// The node the queues link, and where they write what became of it (see
    /// `WaitQueue::park`).
    waiter: Waiter,
    _pinned: PhantomPinned,
}

impl<'a, T: ?Sized> Future for ConditionWait<'a, T> {
    type Output = Result<MutexGuard<'a, T>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the pinned future; `waiter`, which the queues
        // point at, stays in place until the future is dropped.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(guard) = this.guard.take() {
            return this.park_and_release(guard, cx);
        }
        let mutex = this.mutex.expect("a `ConditionWait` polled after it completed");
        loop {
            match this.waiter.outcome() {
                Outcome::Waiting => {
                    let mut shared = this.condition.inner.shared.lock();
                    if this.waiter.outcome() != Outcome::Waiting {
                        continue; // notified (or failed) while we took the lock
                    }
                    // SAFETY: still waiting, read under the condition's lock: linked in
                    // its queue.
                    let replaced = unsafe { shared.queue.update_waker(&this.waiter, cx.waker()) };
                    drop(shared);
                    drop(replaced); // a waker's drop may re-enter: never under the lock
                    return Poll::Pending;
                }
                Outcome::Requeued => {
                    if mutex.core().update_requeued_waker(&this.waiter, cx.waker()) {
                        return Poll::Pending;
                    }
                }
                Outcome::Granted => {
                    this.queued = false;
                    this.mutex = None;
                    let hold = mutex.core().register_granted(this.owner, this.caller, this.site);
                    return Poll::Ready(Ok(MutexGuard::from_hold(mutex, hold)));
                }
                Outcome::Failed => {
                    this.queued = false;
                    this.mutex = None;
                    return Poll::Ready(Err(mutex.core().failure()));
                }
                Outcome::Woken => {
                    unreachable!("a requeued condition waiter is granted, never woken to retry")
                }
            }
        }
    }
}

impl<'a, T: ?Sized> ConditionWait<'a, T> {
    /// The first poll: queue on the condition, then give the mutex up. In that order, so
    /// that a notify made by whoever takes the mutex next finds this waiter.
    fn park_and_release(
        &mut self,
        guard: MutexGuard<'a, T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<MutexGuard<'a, T>, AcquireError>> {
        let (mutex, hold) = MutexGuard::into_parts(guard);
        self.mutex = Some(mutex);
        self.owner = hold.answering_owner();
        let core = mutex.core();
        {
            #[cfg_attr(not(feature = "diagnostics"), allow(unused_mut))]
            let mut meta = WaitMeta::new(self.owner.or_else(|| identity_for(self.caller)), self.site);
            // Read before the condition is locked (it takes the owner's record lock),
            // without the mutex given up just below.
            #[cfg(feature = "diagnostics")]
            {
                let mutex_identity = Arc::as_ptr(core).cast::<()>() as usize;
                let mut holding = crate::owner::holds_of_current(self.caller);
                holding.retain(|held| held.identity != mutex_identity);
                meta.holding = holding.into_boxed_slice();
            }
            let mut shared = self.condition.inner.shared.lock();
            self.condition.bind(&mut shared, core);
            // SAFETY: the future is pinned (`!Unpin`), so `waiter` stays put; it is linked
            // nowhere (the first poll); `Drop` takes it out of whichever queue holds it
            // unless it was settled, after which no queue has the pointer.
            unsafe { shared.queue.park(&self.waiter, 1, cx.waker().clone(), meta, false, false) };
            self.queued = true;
        }
        core.end_hold(hold, 1);
        if core.is_broken() {
            // Broken before we queued (the guard was a dead one): its break could not
            // fail us, so we do. Or its hook failed us already.
            let own_waker = {
                let mut shared = self.condition.inner.shared.lock();
                match self.waiter.outcome() {
                    // SAFETY: still waiting, read under the condition's lock: linked in
                    // its queue.
                    Outcome::Waiting => unsafe { shared.queue.remove(&self.waiter) },
                    _ => None,
                }
            };
            drop(own_waker);
            if matches!(self.waiter.outcome(), Outcome::Waiting | Outcome::Failed) {
                self.queued = false;
                self.mutex = None;
                return Poll::Ready(Err(core.failure()));
            }
        }
        Poll::Pending
    }
}

impl<T: ?Sized> Drop for ConditionWait<'_, T> {
    fn drop(&mut self) {
        // Never polled: the guard (if any) is dropped with the future, normally.
        let (true, Some(mutex)) = (std::mem::take(&mut self.queued), self.mutex) else { return };
        let core = mutex.core();
        let mut wakes = WakeList::default();
        let mut own_waker = None;
        let mut granted = false;
        {
            let mut shared = self.condition.inner.shared.lock();
            match self.waiter.outcome() {
                // SAFETY: still waiting, read under the condition's lock: linked in its
                // queue.
                Outcome::Waiting => own_waker = unsafe { shared.queue.remove(&self.waiter) },
                Outcome::Failed | Outcome::Woken => {}
                Outcome::Requeued | Outcome::Granted => {
                    // Notified, and never to use it: out of the mutex's queue (or give the
                    // mutex back), and the notification goes to the next waiter.
                    granted = core.cancel_requeued(&self.waiter, &mut wakes, &mut own_waker);
                    if let Some(next) = shared.queue.pop_front() {
                        core.requeue(next, &mut wakes);
                    }
                }
            }
        }
        if granted {
            core.pass_on_grant(1);
        }
        wakes.wake_all();
        drop(own_waker);
    }
}

/// Reaches the pinned waiter's paths (park, requeue, grant, cancel after a notify)
/// as a unit test, so Miri checks them.
#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn park_requeue_grant_and_cancel_are_sound() {
        let mutex = Mutex::new(String::from("a"));
        let cond = Condition::new();
        let mut first = Box::pin(cond.wait(mutex.try_lock().unwrap()));
        assert!(poll(first.as_mut()).is_pending());
        let mut second = Box::pin(cond.wait(mutex.try_lock().unwrap()));
        assert!(poll(second.as_mut()).is_pending());
        let notifier = mutex.try_lock().unwrap();
        cond.notify_all();
        assert!(poll(first.as_mut()).is_pending(), "requeued behind the notifier");
        drop(notifier);
        drop(first); // granted, cancelled: the mutex goes on to the second
        match poll(second.as_mut()) {
            Poll::Ready(Ok(mut guard)) => guard.push('b'),
            other => panic!("expected the mutex, got {:?}", other.map(|r| r.map(drop))),
        }
        drop(second);
        assert_eq!(*mutex.try_lock().unwrap(), "ab");
    }
}
