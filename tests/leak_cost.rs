//! What a forgotten hold costs in memory (issue 15, item 5): tracked tasks that each
//! `mem::forget` a permit of a `Reclaim` semaphore. The semaphore takes the permit back
//! at each exit, and the exit frees the owner's record but its head, which the forgotten
//! permit's registration ticket still points at. This measures the live heap bytes left
//! per forgotten permit with a counting allocator, prints it, and holds it to the
//! target, 32 bytes, so it cannot grow unnoticed; it prints the resident set growth too.

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
    let (before, resident_before) = (LIVE.load(Relaxed), resident_bytes());
    run(tasks);
    let (after, resident_after) = (LIVE.load(Relaxed), resident_bytes());
    assert_eq!(sem.available_permits(), 1, "every forgotten permit was reclaimed");
    let resident = resident_before.zip(resident_after).map(|(b, a)| (a as f64 - b as f64) / tasks as f64);
    ((after - before) as f64 / tasks as f64, resident)
}

#[test]
fn a_forgotten_hold_costs_its_owners_record_head_and_no_more() {
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
