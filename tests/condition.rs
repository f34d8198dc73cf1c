//! Condition (Trio's, over a Mutex): wait gives the mutex up and returns holding it;
//! notify requeues waiters onto the mutex in FIFO order (no thundering herd); a waiter
//! cancelled after it was notified passes the notification on; a break reaches every
//! condition waiter. On tokio's multi-thread runtime and futures' thread pool, and by
//! hand-polling where the order of events is the point.

mod common;

use std::future::Future;
use std::sync::Arc;

use ownsync::{AbandonReason, AcquireError, Condition, Mutex, tracked};

use common::{Polled, Rt, broken};

/// Waits until `n` tasks wait on `cond` (the event the test waits on).
fn until_waiting(cond: &Condition, n: usize) {
    while cond.statistics().waiters() != n {
        std::thread::yield_now();
    }
}

/// A queue between a producer and a consumer: a mutex and two conditions.
struct Queue {
    items: Mutex<std::collections::VecDeque<u32>>,
    not_empty: Condition,
    not_full: Condition,
}

impl Queue {
    fn new() -> Arc<Self> {
        Arc::new(Queue {
            items: Mutex::new(Default::default()),
            not_empty: Condition::new(),
            not_full: Condition::new(),
        })
    }
}

/// A bounded producer/consumer pair of conditions, the classic use: every item arrives,
/// in order.
fn producer_consumer<R: Rt>(rt: &R) {
    let queue = Queue::new();
    let producer = rt.spawn(tracked({
        let queue = queue.clone();
        async move {
            for item in 0..200 {
                let mut items = queue.items.lock().await?;
                while items.len() == 4 {
                    items = queue.not_full.wait(items).await?;
                }
                items.push_back(item);
                queue.not_empty.notify_one();
            }
            Ok::<_, AcquireError>(())
        }
    }));
    let consumer = rt.spawn(tracked({
        let queue = queue.clone();
        async move {
            let mut got = Vec::new();
            while got.len() < 200 {
                let mut items = queue.items.lock().await?;
                while items.is_empty() {
                    items = queue.not_empty.wait(items).await?;
                }
                got.push(items.pop_front().unwrap());
                queue.not_full.notify_one();
            }
            Ok::<_, AcquireError>(got)
        }
    }));
    rt.block_on(producer.join()).unwrap().unwrap();
    assert_eq!(rt.block_on(consumer.join()).unwrap().unwrap(), (0..200).collect::<Vec<_>>());
}

/// notify_all wakes every waiter; each returns holding the mutex, one after another.
fn notify_all_lets_every_waiter_through<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let cond = Arc::new(Condition::new());
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let (mutex, cond) = (mutex.clone(), cond.clone());
            rt.spawn(async move {
                let mut guard = mutex.lock().await?;
                guard = cond.wait(guard).await?;
                *guard += 1;
                Ok::<_, AcquireError>(())
            })
        })
        .collect();
    until_waiting(&cond, 6);
    cond.notify_all();
    for waiter in waiters {
        rt.block_on(waiter.join()).unwrap().unwrap();
    }
    assert_eq!(*rt.block_on(mutex.lock()).unwrap(), 6);
}

/// A waiter task that leaks the guard it got back from `wait` breaks the mutex; the
/// waiters still on the condition get `Broken` too (Trio would leave them hanging).
fn a_break_reaches_every_condition_waiter<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(()));
    let cond = Arc::new(Condition::new());
    let leaker = tracked({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        async move {
            let guard = cond.wait(mutex.lock().await.unwrap()).await.unwrap();
            std::mem::forget(guard);
        }
    });
    let leaker_id = leaker.owner();
    let leaker = rt.spawn(leaker);
    until_waiting(&cond, 1);
    let others: Vec<_> = (0..3)
        .map(|_| {
            let (mutex, cond) = (mutex.clone(), cond.clone());
            rt.spawn(async move { cond.wait(mutex.lock().await?).await.map(drop) })
        })
        .collect();
    until_waiting(&cond, 4);
    cond.notify_one(); // the leaker is first: it gets the mutex back and leaks it
    rt.block_on(leaker.join()).unwrap();
    for other in others {
        let err = broken(rt.block_on(other.join()).unwrap());
        assert_eq!((err.owner(), err.reason()), (leaker_id, AbandonReason::Exited));
    }
}

/// A panic while holding the guard `wait` returned breaks the mutex (`Panicked`), and
/// the other condition waiters get `Broken`.
fn a_panic_after_wait_breaks_and_fails_the_other_waiters<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(()));
    let cond = Arc::new(Condition::new());
    let panicker = rt.spawn({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        async move {
            let _guard = cond.wait(mutex.lock().await.unwrap()).await.unwrap();
            panic!("with the mutex held");
        }
    });
    until_waiting(&cond, 1);
    let other = rt.spawn({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        async move { cond.wait(mutex.lock().await?).await.map(drop) }
    });
    until_waiting(&cond, 2);
    cond.notify_one();
    assert!(rt.block_on(panicker.join()).is_none(), "it panicked");
    assert_eq!(broken(rt.block_on(other.join()).unwrap()).reason(), AbandonReason::Panicked);
}

on_runtimes!(
    producer_consumer,
    notify_all_lets_every_waiter_through,
    a_break_reaches_every_condition_waiter,
    a_panic_after_wait_breaks_and_fails_the_other_waiters,
);

/// The same producer/consumer pair on two threads, through the blocking entry points: each
/// thread waits in turn on the mutex and on both conditions, thousands of times, with the
/// one wait signal its blocking waits share (a wake left over from one wait only costs
/// the next an extra poll). Every item arrives, in order.
#[test]
fn blocking_producer_consumer_on_threads() {
    // Miri runs the same hand-offs some thousand times slower: fewer items, same paths.
    const ITEMS: u32 = if cfg!(miri) { 40 } else { 5_000 };
    let queue = Queue::new();
    let producer = std::thread::spawn({
        let queue = queue.clone();
        move || {
            for item in 0..ITEMS {
                let mut items = queue.items.blocking_lock().unwrap();
                while items.len() == 2 {
                    items = queue.not_full.blocking_wait(items).unwrap();
                }
                items.push_back(item);
                queue.not_empty.notify_one();
            }
        }
    });
    let mut got = Vec::new();
    while got.len() < ITEMS as usize {
        let mut items = queue.items.blocking_lock().unwrap();
        while items.is_empty() {
            items = queue.not_empty.blocking_wait(items).unwrap();
        }
        got.extend(items.drain(..));
        queue.not_full.notify_one();
    }
    producer.join().unwrap();
    assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
}

/// Parks `n` hand-polled waiters on `cond`, each having taken `mutex` first.
fn park<'a>(
    mutex: &'a Mutex<Vec<usize>>,
    cond: &'a Condition,
    n: usize,
) -> Vec<Polled<impl Future<Output = Result<(), AcquireError>> + 'a>> {
    (0..n)
        .map(|i| {
            let mut waiter = Polled::new(async move {
                let guard = mutex.lock().await?;
                let mut guard = cond.wait(guard).await?;
                guard.push(i);
                Ok(())
            });
            assert!(waiter.is_pending());
            waiter
        })
        .collect()
}

/// No thundering herd: notify_all while the notifier holds the mutex wakes nobody; each
/// waiter is woken only when the mutex is handed to it, in FIFO order.
#[test]
fn notify_all_requeues_without_waking_and_hands_over_in_order() {
    let mutex = Mutex::new(Vec::new());
    let cond = Condition::new();
    let mut waiters = park(&mutex, &cond, 4);
    let notifier = mutex.try_lock().unwrap();
    cond.notify_all();
    assert_eq!(cond.statistics().waiters(), 0);
    assert!(waiters.iter().all(|w| w.wakes() == 0), "requeued, not woken");
    assert_eq!(mutex.statistics().waiters(), 4);
    drop(notifier);
    for i in 0..waiters.len() {
        assert_eq!(waiters[i].wakes(), 1, "waiter {i} is woken when the mutex is handed to it");
        assert!(waiters[i + 1..].iter().all(|w| w.wakes() == 0), "and not the ones behind it");
        assert!(waiters[i].ready().is_ok()); // takes its turn and drops the guard
    }
    assert_eq!(*mutex.try_lock().unwrap(), [0, 1, 2, 3]);
}

/// notify(n) and notify_one pick waiters in FIFO order; an unwaited notify is not
/// remembered.
#[test]
fn notify_picks_in_fifo_order_and_is_not_remembered() {
    let mutex = Mutex::new(Vec::new());
    let cond = Condition::new();
    cond.notify_all(); // nobody waits yet: nothing happens
    let mut waiters = park(&mutex, &cond, 3);
    cond.notify(2);
    assert_eq!(cond.statistics().waiters(), 1);
    assert!(waiters[0].ready().is_ok());
    assert!(waiters[1].ready().is_ok());
    assert!(waiters[2].is_pending());
    cond.notify_one();
    assert!(waiters[2].ready().is_ok());
    assert_eq!(*mutex.try_lock().unwrap(), [0, 1, 2]);
}

/// The lost-notification bug: a waiter cancelled after it was notified passes the
/// notification on, whether it was still queued on the mutex or already granted it.
#[test]
fn a_waiter_cancelled_after_notify_passes_the_notification_on() {
    for granted_first in [false, true] {
        let mutex = Mutex::new(Vec::new());
        let cond = Condition::new();
        let mut waiters = park(&mutex, &cond, 2);
        let notifier = mutex.try_lock().unwrap();
        cond.notify_one();
        let mut notifier = Some(notifier);
        if granted_first {
            drop(notifier.take()); // the mutex is handed to the notified waiter...
            assert_eq!(waiters[0].wakes(), 1);
        }
        let mut second = waiters.pop().unwrap();
        drop(waiters); // ...which is cancelled before it runs
        assert_eq!(cond.statistics().waiters(), 0, "the notification moved on");
        drop(notifier);
        assert!(second.ready().is_ok(), "granted first: {granted_first}");
        assert_eq!(*mutex.try_lock().unwrap(), [1]);
    }
}

/// A waiter cancelled before any notify just leaves: the notify goes to the next.
#[test]
fn a_waiter_cancelled_before_notify_just_leaves() {
    let mutex = Mutex::new(Vec::new());
    let cond = Condition::new();
    let mut waiters = park(&mutex, &cond, 2);
    drop(waiters.remove(0));
    assert_eq!(cond.statistics().waiters(), 1);
    cond.notify_one();
    assert!(waiters[0].ready().is_ok());
    assert_eq!(*mutex.try_lock().unwrap(), [1]);
}

#[test]
#[should_panic(expected = "a Condition may only be used with one mutex")]
fn a_condition_with_two_mutexes_panics() {
    let (first, second, cond) = (Mutex::new(()), Mutex::new(()), Condition::new());
    let mut waiter = Polled::new(cond.wait(first.try_lock().unwrap()));
    assert!(waiter.is_pending());
    let _ = Polled::new(cond.wait(second.try_lock().unwrap())).poll();
}
