//! The headline demo: a task leaks a held lock and exits. With tokio's Mutex the waiters
//! would hang forever; with ownsync they get an error naming the task that abandoned it.

use std::sync::Arc;

use ownsync::{AcquireError, Mutex, tracked};

#[tokio::main]
async fn main() {
    let config = Arc::new(Mutex::with_name(String::from("v1"), "config"));

    // A task takes the lock, forgets to give it back (a leaked guard), and finishes.
    let leaker = tracked({
        let config = config.clone();
        async move {
            let guard = config.lock().await.expect("free at first");
            std::mem::forget(guard);
        }
    });
    println!("{} takes the lock and leaks the guard", leaker.owner());
    tokio::spawn(leaker).await.unwrap();

    // Three waiters that tokio's Mutex would leave hanging forever.
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let config = config.clone();
            tokio::spawn(async move { (i, config.lock().await.map(|_| ())) })
        })
        .collect();
    for waiter in waiters {
        match waiter.await.unwrap() {
            (i, Err(AcquireError::Broken(err))) => println!("waiter {i}: {err}"),
            (i, other) => panic!("waiter {i}: expected a broken mutex, got {other:?}"),
        }
    }
    println!("nothing hung: is_broken() = {}", config.is_broken());
}
