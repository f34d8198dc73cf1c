//! Unit tests of the core: the state word, hand-offs, fairness, orphans and budgets.

use std::time::Duration;

use super::permits::FAIR_INTERVAL;
use super::*;
use crate::error::{AbandonReason, AcquireError, TryAcquireError};
use crate::lot::Outcome;
use crate::owner::{Abandon, Abandoner, Caller, OrphanSplit};
use futures::FutureExt;

fn core(permits: usize) -> SemCore {
    SemCore::new(permits, PrimitiveKind::Semaphore, None, AbandonPolicy::Break)
}

#[test]
fn fast_paths_refuse_while_anyone_waits() {
    let core = core(1);
    core.try_acquire(1, Caller::Async).unwrap();
    let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(waiter.as_mut().now_or_never().is_none());
    assert!(core.is_contended());
    core.release(1); // handed to the waiter, not to the pool
    assert_eq!(core.available(), 0);
    assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits));
    assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())));
    // The hand-off to the last waiter leaves `SLOW` while nothing is free; the next
    // release clears it (in the CAS that returns the permit), and the fast paths run
    // again.
    assert!(core.is_contended());
    core.release(1);
    assert!(!core.is_contended());
    assert_eq!(core.available(), 1);
    assert_eq!(core.try_acquire(1, Caller::Async), Ok(()));
}

#[test]
fn a_grant_from_another_thread_is_collected_and_a_dropped_grant_passes_on() {
    let core = core(1);
    core.try_acquire(1, Caller::Async).unwrap();
    let mut first = Box::pin(core.acquire(1, Caller::Async, None));
    let mut second = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(first.as_mut().now_or_never().is_none());
    assert!(second.as_mut().now_or_never().is_none());
    // The releasing thread settles `first` through the queue's pointer into it.
    std::thread::scope(|scope| scope.spawn(|| core.release(1)).join().unwrap());
    assert_eq!(first.as_mut().now_or_never(), Some(Ok(())));
    drop(first);
    // Granted to `second` on another thread, then dropped unpolled: passed back.
    std::thread::scope(|scope| scope.spawn(|| core.release(1)).join().unwrap());
    drop(second);
    assert_eq!(core.available(), 1);
    assert!(!core.is_contended());
}

#[test]
fn a_break_fails_every_waiter_through_its_settlement() {
    let core = core(1);
    core.try_acquire(1, Caller::Async).unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| Box::pin(core.acquire(1, Caller::Async, None))).collect();
    for waiter in &mut waiters {
        assert!(waiter.as_mut().now_or_never().is_none());
    }
    let owner = Abandoner { id: crate::owner::current_owner(), name: None };
    std::thread::scope(|scope| {
        scope.spawn(|| core.abandon(&owner, AbandonReason::Exited, 1, None)).join().unwrap()
    });
    for waiter in &mut waiters {
        assert!(matches!(waiter.as_mut().now_or_never(), Some(Err(AcquireError::Broken(_)))));
    }
}

#[test]
fn debt_is_paid_before_permits_return() {
    let core = core(2);
    core.try_acquire(2, Caller::Async).unwrap();
    core.set_pool_total(1);
    assert_eq!(core.pool(), (1, 2), "shrinking never revokes");
    core.release(1);
    assert_eq!(core.available(), 0, "the first released permit pays the debt");
    assert_eq!(core.pool(), (1, 1));
    core.release(1);
    assert_eq!(core.available(), 1);
    assert_eq!(core.pool(), (1, 0));
    assert!(!core.is_contended());
}

/// The one `unsafe` read of the diagnostics (under Miri too): the holder's site goes
/// into an atomic pointer and comes back as the same `&'static Location`.
#[test]
fn the_holders_site_round_trips_and_clears() {
    let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
    let site = crate::owner::caller_site();
    core.record_holder(crate::owner::current_owner(), site);
    assert_eq!(core.holder_site(), site);
    assert_eq!(core.holder_site().unwrap().line(), line!() - 3);
    core.clear_holder();
    assert_eq!(core.holder_site(), None);
}

/// An eventually fair mutex core, held, its next contended release set to barge
/// (`fair: false`) or to hand over strictly (`true`).
fn barging_mutex(fair: bool) -> SemCore {
    let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
    core.set_eventually_fair();
    core.try_acquire(1, Caller::Async).unwrap();
    let now = std::time::Instant::now();
    let deadline = if fair { now } else { now + Duration::from_secs(3600) };
    core.shared.lock().fair_deadline = Some(deadline);
    core
}

#[test]
fn an_eventually_fair_release_wakes_the_head_and_anyone_may_take_the_lock() {
    let core = barging_mutex(false);
    let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(waiter.as_mut().now_or_never().is_none());
    assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits));
    core.release(1);
    assert_eq!(waiter.outcome(), Outcome::Woken, "woken to try, not granted");
    core.try_acquire(1, Caller::Async).expect("barging: a free lock is anyone's");
    let mut later = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(later.as_mut().now_or_never().is_none());
    // The woken waiter lost: it queues again at the front, ahead of the later one.
    assert!(waiter.as_mut().now_or_never().is_none());
    core.release(1);
    assert_eq!(waiter.outcome(), Outcome::Woken, "the front waiter is woken again");
    assert_eq!(later.outcome(), Outcome::Waiting);
    assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())), "and takes the lock");
    core.release(1);
    assert_eq!(later.as_mut().now_or_never(), Some(Ok(())));
}

#[test]
fn an_eventually_fair_release_hands_over_strictly_when_its_turn_is_due() {
    let core = barging_mutex(true);
    let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(waiter.as_mut().now_or_never().is_none());
    let released_at = std::time::Instant::now();
    core.release(1);
    assert_eq!(waiter.outcome(), Outcome::Granted);
    assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::NoPermits), "no barging past it");
    // No clock comparison against "now" (a slow run, Miri, may pass the interval):
    // the turn moved the deadline to one interval after the release.
    assert!(
        core.shared.lock().fair_deadline.unwrap() >= released_at + FAIR_INTERVAL,
        "the next one is due an interval later"
    );
    assert_eq!(waiter.as_mut().now_or_never(), Some(Ok(())));
}

/// A woken waiter dropped before it tried passes the wake on: nobody sleeps while the
/// lock is free.
#[test]
fn a_woken_waiter_that_is_dropped_wakes_the_next() {
    let core = barging_mutex(false);
    let mut first = Box::pin(core.acquire(1, Caller::Async, None));
    let mut second = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(first.as_mut().now_or_never().is_none());
    assert!(second.as_mut().now_or_never().is_none());
    core.release(1);
    assert_eq!(first.outcome(), Outcome::Woken);
    assert_eq!(second.outcome(), Outcome::Waiting);
    drop(first);
    assert_eq!(second.outcome(), Outcome::Woken, "the wake was passed on");
    assert_eq!(second.as_mut().now_or_never(), Some(Ok(())));
}

/// A close reaches a woken waiter too, when it tries.
#[test]
fn a_woken_waiter_sees_a_close() {
    let core = barging_mutex(false);
    let mut waiter = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(waiter.as_mut().now_or_never().is_none());
    core.release(1);
    core.close();
    assert_eq!(waiter.as_mut().now_or_never(), Some(Err(AcquireError::Closed)));
}

/// The direct hand-off of released permits must not strand free ones: a head that
/// wanted more than were free takes the released permits, and the next waiter the
/// free one (found by the model fuzz).
#[test]
fn a_release_to_a_big_head_also_serves_the_next_from_free_permits() {
    let core = core(1);
    let mut big = Box::pin(core.acquire(2, Caller::Async, None));
    let mut small = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(big.as_mut().now_or_never().is_none(), "1 free, 2 wanted");
    assert!(small.as_mut().now_or_never().is_none(), "FIFO: behind the big one");
    core.add_pool_permits(2);
    assert_eq!(big.as_mut().now_or_never(), Some(Ok(())));
    assert_eq!(small.as_mut().now_or_never(), Some(Ok(())), "the free permit was not stranded");
    assert_eq!(core.available(), 0);
}

/// An owner's exit claims a moved hold, then counts it as orphaned; the hold's release
/// elsewhere adopts it, and may come in between (found by the storm, modelled in
/// loom's `task_exit_races_a_release_elsewhere`). Either order ends uncounted.
#[test]
fn an_orphan_adopted_before_it_is_counted_is_never_counted() {
    let core = core(1);
    let owner = Abandoner { id: crate::owner::current_owner(), name: None };
    core.adopt_orphan((1, 2)); // released between the exit's claim and its count
    core.orphan(&owner, 1, None, (1, 2));
    core.orphan(&owner, 1, None, (3, 4)); // counted, then released
    assert_eq!(core.shared.lock().orphans.len(), 1);
    core.adopt_orphan((3, 4));
    let shared = core.shared.lock();
    assert!(shared.orphans.is_empty() && shared.adopted_before_counted.is_empty());
}

/// The same race for a split (issue 29, defect 7): an orphan split between the exit's
/// claim and its count is counted as its two halves, each of its own permits, and
/// either half's release un-counts only that half.
#[test]
fn an_orphan_split_before_it_is_counted_is_counted_as_two() {
    let core = core(3);
    let id = crate::owner::current_owner();
    let owner = Abandoner { id, name: None };
    let split = OrphanSplit { tag: (1, 2), kept: 2, piece: (1, 9), taken: 1, acquirer: id };
    core.split_orphan(split); // split between the exit's claim and its count
    core.orphan(&owner, 3, None, (1, 2));
    let counted: Vec<_> = core.shared.lock().orphans.iter().map(|o| (o.tag, o.permits)).collect();
    assert_eq!(counted, [((1, 9), 1), ((1, 2), 2)]);
    core.adopt_orphan((1, 9));
    core.adopt_orphan((1, 2));
    let shared = core.shared.lock();
    assert!(shared.orphans.is_empty() && shared.resized_before_counted.is_empty());
}

/// A mutex handed to a waiter while others still wait is a new hold seen with waiters
/// behind it from its start: timed from the hand-off (never earlier), not from
/// whenever a snapshot first looks. Once the queue empties it is not timed.
#[test]
fn a_hold_handed_over_with_waiters_left_is_timed_from_the_hand_off() {
    let core = SemCore::new(1, PrimitiveKind::Mutex, None, AbandonPolicy::Break);
    core.try_acquire(1, Caller::Async).unwrap();
    let mut first = Box::pin(core.acquire(1, Caller::Async, None));
    let mut second = Box::pin(core.acquire(1, Caller::Async, None));
    assert!(first.as_mut().now_or_never().is_none());
    assert!(second.as_mut().now_or_never().is_none());
    let before = Stamp::now();
    core.release(1); // to `first`; `second` waits for it
    let since = core.shared.lock().hold_since.expect("timed from the hand-off");
    assert!(since >= before, "never earlier than the hold began");
    assert_eq!(first.as_mut().now_or_never(), Some(Ok(())));
    core.release(1); // to `second`, the last waiter
    assert_eq!(core.shared.lock().hold_since, None, "nobody waits for it");
    assert_eq!(second.as_mut().now_or_never(), Some(Ok(())));
}

/// A queued acquire's first poll spends no budget unless it has a result, so one that
/// takes the permits with the task's budget spent must give them back and yield: never
/// ready on a spent budget, never a permit lost.
#[cfg(feature = "tokio")]
#[test]
fn a_first_poll_that_takes_the_permits_on_a_spent_budget_gives_them_back() {
    use std::task::Poll;
    let runtime = ::tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        ::tokio::spawn(async {
            let core = core(1);
            let mut acquire = Box::pin(core.acquire(1, Caller::Async, None));
            std::future::poll_fn(|cx| {
                while let Poll::Ready(progress) = ::tokio::task::coop::poll_proceed(cx) {
                    progress.made_progress();
                }
                assert!(acquire.as_mut().poll(cx).is_pending(), "ready on a spent budget");
                assert_eq!(core.available(), 1, "the permit taken was not given back");
                Poll::Ready(())
            })
            .await;
            // The budget is refilled at the task's next poll, after its yield.
            ::tokio::task::yield_now().await;
            assert_eq!(acquire.await, Ok(()));
            assert_eq!(core.available(), 0);
        })
        .await
        .unwrap();
    });
}

#[test]
fn flags_survive_forget_and_release() {
    let core = core(3);
    core.close();
    assert_eq!(core.forget_permits(1), 1);
    core.release(1);
    assert!(core.is_closed(), "tokio #8020: no CAS path may clear CLOSED");
    assert_eq!(core.try_acquire(1, Caller::Async), Err(TryAcquireError::Closed));
}

/// The waiter node lives in the acquire future, which is moved into place as every
/// contended acquire begins: at more than 128 bytes the move is a call to `memcpy`
/// (measured: 58 instructions of a 1,100-instruction hand-off), within it a few vector
/// moves.
#[test]
#[cfg(all(not(feature = "diagnostics"), target_pointer_width = "64"))]
fn an_acquire_future_moves_without_a_memcpy_call() {
    let size = std::mem::size_of::<super::acquire::AcquireFuture<'_>>();
    assert!(size <= 128, "AcquireFuture is {size} bytes");
}
