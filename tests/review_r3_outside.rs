//! An outside review of round 3, written as tests that try to break it: sections cut
//! short racing a release on another thread, panics from the data's `Drop` inside a
//! section, nested sections, guards handed over before a cancellation, wakers that panic
//! during a break, counted repair and `release_on_behalf_of` racing grants and breaks,
//! external holds released while their owner exits, a watchdog stopped from its own
//! callback, and the `Debug` of what broke. Every test asserts an invariant the crate
//! promises; races are repeated, and wait on events (barriers, channels), never sleeps.

mod common;

use std::future::pending;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};

use common::{Polled, broken};
use futures::FutureExt;
use futures::executor::block_on;
use ownsync::{
    AbandonReason, CapacityLimiter, ExternalAbandonment, Mutex, MutexGuard, OwnerHook, RwLock, Semaphore,
    TryLockError, register_external_hold, tracked,
};

/// How often each race is run.
const ROUNDS: usize = 200;

/// A value whose drop panics while armed.
struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            panic!("bomb went off in Drop");
        }
    }
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panics");
    }
}

/// Polls `future` once with a waker that panics when woken.
fn poll_with_panicking_waker<F: std::future::Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(PanickingWaker));
    std::pin::Pin::new(future).poll(&mut Context::from_waker(&waker))
}

// --- with_lock / with_write ---------------------------------------------------------

/// A `with_lock` section inside a tracked task whose task is dropped: the cancellation
/// arms the hold and the section's own drop breaks it; counted once, not twice.
#[test]
fn a_with_lock_in_a_cancelled_task_is_counted_once_and_names_the_task() {
    let mutex = Mutex::new(0);
    let task = tracked(async {
        mutex
            .with_lock(async |n| {
                *n += 1;
                pending::<()>().await;
            })
            .await
    });
    let id = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    drop(task);
    let err = mutex.statistics().broken().cloned().expect("a section cut short breaks");
    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    let cut_short = mutex.statistics().cut_short();
    assert_eq!((cut_short.count(), cut_short.last().map(|(owner, _)| owner)), (1, Some(id)));
}

/// The section replaces the data and the old value's `Drop` panics: the section did not
/// finish, the panic propagates, and the lock breaks with `Panicked` (a panic keeps its
/// own rule: not counted as cut short). The repair gets the data back.
#[test]
fn a_with_lock_section_whose_data_panics_in_drop_breaks_the_mutex_as_panicked() {
    let mutex = Mutex::new(Bomb(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        block_on(mutex.with_lock(async |bomb| {
            *bomb = Bomb(false); // drops the armed bomb
        }))
    }));
    assert!(outcome.is_err(), "the data's panic reaches the caller");
    let err = mutex.statistics().broken().cloned().expect("broken by the panic");
    assert_eq!(err.reason(), AbandonReason::Panicked);
    assert_eq!(mutex.statistics().cut_short().count(), 0, "a panic is not a cancellation");
    assert!(matches!(mutex.try_lock(), Err(TryLockError::Broken(_))));
    let mut repair = mutex.try_repair().unwrap();
    std::mem::forget(std::mem::replace(&mut *repair, Bomb(false)));
    repair.mark_consistent();
    assert!(mutex.try_lock().is_ok());
}

/// A `with_lock` future dropped half-way while a local of the section panics in its
/// drop: the drop unwinds, the mutex is broken (never left locked or released as if the
/// section had finished).
#[test]
fn a_with_lock_cancelled_while_a_section_local_panics_in_drop_still_breaks() {
    let mutex = Mutex::new(0);
    let mut cut = Polled::new(mutex.with_lock(async |n| {
        let _bomb = Bomb(true);
        *n += 1;
        pending::<()>().await;
    }));
    assert!(cut.is_pending());
    assert!(catch_unwind(AssertUnwindSafe(move || drop(cut))).is_err());
    let err = mutex.statistics().broken().cloned().expect("a section cut short by a panicking drop breaks");
    assert!(matches!(err.reason(), AbandonReason::Cancelled | AbandonReason::Panicked), "{err}");
    assert!(matches!(mutex.try_lock(), Err(TryLockError::Broken(_))));
}

/// Nested sections on two locks, cut short while the inner one runs: both break, each
/// counted once.
#[test]
fn nested_with_lock_cut_short_inside_the_inner_section_breaks_both() {
    let (outer, inner) = (Mutex::new(0), RwLock::new(0));
    let mut both = Polled::new(outer.with_lock(async |a| {
        *a += 1;
        inner
            .with_write(async |b| {
                *b += 1;
                pending::<()>().await;
            })
            .await
            .unwrap();
    }));
    assert!(both.is_pending());
    drop(both);
    assert_eq!(outer.statistics().broken().map(|err| err.reason()), Some(AbandonReason::Cancelled));
    assert_eq!(inner.statistics().broken().map(|err| err.reason()), Some(AbandonReason::Cancelled));
    assert_eq!((outer.statistics().cut_short().count(), inner.statistics().cut_short().count()), (1, 1));
}

/// Nested sections where the inner one finished before the outer was cut short: only
/// the outer breaks; the finished inner section released.
#[test]
fn nested_with_lock_cut_short_after_the_inner_section_finished_breaks_only_the_outer() {
    let (outer, inner) = (Mutex::new(0), Mutex::new(0));
    let mut both = Polled::new(outer.with_lock(async |a| {
        inner.with_lock(async |b| *b += 1).await.unwrap();
        *a += 1;
        pending::<()>().await;
    }));
    assert!(both.is_pending());
    drop(both);
    assert!(outer.is_broken());
    assert!(!inner.is_broken());
    assert_eq!(inner.statistics().cut_short().count(), 0);
    assert_eq!(*inner.try_lock().unwrap(), 1);
}

/// Nested sections in a tracked task with `break_on_cancel` off, the task dropped: the
/// with_lock sections break (their own rule), a plain guard of a third lock is counted
/// and released; each lock counted exactly once.
#[test]
fn nested_sections_and_a_plain_guard_in_a_cancelled_task_are_each_counted_once() {
    let (outer, inner, plain) = (Mutex::new(0), Mutex::new(0), Mutex::new(0));
    let task = tracked(async {
        let _plain = plain.lock().await.unwrap();
        outer
            .with_lock(async |_| inner.with_lock(async |_| pending::<()>().await).await.unwrap())
            .await
            .unwrap();
    });
    let id = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    drop(task);
    for mutex in [&outer, &inner] {
        let err = mutex.statistics().broken().cloned().expect("a section cut short breaks");
        assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
        assert_eq!(mutex.statistics().cut_short().count(), 1);
    }
    assert!(!plain.is_broken(), "break_on_cancel is off: counted, released");
    assert_eq!(plain.statistics().cut_short().count(), 1);
    assert!(plain.try_lock().is_ok());
}

// --- tracked tasks cut short ----------------------------------------------------------

/// A borrowed guard moved into a sub-future of the task (a `join!` branch) that is still
/// alive at the cancellation is still the task's: counted, and with `break_on_cancel`
/// the lock breaks naming the task.
#[test]
fn a_guard_moved_into_a_live_sub_future_is_cut_short_with_its_task() {
    let mutex = Mutex::new(0).break_on_cancel();
    let (_keep, never) = futures::channel::oneshot::channel::<()>();
    let task = tracked(async {
        let guard = mutex.lock().await.unwrap();
        let holder = async move {
            let _guard = guard;
            pending::<()>().await;
        };
        let other = async { never.await.ok() };
        futures::join!(holder, other);
    });
    let id = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    drop(task);
    let err = mutex.statistics().broken().cloned().expect("broken on cancel");
    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    assert_eq!(mutex.statistics().cut_short().count(), 1);
}

/// `break_on_cancel`, the guard handed over to another live task before the cancel but
/// still dropped by the cancelled task's future: not the cancelled task's any more, so
/// neither counted nor broken; the lock is free.
#[test]
fn a_guard_handed_to_another_task_before_the_cancel_is_not_cut_short() {
    let mutex = Mutex::new(0).break_on_cancel();
    let receiver = tracked(pending::<()>());
    let receiver_id = receiver.owner();
    let task = tracked(async {
        let mut guard = mutex.lock().await.unwrap();
        MutexGuard::hand_to(&mut guard, receiver_id).unwrap();
        pending::<()>().await;
        drop(guard);
    });
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    drop(task);
    assert!(!mutex.is_broken(), "{:?}", mutex.statistics().broken());
    assert_eq!(mutex.statistics().cut_short().count(), 0);
    assert!(mutex.try_lock().is_ok());
    drop(receiver); // holds nothing any more
    assert!(!mutex.is_broken());
}

/// The guard handed over and moved to the receiver; the giver is cancelled (nothing
/// happens), then the receiver is cancelled holding it: broken naming the receiver.
#[test]
fn a_guard_handed_over_is_cut_short_with_its_receiver_not_its_giver() {
    let mutex = Mutex::new(0).break_on_cancel();
    let (send, received) = futures::channel::oneshot::channel::<MutexGuard<'_, i32>>();
    let receiver = tracked(async {
        let _guard = received.await.unwrap();
        pending::<()>().await;
    });
    let receiver_id = receiver.owner();
    let mut receiver = Polled::new(receiver);
    assert!(receiver.is_pending());
    let giver = tracked(async {
        let mut guard = mutex.lock().await.unwrap();
        MutexGuard::hand_to(&mut guard, receiver_id).unwrap();
        send.send(guard).unwrap();
        pending::<()>().await;
    });
    let mut giver = Polled::new(giver);
    assert!(giver.is_pending());
    drop(giver);
    assert!(!mutex.is_broken());
    assert!(receiver.is_pending(), "the receiver now holds the guard");
    drop(receiver);
    let err = mutex.statistics().broken().cloned().expect("the receiver was cancelled holding it");
    assert_eq!((err.owner(), err.reason()), (receiver_id, AbandonReason::Cancelled));
    assert_eq!(mutex.statistics().cut_short().count(), 1);
}

/// A task's cancellation races the release of its borrowed guard on another thread.
/// Whatever the schedule: the permit is never lost, the drop is counted at most once,
/// and by default a counted section is never also broken.
#[test]
fn a_cancellation_racing_a_release_elsewhere_never_loses_the_lock_nor_counts_twice() {
    for break_on_cancel in [false, true] {
        for _ in 0..ROUNDS {
            let mutex: &'static Mutex<u32> = {
                let mutex = Mutex::new(0);
                Box::leak(Box::new(if break_on_cancel { mutex.break_on_cancel() } else { mutex }))
            };
            let (send, received) = std::sync::mpsc::channel::<MutexGuard<'static, u32>>();
            let task = tracked(async move {
                send.send(mutex.lock().await.unwrap()).unwrap();
                pending::<()>().await;
            });
            let id = task.owner();
            let mut task = Polled::new(task);
            assert!(task.is_pending());
            let guard = received.recv().unwrap();
            let start = Arc::new(Barrier::new(2));
            let releaser = std::thread::spawn({
                let start = start.clone();
                move || {
                    start.wait();
                    drop(guard);
                }
            });
            start.wait();
            drop(task);
            releaser.join().unwrap();
            let count = mutex.statistics().cut_short().count();
            assert!(count <= 1, "counted {count} times");
            match mutex.statistics().broken().cloned() {
                Some(err) => {
                    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
                    assert!(break_on_cancel || count == 0, "counted and broken without break_on_cancel");
                }
                None => {
                    assert!(!break_on_cancel || count == 0, "counted with break_on_cancel but not broken");
                    assert!(mutex.try_lock().is_ok(), "released: the permit is back");
                }
            }
        }
    }
}

/// A waiter whose waker panics is woken by the break of a section cut short: the panic
/// reaches the dropper, yet every other waiter is woken and failed, and the lock is
/// broken and counted once.
#[test]
fn a_panicking_waker_during_a_cut_short_break_fails_every_waiter() {
    let mutex = Mutex::new(0);
    let mut cut = Polled::new(mutex.with_lock(async |_| pending::<()>().await));
    assert!(cut.is_pending());
    let mut first = Box::pin(mutex.lock());
    assert!(poll_with_panicking_waker(&mut first).is_pending());
    let mut second = Polled::new(mutex.lock());
    assert!(second.is_pending());
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(cut)));
    assert!(dropped.is_err(), "the waker's panic is carried on");
    assert_eq!(second.wakes(), 1, "woken despite the panic before it");
    assert_eq!(broken(second.ready()).reason(), AbandonReason::Cancelled);
    assert_eq!(broken(first.as_mut().now_or_never().unwrap()).reason(), AbandonReason::Cancelled);
    assert_eq!(mutex.statistics().cut_short().count(), 1);
}

/// The same with a tracked task and `break_on_cancel`: the waker's panic escapes the
/// task's drop half-way through it; the lock is broken naming the task, the other waiter
/// failed, and the task's second lock is not left held by nobody.
#[test]
fn a_panicking_waker_during_a_break_on_cancel_leaves_no_lock_held_by_nobody() {
    let (first_lock, second_lock) = (Mutex::new(0).break_on_cancel(), Mutex::new(0).break_on_cancel());
    let task = tracked(async {
        let _second = second_lock.lock().await.unwrap();
        let _first = first_lock.lock().await.unwrap(); // dropped first
        pending::<()>().await;
    });
    let id = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    let mut panicking = Box::pin(first_lock.lock());
    assert!(poll_with_panicking_waker(&mut panicking).is_pending());
    let mut waiter = Polled::new(first_lock.lock());
    assert!(waiter.is_pending());
    assert!(catch_unwind(AssertUnwindSafe(move || drop(task))).is_err());
    let err = first_lock.statistics().broken().cloned().expect("broken on cancel");
    assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Cancelled));
    assert_eq!(waiter.wakes(), 1);
    assert!(broken(waiter.ready()).owner() == id);
    match second_lock.try_lock() {
        Ok(_) => {}
        Err(TryLockError::Broken(err)) => assert_eq!(err.owner(), id),
        Err(other) => panic!("the task's second lock is held by nobody: {other:?}"),
    }
}

// --- counted repair and the limiter ------------------------------------------------------

/// Workers take and give back permits, tracked tasks leak one now and then (a break), and
/// a repairer repairs as fast as it can: once everyone stopped and a last repair ran, the
/// whole pool is back, never more, never less.
#[test]
fn counted_repair_racing_releases_and_breaks_gives_back_the_whole_pool() {
    const TOTAL: usize = 3;
    let sem = Arc::new(Semaphore::new(TOTAL));
    let stop = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let sem = sem.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS * 5 {
                    if let Ok(permit) = block_on(sem.acquire()) {
                        drop(permit);
                    }
                }
            })
        })
        .collect();
    let leaker = std::thread::spawn({
        let sem = sem.clone();
        move || {
            for _ in 0..ROUNDS {
                // Two permits at once: a repair must give back all it was owed, not one.
                block_on(tracked(async {
                    if let Ok(permits) = sem.acquire_many(2).await {
                        std::mem::forget(permits);
                    }
                }));
            }
        }
    });
    let repairer = std::thread::spawn({
        let (sem, stop) = (sem.clone(), stop.clone());
        move || {
            let mut repaired = 0;
            while stop.load(SeqCst) == 0 {
                if sem.try_repair().is_ok() {
                    repaired += 1;
                }
                std::thread::yield_now();
            }
            repaired
        }
    });
    for worker in workers {
        worker.join().unwrap();
    }
    leaker.join().unwrap();
    stop.store(1, SeqCst);
    let _ = repairer.join().unwrap();
    if sem.is_broken() {
        sem.try_repair().unwrap();
    }
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), TOTAL);
    let all = sem.try_acquire_many(TOTAL as u32).expect("the whole pool");
    assert!(sem.try_acquire().is_err(), "and not one permit more");
    drop(all);
}

/// The same for a limiter: after the race and a last repair, every token is back and no
/// borrower is left listed.
#[test]
fn a_limiters_counted_repair_racing_borrows_and_breaks_leaves_no_borrower() {
    const TOTAL: usize = 2;
    let limiter = Arc::new(CapacityLimiter::new(TOTAL));
    let stop = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS * 5 {
                    let _ = block_on(tracked(async { limiter.acquire().await.map(drop) }));
                }
            })
        })
        .collect();
    let leaker = std::thread::spawn({
        let limiter = limiter.clone();
        move || {
            for _ in 0..ROUNDS {
                block_on(tracked(async {
                    if let Ok(token) = limiter.acquire().await {
                        std::mem::forget(token);
                    }
                }));
            }
        }
    });
    let repairer = std::thread::spawn({
        let (limiter, stop) = (limiter.clone(), stop.clone());
        move || {
            while stop.load(SeqCst) == 0 {
                let _ = limiter.try_repair();
                std::thread::yield_now();
            }
        }
    });
    for worker in workers {
        worker.join().unwrap();
    }
    leaker.join().unwrap();
    stop.store(1, SeqCst);
    repairer.join().unwrap();
    if limiter.is_broken() {
        limiter.try_repair().unwrap();
    }
    assert!(!limiter.is_broken());
    assert_eq!((limiter.available_tokens(), limiter.borrowed_tokens()), (TOTAL, 0));
    assert!(limiter.statistics().borrowers().is_empty(), "{:?}", limiter.statistics());
}

/// A queued borrower's token released on its behalf from another thread while the
/// hand-off to it is under way: released exactly once, whatever the order; the token
/// its acquire then returns is spent, and dropping it gives nothing back twice.
#[test]
fn release_on_behalf_of_racing_the_grant_releases_exactly_once() {
    for _ in 0..ROUNDS {
        let limiter = Arc::new(CapacityLimiter::new(1));
        let borrower = tracked(pending::<()>());
        let id = borrower.owner();
        let holder = limiter.try_acquire().unwrap();
        let (queued, is_queued) = std::sync::mpsc::channel();
        let (release_done, released) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn({
            let limiter = limiter.clone();
            move || {
                let mut acquire = Polled::new(limiter.acquire_on_behalf_of(id));
                assert!(acquire.is_pending());
                queued.send(()).unwrap();
                let token = loop {
                    if let Poll::Ready(token) = acquire.poll() {
                        break token.unwrap();
                    }
                    std::thread::yield_now();
                };
                // Kept until the release on its behalf is done, then dropped: a spent
                // token gives nothing back.
                released.recv().unwrap();
                drop(token);
            }
        });
        is_queued.recv().unwrap();
        let start = Arc::new(Barrier::new(2));
        let releaser = std::thread::spawn({
            let (limiter, start) = (limiter.clone(), start.clone());
            move || {
                start.wait();
                while limiter.release_on_behalf_of(id).is_err() {
                    std::thread::yield_now();
                }
            }
        });
        start.wait();
        drop(holder); // the hand-off to the queued borrower
        releaser.join().unwrap();
        release_done.send(()).unwrap();
        waiter.join().unwrap();
        assert!(!limiter.is_broken());
        assert_eq!((limiter.available_tokens(), limiter.borrowed_tokens()), (1, 0));
        assert!(limiter.statistics().borrowers().is_empty());
        drop(borrower);
        assert!(!limiter.is_broken(), "the borrower exits holding nothing");
        assert_eq!(limiter.available_tokens(), 1);
    }
}

// --- external holds ------------------------------------------------------------------

#[derive(Default)]
struct CountingHook(AtomicUsize);

impl OwnerHook for CountingHook {
    fn abandoned(&self, _: &ExternalAbandonment) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// An external hold released on another thread while its task exits: either the release
/// came first (it says so, and the hook hears nothing) or the exit did (the release says
/// it was too late, and the hook hears of it once). Never both, never neither.
#[test]
fn an_external_hold_released_while_its_owner_exits_is_settled_exactly_once() {
    for _ in 0..ROUNDS {
        let hook = Arc::new(CountingHook::default());
        let (send, received) = std::sync::mpsc::channel();
        let (finish, finished) = futures::channel::oneshot::channel::<()>();
        let task = tracked({
            let hook = hook.clone();
            async move {
                send.send(register_external_hold(hook, None)).unwrap();
                finished.await.unwrap();
            }
        });
        let mut task = Polled::new(task);
        assert!(task.is_pending());
        let hold = received.recv().unwrap();
        assert!(hold.owner().is_some());
        let start = Arc::new(Barrier::new(2));
        let releaser = std::thread::spawn({
            let start = start.clone();
            move || {
                start.wait();
                hold.release()
            }
        });
        start.wait();
        finish.send(()).unwrap();
        task.ready();
        let released_in_time = releaser.join().unwrap();
        assert_eq!(
            hook.0.load(SeqCst),
            usize::from(!released_in_time),
            "released in time: {released_in_time}"
        );
    }
}

// --- Debug of what broke -------------------------------------------------------------

/// The `Debug` of a lock broken by a section cut short names who broke it and why, and
/// the statistics show the count; a locked one does not peek at the data.
#[test]
fn debug_of_a_lock_cut_short_names_the_task_and_the_reason() {
    let mutex = Mutex::new("the-secret-data");
    let task = tracked(async { mutex.with_lock(async |_| pending::<()>().await).await });
    let id = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    let locked = format!("{mutex:?}");
    assert!(!locked.contains("the-secret-data"), "the data is not read while locked: {locked}");
    assert!(locked.contains("<locked>"), "{locked}");
    drop(task);
    let shown = format!("{mutex:?}");
    assert!(shown.contains(&id.to_string()) && shown.to_lowercase().contains("cancel"), "{shown}");
    let statistics = format!("{:?}", mutex.statistics());
    assert!(statistics.contains("cut_short: CutShort { count: 1"), "{statistics}");
    let rwlock = RwLock::new(0).break_on_cancel();
    let writer = tracked(async {
        let _writer = rwlock.write().await.unwrap();
        pending::<()>().await;
    });
    let writer_id = writer.owner();
    assert!(writer.now_or_never().is_none());
    let shown = format!("{rwlock:?}");
    assert!(shown.contains(&writer_id.to_string()), "{shown}");
    let statistics = format!("{:?}", rwlock.statistics());
    assert!(statistics.contains("cut_short: CutShort { count: 1"), "{statistics}");
}

// --- the watchdog ----------------------------------------------------------------------

/// A watchdog whose handle is dropped by its own callback stops (no self-join hang), and
/// its thread ends: the callback, which it owns, is dropped.
#[cfg(feature = "diagnostics")]
#[test]
fn a_watchdog_dropped_from_its_own_callback_stops_without_a_hang() {
    use ownsync::diagnostics::{Watchdog, WatchdogHandle};
    use std::time::Duration;

    let sem = Semaphore::new(0);
    let mut stuck = Polled::new(tracked(sem.acquire()));
    assert!(stuck.is_pending());
    let slot: Arc<std::sync::Mutex<Option<WatchdogHandle>>> = Arc::default();
    let (called, was_called) = std::sync::mpsc::channel::<()>();
    let (alive, ended) = std::sync::mpsc::channel::<()>();
    let handle = Watchdog::new(Duration::from_millis(1))
        .overdue_after(Duration::ZERO)
        .on_report({
            let slot = slot.clone();
            move |_| {
                let _alive = &alive;
                if let Some(handle) = slot.lock().unwrap().take() {
                    drop(handle); // drops the handle of the thread running this
                    called.send(()).unwrap();
                }
            }
        })
        .start();
    *slot.lock().unwrap() = Some(handle);
    was_called.recv().unwrap();
    // The thread ends after the callback returns, dropping the callback and its sender.
    assert!(ended.recv().is_err(), "the watchdog thread ended");
    drop(stuck);
}

// --- a condition wait cancelled ---------------------------------------------------------

/// A tracked task cancelled while it waits on a condition (its guard given to the wait)
/// is cancelled while waiting, not inside a section: with `break_on_cancel` nothing
/// breaks and nothing is counted, whether the wait was notified (and granted the mutex
/// back, not yet polled) or not.
#[test]
fn a_task_cancelled_in_a_condition_wait_breaks_nothing() {
    for notified in [false, true] {
        let mutex = Mutex::new(0).break_on_cancel();
        let condition = ownsync::Condition::new();
        let task = tracked(async {
            let guard = mutex.lock().await.unwrap();
            let _guard = condition.wait(guard).await.unwrap();
            pending::<()>().await;
        });
        let mut task = Polled::new(task);
        assert!(task.is_pending());
        assert!(mutex.try_lock().is_ok(), "the wait gave the mutex back");
        if notified {
            condition.notify_one(); // the mutex is free: granted to the waiter at once
            assert_eq!(task.wakes(), 1);
        }
        drop(task);
        assert!(!mutex.is_broken(), "notified: {notified}: {:?}", mutex.statistics().broken());
        assert_eq!(mutex.statistics().cut_short().count(), 0, "notified: {notified}");
        assert!(mutex.try_lock().is_ok(), "notified: {notified}: the grant went back");
    }
}

// --- the tower layer ---------------------------------------------------------------------

/// A request cut short (its response future dropped, a timeout) while its handler holds
/// a borrowed guard: the request is a tracked scope, so the section is cut short in its
/// name: counted by default, broken with `break_on_cancel`; the request's token goes back
/// either way.
#[cfg(feature = "tower")]
#[test]
fn a_request_cut_short_holding_a_guard_is_counted_or_broken_in_the_requests_name() {
    use std::convert::Infallible;
    use tower::{Layer, Service, ServiceExt, service_fn};

    for break_on_cancel in [false, true] {
        let mutex: &'static Mutex<u32> = {
            let mutex = Mutex::new(0);
            Box::leak(Box::new(if break_on_cancel { mutex.break_on_cancel() } else { mutex }))
        };
        let (reached, at_await) = std::sync::mpsc::channel::<()>();
        let reached = std::sync::Mutex::new(reached);
        let mut limited = ownsync::tower::CapacityLimitLayer::new(1).layer(service_fn(move |()| {
            let reached = reached.lock().unwrap().clone();
            async move {
                let mut guard = mutex.lock().await.unwrap();
                *guard += 1;
                reached.send(()).unwrap();
                pending::<()>().await;
                *guard += 1;
                Ok::<_, Infallible>("never")
            }
        }));
        block_on(limited.ready()).unwrap();
        let response = limited.call(());
        let request = response.owner();
        let mut response = Polled::new(response);
        assert!(response.is_pending());
        at_await.recv().unwrap();
        drop(response);
        let cut_short = mutex.statistics().cut_short();
        assert_eq!((cut_short.count(), cut_short.last().map(|(owner, _)| owner)), (1, Some(request)));
        assert_eq!(mutex.is_broken(), break_on_cancel);
        if let Some(err) = mutex.statistics().broken() {
            assert_eq!((err.owner(), err.reason()), (request, AbandonReason::Cancelled));
        }
        assert_eq!(limited.limiter().available_tokens(), 1, "the request's token is back");
        assert!(!limited.limiter().is_broken());
    }
}

// --- an abandoned writer's downgrade ---------------------------------------------------

/// A writer's guard let out of its task is downgraded (and the read guard dropped) on
/// another thread while the task ends: if the exit came first the lock is broken naming
/// the task, and once the guard is gone every permit is back, so a repair succeeds; if
/// the release came first nothing is broken. Either way the lock ends whole.
#[test]
fn an_abandoned_writers_downgrade_racing_the_exit_leaves_the_lock_repairable() {
    for _ in 0..ROUNDS {
        let lock: &'static RwLock<u32> = Box::leak(Box::new(RwLock::new(0)));
        let (send, received) = std::sync::mpsc::channel();
        let (finish, finished) = futures::channel::oneshot::channel::<()>();
        let task = tracked(async move {
            send.send(lock.write().await.unwrap()).unwrap();
            finished.await.unwrap();
        });
        let id = task.owner();
        let mut task = Polled::new(task);
        assert!(task.is_pending());
        let writer = received.recv().unwrap();
        let start = Arc::new(Barrier::new(2));
        let downgrader = std::thread::spawn({
            let start = start.clone();
            move || {
                start.wait();
                drop(writer.downgrade());
            }
        });
        start.wait();
        finish.send(()).unwrap();
        task.ready();
        downgrader.join().unwrap();
        // Released before the exit: nothing to abandon. Otherwise the exit broke it.
        if let Some(err) = lock.statistics().broken().cloned() {
            assert_eq!((err.owner(), err.reason()), (id, AbandonReason::Exited));
            let repair = lock.try_repair().expect("every permit is back once the guard is gone");
            repair.mark_consistent();
        }
        assert!(lock.try_write().is_ok(), "whole: no permit lost");
    }
}

/// The deterministic form of the race above, in its narrowest window: the task's guard
/// lives on another thread, which releases it (its section finished there) while the task
/// is being cancelled, after the cancellation armed the lock and before the task's future
/// is gone. The guard never lived in the task's future, so this is no section cut short
/// (a cut short is "a guard alive in the future when it is dropped"); a release that
/// came a moment earlier is a plain release. Yet the arm takes it for one: counted, and
/// with `break_on_cancel` the lock breaks though its section finished.
#[test]
fn a_guard_released_elsewhere_during_the_cancellation_is_not_cut_short() {
    /// Dropped with the task's future, after the arming: lets the other thread release
    /// the guard, and waits until it did.
    struct ReleaseElsewhereNow {
        release: std::sync::mpsc::Sender<()>,
        released: std::sync::mpsc::Receiver<()>,
    }
    impl Drop for ReleaseElsewhereNow {
        fn drop(&mut self) {
            self.release.send(()).unwrap();
            self.released.recv().unwrap();
        }
    }
    let mutex: &'static Mutex<u32> = Box::leak(Box::new(Mutex::new(0).break_on_cancel()));
    let (send, received) = std::sync::mpsc::channel::<MutexGuard<'static, u32>>();
    let (release, do_release) = std::sync::mpsc::channel::<()>();
    let (done, released) = std::sync::mpsc::channel::<()>();
    let rendezvous = ReleaseElsewhereNow { release, released };
    let task = tracked(async move {
        let _rendezvous = rendezvous;
        send.send(mutex.lock().await.unwrap()).unwrap();
        pending::<()>().await;
    });
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    let guard = received.recv().unwrap();
    let elsewhere = std::thread::spawn(move || {
        do_release.recv().unwrap();
        drop(guard); // its section is over: an ordinary release
        done.send(()).unwrap();
    });
    drop(task);
    elsewhere.join().unwrap();
    assert_eq!(mutex.statistics().cut_short().count(), 0, "released by its holder, not cut short");
    assert!(!mutex.is_broken(), "{:?}", mutex.statistics().broken());
}
