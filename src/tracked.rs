//! Giving a future an owner of its own.
//!
//! Rust has no portable task identity and no runtime hook for "this task ended", so the
//! owner is attached to the future itself: `tracked(fut)` makes a wrapper that is the
//! owner for every poll of `fut`, and whose completion, drop or unwinding poll *is* the
//! owner's exit. That works the same on every executor, because every executor polls
//! futures and drops them.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::AbandonReason;
use crate::owner::{CurrentTaskScope, OwnerId, OwnerInner};

/// Wraps `future` so that it is an owner of its own: every hold it takes is recorded
/// against it, and when it completes, is dropped early, or panics while still holding
/// something, the primitive it holds breaks instead of hanging its waiters.
///
/// Nested tracked futures: the innermost one is the owner.
///
/// ```
/// use std::sync::Arc;
/// use ownsync::{AbandonReason, AcquireError, Mutex, tracked};
///
/// # futures::executor::block_on(async {
/// let mutex = Arc::new(Mutex::new(0));
/// let leaker = tracked({
///     let mutex = mutex.clone();
///     async move { std::mem::forget(mutex.lock().await.unwrap()) }
/// });
/// let leaker_id = leaker.owner();
/// leaker.await; // exits still holding the lock
///
/// match mutex.lock().await {
///     Err(AcquireError::Broken(err)) => {
///         assert_eq!(err.owner(), leaker_id);
///         assert_eq!(err.reason(), AbandonReason::Exited);
///     }
///     other => panic!("expected a broken mutex, got {other:?}"),
/// }
/// # });
/// ```
pub fn tracked<F: Future>(future: F) -> Tracked<F> {
    Tracked { owner: OwnerInner::new_task(), future: ManuallyDrop::new(future), state: State::Running }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    /// The inner future completed (and was dropped) or panicked; the owner has exited.
    Finished,
}

/// A future that is its own owner. Made by [`tracked`].
///
/// ```
/// let task = ownsync::tracked(async { 1 + 1 });
/// let id = task.owner(); // known before the first poll
/// assert!(id.is_task());
/// assert_eq!(futures::executor::block_on(task), 2);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F: Future> {
    owner: Arc<OwnerInner>,
    future: ManuallyDrop<F>,
    state: State,
}

impl<F: Future> Tracked<F> {
    /// The owner id of this task. It exists from `tracked()` on, before the first poll.
    ///
    /// ```
    /// let task = ownsync::tracked(async {});
    /// assert_ne!(task.owner(), ownsync::current_owner());
    /// ```
    pub fn owner(&self) -> OwnerId {
        self.owner.id()
    }
}

/// Marks the owner exited with `Panicked` if the poll it guards unwinds.
struct UnwindGuard<'a> {
    owner: &'a Arc<OwnerInner>,
    armed: bool,
}

impl Drop for UnwindGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.owner.exit(AbandonReason::Panicked);
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, only
        // polled through this projection and dropped in place (in `poll` on completion or
        // in `Drop`). `owner` and `state` are not pinned and are only read or assigned.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(this.state == State::Running, "`Tracked` polled after it finished");
        let result = {
            let _scope = CurrentTaskScope::enter(&this.owner);
            let mut unwind = UnwindGuard { owner: &this.owner, armed: true };
            // SAFETY: see above; the inner future stays at its address until dropped.
            let future = unsafe { Pin::new_unchecked(&mut *this.future) };
            let result = future.poll(cx);
            if result.is_ready() {
                // Drop what the finished future still holds while it is still the owner,
                // so its guards release normally; anything leaked is abandoned below.
                // SAFETY: the future is finished and never touched again (state below).
                unsafe { ManuallyDrop::drop(&mut this.future) };
            }
            unwind.armed = false;
            result
        };
        if result.is_ready() {
            this.state = State::Finished;
            this.owner.exit(AbandonReason::Exited);
        }
        result
    }
}

impl<F: Future> Drop for Tracked<F> {
    fn drop(&mut self) {
        if self.state == State::Running {
            {
                // Dropping the unfinished future releases the guards it still holds, as
                // their owner; the exit below then abandons whatever it leaked. After a
                // panicking poll the owner has already exited (`Panicked`), its holds are
                // claimed, and these drops are no-ops for them.
                let _scope = CurrentTaskScope::enter(&self.owner);
                // SAFETY: `Running` means the future was not dropped yet; it is dropped
                // exactly once, here.
                unsafe { ManuallyDrop::drop(&mut self.future) };
            }
            self.owner.exit(AbandonReason::Cancelled);
        }
    }
}

impl<F: Future> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked").field("owner", &self.owner.id()).field("state", &self.state).finish()
    }
}
