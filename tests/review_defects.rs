//! One regression test per defect of the outside review (issue 16, items 3-9; items 1
//! and 2 are unit tests in `src/tracked.rs`, so that Miri runs them). Each fails, or
//! hangs, without its fix.

mod common;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Wake, Waker};

use futures::executor::block_on;
use ownsync::{
    AbandonPolicy, AbandonReason, CapacityLimiter, Mutex, OwnedSemaphorePermit, Semaphore, SemaphorePermit,
    TryAcquireError, TryLockError, tracked,
};

use common::Polled;

/// A `'static` semaphore with the `Reclaim` policy.
fn reclaiming(permits: usize) -> &'static Semaphore {
    Box::leak(Box::new(Semaphore::with_policy(permits, AbandonPolicy::Reclaim)))
}

/// `n` borrowed permits taken by a tracked task and returned from it without being
/// handed over: the task's exit abandons them (here: reclaims them into the pool) while
/// the permit lives on outside.
fn permit_outliving_its_owner(sem: &'static Semaphore, n: u32) -> SemaphorePermit<'static> {
    let permit = block_on(tracked(async move { sem.acquire_many(n).await.unwrap() }));
    assert_eq!(sem.statistics().abandoned().count(), 1, "the exit reclaimed the permit");
    permit
}

// Item 3: split and merge after the owner's exit claimed the hold.

#[test]
fn splitting_a_reclaimed_permit_releases_nothing() {
    let sem = reclaiming(2);
    let mut permit = permit_outliving_its_owner(sem, 2);
    assert_eq!(sem.available_permits(), 2);
    let piece = permit.split(1).expect("split never fails on the count");
    assert_eq!((permit.num_permits(), piece.num_permits()), (0, 0), "nothing left to split");
    drop((permit, piece));
    assert_eq!(sem.available_permits(), 2, "was 3 of 2: the split piece was released");
}

#[test]
fn merging_a_reclaimed_permit_into_a_live_registered_one_adds_nothing() {
    let sem = reclaiming(2);
    let abandoned = permit_outliving_its_owner(sem, 1);
    let mut live = sem.blocking_acquire().unwrap(); // registered to this thread
    live.merge(abandoned);
    assert_eq!(live.num_permits(), 1);
    drop(live);
    assert_eq!(sem.available_permits(), 2, "was 3 of 2: the abandoned permit was released twice");
}

#[test]
fn merging_a_reclaimed_permit_into_an_anonymous_one_loses_nothing() {
    let sem = reclaiming(2);
    let abandoned = permit_outliving_its_owner(sem, 1);
    let mut anonymous = sem.try_acquire().unwrap();
    anonymous.merge(abandoned);
    assert_eq!(anonymous.num_permits(), 1);
    drop(anonymous);
    assert_eq!(sem.available_permits(), 2, "was 1 of 2: the anonymous permit adopted the dead ticket");
}

#[test]
fn merging_a_live_permit_into_a_reclaimed_one_keeps_the_live_permits() {
    let sem = reclaiming(3);
    let mut abandoned = permit_outliving_its_owner(sem, 1);
    let live = sem.try_acquire_many(2).unwrap();
    abandoned.merge(live);
    assert_eq!(abandoned.num_permits(), 2);
    assert_eq!(sem.available_permits(), 1);
    drop(abandoned);
    assert_eq!(sem.available_permits(), 3);
}

// Item 4: an owned permit or token moved away is not reclaimed at its acquirer's exit.

#[test]
fn a_moved_owned_permit_is_not_reclaimed_while_in_use() {
    let sem = Arc::new(Semaphore::with_policy(1, AbandonPolicy::Reclaim));
    let permit: OwnedSemaphorePermit = block_on(tracked(sem.clone().acquire_owned())).unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits, "was: 2 holders of 1 permit");
    assert_eq!(sem.statistics().abandoned().count(), 0);
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_moved_owned_token_is_not_reclaimed_while_in_use() {
    let limiter = CapacityLimiter::with_policy(1, AbandonPolicy::Reclaim);
    let token = block_on(tracked({
        let limiter = limiter.clone();
        async move { limiter.acquire().await.unwrap().into_owned() }
    }));
    assert_eq!(limiter.try_acquire().unwrap_err(), TryAcquireError::NoPermits, "was: 2 holders of 1 token");
    drop(token);
    assert_eq!(limiter.available_tokens(), 1);
}

// Item 5: a leaked 0-permit piece holds nothing; a broken limiter has nothing available.

#[test]
fn a_leaked_split_zero_piece_breaks_nothing() {
    let sem = Arc::new(Semaphore::new(2));
    block_on(tracked({
        let sem = sem.clone();
        async move {
            let mut permit = sem.acquire().await.unwrap();
            std::mem::forget(permit.split(0).unwrap());
            // Everything split off: the emptied permit is leaked with 0 permits.
            let all = permit.split(1).unwrap();
            std::mem::forget(permit);
            drop(all);
        }
    }));
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_broken_limiter_reports_no_available_tokens() {
    let limiter = CapacityLimiter::new(2);
    block_on(tracked({
        let limiter = limiter.clone();
        async move { std::mem::forget(limiter.acquire().await.unwrap()) }
    }));
    assert!(matches!(limiter.try_acquire(), Err(TryAcquireError::Broken(_))));
    assert_eq!(limiter.available_tokens(), 0, "was 1: what try_acquire would not give");
}

// Item 6: a panicking `T: Debug` does not keep the mutex.

struct PanickyDebug;
impl fmt::Debug for PanickyDebug {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Debug panicked")
    }
}

#[test]
fn a_panicking_debug_of_the_data_leaves_the_mutex_unlocked() {
    let mutex = Mutex::new(PanickyDebug);
    assert!(catch_unwind(AssertUnwindSafe(|| format!("{mutex:?}"))).is_err());
    assert!(!mutex.is_broken());
    assert!(mutex.try_lock().is_ok(), "was WouldBlock for ever");
}

// Item 7: a waker dropped under the lot's lock.

/// A waker that owns a permit of the semaphore its task waits on: dropping the last
/// handle to it releases that permit.
struct PermitWaker(#[allow(dead_code)] StdMutex<Option<OwnedSemaphorePermit>>);
impl Wake for PermitWaker {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_waker_whose_drop_releases_a_permit_is_dropped_outside_the_lock() {
    let sem = Arc::new(Semaphore::new(1));
    let permit = sem.clone().try_acquire_owned().unwrap();
    let waker = Waker::from(Arc::new(PermitWaker(StdMutex::new(Some(permit)))));
    let mut acquire = Box::pin(sem.acquire());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(acquire.as_mut().poll(&mut cx).is_pending());
    drop(waker); // the queue's clone is now the last handle
    // Leaving the queue drops that clone, which releases the permit. Under the lock
    // this self-deadlocked (tokio #5429).
    drop(acquire);
    assert_eq!(sem.available_permits(), 1);
}

// Item 8: a panicking waker during an exit does not leave other holds unabandoned.

struct PanickyWaker;
impl Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panicked");
    }
}

#[test]
fn an_exit_abandons_every_hold_even_when_a_wake_panics() {
    let (first, second) = (Arc::new(Mutex::new(1)), Arc::new(Mutex::new(2)));
    let mut task = Box::pin(tracked({
        let (first, second) = (first.clone(), second.clone());
        async move {
            std::mem::forget(first.lock().await.unwrap());
            std::mem::forget(second.lock().await.unwrap());
            std::future::pending::<()>().await;
        }
    }));
    assert!(Polled::new(task.as_mut()).is_pending());
    // A waiter of the first mutex whose waker panics, and a plain one of the second.
    let panicky = Waker::from(Arc::new(PanickyWaker));
    let mut on_first = Box::pin(first.lock());
    assert!(on_first.as_mut().poll(&mut std::task::Context::from_waker(&panicky)).is_pending());
    let mut on_second = Polled::new(second.lock());
    assert!(on_second.is_pending());
    // The cancelled task's exit abandons both; the panic comes out after that.
    assert!(catch_unwind(AssertUnwindSafe(|| drop(task))).is_err());
    assert!(first.is_broken());
    assert!(second.is_broken(), "was: neither broken nor released");
    assert_eq!(on_second.wakes(), 1);
    assert_eq!(common::broken(on_second.ready()).reason(), AbandonReason::Cancelled);
}

#[test]
fn a_break_wakes_every_waiter_even_when_one_wake_panics() {
    let mutex = Arc::new(Mutex::new(()));
    let mut leaker = Box::pin(tracked({
        let mutex = mutex.clone();
        async move {
            std::mem::forget(mutex.lock().await.unwrap());
            std::future::pending::<()>().await
        }
    }));
    assert!(Polled::new(leaker.as_mut()).is_pending());
    let panicky = Waker::from(Arc::new(PanickyWaker));
    let mut first = Box::pin(mutex.lock());
    assert!(first.as_mut().poll(&mut std::task::Context::from_waker(&panicky)).is_pending());
    let mut second = Polled::new(mutex.lock());
    assert!(second.is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| drop(leaker))).is_err());
    assert_eq!(second.wakes(), 1, "the waiter behind the panicking one was woken too");
    common::broken(second.ready());
}

/// A hand-off made while the thread unwinds (a permit dropped by the unwind) to a waiter
/// whose waker panics: that second panic is dropped, not raised, since raising it during
/// an unwind aborts the process. (One waker takes a shortcut past the panic-catching loop
/// when nothing unwinds; this checks that it is not taken when something does.)
#[test]
fn a_hand_off_during_an_unwind_survives_a_waker_that_panics() {
    let sem = Semaphore::new(1);
    let permit = sem.try_acquire().unwrap();
    let panicky = Waker::from(Arc::new(PanickyWaker));
    let mut waiter = Box::pin(sem.acquire());
    assert!(waiter.as_mut().poll(&mut std::task::Context::from_waker(&panicky)).is_pending());
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _permit = permit;
        panic!("unrelated");
    }));
    assert!(unwound.is_err(), "the unwind's own panic comes out; the process did not abort");
    let granted = waiter.as_mut().poll(&mut std::task::Context::from_waker(Waker::noop()));
    assert!(matches!(granted, std::task::Poll::Ready(Ok(_))), "the waiter was handed the permit");
}

// Item 9: a complete critical section run during an unrelated unwind breaks nothing.

struct PushOnDrop<'a>(&'a Mutex<Vec<u8>>, &'a StdMutex<Vec<u8>>);
impl Drop for PushOnDrop<'_> {
    fn drop(&mut self) {
        self.0.try_lock().unwrap().push(1);
        self.1.lock().unwrap().push(1);
    }
}

#[test]
fn a_section_run_by_a_drop_during_an_unwind_breaks_nothing() {
    let (mutex, std_mutex) = (Mutex::new(Vec::new()), StdMutex::new(Vec::new()));
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _push = PushOnDrop(&mutex, &std_mutex);
        panic!("unrelated");
    }));
    assert!(unwound.is_err());
    assert!(!std_mutex.is_poisoned(), "std's rule");
    assert!(!mutex.is_broken(), "was broken as Panicked");
    assert_eq!(*mutex.try_lock().unwrap(), [1]);
}

#[test]
fn after_a_section_run_during_an_unwind_a_panic_inside_the_next_section_breaks() {
    let (mutex, std_mutex) = (Mutex::new(Vec::new()), StdMutex::new(Vec::new()));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _push = PushOnDrop(&mutex, &std_mutex);
        panic!("unrelated");
    }));
    assert!(!mutex.is_broken());
    // The mark of the hold taken while unwinding must not excuse the next holder.
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _guard = mutex.try_lock().unwrap();
        panic!("inside the section");
    }));
    assert!(unwound.is_err());
    assert!(matches!(mutex.try_lock(), Err(TryLockError::Broken(_))));
}
