//! DESIGN.md 2b on tokio's multi-thread runtime and futures' thread pool.
//! C1: valid tokio code runs unchanged (no `WouldDeadlock`, no spurious break), tracked
//! or not; each scenario failed in round 1 (issue 11's findings 1, 3, 5 and 6).
//! C2: what is certainly abandoned still breaks, in the name of whoever answered for it:
//! holds handed over, tokens borrowed on behalf of an owner; and a hand-over or a
//! borrow on behalf of an owner that has exited fails at once, taking or moving nothing.
//! (The other C2 cases, a borrowed guard leaked, a manual acquire never released, a
//! panic in the critical section, are in `tests/mutex.rs`.)

mod common;

use std::sync::Arc;

use futures::future::join_all;
use ownsync::{AbandonReason, AcquireError, CapacityLimiter, HandOverError, Mutex, Semaphore, tracked};

use common::{Rt, broken, yielding};

/// Finding 1: sub-futures of one task take one mutex in turn, each yielding while it
/// holds the guard (so the others queue behind a guard of their own task).
async fn sub_futures_take_turns(mutex: Arc<Mutex<u32>>) -> Vec<Result<(), ownsync::AcquireError>> {
    join_all((0..4).map(|i| {
        let mutex = mutex.clone();
        async move {
            let mut guard = mutex.lock().await?;
            futures::pending!(); // let the siblings queue up behind this guard
            *guard += i;
            Ok(())
        }
    }))
    .await
}

fn join_all_in_one_task<R: Rt>(rt: &R) {
    for wrap in [true, false] {
        let mutex = Arc::new(Mutex::new(0));
        let body = yielding(sub_futures_take_turns(mutex.clone()));
        let results = if wrap {
            rt.block_on(rt.spawn(tracked(body)).join()).unwrap()
        } else {
            rt.block_on(rt.spawn(body).join()).unwrap()
        };
        assert!(results.iter().all(Result::is_ok), "tracked: {wrap}: {results:?}");
        assert_eq!(*rt.block_on(mutex.lock()).unwrap(), 6);
        assert!(!mutex.is_broken());
    }
}

/// Finding 3: tokio's bounded-spawning idiom. A tracked spawner moves each owned permit
/// into a child and finishes first; a graceful-shutdown drain then waits for the
/// children instead of failing.
fn permits_moved_into_children_outlive_their_spawner<R: Rt>(rt: &R) {
    let sem = Arc::new(Semaphore::new(2));
    let (release_tx, release_rx) = futures::channel::oneshot::channel::<()>();
    let release = futures::future::FutureExt::shared(release_rx);
    let spawner = tracked({
        let sem = sem.clone();
        async move {
            let mut children = Vec::new();
            for _ in 0..2 {
                let permit = sem.clone().acquire_owned().await.unwrap();
                let release = release.clone();
                children.push(async move {
                    let _ = release.await;
                    drop(permit);
                });
            }
            children
        }
    });
    let children = rt.block_on(rt.spawn(spawner).join()).unwrap();
    assert!(!sem.is_broken(), "the spawner's exit is no evidence against moved permits");
    assert_eq!(sem.statistics().orphaned(), 2);
    let children: Vec<_> = children.into_iter().map(|child| rt.spawn(child)).collect();
    release_tx.send(()).unwrap();
    let drained = rt.block_on(sem.acquire_many(2)).expect("the drain waits for the children");
    assert_eq!(drained.num_permits(), 2);
    for child in children {
        rt.block_on(child.join()).unwrap();
    }
    assert_eq!(sem.statistics().orphaned(), 0);
}

/// An owned guard sent over a channel by a task that then locks again (tokio waits).
fn an_owned_guard_sent_away_then_relocked<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let (tx, rx) = futures::channel::oneshot::channel();
    let receiver = rt.spawn(async move {
        let mut guard: ownsync::OwnedMutexGuard<u32> = rx.await.unwrap();
        *guard += 1;
    });
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            tx.send(mutex.clone().lock_owned().await.unwrap()).unwrap();
            *mutex.lock().await.unwrap() += 1; // waits for the receiver's drop
        }
    });
    rt.block_on(rt.spawn(task).join()).unwrap();
    rt.block_on(receiver.join()).unwrap();
    assert_eq!(*rt.block_on(mutex.lock()).unwrap(), 2);
}

/// Finding 5: sub-futures of one task each borrow a limiter token.
fn sub_futures_each_borrow_a_token<R: Rt>(rt: &R) {
    let limiter = CapacityLimiter::new(1);
    let task = tracked({
        let limiter = limiter.clone();
        yielding(join_all((0..3).map(move |_| {
            let limiter = limiter.clone();
            async move {
                let _token = limiter.acquire().await?;
                futures::pending!();
                Ok::<_, ownsync::AcquireError>(())
            }
        })))
    });
    let results = rt.block_on(rt.spawn(task).join()).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(limiter.available_tokens(), 1);
}

/// Finding 6: a borrowed guard returned from a nested tracked scope belongs to the
/// enclosing task, which uses it and locks again; nothing breaks.
fn a_guard_returned_from_a_nested_scope<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            let mut guard = tracked(async { mutex.lock().await }).await?;
            *guard += 1;
            drop(guard);
            let total = *mutex.lock().await?;
            Ok::<_, ownsync::AcquireError>(total)
        }
    });
    assert_eq!(rt.block_on(rt.spawn(task).join()).unwrap().unwrap(), 1);
    assert!(!mutex.is_broken());
}

/// C2: an owned guard handed to a task that then exits holding it (cancelled) breaks
/// the mutex in that task's name, though the guard itself was never in the task.
fn a_hold_handed_to_an_owner_that_exits_holding_it_breaks<R: Rt>(rt: &R) {
    let mutex = Arc::new(Mutex::new(0));
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let worker = tracked(async move {
        let _ = released.await;
    });
    let worker_id = worker.owner();
    let worker = rt.spawn(worker);
    let mut guard = rt.block_on(mutex.clone().lock_owned()).unwrap();
    ownsync::OwnedMutexGuard::hand_to(&mut guard, worker_id).unwrap();
    std::mem::forget(guard); // the worker answers for it, and ends without releasing it
    release.send(()).unwrap();
    rt.block_on(worker.join()).unwrap();
    let err = broken(rt.block_on(mutex.lock()));
    assert_eq!((err.owner(), err.reason()), (worker_id, AbandonReason::Exited));
}

/// C2: a token borrowed on behalf of a live task is tied to that task's exit.
fn a_token_borrowed_on_behalf_of_an_owner_that_exits_breaks<R: Rt>(rt: &R) {
    let limiter = CapacityLimiter::new(1);
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let worker = tracked(async move {
        let _ = released.await;
    });
    let worker_id = worker.owner();
    let worker = rt.spawn(worker);
    let token = rt.block_on(limiter.acquire_on_behalf_of(worker_id)).unwrap();
    token.detach(); // borrowed for the worker, never given back
    let waiter = rt.spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await.map(drop) }
    });
    release.send(()).unwrap();
    rt.block_on(worker.join()).unwrap();
    let err = broken(rt.block_on(waiter.join()).unwrap());
    assert_eq!((err.owner(), err.reason()), (worker_id, AbandonReason::Exited));
}

/// C2: a hand-over to, or a borrow on behalf of, an owner that has exited fails at once;
/// the hold stays the caller's (and releases normally), and nothing is borrowed.
fn an_exited_owner_gets_nothing<R: Rt>(rt: &R) {
    let gone = tracked(async {});
    let gone_id = gone.owner();
    rt.block_on(rt.spawn(gone).join()).unwrap();
    let sem = Arc::new(Semaphore::new(1));
    let mut permit = rt.block_on(sem.clone().acquire_owned()).unwrap();
    assert_eq!(permit.hand_to(gone_id), Err(HandOverError::OwnerGone(gone_id)));
    drop(permit);
    assert_eq!(sem.available_permits(), 1, "the permit stayed the caller's and was released");
    let limiter = CapacityLimiter::new(1);
    let borrowed = rt.block_on(limiter.acquire_on_behalf_of(gone_id)).map(drop);
    assert_eq!(borrowed, Err(AcquireError::OwnerGone(gone_id)));
    assert_eq!(limiter.available_tokens(), 1, "nothing was taken");
    assert!(!sem.is_broken() && !limiter.is_broken());
}

on_runtimes!(
    a_hold_handed_to_an_owner_that_exits_holding_it_breaks,
    a_token_borrowed_on_behalf_of_an_owner_that_exits_breaks,
    an_exited_owner_gets_nothing,
    a_guard_returned_from_a_nested_scope,
    join_all_in_one_task,
    permits_moved_into_children_outlive_their_spawner,
    an_owned_guard_sent_away_then_relocked,
    sub_futures_each_borrow_a_token,
);

/// An owned guard whose acquirer exited (so it is orphaned, not broken) moves to a thread
/// that panics inside its section: that thread is who abandoned it, so the break names
/// the thread, not the acquirer, and the orphan is no longer counted.
#[test]
fn an_orphaned_owned_guard_names_the_thread_that_panics_with_it() {
    let mutex = Arc::new(Mutex::new(0));
    let task = tracked({
        let mutex = mutex.clone();
        async move { mutex.lock_owned().await.unwrap() }
    });
    let acquirer = task.owner();
    let guard = futures::executor::block_on(task);
    assert!(!mutex.is_broken(), "the acquirer's exit is no evidence against an owned guard");
    assert_eq!(mutex.statistics().orphaned(), 1);
    let panicker = std::thread::spawn(move || {
        let me = ownsync::current_owner();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut guard = guard;
            *guard = 1; // half-updated...
            panic!("inside the section");
        }));
        assert!(unwound.is_err());
        me
    })
    .join()
    .unwrap();
    assert_ne!(panicker, acquirer);
    let err = broken(mutex.try_lock().map_err(|err| match err {
        ownsync::TryLockError::Broken(err) => AcquireError::Broken(err),
        other => panic!("expected Broken, got {other:?}"),
    }));
    assert_eq!((err.owner(), err.reason()), (panicker, AbandonReason::Panicked));
    assert_eq!(mutex.statistics().orphaned(), 0, "the orphan was settled by the break");
}
