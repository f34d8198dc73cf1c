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

use crate::error::{AbandonReason, HandOverError};
use crate::owner::{CurrentTaskScope, OwnerId, OwnerInner};

/// Wraps `future` so that it is an owner of its own: every hold it takes is recorded
/// against it, and when it completes, is dropped early, or panics while still holding
/// something, the primitive it holds breaks instead of hanging its waiters.
///
/// Nested tracked futures: the innermost one is the owner. A nested one that
/// *completes* passes what it still holds to the enclosing one, since its output may
/// carry it (a guard returned from the scope); the enclosing owner's exit then decides.
/// A nested one that is cancelled or panics has no output: it abandons what it holds.
/// An outermost one that completes holding something abandons it, so a guard returned
/// from a spawned task should be handed over first ([`HandOver`], [`tracked_with`]).
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
    Tracked {
        owner: OwnerInner::new_task(),
        future: ManuallyDrop::new(future),
        state: State::Running,
        passes_holds_on: true,
    }
}

/// Something that can be handed to an owner (it then answers for it): every guard, permit and
/// token type, and `Vec`s and pairs of them. [`tracked_with`] (and, with the `tokio`
/// feature, `ownsync::tokio::spawn_with`) use it to hand holds to a new task before it
/// can run.
///
/// ```
/// use ownsync::HandOver;
/// let sem = std::sync::Arc::new(ownsync::Semaphore::new(2));
/// let mut permits = vec![sem.clone().try_acquire_owned().unwrap(), sem.clone().try_acquire_owned().unwrap()];
/// permits.hand_to(ownsync::current_owner()).unwrap();
/// assert!(permits.iter().all(|p| p.owner() == Some(ownsync::current_owner())));
/// ```
pub trait HandOver {
    /// Registers the hold(s) to `owner`, which answers for them from now on: its exit
    /// with them breaks their primitive.
    ///
    /// # Errors
    /// [`HandOverError::OwnerGone`] if `owner` is not a live owner;
    /// [`HandOverError::Abandoned`] if the previous owner's exit already abandoned a hold.
    fn hand_to(&mut self, owner: OwnerId) -> Result<(), HandOverError>;
}

impl<H: HandOver> HandOver for Vec<H> {
    #[track_caller]
    fn hand_to(&mut self, owner: OwnerId) -> Result<(), HandOverError> {
        // A loop rather than a closure, so the caller's site reaches each hold.
        for hold in self.iter_mut() {
            hold.hand_to(owner)?;
        }
        Ok(())
    }
}

impl<A: HandOver, B: HandOver> HandOver for (A, B) {
    #[track_caller]
    fn hand_to(&mut self, owner: OwnerId) -> Result<(), HandOverError> {
        self.0.hand_to(owner)?;
        self.1.hand_to(owner)
    }
}

/// [`tracked`]`(make(hold))`, with `hold` handed to the new task before it is made, so
/// before it can run: the task answers for it from its first poll on, and its exit
/// with it (a leak, a cancellation, a panic) breaks the primitive. The way to move an
/// owned guard or permit into a task and keep "every certain abandonment breaks"
/// for it (see [Tasks, sub-futures and moving holds](https://github.com/ownsync/ownsync/blob/main/README.md#tasks-sub-futures-and-moving-holds)). A hold already abandoned by its previous owner's exit stays as it
/// is (its drop releases nothing).
///
/// ```
/// use std::sync::Arc;
/// use ownsync::{Semaphore, tracked_with};
/// # futures::executor::block_on(async {
/// let sem = Arc::new(Semaphore::new(1));
/// let permit = sem.clone().acquire_owned().await.unwrap();
/// let worker = tracked_with(permit, |permit| async move {
///     std::mem::forget(permit); // a bug: the worker leaks what it was given
/// });
/// worker.await;
/// assert!(sem.is_broken());
/// # });
/// ```
#[track_caller]
pub fn tracked_with<H: HandOver, F: Future>(mut hold: H, make: impl FnOnce(H) -> F) -> Tracked<F> {
    let owner = OwnerInner::new_task();
    owner.publish();
    match hold.hand_to(owner.id()) {
        Ok(()) | Err(HandOverError::Abandoned) => {}
        Err(HandOverError::OwnerGone(_)) => unreachable!("a new owner is live"),
    }
    Tracked { owner, future: ManuallyDrop::new(make(hold)), state: State::Running, passes_holds_on: true }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    /// The inner future completed, or is dropped (or being dropped): never touched
    /// again, and the owner has exited or is exiting.
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
    /// Whether a completion inside an enclosing owner's poll passes what it still holds
    /// to that owner (a scope), or is its exit all the same (a spawned task, whose
    /// output goes to its `JoinHandle`, not to whoever polls it).
    passes_holds_on: bool,
}

impl<F: Future> Tracked<F> {
    /// The whole future of a spawned task: its completion is its exit, even when the
    /// runtime polls it inside an owner of its own (`ownsync::tokio::track_all`'s
    /// record of the task), so the task, not that record, answers for what it leaks.
    #[cfg(feature = "tokio")]
    pub(crate) fn spawned_as_task(mut self) -> Self {
        self.passes_holds_on = false;
        self
    }

    /// The owner id of this task. It exists from `tracked()` on, before the first poll.
    ///
    /// ```
    /// let task = ownsync::tracked(async {});
    /// assert_ne!(task.owner(), ownsync::current_owner());
    /// ```
    pub fn owner(&self) -> OwnerId {
        // Given out: from now on a hold can be handed to it by this id.
        self.owner.publish();
        self.owner.id()
    }
}

/// Runs the owner's exit when dropped: with `reason`, or with `Panicked` while the code it
/// guards is unwinding (it is disarmed, or given its normal reason, only once that code
/// returned). A guard rather than a call after the guarded code, so that a poll or a
/// drop of the inner future that panics still exits the owner: otherwise the record
/// would be freed with holds still registered (their tickets would point at freed
/// memory) and their waiters would hang.
struct ExitGuard<'a> {
    owner: &'a Arc<OwnerInner>,
    reason: Option<AbandonReason>,
}

impl<'a> ExitGuard<'a> {
    /// Exits `owner` with `Panicked` if dropped before [`ExitGuard::finish`].
    fn on_unwind(owner: &'a Arc<OwnerInner>) -> Self {
        ExitGuard { owner, reason: Some(AbandonReason::Panicked) }
    }
    /// The guarded code returned: exit with `reason`, or not at all with `None`.
    fn finish(mut self, reason: Option<AbandonReason>) {
        self.reason = reason;
    }
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if let Some(reason) = self.reason {
            self.owner.exit(reason);
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
        let exit = ExitGuard::on_unwind(&this.owner);
        let _scope = CurrentTaskScope::enter(&this.owner);
        // SAFETY: see above; the inner future stays at its address until dropped.
        let future = unsafe { Pin::new_unchecked(&mut *this.future) };
        let result = future.poll(cx);
        if result.is_pending() {
            exit.finish(None);
            return result;
        }
        // Finished before the future is dropped: if that drop panics, `Drop` must not
        // drop it a second time (an executor drops a task whose poll panicked).
        this.state = State::Finished;
        // Drop what the finished future still holds while it is still the owner, so its
        // guards release normally; anything leaked is abandoned by the exit.
        // SAFETY: the future is finished and never touched again (`state` above).
        unsafe { ManuallyDrop::drop(&mut this.future) };
        let enclosing = if this.passes_holds_on { _scope.enclosing() } else { std::ptr::null() };
        drop(_scope);
        // Whatever it still holds goes with its output to the scope that polled it, if
        // that is a tracked scope; otherwise (or if it holds nothing) this is its exit.
        this.owner.complete(enclosing);
        exit.finish(None);
        result
    }
}

impl<F: Future> Drop for Tracked<F> {
    fn drop(&mut self) {
        if self.state == State::Running {
            self.state = State::Finished;
            // Dropping the unfinished future releases the guards it still holds, as
            // their owner; the exit then abandons whatever it leaked (`Cancelled`, or
            // `Panicked` if this drop unwinds). After a panicking poll the owner has
            // already exited, its holds are claimed, and these drops are no-ops for them.
            let exit = ExitGuard::on_unwind(&self.owner);
            let _scope = CurrentTaskScope::enter(&self.owner);
            // A cancellation: the borrowed lock guards still alive in the future are
            // sections cut short. Armed now, before the drop, so that a guard released
            // earlier is never taken for one; each armed guard's drop below is counted
            // (or breaks its lock with `break_on_cancel`). Disarmed after, even if the
            // drop unwinds: what was not dropped here is the exit's to settle.
            let armed = self.owner.arm_cut_short();
            // SAFETY: `Running` meant the future was not dropped yet; `state` is now
            // `Finished`, so it is dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.future) };
            drop(armed);
            drop(_scope);
            exit.finish(Some(AbandonReason::Cancelled));
        }
    }
}

impl<F: Future> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked").field("owner", &self.owner.id()).field("state", &self.state).finish()
    }
}

/// The unwinding paths of `poll` and `Drop`, as unit tests so that Miri runs them (they
/// were a use-after-free and a double drop).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AcquireError, Mutex};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Waker;

    /// Counts its drops, and panics in the first one if told to.
    struct DropBomb {
        drops: Arc<AtomicUsize>,
        panics: bool,
        _heap: Box<u64>, // a double drop is a double free, which Miri reports
    }
    impl Drop for DropBomb {
        fn drop(&mut self) {
            if self.drops.fetch_add(1, SeqCst) == 0 && self.panics {
                panic!("DropBomb");
            }
        }
    }
    fn bomb(drops: &Arc<AtomicUsize>) -> DropBomb {
        DropBomb { drops: drops.clone(), panics: true, _heap: Box::new(7) }
    }

    fn poll_once<F: Future>(task: Pin<&mut Tracked<F>>) -> Poll<F::Output> {
        task.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_cancelled_task_whose_drop_panics_still_exits() {
        let mutex: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
        let (tx, rx) = std::sync::mpsc::channel();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut task = Box::pin(tracked({
            let bomb = bomb(&drops);
            async move {
                let _bomb = bomb;
                // A borrowed guard that leaves its task without being handed over: still
                // registered to the task, so the task's exit abandons it.
                tx.send(mutex.lock().await.unwrap()).unwrap();
                std::future::pending::<()>().await;
            }
        }));
        let owner = task.owner();
        assert!(poll_once(task.as_mut()).is_pending());
        let guard = rx.recv().unwrap();
        // Cancel it: dropping the inner future panics.
        assert!(catch_unwind(AssertUnwindSafe(|| drop(task))).is_err());
        assert_eq!(drops.load(SeqCst), 1);
        // The exit ran anyway: the hold was abandoned (the drop unwound: `Panicked`)...
        let err = match mutex.try_lock() {
            Err(crate::error::TryLockError::Broken(err)) => err,
            other => panic!("expected Broken, got {other:?}"),
        };
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Panicked));
        // ...and the record outlives the guard that points at it (Miri: no dangling read).
        drop(guard);
        assert!(matches!(futures::executor::block_on(mutex.lock()), Err(AcquireError::Broken(_))));
    }

    /// Ready at once, and panics when dropped afterwards (an `async` block would drop
    /// its locals inside the poll instead).
    struct ReadyThenBomb(#[allow(dead_code)] DropBomb);
    impl Future for ReadyThenBomb {
        type Output = u8;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
            Poll::Ready(5)
        }
    }

    #[test]
    fn a_finished_future_whose_drop_panics_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut task = Box::pin(tracked(ReadyThenBomb(bomb(&drops))));
        // The poll completes, then dropping the finished future panics out of `poll`.
        assert!(catch_unwind(AssertUnwindSafe(|| poll_once(task.as_mut()))).is_err());
        // An executor drops the task after catching the panic (`tokio::spawn` does).
        drop(task);
        assert_eq!(drops.load(SeqCst), 1, "the inner future is dropped exactly once");
    }

    #[test]
    fn a_finished_future_whose_drop_panics_exits_its_owner() {
        let mutex = Arc::new(Mutex::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let mut task = Box::pin(tracked({
            let (mutex, bomb) = (mutex.clone(), bomb(&drops));
            async move {
                std::mem::forget(mutex.lock().await.unwrap());
                let _bomb = bomb;
            }
        }));
        let owner = task.owner();
        assert!(catch_unwind(AssertUnwindSafe(|| poll_once(task.as_mut()))).is_err());
        let err = mutex.statistics().broken().cloned().expect("the leaked guard broke it");
        assert_eq!((err.owner(), err.reason()), (owner, AbandonReason::Panicked));
        drop(task);
    }

    /// Issue 11, finding 6: a guard returned from a nested scope is the enclosing
    /// task's, not an abandonment of the nested one.
    #[test]
    fn a_guard_returned_from_a_nested_scope_passes_to_the_enclosing_task() {
        let mutex = Arc::new(Mutex::new(0));
        let outer = tracked({
            let mutex = mutex.clone();
            async move {
                let inner = tracked(async { mutex.lock().await });
                let inner_id = inner.owner();
                let mut guard = inner.await.unwrap();
                assert!(!mutex.is_broken(), "the completed scope passed its guard on");
                *guard += 1;
                drop(guard);
                assert_eq!(crate::owner::live_holds_of_current(), 1, "the spent scope's entry");
                // Nothing can be handed to the completed scope any more.
                let mut other = mutex.try_lock().unwrap();
                assert!(matches!(
                    crate::mutex::MutexGuard::hand_to(&mut other, inner_id),
                    Err(HandOverError::OwnerGone(id)) if id == inner_id
                ));
                drop(other);
                // A loop of nested scopes returning guards does not grow the owner.
                for _ in 0..50 {
                    let guard = tracked(async { mutex.lock().await }).await.unwrap();
                    drop(guard);
                }
                assert_eq!(crate::owner::live_holds_of_current(), 1, "spent scopes are let go");
                *mutex.lock().await.unwrap()
            }
        });
        assert_eq!(futures::executor::block_on(outer), 1);
        assert!(!mutex.is_broken());
    }

    /// Issue 29, defect 10: a scope whose nested scope passed it a guard, released since,
    /// completes holding nothing: it exits, and is not passed on, spent, to its own
    /// enclosing task.
    #[test]
    fn a_scope_whose_passed_holds_were_released_completes_holding_nothing() {
        let mutex = Mutex::new(0);
        futures::executor::block_on(tracked(async {
            tracked(async { drop(tracked(async { mutex.lock().await }).await.unwrap()) }).await;
            assert_eq!(crate::owner::live_holds_of_current(), 0, "was 1: the spent scope, passed on");
        }));
    }

    /// C2 for the same: the enclosing task that leaks the guard it was passed breaks
    /// the mutex when it exits, and the error names it, with its reason.
    #[test]
    fn a_guard_passed_out_of_a_nested_scope_and_leaked_breaks_at_the_enclosing_exit() {
        for cancel in [false, true] {
            let mutex = Arc::new(Mutex::new(0));
            let mut outer = Box::pin(tracked({
                let mutex = mutex.clone();
                async move {
                    let guard = tracked(tracked(async { mutex.lock().await })).await.unwrap();
                    std::mem::forget(guard);
                    if cancel {
                        std::future::pending::<()>().await;
                    }
                }
            }));
            let outer_id = outer.owner();
            let done = poll_once(outer.as_mut()).is_ready();
            assert_eq!(done, !cancel);
            assert!(!mutex.is_broken() || !cancel, "still held by the live enclosing task");
            drop(outer);
            let err = mutex.statistics().broken().cloned().expect("the enclosing exit broke it");
            let reason = if cancel { AbandonReason::Cancelled } else { AbandonReason::Exited };
            assert_eq!((err.owner(), err.reason()), (outer_id, reason));
        }
    }

    /// A nested scope that is cancelled has no output: it abandons what it holds, as its
    /// own exit.
    #[test]
    fn a_cancelled_nested_scope_abandons_what_it_holds() {
        let mutex = Arc::new(Mutex::new(0));
        let outer = tracked({
            let mutex = mutex.clone();
            async move {
                let mut inner = Box::pin(tracked(async {
                    std::mem::forget(mutex.lock().await.unwrap());
                    std::future::pending::<()>().await
                }));
                let inner_id = inner.owner();
                assert!(poll_once(inner.as_mut()).is_pending());
                drop(inner);
                inner_id
            }
        });
        let inner_id = futures::executor::block_on(outer);
        let err = mutex.statistics().broken().cloned().expect("the cancelled scope broke it");
        assert_eq!((err.owner(), err.reason()), (inner_id, AbandonReason::Cancelled));
    }
}
