//! `register_external_hold`: a hold kept outside the crate, reported to its hook when its
//! tracked owner goes away holding it, and only then.

use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use ownsync::{AbandonReason, ExternalAbandonment, ExternalHold, OwnerHook, register_external_hold, tracked};

#[derive(Default)]
struct Reports(Mutex<Vec<ExternalAbandonment>>);

impl OwnerHook for Reports {
    fn abandoned(&self, abandonment: &ExternalAbandonment) {
        self.0.lock().unwrap().push(abandonment.clone());
    }
}

impl Reports {
    fn taken(&self) -> Vec<ExternalAbandonment> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn here() -> Option<&'static std::panic::Location<'static>> {
    Some(std::panic::Location::caller())
}

#[test]
fn a_hold_leaked_by_a_tracked_task_is_reported_once_with_owner_reason_and_site() {
    let reports = Arc::new(Reports::default());
    let site = here();
    let task = tracked({
        let reports = reports.clone();
        async move { std::mem::forget(register_external_hold(reports, site)) }
    });
    let owner = task.owner();
    block_on(task);
    let seen = reports.taken();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].owner(), owner);
    assert_eq!(seen[0].reason(), AbandonReason::Exited);
    assert_eq!(seen[0].site(), site);
    assert!(seen[0].to_string().contains("exited while holding it (taken at "));
}

#[test]
fn a_hold_released_in_time_is_never_reported() {
    let reports = Arc::new(Reports::default());
    block_on(tracked({
        let reports = reports.clone();
        async move {
            let hold = register_external_hold(reports.clone(), None);
            assert!(hold.owner().is_some());
            assert!(hold.release());
            drop(register_external_hold(reports, None));
        }
    }));
    assert!(reports.taken().is_empty());
}

#[test]
fn a_tracked_task_dropped_unfinished_with_a_leaked_hold_reports_cancelled() {
    let reports = Arc::new(Reports::default());
    let task = tracked({
        let reports = reports.clone();
        async move {
            // A hold the cancel drops is released in time, like a guard: only one that
            // was leaked is still registered when the task goes.
            let _released_by_the_cancel = register_external_hold(reports.clone(), None);
            std::mem::forget(register_external_hold(reports, None));
            std::future::pending::<()>().await;
        }
    });
    let mut task = Box::pin(task);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(task.as_mut().poll(&mut cx).is_pending());
    drop(task);
    let seen = reports.taken();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].reason(), AbandonReason::Cancelled);
}

#[test]
fn outside_a_tracked_task_the_hold_is_anonymous_and_never_reported() {
    let reports = Arc::new(Reports::default());
    block_on(async {
        let hold = register_external_hold(reports.clone(), None);
        assert_eq!(hold.owner(), None);
        std::mem::forget(hold);
    });
    assert!(reports.taken().is_empty());
}

#[test]
fn a_hold_that_outlived_its_owner_says_so_when_released_and_is_reported_once() {
    let reports = Arc::new(Reports::default());
    let kept: Arc<Mutex<Option<ExternalHold>>> = Arc::default();
    block_on(tracked({
        let (reports, kept) = (reports.clone(), kept.clone());
        async move { *kept.lock().unwrap() = Some(register_external_hold(reports, None)) }
    }));
    assert_eq!(reports.taken().len(), 1);
    let hold = kept.lock().unwrap().take().unwrap();
    assert!(!hold.release(), "the exit reported it first");
    assert!(reports.taken().is_empty());
}

#[test]
fn a_release_from_another_thread_while_the_owner_lives_is_in_time() {
    let reports = Arc::new(Reports::default());
    block_on(tracked({
        let reports = reports.clone();
        async move {
            let hold = register_external_hold(reports, None);
            assert!(std::thread::spawn(move || hold.release()).join().unwrap());
        }
    }));
    assert!(reports.taken().is_empty());
}

use std::future::Future;
