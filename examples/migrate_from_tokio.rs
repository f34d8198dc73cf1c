//! The same code on `tokio::sync::Mutex` and on `ownsync::Mutex`: the migration is the
//! import, a `?` (or `.unwrap()`) after `lock().await`, and `tracked` (or
//! `ownsync::tokio::spawn` with the `tokio` feature) where tasks are spawned.
//!
//! The program runs a worker that takes the lock and ends without releasing it (here a
//! `mem::forget`; in real code a guard stored in a struct that outlives the task, an
//! `Rc` cycle, or a manual acquire whose release was skipped). With tokio the next
//! `lock()` would wait forever, so this demo gives it a deadline; with ownsync it returns
//! an error at once.

use std::sync::Arc;
use std::time::Duration;

mod with_tokio {
    use super::*;
    use tokio::sync::Mutex;

    pub async fn run() -> String {
        let counter = Arc::new(Mutex::new(0u32));
        let worker = counter.clone();
        tokio::spawn(async move {
            let mut guard = worker.lock().await;
            *guard += 1;
            std::mem::forget(guard);
        })
        .await
        .unwrap();
        match tokio::time::timeout(Duration::from_secs(1), counter.lock()).await {
            Ok(value) => format!("got {}", *value),
            Err(_) => "still waiting after 1 s: it would hang forever".to_owned(),
        }
    }
}

mod with_ownsync {
    use super::*;
    use ownsync::Mutex; // 1. the import

    pub async fn run() -> String {
        let counter = Arc::new(Mutex::new(0u32));
        let worker = counter.clone();
        tokio::spawn(ownsync::tracked(async move {
            // 2. tracked: the task owns what it locks
            let mut guard = worker.lock().await.unwrap(); // 3. lock() returns a Result
            *guard += 1;
            std::mem::forget(guard);
        }))
        .await
        .unwrap();
        match counter.lock().await {
            Ok(value) => format!("got {}", *value),
            Err(err) => format!("error at once: {err}"),
        }
    }
}

#[tokio::main]
async fn main() {
    println!("tokio::sync::Mutex: {}", with_tokio::run().await);
    println!("ownsync::Mutex:     {}", with_ownsync::run().await);
}
