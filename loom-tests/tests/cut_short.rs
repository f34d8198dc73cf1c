//! Loom model of a section cut short by a cancellation: a tracked task that answers for
//! a mutex guard is cancelled (dropped) on one thread while the guard is dropped (its
//! section ends) on another. The race is decided once, by the hold's ticket: the end is
//! counted as cut short once or not at all, and a section that had finished before the
//! cancellation began is never counted and never breaks the mutex.
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release --test cut_short`
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;
use loom_tests::model;
use ownsync::{AbandonReason, Mutex, OwnedMutexGuard, tracked};

fn race(break_on_cancel: bool) {
    model(move || {
        let mutex = Arc::new(if break_on_cancel { Mutex::new(()).break_on_cancel() } else { Mutex::new(()) });
        let task = Box::pin(tracked(std::future::pending::<()>()));
        let task_id = task.owner();
        let mut guard = mutex.clone().try_lock_owned().unwrap();
        // The task answers for it from now on: a certainly owned hold.
        OwnedMutexGuard::hand_to(&mut guard, task_id).unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let end = thread::spawn({
            let finished = finished.clone();
            move || {
                drop(guard); // the section ends here
                finished.store(true, SeqCst);
            }
        });
        let finished_before = finished.load(SeqCst);
        drop(task); // the cancellation
        end.join().unwrap();

        let cut_short = mutex.statistics().cut_short().count();
        let broken = mutex.statistics().broken().cloned();
        assert!(cut_short <= 1, "counted once at most");
        if finished_before {
            assert_eq!(cut_short, 0, "a finished section is never cut short");
            assert!(broken.is_none(), "never a break after a finished section");
        }
        if let Some(err) = &broken {
            // Cut short with break_on_cancel, or still out when the task's exit came.
            assert_eq!((err.owner(), err.reason()), (task_id, AbandonReason::Cancelled));
        }
        if cut_short == 1 {
            assert_eq!(broken.is_some(), break_on_cancel, "counted: broken only if asked");
        }
        if broken.is_none() {
            assert!(mutex.try_lock().is_ok(), "released exactly once");
        }
    });
}

#[test]
fn a_cancellation_races_the_sections_end_elsewhere_counted() {
    race(false);
}

#[test]
fn a_cancellation_races_the_sections_end_elsewhere_broken() {
    race(true);
}
