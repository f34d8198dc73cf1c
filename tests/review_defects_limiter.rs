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
