//! Mutex/Lock semantics from DESIGN.md sections 1-2, each on tokio's multi-thread runtime
//! and on futures' thread pool, plus tokio's own Mutex behaviours.

mod common;

use std::sync::Arc;
use std::task::Poll;

use futures::channel::oneshot;
use ownsync::{
    AbandonReason, AcquireError, Lock, Mutex, MutexGuard, OwnedMutexGuard, ReleaseError, TryLockError,
    current_owner, tracked,
};

use common::{Polled, Rt, broken};

/// Runs a tracked task that locks `mutex`, reports in, waits for `go`, then runs `then`
/// with its guard; returns (owner id, go sender, task).
fn holder_task<R: Rt>(
    rt: &R,
    mutex: &Arc<Mutex<u32>>,
    then: impl FnOnce(MutexGuard<'_, u32>) + Send + 'static,
) -> (ownsync::OwnerId, oneshot::Sender<()>, common::Task<()>) {
    let (locked_tx, locked_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let mutex = mutex.clone();
    let task = tracked(async move {
        let guard = mutex.lock().await.unwrap();
        locked_tx.send(()).unwrap();
        let _ = go_rx.await;
        then(guard);
    });
    let owner = task.owner();
    let handle = rt.spawn(task);
    rt.block_on(locked_rx).unwrap();
    (owner, go_tx, handle)
}

fn leaked_guard_owner_completes<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::with_name(0, "config"));
    let (owner, go, task) = holder_task(rt, &mutex, |guard| std::mem::forget(guard));
    assert_eq!(mutex.owner(), Some(owner));
    let mut parked = Polled::new(mutex.lock());
    assert!(parked.is_pending());
    go.send(()).unwrap();
    rt.block_on(task.join()).expect("the holder completes");

    assert_eq!(parked.wakes(), 1, "the parked waiter is woken by the owner's exit");
    let err = broken(parked.ready());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    let site = err.site().expect("the site of the leaked lock");
    assert_eq!(
        err.to_string(),
        format!("mutex \"config\" is broken: {owner} exited while holding it (taken at {site})")
    );
    assert_eq!((site.file(), site.line()), (file!(), 28), "the lock() in holder_task");
    // Every later acquire fails the same way, at once, from every entry point.
    assert_eq!(broken(rt.block_on(mutex.lock())), err);
    assert_eq!(broken(mutex.blocking_lock()), err);
    assert_eq!(broken(rt.block_on(mutex.clone().lock_owned())), err);
    assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::Broken(err.clone()));
    assert!(mutex.is_broken());
    assert_eq!(mutex.statistics().broken(), Some(&err));
}

fn leaked_guard_owner_cancelled<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = oneshot::channel();
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            std::mem::forget(mutex.lock().await.unwrap());
            locked_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        }
    });
    let owner = task.owner();
    let handle = rt.spawn(task);
    rt.block_on(locked_rx).unwrap();
    let mut parked = Polled::new(mutex.lock());
    assert!(parked.is_pending());
    assert_eq!(rt.block_on(handle.abort().join()), None);
    let err = broken(parked.ready());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Cancelled));
    assert!(err.to_string().contains("was cancelled while holding it (taken at "), "{err}");
}

fn guard_dropped_by_cancellation_releases<R: Rt>(rt: &R) {
    // Not a leak: the cancelled task's guard drops with it, as in tokio.
    let mutex = Arc::new(Mutex::new(0));
    let (_owner, _go, task) = holder_task(rt, &mutex, |_guard| unreachable!("aborted before go"));
    let mut parked = Polled::new(mutex.lock());
    assert!(parked.is_pending());
    rt.block_on(task.abort().join());
    assert_eq!(parked.wakes(), 1);
    assert!(parked.ready().is_ok());
    assert!(!mutex.is_broken());
}

fn guard_dropped_in_panic_breaks<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let (owner, go, task) = holder_task(rt, &mutex, |mut guard| {
        *guard = 1; // half-updated...
        panic!("critical section failed");
    });
    let mut parked = Polled::new(mutex.lock());
    assert!(parked.is_pending());
    go.send(()).unwrap();
    assert_eq!(rt.block_on(task.join()), None, "the task panicked");
    let err = broken(parked.ready());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Panicked));
    assert!(err.to_string().contains("panicked while holding it (taken at "), "{err}");
}

fn panic_while_holding_across_await_breaks<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            let _guard = mutex.lock().await.unwrap();
            locked_tx.send(()).unwrap();
            let _ = go_rx.await;
            panic!("after an await, guard held");
        }
    });
    let owner = task.owner();
    let handle = rt.spawn(task);
    rt.block_on(locked_rx).unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(rt.block_on(handle.join()), None);
    let err = broken(rt.block_on(mutex.lock()));
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Panicked));
}

fn untracked_tasks_on_one_thread_never_see_would_deadlock<R: Rt>(rt: &R) {
    // Many untracked tasks share each worker thread: none of them is the thread.
    let mutex = Arc::new(Mutex::new(0u32));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let mutex = mutex.clone();
            rt.spawn(async move {
                for _ in 0..20 {
                    let mut guard = mutex.lock().await.expect("never WouldDeadlock or Broken");
                    *guard += 1;
                    yield_now().await; // hold across a suspension: others queue behind
                    drop(guard);
                }
            })
        })
        .collect();
    for task in tasks {
        rt.block_on(task.join()).unwrap();
    }
    assert_eq!(*rt.block_on(mutex.lock()).unwrap(), 64 * 20);
}

/// Returns `Pending` once, waking itself: lets other tasks on this worker run.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn fifo_order_of_sixteen_tasks<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(Vec::new()));
    let guard = mutex.try_lock().unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let m = mutex.clone();
        tasks.push(rt.spawn(async move { m.lock().await.unwrap().push(i) }));
        // The event we wait on: task i is queued (it cannot get the lock; we hold it).
        while mutex.statistics().waiters() != i + 1 {
            std::thread::yield_now();
        }
    }
    drop(guard);
    for task in tasks {
        rt.block_on(task.join()).unwrap();
    }
    assert_eq!(*mutex.try_lock().unwrap(), (0..16).collect::<Vec<_>>());
}

/// The innermost tracked scope owns what it takes while it runs; once it completes,
/// what it still holds passes to the enclosing scope (DESIGN.md 2b), whose exit with it
/// breaks the mutex in its own name.
fn nested_tracked_innermost_owns<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let m = mutex.clone();
    let inner = tracked(async move {
        let guard = m.lock().await.unwrap();
        assert_eq!(m.owner(), Some(ownsync::current_owner()));
        std::mem::forget(guard);
        ownsync::current_owner()
    });
    let inner_id = inner.owner();
    let outer = tracked(inner);
    let outer_id = outer.owner();
    assert_ne!(outer_id, inner_id);
    assert_eq!(rt.block_on(rt.spawn(outer).join()).unwrap(), inner_id);
    assert_eq!(broken(rt.block_on(mutex.lock())).owner(), outer_id);
}

/// DESIGN.md 2b: a self-wait is an error only on a strict mutex (round 1 refused it on
/// every mutex; now a plain one waits, as tokio does: see `tests/tasks_are_not_trio.rs`).
fn would_deadlock_for_the_holding_task<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0).strict());
    let m = mutex.clone();
    let result = rt.block_on(
        rt.spawn(tracked(async move {
            let _guard = m.lock().await.unwrap();
            (m.lock().await.err(), m.try_lock().err())
        }))
        .join(),
    );
    assert_eq!(result, Some((Some(AcquireError::WouldDeadlock), Some(TryLockError::WouldDeadlock))));
    assert!(!mutex.is_broken() && !mutex.is_locked());
}

/// DESIGN.md 2b (round 1 broke the mutex here): an owned guard returned from its task
/// may have moved, so the acquirer's exit does not break it. It stays held, shows as
/// orphaned, and its drop, wherever, releases it.
fn an_owned_guard_returned_from_its_task_stays_held_and_is_orphaned<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let m = mutex.clone();
    let task = tracked(async move { m.lock_owned().await.unwrap() });
    let mut guard: OwnedMutexGuard<i32> = rt.block_on(rt.spawn(task).join()).unwrap();
    assert!(!mutex.is_broken());
    assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldBlock)));
    assert_eq!(mutex.statistics().orphaned(), 1);
    assert!(format!("{mutex:?}").contains("orphaned: 1"));
    *guard += 1;
    drop(guard);
    assert_eq!(mutex.statistics().orphaned(), 0);
    assert_eq!(*rt.block_on(mutex.lock()).unwrap(), 1);
}

on_runtimes!(
    leaked_guard_owner_completes,
    leaked_guard_owner_cancelled,
    guard_dropped_by_cancellation_releases,
    guard_dropped_in_panic_breaks,
    panic_while_holding_across_await_breaks,
    untracked_tasks_on_one_thread_never_see_would_deadlock,
    fifo_order_of_sixteen_tasks,
    nested_tracked_innermost_owns,
    would_deadlock_for_the_holding_task,
    an_owned_guard_returned_from_its_task_stays_held_and_is_orphaned,
);

#[test]
fn ten_thousand_parked_waiters_all_woken_on_break() {
    const N: usize = 10_000;
    let mutex = Arc::new(Mutex::new(()));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            std::mem::forget(mutex.blocking_lock().unwrap());
            locked_tx.send(current_owner()).unwrap();
            go_rx.recv().unwrap();
        }
    });
    let owner = locked_rx.recv().unwrap();
    let mut waiters: Vec<_> = (0..N).map(|_| Polled::new(mutex.lock())).collect();
    assert!(waiters.iter_mut().all(Polled::is_pending));
    assert_eq!(mutex.statistics().waiters(), N);
    go_tx.send(()).unwrap();
    holder.join().unwrap(); // the thread ends holding the lock
    for waiter in &mut waiters {
        assert_eq!(waiter.wakes(), 1);
        let err = broken(waiter.ready());
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    }
    assert_eq!(mutex.statistics().waiters(), 0);
}

#[test]
fn thread_owner_exits_holding() {
    let mutex = Arc::new(Mutex::with_name(0, "state"));
    let owner = std::thread::Builder::new()
        .name("leaker".into())
        .spawn({
            let mutex = mutex.clone();
            move || {
                std::mem::forget(mutex.blocking_lock().unwrap());
                current_owner()
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let err = broken(mutex.blocking_lock());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    assert_eq!(
        err.to_string(),
        format!(
            "mutex \"state\" is broken: thread#{} (leaker) exited while holding it (taken at {})",
            owner.number(),
            err.site().unwrap()
        )
    );
}

#[test]
fn blocking_lock_twice_by_one_thread_would_deadlock() {
    // Strict mode (2b): a plain mutex waits here, as tokio's does.
    let mutex = Mutex::new(0).strict();
    let _guard = mutex.blocking_lock().unwrap();
    assert_eq!(mutex.blocking_lock().unwrap_err(), AcquireError::WouldDeadlock);
}

/// `threads` threads, each adding 1 to the mutex `times` times through `blocking_lock`.
fn blocking_incrementers(
    mutex: &Arc<Mutex<u64>>,
    threads: usize,
    times: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let mutex = mutex.clone();
            std::thread::spawn(move || {
                for _ in 0..times {
                    *mutex.blocking_lock().unwrap() += 1;
                }
            })
        })
        .collect()
}

#[test]
fn blocking_lock_contended_between_threads_counts_every_increment() {
    let mutex = Arc::new(Mutex::new(0u64));
    let threads = blocking_incrementers(&mutex, 4, 2_000);
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(mutex.into_inner_arc(), 8_000);
}

/// Eventual fairness keeps every increment of threads and tasks mixed on one mutex.
#[test]
fn an_eventually_fair_mutex_counts_every_increment_of_threads_and_tasks() {
    let mutex = Arc::new(Mutex::new(0u64).eventually_fair());
    let threads = blocking_incrementers(&mutex, 3, 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let mutex = mutex.clone();
                tokio::spawn(tracked(async move {
                    for _ in 0..500 {
                        *mutex.lock().await.unwrap() += 1;
                        tokio::task::yield_now().await;
                    }
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(mutex.into_inner_arc(), 8_000);
}

/// A waiter gets the lock past a thread that re-locks in a loop, never pausing (which
/// stops only once the waiter got it): the woken waiter's tries and the fair hand-off
/// due every 0.5 ms, between real threads. (The hand-off itself is pinned by the unit
/// tests of `sem.rs`, where a barging win cannot hide its absence.)
#[test]
fn an_eventually_fair_mutex_serves_a_waiter_past_a_thread_that_relocks_without_pause() {
    let mutex = Arc::new(Mutex::new(false).eventually_fair());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let hog = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            let mut rounds = 0u64;
            loop {
                let served = mutex.blocking_lock().unwrap();
                if *served {
                    return rounds;
                }
                rounds += 1;
                if rounds == 1 {
                    started_tx.send(()).unwrap();
                }
            }
        }
    });
    started_rx.recv().unwrap();
    *mutex.blocking_lock().unwrap() = true;
    assert!(hog.join().unwrap() >= 1);
}

/// Eventual fairness changes who may take a free lock, nothing of abandonment: a thread
/// that panics holding it breaks it for the waiter.
#[test]
fn an_eventually_fair_mutex_still_breaks_when_its_holder_panics() {
    let mutex = Arc::new(Mutex::new(0).eventually_fair());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            let _guard = mutex.blocking_lock().unwrap();
            locked_tx.send(current_owner()).unwrap();
            go_rx.recv().unwrap();
            panic!("mid-update");
        }
    });
    let owner = locked_rx.recv().unwrap();
    let waiter = std::thread::spawn({
        let mutex = mutex.clone();
        move || mutex.blocking_lock().map(|_| ())
    });
    while mutex.statistics().waiters() == 0 && !waiter.is_finished() {
        std::thread::yield_now();
    }
    go_tx.send(()).unwrap();
    assert!(holder.join().is_err());
    let err = match waiter.join().unwrap() {
        Err(AcquireError::Broken(err)) => err,
        other => panic!("expected a break, got {other:?}"),
    };
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Panicked));
}

trait IntoInnerArc<T> {
    fn into_inner_arc(self) -> T;
}
impl<T> IntoInnerArc<T> for Arc<Mutex<T>> {
    fn into_inner_arc(self) -> T {
        Arc::try_unwrap(self).ok().expect("sole owner").into_inner()
    }
}

#[test]
fn fifo_order_of_sixteen_queued_waiters() {
    let mutex = Mutex::new(());
    let guard = mutex.try_lock().unwrap();
    let mut waiters: Vec<_> = (0..16).map(|_| Polled::new(mutex.lock())).collect();
    assert!(waiters.iter_mut().all(Polled::is_pending));
    drop(guard);
    for i in 0..16 {
        assert_eq!(waiters[i].wakes(), 1, "waiter {i} is next");
        let guard = waiters[i].ready().unwrap();
        assert!(waiters[i + 1..].iter().all(|w| w.wakes() == 0), "nobody behind {i} is woken");
        assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::WouldBlock);
        drop(guard);
    }
    assert!(!mutex.is_locked());
}

#[test]
fn dropped_queued_acquire_leaves_and_keeps_the_order() {
    let mutex = Mutex::new(());
    let guard = mutex.try_lock().unwrap();
    let mut first = Polled::new(mutex.lock());
    let mut second = Polled::new(mutex.lock());
    let mut third = Polled::new(mutex.lock());
    assert!(first.is_pending() && second.is_pending() && third.is_pending());
    drop(second);
    assert_eq!(mutex.statistics().waiters(), 2);
    drop(guard);
    let held = first.ready().unwrap();
    assert!(third.is_pending());
    drop(held);
    assert_eq!(third.wakes(), 1);
    drop(third.ready().unwrap());
    assert!(!mutex.is_locked());
}

#[test]
fn dropped_granted_acquire_passes_the_lock_on() {
    let mutex = Mutex::new(());
    let guard = mutex.try_lock().unwrap();
    let mut granted = Polled::new(mutex.lock());
    let mut next = Polled::new(mutex.lock());
    assert!(granted.is_pending() && next.is_pending());
    drop(guard); // hands the lock to `granted`, which never runs again
    assert_eq!(granted.wakes(), 1);
    assert!(mutex.is_locked());
    drop(granted);
    assert_eq!(next.wakes(), 1, "the grant passed on");
    drop(next.ready().unwrap());
    assert!(!mutex.is_locked());
}

#[test]
fn repoll_with_a_new_waker_is_the_one_woken() {
    let mutex = Mutex::new(());
    let guard = mutex.try_lock().unwrap();
    let mut waiter = Polled::new(mutex.lock());
    assert!(waiter.is_pending());
    let (poll, new_waker) = waiter.poll_with_new_waker();
    assert!(poll.is_pending());
    drop(guard);
    assert_eq!(new_waker.count(), 1);
    assert!(matches!(waiter.poll(), Poll::Ready(Ok(_))));
}

#[test]
fn no_barging_past_a_queued_waiter() {
    let mutex = Mutex::new(());
    let guard = mutex.try_lock().unwrap();
    let mut waiter = Polled::new(mutex.lock());
    assert!(waiter.is_pending());
    drop(guard);
    // Handed over: the lock never became free in between.
    assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::WouldBlock);
    let mut late = Polled::new(mutex.lock());
    assert!(late.is_pending());
    drop(waiter.ready().unwrap());
    drop(late.ready().unwrap());
}

#[test]
fn manual_acquire_release_checks_the_owner() {
    let lock = Arc::new(Lock::default());
    lock.blocking_acquire().unwrap();
    let me = current_owner();
    assert_eq!(lock.owner(), Some(me));
    let other = std::thread::spawn({
        let lock = lock.clone();
        move || (lock.release(), current_owner())
    });
    let (result, other_id) = other.join().unwrap();
    assert_eq!(result, Err(ReleaseError::NotOwner { holder: Some(me), caller: other_id }));
    assert!(lock.is_locked(), "the hold is untouched");
    assert_eq!(lock.blocking_acquire(), Err(AcquireError::WouldDeadlock));
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotHeld));
    assert!(!lock.is_locked());
}

#[test]
fn manual_acquire_never_released_by_its_task_breaks() {
    let lock = Arc::new(Lock::default());
    let task = tracked({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    let owner = task.owner();
    futures::executor::block_on(task);
    let err = broken(lock.blocking_acquire());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    // The break settled the dead task's hold: nobody holds it now (there is no guard;
    // `review_defects_r3` repairs it).
    assert_eq!(lock.release(), Err(ReleaseError::NotHeld));
    assert!(lock.is_broken());
}

#[test]
fn anonymous_guard_dropped_in_panic_breaks_with_the_thread_named() {
    let mutex = Arc::new(Mutex::new(0));
    let result = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            // An untracked async acquire is anonymous, but a panic still breaks it.
            let _guard = futures::executor::block_on(mutex.lock()).unwrap();
            let me = current_owner();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _moved = _guard;
                panic!("boom");
            }))
            .unwrap_err();
            me
        }
    })
    .join()
    .unwrap();
    let err = broken(mutex.blocking_lock());
    assert_eq!((err.owner(), err.reason()), (result, AbandonReason::Panicked));
}

// ---- tokio::sync::Mutex behaviours ----

#[test]
fn try_lock_map_try_map_get_mut_into_inner() {
    let mut mutex = Mutex::new((1, String::from("a")));
    {
        let guard = mutex.try_lock().unwrap();
        assert_eq!(guard.0, 1);
        assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::WouldBlock);
        let mut text = MutexGuard::map(guard, |pair| &mut pair.1);
        text.push('b');
        assert!(mutex.is_locked());
    }
    let guard = mutex.try_lock().unwrap();
    let guard = MutexGuard::try_map(guard, |_| None::<&mut u8>).unwrap_err();
    assert!(std::ptr::eq(MutexGuard::mutex(&guard), &mutex));
    drop(guard);
    mutex.get_mut().0 = 5;
    assert_eq!(mutex.into_inner(), (5, String::from("ab")));
}

#[test]
fn owned_guards_keep_the_mutex_alive() {
    let mutex = Arc::new(Mutex::new(1));
    let guard = futures::executor::block_on(mutex.clone().lock_owned()).unwrap();
    assert!(Arc::ptr_eq(guard.mutex(), &mutex));
    assert!(mutex.clone().try_lock_owned().is_err());
    drop(guard);
    let guard = mutex.clone().blocking_lock_owned().unwrap();
    assert_eq!(*guard, 1);
}

#[test]
fn default_from_debug_display() {
    let mutex: Mutex<u8> = Mutex::default();
    assert_eq!(format!("{mutex:?}"), "Mutex { data: 0, holder: None }");
    let named = Mutex::with_name(3, "n");
    let (guard, line) = (named.blocking_lock().unwrap(), line!());
    assert_eq!(format!("{guard} {guard:?}"), "3 3");
    assert_eq!(
        format!("{named:?}"),
        format!(
            "Mutex {{ name: \"n\", data: <locked>, holder: Some({}), taken_at: {}:{line}:32 }}",
            current_owner(),
            file!()
        )
    );
    drop(guard);
    assert_eq!(*Mutex::from(7).try_lock().unwrap(), 7);
}

#[test]
fn statistics_show_holder_and_waiters() {
    let mutex = Mutex::new(());
    let guard = mutex.blocking_lock().unwrap();
    let mut waiter = Polled::new(mutex.lock());
    assert!(waiter.is_pending());
    let stats = mutex.statistics();
    assert!(stats.is_locked());
    assert_eq!(stats.holder(), Some(current_owner()));
    assert_eq!(stats.waiters(), 1);
    drop(guard);
    drop(waiter.ready().unwrap());
    assert_eq!(mutex.statistics().holder(), None, "the waiter was anonymous");
}

#[test]
fn send_sync_bounds_match_tokio() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Mutex<u8>>();
    send_sync::<Mutex<std::cell::Cell<u8>>>(); // Send + !Sync data: the mutex is Sync
    send_sync::<MutexGuard<'static, u8>>();
    send::<MutexGuard<'static, std::cell::Cell<u8>>>();
    send_sync::<OwnedMutexGuard<u8>>();
    send_sync::<ownsync::MappedMutexGuard<'static, u8>>();
    send_sync::<Lock>();
    fn future_is_send<F: std::future::Future + Send>(_: F) {}
    let mutex = Mutex::new(1);
    future_is_send(mutex.lock());
    future_is_send(Arc::new(Mutex::new(1)).lock_owned());
    future_is_send(tracked(async {}));
}

/// The futurelock shape (Oxide RFD 609): a task's first lock future is granted the mutex
/// but no longer polled while the task waits for the mutex again. The grant makes the
/// task the holder at once, so the second wait shows as a self-wait.
#[test]
fn a_grant_to_a_future_no_longer_polled_shows_the_futurelock_as_a_self_wait() {
    let mutex = Mutex::new(0);
    let outside = mutex.try_lock().unwrap();
    let mut task = common::Polled::new(tracked(async {
        let mut first = std::pin::pin!(mutex.lock());
        assert!(futures::poll!(first.as_mut()).is_pending()); // queued, then left alone
        *mutex.lock().await.unwrap() += 1; // the task waits for the mutex again
    }));
    assert!(task.is_pending());
    assert_eq!(mutex.statistics().self_waits(), 0, "the outside holder has it");
    drop(outside); // FIFO: granted to the first future, which is never polled again
    let stats = mutex.statistics();
    assert!(stats.holder().is_some_and(|holder| holder.is_task()), "{stats:?}");
    assert_eq!(stats.self_waits(), 1, "the futurelock is visible");
    drop(task); // cancelled: the grant is passed on, and nobody holds it any more
    assert_eq!(mutex.statistics().holder(), None);
    assert!(mutex.try_lock().is_ok());
}

/// A grant passed on by a cancelled waiter does not leave its task recorded as holder: a
/// strict mutex must not refuse that task later (`WouldDeadlock`) while others hold it.
#[test]
fn a_cancelled_grantee_is_not_left_as_the_holder() {
    let mutex = Mutex::new(0).strict();
    let outside = mutex.try_lock().unwrap();
    let mut waiter = common::Polled::new(tracked(async { drop(mutex.lock().await.unwrap()) }));
    assert!(waiter.is_pending());
    drop(outside); // granted to the waiter...
    drop(waiter); // ...which is cancelled before it runs: passed on, holder forgotten
    assert_eq!(mutex.statistics().holder(), None);
    let _other = mutex.try_lock().unwrap();
    let mut again = common::Polled::new(tracked(async { mutex.lock().await.map(drop) }));
    assert!(again.is_pending(), "waits, as for any other holder: no false WouldDeadlock");
}
