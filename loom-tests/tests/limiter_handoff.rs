//! Loom models of a limiter's hand-off to a queued borrower, which names the borrower at
//! the grant (before its acquire runs again), racing a release on the borrower's behalf
//! and the acquire's own cancel or collection. Whatever the order, the token is released
//! exactly once: never twice (once by the release on its behalf, once by the acquire),
//! never leaked, and no borrower is left listed.
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::thread;
use loom_tests::model;
use ownsync::{CapacityLimiter, OwnerId, ReleaseError, tracked};

/// A live borrower: a tracked task that never runs (alive until dropped).
fn idle_task() -> std::pin::Pin<Box<ownsync::Tracked<std::future::Pending<()>>>> {
    Box::pin(tracked(std::future::pending()))
}

/// Every token of `limiter` is free and nobody is listed: each taken once, then given
/// back (a token released twice would show as one too many).
fn all_free(limiter: &CapacityLimiter, total: usize) {
    let taken: Vec<_> = std::iter::from_fn(|| limiter.try_acquire().ok()).take(total + 1).collect();
    assert_eq!(taken.len(), total, "tokens lost or released twice");
    drop(taken);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(limiter.statistics().borrowers(), [] as [OwnerId; 0], "a stale borrower");
}

/// The holder's release hands the token to a queued `acquire_on_behalf_of` on one thread,
/// a manager releases on the borrower's behalf on another, and the acquire is dropped
/// (cancelled) meanwhile, unpolled since it queued.
#[test]
fn a_hand_off_races_a_release_on_behalf_and_a_cancel() {
    model(|| {
        let limiter = Arc::new(CapacityLimiter::new(1));
        let worker = idle_task();
        let worker_id = worker.owner();
        let holder = limiter.try_acquire().unwrap().into_owned();
        {
            let mut acquire = pin!(limiter.acquire_on_behalf_of(worker_id));
            assert!(acquire.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            let releaser = thread::spawn(move || drop(holder));
            let manager = {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.release_on_behalf_of(worker_id))
            };
            // The cancel: `acquire` is dropped here, queued, granted, or released.
            drop(acquire);
            releaser.join().unwrap();
            let released = manager.join().unwrap();
            assert!(matches!(released, Ok(()) | Err(ReleaseError::NotHeld)));
        }
        all_free(&limiter, 1);
        drop(worker);
        assert!(!limiter.is_broken(), "the worker exited answering for nothing");
    });
}

/// The same hand-off raced by the release on the borrower's behalf, and the acquire
/// polled again after it: it returns the token, registered to the borrower, or (released
/// on its behalf first) one already given back, whose drop releases nothing.
#[test]
fn a_hand_off_races_a_release_on_behalf_then_the_acquire_collects() {
    model(|| {
        let limiter = Arc::new(CapacityLimiter::new(1));
        let worker = idle_task();
        let worker_id = worker.owner();
        let holder = limiter.try_acquire().unwrap().into_owned();
        let mut acquire = pin!(limiter.acquire_on_behalf_of(worker_id));
        assert!(acquire.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        let releaser = thread::spawn(move || drop(holder));
        let manager = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.release_on_behalf_of(worker_id))
        };
        releaser.join().unwrap();
        let token = match acquire.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(token)) => token,
            _ => panic!("the hand-off came: the acquire must return"),
        };
        let released = manager.join().unwrap();
        match released {
            // Released on its behalf: at the hand-off, or after the acquire returned.
            Ok(()) => assert_eq!(token.owner(), None),
            // Came before the hand-off.
            Err(ReleaseError::NotHeld) => assert_eq!(token.owner(), Some(worker_id)),
            Err(other) => panic!("unexpected {other:?}"),
        }
        drop(token);
        all_free(&limiter, 1);
        drop(worker);
        assert!(!limiter.is_broken());
    });
}
