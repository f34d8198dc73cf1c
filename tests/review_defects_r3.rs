//! One regression test (or a few) per defect of the third outside review (issue 29,
//! items 1-4), one section each. Each fails, or hangs, without its fix.
//!
//! Item 1 is unsound without its fix; its tests are small enough for Miri:
//! `cargo +nightly miri test --test review_defects_r3 leaked_read`.

use std::sync::Arc;

use futures::executor::block_on;
use ownsync::{
    AbandonPolicy, AbandonReason, AcquireError, BrokenResourceError, RwLock, RwLockReadGuard, tracked,
};

/// The error of an acquire that must have failed with `Broken`.
fn broken<T>(result: Result<T, AcquireError>) -> BrokenResourceError {
    match result {
        Err(AcquireError::Broken(err)) => err,
        Err(other) => panic!("expected Broken, got {other:?}"),
        Ok(_) => panic!("expected Broken, got a guard"),
    }
}

// Item 1: under `Reclaim`, an abandoned read hold of an RwLock breaks it; its permit never
// returns to the pool, since its guard may still be reachable and deref'd.

/// A `'static` RwLock with the `Reclaim` policy, holding data on the heap (so a writer
/// that replaced it would free what a live read guard points into).
fn reclaiming_rwlock() -> &'static RwLock<Vec<u64>> {
    Box::leak(Box::new(RwLock::with_policy(vec![1, 2, 3], AbandonPolicy::Reclaim)))
}

/// The heart of item 1: `lock` has a read hold whose owner exited while its guard lives
/// on, reachable through `data`. A writer must be refused (`Broken`, naming the exit),
/// and `data` still reads what it read.
fn writer_is_refused_beside_a_live_read_guard(lock: &'static RwLock<Vec<u64>>, data: &[u64]) {
    assert_eq!(lock.statistics().abandoned().count(), 1, "the exit abandoned the read hold");
    match block_on(lock.write()) {
        Ok(mut writer) => {
            // Before the fix: a `&mut T` beside a live `&T`. Under Miri, use it as a writer
            // would (reallocating), so Miri reports the use-after-free it leads to.
            if cfg!(miri) {
                *writer = Vec::new();
                drop(writer);
                assert_eq!(data, [1, 2, 3]);
            }
            panic!("a writer got `&mut T` while a read guard of an exited owner still derefs");
        }
        Err(err) => {
            let err = broken::<()>(Err(err));
            assert_eq!(err.reason(), AbandonReason::Exited);
        }
    }
    assert!(lock.is_broken());
    assert_eq!(data, [1, 2, 3], "the leaked read guard still reads valid data");
    assert!(lock.try_write().is_err(), "still no writer");
}

#[test]
fn leaked_read_guard_returned_from_its_task_breaks_a_reclaim_rwlock() {
    let lock = reclaiming_rwlock();
    // Returned from the outermost tracked task without a hand-over: the task's exit
    // abandons the hold while the guard lives on here.
    let guard: RwLockReadGuard<'static, Vec<u64>> =
        block_on(tracked(async move { lock.read().await.unwrap() }));
    writer_is_refused_beside_a_live_read_guard(lock, &guard);
    // The guard dropped at last gives its permit back to the broken lock: it can be repaired.
    drop(guard);
    let repair = lock.try_repair().expect("every guard is gone");
    repair.mark_consistent();
    assert_eq!(*block_on(lock.write()).unwrap(), [1, 2, 3]);
}

#[test]
fn leaked_read_guard_box_leaked_in_its_task_breaks_a_reclaim_rwlock() {
    let lock = reclaiming_rwlock();
    // `Box::leak`ed: the guard is never dropped, but stays reachable through `data`.
    let data: &'static [u64] = block_on(tracked(async move {
        let guard: &'static RwLockReadGuard<'static, Vec<u64>> =
            Box::leak(Box::new(lock.read().await.unwrap()));
        &guard[..]
    }));
    writer_is_refused_beside_a_live_read_guard(lock, data);
    assert!(lock.try_repair().is_err(), "a leaked guard is never dropped: no repair");
}

#[test]
fn leaked_read_guard_returned_through_a_threads_join_breaks_a_reclaim_rwlock() {
    let lock = reclaiming_rwlock();
    // Taken by a thread (its owner), returned through `join`: the thread's end abandons it.
    let guard = std::thread::spawn(move || lock.blocking_read().unwrap()).join().unwrap();
    writer_is_refused_beside_a_live_read_guard(lock, &guard);
}

/// Semaphores guard no data: `Reclaim` keeps returning their abandoned permits.
#[test]
fn leaked_read_guard_fix_leaves_a_reclaim_semaphore_reclaiming() {
    let sem = Arc::new(ownsync::Semaphore::with_policy(1, AbandonPolicy::Reclaim));
    block_on(tracked({
        let sem = sem.clone();
        async move { std::mem::forget(sem.acquire().await.unwrap()) }
    }));
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), 1, "the abandoned permit was reclaimed");
}
