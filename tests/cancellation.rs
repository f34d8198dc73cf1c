//! A critical section cut short by a cancellation never passes silently: `with_lock` /
//! `with_write` break the lock when their future is dropped half-way; a tracked task
//! dropped while it holds a borrowed guard is counted (or breaks the lock with
//! `break_on_cancel`); and nothing else is ever reported.

mod common;

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use common::{Polled, broken};
use futures::FutureExt;
use futures::executor::block_on;
use ownsync::{AbandonReason, AcquireError, Mutex, OwnerId, RwLock, tracked};

/// The line of the call just before this one's line, in this file.
#[track_caller]
fn line_above() -> u32 {
    Location::caller().line() - 1
}

// --- with_lock / with_write ---------------------------------------------------------

#[tokio::test]
async fn a_timeout_in_a_with_lock_section_breaks_it_naming_the_task_and_the_call() {
    let counter = Arc::new(Mutex::new((0u32, 0u32)));
    let (entered, is_entered) = tokio::sync::oneshot::channel::<()>();
    let task = tracked({
        let counter = counter.clone();
        async move {
            let site = line!() + 1;
            let update = counter.with_lock(async |pair| {
                pair.0 += 1;
                entered.send(()).unwrap();
                std::future::pending::<()>().await; // the slow second step
                pair.1 += 1;
            });
            let outcome = tokio::time::timeout(Duration::from_millis(1), update).await;
            (outcome.is_err(), site)
        }
    });
    let task_id = task.owner();
    let (timed_out, site) = task.await;
    assert!(timed_out);
    is_entered.await.unwrap();
    let err = broken(counter.lock().await);
    assert_eq!((err.owner(), err.reason()), (task_id, AbandonReason::Cancelled));
    let at = err.site().expect("the call site of with_lock");
    assert_eq!((at.file(), at.line()), (file!(), site));
    assert_eq!(counter.statistics().cut_short().count(), 1);
    assert!(err.to_string().contains("cancelled"), "{err}");
}

#[test]
fn a_section_that_returns_an_error_value_releases() {
    let mutex = Mutex::new(0);
    let result: Result<Result<(), &str>, AcquireError> = block_on(mutex.with_lock(async |n| {
        *n += 1;
        Err("refused")
    }));
    assert_eq!(result, Ok(Err("refused")));
    assert!(!mutex.is_broken());
    assert_eq!(*mutex.try_lock().unwrap(), 1);
    assert_eq!(mutex.statistics().cut_short().count(), 0);
}

#[test]
fn a_with_lock_cancelled_while_it_waits_breaks_nothing() {
    let mutex = Mutex::new(0);
    let guard = mutex.try_lock().unwrap();
    let mut waiting = Polled::new(mutex.with_lock(async |n| *n += 1));
    assert!(waiting.is_pending(), "queued behind the guard");
    drop(waiting);
    drop(guard);
    assert!(!mutex.is_broken());
    assert_eq!(*mutex.try_lock().unwrap(), 0, "the section never ran");
    assert_eq!(mutex.statistics().cut_short().count(), 0);
}

#[test]
fn a_with_lock_granted_but_never_polled_again_breaks_nothing() {
    // Handed the lock while queued, then dropped before it could run the section: the
    // grant passes on, as for `lock()`.
    let mutex = Mutex::new(0);
    let guard = mutex.try_lock().unwrap();
    let mut waiting = Polled::new(mutex.with_lock(async |n| *n += 1));
    assert!(waiting.is_pending());
    drop(guard); // granted to the waiter
    drop(waiting);
    assert!(!mutex.is_broken());
    assert!(mutex.try_lock().is_ok());
}

#[test]
fn a_panic_in_a_with_lock_section_still_breaks_it_as_panicked() {
    let mutex = Mutex::new(0);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(mutex.with_lock(async |n| {
            *n += 1;
            panic!("inside the section");
        }))
    }));
    assert!(caught.is_err());
    let err = broken(block_on(mutex.lock()));
    assert_eq!(err.reason(), AbandonReason::Panicked);
    assert_eq!(mutex.statistics().cut_short().count(), 0, "a panic is no cancellation");
}

#[test]
fn a_section_cut_short_is_repaired_and_the_mutex_is_whole_again() {
    let mutex = Mutex::new((1, 1));
    let cut = mutex.with_lock(async |pair| {
        pair.0 += 1;
        std::future::pending::<()>().await;
        pair.1 += 1;
    });
    assert!(cut.now_or_never().is_none());
    let err = broken(block_on(mutex.lock()));
    assert_eq!(err.reason(), AbandonReason::Cancelled);
    // An anonymous caller (no tracked task): a fresh id, no task's and no thread's.
    assert!(!err.owner().is_thread());
    assert_ne!(err.owner(), ownsync::current_owner());
    let mut repair = mutex.try_repair().unwrap();
    assert_eq!(*repair, (2, 1), "the torn state the section left");
    repair.1 = repair.0;
    repair.mark_consistent();
    assert_eq!(block_on(mutex.with_lock(async |pair| *pair)), Ok((2, 2)));
    assert!(!mutex.is_broken());
}

#[test]
fn with_write_breaks_when_cut_short_and_releases_when_finished() {
    let lock = RwLock::new(vec![1, 2]);
    assert_eq!(block_on(lock.with_write(async |v| v.pop())), Ok(Some(2)));
    assert!(!lock.is_broken());
    let task = tracked(lock.with_write(async |v| {
        v.clear();
        std::future::pending::<()>().await;
    }));
    let id = task.owner();
    assert!(task.now_or_never().is_none());
    let err = broken(block_on(lock.read()));
    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    assert_eq!(lock.statistics().cut_short().count(), 1);
}

// --- whole-task cancellation ----------------------------------------------------------

/// Spawns a tracked task that takes a borrowed guard of `mutex` and then waits forever;
/// returns once it holds the guard, with its id, its handle and the guard's line.
async fn holding_task(mutex: &Arc<Mutex<u32>>) -> (OwnerId, tokio::task::JoinHandle<()>, u32) {
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            let mut guard = mutex.lock().await.unwrap();
            let line = line_above();
            *guard += 1; // the first step of two
            locked.send(line).unwrap();
            std::future::pending::<()>().await;
            *guard += 1;
        }
    });
    let id = task.owner();
    let handle = tokio::spawn(task);
    let line = is_locked.await.unwrap();
    (id, handle, line)
}

#[tokio::test]
async fn an_aborted_task_holding_a_guard_is_counted_and_releases_by_default() {
    let mutex = Arc::new(Mutex::with_name(0, "counter"));
    let (id, handle, line) = holding_task(&mutex).await;
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    let cut_short = mutex.statistics().cut_short();
    assert_eq!(cut_short.count(), 1);
    let (owner, site) = cut_short.last().unwrap();
    assert_eq!(owner, id);
    assert_eq!(site.map(|site| (site.file(), site.line())), Some((file!(), line)));
    assert!(!mutex.is_broken(), "counted, not broken: cancel-safe code keeps working");
    assert_eq!(*mutex.lock().await.unwrap(), 1);
    assert!(format!("{mutex:?}").contains("cut_short: 1"), "{mutex:?}");
}

#[tokio::test]
async fn with_break_on_cancel_an_aborted_task_holding_a_guard_breaks_it_naming_the_task() {
    let mutex = Arc::new(Mutex::new(0).break_on_cancel());
    let (id, handle, line) = holding_task(&mutex).await;
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    let err = broken(mutex.lock().await);
    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    assert_eq!(err.site().map(|site| site.line()), Some(line));
    assert_eq!(mutex.statistics().cut_short().count(), 1);
    let mut repair = mutex.try_repair().unwrap();
    *repair = 2;
    repair.mark_consistent();
    assert_eq!(*mutex.lock().await.unwrap(), 2);
}

#[test]
fn a_task_cancelled_holding_a_write_guard_is_counted_or_breaks() {
    for break_on_cancel in [false, true] {
        let lock = if break_on_cancel { RwLock::new(0).break_on_cancel() } else { RwLock::new(0) };
        let task = tracked(async {
            let mut writer = lock.write().await.unwrap();
            *writer += 1;
            std::future::pending::<()>().await;
        });
        let id = task.owner();
        assert!(task.now_or_never().is_none());
        assert_eq!(lock.statistics().cut_short().count(), 1);
        assert_eq!(lock.statistics().cut_short().last().map(|(owner, _)| owner), Some(id));
        assert_eq!(lock.is_broken(), break_on_cancel);
        // A read guard is no section of a write: never counted.
        let reader = tracked(async {
            let _reader = lock.read().await;
            std::future::pending::<()>().await;
        });
        assert!(reader.now_or_never().is_none());
        assert_eq!(lock.statistics().cut_short().count(), 1);
    }
}

#[test]
fn a_nested_scope_cancelled_holding_a_guard_is_named() {
    let mutex = Mutex::new(0).break_on_cancel();
    let outer = tracked(async {
        let inner = tracked(async {
            let _guard = mutex.lock().await.unwrap();
            std::future::pending::<()>().await;
        });
        let inner_id = inner.owner();
        assert!(inner.now_or_never().is_none());
        inner_id
    });
    let inner_id = block_on(outer);
    let err = mutex.statistics().broken().cloned().expect("the cancelled scope broke it");
    assert_eq!((err.owner(), err.reason()), (inner_id, AbandonReason::Cancelled));
}

#[test]
fn a_guard_passed_out_of_a_completed_scope_is_cut_short_with_its_enclosing_task() {
    let mutex = Mutex::new(0);
    let outer = tracked(async {
        let _guard = tracked(async { mutex.lock().await.unwrap() }).await;
        std::future::pending::<()>().await;
    });
    let outer_id = outer.owner();
    assert!(outer.now_or_never().is_none());
    assert_eq!(mutex.statistics().cut_short().last().map(|(owner, _)| owner), Some(outer_id));
    assert!(!mutex.is_broken());
}

// --- never a false report -------------------------------------------------------------

#[test]
fn a_guard_dropped_before_the_cancellation_is_not_counted() {
    let mutex = Mutex::new(0).break_on_cancel();
    let task = tracked(async {
        *mutex.lock().await.unwrap() += 1; // a whole section
        std::future::pending::<()>().await;
    });
    assert!(task.now_or_never().is_none());
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
}

#[test]
fn an_owned_guard_moved_out_of_the_task_is_not_counted() {
    let mutex = Arc::new(Mutex::new(0).break_on_cancel());
    let (send, receive) = std::sync::mpsc::channel();
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            send.send(mutex.lock_owned().await.unwrap()).unwrap();
            std::future::pending::<()>().await;
        }
    });
    assert!(task.now_or_never().is_none());
    let mut guard = receive.recv().unwrap();
    *guard += 1; // still in use elsewhere
    drop(guard);
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
}

#[test]
fn an_owned_guard_dropped_with_the_cancelled_task_is_not_counted() {
    // It may have come from anywhere: its acquirer's cancellation is no evidence.
    let mutex = Arc::new(Mutex::new(0).break_on_cancel());
    let task = tracked({
        let mutex = mutex.clone();
        async move {
            let _guard = mutex.lock_owned().await.unwrap();
            std::future::pending::<()>().await;
        }
    });
    assert!(task.now_or_never().is_none());
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
}

#[test]
fn a_completed_task_is_not_counted() {
    let mutex = Mutex::new(0).break_on_cancel();
    block_on(tracked(async {
        let mut guard = mutex.lock().await.unwrap();
        futures::future::ready(()).await;
        *guard += 1;
    }));
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
}

#[test]
fn a_whole_section_run_while_the_task_is_dropped_is_not_counted() {
    // A `Drop` that locks and unlocks while the cancelled task's future is dropped: a
    // hold taken after the cancellation began is no section cut short.
    struct LocksOnDrop<'a>(&'a Mutex<u32>);
    impl Drop for LocksOnDrop<'_> {
        fn drop(&mut self) {
            *self.0.try_lock().unwrap() += 1;
        }
    }
    let mutex = Mutex::new(0).break_on_cancel();
    let task = tracked(async {
        let _on_drop = LocksOnDrop(&mutex);
        // A whole section first: its registration's slot is the one the drop's reuses.
        *mutex.lock().await.unwrap() += 1;
        std::future::pending::<()>().await;
    });
    assert!(task.now_or_never().is_none());
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
    assert_eq!(*mutex.try_lock().unwrap(), 2);
}

#[test]
fn an_untracked_future_dropped_with_a_guard_is_not_counted() {
    // No owner answers for an anonymous hold: tokio's behaviour, plus nothing.
    let mutex = Mutex::new(0).break_on_cancel();
    let future = async {
        let _guard = mutex.lock().await.unwrap();
        std::future::pending::<()>().await;
    };
    assert!(future.now_or_never().is_none());
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(!mutex.is_broken());
}

#[cfg(feature = "diagnostics")]
#[test]
fn the_process_wide_snapshot_counts_sections_cut_short() {
    let mutex = Mutex::with_name(0, "cut-short-in-snapshot");
    let task = tracked(async {
        let _guard = mutex.lock().await.unwrap();
        std::future::pending::<()>().await;
    });
    let id = task.owner();
    assert!(task.now_or_never().is_none());
    let snapshot = ownsync::diagnostics::snapshot();
    let mine = snapshot.primitives().iter().find(|p| p.name() == Some("cut-short-in-snapshot")).unwrap();
    assert_eq!(mine.cut_short().count(), 1);
    assert!(
        snapshot.to_string().contains(&format!("cut short by a cancellation, the last by {id}")),
        "{snapshot}"
    );
}
