//! `ownsync::tokio::track_all`: every task of a runtime is an owner, through tokio's task
//! hooks. Needs `--cfg tokio_unstable`:
//! `RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable cargo test --features tokio --test track_all`
//!
//! Most scenarios run on a current-thread runtime, where a task's terminate hook runs
//! before the task that awaits its `JoinHandle` is polled again, so a `try_*` right after
//! the join sees the break (on a multi-thread runtime the awaiting task may run first: the
//! multi-thread tests wait with `acquire().await`, which a break wakes).
#![cfg(all(feature = "tokio", tokio_unstable))]

use std::sync::Arc;
use std::sync::mpsc;

use ownsync::{
    AbandonReason, AcquireError, BrokenResourceError, Mutex, OwnerId, Semaphore, TryAcquireError,
    TryLockError, current_owner, tracked,
};

fn current_thread() -> tokio::runtime::Runtime {
    ownsync::tokio::track_all(&mut tokio::runtime::Builder::new_current_thread())
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    ownsync::tokio::track_all(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn semaphore_broken(sem: &Semaphore) -> BrokenResourceError {
    match sem.try_acquire() {
        Err(TryAcquireError::Broken(err)) => err,
        other => panic!("expected a broken semaphore, got {other:?}"),
    }
}

fn mutex_broken<T: std::fmt::Debug>(mutex: &Mutex<T>) -> BrokenResourceError {
    match mutex.try_lock() {
        Err(TryLockError::Broken(err)) => err,
        other => panic!("expected a broken mutex, got {other:?}"),
    }
}

/// The headline: a plain `tokio::spawn` task leaks a pool permit and ends. Every waiter
/// gets an error naming that task, instead of the drain hanging.
#[test]
fn a_plain_spawned_task_that_leaks_a_permit_breaks_the_semaphore_naming_it() {
    current_thread().block_on(async {
        let pool = Arc::new(Semaphore::new(2));
        let leaker = tokio::spawn({
            let pool = pool.clone();
            async move {
                std::mem::forget(pool.acquire().await.unwrap());
                current_owner()
            }
        });
        let task = leaker.await.unwrap();
        assert!(task.is_task(), "a tokio task is an owner of its own: {task}");
        let err = semaphore_broken(&pool);
        assert_eq!((err.owner(), err.reason()), (task, AbandonReason::Exited));
        // The graceful-shutdown drain fails at once too.
        assert!(matches!(pool.acquire_many(2).await, Err(AcquireError::Broken(_))));
    });
}

/// The same on a multi-thread runtime, where the leaker runs on a worker.
#[test]
fn a_leak_on_a_worker_thread_breaks_for_the_waiter_on_another() {
    multi_thread().block_on(async {
        let pool = Arc::new(Semaphore::new(1));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let leaker = tokio::spawn({
            let pool = pool.clone();
            async move {
                let permit = pool.acquire().await.unwrap();
                tx.send(current_owner()).unwrap();
                tokio::task::yield_now().await;
                std::mem::forget(permit);
            }
        });
        let task = rx.await.unwrap();
        // Waits for the permit: the leaker's end fails the wait (the test would hang,
        // not fail, without the hooks: the failsafe timeout turns that into a failure).
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), pool.acquire()).await;
        let Ok(Err(AcquireError::Broken(err))) = waited else { panic!("expected Broken, got {waited:?}") };
        assert_eq!(err.owner(), task);
        leaker.await.unwrap();
    });
}

/// A task that panics while its mutex guard is alive: the guard, dropped while the task
/// unwinds, breaks the mutex `Panicked`, naming the task (without the hooks it named the
/// worker thread).
#[test]
fn a_panicking_task_holding_a_mutex_guard_breaks_it_panicked_naming_the_task() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let (tx, rx) = mpsc::channel();
        let panicker = tokio::spawn({
            let mutex = mutex.clone();
            async move {
                let mut guard = mutex.lock().await.unwrap();
                *guard += 1;
                tx.send(current_owner()).unwrap();
                tokio::task::yield_now().await;
                panic!("half-way through the update");
            }
        });
        assert!(panicker.await.unwrap_err().is_panic());
        let task = rx.recv().unwrap();
        assert!(task.is_task(), "the task, not the thread that ran it: {task}");
        let err = mutex_broken(&mutex);
        assert_eq!((err.owner(), err.reason()), (task, AbandonReason::Panicked));
    });
}

/// A task that leaked a guard and then panicked: the leaked hold breaks at the task's
/// end. tokio's terminate hook does not say the task panicked, so the reason is `Exited`
/// (documented on `track_all`).
#[test]
fn a_guard_leaked_before_a_panic_breaks_at_the_tasks_end() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let (tx, rx) = mpsc::channel();
        let panicker = tokio::spawn({
            let mutex = mutex.clone();
            async move {
                std::mem::forget(mutex.lock().await.unwrap());
                tx.send(current_owner()).unwrap();
                panic!("after the leak");
            }
        });
        assert!(panicker.await.unwrap_err().is_panic());
        let err = mutex_broken(&mutex);
        assert_eq!((err.owner(), err.reason()), (rx.recv().unwrap(), AbandonReason::Exited));
    });
}

/// An aborted task is handled as a cancelled tracked task: a borrowed guard inside its
/// future is released when tokio drops the future (nothing breaks); a borrowed guard it
/// let out of its future (here, sent to the test) is still the task's, and its end
/// abandons it.
#[test]
fn an_aborted_task_releases_the_guards_in_its_future_and_abandons_the_ones_it_let_out() {
    let kept: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
    let let_out_mutex: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
    current_thread().block_on(async {
        let (tx, rx) = mpsc::channel();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _kept = kept.lock().await.unwrap();
            tx.send(let_out_mutex.lock().await.unwrap()).unwrap();
            started_tx.send(current_owner()).unwrap();
            std::future::pending::<()>().await;
        });
        let owner = started.await.unwrap();
        let let_out = rx.recv().unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The guard in the future was released by the drop, as in tokio.
        assert!(!kept.is_broken());
        drop(kept.try_lock().unwrap());
        // The one outside it is abandoned by the task's end (and its drop releases nothing).
        let err = mutex_broken(let_out_mutex);
        assert_eq!(err.owner(), owner);
        drop(let_out);
        assert!(let_out_mutex.is_broken());
    });
}

/// A task dropped with its runtime (shutdown) was cut short: what it still had
/// registered outside its future is abandoned as `Cancelled`.
#[test]
fn a_task_shut_down_with_its_runtime_abandons_as_cancelled() {
    let let_out: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
    let runtime = current_thread();
    let (tx, rx) = mpsc::channel();
    let owner = runtime.block_on(async move {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tx.send(let_out.lock().await.unwrap()).unwrap();
            started_tx.send(current_owner()).unwrap();
            std::future::pending::<()>().await;
        });
        started.await.unwrap()
    });
    let guard = rx.recv().unwrap();
    assert!(!let_out.is_broken(), "the task still runs");
    drop(runtime);
    let err = mutex_broken(let_out);
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Cancelled));
    drop(guard);
}

/// C1: an owned permit moved into another task is not broken by its acquirer's end: it
/// is orphaned (visible in statistics) and released by whoever drops it.
#[test]
fn an_owned_permit_moved_to_another_task_survives_its_acquirers_end() {
    current_thread().block_on(async {
        let pool = Arc::new(Semaphore::new(1));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
        let user = tokio::spawn(async move {
            let permit: ownsync::OwnedSemaphorePermit = rx.await.unwrap();
            go.await.unwrap();
            drop(permit);
        });
        let acquirer = tokio::spawn({
            let pool = pool.clone();
            async move { tx.send(pool.acquire_owned().await.unwrap()).unwrap() }
        });
        acquirer.await.unwrap();
        assert!(!pool.is_broken());
        assert_eq!(pool.statistics().orphaned(), 1, "its acquirer (a task now) ended while it was out");
        go_tx.send(()).unwrap();
        user.await.unwrap();
        assert_eq!(pool.statistics().orphaned(), 0);
        assert_eq!(pool.available_permits(), 1);
        // And a drain works, as with tokio.
        assert_eq!(pool.acquire_many(1).await.unwrap().num_permits(), 1);
    });
}

/// Nesting: a `tracked` scope inside a hooked task is its own owner (the innermost wins);
/// a completed scope passes what it holds to the task, whose end then decides; a
/// cancelled scope abandons as itself.
#[test]
fn tracked_scopes_nest_inside_a_hooked_task() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let passed = Arc::new(Mutex::new(0));
        let task = tokio::spawn({
            let (mutex, passed) = (mutex.clone(), passed.clone());
            async move {
                let task = current_owner();
                let scope = tracked(async { current_owner() });
                let scope_id = scope.owner();
                assert_eq!(scope.await, scope_id);
                assert_ne!(scope_id, task, "the innermost owner wins");
                // A guard returned from a scope is the task's: used, then released.
                let mut guard = tracked(async { mutex.lock().await }).await.unwrap();
                *guard += 1;
                drop(guard);
                assert!(!mutex.is_broken());
                // A guard returned from a scope and leaked: the task's end breaks it.
                std::mem::forget(tracked(async { passed.lock().await }).await.unwrap());
                // A cancelled scope abandons what it holds, as itself.
                let mut cancelled = Box::pin(tracked(async {
                    std::mem::forget(mutex.lock().await.unwrap());
                    std::future::pending::<()>().await
                }));
                let cancelled_id = cancelled.owner();
                assert!(futures::poll!(cancelled.as_mut()).is_pending());
                drop(cancelled);
                (task, cancelled_id)
            }
        });
        let (task, cancelled_id) = task.await.unwrap();
        let err = mutex_broken(&mutex);
        assert_eq!((err.owner(), err.reason()), (cancelled_id, AbandonReason::Cancelled));
        let err = mutex_broken(&passed);
        assert_eq!((err.owner(), err.reason()), (task, AbandonReason::Exited));
    });
}

/// `ownsync::tokio::spawn` on a hooked runtime: the tracked task answers for its leak
/// itself, as on any runtime (its end is an exit, not a hand-over to the hook's record).
#[test]
fn an_ownsync_spawned_task_is_its_own_owner_on_a_hooked_runtime() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let task = ownsync::tokio::spawn({
            let mutex = mutex.clone();
            async move {
                std::mem::forget(mutex.lock().await.unwrap());
                current_owner()
            }
        });
        let owner = task.await.unwrap();
        let err = mutex_broken(&mutex);
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    });
}

/// `block_in_place` runs its closure inside the task's poll: a blocking acquire there is
/// the task's (without the hooks, the worker thread's, which does not end).
#[test]
fn a_blocking_acquire_in_block_in_place_is_the_tasks() {
    multi_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let task = tokio::spawn({
            let mutex = mutex.clone();
            async move {
                let owner = current_owner();
                tokio::task::block_in_place(|| {
                    assert_eq!(current_owner(), owner);
                    std::mem::forget(mutex.blocking_lock().unwrap());
                });
                owner
            }
        });
        let owner = task.await.unwrap();
        assert!(owner.is_task(), "the task, not the worker thread: {owner}");
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), mutex.lock()).await;
        let Ok(Err(AcquireError::Broken(err))) = waited else { panic!("expected Broken, got {waited:?}") };
        assert_eq!(err.owner(), owner);
    });
}

/// `spawn_blocking` tasks are not polled through the hooks: their thread is their owner,
/// as without `track_all`, and nothing is recorded for them.
#[test]
fn a_spawn_blocking_task_is_owned_by_its_thread() {
    multi_thread().block_on(async {
        let owner: OwnerId = tokio::task::spawn_blocking(current_owner).await.unwrap();
        assert!(owner.is_thread());
    });
}

/// Many tasks taking turns on one mutex across yields, on two workers: each poll's owner
/// is set and restored exactly, so no hold is ever taken for another task's (a leaked
/// context would break the mutex when that task ended).
#[test]
fn many_tasks_taking_turns_break_nothing() {
    multi_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0u64));
        let pool = Arc::new(Semaphore::new(3));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (mutex, pool) = (mutex.clone(), pool.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _permit = pool.acquire().await.unwrap();
                        let mut guard = mutex.lock().await.unwrap();
                        tokio::task::yield_now().await;
                        *guard += 1;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*mutex.lock().await.unwrap(), 64 * 20);
        assert!(!pool.is_broken());
        assert_eq!(pool.available_permits(), 3);
    });
}

/// C1: between two polls of a task the thread is nobody's: the runtime's `block_on`
/// future (not a task) takes a guard right after a task's poll, and that task's end does
/// not abandon it.
#[test]
fn what_block_on_takes_between_task_polls_is_no_tasks() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
        let (polled_tx, polled) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            polled_tx.send(()).unwrap();
            go.await.unwrap();
        });
        polled.await.unwrap();
        let guard = mutex.lock().await.unwrap();
        go_tx.send(()).unwrap();
        task.await.unwrap();
        assert!(!mutex.is_broken(), "the ended task took block_on's guard for its own");
        drop(guard);
        drop(mutex.try_lock().unwrap());
    });
}

/// A borrowed guard of a `'static` mutex returned as a task's output is still the task's
/// when the task ends, so the end abandons it (documented, as for an outermost tracked
/// task): hand it to the awaiting owner before returning it, or return an owned guard.
#[test]
fn a_borrowed_guard_returned_from_a_task_must_be_handed_over_first() {
    use ownsync::HandOver;
    let returned: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
    let handed: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
    current_thread().block_on(async {
        let guard = tokio::spawn(async move { returned.lock().await.unwrap() }).await.unwrap();
        assert!(returned.is_broken(), "the task's end abandoned the guard it returned");
        drop(guard);

        // The awaiting code here is the thread's (a `block_on` future is not a task).
        let awaiting = current_owner();
        let mut guard = tokio::spawn(async move {
            let mut guard = handed.lock().await.unwrap();
            guard.hand_to(awaiting).unwrap();
            guard
        })
        .await
        .unwrap();
        *guard += 1;
        drop(guard);
        assert_eq!(*handed.lock().await.unwrap(), 1);

        let owned = Arc::new(Mutex::new(0));
        let guard = tokio::spawn({
            let owned = owned.clone();
            async move { owned.lock_owned().await.unwrap() }
        })
        .await
        .unwrap();
        assert!(!owned.is_broken(), "an owned guard moves: its acquirer's end is no evidence");
        drop(guard);
        drop(owned.try_lock().unwrap());
    });
}
