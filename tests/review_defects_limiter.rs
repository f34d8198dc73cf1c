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
        let own = if own_token_too { Some(limiter.acquire_on_behalf_of(current_owner()).await.unwrap()) } else { None };
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
