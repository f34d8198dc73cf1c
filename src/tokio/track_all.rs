//! Every task of a runtime as an owner, through tokio's task hooks.
//!
//! A tracked task is an owner because its wrapper (`Tracked`) sees each poll and its own
//! end. A plain `tokio::spawn` task has no wrapper, but tokio (under `--cfg
//! tokio_unstable`) calls the runtime's hooks around every poll of every task and once
//! when a task terminates; that is all an owner needs:
//!
//! - before a poll: the task's owner record (made at its first poll, kept in a table by
//!   tokio's task id) becomes the current owner of this thread, exactly as a `Tracked`
//!   poll makes its record current; a `tracked(..)` scope inside the task is nested in
//!   it, so the innermost owner wins, as everywhere else;
//! - after the poll: the previous current owner comes back;
//! - when the task terminates: the record leaves the table and exits, abandoning what
//!   is still registered to it.
//!
//! Why the exit reason is only partly known: tokio's terminate hook does not say why the
//! task ended. A task that completes, panics or is aborted while it is being run ends
//! inside that run (its future is dropped there: during the panic's unwinding, or by the
//! abort), and the hook cannot tell those apart, so its exit is `Exited`. A task shut
//! down with its runtime ends outside any run of it: its future was certainly dropped
//! unfinished, so its exit is `Cancelled`. A guard alive in a panicking task is dropped
//! while the thread unwinds, which breaks a mutex or a writer with `Panicked` on its
//! own, naming the task.
//!
//! Blocking tasks (`spawn_blocking`) are never polled through the hooks: they get no
//! record, and their thread stays their owner, as without the hooks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use ::tokio::runtime::{Builder, TaskMeta};

use crate::error::AbandonReason;
use crate::owner::{CurrentTaskScope, OwnerInner};

/// Makes every task of the runtime built by `builder` an owner, as if each were spawned
/// with [`ownsync::tokio::spawn`](crate::tokio::spawn): a plain `tokio::spawn` task, an
/// axum handler's task, a `JoinSet` task that leaks a hold, ends still holding a borrowed
/// guard, or panics holding a mutex guard breaks the primitive, and every waiter gets an
/// error naming the task, instead of hanging. The one line of set-up a program needs.
///
/// It sets the builder's `on_before_task_poll`, `on_after_task_poll` and
/// `on_task_terminate` hooks (tokio keeps one of each: set none of them after this
/// call, or tracking stops working). Owned guards and permits (`lock_owned`,
/// `acquire_owned`) move between tasks: their acquirer's end is no evidence, as with
/// tracked tasks. What a task's end abandons, and when:
///
/// - a task that completes, panics or is aborted: what is still registered to it
///   (borrowed guards it leaked or kept outside its future) breaks, as
///   `AbandonReason::Exited` (tokio does not say which of the three it was); a mutex or
///   RwLock write guard dropped while the task panics breaks it as `Panicked`; other
///   guards, permits and tokens in the task's future are released when tokio drops it
///   (during the unwinding, before the task's end is known), as with tokio;
/// - a task dropped with its runtime (shutdown): `AbandonReason::Cancelled`;
/// - a section cut short: tokio drops an aborted (or shut down) task's future before
///   any hook runs, so a mutex guard alive in it is released as with tokio: not counted
///   in `cut_short()`, and not broken by `break_on_cancel()`. Run the task as a
///   [`tracked`](fn@crate::tracked) scope (or spawn it with `ownsync::tokio::spawn`), or
///   use `with_lock`, for that;
/// - a borrowed guard of a `'static` primitive returned as the task's output is
///   abandoned by the task's end before the `JoinHandle` gives it out: return an owned
///   guard, or hand the guard to the awaiting task ([`HandOver`](crate::HandOver)) before
///   returning it;
/// - `spawn_blocking` tasks are not polled as tasks: a blocking acquire there is owned
///   by its thread, as without this call; `LocalSet` tasks get no hooks from tokio, and
///   their holds are those of the task that runs the `LocalSet`.
///
/// A nested [`tracked`](fn@crate::tracked) scope, and a task spawned with
/// `ownsync::tokio::spawn`, is its own owner inside the task, as without this call.
///
/// Only with `--cfg tokio_unstable` (tokio's task hooks are unstable): build with
/// `RUSTFLAGS="--cfg tokio_unstable"`. Without it this function does not exist.
///
/// ```
/// use std::sync::Arc;
/// use ownsync::{AcquireError, Semaphore};
///
/// let runtime = ownsync::tokio::track_all(&mut tokio::runtime::Builder::new_multi_thread())
///     .enable_all()
///     .build()
///     .unwrap();
/// runtime.block_on(async {
///     let pool = Arc::new(Semaphore::new(1));
///     let leaker = tokio::spawn({
///         let pool = pool.clone();
///         async move { std::mem::forget(pool.acquire().await.unwrap()) } // a bug
///     });
///     leaker.await.unwrap();
///     // The plain tokio task ended holding the permit: waiters get an error, not a hang.
///     assert!(matches!(pool.acquire().await, Err(AcquireError::Broken(_))));
/// });
/// ```
pub fn track_all(builder: &mut Builder) -> &mut Builder {
    builder.on_before_task_poll(before_poll).on_after_task_poll(after_poll).on_task_terminate(terminate)
}

/// A task polled on this thread now, outermost first (a runtime driven inside a task's
/// poll, through `block_in_place`, nests its tasks' polls inside it).
struct Polling {
    task: u64,
    /// Restores the thread's previous current owner when dropped; dropped before
    /// `record`, which it points into.
    scope: Option<CurrentTaskScope>,
    /// Keeps the record alive while it is current, even once `terminate` took it out of
    /// the table.
    record: Arc<OwnerInner>,
}

/// What a thread knows of the hooked tasks: the ones it polls now, and the last one it
/// polled, whose record is kept here between polls so that a task polled again on the
/// same thread (a yield, a wake-up that finds it on the same worker) skips the table.
/// Task ids are never reused, so a match is that same live task.
struct ThreadState {
    polling: Vec<Polling>,
    last: Option<(u64, Arc<OwnerInner>)>,
}

std::thread_local! {
    static THREAD: RefCell<ThreadState> = const { RefCell::new(ThreadState { polling: Vec::new(), last: None }) };
}

/// The records of the tasks polled so far and not yet terminated, by task id, in shards
/// so that workers polling different tasks rarely meet on one lock.
const SHARDS: usize = 64;
type Records = HashMap<u64, Arc<OwnerInner>, BuildHasherDefault<TaskIdHasher>>;
static RECORDS: [parking_lot::Mutex<Option<Records>>; SHARDS] =
    [const { parking_lot::Mutex::new(None) }; SHARDS];

fn shard(task: u64) -> &'static parking_lot::Mutex<Option<Records>> {
    &RECORDS[task as usize % SHARDS]
}

/// Task ids are small distinct numbers: one multiplication spreads them over the table.
#[derive(Default)]
struct TaskIdHasher(u64);

impl Hasher for TaskIdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn task_number(meta: &TaskMeta<'_>) -> u64 {
    crate::runtime::tokio_id_number(meta.id())
}

fn before_poll(meta: &TaskMeta<'_>) {
    let task = task_number(meta);
    let evicted = THREAD.with(|thread| {
        let mut thread = thread.borrow_mut();
        let (record, evicted) = match thread.last.take() {
            Some((last, record)) if last == task => (record, None),
            evicted => (lookup(task), evicted),
        };
        let scope = Some(CurrentTaskScope::enter(&record));
        thread.polling.push(Polling { task, scope, record });
        evicted
    });
    // A record's last reference is dropped outside the thread's state.
    drop(evicted);
}

/// The task's record, made at its first poll.
fn lookup(task: u64) -> Arc<OwnerInner> {
    shard(task)
        .lock()
        .get_or_insert_with(Records::default)
        .entry(task)
        .or_insert_with(OwnerInner::new_task)
        .clone()
}

fn after_poll(meta: &TaskMeta<'_>) {
    let task = task_number(meta);
    let evicted = THREAD.with(|thread| {
        let mut thread = thread.borrow_mut();
        debug_assert!(thread.polling.last().is_some_and(|top| top.task == task), "task polls nest");
        let mut done = thread.polling.pop()?;
        // The previous current owner comes back, and the record is kept for the next poll.
        drop(done.scope.take());
        thread.last.replace((done.task, done.record))
    });
    drop(evicted);
}

fn terminate(meta: &TaskMeta<'_>) {
    let task = task_number(meta);
    let Some(record) = shard(task).lock().as_mut().and_then(|records| records.remove(&task)) else {
        // Never polled through the hooks: a blocking task, or a task aborted or shut
        // down before its first poll. It has no record, and holds nothing.
        return;
    };
    let in_its_run = THREAD.with(|thread| thread.borrow().polling.last().is_some_and(|top| top.task == task));
    if in_its_run {
        // The record is the current owner (set by `before_poll`): its context.
        record.exit(AbandonReason::Exited);
    } else {
        // Shut down with its runtime: dropped unfinished. Nobody else is in its context
        // (tokio runs this after dropping the future, and never runs the task again).
        let _scope = CurrentTaskScope::enter(&record);
        record.exit(AbandonReason::Cancelled);
    }
}
