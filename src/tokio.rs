//! Spawning tracked tasks on tokio (feature `tokio`).
//!
//! `tokio::spawn(fut)` runs `fut` as an untracked task: its holds are anonymous, exactly as
//! with tokio's own primitives (they are counted, in each primitive's
//! `statistics().anonymous_holds()`, and reported once per call site with the `tracing`
//! feature). Two ways to make tasks owners, so that a hold a task leaks, or keeps while
//! it panics or is aborted, breaks the primitive instead of hanging every waiter:
//!
//! - for every task of a runtime, with one line: `track_all(&mut builder)`, through
//!   tokio's task hooks (only with `--cfg tokio_unstable`: tokio's hooks are unstable);
//! - for one task: spawn it through this module ([`spawn`], [`spawn_with`],
//!   [`spawn_local`], [`JoinSetExt`]), which wraps the future in [`tracked`] first.
//!   Everything else is tokio's: the same handles, abort, `JoinSet`, and errors.
//!
//! The feature also makes every ownsync acquire that does not wait spend tokio's
//! cooperative budget (a task looping on an uncontended lock yields to its neighbours,
//! as with `tokio::sync`; an acquire that waited has yielded already), and
//! gives untracked tokio tasks an identity (`tokio-task#N`), so that a task waiting for a
//! hold it owns itself is diagnosed as a self-wait (`statistics()`, `Debug`), and refused
//! with `WouldDeadlock` by the identity APIs and by a `strict()` mutex.

use std::future::Future;

use ::tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::tracked::{HandOver, tracked, tracked_with};

#[cfg(all(tokio_unstable, not(loom)))]
mod track_all;
#[cfg(all(tokio_unstable, not(loom)))]
#[cfg_attr(docsrs, doc(cfg(tokio_unstable)))]
pub use track_all::track_all;

/// [`tokio::spawn`] of a [`tracked`] task: the spawned task owns what it
/// acquires.
///
/// # Panics
/// Outside a tokio runtime, as `tokio::spawn` does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lock = std::sync::Arc::new(ownsync::Lock::default());
/// let holder = lock.clone();
/// ownsync::tokio::spawn(async move { std::mem::forget(holder.lock().await.unwrap()) })
///     .await
///     .unwrap();
/// // The task ended holding the lock: waiters get an error, not a hang.
/// assert!(lock.lock().await.is_err());
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(tracked(future).spawned_as_task())
}

/// [`tokio::spawn`] of [`tracked_with`]`(hold, make)`: `hold` (a guard, permit or token,
/// or a `Vec` or pair of them) is handed to the new task before it can run, so the task
/// answers for it from its first poll on. The bounded-spawning idiom of tokio's docs,
/// with the child's leak, panic or abort breaking the semaphore instead of hanging the
/// final drain.
///
/// # Panics
/// Outside a tokio runtime, as `tokio::spawn` does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// let sem = Arc::new(ownsync::Semaphore::new(2));
/// for job in 0..4 {
///     let permit = sem.clone().acquire_owned().await.unwrap();
///     ownsync::tokio::spawn_with(permit, move |permit| async move {
///         let _ = job; // the work
///         drop(permit);
///     });
/// }
/// // Graceful shutdown: wait until every child gave its permit back.
/// let all = sem.acquire_many(2).await.unwrap();
/// assert_eq!(all.num_permits(), 2);
/// # }
/// ```
#[track_caller]
pub fn spawn_with<H, F>(hold: H, make: impl FnOnce(H) -> F) -> JoinHandle<F::Output>
where
    H: HandOver,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(tracked_with(hold, make).spawned_as_task())
}

/// [`tokio::task::spawn_local`] of a [`tracked`] task, for
/// futures that are not `Send`.
///
/// # Panics
/// Outside a [`LocalSet`](::tokio::task::LocalSet) (or a local runtime), as `spawn_local` does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let owner = local
///     .run_until(async { ownsync::tokio::spawn_local(async { ownsync::current_owner() }).await })
///     .await
///     .unwrap();
/// assert!(owner.is_task());
/// # }
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ::tokio::task::spawn_local(tracked(future).spawned_as_task())
}

/// Spawning tracked tasks into a [`JoinSet`].
///
/// ```
/// use ownsync::tokio::JoinSetExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut set = tokio::task::JoinSet::new();
/// for _ in 0..3 {
///     set.spawn_tracked(async { ownsync::current_owner() });
/// }
/// let mut owners = Vec::new();
/// while let Some(owner) = set.join_next().await {
///     owners.push(owner.unwrap());
/// }
/// owners.sort();
/// owners.dedup();
/// assert_eq!(owners.len(), 3); // each task is its own owner
/// # }
/// ```
pub trait JoinSetExt<T> {
    /// [`JoinSet::spawn`] of a [`tracked`] task.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `JoinSet::spawn` does.
    fn spawn_tracked<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send;

    /// [`JoinSet::spawn_local`] of a [`tracked`] task.
    ///
    /// # Panics
    /// Outside a [`LocalSet`](::tokio::task::LocalSet), as `JoinSet::spawn_local` does.
    fn spawn_local_tracked<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static;
}

impl<T: 'static> JoinSetExt<T> for JoinSet<T> {
    #[track_caller]
    fn spawn_tracked<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.spawn(tracked(future).spawned_as_task())
    }

    #[track_caller]
    fn spawn_local_tracked<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.spawn_local(tracked(future).spawned_as_task())
    }
}
