//! Loom models of the Condition's races: a waiter moves between the condition's queue
//! and its mutex's under both locks, so each race must leave it in exactly one place.
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;
use loom_tests::model;
use ownsync::{AcquireError, Condition, Mutex};

/// A waiter on its own thread: takes the mutex, waits on the condition, adds one.
fn waiter(mutex: &Arc<Mutex<usize>>, cond: &Arc<Condition>) -> thread::JoinHandle<Result<(), AcquireError>> {
    let (mutex, cond) = (mutex.clone(), cond.clone());
    thread::spawn(move || {
        let guard = mutex.blocking_lock()?;
        let mut guard = cond.blocking_wait(guard)?;
        *guard += 1;
        Ok(())
    })
}

/// Waits until `n` waiters are parked on the condition (each gave the mutex up).
fn until_waiting(cond: &Condition, n: usize) {
    while cond.statistics().waiters() != n {
        thread::yield_now();
    }
}

/// A parked waiter is cancelled while another thread notifies one: the notification is
/// never lost. Either it reached the cancelled waiter, which passed it on, or it went to
/// the other waiter directly; the other waiter always gets the mutex back.
#[test]
fn notify_races_a_cancel() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let cond = Arc::new(Condition::new());
        let mut first = Box::pin(cond.wait(mutex.try_lock().unwrap()));
        assert!(first.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        let second = waiter(&mutex, &cond);
        until_waiting(&cond, 2);
        let notifier = {
            let cond = cond.clone();
            thread::spawn(move || cond.notify_one())
        };
        drop(first); // cancelled, racing the notify
        notifier.join().unwrap();
        second.join().unwrap().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), 1);
    });
}

/// The mutex breaks (a thread ends holding it) while another thread notifies the one
/// condition waiter: the waiter gets the mutex before the break, or `Broken` (requeued
/// onto the broken mutex, or failed on the condition by the break), never a hang.
#[test]
fn a_break_races_a_notify() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let cond = Arc::new(Condition::new());
        let parked = waiter(&mutex, &cond);
        until_waiting(&cond, 1);
        let breaker = {
            let mutex = mutex.clone();
            thread::spawn(move || std::mem::forget(mutex.blocking_lock()))
        };
        let notifier = {
            let cond = cond.clone();
            thread::spawn(move || cond.notify_one())
        };
        match parked.join().unwrap() {
            Ok(()) | Err(AcquireError::Broken(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        breaker.join().unwrap();
        notifier.join().unwrap();
    });
}

/// A notify requeues the waiter while the mutex's holder releases it on another thread:
/// the waiter gets the mutex exactly once, never beside the holder.
#[test]
fn a_requeue_races_a_release() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let cond = Arc::new(Condition::new());
        let inside = Arc::new(AtomicBool::new(false));
        let parked = {
            let (mutex, cond, inside) = (mutex.clone(), cond.clone(), inside.clone());
            thread::spawn(move || {
                let guard = mutex.blocking_lock().unwrap();
                let mut guard = cond.blocking_wait(guard).unwrap();
                assert!(!inside.swap(true, SeqCst), "the waiter beside the holder");
                *guard += 1;
                inside.store(false, SeqCst);
            })
        };
        until_waiting(&cond, 1);
        let holder = mutex.clone().blocking_lock_owned().unwrap(); // once the waiter gave it up
        let releaser = {
            let inside = inside.clone();
            thread::spawn(move || {
                assert!(!inside.swap(true, SeqCst), "the holder beside the waiter");
                inside.store(false, SeqCst);
                drop(holder);
            })
        };
        cond.notify_one();
        parked.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), 1);
    });
}
