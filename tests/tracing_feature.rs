//! The `tracing` feature: one event when a primitive breaks (who, why, how many waiters
//! were woken) and one when an abandoned hold is reclaimed.
#![cfg(feature = "tracing")]

mod common;

#[path = "common/recorder.rs"]
mod recorder;

use common::Polled;
use futures::executor::block_on;
use ownsync::{AbandonPolicy, Lock, Semaphore, tracked};
use recorder::Recorder;
use tracing::Level;

#[test]
fn a_break_says_who_why_and_how_many_waiters_were_woken() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let lock = Lock::with_name((), "ledger");
        let (finish, finished) = futures::channel::oneshot::channel::<()>();
        let holder = tracked(async {
            std::mem::forget(lock.lock().await.unwrap());
            finished.await.unwrap();
        });
        let owner = holder.owner();
        let mut holder = Polled::new(holder);
        assert!(holder.is_pending(), "the holder holds and waits");
        let mut waiters = [Polled::new(lock.lock()), Polled::new(lock.lock())];
        assert!(waiters.iter_mut().all(Polled::is_pending));
        assert!(recorder.events().is_empty(), "nothing is traced before an abandonment");

        finish.send(()).unwrap();
        holder.ready(); // exits holding the lock: broken
        assert!(waiters.iter_mut().all(|waiter| waiter.ready().is_err()));

        let event = recorder.only_event(Level::WARN);
        assert_eq!(event.fields["primitive"], "mutex");
        assert_eq!(event.fields["name"], "ledger");
        assert_eq!(event.fields["owner"], owner.to_string());
        assert_eq!(event.fields["reason"], "exited");
        assert_eq!(event.fields["waiters_woken"], "2");
    });
}

#[test]
fn a_reclaim_says_who_and_how_many_permits_came_back() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let semaphore = Semaphore::with_policy(3, AbandonPolicy::Reclaim);
        let leaker = tracked(async { std::mem::forget(semaphore.acquire_many(2).await.unwrap()) });
        let owner = leaker.owner();
        block_on(leaker);
        assert_eq!(semaphore.available_permits(), 3);

        let event = recorder.only_event(Level::INFO);
        assert_eq!(event.fields["primitive"], "semaphore");
        assert_eq!(event.fields["owner"], owner.to_string());
        assert_eq!(event.fields["reason"], "exited");
        assert_eq!(event.fields["permits"], "2");
    });
}

#[test]
fn only_the_abandonment_that_breaks_is_traced_as_a_break() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let semaphore = Semaphore::new(2);
        let leaker = || {
            let (finish, finished) = futures::channel::oneshot::channel::<()>();
            let task = Polled::new(tracked(async {
                std::mem::forget(semaphore.acquire().await.unwrap());
                finished.await.unwrap();
            }));
            (finish, task)
        };
        let (mut first, mut second) = (leaker(), leaker());
        assert!(first.1.is_pending() && second.1.is_pending(), "both hold a permit");
        first.0.send(()).unwrap();
        first.1.ready();
        second.0.send(()).unwrap();
        second.1.ready();
        assert_eq!(semaphore.statistics().abandoned().count(), 2);
        let breaks = recorder.events().into_iter().filter(|e| e.level == Level::WARN).count();
        assert_eq!(breaks, 1);
    });
}

/// DESIGN.md 2b: a self-wait (a task's sub-future waiting for the mutex another
/// sub-future of the same task holds) is no error, but once it lasts past the threshold
/// it is reported, once, naming the owner; a wait by another owner is not a self-wait.
#[test]
fn a_lasting_self_wait_is_reported_once_and_other_waits_are_not() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        // Zero: every self-wait has lasted long enough by the first check (no sleeping).
        ownsync::diagnostics::set_self_wait_warning(Some(std::time::Duration::ZERO));
        let lock = Lock::with_name((), "cache");
        let (release, released) = futures::channel::oneshot::channel::<()>();
        let task = tracked(async {
            let holder = async {
                let _guard = lock.lock().await.unwrap();
                released.await.unwrap();
            };
            let sibling = async { drop(lock.lock().await.unwrap()) };
            futures::join!(holder, sibling);
        });
        let (holder_line, sibling_line) = (line!() - 6, line!() - 3);
        let owner = task.owner();
        let mut task = Polled::new(task);
        assert!(task.is_pending(), "the sibling waits behind the holder");
        let mut other = Polled::new(lock.lock());
        assert!(other.is_pending(), "another owner's wait");
        assert_eq!(lock.statistics().self_waits(), 1);
        let event = recorder.only_event(Level::WARN);
        assert_eq!(event.fields["primitive"], "mutex");
        assert_eq!(event.fields["name"], "cache");
        assert_eq!(event.fields["owner"], owner.to_string());
        assert!(event.fields["message"].contains("self-wait"), "{event:?}");
        // Both sites: where the sibling waits, and where the holding sub-future took it.
        let (wait_line, hold_line) = (sibling_line, holder_line);
        assert_eq!(event.fields["site"], format!("{}:{wait_line}:45", file!()), "{event:?}");
        assert!(event.fields["held_at"].starts_with(&format!("{}:{hold_line}:", file!())), "{event:?}");

        release.send(()).unwrap();
        task.ready();
        assert!(other.ready().is_ok());
        assert!(!lock.is_broken());
        assert_eq!(recorder.events().len(), 1, "reported once, and only the self-wait");
        ownsync::diagnostics::set_self_wait_warning(None);
    });
}

/// An anonymous hold taken in an untracked tokio task is reported once per acquire site:
/// the second hold taken at the same site says nothing more; another site speaks once.
#[cfg(feature = "tokio")]
#[test]
fn an_anonymous_hold_in_an_untracked_tokio_task_is_reported_once_per_site() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let semaphore = std::sync::Arc::new(Semaphore::with_name(4, "pool"));
        runtime.block_on(async {
            let task = tokio::spawn({
                let semaphore = semaphore.clone();
                async move {
                    for _ in 0..3 {
                        drop(semaphore.acquire().await.unwrap()); // one site, three holds
                    }
                }
            });
            task.await.unwrap();
        });
        assert_eq!(semaphore.statistics().anonymous_holds(), 3);
        let event = recorder.only_event(Level::WARN);
        assert_eq!(event.fields["primitive"], "semaphore");
        assert_eq!(event.fields["name"], "pool");
        assert!(event.fields["site"].starts_with("tests/tracing_feature.rs:"), "{:?}", event.fields);
        let message = &event.fields["message"];
        assert!(
            message.contains(
                "anonymous hold: abandonment cannot be detected here; use track_all, ownsync::tokio::spawn or tracked"
            ),
            "{message}"
        );

        // Another site: one more event. Holds outside a task: none.
        runtime.block_on(async {
            let semaphore = semaphore.clone();
            tokio::spawn(async move { drop(semaphore.acquire().await.unwrap()) }).await.unwrap();
        });
        runtime.block_on(async { drop(semaphore.acquire().await.unwrap()) });
        assert_eq!(recorder.events().len(), 2, "{:?}", recorder.events());
        assert_eq!(semaphore.statistics().anonymous_holds(), 4);
    });
}

/// A tracked task cancelled while it holds a borrowed guard: one WARN naming the task,
/// the mutex and where the guard was taken (the lock is released: counted, not broken).
#[test]
fn a_section_cut_short_by_a_cancellation_is_reported() {
    use futures::FutureExt;
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let mutex = ownsync::Mutex::with_name((0, 0), "ledger");
        let task = tracked(async {
            let mut pair = mutex.lock().await.unwrap();
            pair.0 += 1;
            std::future::pending::<()>().await;
            pair.1 += 1;
        });
        let line = line!() - 5;
        let owner = task.owner();
        assert!(task.now_or_never().is_none());
        let event = recorder.only_event(Level::WARN);
        assert_eq!(event.fields["primitive"], "mutex");
        assert_eq!(event.fields["name"], "ledger");
        assert_eq!(event.fields["owner"], owner.to_string());
        assert!(event.fields["site"].starts_with(&format!("{}:{line}:", file!())), "{event:?}");
        assert!(event.fields["message"].contains("cut short"), "{event:?}");
        assert!(!mutex.is_broken());
    });
}
