//! Regression tests for issue 29, defects 5, 6, 7 and 10 (the recorded holder, orphan
//! counts and nested scopes): one test per defect, named after it. Each fails (none
//! hangs) without its fix.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::task::Poll;

use futures::executor::block_on;
use ownsync::{AcquireError, Mutex, Semaphore, TryLockError, current_owner, tracked};

/// Counts this thread's live heap bytes, as `tests/leak_cost.rs` does.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

/// This thread's live heap bytes: allocated minus freed.
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

/// Defect 5: an owned guard sent to another thread leaves its acquirer holding nothing,
/// so the acquirer's next lock of a strict mutex waits (as in tokio) instead of failing
/// at once with `WouldDeadlock`.
#[test]
fn defect_5_strict_mutex_owned_guard_sent_away_is_no_self_wait() {
    let mutex = Arc::new(Mutex::new(0).strict());
    block_on(tracked(async {
        let guard = mutex.clone().lock_owned().await.unwrap();
        assert_eq!(mutex.owner(), None, "an owned guard may move: its holder is not certain");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            released.recv().unwrap();
            drop(guard);
        });
        assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldBlock)), "was WouldDeadlock");
        // The lock is polled first (it must wait), then the other thread lets go.
        let (locked, ()) = futures::join!(mutex.lock(), async { release.send(()).unwrap() });
        let guard = locked.expect("was WouldDeadlock: the acquirer holds nothing, and tokio succeeds");
        assert_eq!(mutex.owner(), Some(current_owner()), "a borrowed guard's holder is recorded");
        drop(guard);
        holder.join().unwrap();
    }));
    // Handed over explicitly, the owned guard's new owner is the recorded holder.
    block_on(tracked(async {
        let mut guard = mutex.clone().lock_owned().await.unwrap();
        ownsync::OwnedMutexGuard::adopt(&mut guard).unwrap();
        assert_eq!(mutex.owner(), Some(current_owner()));
        assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldDeadlock)));
    }));
}

/// Defect 6: a guard returned from a nested tracked scope is the enclosing task's: its
/// re-lock of a strict mutex is `WouldDeadlock` (it hung), and, not strict, a self-wait.
#[test]
fn defect_6_guard_forwarded_from_a_nested_scope_is_the_enclosing_tasks() {
    let mutex = Mutex::new(0).strict();
    block_on(tracked(async {
        let guard = tracked(async { mutex.lock().await.unwrap() }).await;
        assert_eq!(mutex.owner(), Some(current_owner()), "was the completed scope's id");
        assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldDeadlock)));
        let mut relock = std::pin::pin!(mutex.lock());
        assert!(
            matches!(futures::poll!(relock.as_mut()), Poll::Ready(Err(AcquireError::WouldDeadlock))),
            "was Pending: a certain self-deadlock"
        );
        drop(guard);
    }));

    let mutex = Mutex::new(0);
    block_on(tracked(async {
        let guard = tracked(async { mutex.lock().await.unwrap() }).await;
        let mut relock = std::pin::pin!(mutex.lock());
        assert!(futures::poll!(relock.as_mut()).is_pending());
        assert_eq!(mutex.statistics().self_waits(), 1, "was 0");
        drop(guard);
        assert!(futures::poll!(relock.as_mut()).is_ready());
    }));
}

/// Defect 7: splitting an orphaned permit keeps both halves counted as orphaned (the
/// count is of holds), merging them back gives one orphan, and each release un-counts.
#[test]
fn defect_7_splitting_an_orphan_keeps_both_halves_orphaned() {
    let sem = Arc::new(Semaphore::new(4));
    let orphan = |n: u32| {
        let sem = sem.clone();
        block_on(tracked(async move { sem.acquire_many_owned(n).await.unwrap() }))
    };

    let mut permit = orphan(3);
    assert_eq!(sem.statistics().orphaned(), 1);
    let piece = permit.split(1).unwrap();
    assert_eq!((permit.num_permits(), piece.num_permits()), (2, 1));
    assert_eq!(sem.statistics().orphaned(), 2, "was 0: the split adopted the orphan");
    let permits: Vec<usize> = sem.statistics().orphans().iter().map(|orphan| orphan.permits()).collect();
    assert_eq!(permits, [2, 1]);
    drop(piece);
    assert_eq!(sem.statistics().orphaned(), 1);
    assert_eq!(sem.available_permits(), 2);
    drop(permit);
    assert_eq!(sem.statistics().orphaned(), 0);
    assert_eq!(sem.available_permits(), 4);

    // Merged back, the two halves are one orphan again, un-counted by its release.
    let mut permit = orphan(3);
    let piece = permit.split(2).unwrap();
    assert_eq!(sem.statistics().orphaned(), 2);
    permit.merge(piece);
    assert_eq!(permit.num_permits(), 3);
    assert_eq!(sem.statistics().orphaned(), 1);
    assert_eq!(sem.statistics().orphans()[0].permits(), 3);
    drop(permit);
    assert_eq!(sem.statistics().orphaned(), 0);
    assert_eq!(sem.available_permits(), 4);
    assert!(!sem.is_broken());
}

/// Defect 10: a long-running task that runs two levels of nested scopes, the inner one
/// returning a guard, in a loop, keeps no owner record, forwarded scope or slab entry
/// per iteration: its live heap is back to what it was after the first iterations.
#[test]
#[cfg_attr(
    miri,
    ignore = "40,000 iterations are hours under Miri; it measures growth, and the paths it runs are Miri-checked by the shorter nested-scope tests"
)]
fn defect_10_nested_scopes_in_a_loop_do_not_grow_the_task() {
    let mutex = Mutex::new(0u64);
    let mutex = &mutex;
    block_on(tracked(async {
        let iterate = |n: usize| async move {
            for _ in 0..n {
                let mut guard = tracked(async { tracked(async { mutex.lock().await.unwrap() }).await }).await;
                *guard += 1;
            }
        };
        // The inner guard dropped inside the outer scope: that completes holding only
        // the spent inner scope's entry.
        let iterate_dropped_inside = |n: usize| async move {
            for _ in 0..n {
                tracked(async {
                    let mut guard = tracked(async { mutex.lock().await.unwrap() }).await;
                    *guard += 1;
                })
                .await;
            }
        };
        iterate(100).await; // warm up: thread-locals, the task's slab, spare bodies
        iterate_dropped_inside(100).await;
        let before = live();
        iterate(10_000).await;
        let grown = live() - before;
        // Without the fix: two records, a forwarded scope and a slab entry per iteration
        // (8.8 MB here).
        assert!(grown <= 1024, "the task grew by {grown} bytes over 10,000 iterations");
        let before = live();
        iterate_dropped_inside(10_000).await;
        let grown = live() - before;
        assert!(grown <= 1024, "the task grew by {grown} bytes over 10,000 iterations (dropped inside)");
    }));
    assert_eq!(*mutex.try_lock().unwrap(), 20_200);
}
