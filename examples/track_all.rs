//! One line of set-up: `ownsync::tokio::track_all` makes every task of a runtime an owner,
//! so a plain `tokio::spawn` task that leaks a pool permit breaks the pool (every waiter
//! gets an error naming the task) instead of hanging the final drain.
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/tokio-unstable \
//!     cargo run --example track_all --features tokio
//! ```

#[cfg(all(feature = "tokio", tokio_unstable))]
fn main() {
    use std::sync::Arc;

    use ownsync::{AcquireError, Semaphore};

    // The one line: every task of this runtime is an owner.
    let runtime = ownsync::tokio::track_all(&mut tokio::runtime::Builder::new_multi_thread())
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = Arc::new(Semaphore::with_name(4, "db-pool"));
        let workers: Vec<_> = (0..4)
            .map(|job| {
                let pool = pool.clone();
                // A plain tokio::spawn: no ownsync in sight.
                tokio::spawn(async move {
                    // A task that comes after the leak finds the pool broken: nothing to do.
                    let Ok(permit) = pool.acquire().await else { return };
                    if job == 2 {
                        std::mem::forget(permit); // a bug: the permit never comes back
                        println!("{} leaks its permit and ends", ownsync::current_owner());
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        // Graceful shutdown: wait for every permit. With tokio's Semaphore this hangs.
        match pool.acquire_many(4).await {
            Err(AcquireError::Broken(err)) => println!("drain: {err}"),
            other => panic!("expected the pool to be broken, got {other:?}"),
        }
    });
}

#[cfg(not(all(feature = "tokio", tokio_unstable)))]
fn main() {
    eprintln!(
        "this example needs tokio's task hooks: RUSTFLAGS=\"--cfg tokio_unstable\" \
         CARGO_TARGET_DIR=target/tokio-unstable cargo run --example track_all --features tokio"
    );
    std::process::exit(2);
}
