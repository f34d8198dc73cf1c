//! Semaphore semantics (DESIGN.md sections 2-3 and issue 3), on tokio's multi-thread
//! runtime and on futures' thread pool, plus tokio's own Semaphore behaviours.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use futures::channel::oneshot;
use ownsync::{
    AbandonPolicy, AbandonReason, AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit,
    TryAcquireError, current_owner, tracked,
};

use common::{Polled, Rt, broken};

/// A tracked task that takes `n` permits, reports in, and leaks them when told (or is
/// aborted first, if `leak_then_wait`).
fn leaking_task<R: Rt>(
    rt: &R,
    sem: &Arc<Semaphore>,
    n: u32,
    leak_then_wait: bool,
) -> (ownsync::OwnerId, oneshot::Sender<()>, common::Task<()>) {
    let (held_tx, held_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let sem = sem.clone();
    let task = tracked(async move {
        let permit = sem.acquire_many(n).await.unwrap();
        if leak_then_wait {
            std::mem::forget(permit);
            held_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        } else {
            held_tx.send(()).unwrap();
            let _ = go_rx.await;
            std::mem::forget(permit);
        }
    });
    let owner = task.owner();
    let handle = rt.spawn(task);
    rt.block_on(held_rx).unwrap();
    (owner, go_tx, handle)
}

fn leaked_permit_owner_completes_breaks<R: Rt>(rt: &R) {
    let sem = Arc::new(Semaphore::with_name(2, "db"));
    let (owner, go, task) = leaking_task(rt, &sem, 2, false);
    let mut parked = Polled::new(sem.acquire());
    assert!(parked.is_pending());
    go.send(()).unwrap();
    rt.block_on(task.join()).unwrap();
    let err = broken(parked.ready());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
    let site = err.site().expect("the site of the leaked acquire");
    assert_eq!(
        err.to_string(),
        format!("semaphore \"db\" is broken: {owner} exited while holding it (taken at {site})")
    );
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Broken(err.clone()));
    assert_eq!(broken(sem.blocking_acquire()), err);
    assert_eq!(broken(rt.block_on(sem.clone().acquire_many_owned(1))), err);
}

fn leaked_permit_owner_cancelled_breaks<R: Rt>(rt: &R) {
    let sem = Arc::new(Semaphore::new(1));
    let (owner, _go, task) = leaking_task(rt, &sem, 1, true);
    let mut parked = Polled::new(sem.acquire());
    assert!(parked.is_pending());
    rt.block_on(task.abort().join());
    let err = broken(parked.ready());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Cancelled));
}

fn reclaim_returns_leaked_permits_and_counts_it<R: Rt>(rt: &R) {
    let sem = Arc::new(Semaphore::with_policy(2, AbandonPolicy::Reclaim));
    let (owner, go, task) = leaking_task(rt, &sem, 2, false);
    let mut parked = Polled::new(sem.acquire_many(2));
    assert!(parked.is_pending());
    go.send(()).unwrap();
    rt.block_on(task.join()).unwrap();
    assert_eq!(parked.wakes(), 1, "the reclaimed permits serve the waiter");
    drop(parked.ready().unwrap());
    assert_eq!(sem.available_permits(), 2, "capacity kept");
    assert!(!sem.is_broken());
    let abandoned = sem.statistics().abandoned();
    assert_eq!((abandoned.count(), abandoned.last()), (1, Some((owner, AbandonReason::Exited))));
}

fn permits_conserved_under_random_acquire_release_cancel<R: Rt>(rt: &R) {
    const TOTAL: usize = 8;
    let sem = Arc::new(Semaphore::new(TOTAL));
    let forgotten = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32u64)
        .map(|seed| {
            let (sem, forgotten) = (sem.clone(), forgotten.clone());
            rt.spawn(tracked(async move {
                let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                for _ in 0..32 {
                    let n = (next() % 3 + 1) as u32;
                    match next() % 4 {
                        // Cancel: race the acquire against a few yields; drop the loser.
                        0 => {
                            let yields = (next() % 4) as usize;
                            futures::select_biased! {
                                permit = sem.acquire_many(n).fuse_it() => drop(permit.unwrap()),
                                () = yield_times(yields).fuse_it() => {}
                            }
                        }
                        1 => {
                            if let Ok(permit) = sem.try_acquire_many(n) {
                                yield_times(1).await;
                                drop(permit);
                            }
                        }
                        // Forget at most 4 of the 8 permits, so that acquire_many(3)
                        // can always be satisfied eventually.
                        2 if next() % 8 == 0 => {
                            if let Ok(permit) = sem.try_acquire() {
                                let counted =
                                    forgotten.fetch_update(SeqCst, SeqCst, |f| (f < 4).then_some(f + 1));
                                if counted.is_ok() {
                                    permit.forget();
                                }
                            }
                        }
                        _ => {
                            let mut permit = sem.acquire_many(n).await.unwrap();
                            yield_times(1).await;
                            if let Some(part) = permit.split(1) {
                                drop(part);
                            }
                        }
                    }
                }
            }))
        })
        .collect();
    for task in tasks {
        rt.block_on(task.join()).expect("no task hung or panicked");
    }
    let forgotten = forgotten.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sem.available_permits() + forgotten, TOTAL, "available + forgotten == total");
    assert!(!sem.is_broken());
    assert_eq!(sem.statistics().waiters(), 0);
}

trait FuseIt: std::future::Future + Sized {
    fn fuse_it(self) -> futures::future::Fuse<Self> {
        futures::FutureExt::fuse(self)
    }
}
impl<F: std::future::Future> FuseIt for F {}

/// Yields `n` times, waking itself each time (no timers: tests wait on events).
async fn yield_times(n: usize) {
    let mut left = n;
    std::future::poll_fn(|cx| {
        if left == 0 {
            std::task::Poll::Ready(())
        } else {
            left -= 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

on_runtimes!(
    leaked_permit_owner_completes_breaks,
    leaked_permit_owner_cancelled_breaks,
    reclaim_returns_leaked_permits_and_counts_it,
    permits_conserved_under_random_acquire_release_cancel,
);

#[test]
fn thread_owner_exits_holding_permits() {
    let sem = Arc::new(Semaphore::new(3));
    let owner = std::thread::spawn({
        let sem = sem.clone();
        move || {
            sem.blocking_acquire_many(2).unwrap().num_permits();
            std::mem::forget(sem.blocking_acquire().unwrap());
            current_owner()
        }
    })
    .join()
    .unwrap();
    let err = broken(sem.blocking_acquire());
    assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Exited));
}

#[test]
fn a_leaked_zero_permit_hold_breaks_nothing() {
    let sem = Arc::new(Semaphore::new(1));
    futures::executor::block_on(tracked({
        let sem = sem.clone();
        async move { std::mem::forget(sem.acquire_many(0).await.unwrap()) }
    }));
    assert!(!sem.is_broken());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn acquire_many_keeps_its_place_in_the_queue() {
    let sem = Semaphore::new(3);
    let held = sem.try_acquire_many(3).unwrap();
    let mut big = Polled::new(sem.acquire_many(3));
    let mut small = Polled::new(sem.acquire());
    assert!(big.is_pending() && small.is_pending());
    let mut held = held;
    drop(held.split(1).unwrap()); // one free, but the head needs three
    assert_eq!((big.wakes(), small.wakes()), (0, 0), "no barging past the big head");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(held);
    assert_eq!(big.wakes(), 1);
    let big_permit = big.ready().unwrap();
    assert!(small.is_pending());
    drop(big_permit);
    drop(small.ready().unwrap());
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn cancelling_a_big_head_lets_the_smaller_waiters_behind_it_in() {
    let sem = Semaphore::new(2);
    let held = sem.try_acquire().unwrap();
    let mut big = Polled::new(sem.acquire_many(2));
    let mut small = Polled::new(sem.acquire());
    assert!(big.is_pending() && small.is_pending());
    drop(big);
    assert_eq!(small.wakes(), 1);
    drop(small.ready().unwrap());
    drop(held);
}

#[test]
fn add_permits_wakes_exactly_as_many_as_it_can_satisfy() {
    let sem = Semaphore::new(0);
    let mut waiters: Vec<_> = (0..5).map(|_| Polled::new(sem.acquire())).collect();
    assert!(waiters.iter_mut().all(Polled::is_pending));
    sem.add_permits(3);
    let woken: Vec<_> = waiters.iter().map(Polled::wakes).collect();
    assert_eq!(woken, [1, 1, 1, 0, 0]);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.statistics().waiters(), 2);
}

#[test]
fn dropped_granted_acquire_passes_permits_on() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut granted = Polled::new(sem.acquire());
    let mut next = Polled::new(sem.acquire());
    assert!(granted.is_pending() && next.is_pending());
    drop(held);
    drop(granted);
    assert_eq!(next.wakes(), 1);
    drop(next.ready().unwrap());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn close_fails_waiters_with_closed_and_broken_wins_over_closed() {
    let sem = Semaphore::new(0);
    let mut waiter = Polled::new(sem.acquire());
    assert!(waiter.is_pending());
    sem.close();
    assert_eq!(waiter.ready().unwrap_err(), AcquireError::Closed);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    sem.add_permits(1);
    assert!(sem.is_closed(), "add_permits keeps it closed");
    assert_eq!(sem.forget_permits(1), 1);
    assert!(sem.is_closed(), "forget_permits keeps it closed (tokio #8020)");

    let sem = Arc::new(Semaphore::new(1));
    let permit = sem.clone().try_acquire_owned().unwrap();
    let leaker = tracked(async move { std::mem::forget(permit) });
    futures::executor::block_on(leaker);
    // The permit was taken anonymously (outside the tracked task): nothing to break.
    assert!(!sem.is_broken());
    let sem2 = Arc::new(Semaphore::new(1));
    futures::executor::block_on(tracked({
        let sem2 = sem2.clone();
        async move { std::mem::forget(sem2.acquire().await.unwrap()) }
    }));
    sem2.close();
    assert!(matches!(sem2.try_acquire(), Err(TryAcquireError::Broken(_))), "a broken semaphore says Broken");
}

#[test]
fn permit_split_merge_forget_num_permits() {
    let sem = Semaphore::new(5);
    let mut permit = sem.blocking_acquire_many(4).unwrap();
    assert!(permit.split(5).is_none());
    let part = permit.split(3).unwrap();
    assert_eq!((permit.num_permits(), part.num_permits()), (1, 3));
    permit.merge(part);
    assert_eq!(permit.num_permits(), 4);
    drop(permit);
    assert_eq!(sem.available_permits(), 5);
    sem.try_acquire_many(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 3);
    // A merged/split hold stays owned: leaking the split part from a thread breaks it.
    let sem = Arc::new(Semaphore::new(2));
    std::thread::spawn({
        let sem = sem.clone();
        move || {
            let mut permit = sem.blocking_acquire_many(2).unwrap();
            std::mem::forget(permit.split(1).unwrap());
        }
    })
    .join()
    .unwrap();
    assert!(sem.is_broken());
}

#[test]
#[should_panic(expected = "merging permits from different semaphore instances")]
fn merging_permits_of_different_semaphores_panics() {
    let (a, b) = (Semaphore::new(1), Semaphore::new(1));
    let mut pa = a.try_acquire().unwrap();
    pa.merge(b.try_acquire().unwrap());
}

#[test]
#[should_panic(expected = "a semaphore may not have more than MAX_PERMITS permits")]
fn new_over_max_permits_panics() {
    let _ = Semaphore::new(Semaphore::MAX_PERMITS + 1);
}

#[test]
#[should_panic(expected = "would overflow MAX_PERMITS")]
fn add_permits_overflow_panics() {
    Semaphore::new(Semaphore::MAX_PERMITS).add_permits(1);
}

#[test]
fn owned_permits_and_bounds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Semaphore>();
    send_sync::<SemaphorePermit<'static>>();
    send_sync::<OwnedSemaphorePermit>();
    let sem = Arc::new(Semaphore::new(2));
    let permit = sem.clone().blocking_acquire_many_owned(2).unwrap();
    assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    assert!(sem.clone().try_acquire_owned().is_err());
    drop(permit);
    assert_eq!(format!("{sem:?}"), "Semaphore { permits: 2 of 2 available, waiters: 0 }");
}

/// `owner()` names who answers for the permits: nobody once that owner's exit claimed
/// them (here reclaimed), though the permit object is still out.
#[test]
fn a_permits_owner_is_none_once_its_owners_exit_reclaimed_it() {
    let sem = Arc::new(Semaphore::with_policy(1, AbandonPolicy::Reclaim));
    let task = tracked(std::future::pending::<()>());
    let id = task.owner();
    let mut permit = sem.clone().try_acquire_owned().unwrap();
    permit.hand_to(id).unwrap();
    assert_eq!(permit.owner(), Some(id));
    drop(task);
    assert_eq!(permit.owner(), None, "reclaimed: nobody answers for it");
    assert_eq!(sem.available_permits(), 1, "the exit gave the permit back");
    drop(permit);
    assert_eq!(sem.available_permits(), 1, "and the drop does not give it twice");
}
