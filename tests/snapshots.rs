//! Snapshots (issue "see every hold and every wait", DESIGN.md 6): each primitive's
//! `statistics()` lists its exclusive hold, its waiters, self-waits and orphaned owned
//! holds, each with owner and acquire site; with the `diagnostics` feature,
//! `ownsync::diagnostics::snapshot()` adds every live primitive and the wait-for cycles
//! among owners. Every test drives its tasks by hand (`Polled`): nothing here sleeps.

mod common;

use std::sync::Arc;

use common::Polled;
use ownsync::{Event, Mutex, Semaphore, tracked};

#[test]
fn a_snapshot_names_the_holder_and_each_waiter_with_their_sites() {
    let mutex = Arc::new(Mutex::with_name(0, "config"));
    let release = Arc::new(Event::new());
    let holder = tracked({
        let (mutex, release) = (mutex.clone(), release.clone());
        async move {
            let _guard = mutex.lock().await.unwrap();
            let hold_line = line!() - 1;
            release.wait().await;
            hold_line
        }
    });
    let holder_id = holder.owner();
    let mut holder = Polled::new(holder);
    assert!(holder.is_pending(), "holds, and waits for the release");
    let stats = mutex.statistics();
    assert_eq!(stats.holds().len(), 1);
    assert_eq!(stats.holds()[0].owner(), Some(holder_id));
    assert_eq!(stats.holds()[0].held_for(), None, "uncontended: not timed");

    let waiter = tracked({
        let mutex = mutex.clone();
        async move {
            let _guard = mutex.lock().await.unwrap();
            line!() - 1 // the line of the wait
        }
    });
    let waiter_id = waiter.owner();
    let mut waiter = Polled::new(waiter);
    assert!(waiter.is_pending());

    let stats = mutex.statistics();
    let hold = &stats.holds()[0];
    assert!(hold.held_for().is_some(), "timed from the first waiter on");
    assert_eq!(hold.site().unwrap().file(), file!());
    let wait = &stats.waits()[0];
    assert_eq!((wait.owner(), wait.permits(), wait.is_self_wait()), (Some(waiter_id), 1, false));
    assert_eq!(wait.site().unwrap().file(), file!());
    let debug = format!("{mutex:?}");
    assert!(debug.contains(&format!("holder: Some({holder_id})")), "{debug}");
    assert!(debug.contains("taken_at: tests/snapshots.rs:") && debug.contains("waiters: 1"), "{debug}");

    release.set();
    let hold_line = holder.ready();
    assert_eq!(hold.site().unwrap().line(), hold_line);
    let wait_line = waiter.ready();
    assert_eq!(wait.site().unwrap().line(), wait_line);
    let stats = mutex.statistics();
    assert!(stats.holds().is_empty() && stats.waits().is_empty());
}

/// A hand-off makes the grantee the holder, named with its own site, and begins a new
/// hold (timed from when it is first seen with waiters).
#[test]
fn a_granted_hold_is_the_grantees_with_the_grantees_site() {
    let mutex = Mutex::new(());
    let guard = mutex.blocking_lock().unwrap();
    let first = tracked(async { mutex.lock().await.map(drop) });
    let first_id = first.owner();
    let mut first = Polled::new(first);
    assert!(first.is_pending());
    let mut second = Polled::new(mutex.lock());
    assert!(second.is_pending());
    let line = line!() - 6;
    drop(guard); // granted to `first`, not run yet
    let stats = mutex.statistics();
    let hold = &stats.holds()[0];
    assert_eq!((hold.owner(), hold.site().unwrap().line()), (Some(first_id), line));
    assert!(hold.held_for().is_some(), "timed: the second waits for it");
    assert_eq!(stats.waits().len(), 1, "the second still waits");
    assert!(first.ready().is_ok());
    assert!(second.ready().is_ok());
    // The queue emptied: the next hold, taken and given back on the fast paths, is not
    // timed from an earlier one's stamp.
    let _guard = mutex.blocking_lock().unwrap();
    assert_eq!(mutex.statistics().holds()[0].held_for(), None);
}

/// The futurelock shape (DESIGN.md 2b): a task waits for a lock its own sub-future
/// holds. Listed as a self-wait, not an error.
#[test]
fn a_self_wait_is_listed_as_such() {
    let mutex = Mutex::new(0);
    let release = Event::new();
    let task = tracked(async {
        let holder = async {
            let _guard = mutex.lock().await.unwrap();
            release.wait().await;
        };
        let sibling = async { drop(mutex.lock().await.unwrap()) };
        futures::join!(holder, sibling);
    });
    let owner = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending());
    let stats = mutex.statistics();
    assert_eq!(stats.self_waits(), 1);
    assert_eq!(stats.waits()[0].owner(), Some(owner));
    assert!(stats.waits()[0].is_self_wait());
    assert_eq!(stats.holds()[0].owner(), Some(owner));
    release.set();
    task.ready();
}

/// An owned permit that left its task (returned out of it) is orphaned when the task
/// ends: listed with its acquirer and site until it is dropped.
#[test]
fn an_orphaned_owned_hold_is_listed_until_it_is_released() {
    let semaphore = Arc::new(Semaphore::new(2));
    let task = tracked({
        let semaphore = semaphore.clone();
        async move { (semaphore.acquire_owned().await.unwrap(), line!()) }
    });
    let acquirer = task.owner();
    let (permit, line) = futures::executor::block_on(task);
    let stats = semaphore.statistics();
    assert_eq!(stats.orphaned(), 1);
    let orphan = &stats.orphans()[0];
    assert_eq!((orphan.acquirer(), orphan.permits()), (acquirer, 1));
    assert_eq!((orphan.site().unwrap().file(), orphan.site().unwrap().line()), (file!(), line));
    drop(permit);
    assert!(semaphore.statistics().orphans().is_empty());
}

/// Two orphans of different sites: releasing one leaves the other listed.
#[test]
fn releasing_one_orphan_unlists_that_one() {
    let semaphore = Arc::new(Semaphore::new(2));
    let task = tracked({
        let semaphore = semaphore.clone();
        async move {
            let first = semaphore.clone().acquire_owned().await.unwrap();
            let second = semaphore.acquire_owned().await.unwrap();
            (first, second, line!() - 1)
        }
    });
    let (first, second, second_line) = futures::executor::block_on(task);
    assert_eq!(semaphore.statistics().orphans().len(), 2);
    drop(first);
    let stats = semaphore.statistics();
    assert_eq!(stats.orphans().len(), 1);
    assert_eq!(stats.orphans()[0].site().unwrap().line(), second_line);
    drop(second);
    assert!(semaphore.statistics().orphans().is_empty());
}

/// An RwLock's writer is its exclusive hold, with all the lock's permits; readers are
/// counted, not listed.
#[test]
fn an_rwlocks_writer_is_listed_and_readers_are_counted() {
    let lock = ownsync::RwLock::with_max_readers(0, 4);
    let writer = lock.blocking_write().unwrap();
    let line = line!() - 1;
    let stats = lock.statistics();
    let hold = &stats.holds()[0];
    assert_eq!((hold.owner(), hold.permits()), (Some(ownsync::current_owner()), 4));
    assert_eq!(hold.site().unwrap().line(), line);
    drop(writer);
    let _readers = (lock.blocking_read().unwrap(), lock.blocking_read().unwrap());
    let stats = lock.statistics();
    assert!(stats.holds().is_empty());
    assert_eq!(stats.readers(), 2);
}

#[cfg(feature = "diagnostics")]
mod process_wide {
    use super::*;
    use ownsync::OwnerId;
    use ownsync::diagnostics::{Snapshot, WaitCycle, snapshot};

    /// The cycles of `snapshot` made only of `owners` (other tests run alongside).
    fn cycles_among(snapshot: &Snapshot, owners: &[OwnerId]) -> Vec<WaitCycle> {
        snapshot
            .cycles()
            .iter()
            .filter(|cycle| cycle.owners().all(|owner| owners.contains(&owner)))
            .cloned()
            .collect()
    }

    /// `n` tasks, task `i` locking mutex `i` and then mutex `i + 1` (mod n): a classic
    /// lock-order inversion once each holds its first. Returns the tasks (pending, in
    /// the cycle), their owners and the mutexes.
    #[allow(clippy::type_complexity)]
    fn ring(
        n: usize,
    ) -> (Vec<Polled<impl Future<Output = ()>>>, Vec<OwnerId>, Vec<Arc<Mutex<()>>>, Arc<Event>) {
        let mutexes: Vec<_> =
            (0..n).map(|i| Arc::new(Mutex::with_name((), format!("ring{n}-{i}")))).collect();
        let all_hold = Arc::new(Event::new());
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (first, second) = (mutexes[i].clone(), mutexes[(i + 1) % n].clone());
                let all_hold = all_hold.clone();
                tracked(async move {
                    let _first = first.lock().await.unwrap();
                    all_hold.wait().await;
                    let _second = second.lock().await.unwrap();
                })
            })
            .collect();
        let owners = tasks.iter().map(|task| task.owner()).collect();
        let mut tasks: Vec<_> = tasks.into_iter().map(Polled::new).collect();
        assert!(tasks.iter_mut().all(Polled::is_pending), "each holds its first");
        all_hold.set();
        assert!(tasks.iter_mut().all(Polled::is_pending), "each waits for the next");
        (tasks, owners, mutexes, all_hold)
    }

    #[test]
    fn a_two_task_lock_order_inversion_is_a_possible_deadlock() {
        let (_tasks, owners, _mutexes, _event) = ring(2);
        let snapshot = snapshot();
        let cycles = cycles_among(&snapshot, &owners);
        assert_eq!(cycles.len(), 1, "{snapshot}");
        let steps = cycles[0].steps();
        assert_eq!(steps.len(), 2);
        for step in steps {
            assert_ne!(step.waiter(), step.holder());
            assert_eq!(step.wait_site().unwrap().file(), file!());
            assert_eq!(step.hold_site().unwrap().file(), file!());
            assert!(snapshot.primitives()[step.primitive()].name().unwrap().starts_with("ring2-"));
        }
        assert_eq!(steps[0].holder(), steps[1].waiter());
        assert_eq!(steps[1].holder(), steps[0].waiter());
        let text = snapshot.to_string();
        assert!(text.contains("possible deadlock"), "{text}");
        assert!(text.contains("waits at tests/snapshots.rs:"), "{text}");
    }

    #[test]
    fn a_three_task_cycle_is_found_whole() {
        let (_tasks, owners, _mutexes, _event) = ring(3);
        let snapshot = snapshot();
        let cycles = cycles_among(&snapshot, &owners);
        assert_eq!(cycles.len(), 1, "{snapshot}");
        let mut on_cycle: Vec<_> = cycles[0].owners().collect();
        on_cycle.sort_by_key(|owner| owner.number());
        let mut expected = owners.clone();
        expected.sort_by_key(|owner| owner.number());
        assert_eq!(on_cycle, expected);
    }

    /// Sub-futures of one task taking turns on one mutex (`join_all`) wait for each
    /// other's holds: self-waits, never a cycle.
    #[test]
    fn sub_futures_taking_turns_are_no_cycle() {
        let mutex = Mutex::with_name(0, "turns");
        let go = Event::new();
        let task = tracked(futures::future::join_all((0..3).map(|_| async {
            let mut guard = mutex.lock().await.unwrap();
            go.wait().await;
            *guard += 1;
        })));
        let owner = task.owner();
        let mut task = Polled::new(task);
        assert!(task.is_pending());
        let snapshot = snapshot();
        assert!(cycles_among(&snapshot, &[owner]).is_empty(), "{snapshot}");
        let turns = snapshot.primitives().iter().find(|p| p.name() == Some("turns")).unwrap();
        assert_eq!(turns.waits().len(), 2);
        assert!(turns.waits().iter().all(|wait| wait.is_self_wait()));
        assert!(snapshot.self_waits().any(|(_, wait)| wait.owner() == Some(owner)));
        go.set();
        task.ready();
        assert_eq!(*mutex.blocking_lock().unwrap(), 3);
    }

    /// A cycle through a counted hold: A holds the one permit and waits for the mutex, B
    /// holds the mutex and waits for a permit. The permit is known from A's wait.
    #[test]
    fn a_cycle_through_a_semaphore_permit_is_found() {
        let (semaphore, mutex) = (Arc::new(Semaphore::with_name(1, "pool")), Arc::new(Mutex::new(())));
        let both_hold = Arc::new(Event::new());
        let a = tracked({
            let (semaphore, mutex, both_hold) = (semaphore.clone(), mutex.clone(), both_hold.clone());
            async move {
                let _permit = semaphore.acquire().await.unwrap();
                both_hold.wait().await;
                drop(mutex.lock().await.unwrap());
            }
        });
        let b = tracked({
            let (semaphore, mutex, both_hold) = (semaphore.clone(), mutex.clone(), both_hold.clone());
            async move {
                let _guard = mutex.lock().await.unwrap();
                both_hold.wait().await;
                drop(semaphore.acquire().await.unwrap());
            }
        });
        let owners = [a.owner(), b.owner()];
        let (mut a, mut b) = (Polled::new(a), Polled::new(b));
        assert!(a.is_pending() && b.is_pending());
        both_hold.set();
        assert!(a.is_pending() && b.is_pending());
        let snapshot = snapshot();
        let pool = snapshot.primitives().iter().find(|p| p.name() == Some("pool")).unwrap();
        assert_eq!(pool.holds()[0].owner(), Some(owners[0]), "{snapshot}");
        assert_eq!(cycles_among(&snapshot, &owners).len(), 1, "{snapshot}");
    }

    /// The registry holds primitives weakly: a dropped one is gone from the next
    /// snapshot.
    #[test]
    fn dropped_primitives_leave_the_registry() {
        let mutex = Mutex::with_name((), "short-lived-in-snapshot");
        let named = |snapshot: &Snapshot| {
            snapshot.primitives().iter().filter(|p| p.name() == Some("short-lived-in-snapshot")).count()
        };
        assert_eq!(named(&snapshot()), 1);
        drop(mutex);
        // A snapshot taken meanwhile by another test keeps it alive while it reads it,
        // for a moment: the registry itself does not.
        let gone = (0..100_000).any(|_| {
            std::thread::yield_now();
            named(&snapshot()) == 0
        });
        assert!(gone, "a dropped primitive stays in the registry");
    }
}

/// The snapshot counts the holds each primitive gave to untracked tokio tasks, and says
/// what that means.
#[cfg(all(feature = "diagnostics", feature = "tokio"))]
#[test]
fn a_snapshot_counts_anonymous_holds_of_untracked_tokio_tasks() {
    let mutex = Arc::new(Mutex::with_name(0, "untracked-snapshot"));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on({
        let mutex = mutex.clone();
        async move { tokio::spawn(async move { std::mem::forget(mutex.lock().await.unwrap()) }).await.unwrap() }
    });
    let snapshot = ownsync::diagnostics::snapshot();
    let primitive = snapshot
        .primitives()
        .iter()
        .find(|primitive| primitive.name() == Some("untracked-snapshot"))
        .expect("a live mutex is in the snapshot");
    assert_eq!(primitive.anonymous_holds(), 1);
    let text = snapshot.to_string();
    assert!(text.contains("1 anonymous hold(s) taken in untracked tokio tasks so far"), "{text}");
    assert!(text.contains("use track_all, ownsync::tokio::spawn or tracked"), "{text}");
}
