//! CapacityLimiter semantics (DESIGN.md section 3 and issue 3) on two executors.

mod common;

use std::sync::Arc;

use futures::channel::oneshot;
use ownsync::{
    AbandonPolicy, AbandonReason, AcquireError, CapacityLimiter, ReleaseError, TryAcquireError,
    current_owner, tracked,
};

use common::{Polled, Rt};

/// DESIGN.md 2b: `acquire()` borrows for the call, so a task's second borrow (a sibling
/// sub-future's) is a token of its own, still tied to the task; the one-token rule and
/// its `WouldDeadlock` belong to explicit borrowers. (Round 1 said `WouldDeadlock` here.)
fn a_tasks_calls_each_borrow_and_explicit_borrowers_get_one_token<R: Rt>(rt: &R) {
    let limiter = Arc::new(CapacityLimiter::new(3));
    let l = limiter.clone();
    let task = tracked(async move {
        let me = current_owner();
        let first = l.acquire().await.unwrap();
        let second = l.acquire().await.unwrap();
        let third = l.try_acquire().unwrap();
        assert_eq!(first.borrower(), me, "the task's own borrow, as in Trio");
        assert_ne!(second.borrower(), me);
        assert!([&first, &second, &third].iter().all(|token| token.owner() == Some(me)));
        let explicit = (l.acquire_on_behalf_of(me).await.err(), l.try_acquire_on_behalf_of(me).err());
        // Leak two of them: the task answers for every one of its borrows.
        std::mem::forget(second);
        std::mem::forget(third);
        drop(first);
        explicit
    });
    let owner = task.owner();
    let explicit = rt.block_on(rt.spawn(task).join()).unwrap();
    assert_eq!(explicit, (Some(AcquireError::WouldDeadlock), Some(TryAcquireError::WouldDeadlock)));
    let err = common::broken(rt.block_on(limiter.acquire()).map(drop));
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
}

fn abandoned_token_breaks_or_is_reclaimed<R: Rt>(rt: &R) {
    for policy in [AbandonPolicy::Break, AbandonPolicy::Reclaim] {
        let limiter = Arc::new(CapacityLimiter::with_policy(1, policy));
        let (held_tx, held_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let task = tracked({
            let limiter = limiter.clone();
            async move {
                let token = limiter.acquire().await.unwrap();
                held_tx.send(()).unwrap();
                let _ = go_rx.await;
                token.detach(); // never released
            }
        });
        let owner = task.owner();
        let handle = rt.spawn(task);
        rt.block_on(held_rx).unwrap();
        let mut waiter = Polled::new(limiter.acquire());
        assert!(waiter.is_pending());
        go_tx.send(()).unwrap();
        rt.block_on(handle.join()).unwrap();
        assert_eq!(waiter.wakes(), 1, "{policy:?}: the waiter is not left hanging");
        match policy {
            AbandonPolicy::Break => match waiter.ready() {
                Err(AcquireError::Broken(err)) => {
                    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
                    assert!(err.to_string().starts_with("capacity limiter is broken: task#"));
                }
                other => panic!("expected Broken, got {other:?}"),
            },
            _ => {
                drop(waiter.ready().unwrap());
                assert_eq!(limiter.available_tokens(), 1);
                assert_eq!(limiter.statistics().abandoned().last(), Some((owner, AbandonReason::Exited)));
            }
        }
        assert!(limiter.statistics().borrowers().is_empty());
    }
}

on_runtimes!(
    a_tasks_calls_each_borrow_and_explicit_borrowers_get_one_token,
    abandoned_token_breaks_or_is_reclaimed
);

#[test]
fn a_borrower_already_waiting_gets_would_deadlock() {
    let limiter = CapacityLimiter::new(1);
    let worker_task = tracked(async {}); // alive (not yet run): a live owner
    let worker = worker_task.owner();
    let _held = limiter.try_acquire().unwrap();
    let mut first = Polled::new(limiter.acquire_on_behalf_of(worker));
    assert!(first.is_pending());
    let mut second = Polled::new(limiter.acquire_on_behalf_of(worker));
    assert_eq!(second.ready().unwrap_err(), AcquireError::WouldDeadlock, "Trio's gap: pending twice");
    drop(first); // cancelled: the borrower may try again
    assert!(Polled::new(limiter.acquire_on_behalf_of(worker)).is_pending());
}

#[test]
fn untracked_async_borrows_never_collide() {
    let limiter = CapacityLimiter::new(2);
    let a = limiter.try_acquire().unwrap();
    let b = limiter.try_acquire().unwrap();
    assert_ne!(a.borrower(), b.borrower());
    assert_eq!(limiter.borrowed_tokens(), 2);
}

/// An anonymous borrow (outside any tracked task) is counted from the start and, once its
/// id has been asked for, found by it like any other: listed, released on its behalf,
/// and refused a second token on behalf of the same id. Its slot is then reused by the
/// next borrow, whose token the old one must not release.
#[test]
fn an_anonymous_borrow_is_found_by_its_id() {
    let limiter = CapacityLimiter::new(3);
    let kept = limiter.try_acquire().unwrap();
    let token = limiter.try_acquire().unwrap();
    let stats = limiter.statistics();
    assert_eq!((stats.borrowed_tokens(), stats.borrowers()), (2, &[][..]), "counted; no id asked for yet");
    assert_eq!(format!("{token:?}"), "CapacityToken { borrower: anonymous }", "Debug names nothing");
    let id = token.borrower();
    assert_eq!(token.borrower(), id, "named once");
    assert_eq!(limiter.statistics().borrowers(), [id]);
    assert_eq!(limiter.try_acquire_on_behalf_of(id).unwrap_err(), TryAcquireError::WouldDeadlock);
    token.detach();
    limiter.release_on_behalf_of(id).unwrap();
    assert_eq!(limiter.release_on_behalf_of(id), Err(ReleaseError::NotHeld));
    let kept_id = kept.borrower();
    assert_eq!(limiter.statistics().borrowers(), [kept_id]);
    let again = limiter.try_acquire_on_behalf_of(id).expect("the id is free again");
    assert_eq!(limiter.borrowed_tokens(), 2);
    drop(again);
    drop(kept);
    assert_eq!(limiter.available_tokens(), 3);
}

#[test]
fn set_total_tokens_grow_wakes_fifo_and_shrink_never_revokes() {
    let limiter = CapacityLimiter::new(0); // paused
    let mut waiters: Vec<_> = (0..3).map(|_| Polled::new(limiter.acquire())).collect();
    assert!(waiters.iter_mut().all(Polled::is_pending));
    limiter.set_total_tokens(2);
    assert_eq!(waiters.iter().map(Polled::wakes).collect::<Vec<_>>(), [1, 1, 0]);
    let first = waiters[0].ready().unwrap();
    let second = waiters[1].ready().unwrap();
    limiter.set_total_tokens(1); // below borrowed: nobody loses a token
    assert_eq!((limiter.borrowed_tokens(), limiter.total_tokens(), limiter.available_tokens()), (2, 1, 0));
    drop(first);
    assert_eq!(waiters[2].wakes(), 0, "still over the total after one release");
    drop(second);
    assert_eq!(waiters[2].wakes(), 1, "admitted once borrowed < total");
    let third = waiters[2].ready().unwrap();
    let id = third.borrower();
    assert_eq!(limiter.statistics().borrowers(), [id]);
}

#[test]
fn release_on_behalf_of_and_its_errors() {
    let limiter = CapacityLimiter::new(1);
    let me = current_owner();
    let token = limiter.blocking_acquire().unwrap();
    assert_eq!(token.borrower(), me);
    limiter.release_on_behalf_of(me).unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
    let other = limiter.try_acquire().unwrap();
    drop(token); // already released: must not release `other`'s token
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(other);
    assert_eq!(limiter.release_on_behalf_of(me), Err(ReleaseError::NotHeld));
}

#[test]
fn thread_borrower_exits_holding() {
    let limiter = Arc::new(CapacityLimiter::with_name_and_policy(1, "workers", AbandonPolicy::Break));
    let owner = std::thread::spawn({
        let limiter = limiter.clone();
        move || {
            limiter.blocking_acquire().unwrap().detach();
            (current_owner(), line!() - 1)
        }
    })
    .join()
    .unwrap();
    let (owner, detach_line) = owner;
    match limiter.blocking_acquire() {
        Err(AcquireError::Broken(err)) => assert_eq!(err.owner(), owner),
        other => panic!("expected Broken, got {other:?}"),
    }
    assert!(limiter.is_broken());
    assert_eq!(
        format!("{limiter:?}"),
        format!(
            "CapacityLimiter {{ name: \"workers\", tokens: 0 of 1 available, borrowers: [], waiters: 0, \
             broken_by: {owner}, reason: Exited, taken_at: tests/limiter.rs:{line}:21 }}",
            line = detach_line
        )
    );
}

/// An owned token is the same borrow: converting does not release it, dropping the
/// owned one does. It may move (DESIGN.md 2b), so its borrower's exit orphans it rather
/// than breaking the limiter (round 1 broke it); handed over, it is certain again.
#[test]
fn an_owned_token_keeps_the_borrow_and_is_orphaned_not_broken_by_its_acquirers_exit() {
    let limiter = CapacityLimiter::new(2);
    let handle = limiter.clone();
    let owned = limiter.try_acquire().unwrap().into_owned();
    assert_eq!(limiter.borrowed_tokens(), 1, "into_owned must not release");
    drop(owned);
    assert_eq!(limiter.borrowed_tokens(), 0);

    let mover = tracked({
        let handle = handle.clone();
        async move { handle.acquire().await.unwrap().into_owned() }
    });
    let moved = futures::executor::block_on(mover);
    assert!(!limiter.is_broken());
    assert_eq!((limiter.borrowed_tokens(), limiter.statistics().orphaned()), (1, 1));
    drop(moved);
    assert_eq!((limiter.borrowed_tokens(), limiter.statistics().orphaned()), (0, 0));

    // Handed to a task before it runs: the task answers for it, and leaks it.
    let given = limiter.try_acquire().unwrap().into_owned();
    let taker = ownsync::tracked_with(given, |token| async move { std::mem::forget(token) });
    let owner = taker.owner();
    futures::executor::block_on(taker);
    let err = common::broken(futures::executor::block_on(limiter.acquire()).map(drop));
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
}

/// `borrowed_tokens` counts every token, named or not, also once the limiter is broken:
/// the abandoned token is nobody's any more, and the tokens still out are given back one
/// by one (a broken pool grants nothing, so its own count stops; the break takes over).
#[test]
fn borrowed_tokens_counts_every_token_through_a_break() {
    let limiter = CapacityLimiter::new(4);
    let unnamed = limiter.try_acquire().unwrap(); // anonymous: only the count knows it
    let named = limiter.blocking_acquire().unwrap(); // this thread borrows
    futures::executor::block_on(tracked(async {
        limiter.acquire().await.unwrap().detach(); // the task exits holding it
    }));
    assert!(limiter.is_broken());
    assert_eq!(limiter.borrowed_tokens(), 2, "the abandoned token is nobody's");
    let late = limiter.try_acquire();
    assert!(matches!(late, Err(TryAcquireError::Broken(_))), "nothing is lent once broken");
    drop(unnamed);
    assert_eq!(limiter.borrowed_tokens(), 1);
    let stats = limiter.statistics();
    assert_eq!((stats.borrowed_tokens(), stats.borrowers()), (1, &[current_owner()][..]));
    drop(named);
    assert_eq!((limiter.borrowed_tokens(), limiter.available_tokens(), limiter.total_tokens()), (0, 0, 4));
}

/// `set_total_tokens` above `MAX_PERMITS` panics as documented, before it changes
/// anything: the limiter keeps its total and its tokens.
#[test]
fn set_total_tokens_past_max_permits_panics_and_changes_nothing() {
    let limiter = CapacityLimiter::new(2);
    let token = limiter.try_acquire().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        limiter.set_total_tokens(ownsync::Semaphore::MAX_PERMITS + 1);
    }));
    let message = result.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("MAX_PERMITS"), "{message}");
    assert_eq!((limiter.total_tokens(), limiter.borrowed_tokens(), limiter.available_tokens()), (2, 1, 1));
    drop(token);
    assert_eq!(limiter.available_tokens(), 2);
}
