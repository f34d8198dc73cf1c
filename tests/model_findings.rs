//! Regression tests for what the reference model (`tests/reference_model.rs`) found:
//! each fails without its fix.

use std::future::Future;
use std::task::{Context, Waker};

use ownsync::{AbandonReason, Mutex, tracked};

/// A guard returned from a completed nested scope is its enclosing task's (the scope
/// forwarded it). Dropped in a panic of that task, it breaks the mutex naming the task
/// that panicked, not the scope, which completed and never panicked.
#[test]
fn a_forwarded_guard_dropped_in_a_panic_names_the_task_that_panicked() {
    let mutex = Mutex::new(0);
    let mut task = Box::pin(tracked(async {
        let guard = tracked(async { mutex.lock().await.expect("free") }).await;
        let _alive_in_the_unwind = guard;
        panic!("in the section");
    }));
    let task_id = task.owner();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = task.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }));
    assert!(unwound.is_err());
    let broken = mutex.statistics().broken().cloned().expect("a panic in the section breaks it");
    assert_eq!((broken.owner(), broken.reason()), (task_id, AbandonReason::Panicked));
    drop(task);
    assert!(matches!(mutex.try_lock(), Err(ownsync::TryLockError::Broken(_))));
}
