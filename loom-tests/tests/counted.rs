//! Loom models of the counted primitives and of waker replacement. Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use loom_tests::{counting_waker, model};
use ownsync::{CapacityLimiter, Mutex, Semaphore};

/// `add_permits` races a blocked `acquire_many(2)` and a cancelled `acquire`: the big
/// waiter is served, the cancelled one loses nothing, and every permit is accounted for.
#[test]
fn add_permits_races_acquire_many_and_a_cancel() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let big = {
            let sem = sem.clone();
            thread::spawn(move || sem.blocking_acquire_many(2).unwrap().num_permits())
        };
        let canceller = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut acquire = pin!(sem.acquire());
                let _ = acquire.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                // dropped here: queued, granted, or already done
            })
        };
        sem.add_permits(1);
        assert_eq!(big.join().unwrap(), 2);
        canceller.join().unwrap();
        assert_eq!(sem.available_permits(), 2, "permits conserved");
    });
}

/// Raising a limiter's total from 0 races two borrowers that are parking: both get in,
/// and both tokens come back.
#[test]
fn set_total_tokens_races_acquires() {
    model(|| {
        let limiter = Arc::new(CapacityLimiter::new(0));
        let borrowers: Vec<_> = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                thread::spawn(move || drop(limiter.blocking_acquire().unwrap()))
            })
            .collect();
        limiter.set_total_tokens(2);
        for borrower in borrowers {
            borrower.join().unwrap();
        }
        assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens()), (0, 2));
    });
}

/// Two threads ask a shared anonymous token for its id at once: naming happens once (one
/// id, one entry in the borrower set), and dropping the token gives the borrow back.
#[test]
fn naming_an_anonymous_token_races_itself() {
    model(|| {
        let limiter = CapacityLimiter::new(1);
        let token = Arc::new(limiter.try_acquire().unwrap().into_owned()); // unnamed
        let other = {
            let token = token.clone();
            thread::spawn(move || token.borrower())
        };
        let id = token.borrower();
        assert_eq!(other.join().unwrap(), id, "one name");
        assert_eq!(limiter.statistics().borrowers(), [id], "one entry");
        drop(token);
        assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens()), (0, 1));
        assert!(limiter.statistics().borrowers().is_empty());
    });
}

/// An anonymous token, which only the core's count knows of, is given back while a
/// task's exit breaks the limiter: given back before the break or after it, it is counted
/// out, and the abandoned token too, so nothing stays borrowed.
#[test]
fn an_unnamed_release_races_the_break() {
    model(|| {
        let limiter = Arc::new(CapacityLimiter::new(2));
        let unnamed = limiter.try_acquire().unwrap().into_owned();
        let mut task = Box::pin(ownsync::tracked({
            let limiter = limiter.clone();
            async move {
                limiter.acquire().await.unwrap().detach();
                std::future::pending::<()>().await
            }
        }));
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(limiter.borrowed_tokens(), 2);
        let releaser = thread::spawn(move || drop(unnamed));
        drop(task); // exits holding its token: broken
        releaser.join().unwrap();
        assert!(limiter.is_broken());
        assert_eq!(limiter.borrowed_tokens(), 0);
    });
}

/// A permit released while its semaphore is broken races the repair: released before
/// the repair, the repair gives it back; after, it goes to the pool as usual; in between
/// (the release saw the break, the repair ended it before the release took the lock),
/// it is decided again under the lock. Never lost, never counted twice.
#[test]
fn a_release_races_a_repair() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let live = sem.clone().try_acquire_owned().unwrap();
        let mut task = Box::pin(ownsync::tracked({
            let sem = sem.clone();
            async move {
                std::mem::forget(sem.acquire().await.unwrap());
                std::future::pending::<()>().await
            }
        }));
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        drop(task); // exits holding its permit: broken
        assert!(sem.is_broken());
        let releaser = thread::spawn(move || drop(live));
        let repaired = sem.try_repair().unwrap();
        releaser.join().unwrap();
        assert!((1..=2).contains(&repaired));
        assert_eq!(sem.available_permits(), 2, "every permit back, once");
    });
}

/// A re-poll with a new waker races the release that wakes the waiter: if the re-poll
/// still saw `Pending`, the new waker is the one woken; no wake-up is lost.
#[test]
fn waker_replacement_races_a_wake() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let guard = mutex.clone().try_lock_owned().unwrap();
        let mut lock = Box::pin(mutex.lock());
        let (_first, first_waker) = counting_waker();
        assert!(lock.as_mut().poll(&mut Context::from_waker(&first_waker)).is_pending());
        let releaser = thread::spawn(move || drop(guard));
        let (second, second_waker) = counting_waker();
        let repoll = lock.as_mut().poll(&mut Context::from_waker(&second_waker));
        releaser.join().unwrap();
        if repoll.is_pending() {
            assert_eq!(second.0.load(Ordering::SeqCst), 1, "the new waker must be woken");
            assert!(lock.as_mut().poll(&mut Context::from_waker(&second_waker)).is_ready());
        }
    });
}

/// A tracked task's permits are split on another thread (the split moves the hold into
/// the owner record's shared slab) and dropped there, while the task is cancelled: each
/// part is released or abandoned exactly once, and the semaphore ends either whole or
/// broken by that task, never both.
#[test]
fn a_split_elsewhere_races_the_owner_exit() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let (tx, rx) = loom::sync::mpsc::channel();
        let mut task = Box::pin(ownsync::tracked({
            let sem = sem.clone();
            async move {
                tx.send(sem.acquire_many_owned(2).await.unwrap()).unwrap();
                std::future::pending::<()>().await
            }
        }));
        let id = task.owner();
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        let mut permit = rx.recv().unwrap();
        let released = Arc::new(AtomicUsize::new(0));
        let splitter = {
            let released = released.clone();
            thread::spawn(move || {
                let part = permit.split(1).unwrap();
                drop(part);
                drop(permit);
                released.store(1, Ordering::SeqCst);
            })
        };
        let released_before_exit = released.load(Ordering::SeqCst) == 1;
        drop(task);
        splitter.join().unwrap();
        assert!(!(released_before_exit && sem.is_broken()), "released first, yet broken");
        if sem.is_broken() {
            assert_eq!(sem.statistics().broken().map(|err| err.owner()), Some(id));
        } else {
            assert_eq!(sem.available_permits(), 2, "released, so every permit is back");
        }
    });
}
