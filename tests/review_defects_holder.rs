//! Regression tests for issue 29, defects 5, 6, 7 and 10 (the recorded holder, orphan
//! counts and nested scopes): one test per defect, named after it. Each fails (none
//! hangs) without its fix.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use futures::executor::block_on;
use ownsync::{Mutex, TryLockError, current_owner, tracked};

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
