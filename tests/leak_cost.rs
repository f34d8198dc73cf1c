//! What a forgotten hold costs in memory (issue 15, item 5): tracked tasks that each
//! `mem::forget` a permit of a `Reclaim` semaphore. The semaphore takes the permit back
//! at each exit, and the exit frees the owner's record but its head, which the forgotten
//! permit's registration ticket still points at. This measures the live heap bytes left
//! per forgotten permit with a counting allocator, prints it, and holds it to the
//! target, 32 bytes, so it cannot grow unnoticed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use ownsync::{AbandonPolicy, Semaphore, tracked};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed straight to the system allocator; the counter only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap bytes left behind per task, after `tasks` tracked tasks each ran `body`.
fn bytes_left_per_task(tasks: usize, forget: bool) -> f64 {
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
    let before = LIVE.load(Relaxed);
    run(tasks);
    let after = LIVE.load(Relaxed);
    assert_eq!(sem.available_permits(), 1, "every forgotten permit was reclaimed");
    (after - before) as f64 / tasks as f64
}

#[test]
fn a_forgotten_hold_costs_its_owners_record_and_no_more() {
    let kept = bytes_left_per_task(10_000, false);
    let forgotten = bytes_left_per_task(10_000, true);
    println!(
        "live heap bytes left per task: {kept:.1} without a forget, {forgotten:.1} per forgotten permit"
    );
    assert!(kept.abs() < 1.0, "a task that drops its permit leaves nothing: {kept}");
    assert!(forgotten > 0.0, "the counter sees the forgotten permits' records");
    // The record's head (see `HoldTicket`): an id and a word, beside its reference counts.
    assert!(forgotten <= 32.0, "a forgotten permit keeps {forgotten} bytes");
}
