//! Unit tests of the waiter queue: links, grants, removals, requeues and self-waits,
//! on waiters kept in place by their boxes (also run under Miri).

use std::pin::Pin;
use std::sync::Arc;

use super::*;
use crate::block::ThreadSignal;

fn noop() -> Waker {
    Waker::noop().clone()
}

/// Parks a fresh waiter, kept in place by its `Box` (pinned: never moved while linked).
fn park(queue: &mut WaitQueue, permits: usize, waker: Waker) -> Pin<Box<Waiter>> {
    let waiter = Box::pin(Waiter::new());
    // SAFETY: each test keeps the box until the waiter is settled or removed.
    unsafe { queue.park(&waiter, permits, waker, WaitMeta::new(None, None), false, false) };
    waiter
}

#[test]
fn fifo_grant_and_cancel_from_the_middle() {
    let mut queue = WaitQueue::default();
    let a = park(&mut queue, 1, noop());
    let b = park(&mut queue, 2, noop());
    let c = park(&mut queue, 3, noop());
    assert_eq!(queue.len(), 3);
    // SAFETY: `b` is linked in `queue`.
    drop(unsafe { queue.remove(&b) });
    assert_eq!(b.outcome(), Outcome::Waiting, "a removed waiter is not settled");
    assert_eq!(queue.waits().map(|(wants, _)| wants).collect::<Vec<_>>(), [1, 3]);
    let mut wakes = WakeList::default();
    assert_eq!(queue.front_wants(), Some(1));
    queue.grant_front(&mut wakes);
    assert_eq!(a.outcome(), Outcome::Granted);
    assert_eq!(c.outcome(), Outcome::Waiting);
    assert_eq!(queue.front_wants(), Some(3));
    queue.grant_front(&mut wakes);
    assert_eq!(c.outcome(), Outcome::Granted);
    assert!(queue.is_empty());
    assert_eq!(queue.len(), 0);
    assert_eq!(queue.front_wants(), None);
}

/// Removing the head, the tail and the only waiter keeps the links whole.
#[test]
fn removing_at_either_end_keeps_the_order() {
    let mut queue = WaitQueue::default();
    let waiters: Vec<_> = (1..=4).map(|wants| park(&mut queue, wants, noop())).collect();
    // SAFETY (all): each is linked in `queue` when removed.
    drop(unsafe { queue.remove(&waiters[0]) });
    drop(unsafe { queue.remove(&waiters[3]) });
    assert_eq!(queue.waits().map(|(wants, _)| wants).collect::<Vec<_>>(), [2, 3]);
    let last = park(&mut queue, 5, noop());
    drop(unsafe { queue.remove(&waiters[1]) });
    drop(unsafe { queue.remove(&waiters[2]) });
    assert_eq!(queue.waits().map(|(wants, _)| wants).collect::<Vec<_>>(), [5]);
    drop(unsafe { queue.remove(&last) });
    assert!(queue.is_empty() && queue.waits().next().is_none());
    assert_eq!(queue.len(), 0);
    let again = park(&mut queue, 6, noop());
    assert_eq!(queue.front_wants(), Some(6));
    drop(unsafe { queue.remove(&again) });
}

/// A woken waiter that lost the race goes back to the front, ahead of those that
/// queued after it, and a self-wait stays recorded as one until it leaves.
#[test]
fn parking_at_the_front_goes_first_and_keeps_a_self_wait() {
    let mut queue = WaitQueue::default();
    let _behind = park(&mut queue, 1, noop());
    let front = Box::pin(Waiter::new());
    // SAFETY: the box is kept until the waiter is granted.
    unsafe { queue.park(&front, 2, noop(), WaitMeta::new(None, None), true, true) };
    assert!(queue.has_self_waits());
    assert_eq!(queue.front_wants(), Some(2));
    let mut wakes = WakeList::default();
    queue.grant_front(&mut wakes);
    assert_eq!(front.outcome(), Outcome::Granted);
    assert!(!queue.has_self_waits(), "its record went with it");
    assert_eq!(queue.front_wants(), Some(1));
}

/// Waking the head to try again unlinks it; a requeued head is never woken, only
/// granted; the requeue moves the waiter whole, waker and all.
#[test]
fn wake_front_skips_a_requeued_head_and_a_requeue_moves_the_waiter() {
    let mut condition = WaitQueue::default();
    let mut mutex = WaitQueue::default();
    let signal = Arc::new(ThreadSignal::new());
    let waiter = park(&mut condition, 1, Waker::from(signal.clone()));
    let parked = condition.pop_front().expect("one waiter");
    assert!(condition.is_empty());
    assert_eq!(parked.wants(), 1);
    mutex.push_requeued(parked);
    assert_eq!(waiter.outcome(), Outcome::Requeued);
    let mut wakes = WakeList::default();
    assert!(!mutex.wake_front(&mut wakes), "a requeued waiter is granted, not woken");
    mutex.grant_front(&mut wakes);
    wakes.wake_all();
    assert_eq!(waiter.outcome(), Outcome::Granted);
    assert!(signal.take_wake(), "its own waker came along");

    let woken = park(&mut mutex, 1, noop());
    let mut wakes = WakeList::default();
    assert!(mutex.wake_front(&mut wakes));
    assert_eq!((woken.outcome(), mutex.len()), (Outcome::Woken, 0));
    woken.reset();
    // SAFETY: unlinked (woken), so it may park again; kept until removed.
    unsafe { mutex.park(&woken, 1, noop(), WaitMeta::new(None, None), false, true) };
    drop(unsafe { mutex.remove(&woken) });
}

#[test]
fn fail_all_marks_every_queued_waiter_and_empties_the_queue() {
    let mut queue = WaitQueue::default();
    let waiters: Vec<_> = (0..10).map(|_| park(&mut queue, 1, noop())).collect();
    let mut wakes = WakeList::default();
    queue.grant_front(&mut wakes);
    queue.fail_all(&mut wakes);
    assert!(queue.is_empty());
    assert_eq!(queue.len(), 0);
    assert_eq!(wakes.len(), 10);
    assert_eq!(waiters[0].outcome(), Outcome::Granted);
    assert!(waiters[1..].iter().all(|waiter| waiter.outcome() == Outcome::Failed));
    // A new waiter after a fail-all is linked on its own.
    let fresh = park(&mut queue, 1, noop());
    assert_eq!(queue.front_wants(), Some(1));
    // SAFETY: linked in `queue`.
    drop(unsafe { queue.remove(&fresh) });
    assert!(queue.is_empty());
}

#[test]
fn update_waker_keeps_an_equivalent_waker_and_returns_a_replaced_one() {
    let mut queue = WaitQueue::default();
    let waiter = park(&mut queue, 1, noop());
    // SAFETY (both): linked in `queue`.
    assert!(unsafe { queue.update_waker(&waiter, &noop()) }.is_none());
    let signal = Arc::new(ThreadSignal::new());
    let other = Waker::from(signal.clone());
    assert!(unsafe { queue.update_waker(&waiter, &other) }.is_some());
    let mut wakes = WakeList::default();
    queue.grant_front(&mut wakes);
    wakes.wake_all();
    assert!(signal.take_wake(), "the new waker is the one woken");
}

/// A self-wait found by a snapshot is recorded once, reported once when it lasts,
/// and forgotten when its waiter leaves.
#[test]
fn a_self_wait_is_recorded_by_a_snapshot_and_forgotten_when_it_leaves() {
    let owner = OwnerId::from_u64(7).expect("a nonzero id");
    let mut queue = WaitQueue::default();
    let other = park(&mut queue, 1, noop());
    let mine = Box::pin(Waiter::new());
    // SAFETY: kept until removed.
    unsafe { queue.park(&mine, 1, noop(), WaitMeta::new(Some(owner), None), false, false) };
    assert!(!queue.has_self_waits());
    assert_eq!(queue.waiting_as(owner), 1);
    assert_eq!(queue.waiting_as(owner), 1, "counted again, recorded once");
    assert!(queue.has_self_waits());
    assert_eq!(queue.lasting_self_waits(Duration::ZERO, Some(owner)).len(), 1);
    assert!(queue.lasting_self_waits(Duration::ZERO, Some(owner)).is_empty(), "reported once");
    // SAFETY (both): linked in `queue`.
    drop(unsafe { queue.remove(&mine) });
    assert!(!queue.has_self_waits());
    drop(unsafe { queue.remove(&other) });
}
