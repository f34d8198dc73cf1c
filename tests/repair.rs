//! Repair after a break (DESIGN.md section 6): a program that can restore the data takes
//! the broken lock, fixes it and marks it consistent; acquires then succeed, waiters
//! failed before keep their error, a repairer that gives up (or panics) leaves it
//! broken, and no repair starts while any guard of the lock is still out.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ownsync::{AcquireError, Mutex, OwnedMutexGuard, RepairError, RwLock, TryLockError, tracked};

use common::{Polled, broken};

/// Breaks `mutex` with a panic inside its critical section.
fn break_by_panic(mutex: &Mutex<Vec<i32>>) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut guard = mutex.blocking_lock().unwrap();
        guard.push(-1); // half an update
        panic!("the update stopped half-way");
    }));
    assert!(result.is_err() && mutex.is_broken());
}

#[test]
fn a_repaired_mutex_works_again_and_earlier_waiters_keep_their_error() {
    let mutex = Arc::new(Mutex::new(vec![1]));
    let holder = mutex.clone().try_lock_owned().unwrap();
    let mut waiter = Polled::new(mutex.lock());
    assert!(waiter.is_pending());
    // The holder panics in its section (its guard is dropped while unwinding).
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let _holder = holder;
        panic!("inside");
    }));
    assert!(mutex.is_broken());
    assert_eq!(waiter.wakes(), 1);

    let mut repair = mutex.try_repair().unwrap();
    assert!(matches!(mutex.try_lock(), Err(TryLockError::Broken(_))), "broken while repairing");
    assert!(matches!(mutex.try_repair(), Err(RepairError::InUse { guards_out: 1 })), "one repairer");
    repair.retain(|&v| v >= 0);
    repair.mark_consistent();

    assert!(!mutex.is_broken());
    assert_eq!(*mutex.try_lock().unwrap(), [1]);
    // Woken by the break before the repair, polled after it: still the break's error.
    let err = broken(waiter.ready());
    assert_eq!(err.reason(), ownsync::AbandonReason::Panicked);
    assert_eq!(mutex.try_repair().err(), Some(RepairError::NotBroken));
}

#[test]
fn a_repairer_that_gives_up_or_panics_leaves_it_broken_and_repairable() {
    let mutex = Mutex::new(vec![1]);
    break_by_panic(&mutex);
    drop(mutex.try_repair().unwrap()); // gave up
    assert!(mutex.is_broken());
    assert!(matches!(futures::executor::block_on(mutex.lock()), Err(AcquireError::Broken(_))));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let _repair = mutex.try_repair().unwrap();
        panic!("the repair failed");
    }));
    assert!(panicked.is_err());
    assert!(mutex.is_broken(), "never a one-shot flag lost by a failed recoverer");
    let mut repair = mutex.try_repair().unwrap();
    repair.pop();
    repair.mark_consistent();
    assert_eq!(*mutex.try_lock().unwrap(), [1]);
}

/// A guard whose owner's exit broke the mutex may still be alive elsewhere: no repair
/// while it is (its holder could still reach the data); once it is dropped, repair.
#[test]
fn no_repair_while_the_abandoned_guard_is_still_out() {
    let mutex = Arc::new(Mutex::new(0));
    let mut guard = mutex.clone().try_lock_owned().unwrap();
    let worker = tracked(async {});
    OwnedMutexGuard::hand_to(&mut guard, worker.owner()).unwrap();
    futures::executor::block_on(worker); // exits while it answers for the guard
    assert!(mutex.is_broken());
    assert_eq!(mutex.try_repair().err(), Some(RepairError::InUse { guards_out: 1 }));
    *guard += 1; // the guard is still usable by whoever has it
    drop(guard);
    let repair = mutex.try_repair().unwrap();
    assert_eq!(*repair, 1);
    repair.mark_consistent();
    assert!(mutex.try_lock().is_ok());
}

/// A leaked guard is never dropped: its mutex cannot be repaired (sound, if final).
#[test]
fn a_leaked_guard_makes_repair_impossible() {
    let mutex = Mutex::new(0);
    futures::executor::block_on(tracked(async { std::mem::forget(mutex.lock().await.unwrap()) }));
    assert_eq!(mutex.try_repair().err(), Some(RepairError::InUse { guards_out: 1 }));
}

/// An RwLock broken by a leaked read guard while other readers are in: each live guard
/// holds the repair off until it is dropped; the leaked one never is.
#[test]
fn an_rwlock_repair_waits_for_every_reader() {
    let lock = RwLock::with_max_readers(vec![1], 8);
    let reader = lock.try_read().unwrap();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _w = lock.try_write();
        panic!("no writer was in: breaks nothing");
    }));
    assert!(!lock.is_broken());
    futures::executor::block_on(tracked(async { std::mem::forget(lock.read().await.unwrap()) }));
    assert!(lock.is_broken());
    assert_eq!(lock.try_repair().err(), Some(RepairError::InUse { guards_out: 2 }));
    drop(reader);
    assert_eq!(lock.try_repair().err(), Some(RepairError::InUse { guards_out: 1 }));

    let lock = RwLock::with_max_readers(vec![1], 8);
    let reader = lock.try_read().unwrap();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        drop(reader);
        let mut w = lock.try_write().unwrap();
        w.clear();
        panic!("half-way");
    }));
    let mut repair = lock.try_repair().unwrap();
    repair.push(1);
    repair.mark_consistent();
    assert_eq!(*lock.try_read().unwrap(), [1]);
}
