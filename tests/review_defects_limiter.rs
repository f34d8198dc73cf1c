//! One regression test (or a few) per `CapacityLimiter` defect of the third outside review
//! (issue 29, items 8, 9 and 11), one section each. Each fails without its fix.
//!
//! They run on `futures::executor` and plain threads only, so they are small enough for
//! Miri: `cargo +nightly miri test --test review_defects_limiter`.

use futures::executor::block_on;
use ownsync::{AbandonPolicy, AbandonReason, CapacityLimiter, current_owner, tracked};

/// A tracked task detaches a token and exits: its borrow is abandoned.
fn leak_a_token_in_a_task(limiter: &CapacityLimiter) {
    block_on(tracked(async {
        limiter.acquire().await.unwrap().detach();
    }));
}

// Item 8: growing a broken limiter (`set_total_tokens`) is not a return of tokens; what
// is borrowed stays counted.

#[test]
fn growing_a_broken_limiter_keeps_its_borrowed_tokens() {
    let limiter = CapacityLimiter::new(2);
    let token = limiter.blocking_acquire().unwrap(); // this thread's, alive throughout
    leak_a_token_in_a_task(&limiter);
    assert!(limiter.is_broken());
    assert_eq!(limiter.borrowed_tokens(), 1, "the live token, not the abandoned one");
    limiter.set_total_tokens(5);
    assert_eq!(limiter.total_tokens(), 5);
    assert_eq!(limiter.borrowed_tokens(), 1, "growing returned no token");
    assert_eq!(limiter.available_tokens(), 0, "a broken limiter lends nothing");
    // Shrinking and growing again changes nothing either.
    limiter.set_total_tokens(0);
    limiter.set_total_tokens(3);
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(token);
    assert_eq!(limiter.borrowed_tokens(), 0, "the live token came back");
}

// Item 9: a token forwarded from a nested scope and leaked is forgotten by the borrower
// set when the enclosing task exits: its own entry, not another.

/// In a tracked task, a nested scope borrows a token and returns it; the task detaches it
/// (a leak: nobody will release it) and exits.
fn leak_a_forwarded_token(limiter: &CapacityLimiter, own_token_too: bool) {
    block_on(tracked(async {
        let own = if own_token_too {
            Some(limiter.acquire_on_behalf_of(current_owner()).await.unwrap())
        } else {
            None
        };
        let forwarded = tracked(async { limiter.acquire().await.unwrap() }).await;
        forwarded.detach();
        if let Some(own) = own {
            own.detach();
        }
    }));
}

#[test]
fn leaked_forwarded_token_leaves_no_stale_borrower() {
    let limiter = CapacityLimiter::with_policy(1, AbandonPolicy::Reclaim);
    leak_a_forwarded_token(&limiter, false);
    assert_eq!(limiter.statistics().abandoned().count(), 1);
    assert_eq!(limiter.statistics().borrowers(), [], "no stale borrower");
    assert_eq!(limiter.borrowed_tokens(), 0, "reclaimed");
}

#[test]
fn leaked_forwarded_token_beside_the_tasks_own_leaves_no_stale_borrower() {
    let limiter = CapacityLimiter::with_policy(2, AbandonPolicy::Reclaim);
    leak_a_forwarded_token(&limiter, true);
    assert_eq!(limiter.statistics().abandoned().count(), 2);
    assert_eq!(limiter.statistics().borrowers(), [], "neither entry stays");
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[test]
fn leaked_forwarded_token_under_break_names_the_enclosing_task() {
    let limiter = CapacityLimiter::new(2);
    let task = tracked(async {
        let forwarded = tracked(async { limiter.acquire().await.unwrap() }).await;
        forwarded.detach();
    });
    let task_id = task.owner();
    block_on(task);
    let stats = limiter.statistics();
    let broken = stats.broken().expect("an abandoned token breaks");
    assert_eq!((broken.owner(), broken.reason()), (task_id, AbandonReason::Exited));
    assert_eq!(stats.borrowers(), [], "the abandoned borrow is forgotten");
}

#[test]
fn a_reclaiming_server_that_leaks_forwarded_tokens_keeps_a_bounded_borrower_set() {
    let limiter = CapacityLimiter::with_policy(4, AbandonPolicy::Reclaim);
    let iterations = if cfg!(miri) { 20 } else { 2_000 };
    for round in 0..iterations {
        leak_a_forwarded_token(&limiter, round % 2 == 0);
        assert!(limiter.statistics().borrowers().is_empty(), "round {round}: a borrower stayed");
    }
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(limiter.available_tokens(), 4);
}

// Item 11: a token handed to a queued borrower is that borrower's at the hand-off, before
// its acquire runs again: listed, and releasable on its behalf at once; the acquire then
// returns a spent token, and nothing is released twice or leaked.

mod hand_off {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::task::noop_waker;
    use ownsync::{
        AcquireError, CapacityLimiter, CapacityToken, OwnerId, ReleaseError, TryAcquireError, tracked,
    };

    type Acquire<'a> = Pin<Box<dyn Future<Output = Result<CapacityToken<'a>, AcquireError>> + 'a>>;

    fn poll<'a>(acquire: &mut Acquire<'a>) -> Poll<Result<CapacityToken<'a>, AcquireError>> {
        acquire.as_mut().poll(&mut Context::from_waker(&noop_waker()))
    }

    /// A live borrower id: a tracked task that never runs (alive until dropped).
    fn worker() -> ownsync::Tracked<std::future::Pending<()>> {
        tracked(std::future::pending())
    }

    /// How many tokens can be taken now (each taken once, then all given back): what
    /// is really free, which a token released twice would raise.
    fn free_tokens(limiter: &CapacityLimiter) -> usize {
        let mut taken = Vec::new();
        loop {
            match limiter.try_acquire() {
                Ok(token) => taken.push(token),
                Err(TryAcquireError::NoPermits) => return taken.len(),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// `limiter` (1 token) lent to this thread; `borrower`'s acquire queued behind it.
    fn queued_behind_a_holder<'a>(limiter: &'a CapacityLimiter, borrower: OwnerId) -> Acquire<'a> {
        let mut acquire: Acquire<'a> = Box::pin(limiter.acquire_on_behalf_of(borrower));
        assert!(poll(&mut acquire).is_pending());
        assert_eq!(limiter.statistics().borrowers(), [], "waiting is not holding");
        acquire
    }

    #[test]
    fn a_released_token_names_its_queued_borrower_at_once() {
        let limiter = CapacityLimiter::new(1);
        let worker = worker();
        let holder = limiter.try_acquire().unwrap();
        let mut acquire = queued_behind_a_holder(&limiter, worker.owner());
        drop(holder); // hands the token to the worker's acquire, not polled since
        assert_eq!(limiter.statistics().borrowers(), [worker.owner()]);
        assert_eq!(limiter.borrowed_tokens(), 1);
        // Then its acquire returns it, recorded as before.
        let token = match poll(&mut acquire) {
            Poll::Ready(Ok(token)) => token,
            other => panic!("expected the token, got {:?}", other.map(|r| r.map(|_| ()))),
        };
        assert_eq!((token.borrower(), token.owner()), (worker.owner(), Some(worker.owner())));
        assert_eq!(limiter.statistics().borrowers(), [worker.owner()]);
        drop(token);
        assert_eq!((limiter.statistics().borrowers().to_vec(), free_tokens(&limiter)), (vec![], 1));
    }

    #[test]
    fn a_token_handed_to_a_queued_borrower_can_be_released_on_its_behalf_before_it_runs() {
        let limiter = CapacityLimiter::new(1);
        let worker = worker();
        let holder = limiter.try_acquire().unwrap();
        let mut acquire = queued_behind_a_holder(&limiter, worker.owner());
        drop(holder);
        assert_eq!(limiter.release_on_behalf_of(worker.owner()), Ok(()));
        assert_eq!((limiter.borrowed_tokens(), limiter.statistics().borrowers().to_vec()), (0, vec![]));
        assert_eq!(free_tokens(&limiter), 1, "released at once");
        // The acquire, polled at last, returns a token already given back.
        let token = match poll(&mut acquire) {
            Poll::Ready(Ok(token)) => token,
            other => panic!("expected a spent token, got {:?}", other.map(|r| r.map(|_| ()))),
        };
        assert_eq!(token.borrower(), worker.owner());
        assert_eq!(token.owner(), None, "nobody answers for a released token");
        assert_eq!(limiter.release_on_behalf_of(worker.owner()), Err(ReleaseError::NotHeld));
        drop(token);
        assert_eq!(free_tokens(&limiter), 1, "not released twice");
        drop(worker);
        assert!(!limiter.is_broken(), "the worker answers for nothing");
    }

    #[test]
    fn a_token_released_on_behalf_of_a_borrower_whose_acquire_is_then_dropped_is_released_once() {
        let limiter = CapacityLimiter::new(1);
        let worker = worker();
        let holder = limiter.try_acquire().unwrap();
        let acquire = queued_behind_a_holder(&limiter, worker.owner());
        drop(holder);
        limiter.release_on_behalf_of(worker.owner()).unwrap();
        drop(acquire); // never polled again
        assert_eq!(free_tokens(&limiter), 1, "released exactly once");
        assert_eq!(limiter.borrowed_tokens(), 0);
    }

    #[test]
    fn a_token_handed_to_an_acquire_dropped_unpolled_goes_back_once() {
        let limiter = CapacityLimiter::new(1);
        let worker = worker();
        let holder = limiter.try_acquire().unwrap();
        let acquire = queued_behind_a_holder(&limiter, worker.owner());
        drop(holder);
        drop(acquire);
        assert_eq!((limiter.borrowed_tokens(), limiter.statistics().borrowers().to_vec()), (0, vec![]));
        assert_eq!(free_tokens(&limiter), 1, "neither leaked nor released twice");
    }

    #[test]
    fn growing_the_limiter_names_the_borrowers_it_hands_tokens_to() {
        let limiter = CapacityLimiter::new(0);
        let (first, second) = (worker(), worker());
        let mut first_acquire = queued_behind_a_holder(&limiter, first.owner());
        let second_acquire = queued_behind_a_holder(&limiter, second.owner());
        limiter.set_total_tokens(1);
        assert_eq!(limiter.statistics().borrowers(), [first.owner()], "FIFO");
        assert_eq!(limiter.release_on_behalf_of(second.owner()), Err(ReleaseError::NotHeld));
        limiter.set_total_tokens(2);
        assert_eq!(limiter.statistics().borrowers().len(), 2);
        limiter.release_on_behalf_of(second.owner()).unwrap();
        drop(second_acquire);
        let token = match poll(&mut first_acquire) {
            Poll::Ready(Ok(token)) => token,
            other => panic!("expected the token, got {:?}", other.map(|r| r.map(|_| ()))),
        };
        assert_eq!(free_tokens(&limiter), 1);
        drop(token);
        assert_eq!(free_tokens(&limiter), 2);
    }

    #[test]
    fn a_tasks_call_is_named_at_the_hand_off() {
        let limiter = CapacityLimiter::new(1);
        let holder = limiter.try_acquire().unwrap();
        let task = tracked(async { limiter.acquire().await.map(|token| token.detach()) });
        let task_id = task.owner();
        let mut task: Pin<Box<dyn Future<Output = Result<(), AcquireError>> + '_>> = Box::pin(task);
        assert!(task.as_mut().poll(&mut Context::from_waker(&noop_waker())).is_pending());
        drop(holder);
        assert_eq!(limiter.statistics().borrowers(), [task_id]);
        limiter.release_on_behalf_of(task_id).unwrap();
        assert_eq!(free_tokens(&limiter), 1);
        assert!(matches!(task.as_mut().poll(&mut Context::from_waker(&noop_waker())), Poll::Ready(Ok(()))));
        assert!(!limiter.is_broken(), "the task exited holding nothing");
        assert_eq!(free_tokens(&limiter), 1);
    }
}
