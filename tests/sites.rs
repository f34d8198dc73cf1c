//! Where the abandoned hold was taken: every acquire entry point records its caller's
//! `file:line:column` (`#[track_caller]`; the async ones capture it before returning
//! their future), and a `BrokenResourceError` names it. The site is the user's call,
//! never a line inside ownsync.

use std::sync::Arc;

use futures::executor::block_on;
use ownsync::{
    AcquireError, BrokenResourceError, CapacityLimiter, Lock, Mutex, OwnedMutexGuard, RwLock, Semaphore,
    TryAcquireError, TryLockError, tracked,
};

/// Checks that `err` was taken at `line` of this file, and says so in its message.
#[track_caller]
fn taken_at(err: &BrokenResourceError, line: u32) {
    let site = err.site().expect("the site of a registered hold");
    assert_eq!((site.file(), site.line()), (file!(), line), "{err}");
    assert!(err.to_string().contains(&format!("(taken at {}:{line}:", file!())), "{err}");
}

fn broken_mutex<T>(mutex: &Mutex<T>) -> BrokenResourceError {
    match mutex.try_lock() {
        Err(TryLockError::Broken(err)) => err,
        other => panic!("expected Broken, got {:?}", other.map(drop)),
    }
}

#[test]
fn an_async_lock_leaked_by_a_task() {
    let mutex = Mutex::new(0);
    let line = block_on(tracked(async {
        let (guard, line) = (mutex.lock().await.unwrap(), line!());
        std::mem::forget(guard);
        line
    }));
    taken_at(&broken_mutex(&mutex), line);
}

#[test]
fn a_blocking_lock_leaked_by_a_thread() {
    let mutex = Arc::new(Mutex::new(0));
    let line = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            let (guard, line) = (mutex.blocking_lock().unwrap(), line!());
            std::mem::forget(guard);
            line
        }
    })
    .join()
    .unwrap();
    taken_at(&broken_mutex(&mutex), line);
}

/// A registered hold keeps its site through a hand-over; an anonymous one (taken outside
/// any owner, or orphaned by its acquirer's exit) gets the hand-over's, where it became
/// certainly owned.
#[test]
fn a_hand_over_keeps_a_known_site_or_records_its_own() {
    let mutex = Arc::new(Mutex::new(0));
    let worker = tracked(async {});
    let worker_id = worker.owner();
    let line = block_on(tracked({
        let mutex = mutex.clone();
        async move {
            let (mut guard, line) = (mutex.lock_owned().await.unwrap(), line!());
            OwnedMutexGuard::hand_to(&mut guard, worker_id).unwrap();
            std::mem::forget(guard);
            line
        }
    }));
    block_on(worker);
    taken_at(&broken_mutex(&mutex), line);

    let mutex = Arc::new(Mutex::new(0));
    let worker = tracked(async {});
    let mut guard = mutex.clone().try_lock_owned().unwrap(); // anonymous: no site kept
    let (handed, line) = (OwnedMutexGuard::hand_to(&mut guard, worker.owner()), line!());
    handed.unwrap();
    std::mem::forget(guard);
    block_on(worker);
    taken_at(&broken_mutex(&mutex), line);
}

#[test]
fn a_manual_acquire_never_released() {
    let lock = Lock::default();
    let line = block_on(tracked(async {
        let (acquired, line) = (lock.acquire().await, line!());
        acquired.unwrap();
        line
    }));
    taken_at(&broken_mutex(&lock), line);
}

#[test]
fn a_panic_inside_the_section() {
    let mutex = Mutex::new(0);
    let line = std::cell::Cell::new(0);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (_guard, at) = (mutex.blocking_lock().unwrap(), line!());
        line.set(at);
        panic!("inside");
    }));
    let err = broken_mutex(&mutex);
    assert_eq!(err.reason(), ownsync::AbandonReason::Panicked);
    taken_at(&err, line.get());
}

#[test]
fn a_semaphore_an_rwlock_and_a_limiter() {
    let sem = Semaphore::new(3);
    let line = block_on(tracked(async {
        let (permit, line) = (sem.acquire_many(2).await.unwrap(), line!());
        permit.forget_registration_for_test();
        line
    }));
    match sem.try_acquire() {
        Err(TryAcquireError::Broken(err)) => taken_at(&err, line),
        other => panic!("expected Broken, got {:?}", other.map(drop)),
    }

    let rw = RwLock::new(0);
    let line = block_on(tracked(async {
        let (guard, line) = (rw.write().await.unwrap(), line!());
        std::mem::forget(guard);
        line
    }));
    match rw.try_read() {
        Err(TryLockError::Broken(err)) => taken_at(&err, line),
        other => panic!("expected Broken, got {:?}", other.map(drop)),
    }

    let limiter = CapacityLimiter::new(1);
    let worker = tracked(async {});
    let (token, line) = (limiter.try_acquire_on_behalf_of(worker.owner()).unwrap(), line!());
    token.detach();
    block_on(worker);
    match block_on(limiter.acquire()) {
        Err(AcquireError::Broken(err)) => taken_at(&err, line),
        other => panic!("expected Broken, got {:?}", other.map(drop)),
    }
}

trait ForgetForTest {
    fn forget_registration_for_test(self);
}

impl ForgetForTest for ownsync::SemaphorePermit<'_> {
    fn forget_registration_for_test(self) {
        std::mem::forget(self);
    }
}
