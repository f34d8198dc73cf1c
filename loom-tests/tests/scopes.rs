//! Loom model of a nested scope's forward racing a release elsewhere (issue 29,
//! defects 6 and 10). Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release --test scopes`
#![cfg(loom)]

use std::future::Future;
use std::task::{Context, Waker};

use loom::thread;
use loom_tests::model;
use ownsync::Mutex;

/// A nested scope sends its (borrowed) guard to another thread, which drops it while the scope
/// completes and forwards its holds (and the recorded holder) to the enclosing task:
/// the forward moves the holder only if the scope still holds the mutex, so once the
/// guard is gone nobody is recorded (no false `WouldDeadlock` for the enclosing task),
/// and the enclosing task's exit abandons nothing.
#[test]
fn a_scopes_forward_races_a_release_elsewhere() {
    model(|| {
        // Leaked, so that its borrowed guard may go to another thread.
        let mutex: &'static Mutex<i32> = Box::leak(Box::new(Mutex::new(0).strict()));
        let (tx, rx) = loom::sync::mpsc::channel();
        // The enclosing task stays alive (pending) after the scope completed, so that it
        // does not exit with a hold the other thread has not released yet.
        let mut outer = Box::pin(ownsync::tracked(async move {
            ownsync::tracked(async move { tx.send(mutex.lock().await.unwrap()).unwrap() }).await;
            std::future::pending::<()>().await
        }));
        let dropper = thread::spawn(move || drop(rx.recv().unwrap()));
        assert!(outer.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        dropper.join().unwrap();
        assert!(!mutex.is_broken(), "broken: {:?}", mutex.statistics().broken());
        assert_eq!(mutex.owner(), None, "the guard is gone: nobody is recorded as its holder");
        // The enclosing task's exit finds the forwarded scope spent: nothing abandoned.
        drop(outer);
        assert!(!mutex.is_broken(), "a released hold was abandoned");
        assert!(mutex.try_lock().is_ok());
    });
}
