//! Adversarial review of the intrusive waiter queue (round 3): cancellations in every
//! position, eventual fairness, condition requeues, closes and breaks, forgotten futures,
//! waker updates, and readers of the queue, with grants from other threads. Small enough
//! for Miri:
//! `MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-ignore-leaks" cargo +nightly miri test --test review_r3_intrusive`.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use common::{Polled, broken};
use ownsync::{AcquireError, Condition, Mutex, Semaphore};

/// Whether Miri runs us: fewer rounds.
const ROUNDS: usize = if cfg!(miri) { 3 } else { 200 };

/// Compiles only if `F` is `!Unpin` (both impls apply to an `Unpin` type: ambiguous).
trait AmbiguousIfUnpin<A> {}
impl<T: ?Sized> AmbiguousIfUnpin<()> for T {}
impl<T: ?Sized + Unpin> AmbiguousIfUnpin<u8> for T {}
fn assert_not_unpin<F: AmbiguousIfUnpin<A>, A>(_: &F) {}

#[test]
fn every_public_acquire_future_is_not_unpin() {
    let mutex = Mutex::new(());
    let sem = Semaphore::new(1);
    let cond = Condition::new();
    assert_not_unpin(&mutex.lock());
    assert_not_unpin(&mutex.acquire());
    assert_not_unpin(&sem.acquire());
    assert_not_unpin(&sem.acquire_many(2));
    assert_not_unpin(&Arc::new(Mutex::new(())).lock_owned());
    let wait = cond.wait(mutex.try_lock().unwrap());
    assert_not_unpin(&wait);
}

/// For each position of `n` queued lock waiters, cancel that one; the rest are granted
/// in FIFO order.
#[test]
fn a_cancel_in_every_position_keeps_the_rest_in_order() {
    let n = 4;
    for cancelled in 0..n {
        let mutex = Mutex::new(Vec::new());
        let holder = mutex.try_lock().unwrap();
        let mut waiters: Vec<Option<Polled<_>>> = (0..n)
            .map(|i| {
                let mut polled = {
                    let mutex = &mutex;
                    Polled::new(async move { (i, mutex.lock().await) })
                };
                assert!(polled.is_pending());
                Some(polled)
            })
            .collect();
        waiters[cancelled] = None;
        drop(holder);
        for (i, waiter) in waiters.iter_mut().enumerate() {
            let Some(waiter) = waiter else { continue };
            assert!(waiter.wakes() == 1, "waiter {i} woken on its turn");
            let (j, guard) = waiter.ready();
            let mut guard = guard.unwrap();
            guard.push(j);
            drop(guard);
        }
        let expected: Vec<usize> = (0..n).filter(|&i| i != cancelled).collect();
        assert_eq!(*mutex.try_lock().unwrap(), expected);
    }
}

/// Cancels the head, the middle, the tail (in that order and reversed) of a semaphore
/// queue of waiters of different sizes: a big head blocks smaller ones until it leaves.
#[test]
fn a_big_head_leaving_lets_the_small_ones_through() {
    let sem = Semaphore::new(3);
    let mut held = sem.try_acquire_many(3).unwrap();
    let mut big = Polled::new(sem.acquire_many(3));
    let mut small1 = Polled::new(sem.acquire_many(1));
    let mut mid = Polled::new(sem.acquire_many(2));
    let mut small2 = Polled::new(sem.acquire_many(1));
    assert!(big.is_pending() && small1.is_pending() && mid.is_pending() && small2.is_pending());
    drop(held.split(1)); // one back: the big head still blocks everyone
    assert_eq!(small1.wakes(), 0);
    assert!(small1.is_pending());
    drop(big); // the big head leaves: small1 gets the free permit
    assert_eq!(small1.wakes(), 1);
    let p1 = small1.ready().unwrap();
    assert!(mid.is_pending());
    drop(mid); // the middle leaves while a head-less gap is there: small2 now first
    assert!(small2.is_pending());
    drop(p1);
    let p2 = small2.ready().unwrap();
    assert_eq!(p2.num_permits(), 1);
    drop(held);
    drop(p2);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn close_fails_every_queued_waiter_and_their_drops_are_quiet() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut waiters: Vec<_> = (1..4).map(|n| Polled::new(sem.acquire_many(n))).collect();
    for waiter in &mut waiters {
        assert!(waiter.is_pending());
    }
    let mut dropped = waiters.remove(1);
    sem.close();
    assert_eq!(dropped.wakes(), 1);
    drop(dropped.poll()); // collected
    drop(dropped);
    for mut waiter in waiters {
        assert_eq!(waiter.wakes(), 1);
        assert!(matches!(waiter.ready(), Err(AcquireError::Closed)));
    }
    drop(held);
}

/// A queued future forgotten inside its `Box`: it leaks (its node stays linked, at a
/// live address) and the queue goes on working without touching freed memory.
#[test]
fn a_forgotten_queued_future_leaks_and_stays_sound() {
    let mutex = Mutex::new(0);
    let holder = mutex.try_lock().unwrap();
    let mut first = Polled::new(mutex.lock());
    assert!(first.is_pending());
    let mut forgotten = Box::pin(mutex.lock());
    let waker = Waker::noop();
    assert!(forgotten.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
    let mut last = Polled::new(mutex.lock());
    assert!(last.is_pending());
    std::mem::forget(forgotten);
    drop(holder);
    let guard = first.ready().unwrap();
    drop(guard); // to the forgotten one, never collected: the mutex stays held
    assert!(last.is_pending());
    assert_eq!(last.wakes(), 0);
    let _ = format!("{:?}", mutex.statistics()); // walks the queue past the leak
    drop(last);
}

/// A contended release of an eventually fair mutex either hands over (its strict turn,
/// by time) or wakes the head to try (`Woken`). Either way: a woken head that lost the
/// race goes back to the front; cancelled there, or cancelled before it ran, its turn
/// goes on to the next; nobody is lost and the lock ends free.
#[test]
fn eventually_fair_woken_waiters_repark_at_front_and_cancel() {
    let mut woken_rounds = 0;
    for round in 0..ROUNDS.max(20) {
        let mutex = Mutex::new(()).eventually_fair();
        // A first contended release, the strict one, so that the next is likely not.
        let first = mutex.try_lock().unwrap();
        let mut w0 = Polled::new(mutex.lock());
        assert!(w0.is_pending());
        drop(first);
        let holder = w0.ready().unwrap();
        let mut a = Polled::new(mutex.lock());
        let mut b = Polled::new(mutex.lock());
        let mut c = Polled::new(mutex.lock());
        assert!(a.is_pending() && b.is_pending() && c.is_pending());
        drop(holder);
        assert_eq!(a.wakes(), 1, "the head hears of the release");
        assert_eq!(b.wakes(), 0);
        match mutex.try_lock() {
            Ok(barger) => {
                // `a` was woken to try, not granted.
                woken_rounds += 1;
                if round % 2 == 0 {
                    let (poll, _) = a.poll_with_new_waker();
                    assert!(poll.is_pending(), "lost the race: queued again, at the front");
                    assert_eq!(b.wakes(), 0);
                    drop(a); // cancelled at the front
                    drop(barger);
                } else {
                    drop(a); // cancelled before it ran: the wake goes on
                    drop(barger);
                }
            }
            Err(_) => {
                // Handed over strictly: `a` holds it, uncollected; cancelled.
                drop(a);
            }
        }
        // `b` is next (granted, or woken with the lock free).
        assert!(b.wakes() >= 1, "the next one hears");
        let guard = b.ready().unwrap();
        assert!(c.is_pending());
        drop(guard);
        assert!(c.wakes() >= 1);
        drop(c.ready().unwrap());
        assert!(mutex.try_lock().is_ok());
    }
    eprintln!("woken (not handed over) in {woken_rounds} rounds");
}

/// notify_all requeues three waiters behind the holder; the middle one is cancelled
/// while requeued, the first while granted: the mutex goes on to the third.
#[test]
fn condition_cancels_of_requeued_and_granted_waiters() {
    let mutex = Mutex::new(Vec::new());
    let cond = Condition::new();
    let mut ws: Vec<_> = Vec::new();
    for _ in 0..3 {
        let mut w = Polled::new(cond.wait(mutex.try_lock().unwrap()));
        assert!(w.is_pending());
        ws.push(w);
    }
    let mut notifier = mutex.try_lock().unwrap();
    cond.notify_all();
    assert_eq!(cond.statistics().waiters(), 0);
    let mut third = ws.pop().unwrap();
    let second = ws.pop().unwrap();
    let mut first = ws.pop().unwrap();
    assert!(first.poll_with_new_waker().0.is_pending());
    drop(second); // requeued, in the middle of the mutex's queue
    notifier.push(0);
    drop(notifier);
    assert_eq!(first.wakes(), 1);
    drop(first); // granted, never collected
    let mut guard = third.ready().unwrap();
    guard.push(3);
    drop(guard);
    assert_eq!(*mutex.try_lock().unwrap(), vec![0, 3]);
}

/// A notified waiter cancelled while still in the condition passes nothing on; one
/// cancelled after being requeued passes its notification to the next still waiting.
#[test]
fn condition_cancel_after_notify_passes_the_notification_on() {
    let mutex = Mutex::new(());
    let cond = Condition::new();
    let mut a = Polled::new(cond.wait(mutex.try_lock().unwrap()));
    assert!(a.is_pending());
    let mut b = Polled::new(cond.wait(mutex.try_lock().unwrap()));
    assert!(b.is_pending());
    let notifier = mutex.try_lock().unwrap();
    cond.notify_one();
    assert_eq!(cond.statistics().waiters(), 1);
    drop(a); // requeued: the notification goes to `b`
    assert_eq!(cond.statistics().waiters(), 0);
    drop(notifier);
    assert_eq!(b.wakes(), 1);
    drop(b.ready().unwrap());
}

/// The mutex breaks (a panic with the guard held) while condition waiters are requeued
/// and others still wait in the condition: every one gets `Broken`.
#[test]
fn a_break_fails_requeued_and_unnotified_condition_waiters() {
    let mutex = Arc::new(Mutex::new(()));
    let cond = Arc::new(Condition::new());
    let mut a = Polled::new(cond.wait(mutex.try_lock().unwrap()));
    assert!(a.is_pending());
    let mut b = Polled::new(cond.wait(mutex.try_lock().unwrap()));
    assert!(b.is_pending());
    let mut c = Polled::new(cond.wait(mutex.try_lock().unwrap()));
    assert!(c.is_pending());
    let breaker = {
        let mutex = mutex.clone();
        let cond = cond.clone();
        std::thread::spawn(move || {
            let _guard = mutex.try_lock().unwrap();
            cond.notify(2);
            panic!("with the mutex held");
        })
    };
    assert!(breaker.join().is_err());
    assert!(mutex.is_broken());
    for w in [&mut a, &mut b, &mut c] {
        assert_eq!(w.wakes(), 1);
        broken(w.ready());
    }
}

/// Threads: waiters of a semaphore of mixed sizes are cancelled (dropped after one poll)
/// while other threads release and a reader walks the queue.
#[test]
fn cancels_race_grants_and_queue_readers() {
    let sem = Arc::new(Semaphore::new(3));
    let stop = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (sem, stop) = (sem.clone(), stop.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::Acquire) == 0 {
                let _ = format!("{:?}", sem.statistics());
                std::thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..2u32)
        .map(|t| {
            let sem = sem.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let n = 1 + (round as u32 + t) % 3;
                    let mut polled = Polled::new(sem.acquire_many(n));
                    match polled.poll() {
                        Poll::Ready(permit) => drop(permit.unwrap()),
                        Poll::Pending if round % 2 == 0 => drop(polled), // cancelled
                        Poll::Pending => {
                            drop(polled);
                            drop(futures::executor::block_on(sem.acquire_many(n)).unwrap());
                        }
                    }
                }
            })
        })
        .collect();
    // The workers' blocked waits end when a holder releases: the main thread holds and
    // releases in turns.
    let blocking = {
        let sem = sem.clone();
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                drop(sem.blocking_acquire_many(2).unwrap());
            }
        })
    };
    blocking.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(1, Ordering::Release);
    reader.join().unwrap();
    assert_eq!(sem.available_permits(), 3);
}

/// A waker that counts wakes, cloned per poll (a task that moves between threads).
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A queued acquire re-polled with a new waker on each poll, from one thread, while
/// another thread releases: the grant reaches whichever waker was stored last, and the
/// future completes.
#[test]
fn waker_updates_race_grants() {
    for _ in 0..ROUNDS {
        let mutex = Arc::new(Mutex::new(()));
        let holder = mutex.clone().try_lock_owned().unwrap();
        let releaser = std::thread::spawn(move || drop(holder));
        let mut fut = Box::pin(mutex.lock());
        loop {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(guard) => {
                    drop(guard.unwrap());
                    break;
                }
                Poll::Pending => {
                    if count.0.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                }
            }
        }
        releaser.join().unwrap();
    }
}

/// `blocking_wait` on a thread, notified by another, while a third waiter (async) is
/// cancelled after its requeue.
#[test]
fn blocking_wait_with_a_cancelled_requeued_neighbour() {
    for _ in 0..ROUNDS.min(20) {
        let mutex = Arc::new(Mutex::new(false));
        let cond = Arc::new(Condition::new());
        let mut cancelled = Polled::new(cond.wait(mutex.try_lock().unwrap()));
        assert!(cancelled.is_pending());
        let waiter = {
            let (mutex, cond) = (mutex.clone(), cond.clone());
            std::thread::spawn(move || {
                let mut guard = mutex.blocking_lock().unwrap();
                while !*guard {
                    guard = cond.blocking_wait(guard).unwrap();
                }
            })
        };
        // Wait (on the event) for the blocking waiter to queue in the condition.
        while cond.statistics().waiters() < 2 {
            std::thread::yield_now();
        }
        // (It queues in the condition, then gives the mutex up.)
        let mut guard = mutex.blocking_lock().unwrap();
        *guard = true;
        cond.notify_all();
        drop(cancelled); // requeued behind us
        drop(guard);
        waiter.join().unwrap();
        assert!(mutex.try_lock().is_ok());
    }
}

/// A waker whose last reference's drop notifies the condition (a task's future that
/// owned a notifying guard, freed with its waker). The crate's rule: a waker is never
/// dropped, nor woken, under a lock (tokio #5429).
struct NotifyOnDrop(Arc<Condition>);
impl Wake for NotifyOnDrop {
    fn wake(self: Arc<Self>) {}
}
impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Cancelling a requeued condition waiter drops its stored waker, and wakes the waiters
/// it lets through, only after both the mutex's and the condition's locks are released:
/// a waker whose drop notifies the condition would deadlock otherwise (it did, until
/// `SemCore::cancel_requeued` handed them to `ConditionWait::drop` to release last).
#[test]
fn cancel_of_a_requeued_waiter_drops_no_waker_under_the_condition_lock() {
    let mutex = Arc::new(Mutex::new(()));
    let cond = Arc::new(Condition::new());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = {
        let (mutex, cond) = (mutex.clone(), cond.clone());
        std::thread::spawn(move || {
            let mut wait = Box::pin(cond.wait(mutex.try_lock().unwrap()));
            {
                let waker = Waker::from(Arc::new(NotifyOnDrop(cond.clone())));
                assert!(wait.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            } // the queue holds the waker's last reference
            let notifier = mutex.try_lock().unwrap();
            cond.notify_one(); // requeued behind the notifier
            drop(wait); // cancelled while requeued: the waker's drop re-enters the condition
            drop(notifier);
            done_tx.send(()).unwrap();
        })
    };
    // A deadlock can only be seen as a wait that never ends: generous, and the only way.
    let finished = done_rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok();
    assert!(finished, "deadlocked: a waker was dropped under the condition's lock");
    worker.join().unwrap();
}
