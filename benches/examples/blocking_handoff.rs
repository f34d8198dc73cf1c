//! The contended blocking hand-off, alone: N threads re-locking one mutex with
//! `blocking_lock`, for timing and profiling.
//!
//! `benches/` measures two threads with criterion; this program runs any number of
//! threads once, with nothing else in the process, so that a strict mutex's hand-off
//! between threads (a grant to a waiter that must run before anyone else may have the
//! lock) can be timed with more threads than CPUs, and seen by `perf`. The threads meet
//! at a barrier first, as the bench's do.
//!
//! ```text
//! cargo run --release -p ownsync-benches --example blocking_handoff -- ownsync 2 500000
//! cargo run --release -p ownsync-benches --example blocking_handoff -- ownsync 8 125000
//! ```
//!
//! Arguments: the mutex (`ownsync`, strict FIFO; `ownsync-fair`, eventually fair;
//! `tokio`; `parking_lot`; `std`), the number of threads and the locks per thread.
//! Prints the time per lock.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Runs `threads` threads, each taking the lock `locks` times through `lock`.
macro_rules! relock {
    ($threads:expr, $locks:expr, $mutex:expr, |$m:ident| $lock:expr) => {{
        let shared = Arc::new($mutex);
        let barrier = Barrier::new($threads);
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..$threads {
                let ($m, barrier) = (shared.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..$locks {
                        let mut guard = $lock;
                        *guard = black_box(*guard + 1);
                    }
                });
            }
        });
        start.elapsed()
    }};
}

const USAGE: &str =
    "usage: blocking_handoff <ownsync|ownsync-fair|tokio|parking_lot|std> <threads> <locks per thread>";

/// Bad arguments: the usage line, and exit status 2.
fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mutex, threads, locks] = args.as_slice() else { usage() };
    let (Ok(threads), Ok(locks)) = (threads.parse::<usize>(), locks.parse::<u64>()) else { usage() };
    if threads == 0 || locks == 0 {
        usage();
    }
    let elapsed: Duration = match mutex.as_str() {
        "ownsync" => relock!(threads, locks, ownsync::Mutex::new(0u64), |m| m.blocking_lock().unwrap()),
        "ownsync-fair" => {
            relock!(threads, locks, ownsync::Mutex::new(0u64).eventually_fair(), |m| m
                .blocking_lock()
                .unwrap())
        }
        "tokio" => relock!(threads, locks, tokio::sync::Mutex::new(0u64), |m| m.blocking_lock()),
        "parking_lot" => relock!(threads, locks, parking_lot::Mutex::new(0u64), |m| m.lock()),
        "std" => relock!(threads, locks, std::sync::Mutex::new(0u64), |m| m.lock().unwrap()),
        _ => usage(),
    };
    println!("{mutex}: {:.1} ns per lock", elapsed.as_nanos() as f64 / (threads as f64 * locks as f64));
}
