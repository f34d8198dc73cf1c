//! Loom models of the intrusive waiter queue: each waiter is a node inside its own
//! pinned acquire future, linked to its neighbours, and every node's links and waker
//! are reached only under the queue's lock (loom's `UnsafeCell` checks each access).
//! These models race the unlinks of neighbouring nodes. Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::thread;
use loom_tests::{counting_waker, model};
use ownsync::{AcquireError, Mutex, OwnedMutexGuard};

type LockFuture = Pin<Box<dyn Future<Output = Result<OwnedMutexGuard<()>, AcquireError>> + Send>>;

/// A queued `lock_owned` future, polled once: its node is linked at the back.
fn queued(mutex: &Arc<Mutex<()>>) -> LockFuture {
    let mut lock: LockFuture = Box::pin(mutex.clone().lock_owned());
    assert!(lock.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    lock
}

fn poll_now(lock: &mut LockFuture) -> Poll<Result<OwnedMutexGuard<()>, AcquireError>> {
    lock.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// The middle waiter of three is dropped (unlinked, writing both neighbours' links) while
/// the holder's release grants the head (unlinking it, writing the middle's link if it is
/// still there): the queue stays whole, the head holds the lock, and the tail is granted
/// next, never the dropped one.
#[test]
fn leaving_from_the_middle_races_a_grant_to_the_head() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let guard = mutex.clone().try_lock_owned().unwrap();
        let mut head = queued(&mutex);
        let middle = queued(&mutex);
        let mut tail = queued(&mutex);
        let leaver = thread::spawn(move || drop(middle));
        drop(guard);
        leaver.join().unwrap();
        let Poll::Ready(Ok(first)) = poll_now(&mut head) else { panic!("the head was not granted") };
        assert!(poll_now(&mut tail).is_pending(), "the tail is granted only after the head");
        assert_eq!(mutex.statistics().waiters(), 1, "the middle left, the tail waits");
        drop(first);
        assert!(matches!(poll_now(&mut tail), Poll::Ready(Ok(_))), "the tail is next");
        assert!(mutex.try_lock().is_ok(), "the lock ends free");
    });
}

/// The head and the tail of two leave at once, one dropped on another thread, the other
/// granted by a release: the queue ends empty and the lock free, whichever order.
#[test]
fn both_ends_leave_at_once() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let guard = mutex.clone().try_lock_owned().unwrap();
        let mut head = queued(&mutex);
        let tail = queued(&mutex);
        let leaver = thread::spawn(move || drop(tail));
        drop(guard);
        leaver.join().unwrap();
        assert!(matches!(poll_now(&mut head), Poll::Ready(Ok(_))));
        drop(head);
        assert_eq!(mutex.statistics().waiters(), 0);
        assert!(mutex.try_lock().is_ok(), "the lock ends free");
    });
}

/// A queued waiter renews its waker (writing its node's waker under the lock) while the
/// holder's thread exits holding the lock, which breaks it and fails every waiter
/// (taking each node's waker under the lock): the waiter ends with `Broken`. (Which
/// waker the break wakes it cannot tell here: loom runs the exit in thread-local
/// destructors after `join`, and the wake comes after the failure is visible;
/// `counted.rs` checks that a renewed waker is the one woken.)
#[test]
fn a_waker_renewal_races_a_break() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let (locked_tx, locked_rx) = loom::sync::mpsc::channel();
        let (queued_tx, queued_rx) = loom::sync::mpsc::channel::<()>();
        let holder = {
            let mutex = mutex.clone();
            thread::spawn(move || {
                std::mem::forget(mutex.blocking_lock().unwrap());
                locked_tx.send(()).unwrap();
                queued_rx.recv().unwrap();
                // The thread ends holding the lock: its exit breaks the mutex.
            })
        };
        locked_rx.recv().unwrap();
        let mut lock = queued(&mutex);
        queued_tx.send(()).unwrap();
        let (_renewed, renewed_waker) = counting_waker();
        let repoll = lock.as_mut().poll(&mut Context::from_waker(&renewed_waker));
        holder.join().unwrap();
        // loom signals `join` before the thread's thread-local destructors (the exit)
        // run: wait for the break as a user would.
        let result = match repoll {
            Poll::Ready(result) => result,
            Poll::Pending => loop {
                if let Poll::Ready(result) = lock.as_mut().poll(&mut Context::from_waker(&renewed_waker)) {
                    break result;
                }
                thread::yield_now();
            },
        };
        assert!(matches!(result, Err(AcquireError::Broken(_))), "{result:?}");
    });
}
