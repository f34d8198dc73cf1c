//! The waiter queue under every primitive (Trio's ParkingLot).
//!
//! Waiters live in slab slots, linked in FIFO order by slot key, so parking, granting
//! the head and leaving from the middle are all O(1) and allocation-free once the slab
//! has grown. A slot outlives its place in the queue: a waiter that was granted, closed
//! or broken keeps its slot (with that outcome) until its future polls or drops it, so a
//! grant is never lost between the releaser and the woken task, and a dropped future
//! can pass its grant on. The queue itself is not locked; its owner (the counted core)
//! keeps it under one lock together with the permit bookkeeping. Wakers are collected in
//! a [`WakeList`] and woken after that lock is released (tokio #5429).
//!
//! Blocking callers do not get a second wait loop: [`block_on`] polls the same future
//! with a waker that unparks the thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use crate::loom::{AtomicBool, Condvar, Mutex, SPIN_LIMIT, spin_hint};

const NIL: usize = usize::MAX;

/// What became of a waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still queued, wanting this many permits.
    Waiting(usize),
    /// Handed this many permits; they are the waiter's even if it never runs again.
    Granted(usize),
    /// Failed: the primitive closed or broke while it waited.
    Failed,
}

struct Slot {
    outcome: Outcome,
    waker: Option<Waker>,
    prev: usize,
    next: usize,
}

/// FIFO of waiters in slab slots.
pub(crate) struct WaitQueue {
    slots: Slab<Slot>,
    head: usize,
    tail: usize,
    queued: usize,
}

impl Default for WaitQueue {
    fn default() -> Self {
        WaitQueue { slots: Slab::new(), head: NIL, tail: NIL, queued: 0 }
    }
}

impl WaitQueue {
    /// Number of waiters still queued (not yet granted or failed).
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a waiter for `permits` at the back; returns its slot key.
    pub(crate) fn park(&mut self, permits: usize, waker: Waker) -> usize {
        let key = self.slots.insert(Slot {
            outcome: Outcome::Waiting(permits),
            waker: Some(waker),
            prev: self.tail,
            next: NIL,
        });
        match self.tail {
            NIL => self.head = key,
            tail => self.slots[tail].next = key,
        }
        self.tail = key;
        self.queued += 1;
        key
    }

    /// The head waiter's wanted permits.
    pub(crate) fn front_wants(&self) -> Option<usize> {
        match self.slots.get(self.head)?.outcome {
            Outcome::Waiting(permits) => Some(permits),
            _ => unreachable!("only waiting slots are linked"),
        }
    }

    /// Grants the head waiter what it asked for and queues its waker for waking.
    pub(crate) fn grant_front(&mut self, wakes: &mut WakeList) {
        let key = self.head;
        let permits = self.front_wants().expect("grant_front on an empty queue");
        self.unlink(key);
        let slot = &mut self.slots[key];
        slot.outcome = Outcome::Granted(permits);
        wakes.push(slot.waker.take());
    }

    /// Fails every queued waiter (close, break) and queues all their wakers. O(waiters).
    pub(crate) fn fail_all(&mut self, wakes: &mut WakeList) {
        let mut key = self.head;
        while key != NIL {
            let slot = &mut self.slots[key];
            slot.outcome = Outcome::Failed;
            wakes.push(slot.waker.take());
            key = std::mem::replace(&mut slot.next, NIL);
            slot.prev = NIL;
        }
        self.head = NIL;
        self.tail = NIL;
        self.queued = 0;
    }

    pub(crate) fn outcome(&self, key: usize) -> Outcome {
        self.slots[key].outcome
    }

    /// Stores the waker a still-waiting slot should be woken with. Returns the replaced
    /// waker so the caller can drop it after unlocking; skips the clone when the stored
    /// one would wake the same task.
    pub(crate) fn update_waker(&mut self, key: usize, waker: &Waker) -> Option<Waker> {
        let slot = &mut self.slots[key];
        match &slot.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => slot.waker.replace(waker.clone()),
        }
    }

    /// Removes a slot (its future finished or was dropped) and returns its outcome; a
    /// still-waiting slot leaves the queue, the order of the rest unchanged.
    pub(crate) fn remove(&mut self, key: usize) -> Outcome {
        if let Outcome::Waiting(_) = self.slots[key].outcome {
            self.unlink(key);
        }
        self.slots.remove(key).outcome
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let slot = &mut self.slots[key];
            (std::mem::replace(&mut slot.prev, NIL), std::mem::replace(&mut slot.next, NIL))
        };
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next].prev = prev,
        }
        self.queued -= 1;
    }
}

/// Wakers to wake once the lock is released. The first few are kept inline, so a
/// release that hands off to one waiter does not allocate.
#[derive(Default)]
pub(crate) struct WakeList {
    inline: [Option<Waker>; 4],
    len: usize,
    spill: Vec<Waker>,
}

impl WakeList {
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.len < self.inline.len() {
            self.inline[self.len] = Some(waker);
            self.len += 1;
        } else {
            self.spill.push(waker);
        }
    }

    /// Wakes them all. Call with no lock held.
    pub(crate) fn wake_all(self) {
        for waker in self.inline.into_iter().flatten() {
            waker.wake();
        }
        for waker in self.spill {
            waker.wake();
        }
    }
}

/// Wakes a blocked thread: sets the flag it spins on, then signals the condvar it
/// sleeps on. (A condvar rather than park/unpark: loom 0.7 loses an unpark that
/// follows a store the parked thread has not yet read, and the models must run this
/// very code.)
struct ThreadSignal {
    notified: AtomicBool,
    sleeping: Mutex<()>,
    wakeup: Condvar,
}

impl Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        // Taking the lock orders this wake after a sleeper's last check of the flag.
        drop(self.sleeping.lock());
        self.wakeup.notify_one();
    }
}

impl ThreadSignal {
    fn new() -> Self {
        ThreadSignal { notified: AtomicBool::new(false), sleeping: Mutex::new(()), wakeup: Condvar::new() }
    }

    /// Consumes a pending wake. Only the waiting thread resets the flag, so a load and
    /// a store suffice: a wake landing between them was issued before the re-poll that
    /// follows, which therefore sees what it announced.
    fn take_wake(&self) -> bool {
        let woken = self.notified.load(Ordering::Acquire);
        if woken {
            self.notified.store(false, Ordering::Relaxed);
        }
        woken
    }

    /// Waits for a wake: spins briefly, then sleeps.
    fn wait(&self) {
        for _ in 0..SPIN_LIMIT {
            if self.take_wake() {
                return;
            }
            spin_hint();
        }
        let mut guard = self.sleeping.lock();
        while !self.take_wake() {
            guard = self.wakeup.wait(guard);
        }
    }
}

/// Runs `future` to completion on this thread: the blocking entry points' one wait loop.
/// After a `Pending` it spins briefly on the wake flag before sleeping, so a hand-off to
/// a thread that is still running costs no sleep/wake round trip.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let signal = Arc::new(ThreadSignal::new());
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        signal.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn fifo_grant_and_cancel_from_the_middle() {
        let mut queue = WaitQueue::default();
        let a = queue.park(1, noop());
        let b = queue.park(2, noop());
        let c = queue.park(3, noop());
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.remove(b), Outcome::Waiting(2));
        let mut wakes = WakeList::default();
        assert_eq!(queue.front_wants(), Some(1));
        queue.grant_front(&mut wakes);
        assert_eq!(queue.outcome(a), Outcome::Granted(1));
        assert_eq!(queue.front_wants(), Some(3));
        queue.grant_front(&mut wakes);
        assert_eq!(queue.outcome(c), Outcome::Granted(3));
        assert!(queue.is_empty());
        assert_eq!(queue.front_wants(), None);
        assert_eq!(queue.remove(a), Outcome::Granted(1));
        assert_eq!(queue.remove(c), Outcome::Granted(3));
    }

    #[test]
    fn fail_all_marks_every_queued_waiter_and_empties_the_queue() {
        let mut queue = WaitQueue::default();
        let keys: Vec<_> = (0..10).map(|_| queue.park(1, noop())).collect();
        let mut wakes = WakeList::default();
        queue.grant_front(&mut wakes);
        queue.fail_all(&mut wakes);
        assert!(queue.is_empty());
        assert_eq!(wakes.len + wakes.spill.len(), 10);
        assert_eq!(queue.outcome(keys[0]), Outcome::Granted(1));
        assert!(keys[1..].iter().all(|&k| queue.outcome(k) == Outcome::Failed));
        // A new waiter after a fail-all is linked on its own.
        let fresh = queue.park(1, noop());
        assert_eq!(queue.front_wants(), Some(1));
        assert_eq!(queue.remove(fresh), Outcome::Waiting(1));
    }

    #[test]
    fn update_waker_keeps_an_equivalent_waker_and_returns_a_replaced_one() {
        let mut queue = WaitQueue::default();
        let key = queue.park(1, noop());
        assert!(queue.update_waker(key, &noop()).is_none());
        let signal = Arc::new(ThreadSignal::new());
        let other = Waker::from(signal.clone());
        assert!(queue.update_waker(key, &other).is_some());
        let mut wakes = WakeList::default();
        queue.grant_front(&mut wakes);
        wakes.wake_all();
        assert!(signal.notified.load(Ordering::Acquire), "the new waker is the one woken");
    }

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (tx, rx) = futures::channel::oneshot::channel();
        let sender = std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(block_on(rx).unwrap(), 7);
        sender.join().unwrap();
    }
}
