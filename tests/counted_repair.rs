//! Repair of the counted primitives, `Semaphore::try_repair` and
//! `CapacityLimiter::try_repair`: the permits abandoned or released while broken go back
//! to the pool, and acquires succeed again; the waiters the break failed keep their
//! error; permits still held at the break stay their holders'; a permit object whose
//! hold was abandoned releases nothing when dropped later, so nothing is counted twice;
//! a repair that finds nothing broken says so.

mod common;

use std::future::Future;
use std::sync::Arc;

use futures::executor::block_on;
use ownsync::{AbandonPolicy, AbandonReason, CapacityLimiter, RepairError, Semaphore, tracked};

use common::{Polled, broken};

/// A tracked task that takes one permit of `sem` and ends without giving it back.
fn leak_one_permit(sem: &Semaphore) {
    block_on(tracked(async { std::mem::forget(sem.acquire().await.unwrap()) }));
}

/// A tracked task that takes one permit of `sem` and waits, to end without giving it
/// back once `finish` is sent.
fn leaker_holding_one_permit(
    sem: &Arc<Semaphore>,
) -> (futures::channel::oneshot::Sender<()>, Polled<impl Future<Output = ()>>) {
    let (finish, finished) = futures::channel::oneshot::channel::<()>();
    let sem = sem.clone();
    let mut leaker = Polled::new(tracked(async move {
        std::mem::forget(sem.acquire().await.unwrap());
        finished.await.unwrap();
    }));
    assert!(leaker.is_pending());
    (finish, leaker)
}

#[test]
fn a_repaired_semaphore_gets_back_what_was_abandoned_or_released_while_broken() {
    let sem = Arc::new(Semaphore::new(4));
    let live = sem.clone().try_acquire_owned().unwrap(); // a holder that outlives the break
    let (finish, mut leaker) = leaker_holding_one_permit(&sem);
    let mut waiter = Polled::new(sem.acquire_many(3));
    assert!(waiter.is_pending(), "2 free, 3 wanted");

    finish.send(()).unwrap();
    leaker.ready(); // ends holding its permit
    assert!(sem.is_broken());
    assert_eq!(waiter.wakes(), 1, "the break woke the waiter");
    drop(live); // released while broken: kept for the repair

    assert_eq!(sem.try_repair(), Ok(2), "the abandoned permit and the released one");
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), 4, "the whole pool is back");
    // Woken by the break before the repair, polled after: still the break's error.
    assert_eq!(broken(waiter.ready()).reason(), AbandonReason::Exited);
    // It works again: the whole pool at once, with nobody ahead.
    let all = block_on(sem.acquire_many(4)).unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(all);
    assert_eq!(sem.available_permits(), 4);
    assert_eq!(sem.try_repair(), Err(RepairError::NotBroken), "nothing to repair now");
}

#[test]
fn a_hold_live_at_the_break_keeps_its_permits_and_returns_them_after_the_repair() {
    let sem = Semaphore::new(3);
    let live = sem.try_acquire_many(2).unwrap();
    leak_one_permit(&sem);
    assert_eq!(sem.try_repair(), Ok(1), "only the abandoned one: the live hold is not given back");
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.try_acquire_many(2).is_err(), "the live hold still has its two");
    drop(live);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn an_abandoned_permit_still_reachable_is_given_back_once() {
    let sem: &'static Semaphore = Box::leak(Box::new(Semaphore::new(1)));
    let (sent, received) = std::sync::mpsc::channel();
    // A borrowed permit that leaves its task without a hand-over: the task's exit
    // abandons it, though the permit object lives on outside.
    block_on(tracked(async move { sent.send(sem.acquire().await.unwrap()).unwrap() }));
    let reachable = received.recv().unwrap();
    assert!(sem.is_broken());
    assert_eq!(sem.try_repair(), Ok(1));
    let taken = sem.try_acquire().unwrap();
    drop(reachable); // its hold was abandoned and given back by the repair: releases nothing
    assert_eq!(sem.available_permits(), 0, "the permit was not counted twice");
    drop(taken);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_semaphore_broken_again_is_repaired_again() {
    let sem = Semaphore::new(2);
    for round in 0..3 {
        leak_one_permit(&sem);
        assert!(sem.is_broken(), "round {round}");
        assert_eq!(sem.try_repair(), Ok(1), "round {round}");
        assert_eq!(sem.available_permits(), 2, "round {round}");
    }
}

#[test]
fn permits_added_or_forgotten_while_broken_count_after_the_repair() {
    let sem = Semaphore::new(2);
    leak_one_permit(&sem);
    sem.add_permits(2); // kept for the repair
    assert_eq!(sem.forget_permits(1), 1, "one of the free ones");
    assert_eq!(sem.try_repair(), Ok(3), "the abandoned permit and the two added");
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn a_closed_semaphore_stays_closed_after_a_repair() {
    let sem = Semaphore::new(1);
    leak_one_permit(&sem);
    sem.close();
    assert_eq!(sem.try_repair(), Ok(1));
    assert!(sem.is_closed());
    assert!(matches!(block_on(sem.acquire()), Err(ownsync::AcquireError::Closed)));
}

#[test]
fn a_reclaiming_semaphore_never_needs_a_repair() {
    let sem = Semaphore::with_policy(1, AbandonPolicy::Reclaim);
    leak_one_permit(&sem);
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), 1, "reclaimed at the exit");
    assert_eq!(sem.try_repair(), Err(RepairError::NotBroken));
}

#[test]
fn a_repaired_limiter_gets_its_tokens_back_and_counts_its_borrowers_right() {
    let limiter = CapacityLimiter::new(3);
    let live = limiter.try_acquire().unwrap();
    let (finish, finished) = futures::channel::oneshot::channel::<()>();
    let mut leaker = Polled::new(tracked(async {
        limiter.acquire().await.unwrap().detach();
        finished.await.unwrap();
    }));
    assert!(leaker.is_pending());
    let mut waiter = Polled::new(async {
        let _first = limiter.acquire().await?;
        limiter.acquire().await
    });
    assert!(waiter.is_pending(), "one free token, two wanted");
    finish.send(()).unwrap();
    leaker.ready(); // ends holding its token: a leak
    assert!(limiter.is_broken());
    assert_eq!(limiter.borrowed_tokens(), 2, "the live token and the waiter's first");
    assert!(waiter.ready().is_err(), "the break failed the waiter");
    assert_eq!(limiter.borrowed_tokens(), 1, "the waiter's first token came back");

    assert_eq!(limiter.try_repair(), Ok(2), "the abandoned token and the waiter's");
    assert!(!limiter.is_broken());
    assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens()), (1, 2));
    assert!(limiter.statistics().borrowers().is_empty(), "the leaker is no borrower any more");
    let (a, b) = (limiter.try_acquire().unwrap(), block_on(limiter.acquire()).unwrap());
    assert_eq!(limiter.available_tokens(), 0);
    drop((a, b, live));
    assert_eq!(limiter.available_tokens(), 3);
    assert_eq!(limiter.try_repair(), Err(RepairError::NotBroken));
}

#[test]
fn a_limiter_lowered_while_broken_keeps_its_new_total_after_the_repair() {
    let limiter = CapacityLimiter::new(2);
    let live = limiter.try_acquire().unwrap();
    block_on(tracked(async { limiter.acquire().await.unwrap().detach() }));
    limiter.set_total_tokens(1);
    assert_eq!(limiter.try_repair(), Ok(1));
    assert_eq!((limiter.total_tokens(), limiter.borrowed_tokens(), limiter.available_tokens()), (1, 1, 0));
    drop(live);
    assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens()), (0, 1));
}
