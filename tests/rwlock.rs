//! RwLock: tokio's behaviour (ported from the idioms of tokio's own RwLock tests, with
//! the `Result`s), the owner semantics (a leak, a panic, a cancellation), and the
//! DESIGN.md 2b idioms, on tokio's multi-thread runtime and futures' thread pool.

mod common;

use std::sync::Arc;

use futures::future::join_all;
use ownsync::{
    AbandonPolicy, AbandonReason, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    TryLockError, tracked,
};

use common::{Polled, Rt, broken, yielding};

#[test]
fn into_inner_and_get_mut() {
    let mut lock = RwLock::new(42);
    *lock.get_mut() += 1;
    assert_eq!(lock.into_inner(), 43);
}

#[test]
fn readers_share() {
    let lock = RwLock::new(100);
    let mut first = Polled::new(lock.read());
    let mut second = Polled::new(lock.read());
    let (a, b) = (first.ready().unwrap(), second.ready().unwrap());
    assert_eq!(*a + *b, 200);
    assert_eq!(lock.statistics().readers(), 2);
}

#[test]
fn a_reader_makes_a_writer_wait_and_its_drop_wakes_it() {
    let lock = RwLock::new(100);
    let reader = lock.try_read().unwrap();
    let mut writer = Polled::new(lock.write());
    assert!(writer.is_pending());
    drop(reader);
    assert_eq!(writer.wakes(), 1);
    *writer.ready().unwrap() += 1;
    drop(writer);
    assert_eq!(*lock.try_read().unwrap(), 101);
}

#[test]
fn a_writer_excludes_readers_and_writers() {
    let lock = RwLock::new(100);
    let writer = lock.try_write().unwrap();
    let mut reader = Polled::new(lock.read());
    let mut other_writer = Polled::new(lock.write());
    assert!(reader.is_pending() && other_writer.is_pending());
    assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    drop(writer);
    let read = reader.ready().unwrap();
    assert_eq!(*read, 100, "FIFO: the reader queued first");
    assert!(other_writer.is_pending());
    drop(read);
    assert!(other_writer.ready().is_ok());
}

#[test]
fn reading_is_bounded_by_max_readers() {
    let lock = RwLock::with_max_readers(100, 1024);
    let mut reads = Vec::new();
    loop {
        let mut read = Polled::new(lock.read());
        match read.poll() {
            std::task::Poll::Ready(guard) => reads.push(guard.unwrap()),
            std::task::Poll::Pending => {
                assert_eq!(reads.len(), 1024);
                reads.pop();
                assert_eq!(read.wakes(), 1);
                assert!(read.ready().is_ok());
                break;
            }
        }
    }
}

/// Write-preferring: a queued writer stops the readers that come after it, even while
/// readers hold the lock (no writer starvation).
#[test]
fn a_queued_writer_stops_later_readers() {
    let lock = RwLock::new(0);
    let reader = lock.try_read().unwrap();
    let mut writer = Polled::new(lock.write());
    assert!(writer.is_pending());
    let mut late_reader = Polled::new(lock.read());
    assert!(late_reader.is_pending(), "behind the queued writer");
    assert!(lock.try_read().is_err());
    drop(reader);
    *writer.ready().unwrap() = 1;
    assert_eq!(*late_reader.ready().unwrap(), 1);
}

/// A queued writer that is cancelled lets the readers behind it through.
#[test]
fn a_cancelled_writer_lets_the_readers_behind_it_in() {
    let lock = RwLock::new(0);
    let _reader = lock.try_read().unwrap();
    let mut writer = Polled::new(lock.write());
    assert!(writer.is_pending());
    let mut late_reader = Polled::new(lock.read());
    assert!(late_reader.is_pending());
    drop(writer);
    assert_eq!(late_reader.wakes(), 1);
    assert!(late_reader.ready().is_ok());
}

#[test]
fn writers_are_served_in_fifo_order() {
    let lock = RwLock::new(Vec::new());
    let first = lock.try_write().unwrap();
    let mut queued: Vec<_> = (0..4).map(|_| Polled::new(lock.write())).collect();
    assert!(queued.iter_mut().all(Polled::is_pending));
    drop(first);
    for (i, writer) in queued.iter_mut().enumerate() {
        writer.ready().unwrap().push(i);
    }
    drop(queued);
    assert_eq!(*lock.try_read().unwrap(), [0, 1, 2, 3]);
}

#[test]
fn downgrade_is_atomic_and_lets_readers_in() {
    let lock = RwLock::new(1);
    let mut writer = lock.try_write().unwrap();
    let mut next_writer = Polled::new(lock.write());
    assert!(next_writer.is_pending());
    *writer = 2;
    let reader = writer.downgrade();
    assert!(next_writer.is_pending(), "no writer gets in between");
    assert_eq!(*reader, 2);
    drop(reader);
    *next_writer.ready().unwrap() = 3;
    drop(next_writer);
    assert_eq!(*lock.try_read().unwrap(), 3);
}

#[test]
#[should_panic(expected = "a RwLock may not be created with 0 readers")]
fn zero_max_readers_panics() {
    RwLock::with_max_readers((), 0);
}

#[test]
#[should_panic(expected = "a RwLock may not be created with more than")]
fn too_many_max_readers_panics() {
    RwLock::with_max_readers((), u32::MAX);
}

/// tokio's multithreaded test: many tasks write and read; every write lands.
fn many_tasks_read_and_write<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::new(0u64));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let lock = lock.clone();
            rt.spawn(async move {
                for _ in 0..50 {
                    if i % 4 == 0 {
                        *lock.write().await.unwrap() += 1;
                    } else {
                        let _ = *lock.read().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        rt.block_on(task.join()).unwrap();
    }
    assert_eq!(*rt.block_on(lock.read()).unwrap(), 10 * 50);
    assert!(!lock.statistics().is_locked());
}

/// A tracked task that leaks its write guard breaks the lock, naming it; so does one
/// that is cancelled holding a leaked guard (`Cancelled`).
fn a_leaked_write_guard_breaks_the_lock<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::with_name(0, "routes"));
    let (held, held_rx) = futures::channel::oneshot::channel::<()>();
    let (leave, leave_rx) = futures::channel::oneshot::channel::<()>();
    let leaker = tracked({
        let lock = lock.clone();
        async move {
            std::mem::forget(lock.write().await.unwrap());
            held.send(()).unwrap();
            let _ = leave_rx.await;
        }
    });
    let leaker_id = leaker.owner();
    let leaker = rt.spawn(leaker);
    rt.block_on(held_rx).unwrap();
    let waiter = rt.spawn({
        let lock = lock.clone();
        async move { lock.read().await.map(drop) }
    });
    // The event waited on: the reader is parked behind the leaked write hold.
    while lock.statistics().waiters() != 1 {
        std::thread::yield_now();
    }
    leave.send(()).unwrap();
    rt.block_on(leaker.join()).unwrap();
    let err = broken(rt.block_on(waiter.join()).unwrap());
    assert_eq!((err.owner(), err.reason()), (leaker_id, AbandonReason::Exited));
    assert!(err.to_string().contains("rwlock \"routes\""), "{err}");

    let lock = Arc::new(RwLock::new(0));
    let (held, held_rx) = futures::channel::oneshot::channel();
    let holder = rt.spawn(tracked({
        let lock = lock.clone();
        async move {
            std::mem::forget(lock.write().await.unwrap());
            held.send(ownsync::current_owner()).unwrap();
            std::future::pending::<()>().await
        }
    }));
    let holder_id = rt.block_on(held_rx).unwrap();
    rt.block_on(holder.abort().join());
    let err = broken(rt.block_on(lock.write()));
    assert_eq!((err.owner(), err.reason()), (holder_id, AbandonReason::Cancelled));
}

/// A panic inside a write section breaks the lock (the data may be half-updated); a
/// panic while only reading breaks nothing.
fn a_panic_breaks_only_under_a_write_guard<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::new(0));
    let reader = rt.spawn({
        let lock = lock.clone();
        async move {
            let _guard = lock.read().await.unwrap();
            panic!("while reading");
        }
    });
    assert!(rt.block_on(reader.join()).is_none(), "the task panicked");
    assert!(!lock.is_broken());
    let writer = rt.spawn({
        let lock = lock.clone();
        async move {
            let mut guard = lock.write().await.unwrap();
            *guard = 1;
            panic!("half-way through an update");
        }
    });
    assert!(rt.block_on(writer.join()).is_none());
    assert_eq!(broken(rt.block_on(lock.read())).reason(), AbandonReason::Panicked);
}

/// A leaked read guard of a tracked task breaks the lock (every writer would wait for
/// ever), under either policy: an RwLock guards data, so it never reclaims (the leaked
/// guard may still be reachable; `review_defects_r3` has the unsound case).
fn a_leaked_read_guard_breaks_under_either_policy<R: Rt>(rt: &R) {
    for policy in [AbandonPolicy::Break, AbandonPolicy::Reclaim] {
        let lock = Arc::new(RwLock::with_policy(0, policy));
        let leaker = tracked({
            let lock = lock.clone();
            async move { std::mem::forget(lock.read().await.unwrap()) }
        });
        rt.block_on(rt.spawn(leaker).join()).unwrap();
        let write = rt.block_on(lock.write()).map(drop);
        assert_eq!(broken(write).reason(), AbandonReason::Exited, "{policy:?}");
        assert_eq!(lock.statistics().abandoned().count(), 1);
    }
}

/// `downgrade` keeps the hold's owner: a task that downgrades and then leaks the read
/// guard still breaks the lock in its own name.
fn a_downgraded_hold_keeps_its_owner<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::new(0));
    let task = tracked({
        let lock = lock.clone();
        async move {
            let read = lock.write().await.unwrap().downgrade();
            assert_eq!(lock.statistics().writer(), None, "no writer any more");
            std::mem::forget(read);
            ownsync::current_owner()
        }
    });
    let owner = rt.block_on(rt.spawn(task).join()).unwrap();
    assert_eq!(broken(rt.block_on(lock.write())).owner(), owner);
}

/// 2b: readers and writers as sub-futures of one task take turns; nothing is refused.
fn readers_and_writers_join_in_one_task<R: Rt>(rt: &R) {
    for wrap in [true, false] {
        let lock = Arc::new(RwLock::new(0));
        let body = {
            let lock = lock.clone();
            async move {
                join_all((0..6).map(|i| {
                    let lock = lock.clone();
                    async move {
                        if i % 2 == 0 {
                            let mut guard = lock.write().await?;
                            futures::pending!();
                            *guard += 1;
                        } else {
                            let guard = lock.read().await?;
                            futures::pending!();
                            drop(guard);
                        }
                        Ok::<_, ownsync::AcquireError>(())
                    }
                }))
                .await
            }
        };
        let body = yielding(body);
        let results = if wrap {
            rt.block_on(rt.spawn(tracked(body)).join())
        } else {
            rt.block_on(rt.spawn(body).join())
        };
        assert!(results.unwrap().iter().all(Result::is_ok), "tracked: {wrap}");
        assert_eq!(*rt.block_on(lock.read()).unwrap(), 3);
        assert!(!lock.is_broken());
    }
}

/// 2b: an owned read guard moved into a spawned task outlives its acquirer; a writer
/// then waits for the child instead of finding the lock broken.
fn an_owned_read_guard_moved_into_a_child<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::new(7));
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let spawner = tracked({
        let lock = lock.clone();
        async move {
            let guard = lock.read_owned().await.unwrap();
            // The child's body, to spawn once the spawner is gone.
            move || async move {
                let _ = released.await;
                assert_eq!(*guard, 7);
            }
        }
    });
    let child = rt.block_on(rt.spawn(spawner).join()).unwrap();
    assert!(!lock.is_broken());
    assert_eq!(lock.statistics().orphaned(), 1);
    let child = rt.spawn(child());
    let writer = rt.spawn({
        let lock = lock.clone();
        async move { *lock.write().await.unwrap() += 1 }
    });
    release.send(()).unwrap();
    rt.block_on(writer.join()).unwrap();
    rt.block_on(child.join()).unwrap();
    assert_eq!(*rt.block_on(lock.read()).unwrap(), 8);
    assert_eq!(lock.statistics().orphaned(), 0);
}

/// A write guard handed to a task answers to that task: its exit with the guard breaks.
fn a_handed_write_guard_breaks_at_its_new_owners_exit<R: Rt>(rt: &R) {
    let lock = Arc::new(RwLock::new(0));
    let mut guard = rt.block_on(lock.clone().write_owned()).unwrap();
    let worker = tracked(async {});
    let worker_id = worker.owner();
    OwnedRwLockWriteGuard::hand_to(&mut guard, worker_id).unwrap();
    std::mem::forget(guard);
    rt.block_on(rt.spawn(worker).join()).unwrap();
    assert_eq!(broken(rt.block_on(lock.read())).owner(), worker_id);
}

/// A writer that waits for the write lock it holds itself (through a sibling
/// sub-future) is a self-wait, shown in the statistics, and resolves when the sibling
/// releases.
#[test]
fn a_writer_waiting_on_itself_is_a_self_wait() {
    let lock = RwLock::new(0);
    let (release, released) = futures::channel::oneshot::channel::<()>();
    let mut task = Polled::new(tracked(async {
        let holder = async {
            let _guard = lock.write().await.unwrap();
            released.await.unwrap();
        };
        let sibling = async { drop(lock.read().await.unwrap()) };
        futures::join!(holder, sibling);
    }));
    assert!(task.is_pending());
    assert_eq!(lock.statistics().self_waits(), 1);
    release.send(()).unwrap();
    task.ready();
    assert!(!lock.is_broken());
}

/// Under `Reclaim`, a leaked write hold still breaks the lock (its data may be
/// half-updated), as every abandoned hold of an RwLock does.
#[test]
fn reclaim_never_applies_to_a_write_hold() {
    let lock = RwLock::with_policy(0, AbandonPolicy::Reclaim);
    futures::executor::block_on(tracked(async { std::mem::forget(lock.write().await.unwrap()) }));
    assert!(lock.is_broken());
    assert!(matches!(lock.try_read(), Err(TryLockError::Broken(_))));
}

#[test]
fn guards_map_and_try_map_keep_the_hold() {
    let lock = RwLock::new((1, Some(2)));
    let read = RwLockReadGuard::try_map(lock.try_read().unwrap(), |pair| pair.1.as_ref()).unwrap();
    assert_eq!(*read, 2);
    assert!(lock.try_write().is_err());
    drop(read);
    let write = RwLockWriteGuard::try_map(lock.try_write().unwrap(), |pair| pair.1.as_mut()).unwrap();
    assert!(lock.try_read().is_err());
    drop(write);
    assert!(lock.try_write().is_ok());
}

on_runtimes!(
    many_tasks_read_and_write,
    a_leaked_write_guard_breaks_the_lock,
    a_panic_breaks_only_under_a_write_guard,
    a_leaked_read_guard_breaks_under_either_policy,
    a_downgraded_hold_keeps_its_owner,
    readers_and_writers_join_in_one_task,
    an_owned_read_guard_moved_into_a_child,
    a_handed_write_guard_breaks_at_its_new_owners_exit,
);
