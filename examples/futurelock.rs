//! A futurelock (Oxide's RFD 609; tokio #6450, #7892), and what ownsync shows of it.
//!
//! Inside one task, `select!` polls `&mut first`, a future waiting for a lock, together
//! with a timer. The timer wins, and the branch body waits for the same lock. Meanwhile
//! the lock is handed (FIFO) to `first`, which the task no longer polls: the body waits
//! behind a hold its own task will never release. With `tokio::sync::Mutex` nothing says
//! so; the task just hangs. ownsync records the grant's owner at once, so the mutex's
//! statistics and `Debug` show a *self-wait* (the holder waiting for itself), and with
//! the `tracing` feature a `WARN` event names it once it lasts.
//!
//! Run with `cargo run --example futurelock --features tracing` (without the feature the
//! event is not printed; the statistics are). The fix, in the last lines: never keep a
//! lock future alive across a `select!` you will not poll to completion; finish it (or
//! drop it) before waiting for the same lock again.

use std::sync::Arc;
use std::time::Duration;

use ownsync::{Mutex, tracked};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    #[cfg(feature = "tracing")]
    tracing_subscriber::fmt().with_target(true).without_time().init();
    ownsync::diagnostics::set_self_wait_warning(Some(Duration::from_millis(100)));

    let lock = Arc::new(Mutex::with_name((), "cache"));
    // Someone else holds the lock for a moment, so that the task's first lock() queues.
    let outside = lock.clone().lock_owned().await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(outside);
    });

    let task = tracked({
        let lock = lock.clone();
        async move {
            let first = lock.lock();
            tokio::pin!(first);
            tokio::select! {
                _ = &mut first => println!("got the lock at once"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    // `first` is still queued, and stays alive but unpolled while the
                    // body waits for the same lock: the futurelock.
                    let _again = lock.lock().await;
                    println!("never printed");
                }
            }
        }
    });
    let task_id = task.owner();
    let task = tokio::spawn(task);

    // Watch it from outside: the task does not finish.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = lock.statistics();
    println!("after 50 ms: {lock:?}");
    println!(
        "holder: {:?} (the task is {task_id}), self-waits: {}, waiters: {}",
        stats.holder(),
        stats.self_waits(),
        stats.waiters()
    );
    assert_eq!(stats.holder(), Some(task_id), "the grant went to the task's first future");
    assert_eq!(stats.self_waits(), 1, "its other wait is a self-wait");
    // The lazy check runs on the mutex's slow path: a snapshot past the threshold fires
    // the tracing event (once).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = lock.statistics();
    assert!(!task.is_finished(), "still stuck");

    // Cancelling the task releases everything it holds (nothing was leaked).
    task.abort();
    let _ = task.await;
    assert!(lock.try_lock().is_ok() && !lock.is_broken());
    println!("after cancelling the task: {lock:?}");

    // The fix: finish (or drop) the first lock future before waiting for the lock again.
    let fixed = tracked({
        let lock = lock.clone();
        async move {
            let first = lock.lock();
            tokio::pin!(first);
            tokio::select! {
                _ = &mut first => {}
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    drop(first.await); // complete it: take the lock and give it back
                    let _again = lock.lock().await.unwrap();
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), fixed).await.expect("the fixed version finishes");
    println!("the fixed version finished");
}
