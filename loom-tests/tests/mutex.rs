//! Loom models of the Mutex core's races. Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use loom_tests::model;
use ownsync::{AcquireError, Mutex, TryLockError};

/// Two threads contend through the blocking path (park/unpark, FIFO hand-off): never two
/// holders at once, and both increments land.
#[test]
fn handoff_gives_exactly_one_holder() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let inside = Arc::new(AtomicBool::new(false));
        let worker = {
            let (mutex, inside) = (mutex.clone(), inside.clone());
            thread::spawn(move || {
                let mut guard = mutex.blocking_lock().unwrap();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                *guard += 1;
                inside.store(false, Ordering::SeqCst);
            })
        };
        {
            let mut guard = mutex.blocking_lock().unwrap();
            assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
            *guard += 1;
            inside.store(false, Ordering::SeqCst);
        }
        worker.join().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), 2);
    });
}

/// A thread's blocking waits share one signal, kept between them, and its waker is woken
/// without a lock unless the thread sleeps. A thread that blocks twice may find the
/// first wait's wake still pending at the second (a stale wake): that wait must still
/// end only once it holds the lock, and no wake may be lost between a spin and a sleep.
#[test]
fn a_thread_that_blocks_twice_loses_no_wake() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let worker = {
            let mutex = mutex.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    *mutex.blocking_lock().unwrap() += 1;
                }
            })
        };
        *mutex.blocking_lock().unwrap() += 1;
        worker.join().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), 3);
    });
}

/// A hand-off to the last waiter leaves `SLOW` set while nothing is free (so a contended
/// loop does not clear and set it again on every hand-off). An acquire racing that
/// hand-off queues (or finds the lock already free), is served by the next release, and
/// the last release clears `SLOW`: both increments land and the lock ends free for the
/// fast path.
#[test]
fn a_hand_off_to_the_last_waiter_races_a_new_acquire() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        let guard = mutex.clone().try_lock_owned().unwrap();
        let increment =
            |mutex: Arc<Mutex<usize>>| thread::spawn(move || *mutex.blocking_lock().unwrap() += 1);
        let first = increment(mutex.clone());
        let second = increment(mutex.clone());
        drop(guard);
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(*mutex.try_lock().expect("the last release left the lock free"), 2);
    });
}

/// A queued waiter is dropped while the holder releases: whichever wins, the lock ends
/// free (a grant to the dropped waiter is passed on, never lost).
#[test]
fn granted_waiter_cancelled_during_release_passes_it_on() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let guard = mutex.clone().try_lock_owned().unwrap();
        let waiter = {
            let mutex = mutex.clone();
            thread::spawn(move || {
                let mut lock = pin!(mutex.lock());
                let mut cx = Context::from_waker(Waker::noop());
                let first = lock.as_mut().poll(&mut cx).is_ready();
                // Dropped here, granted or not.
                first
            })
        };
        drop(guard);
        let got_it_at_once = waiter.join().unwrap();
        assert!(!got_it_at_once || !mutex.is_locked());
        assert!(mutex.try_lock().is_ok(), "the lock was lost");
    });
}

/// A thread ends holding the lock while another parks for it: the waiter is woken with
/// Broken, never left parked; a try_lock racing the break sees WouldBlock or Broken.
#[test]
fn owner_exit_races_a_parking_waiter_and_try_lock() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let (tx, rx) = loom::sync::mpsc::channel();
        let holder = {
            let mutex = mutex.clone();
            thread::spawn(move || {
                std::mem::forget(mutex.blocking_lock().unwrap());
                tx.send(()).unwrap();
            })
        };
        rx.recv().unwrap();
        let racer = {
            let mutex = mutex.clone();
            thread::spawn(move || match mutex.try_lock() {
                Err(TryLockError::WouldBlock) | Err(TryLockError::Broken(_)) => {}
                other => panic!("unexpected {other:?}"),
            })
        };
        assert!(matches!(mutex.blocking_lock(), Err(AcquireError::Broken(_))));
        holder.join().unwrap();
        racer.join().unwrap();
    });
}

/// A thread's exit races another thread dropping the guard it handed over: the hold is
/// decided once, either released (free, not broken) or abandoned (broken), and a waiter
/// never hangs either way. (It waits rather than `try_lock`s after `join`: loom signals
/// `join` before it runs the thread's thread-local destructors, where the exit happens;
/// std's `join` waits for them.)
#[test]
fn owner_exit_races_a_normal_release() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let (tx, rx) = loom::sync::mpsc::channel();
        let owner = {
            let mutex = mutex.clone();
            thread::spawn(move || tx.send(mutex.blocking_lock_owned().unwrap()).unwrap())
        };
        let guard = rx.recv().unwrap();
        let dropper = thread::spawn(move || drop(guard));
        match mutex.blocking_lock() {
            Ok(_) => assert!(!mutex.is_broken(), "released and broken at once"),
            Err(AcquireError::Broken(_)) => assert!(mutex.is_broken()),
            Err(other) => panic!("unexpected {other:?}"),
        }
        owner.join().unwrap();
        dropper.join().unwrap();
    });
}

/// A tracked task hands its guard to another thread and is then dropped (cancelled)
/// while that thread drops the guard: the release and the exit are decided once, the
/// owner's own (lock-free) hold list is never reached from two threads unordered, and a
/// later locker either gets the lock or learns the task abandoned it.
#[test]
fn task_exit_races_a_release_elsewhere() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let (tx, rx) = loom::sync::mpsc::channel();
        let mut task = Box::pin(ownsync::tracked({
            let mutex = mutex.clone();
            async move {
                tx.send(mutex.lock_owned().await.unwrap()).unwrap();
                std::future::pending::<()>().await
            }
        }));
        let id = task.owner();
        assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        let guard = rx.recv().unwrap();
        let dropper = thread::spawn(move || drop(guard));
        let canceller = thread::spawn(move || drop(task));
        match mutex.blocking_lock() {
            Ok(_) => assert!(!mutex.is_broken(), "released and broken at once"),
            Err(AcquireError::Broken(err)) => assert_eq!(err.owner(), id),
            Err(other) => panic!("unexpected {other:?}"),
        }
        dropper.join().unwrap();
        canceller.join().unwrap();
        // The exit may count the moved guard as orphaned; its drop, before or after,
        // takes it off the count again.
        assert_eq!(mutex.statistics().orphaned(), 0, "a released orphan still counted");
    });
}

/// A repair (take the broken mutex, fix, mark consistent) races a new acquire on another
/// thread: the acquire either fails with `Broken` or gets the mutex after the repair,
/// never while the repairer is inside; a waiter never hangs.
#[test]
fn a_repair_races_a_new_acquire() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize));
        // Break it: a guard handed to a task that exits while answering for it; then
        // the guard is dropped, so the mutex is repairable.
        let mut guard = mutex.clone().try_lock_owned().unwrap();
        let worker = ownsync::tracked(std::future::pending::<()>());
        ownsync::OwnedMutexGuard::hand_to(&mut guard, worker.owner()).unwrap();
        drop(worker);
        drop(guard);
        let inside = Arc::new(AtomicBool::new(false));
        let locker = {
            let (mutex, inside) = (mutex.clone(), inside.clone());
            thread::spawn(move || match mutex.blocking_lock() {
                Ok(mut guard) => {
                    assert!(!inside.swap(true, Ordering::SeqCst), "beside the repairer");
                    *guard += 1;
                    inside.store(false, Ordering::SeqCst);
                    true
                }
                Err(AcquireError::Broken(_)) => false,
                Err(other) => panic!("unexpected {other:?}"),
            })
        };
        let mut repair = mutex.try_repair().unwrap();
        assert!(!inside.swap(true, Ordering::SeqCst), "beside a locker");
        *repair = 10;
        inside.store(false, Ordering::SeqCst);
        repair.mark_consistent();
        let locked = locker.join().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), if locked { 11 } else { 10 });
    });
}

/// Eventual fairness: two threads barge and are woken to try again (every other
/// contended release hands over strictly under loom): never two holders at once, no
/// wake lost, every increment lands.
#[test]
fn eventually_fair_barging_keeps_one_holder_and_loses_no_wake() {
    model(|| {
        let mutex = Arc::new(Mutex::new(0usize).eventually_fair());
        let inside = Arc::new(AtomicBool::new(false));
        let run = |mutex: &Mutex<usize>, inside: &AtomicBool| {
            for _ in 0..2 {
                let mut guard = mutex.blocking_lock().unwrap();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                *guard += 1;
                inside.store(false, Ordering::SeqCst);
            }
        };
        let worker = {
            let (mutex, inside) = (mutex.clone(), inside.clone());
            thread::spawn(move || run(&mutex, &inside))
        };
        run(&mutex, &inside);
        worker.join().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), 4);
    });
}

/// Eventual fairness: a queued waiter is dropped while the holder releases (a wake to
/// try again, or a strict grant, may reach it first): the lock ends free either way.
#[test]
fn eventually_fair_waiter_dropped_during_release_passes_it_on() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()).eventually_fair());
        let guard = mutex.clone().try_lock_owned().unwrap();
        let waiter = {
            let mutex = mutex.clone();
            thread::spawn(move || {
                let mut lock = pin!(mutex.lock());
                let mut cx = Context::from_waker(Waker::noop());
                if lock.as_mut().poll(&mut cx).is_pending() {
                    let _ = lock.as_mut().poll(&mut cx); // perhaps woken by now: it tries
                }
            })
        };
        drop(guard);
        waiter.join().unwrap();
        assert!(mutex.try_lock().is_ok(), "the lock was lost");
    });
}
