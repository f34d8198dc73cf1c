//! The `tokio` feature: tracked spawning, cooperative budgeting, and task-id identity
//! for untracked tokio tasks.
#![cfg(feature = "tokio")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::broken;
use ownsync::tokio::JoinSetExt;
use ownsync::{AbandonReason, AcquireError, CapacityLimiter, Lock, Mutex, TryAcquireError, TryLockError};
use tokio::sync::oneshot;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// A task that locks and unlocks an uncontended mutex in a loop never waits, so only the
/// cooperative budget can make it yield. On a current-thread runtime the other task runs
/// only if it does.
#[test]
fn a_tight_lock_loop_yields_to_other_tasks() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0u64));
        let other_ran = Arc::new(AtomicBool::new(false));
        let looping = tokio::spawn({
            let (mutex, other_ran) = (mutex.clone(), other_ran.clone());
            async move {
                for round in 0..100_000u64 {
                    *mutex.lock().await.unwrap() += 1;
                    if other_ran.load(Ordering::Acquire) {
                        return Some(round);
                    }
                }
                None
            }
        });
        tokio::spawn(async move { other_ran.store(true, Ordering::Release) });
        let yielded_at = looping.await.unwrap();
        // tokio's budget is 128 operations per poll.
        assert!(yielded_at.is_some_and(|round| round <= 1_000), "never yielded: {yielded_at:?}");
    });
}

#[test]
fn the_budget_applies_to_semaphores_and_limiters_too() {
    current_thread().block_on(async {
        let semaphore = Arc::new(ownsync::Semaphore::new(1));
        let limiter = CapacityLimiter::new(1);
        let other_ran = Arc::new(AtomicBool::new(false));
        let looping = tokio::spawn({
            let other_ran = other_ran.clone();
            async move {
                for round in 0..100_000u64 {
                    drop(semaphore.acquire().await.unwrap());
                    drop(limiter.acquire().await.unwrap());
                    if other_ran.load(Ordering::Acquire) {
                        return Some(round);
                    }
                }
                None
            }
        });
        tokio::spawn(async move { other_ran.store(true, Ordering::Release) });
        assert!(looping.await.unwrap().is_some());
    });
}

#[test]
fn an_untracked_tokio_task_that_relocks_a_strict_mutex_gets_would_deadlock() {
    // Strict mode only (DESIGN.md 2b): a plain mutex waits, as tokio's does.
    multi_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(()).strict());
        let (held_tx, held_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let holder = tokio::spawn({
            let mutex = mutex.clone();
            async move {
                let guard = mutex.lock().await.unwrap();
                assert_eq!(mutex.lock().await.unwrap_err(), AcquireError::WouldDeadlock);
                assert_eq!(mutex.try_lock().unwrap_err(), TryLockError::WouldDeadlock);
                held_tx.send(tokio::task::id()).unwrap();
                done_rx.await.unwrap();
                drop(guard);
            }
        });
        let holder_id = held_rx.await.unwrap();
        let seen = mutex.statistics().holder().expect("the tokio task is named as the holder");
        assert_eq!(seen.to_string(), format!("tokio-task#{holder_id}"));
        // Another untracked task is not the holder: it just has to wait.
        let other = tokio::spawn({
            let mutex = mutex.clone();
            async move { matches!(mutex.try_lock(), Err(TryLockError::WouldBlock)) }
        });
        assert!(other.await.unwrap());
        done_tx.send(()).unwrap();
        holder.await.unwrap();
        assert_eq!(mutex.statistics().holder(), None);
        assert!(!mutex.is_broken());
    });
}

#[test]
fn untracked_tokio_tasks_borrow_per_call() {
    multi_thread().block_on(async {
        let limiter = Arc::new(CapacityLimiter::new(2));
        let first = tokio::spawn({
            let limiter = limiter.clone();
            async move {
                // 2b: `acquire()` borrows for the call, so a second call (a sibling
                // sub-future's, say) gets its own token; round 1 said WouldDeadlock.
                let one = limiter.acquire().await.unwrap();
                let two = limiter.try_acquire().unwrap();
                assert_ne!(one.borrower(), two.borrower());
                (limiter.try_acquire().unwrap_err(), limiter.available_tokens())
            }
        });
        assert_eq!(first.await.unwrap(), (TryAcquireError::NoPermits, 0));
        // Two different tasks may each hold one.
        let (a, b) = tokio::join!(
            tokio::spawn({
                let limiter = limiter.clone();
                async move { limiter.try_acquire().map(|t| t.borrower()) }
            }),
            tokio::spawn({
                let limiter = limiter.clone();
                async move { limiter.try_acquire().map(|t| t.borrower()) }
            }),
        );
        assert_ne!(a.unwrap().unwrap(), b.unwrap().unwrap());
    });
}

#[test]
fn a_spawned_task_that_leaks_a_guard_breaks_the_lock() {
    multi_thread().block_on(async {
        let lock = Arc::new(Lock::default());
        let leaker = ownsync::tokio::spawn({
            let lock = lock.clone();
            async move {
                std::mem::forget(lock.lock().await.unwrap());
                ownsync::current_owner()
            }
        });
        let owner = leaker.await.unwrap();
        let err = broken(lock.lock().await);
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    });
}

/// tokio's bounded-spawning idiom through `spawn_with`: the children answer for their
/// permits from their first poll. Healthy (or aborted) children let the drain through;
/// a child that leaks its permit breaks the semaphore, naming the child, so the drain
/// fails instead of hanging (with a plain `tokio::spawn` the leak would hang it).
#[test]
fn spawn_with_hands_the_permit_to_the_child_before_it_runs() {
    multi_thread().block_on(async {
        let sem = Arc::new(ownsync::Semaphore::new(2));
        let mut children = Vec::new();
        for _ in 0..4 {
            let permit = sem.clone().acquire_owned().await.unwrap();
            children.push(ownsync::tokio::spawn_with(permit, |permit| async move {
                assert_eq!(permit.owner(), Some(ownsync::current_owner()));
                drop(permit);
            }));
        }
        for child in children {
            child.await.unwrap();
        }
        assert_eq!(sem.acquire_many(2).await.unwrap().num_permits(), 2, "the drain got through");

        // An aborted child drops its permit as its owner: a normal release.
        let permit = sem.clone().acquire_owned().await.unwrap();
        let stuck = ownsync::tokio::spawn_with(permit, |permit| async move {
            let _permit = permit;
            std::future::pending::<()>().await;
        });
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert_eq!(sem.available_permits(), 2);
        // A child that leaks what it was handed breaks the semaphore, naming itself.
        let permit = sem.clone().acquire_owned().await.unwrap();
        let leaker = ownsync::tokio::spawn_with(permit, |permit| async move {
            std::mem::forget(permit);
            ownsync::current_owner()
        });
        let leaker = leaker.await.unwrap();
        match sem.acquire_many(2).await {
            Err(ownsync::AcquireError::Broken(err)) => {
                assert_eq!((err.owner(), err.reason()), (leaker, AbandonReason::Exited))
            }
            other => panic!("expected Broken, got {other:?}"),
        }
    });
}

#[test]
fn aborting_a_spawned_task_that_holds_a_guard_wakes_its_waiters() {
    multi_thread().block_on(async {
        let lock = Arc::new(Lock::default());
        let (held_tx, held_rx) = oneshot::channel();
        let holder = ownsync::tokio::spawn({
            let lock = lock.clone();
            async move {
                let guard = lock.lock().await.unwrap();
                held_tx.send(ownsync::current_owner()).unwrap();
                // Keep the guard out of the future's state, as a leaked one would be.
                std::mem::forget(guard);
                std::future::pending::<()>().await;
            }
        });
        let owner = held_rx.await.unwrap();
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move { broken(lock.lock().await) }
        });
        holder.abort();
        assert!(holder.await.unwrap_err().is_cancelled());
        let err = waiter.await.unwrap();
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Cancelled));
    });
}

#[test]
fn join_set_tasks_are_tracked_and_abort_all_breaks_their_leaked_holds() {
    multi_thread().block_on(async {
        let semaphore = Arc::new(ownsync::Semaphore::new(3));
        let mut set = tokio::task::JoinSet::new();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(3);
        for _ in 0..3 {
            let (semaphore, ready_tx) = (semaphore.clone(), ready_tx.clone());
            set.spawn_tracked(async move {
                std::mem::forget(semaphore.acquire().await.unwrap());
                ready_tx.send(ownsync::current_owner()).await.unwrap();
                std::future::pending::<()>().await;
            });
        }
        let mut owners = Vec::new();
        for _ in 0..3 {
            owners.push(ready_rx.recv().await.unwrap());
        }
        set.abort_all();
        while set.join_next().await.is_some() {}
        let err = broken(semaphore.acquire().await.map(drop));
        assert!(owners.contains(&err.owner()));
        assert_eq!(err.reason(), AbandonReason::Cancelled);
    });
}

#[test]
fn spawn_local_tasks_own_their_holds() {
    current_thread().block_on(async {
        let local = tokio::task::LocalSet::new();
        let lock = std::rc::Rc::new(Lock::default());
        let owner = local
            .run_until({
                let lock = lock.clone();
                async move {
                    ownsync::tokio::spawn_local(async move {
                        std::mem::forget(lock.lock().await.unwrap());
                        ownsync::current_owner()
                    })
                    .await
                    .unwrap()
                }
            })
            .await;
        assert_eq!(broken(lock.lock().await).owner(), owner);
    });
}

/// A blocking call on a thread that drives tokio tasks would block the runtime (on a
/// current-thread runtime, for good): it panics at once, as tokio's own do and in tokio's
/// words ("Cannot block the current thread from within a runtime"), with what to do
/// instead, even when the lock is free. Where tokio allows blocking
/// (`spawn_blocking`, `block_in_place`, a plain thread, `futures::executor::block_on`
/// of a tracked future) it works.
#[test]
fn a_blocking_call_on_a_runtime_thread_panics_and_elsewhere_works() {
    let mutex = Arc::new(ownsync::Mutex::new(0));
    let sem = Arc::new(ownsync::Semaphore::new(2));
    let rt = current_thread();
    type Call = (&'static str, Box<dyn Fn() + Send + Sync>);
    let calls: [Call; 4] = [
        (
            "blocking_lock",
            Box::new({
                let mutex = mutex.clone();
                move || drop(mutex.blocking_lock())
            }),
        ),
        (
            "blocking_acquire",
            Box::new({
                let sem = sem.clone();
                move || drop(sem.blocking_acquire())
            }),
        ),
        (
            "blocking_acquire_many_owned",
            Box::new({
                let sem = sem.clone();
                move || drop(sem.clone().blocking_acquire_many_owned(2))
            }),
        ),
        (
            "blocking_lock_owned",
            Box::new({
                let mutex = mutex.clone();
                move || drop(mutex.clone().blocking_lock_owned())
            }),
        ),
    ];
    for (name, call) in &calls {
        let panicked = rt.block_on(async { std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) });
        let message = panicked.expect_err(name);
        let message = message
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| message.downcast_ref::<String>().cloned())
            .expect("a text message");
        // tokio's own words first, so code and tests written against tokio's message
        // keep matching; then ownsync's advice.
        assert!(
            message.starts_with("Cannot block the current thread from within a runtime"),
            "{name}: {message}"
        );
        assert!(message.contains("spawn_blocking"), "{name}: {message}");
    }
    let calls = Arc::new(calls);
    multi_thread().block_on(async {
        let in_pool = calls.clone();
        tokio::task::spawn_blocking(move || in_pool.iter().for_each(|(_, call)| call())).await.unwrap();
        tokio::task::block_in_place(|| calls.iter().for_each(|(_, call)| call()));
    });
    calls.iter().for_each(|(_, call)| call()); // a plain thread
    futures::executor::block_on(ownsync::tracked(async { drop(mutex.blocking_lock().unwrap()) }));
    assert!(!mutex.is_broken() && sem.available_permits() == 2);
}

/// Holds taken in an untracked tokio task are anonymous (nobody answers for them): each
/// primitive counts them in `statistics().anonymous_holds()`. A tracked task's holds, and
/// holds taken outside any task (the runtime's `block_on` future), are not counted.
#[test]
fn holds_taken_in_untracked_tokio_tasks_are_counted_as_anonymous() {
    current_thread().block_on(async {
        let mutex = Arc::new(Mutex::new(0));
        let semaphore = Arc::new(ownsync::Semaphore::new(2));
        let rwlock = Arc::new(ownsync::RwLock::new(0));
        let limiter = Arc::new(CapacityLimiter::new(2));
        let untracked = tokio::spawn({
            let (mutex, semaphore, rwlock, limiter) =
                (mutex.clone(), semaphore.clone(), rwlock.clone(), limiter.clone());
            async move {
                drop(mutex.lock().await.unwrap());
                drop(semaphore.acquire().await.unwrap());
                drop(semaphore.try_acquire().unwrap());
                drop(rwlock.read().await.unwrap());
                drop(rwlock.clone().write_owned().await.unwrap());
                drop(limiter.acquire().await.unwrap());
                drop(limiter.try_acquire().unwrap());
            }
        });
        untracked.await.unwrap();
        assert_eq!(mutex.statistics().anonymous_holds(), 1);
        assert_eq!(semaphore.statistics().anonymous_holds(), 2);
        assert_eq!(rwlock.statistics().anonymous_holds(), 2);
        assert_eq!(limiter.statistics().anonymous_holds(), 2);

        // Owners' holds, and holds outside any task, are not anonymous holds of a task.
        ownsync::tokio::spawn({
            let (mutex, limiter) = (mutex.clone(), limiter.clone());
            async move {
                drop(mutex.lock().await.unwrap());
                drop(limiter.acquire().await.unwrap());
            }
        })
        .await
        .unwrap();
        drop(mutex.lock().await.unwrap());
        drop(limiter.acquire().await.unwrap());
        tokio::spawn({
            let mutex = mutex.clone();
            async move { drop(tokio::task::spawn_blocking(move || mutex.blocking_lock().map(drop)).await) }
        })
        .await
        .unwrap();
        assert_eq!(mutex.statistics().anonymous_holds(), 1);
        assert_eq!(limiter.statistics().anonymous_holds(), 2);
    });
}
