//! Loom models of a hand-over (DESIGN.md 2b: `hand_to`) racing the exit of the old
//! owner, the exit of the new owner, and a release of the same hold's other half
//! elsewhere. Each race is decided once: the hold is released, or abandoned by exactly
//! one owner, never both and never neither, and no permit is lost or counted twice.
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use loom_tests::model;
use ownsync::{AbandonPolicy, CapacityLimiter, HandOverError, Mutex, OwnedMutexGuard, Semaphore, tracked};

/// A tracked task that never finishes by itself: dropping it is its exit (`Cancelled`).
fn idle_task() -> std::pin::Pin<Box<ownsync::Tracked<std::future::Pending<()>>>> {
    Box::pin(tracked(std::future::pending()))
}

/// A guard the old task answers for is handed to a new task on one thread while the
/// old task exits on another. Either the exit came first (the hand-over fails with
/// `Abandoned` and the mutex is broken in the old task's name) or the hand-over did
/// (the new task answers for it; the old exit finds nothing). Then the new task exits
/// too, holding it: broken in the new task's name. Exactly one name, never none.
#[test]
fn a_hand_over_races_the_old_owners_exit() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let (old, new) = (idle_task(), idle_task());
        let (old_id, new_id) = (old.owner(), new.owner());
        let mut guard = mutex.clone().try_lock_owned().unwrap();
        OwnedMutexGuard::hand_to(&mut guard, old_id).unwrap();
        let exit = thread::spawn(move || drop(old));
        let handed = OwnedMutexGuard::hand_to(&mut guard, new_id);
        exit.join().unwrap();
        drop(new);
        std::mem::forget(guard); // held to the end: whoever answers for it abandons it
        let err = match mutex.try_lock() {
            Err(ownsync::TryLockError::Broken(err)) => err,
            other => panic!("the hold was neither released nor abandoned: {other:?}"),
        };
        match handed {
            Ok(()) => assert_eq!(err.owner(), new_id),
            Err(HandOverError::Abandoned) => assert_eq!(err.owner(), old_id),
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(mutex.statistics().abandoned().count(), 1, "abandoned exactly once");
    });
}

/// An anonymous owned guard is handed to a task while that task exits. Either the
/// hand-over came first (the task's exit abandons the hold: broken in its name) or the
/// exit did (`OwnerGone`: the guard is still the caller's, and its drop releases it).
#[test]
fn a_hand_over_races_the_new_owners_exit() {
    model(|| {
        let mutex = Arc::new(Mutex::new(()));
        let new = idle_task();
        let new_id = new.owner();
        let mut guard = mutex.clone().try_lock_owned().unwrap();
        let exit = thread::spawn(move || drop(new));
        let handed = OwnedMutexGuard::hand_to(&mut guard, new_id);
        exit.join().unwrap();
        drop(guard);
        match (handed, mutex.try_lock()) {
            (Ok(()), Err(ownsync::TryLockError::Broken(err))) => assert_eq!(err.owner(), new_id),
            (Err(HandOverError::OwnerGone(id)), Ok(_)) => assert_eq!(id, new_id),
            (handed, now) => panic!("decided inconsistently: {handed:?}, then {now:?}"),
        }
    });
}

/// Two halves of one reclaimable permit pair: one half is handed to a second task while
/// the other half is released on another thread and the first task (which answers for
/// both) exits. No permit is lost and none is returned twice: once everything is done
/// (the second task exits holding its half), all permits are back, and what came back
/// by reclaim matches the abandonments.
#[test]
fn a_hand_over_races_a_release_elsewhere_and_the_old_owners_exit() {
    model(|| {
        let sem = Arc::new(Semaphore::with_policy(2, AbandonPolicy::Reclaim));
        let (old, new) = (idle_task(), idle_task());
        let (old_id, new_id) = (old.owner(), new.owner());
        let mut pair = sem.clone().try_acquire_many_owned(2).unwrap();
        pair.hand_to(old_id).unwrap();
        let mut half = pair.split(1).unwrap();
        let releaser = thread::spawn(move || drop(pair));
        let exit = thread::spawn(move || drop(old));
        let handed = half.hand_to(new_id);
        releaser.join().unwrap();
        exit.join().unwrap();
        drop(new);
        std::mem::forget(half); // reclaimed by whoever answers for it, if anyone
        match handed {
            Ok(()) | Err(HandOverError::Abandoned) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(sem.available_permits(), 2, "a permit was lost or returned twice");
        // The handed half is always reclaimed (by one owner or the other); the released
        // half only if the old owner's exit claimed it before the release.
        let reclaims = sem.statistics().abandoned().count();
        assert!((1..=2).contains(&reclaims), "{reclaims} reclaims");
    });
}

/// A permit the old task answers for is handed to a new task while both tasks exit, on
/// two other threads. Whatever the order, someone answers for the permit throughout,
/// so it is reclaimed exactly once: a hold registered to both tasks for a moment would
/// be reclaimed by both exits (one permit returned twice; this caught the first
/// version of `hand_to`), and a hold sent back to an old owner that exited meanwhile
/// must still be reclaimed in that owner's name.
#[test]
fn a_hand_over_races_both_owners_exits() {
    model(|| {
        let sem = Arc::new(Semaphore::with_policy(1, AbandonPolicy::Reclaim));
        let (old, new) = (idle_task(), idle_task());
        let (old_id, new_id) = (old.owner(), new.owner());
        let mut permit = sem.clone().try_acquire_owned().unwrap();
        permit.hand_to(old_id).unwrap();
        let old_exit = thread::spawn(move || drop(old));
        let new_exit = thread::spawn(move || drop(new));
        let handed = permit.hand_to(new_id);
        old_exit.join().unwrap();
        new_exit.join().unwrap();
        // Someone answered for the permit all along and both exited: it was reclaimed,
        // exactly once, before the drop (which then releases nothing).
        assert_eq!(sem.statistics().abandoned().count(), 1, "{handed:?}");
        assert_eq!(sem.available_permits(), 1, "{handed:?}: a permit lost or returned twice");
        drop(permit);
        assert_eq!(sem.available_permits(), 1, "{handed:?}: the drop released it again");
        assert!(matches!(handed, Ok(()) | Err(HandOverError::Abandoned | HandOverError::OwnerGone(_))));
    });
}

/// [`a_hand_over_races_both_owners_exits`] with a limiter's token, whose hold lives in
/// the limiter's borrower set and is handed over under that set's lock. When the new
/// owner is gone and the old one exited meanwhile, the hand-over abandons the token in
/// the old owner's name from inside that lock: the limiter must not take the lock again
/// (it once did, through its exit hook: a deadlock, which loom reports). Reclaimed
/// exactly once, and no borrower is left once the token is dropped.
#[test]
fn a_tokens_hand_over_races_both_owners_exits() {
    model(|| {
        let limiter = CapacityLimiter::with_policy(1, AbandonPolicy::Reclaim);
        let (old, new) = (idle_task(), idle_task());
        let (old_id, new_id) = (old.owner(), new.owner());
        let mut token = limiter.try_acquire().unwrap().into_owned();
        token.hand_to(old_id).unwrap();
        let old_exit = thread::spawn(move || drop(old));
        let new_exit = thread::spawn(move || drop(new));
        let handed = token.hand_to(new_id);
        old_exit.join().unwrap();
        new_exit.join().unwrap();
        assert_eq!(limiter.statistics().abandoned().count(), 1, "{handed:?}");
        assert_eq!(limiter.available_tokens(), 1, "{handed:?}: a token lost or returned twice");
        drop(token);
        assert_eq!(limiter.available_tokens(), 1, "{handed:?}: the drop released it again");
        assert_eq!(limiter.statistics().borrowers(), [], "{handed:?}: a stale borrower");
        assert!(matches!(handed, Ok(()) | Err(HandOverError::Abandoned | HandOverError::OwnerGone(_))));
    });
}

/// The exit frees its record's body while another thread asks a permit registered to
/// that owner who answers for it, and then drops it (issue 15: an exited owner keeps
/// only its record's one-word head). The answer is read under the stripe lock the exit
/// detaches the body under: the owner before the exit, nobody after it, never a freed
/// body; and the permit is reclaimed exactly once.
#[test]
fn reading_a_holds_owner_races_the_exit_that_frees_its_record() {
    model(|| {
        let sem = Arc::new(Semaphore::with_policy(1, AbandonPolicy::Reclaim));
        let task = idle_task();
        let id = task.owner();
        let mut permit = sem.clone().try_acquire_owned().unwrap();
        permit.hand_to(id).unwrap();
        let exit = thread::spawn(move || drop(task));
        let seen = permit.owner();
        exit.join().unwrap();
        assert!(
            matches!(seen, Some(owner) if owner == id) || seen.is_none(),
            "{seen:?}: the body's answer, or the head's"
        );
        assert_eq!(permit.owner(), None, "nobody answers for a reclaimed permit");
        drop(permit);
        assert_eq!(sem.statistics().abandoned().count(), 1);
        assert_eq!(sem.available_permits(), 1, "reclaimed once, not released again");
    });
}
