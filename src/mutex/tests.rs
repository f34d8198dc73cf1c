//! Unit tests that reach every `unsafe` block of this file, so Miri checks them.

use super::*;
use crate::tracked::tracked;
use std::future::Future;
use std::task::{Context, Waker};

#[test]
fn guards_map_and_debug_are_sound() {
    let mutex = Mutex::new((1u8, String::from("a")));
    {
        let mut guard = mutex.try_lock().unwrap();
        guard.1.push('b');
        let mut mapped = MutexGuard::map(guard, |pair| &mut pair.1);
        mapped.push('c');
        let mut text = MappedMutexGuard::map(mapped, |text| text);
        text.insert(0, 'z');
        assert_eq!(format!("{mutex:?}"), "Mutex { data: <locked>, holder: None }");
    }
    assert_eq!(format!("{mutex:?}"), "Mutex { data: (1, \"zabc\"), holder: None }");
    let guard = mutex.try_lock().unwrap();
    let guard = MutexGuard::try_map(guard, |_| None::<&mut u8>).unwrap_err();
    let mapped = MutexGuard::try_map(guard, |pair| Some(&mut pair.0)).unwrap();
    assert_eq!(*mapped, 1);
    drop(mapped);
    let shared = Arc::new(mutex);
    let mut owned = shared.clone().try_lock_owned().unwrap();
    owned.0 = 2;
    let owned = OwnedMutexGuard::map(owned, |pair| &mut pair.1);
    let mut owned = OwnedMappedMutexGuard::map(owned, |text| text);
    owned.push('!');
    drop(owned);
    let refused = OwnedMutexGuard::try_map(shared.clone().try_lock_owned().unwrap(), |_| None::<&mut u8>);
    drop(refused.unwrap_err());
    assert_eq!(Arc::try_unwrap(shared).ok().unwrap().into_inner().0, 2);
}

/// An exclusive hold's registration lives in the mutex's core while its guard does
/// (`InCore`, the one `unsafe` of the exclusive guards; under Miri too): registered
/// by a thread, carried through `map` and a hand-over to another thread, given back
/// by the guard's drop there; the next registration is its holder's own, and a
/// thread that leaves holding the lock is named by the break.
#[test]
fn an_exclusive_holds_registration_lives_in_its_core() {
    let mutex = Arc::new(Mutex::new((0u8, 0u8)));
    let guard = mutex.clone().blocking_lock_owned().unwrap(); // registered to this thread
    // An owned guard may move: its acquirer is not recorded as the holder.
    assert_eq!(mutex.owner(), None);
    let mut mapped = OwnedMutexGuard::map(guard, |pair| &mut pair.1);
    let adopter = std::thread::spawn(move || {
        OwnedMappedMutexGuard::adopt(&mut mapped).unwrap(); // answers for it now
        *mapped += 1;
        current_owner()
    });
    let adopter = adopter.join().unwrap();
    assert!(!mutex.is_broken(), "released by its guard on {adopter}");
    let again = mutex.blocking_lock().unwrap();
    assert_eq!((again.1, mutex.owner()), (1, Some(current_owner())));
    drop(again);
    let leaver = std::thread::spawn({
        let mutex = mutex.clone();
        move || {
            std::mem::forget(mutex.blocking_lock().unwrap());
            current_owner()
        }
    });
    let leaver = leaver.join().unwrap();
    assert_eq!(mutex.statistics().broken().map(|e| e.owner()), Some(leaver));
}

#[test]
fn tracked_owner_registers_and_exit_breaks() {
    let mutex = Arc::new(Mutex::new(0));
    let mut task = Box::pin(tracked({
        let mutex = mutex.clone();
        async move {
            std::mem::forget(mutex.lock().await.unwrap());
            std::future::pending::<()>().await;
        }
    }));
    let owner = task.owner();
    assert!(task.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    assert_eq!(mutex.owner(), Some(owner));
    drop(task); // cancelled while the leaked guard is registered
    assert!(mutex.is_broken());
    assert_eq!(mutex.statistics().broken().map(|e| e.owner()), Some(owner));
}
