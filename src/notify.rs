//! `Notify`: tokio's `Notify`, with its API and its permit semantics, for code that
//! migrates from `tokio::sync`.
//!
//! A notify has no holder, so nothing about it can be abandoned or broken: it is a
//! queue of wakers and one stored permit under one short lock. Waiters are kept in a
//! map ordered by arrival (first for `notify_one`, last for `notify_last`); a waiter
//! that was notified moves to a second map until its future sees it, so a future
//! dropped with an unseen `notify_one` passes it on, as tokio's does.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::Mutex;
use crate::wake::run_all;

/// Notifies one task, or every waiting task, to wake up: `tokio::sync::Notify`'s API
/// and semantics.
///
/// [`notify_one`](Notify::notify_one) wakes the first waiter, or, if none waits,
/// stores one permit (at most one) that the next [`notified`](Notify::notified)`().await`
/// consumes at once. [`notify_waiters`](Notify::notify_waiters) wakes every waiter
/// there is now, including every [`Notified`] future created before the call, and stores
/// no permit.
///
/// ```
/// use std::sync::Arc;
/// # futures::executor::block_on(async {
/// let notify = Arc::new(ownsync::Notify::new());
/// notify.notify_one(); // no waiter yet: stores the permit
/// notify.notified().await; // consumes it at once
/// # });
/// ```
pub struct Notify {
    state: Mutex<State>,
}

/// How a waiter was notified, while its future has not yet seen it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Notification {
    /// By `notify_one` (`last`: by `notify_last`): passed on if the future is dropped
    /// before it sees it.
    One { last: bool },
    /// By `notify_waiters`: nothing to pass on.
    All,
}

struct State {
    /// The one permit `notify_one` stores when nobody waits.
    permit: bool,
    /// How many times `notify_waiters` was called: a `Notified` created before a call
    /// completes on its first poll.
    waiters_calls: u64,
    /// The key of the next waiter: keys grow, so the maps are in arrival order.
    next_key: u64,
    /// Waiting futures, by key, with the waker of their last poll (`None` after
    /// `enable` alone).
    waiting: BTreeMap<u64, Option<Waker>>,
    /// Waiters notified whose future has not yet seen it.
    notified: BTreeMap<u64, Notification>,
}

impl State {
    const fn new() -> Self {
        State {
            permit: false,
            waiters_calls: 0,
            next_key: 0,
            waiting: BTreeMap::new(),
            notified: BTreeMap::new(),
        }
    }

    /// Notifies the first (`last`: the most recent) waiter, or stores the permit.
    /// Returns the waker to wake once the lock is released.
    fn notify_one(&mut self, last: bool) -> Option<Waker> {
        let waiter = if last { self.waiting.pop_last() } else { self.waiting.pop_first() };
        match waiter {
            Some((key, waker)) => {
                self.notified.insert(key, Notification::One { last });
                waker
            }
            None => {
                self.permit = true;
                None
            }
        }
    }
}

impl Notify {
    /// A new notify, with no permit and no waiter.
    ///
    /// ```
    /// let notify = ownsync::Notify::new();
    /// notify.notify_waiters(); // nobody waits: nothing happens, no permit is stored
    /// ```
    pub fn new() -> Self {
        Notify { state: Mutex::new(State::new()) }
    }

    /// [`new`](Self::new), usable in a `static` (not under `--cfg loom`, whose locks
    /// cannot be built in a constant).
    ///
    /// ```
    /// static NOTIFY: ownsync::Notify = ownsync::Notify::const_new();
    /// NOTIFY.notify_one();
    /// # futures::executor::block_on(NOTIFY.notified());
    /// ```
    #[cfg(not(loom))]
    pub const fn const_new() -> Self {
        Notify { state: Mutex::new(State::new()) }
    }

    /// Wakes the first waiter (in the order they started waiting); if none waits,
    /// stores one permit for the next [`notified`](Self::notified)`().await`. Several
    /// calls with nobody waiting still store only one permit.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let notify = ownsync::Notify::new();
    /// notify.notify_one();
    /// notify.notify_one();
    /// notify.notified().await; // the one stored permit
    /// # });
    /// ```
    pub fn notify_one(&self) {
        let waker = self.state.lock().notify_one(false);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// [`notify_one`](Self::notify_one), but wakes the waiter that started waiting
    /// last.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let notify = ownsync::Notify::new();
    /// notify.notify_last(); // nobody waits: stores the permit, as notify_one does
    /// notify.notified().await;
    /// # });
    /// ```
    pub fn notify_last(&self) {
        let waker = self.state.lock().notify_one(true);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every task waiting now, and every [`Notified`] created before this call
    /// even if it was not yet polled; stores no permit, so a `notified()` created after
    /// the call waits for the next notification.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let notify = ownsync::Notify::new();
    /// let first = notify.notified();
    /// let second = notify.notified();
    /// notify.notify_waiters();
    /// first.await;
    /// second.await;
    /// # });
    /// ```
    pub fn notify_waiters(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state.lock();
            state.waiters_calls += 1;
            let waiting = std::mem::take(&mut state.waiting);
            let mut wakers = Vec::with_capacity(waiting.len());
            for (key, waker) in waiting {
                state.notified.insert(key, Notification::All);
                wakers.extend(waker);
            }
            wakers
        };
        // Outside the lock; a panicking waker does not keep the others asleep.
        run_all(wakers, Waker::wake);
    }

    /// A future that completes when this notify is notified: at once if a permit is
    /// stored (consuming it), or if [`notify_waiters`](Self::notify_waiters) is called
    /// after this call. It joins the waiters when first polled or
    /// [`enable`](Notified::enable)d. Cancel-safe: dropping it leaves the queue, and
    /// a [`notify_one`](Self::notify_one) it received but did not return is passed on
    /// to the next waiter (or stored as the permit).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let notify = Arc::new(ownsync::Notify::new());
    /// let waiter = std::thread::spawn({
    ///     let notify = notify.clone();
    ///     move || futures::executor::block_on(notify.notified())
    /// });
    /// notify.notify_one(); // wakes the waiter, or leaves it the permit
    /// waiter.join().unwrap();
    /// # });
    /// ```
    pub fn notified(&self) -> Notified<'_> {
        let waiters_calls = self.state.lock().waiters_calls;
        Notified { notify: self, waiters_calls, wait: Wait::Init }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Notify")
            .field("permit", &state.permit)
            .field("waiters", &state.waiting.len())
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    /// Not yet among the waiters.
    Init,
    /// Among the waiters (or notified), under this key.
    Waiting(u64),
    /// Completed.
    Done,
}

/// The future [`Notify::notified`] returns.
///
/// ```
/// # futures::executor::block_on(async {
/// let notify = ownsync::Notify::new();
/// let notified: ownsync::Notified<'_> = notify.notified();
/// notify.notify_waiters();
/// notified.await;
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Notified<'a> {
    notify: &'a Notify,
    /// `notify_waiters` calls when this future was created.
    waiters_calls: u64,
    wait: Wait,
}

impl Notified<'_> {
    /// Joins the waiters without polling, so that a later
    /// [`notify_one`](Notify::notify_one) can pick this future; consumes a stored
    /// permit if there is one. Returns whether the future is now notified (its next
    /// poll is ready). The tool for "register, then check the condition, then await",
    /// with no notification lost in between.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let notify = ownsync::Notify::new();
    /// let mut notified = std::pin::pin!(notify.notified());
    /// assert!(!notified.as_mut().enable()); // waiting, not notified
    /// notify.notify_one(); // picks this future: it was enabled
    /// notified.await;
    /// # });
    /// ```
    pub fn enable(self: Pin<&mut Self>) -> bool {
        self.get_mut().poll_notified(None).is_ready()
    }

    fn poll_notified(&mut self, waker: Option<&Waker>) -> Poll<()> {
        let mut state = self.notify.state.lock();
        match self.wait {
            Wait::Init => {
                if state.waiters_calls != self.waiters_calls || std::mem::take(&mut state.permit) {
                    self.wait = Wait::Done;
                    return Poll::Ready(());
                }
                let key = state.next_key;
                state.next_key += 1;
                state.waiting.insert(key, waker.cloned());
                self.wait = Wait::Waiting(key);
                Poll::Pending
            }
            Wait::Waiting(key) => {
                if state.notified.remove(&key).is_some() {
                    self.wait = Wait::Done;
                    return Poll::Ready(());
                }
                let slot = state.waiting.get_mut(&key).expect("a waiting future is waiting or notified");
                if let Some(waker) = waker {
                    match slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => {
                            // The old waker drops after the lock: dropping it may run user code.
                            let old = slot.replace(waker.clone());
                            drop(state);
                            drop(old);
                        }
                    }
                }
                Poll::Pending
            }
            Wait::Done => Poll::Ready(()),
        }
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_notified(Some(cx.waker()))
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Wait::Waiting(key) = self.wait else { return };
        let mut state = self.notify.state.lock();
        let removed = state.waiting.remove(&key);
        // A `notify_one` this future received and never returned goes to the next waiter.
        let forwarded = match state.notified.remove(&key) {
            Some(Notification::One { last }) => state.notify_one(last),
            _ => None,
        };
        drop(state);
        drop(removed);
        if let Some(waker) = forwarded {
            waker.wake();
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified").field("state", &self.wait).finish()
    }
}
