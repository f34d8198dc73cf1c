//! One regression test (or a few) per defect of the third outside review (issue 29,
//! items 1-4), one section each. Each fails, or hangs, without its fix.
//!
//! Item 1 is unsound without its fix; its tests are small enough for Miri:
//! `cargo +nightly miri test --test review_defects_r3 leaked_read`.

use std::sync::Arc;

use futures::executor::block_on;
use ownsync::{
    AbandonPolicy, AbandonReason, AcquireError, BrokenResourceError, Condition, Lock, Mutex, MutexGuard,
    OwnerId, ReleaseError, RepairError, RwLock, RwLockReadGuard, TryLockError, current_owner, tracked,
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

// Item 2: `Condition::blocking_wait` (and `wait`) returns the guard owned as it was before
// the wait, so its owner's exit with it breaks the mutex instead of hanging every waiter.

/// Tells `locked` that the waiter holds the mutex, then waits on `cond` with `guard`
/// until the flag it guards is set, blocking or not. Returns the guard and how many
/// waits it took.
async fn wait_for_flag<'a>(
    cond: &'a Condition,
    mut guard: MutexGuard<'a, bool>,
    locked: std::sync::mpsc::Sender<()>,
    blocking: bool,
) -> (MutexGuard<'a, bool>, usize) {
    locked.send(()).unwrap();
    let mut waits = 0;
    while !*guard {
        guard = if blocking { cond.blocking_wait(guard) } else { cond.wait(guard).await }.unwrap();
        waits += 1;
    }
    (guard, waits)
}

/// Once the waiter holds the mutex (`locked`), sets the flag and notifies: the waiter
/// holds the mutex until it waits, so this lock is granted only then.
fn set_and_notify(mutex: &Mutex<bool>, cond: &Condition, locked: std::sync::mpsc::Receiver<()>) {
    locked.recv().unwrap();
    *mutex.blocking_lock().unwrap() = true;
    cond.notify_all();
}

/// What the waiter saw after its wait: who it is, how many waits it took, and whom the
/// mutex named as its owner.
struct AfterWait {
    me: OwnerId,
    waits: usize,
    owner_after_wait: Option<OwnerId>,
}

/// The mutex after its waiter leaked the guard and ended: broken in `waiter.me`'s name.
fn assert_broken_by(mutex: &Mutex<bool>, waiter: &AfterWait) {
    assert_eq!(waiter.waits, 1, "the waiter waited, once");
    assert_eq!(waiter.owner_after_wait, Some(waiter.me), "the guard came back owned by its waiter");
    match mutex.try_lock() {
        Err(TryLockError::Broken(err)) => assert_eq!(err.owner(), waiter.me),
        Err(other) => panic!("expected Broken, got {other:?} (the leaked guard is held by nobody)"),
        Ok(_) => panic!("expected Broken, got the lock"),
    }
    let err = broken(block_on(mutex.lock()));
    assert_eq!((err.owner(), err.reason()), (waiter.me, AbandonReason::Exited));
}

#[test]
fn condition_blocking_wait_returns_the_guard_owned_by_its_thread() {
    let (mutex, cond) = (Arc::new(Mutex::new(false)), Arc::new(Condition::new()));
    let (locked, is_locked) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        move || {
            let (guard, waits) = block_on(wait_for_flag(&cond, mutex.blocking_lock().unwrap(), locked, true));
            let seen = AfterWait { me: current_owner(), waits, owner_after_wait: mutex.owner() };
            std::mem::forget(guard); // and the thread ends holding it
            seen
        }
    });
    set_and_notify(&mutex, &cond, is_locked);
    let seen = waiter.join().unwrap();
    assert!(seen.me.is_thread());
    assert_broken_by(&mutex, &seen);
}

#[test]
fn condition_async_wait_returns_the_guard_owned_by_its_task() {
    let (mutex, cond) = (Arc::new(Mutex::new(false)), Arc::new(Condition::new()));
    let (locked, is_locked) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        move || {
            block_on(tracked(async move {
                let (guard, waits) = wait_for_flag(&cond, mutex.lock().await.unwrap(), locked, false).await;
                let seen = AfterWait { me: current_owner(), waits, owner_after_wait: mutex.owner() };
                std::mem::forget(guard); // and the task ends holding it
                seen
            }))
        }
    });
    set_and_notify(&mutex, &cond, is_locked);
    let seen = waiter.join().unwrap();
    assert!(!seen.me.is_thread());
    assert_broken_by(&mutex, &seen);
}

/// A guard handed to another owner before the wait comes back still handed to it: that
/// owner's exit with it breaks the mutex, in its name.
#[test]
fn condition_blocking_wait_keeps_a_handed_over_guard_with_its_new_owner() {
    let (mutex, cond) = (Arc::new(Mutex::new(false)), Arc::new(Condition::new()));
    let receiver = tracked(async {}); // an owner from now on, until dropped
    let mut guard = mutex.blocking_lock().unwrap();
    MutexGuard::hand_to(&mut guard, receiver.owner()).unwrap();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let notifier = std::thread::spawn({
        let (mutex, cond) = (mutex.clone(), cond.clone());
        move || set_and_notify(&mutex, &cond, is_locked)
    });
    let (guard, waits) = block_on(wait_for_flag(&cond, guard, locked, true));
    notifier.join().unwrap();
    assert_eq!(waits, 1);
    assert_eq!(mutex.owner(), Some(receiver.owner()), "was None: an anonymous guard");
    let receiver_id = receiver.owner();
    drop(receiver); // the owner it was handed to goes away with it: cancelled
    let err = broken(block_on(mutex.lock()));
    assert_eq!((err.owner(), err.reason()), (receiver_id, AbandonReason::Cancelled));
    drop(guard);
}

// Item 3: the "taken while panicking" mark belongs to the hold: a write hold taken during
// an unrelated unwind and then downgraded leaves no mark for the next, ordinary writer.

/// A `Drop` that runs a whole write section during an unwind, ending it by a downgrade.
struct WriteAndDowngradeOnDrop<'a> {
    lock: &'a RwLock<i32>,
    owned: Option<Arc<RwLock<i32>>>,
}

impl Drop for WriteAndDowngradeOnDrop<'_> {
    fn drop(&mut self) {
        assert!(std::thread::panicking(), "runs during the unwind");
        let mut write = self.lock.try_write().unwrap();
        *write += 1; // a complete section: nothing half-written
        drop(write.downgrade());
        if let Some(owned) = self.owned.take() {
            let mut write = owned.try_write_owned().unwrap();
            *write += 1;
            drop(write.downgrade());
        }
    }
}

/// An ordinary writer of `lock` that panics half-way through its section.
fn writer_panics_in_its_section(lock: &RwLock<i32>) {
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut write = lock.try_write().unwrap();
        *write = -1;
        panic!("half-way through an update");
    }));
    assert!(unwound.is_err());
}

fn downgrade_during_an_unrelated_unwind(lock: &RwLock<i32>, owned: Option<Arc<RwLock<i32>>>) {
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _section = WriteAndDowngradeOnDrop { lock, owned };
        panic!("an unrelated panic");
    }));
    assert!(unwound.is_err());
}

#[test]
fn taken_while_panicking_mark_ends_with_a_downgraded_write_hold() {
    let lock = RwLock::new(0);
    downgrade_during_an_unrelated_unwind(&lock, None);
    assert!(!lock.is_broken(), "a complete section run during an unwind breaks nothing");
    assert_eq!(*lock.try_read().unwrap(), 1);
    writer_panics_in_its_section(&lock);
    let reason = lock.statistics().broken().map(BrokenResourceError::reason);
    assert_eq!(reason, Some(AbandonReason::Panicked), "the half-written data was passed on as whole");
    assert!(matches!(block_on(lock.read()), Err(AcquireError::Broken(_))));
}

#[test]
fn taken_while_panicking_mark_ends_with_a_downgraded_owned_write_hold() {
    let (lock, owned) = (RwLock::new(0), Arc::new(RwLock::new(0)));
    downgrade_during_an_unrelated_unwind(&lock, Some(owned.clone()));
    assert!(!owned.is_broken());
    writer_panics_in_its_section(&owned);
    let reason = owned.statistics().broken().map(BrokenResourceError::reason);
    assert_eq!(reason, Some(AbandonReason::Panicked));
}

// Item 4: the manual hold of a `Lock` whose owner exited without `release` is settled by
// the break: no guard exists, so the lock can be repaired, and `release` is `NotHeld`.

/// `lock` was manually acquired by `owner`, which exited (`reason`) without releasing:
/// broken in its name, repairable at once, and usable again once marked consistent.
fn abandoned_manual_hold_is_settled(lock: &Lock, owner: OwnerId, reason: AbandonReason) {
    let err = broken(block_on(lock.acquire()));
    assert_eq!((err.owner(), err.reason()), (owner, reason));
    assert_eq!(lock.release(), Err(ReleaseError::NotHeld), "was NotOwner naming the exited owner");
    let repair = lock.try_repair().expect("was InUse { guards_out: 1 } for ever: there is no guard");
    assert!(lock.is_broken(), "broken until marked consistent");
    repair.mark_consistent();
    assert!(!lock.is_broken());
    assert_eq!(lock.release(), Err(ReleaseError::NotHeld), "repaired, and not held by anyone");
    // It works again: acquired and released (here anonymously), by anyone, once.
    block_on(lock.acquire()).unwrap();
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotHeld));
    lock.try_acquire().unwrap();
    assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));
    lock.release().unwrap();
}

#[test]
fn abandoned_manual_lock_of_an_exited_task_can_be_repaired() {
    let lock = Arc::new(Lock::default());
    let owner = block_on(tracked({
        let lock = lock.clone();
        async move {
            lock.acquire().await.unwrap();
            current_owner() // and exits without `release`
        }
    }));
    abandoned_manual_hold_is_settled(&lock, owner, AbandonReason::Exited);
}

#[test]
fn abandoned_manual_lock_of_an_ended_thread_can_be_repaired() {
    let lock = Arc::new(Lock::default());
    let owner = std::thread::spawn({
        let lock = lock.clone();
        move || {
            lock.blocking_acquire().unwrap();
            current_owner()
        }
    })
    .join()
    .unwrap();
    abandoned_manual_hold_is_settled(&lock, owner, AbandonReason::Exited);
}

/// Acquired in a nested scope that completes: the hold goes on to the enclosing task,
/// whose cancellation abandons it (named after that task).
#[test]
fn abandoned_manual_lock_of_a_nested_scope_can_be_repaired() {
    let lock = Arc::new(Lock::default());
    let (acquired, is_acquired) = std::sync::mpsc::channel();
    let mut task = Box::pin(tracked({
        let lock = lock.clone();
        async move {
            tracked(async { lock.acquire().await.unwrap() }).await;
            acquired.send(current_owner()).unwrap();
            std::future::pending::<()>().await
        }
    }));
    assert!(futures::FutureExt::now_or_never(task.as_mut()).is_none());
    let owner = is_acquired.recv().unwrap();
    assert_eq!(lock.try_repair().err(), Some(RepairError::NotBroken), "held, by a live owner");
    drop(task); // cancelled, still holding it
    abandoned_manual_hold_is_settled(&lock, owner, AbandonReason::Cancelled);
}

// Found by the loom model of a downgrade racing its owner's exit (loom-tests rwlock.rs,
// `downgrade_races_the_owners_exit`): a write guard whose owner's exit abandoned it, then
// downgraded, lost the permits the downgrade let go: once every guard was dropped,
// `try_repair` still said `InUse` for ever.

#[test]
fn downgrading_an_abandoned_write_guard_leaves_the_lock_repairable() {
    let lock = Arc::new(RwLock::with_max_readers(0usize, 4));
    let task = tracked(std::future::pending::<()>());
    let mut guard = lock.clone().try_write_owned().unwrap();
    ownsync::OwnedRwLockWriteGuard::hand_to(&mut guard, task.owner()).unwrap();
    *guard = 7;
    drop(task); // the task answers for the write hold: broken, the hold abandoned whole
    assert!(lock.is_broken());
    let read = guard.downgrade();
    assert_eq!(*read, 7);
    assert!(matches!(lock.try_repair(), Err(RepairError::InUse { guards_out: 1 })), "the read guard");
    drop(read);
    lock.try_repair().expect("no guard is left").mark_consistent();
    assert_eq!(*block_on(lock.read()).unwrap(), 7);
}

#[test]
fn downgrading_an_orphaned_write_guard_keeps_one_orphan_of_its_read_hold() {
    let lock = Arc::new(RwLock::with_max_readers(0usize, 4));
    let guard = block_on(tracked({
        let lock = lock.clone();
        async move { lock.write_owned().await.unwrap() }
    })); // an owned guard outlives its acquirer: orphaned, not abandoned
    assert_eq!(lock.statistics().orphaned(), 1);
    let read = guard.downgrade();
    assert_eq!(lock.statistics().orphaned(), 1, "the read hold is still the orphan");
    assert!(lock.try_read().is_ok(), "the write permits were let go");
    drop(read);
    assert_eq!(lock.statistics().orphaned(), 0);
    assert!(lock.try_write().is_ok(), "every permit is back");
}
