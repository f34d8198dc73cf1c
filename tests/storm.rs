//! Cancellation storm: hundreds of tracked tasks on tokio's multi-thread runtime take
//! the Mutex, the Semaphore and the CapacityLimiter under random yield-based timeouts
//! and aborts; some leak their hold and leave. Afterwards every task has finished (none
//! hung) and each primitive is either intact (free, every permit and token back) or
//! broken by one of the tasks that leaked it. A quarter of the holds move (DESIGN.md
//! 2b): taken owned and moved into a spawned child, half of them plainly (the child
//! just drops it, and may be aborted) and half handed over with `tracked_with` (the
//! child answers for it and may leak it); the spawner goes on without waiting. No move
//! may cause a spurious break, and every permit and token must be back at the end.
//! `STORM_TASKS` sets the task count (default 200; try 5000 for the long mode).
// The library keeps rust-version 1.85; the tests are built on stable only.
#![allow(clippy::incompatible_msrv)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::Poll;

use futures::FutureExt;
use ownsync::{AcquireError, CapacityLimiter, Mutex, OwnerId, Semaphore, tracked, tracked_with};

const PERMITS: usize = 4;
const TOKENS: usize = 3;

struct Shared {
    mutex: Arc<Mutex<u64>>,
    sem: Arc<Semaphore>,
    limiter: CapacityLimiter,
    /// Whether tasks may leak their holds.
    leaky: bool,
    /// Who leaked what: (primitive index, owner).
    leakers: StdMutex<HashSet<(usize, OwnerId)>>,
    /// How many holds were taken (to show the storm did real work).
    acquired: std::sync::atomic::AtomicUsize,
    /// How many of them moved to a child: plainly, and handed over.
    moved: std::sync::atomic::AtomicUsize,
    handed: std::sync::atomic::AtomicUsize,
    /// The children holding moved holds, joined at the end.
    children: StdMutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A child that got a moved hold: holds it for a while, then drops it, or (only if it
/// answers for it, after a hand-over) leaks it and leaves.
async fn child<H>(shared: Arc<Shared>, which: usize, held: H, hold_for: u64, leak: bool) {
    yield_times(hold_for).await;
    if leak {
        shared.leakers.lock().unwrap().insert((which, ownsync::current_owner()));
        std::mem::forget(held);
    }
}

async fn yield_times(n: u64) {
    let mut left = n;
    std::future::poll_fn(|cx| {
        if left == 0 {
            Poll::Ready(())
        } else {
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Accepts what a storm acquire may legitimately see.
fn tolerable(err: AcquireError) {
    assert!(matches!(err, AcquireError::Broken(_)), "unexpected {err:?}");
}

async fn worker(shared: Arc<Shared>, seed: u64) {
    let mut next = rng(seed);
    let me = ownsync::current_owner();
    for _ in 0..8 {
        let which = (next() % 3) as usize;
        let patience = next() % 6; // the "timeout", in yields
        let leak = shared.leaky && next().is_multiple_of(40);
        let hold_for = next() % 3;
        // The acquire, or `None` if it takes more than `patience` yields (its "timeout").
        macro_rules! within_patience {
            ($acquire:expr) => {
                futures::select_biased! {
                    result = $acquire.fuse() => Some(result),
                    () = yield_times(patience).fuse() => None,
                }
            };
        }
        macro_rules! attempt {
            ($acquire:expr, |$held:ident| $leak_it:expr) => {{
                let acquired = within_patience!($acquire);
                match acquired {
                    None => {}
                    Some(Err(err)) => tolerable(err),
                    Some(Ok($held)) => {
                        shared.acquired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        yield_times(hold_for).await;
                        if leak {
                            shared.leakers.lock().unwrap().insert((which, me));
                            $leak_it;
                            return; // a leaker leaves at once: no hold-and-wait cycles
                        }
                    }
                }
            }};
        }
        // A moving hold goes to a spawned child: with `tracked_with` (handed over, so
        // the child answers for it) or plainly (nobody answers: the child must drop it).
        macro_rules! attempt_moving {
            ($acquire:expr) => {{
                let acquired = within_patience!($acquire);
                match acquired {
                    None => {}
                    Some(Err(err)) => tolerable(err),
                    Some(Ok(held)) => {
                        use std::sync::atomic::Ordering::Relaxed;
                        shared.acquired.fetch_add(1, Relaxed);
                        shared.moved.fetch_add(1, Relaxed);
                        let (shared_child, hold_for) = (shared.clone(), next() % 4);
                        let handle = if next().is_multiple_of(2) {
                            shared.handed.fetch_add(1, Relaxed);
                            let leak = shared.leaky && next().is_multiple_of(10);
                            tokio::spawn(tracked_with(held, move |held| {
                                child(shared_child, which, held, hold_for, leak)
                            }))
                        } else {
                            tokio::spawn(child(shared_child, which, held, hold_for, false))
                        };
                        if next().is_multiple_of(8) {
                            handle.abort(); // the child's drop of the hold is a release
                        }
                        shared.children.lock().unwrap().push(handle);
                    }
                }
            }};
        }
        let moving = !leak && next().is_multiple_of(4);
        match (which, moving) {
            (0, false) => attempt!(shared.mutex.lock(), |guard| std::mem::forget(guard)),
            (0, true) => attempt_moving!(shared.mutex.clone().lock_owned()),
            (1, false) => {
                attempt!(shared.sem.acquire_many((next() % 2 + 1) as u32), |permit| std::mem::forget(permit))
            }
            (1, true) => attempt_moving!(shared.sem.clone().acquire_many_owned((next() % 2 + 1) as u32)),
            (_, false) => attempt!(shared.limiter.acquire(), |token| token.detach()),
            (_, true) => attempt_moving!(shared.limiter.acquire().map(|token| token.map(|t| t.into_owned()))),
        }
    }
}

use std::sync::atomic::Ordering::Relaxed;

/// A storm is random and its schedule is the runtime's: a rare run does too little to
/// show anything (most attempts time out, or no task happens to leak). Every run is
/// checked in full; a run too quiet to be meaningful is followed by another with fresh
/// seeds, and the test fails if none of a few is meaningful.
const MEANINGFUL_TRIES: u64 = 4;

#[test]
fn storm_without_leaks_conserves_everything() {
    let mut quiet = Vec::new();
    for round in 0..MEANINGFUL_TRIES {
        let shared = storm(false, round);
        assert!(shared.leakers.lock().unwrap().is_empty());
        assert!(!shared.mutex.is_broken() && !shared.sem.is_broken() && !shared.limiter.is_broken());
        let acquired = shared.acquired.load(std::sync::atomic::Ordering::Relaxed);
        let (moved, handed) = (shared.moved.load(Relaxed), shared.handed.load(Relaxed));
        eprintln!("storm: {acquired} holds, {moved} moved, {handed} handed");
        // Most tasks get something (a quarter are aborted, some give up: their
        // "timeout"), and some holds move, some of those handed over.
        if acquired > 50 && moved * 8 > acquired && handed > 0 && handed < moved {
            return;
        }
        quiet.push((acquired, moved, handed));
    }
    panic!("every storm did too little: (holds, moved, handed) = {quiet:?}");
}

#[test]
fn storm_with_leaks_breaks_only_by_leakers() {
    for round in 0..MEANINGFUL_TRIES {
        if !storm(true, round).leakers.lock().unwrap().is_empty() {
            return;
        }
    }
    panic!("no storm leaked anything: raise the task count");
}

/// Runs the storm and checks the end state; returns it for the caller's own checks.
fn storm(leaky: bool, round: u64) -> Arc<Shared> {
    let tasks: u64 = std::env::var("STORM_TASKS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let shared = Arc::new(Shared {
        mutex: Arc::new(Mutex::with_name(0, "storm")),
        sem: Arc::new(Semaphore::new(PERMITS)),
        limiter: CapacityLimiter::new(TOKENS),
        leaky,
        leakers: StdMutex::new(HashSet::new()),
        acquired: Default::default(),
        moved: Default::default(),
        handed: Default::default(),
        children: StdMutex::new(Vec::new()),
    });
    let mut pick = rng(tasks ^ (round << 32));
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|seed| {
                let handle = tokio::spawn(tracked(worker(shared.clone(), seed ^ (round << 32))));
                if pick().is_multiple_of(4) {
                    handle.abort(); // cancelled wherever it is, even before it ran
                }
                handle
            })
            .collect();
        for handle in handles {
            // Every task finishes: completed, or cancelled by its abort. None hangs.
            let _ = handle.await;
        }
        // Then every child (spawned only by the tasks above, so the list is complete).
        let children = std::mem::take(&mut *shared.children.lock().unwrap());
        for child in children {
            let _ = child.await;
        }
    });

    let leakers = shared.leakers.lock().unwrap().clone();
    let leaked =
        |which: usize| leakers.iter().filter(|(w, _)| *w == which).map(|(_, o)| *o).collect::<Vec<_>>();
    let check_broken_by = |which: usize, broken: Option<&ownsync::BrokenResourceError>| match broken {
        Some(err) => {
            assert!(leaked(which).contains(&err.owner()), "{which} broken by a non-leaker {}", err.owner())
        }
        None => assert!(leaked(which).is_empty(), "{which} was leaked but is not broken"),
    };
    assert_eq!(shared.mutex.statistics().orphaned(), 0, "every moved guard was released");
    assert_eq!(shared.sem.statistics().orphaned(), 0, "every moved permit was released");
    let mutex_stats = shared.mutex.statistics();
    check_broken_by(0, mutex_stats.broken());
    if mutex_stats.broken().is_none() {
        assert!(!mutex_stats.is_locked() && mutex_stats.waiters() == 0);
    }
    let sem_stats = shared.sem.statistics();
    check_broken_by(1, sem_stats.broken());
    if sem_stats.broken().is_none() {
        assert_eq!((sem_stats.available(), sem_stats.waiters()), (PERMITS, 0), "permits conserved");
    }
    let limiter_stats = shared.limiter.statistics();
    check_broken_by(2, limiter_stats.broken());
    if limiter_stats.broken().is_none() {
        assert_eq!((limiter_stats.borrowed_tokens(), limiter_stats.waiters()), (0, 0), "tokens back");
        assert_eq!(shared.limiter.available_tokens(), TOKENS);
    }
    shared
}
