//! What a forgotten hold costs in memory (issue 15, item 5): tracked tasks that each
//! `mem::forget` a permit of a `Reclaim` semaphore. The semaphore takes the permit back
//! at each exit, and the exit frees the owner's record but its head, which the forgotten
//! permit's registration ticket still points at. This measures the live heap bytes left
//! per forgotten permit with a counting allocator, prints it, and holds it to the
//! target, 32 bytes, so it cannot grow unnoticed; it prints the resident set growth too.
//! It holds the other holds' forgets to their costs too: a read guard's (the same head),
//! a capacity token's (nothing, or its borrower set entry if named outside any owner) and
//! an untracked permit's (nothing).
//! It also holds a mutex's queue, and a thread's owner record, to giving back what a
//! burst (of waiters, of holds) grew once it is over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ownsync::{AbandonPolicy, Semaphore, tracked};

struct Counting;

thread_local! {
    /// Live heap bytes allocated minus freed by this thread. Per thread, so that what the
    /// test harness (or another test) allocates meanwhile is not counted; each test
    /// allocates and frees on its own thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // `try_with`: a thread's last frees may come after its locals are gone.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

/// This thread's live heap bytes (see [`LIVE`]).
fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every call is passed straight to the system allocator; the counter only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's resident set in bytes, where the OS tells it (Linux).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Live heap bytes, and resident bytes if known, left behind per task after `tasks`
/// tracked tasks each took a permit and dropped it, or forgot it.
fn bytes_left_per_task(tasks: usize, forget: bool) -> (f64, Option<f64>) {
    let sem = Semaphore::with_policy(1, AbandonPolicy::Reclaim);
    let run = |n: usize| {
        for _ in 0..n {
            futures::executor::block_on(tracked(async {
                let permit = sem.acquire().await.expect("reclaimed, never broken");
                if forget {
                    std::mem::forget(permit);
                }
            }));
        }
    };
    run(100); // warm up: thread-locals, registries, the semaphore's own buffers
    let (before, resident_before) = (live(), resident_bytes());
    run(tasks);
    let (after, resident_after) = (live(), resident_bytes());
    assert_eq!(sem.available_permits(), 1, "every forgotten permit was reclaimed");
    let resident = resident_before.zip(resident_after).map(|(b, a)| (a as f64 - b as f64) / tasks as f64);
    ((after - before) as f64 / tasks as f64, resident)
}

/// The heap is counted per thread, but the resident set is the process's: the tests
/// run one at a time, so that none grows it while another measures.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_forgotten_hold_costs_its_owners_record_head_and_no_more() {
    let _alone = alone();
    let (kept, _) = bytes_left_per_task(10_000, false);
    // Enough forgotten permits for the resident set to show them (with the allocator's
    // own overhead per block), which the issue measured; the heap count is exact.
    let (forgotten, resident) = bytes_left_per_task(100_000, true);
    println!(
        "live heap bytes left per task: {kept:.1} without a forget, {forgotten:.1} per forgotten permit"
    );
    if let Some(resident) = resident {
        println!("resident set growth: {resident:.1} bytes per forgotten permit");
    }
    assert!(kept.abs() < 1.0, "a task that drops its permit leaves nothing: {kept}");
    assert!(forgotten > 0.0, "the counter sees the forgotten permits' records");
    // The record's head (see `HoldTicket`): one word, beside its reference counts.
    assert!(forgotten <= 32.0, "a forgotten permit keeps {forgotten} bytes");
}

/// Live heap bytes left per task after `tasks` tracked tasks each ran `body` once
/// (after a warm-up of 100).
fn bytes_left_per_run(tasks: usize, body: impl Fn()) -> f64 {
    for _ in 0..100 {
        body();
    }
    let before = live();
    for _ in 0..tasks {
        body();
    }
    (live() - before) as f64 / tasks as f64
}

/// The other holds cost what a permit costs: a forgotten read guard of a tracked task
/// breaks its lock at the exit and, once the lock is gone, leaves the owner record's head
/// behind, as a permit does; a forgotten capacity token of a tracked task is taken back
/// at the exit (its borrower set entry removed) and leaves nothing: a token's
/// registration is its borrower set entry, not a ticket. A hold forgotten outside any
/// owner has no registration: it leaves no heap at all, only its permits taken for good;
/// but for a token named there (`borrower()`), whose borrower set entry stays.
#[test]
fn every_forgotten_hold_costs_at_most_a_record_head() {
    let _alone = alone();
    let reader = bytes_left_per_run(10_000, || {
        let lock = ownsync::RwLock::new(0_u64);
        futures::executor::block_on(tracked(async { std::mem::forget(lock.read().await.expect("whole")) }));
        assert!(lock.is_broken(), "the exit abandoned the forgotten read guard");
    });
    let limiter = ownsync::CapacityLimiter::with_policy(1, AbandonPolicy::Reclaim);
    let token = bytes_left_per_run(10_000, || {
        futures::executor::block_on(tracked(async {
            std::mem::forget(limiter.acquire().await.expect("reclaimed, never broken"))
        }));
    });
    assert_eq!(limiter.borrowed_tokens(), 0, "every forgotten token was taken back");
    let sem = Semaphore::new(20_000);
    let untracked = bytes_left_per_run(10_000, || std::mem::forget(sem.try_acquire().expect("room")));
    assert_eq!(sem.available_permits(), 20_000 - 10_100, "an untracked forget keeps its permit out");
    println!(
        "live heap bytes left: {reader:.1} per forgotten read guard, {token:.1} per forgotten \
         capacity token (tracked tasks), {untracked:.1} per permit forgotten outside any owner"
    );
    assert!(reader > 0.0 && reader <= 32.0, "a forgotten read guard keeps {reader} bytes");
    assert_eq!(token, 0.0, "a tracked task's forgotten token keeps no heap");
    assert_eq!(untracked, 0.0, "an untracked forgotten permit keeps no heap");
    // A token forgotten outside any owner after it was named (`borrower()`) keeps its
    // entry in the borrower set: nothing exits to take it back.
    let limiter = ownsync::CapacityLimiter::new(20_000);
    let named = bytes_left_per_run(10_000, || {
        let token = limiter.try_acquire().expect("room");
        let _named = token.borrower();
        std::mem::forget(token);
    });
    println!("{named:.1} bytes per named token forgotten outside any owner (its borrower set entry)");
    // Its slab entry (48 bytes on 64-bit targets), with the slab's doubling slack.
    assert!((48.0..=128.0).contains(&named), "a forgotten named token keeps {named} bytes");
}

/// A burst of waiters costs the mutex no memory at all: each waiter is a node inside its
/// own acquire future, so 10,000 futures queued on one mutex allocate nothing while they
/// wait, and leave nothing once served (as tokio's intrusive queue does).
#[test]
fn a_mutex_gives_back_the_memory_of_a_burst_of_waiters() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let _alone = alone();
    const WAITERS: usize = 10_000;
    let mutex = ownsync::Mutex::new(0u64);
    let mut cx = Context::from_waker(Waker::noop());
    let mut waiters: Vec<_> = (0..WAITERS).map(|_| Box::pin(mutex.lock())).collect();
    let holder = mutex.try_lock().expect("nobody holds it yet");
    let before = live();
    for waiter in &mut waiters {
        assert!(waiter.as_mut().poll(&mut cx).is_pending(), "queued behind the holder");
    }
    let during = live();
    drop(holder);
    for waiter in &mut waiters {
        match waiter.as_mut().poll(&mut cx) {
            Poll::Ready(guard) => *guard.expect("never broken") += 1,
            Poll::Pending => panic!("handed the lock in queue order"),
        }
    }
    let after = live();
    assert_eq!(*mutex.try_lock().expect("free again"), WAITERS as u64);
    println!(
        "heap bytes for {WAITERS} queued waiters: {} while queued, {} once served",
        during - before,
        after - before
    );
    assert_eq!(during - before, 0, "queueing allocates nothing");
    assert_eq!(after - before, 0, "serving the queue leaves nothing");
}

/// A thread that held many permits at once (blocking acquires, so its own record answers
/// for them, for as long as the thread lives) keeps no room for them once they are
/// released.
#[test]
fn a_thread_gives_back_the_memory_of_a_burst_of_holds() {
    let _alone = alone();
    const HOLDS: usize = 10_000;
    let sem = Semaphore::new(HOLDS);
    drop(sem.blocking_acquire().expect("free")); // the thread's record, made once
    let before = live();
    let permits: Vec<_> = (0..HOLDS).map(|_| sem.blocking_acquire().expect("free")).collect();
    let during = live();
    drop(permits);
    let after = live();
    assert_eq!(sem.available_permits(), HOLDS);
    check_burst(HOLDS, "permits held by a thread", ["held", "released"], [before, during, after]);
}

/// Prints what a burst of `count` `what` took from the heap while it lasted and what it
/// left once over (`benches/report.py` reads the line), and holds what it left to 4 KiB.
fn check_burst(count: usize, what: &str, [lasting, over]: [&str; 2], [before, during, after]: [isize; 3]) {
    let (took, left) = (during - before, after - before);
    println!("heap bytes for {count} {what}: {took} while {lasting}, {left} once {over}");
    assert!(took >= (count * 32) as isize, "the counter sees the burst grow: {took} bytes");
    assert!(left <= 4096, "the burst left {left} bytes");
}
