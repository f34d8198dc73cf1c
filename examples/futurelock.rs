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
//! The fix: never keep a lock future alive across a `select!` you will not poll to
//! completion; finish it (or drop it) before waiting for the same lock again.
//!
//! The second half is the classic deadlock between two tasks: one locks `accounts` then
//! `audit`, the other `audit` then `accounts`. Each waits for a hold of the other, so
//! the process-wide snapshot (feature `diagnostics`) lists the cycle as a possible
//! deadlock, with every acquire site; and the long-wait events name both waits.
//!
//! Run with `cargo run --example futurelock --features tracing,diagnostics` (without
//! `tracing` the events are not printed, without `diagnostics` the process-wide
//! snapshot is not; each mutex's statistics are).

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
    for hold in stats.holds() {
        println!("  held by {:?}, taken at {}", hold.owner(), hold.site().unwrap());
    }
    for wait in stats.waits() {
        println!(
            "  waited for by {:?} at {} (self-wait: {})",
            wait.owner(),
            wait.site().unwrap(),
            wait.is_self_wait()
        );
    }
    #[cfg(feature = "diagnostics")]
    println!("\n{}", ownsync::diagnostics::snapshot());
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

    lock_order_inversion().await;
}

/// Two tasks take two mutexes in opposite orders: a wait-for cycle.
async fn lock_order_inversion() {
    println!("\n--- a lock-order inversion between two tasks ---");
    ownsync::diagnostics::set_long_wait_warning(Some(Duration::from_millis(100)));
    let accounts = Arc::new(Mutex::with_name(0_u64, "accounts"));
    let audit = Arc::new(Mutex::with_name(Vec::<String>::new(), "audit"));
    let both_hold = Arc::new(tokio::sync::Barrier::new(2));
    let transfer = tracked({
        let (accounts, audit, both_hold) = (accounts.clone(), audit.clone(), both_hold.clone());
        async move {
            let mut balance = accounts.lock().await.unwrap();
            both_hold.wait().await;
            audit.lock().await.unwrap().push(format!("transfer, balance {}", *balance));
            *balance += 1;
        }
    });
    let report = tracked({
        let (accounts, audit, both_hold) = (accounts.clone(), audit.clone(), both_hold.clone());
        async move {
            let mut log = audit.lock().await.unwrap();
            both_hold.wait().await;
            let balance = *accounts.lock().await.unwrap();
            log.push(format!("report, balance {balance}"));
        }
    });
    let owners = [transfer.owner(), report.owner()];
    let tasks = [tokio::spawn(transfer), tokio::spawn(report)];

    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(tasks.iter().all(|task| !task.is_finished()), "deadlocked");
    // Each mutex's own snapshot shows half of the story, and the lazy check (this is the
    // slow path) reports the waits and holds that lasted past 100 ms.
    for (name, stats) in [("accounts", accounts.statistics()), ("audit", audit.statistics())] {
        let (hold, wait) = (&stats.holds()[0], &stats.waits()[0]);
        println!(
            "{name}: held by {:?} (taken at {}), waited for by {:?} at {}",
            hold.owner(),
            hold.site().unwrap(),
            wait.owner(),
            wait.site().unwrap()
        );
    }
    #[cfg(feature = "diagnostics")]
    {
        let snapshot = ownsync::diagnostics::snapshot();
        println!("\n{snapshot}");
        let cycle =
            snapshot.cycles().iter().find(|cycle| cycle.owners().all(|owner| owners.contains(&owner)));
        assert!(cycle.is_some_and(|cycle| cycle.steps().len() == 2), "the cycle is found");
    }
    #[cfg(not(feature = "diagnostics"))]
    let _ = owners;

    // The fix: take the locks in one order everywhere (or both at once). Here the tasks
    // are cancelled, which releases both locks.
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    assert!(accounts.try_lock().is_ok() && audit.try_lock().is_ok());
    println!("after cancelling both tasks, both locks are free");
}
