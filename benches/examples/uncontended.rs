//! The uncontended acquire and release, alone, for counting instructions: one tracked
//! task (or a plain thread) takes and gives back a permit, a token or a lock N times with
//! nobody else around. `benches/uncontended.sh` runs it under callgrind at N and 2N
//! acquires, so that start-up and shutdown cancel out.
//!
//! ```text
//! cargo run --release -p ownsync-benches --example uncontended -- semaphore 100000
//! cargo run --release -p ownsync-benches --example uncontended -- limiter 100000 thread
//! ```
//!
//! Arguments: the primitive (`semaphore`, `limiter` or `mutex`), the number of acquires,
//! and `thread` to acquire as a plain thread (blocking calls) instead of a tracked task.

use std::hint::black_box;
use std::task::{Context, Poll, Waker};

const USAGE: &str = "usage: uncontended <semaphore|limiter|mutex> <acquires> [thread]";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// Polls `future` once with a no-op waker: everything here is uncontended, so it is ready.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an uncontended acquire waited"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let primitive = args.next().unwrap_or_else(|| usage());
    let acquires: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage());
    let thread = match args.next().as_deref() {
        None => false,
        Some("thread") => true,
        Some(_) => usage(),
    };
    let semaphore = ownsync::Semaphore::new(4);
    let limiter = ownsync::CapacityLimiter::new(4);
    let mutex = ownsync::Mutex::new(0u64);
    let run = || match primitive.as_str() {
        "semaphore" if thread => {
            (0..acquires).for_each(|_| drop(black_box(semaphore.blocking_acquire().unwrap())))
        }
        "semaphore" => (0..acquires).for_each(|_| drop(black_box(ready(semaphore.acquire()).unwrap()))),
        "limiter" if thread => {
            (0..acquires).for_each(|_| drop(black_box(limiter.blocking_acquire().unwrap())))
        }
        "limiter" => (0..acquires).for_each(|_| drop(black_box(ready(limiter.acquire()).unwrap()))),
        "mutex" if thread => (0..acquires).for_each(|_| *mutex.blocking_lock().unwrap() += 1),
        "mutex" => (0..acquires).for_each(|_| *ready(mutex.lock()).unwrap() += 1),
        _ => usage(),
    };
    if thread {
        run();
    } else {
        ready(ownsync::tracked(async { run() }));
    }
    black_box(&mutex);
}
