//! Every public `Debug` output (primitives, guards, permits, tokens, statistics, errors,
//! snapshots) says what a person needs and names none of the crate's private types; a
//! broken lock's says who broke it, why and where, not a holder that is gone.

mod common;

use std::future::pending;
use std::path::Path;
use std::sync::Arc;

use common::Polled;
use ownsync::{
    AbandonPolicy, CapacityLimiter, Condition, Event, Lock, Mutex, MutexGuard, Notify, OwnedMutexGuard,
    RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, tracked,
};

/// The names of the structs and enums under `src/` that are not public (declared without
/// `pub`, or `pub(crate)`/`pub(super)`), less those that a public type or variant shares.
fn private_type_names() -> Vec<String> {
    fn walk(dir: &Path, files: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let (mut private, mut public) = (Vec::new(), Vec::new());
    for line in files.iter().flat_map(|file| file.lines()).map(str::trim_start) {
        let (is_public, rest) = match line.strip_prefix("pub ") {
            Some(rest) => (true, rest),
            None => {
                (false, line.strip_prefix("pub(crate) ").or(line.strip_prefix("pub(super) ")).unwrap_or(line))
            }
        };
        let Some(rest) = rest.strip_prefix("struct ").or(rest.strip_prefix("enum ")) else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if is_public { public.push(name) } else { private.push(name) }
    }
    // `Broken` is also the public variant `AcquireError::Broken(BrokenResourceError)`.
    private.retain(|name| !public.contains(name) && name != "Broken");
    assert!(private.iter().any(|name| name == "CoreSnapshot"), "the scan finds private types: {private:?}");
    private
}

/// Fails if `debug` shows a private type: its name followed by ` {` or `(`, as a derived
/// `Debug` writes it.
fn assert_names_no_private_type(what: &str, debug: &str, private: &[String]) {
    for name in private {
        for shape in [format!("{name} {{"), format!("{name}(")] {
            let shown = debug.match_indices(&shape).any(|(at, _)| {
                !debug[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            assert!(!shown, "{what}'s Debug shows the private type {name}: {debug}");
        }
    }
}

#[test]
fn no_public_debug_output_names_a_private_type() {
    let private = private_type_names();
    let mut shown: Vec<(&str, String)> = Vec::new();
    let mut show = |what: &'static str, debug: String| shown.push((what, debug));

    // A mutex held by a task with a waiter that holds a permit (what a waiter holds is
    // recorded for the wait-for graph with `diagnostics`), and an orphaned owned guard.
    let mutex = Arc::new(Mutex::with_name(1, "m"));
    let sem = Arc::new(Semaphore::with_name(2, "s"));
    let release = Arc::new(Event::new());
    let mut holder = Polled::new(tracked({
        let (mutex, release) = (mutex.clone(), release.clone());
        async move {
            let _guard = mutex.lock().await.unwrap();
            release.wait().await;
        }
    }));
    assert!(holder.is_pending());
    let mut waiter = Polled::new(tracked({
        let (mutex, sem) = (mutex.clone(), sem.clone());
        async move {
            let _permit = sem.acquire().await.unwrap();
            drop(mutex.lock().await.unwrap());
        }
    }));
    assert!(waiter.is_pending());
    show("Mutex", format!("{mutex:?}"));
    show("MutexStatistics", format!("{:?}", mutex.statistics()));
    show("Semaphore", format!("{sem:?}"));
    show("SemaphoreStatistics", format!("{:?}", sem.statistics()));
    #[cfg(feature = "diagnostics")]
    {
        let snapshot = ownsync::diagnostics::snapshot();
        show("Snapshot", format!("{snapshot:?}"));
        show("PrimitiveSnapshot", format!("{:?}", snapshot.primitives()));
        show(
            "Watchdog",
            format!("{:?}", ownsync::diagnostics::Watchdog::new(std::time::Duration::from_secs(1))),
        );
    }
    release.set();
    holder.ready();
    waiter.ready();

    let orphaned = futures::executor::block_on(tracked({
        let sem = sem.clone();
        async move { sem.acquire_owned().await.unwrap() }
    }));
    show("OwnedSemaphorePermit", format!("{orphaned:?}"));
    show("SemaphoreStatistics with an orphan", format!("{:?}", sem.statistics()));
    show("Semaphore with an orphan", format!("{sem:?}"));
    show("SemaphorePermit", format!("{:?}", sem.try_acquire().unwrap()));

    let guard: MutexGuard<'_, i32> = mutex.try_lock().unwrap();
    show("MutexGuard", format!("{guard:?}"));
    show("MappedMutexGuard", format!("{:?}", MutexGuard::map(guard, |value| value)));
    let owned: OwnedMutexGuard<i32> = mutex.clone().try_lock_owned().unwrap();
    show("OwnedMutexGuard", format!("{owned:?}"));
    show("OwnedMappedMutexGuard", format!("{:?}", OwnedMutexGuard::map(owned, |value| value)));
    show("Lock", format!("{:?}", Lock::new(())));

    let rwlock = RwLock::new(String::from("r"));
    let read: RwLockReadGuard<'_, String> = rwlock.try_read().unwrap();
    show("RwLockReadGuard", format!("{read:?}"));
    show("RwLock read", format!("{rwlock:?}"));
    show("RwLockStatistics", format!("{:?}", rwlock.statistics()));
    drop(read);
    let write: RwLockWriteGuard<'_, String> = rwlock.try_write().unwrap();
    show("RwLockWriteGuard", format!("{write:?}"));
    show("RwLockMappedWriteGuard", format!("{:?}", RwLockWriteGuard::map(write, |value| value)));

    let limiter = CapacityLimiter::with_name_and_policy(2, "l", AbandonPolicy::Reclaim);
    let token = limiter.blocking_acquire().unwrap();
    show("CapacityToken", format!("{token:?}"));
    show("CapacityLimiter", format!("{limiter:?}"));
    show("LimiterStatistics", format!("{:?}", limiter.statistics()));
    drop(token);

    let condition = Condition::new();
    show("Condition", format!("{condition:?}"));
    show("ConditionStatistics", format!("{:?}", condition.statistics()));
    let event = Event::new();
    show("Event", format!("{event:?}"));
    show("EventStatistics", format!("{:?}", event.statistics()));
    let notify = Notify::new();
    show("Notify", format!("{notify:?}"));
    show("Notified", format!("{:?}", notify.notified()));
    show("Tracked", format!("{:?}", tracked(pending::<()>())));

    // Broken: a leaked guard and a leaked permit; the errors and the repair.
    let broken = Arc::new(Mutex::new(0));
    futures::executor::block_on(tracked({
        let broken = broken.clone();
        async move { std::mem::forget(broken.lock().await.unwrap()) }
    }));
    show("broken Mutex", format!("{broken:?}"));
    show("broken MutexStatistics", format!("{:?}", broken.statistics()));
    show("TryLockError", format!("{:?}", broken.try_lock().unwrap_err()));
    show("AcquireError", format!("{:?}", futures::executor::block_on(broken.lock()).unwrap_err()));
    let panicked = Arc::new(Mutex::new(0));
    let panicking = std::thread::spawn({
        let panicked = panicked.clone();
        move || {
            let _guard = panicked.blocking_lock().unwrap();
            panic!("a panic inside the section breaks the mutex (expected by the test)");
        }
    });
    assert!(panicking.join().is_err());
    show("RepairGuard", format!("{:?}", panicked.try_repair().unwrap()));
    let broken_sem = Semaphore::new(1);
    futures::executor::block_on(tracked(async { std::mem::forget(broken_sem.acquire().await.unwrap()) }));
    show("broken Semaphore", format!("{broken_sem:?}"));
    show("TryAcquireError", format!("{:?}", broken_sem.try_acquire().unwrap_err()));

    for (what, debug) in &shown {
        assert_names_no_private_type(what, debug, &private);
    }
    assert_eq!(shown.len(), if cfg!(feature = "diagnostics") { 38 } else { 35 }, "every type was formatted");
}

#[test]
fn a_broken_mutex_says_who_broke_it_why_and_where_not_a_dead_holder() {
    let mutex = Arc::new(Mutex::with_name(0, "config"));
    let leaker = tracked({
        let mutex = mutex.clone();
        async move {
            std::mem::forget(mutex.lock().await.unwrap());
            line!() - 1
        }
    });
    let leaker_id = leaker.owner();
    let line = futures::executor::block_on(leaker);
    assert!(mutex.is_broken());
    assert_eq!(
        format!("{mutex:?}"),
        format!(
            "Mutex {{ name: \"config\", data: <broken>, broken_by: {leaker_id}, reason: Exited, taken_at: \
             tests/debug_output.rs:{line}:36 }}"
        )
    );
    let lock = Arc::new(RwLock::new(0));
    futures::executor::block_on(tracked({
        let lock = lock.clone();
        async move { std::mem::forget(lock.write().await.unwrap()) }
    }));
    let debug = format!("{lock:?}");
    assert!(debug.starts_with("RwLock { data: <broken>, broken_by: task#"), "{debug}");
    assert!(!debug.contains("writer"), "{debug}");
}

/// Every statistics type shows what its snapshot counts: the anonymous holds (all
/// primitives share the field), and, in the process-wide snapshot, the sections cut
/// short as well.
#[test]
fn statistics_and_snapshots_show_anonymous_holds_and_sections_cut_short() {
    let semaphore = ownsync::Semaphore::new(1);
    assert!(format!("{:?}", semaphore.statistics()).contains("anonymous_holds: 0"));
    let limiter = ownsync::CapacityLimiter::new(1);
    assert!(format!("{:?}", limiter.statistics()).contains("anonymous_holds: 0"));
    #[cfg(feature = "diagnostics")]
    {
        let mutex = ownsync::Mutex::with_name(0, "debug-output-cut-short");
        let snapshot = ownsync::diagnostics::snapshot();
        let mine = snapshot
            .primitives()
            .iter()
            .find(|primitive| primitive.name() == Some("debug-output-cut-short"))
            .expect("the mutex is registered");
        let debug = format!("{mine:?}");
        assert!(debug.contains("anonymous_holds: 0") && debug.contains("cut_short"), "{debug}");
        drop(mutex);
    }
}
