//! The uncontended acquire and release inside a tokio task, alone, for counting
//! instructions: one task on a current-thread runtime takes and gives back a lock or a
//! permit N times with nobody else around, tokio's cooperative budget (a yield each time
//! it is spent) included. `benches/uncontended-tokio.sh` runs it under callgrind at N and
//! 2N acquires, so that start-up and shutdown cancel out.
//!
//! ```text
//! cargo run --release -p ownsync-benches --example uncontended_tokio -- mutex-anonymous 1000000
//! cargo run --release -p ownsync-benches --example uncontended_tokio --features tokio -- mutex-tracked 200000
//! ```
//!
//! Arguments: the case and the number of acquires. Cases: `mutex-anonymous`,
//! `mutex-tracked`, `semaphore-anonymous`, `semaphore-tracked` (ownsync; anonymous: in a
//! plain `tokio::spawn`ed task, tracked: in an `ownsync::tracked` task, so each hold is
//! registered to its owner), and the peers `futures-intrusive`, `maitake` and `tokio`
//! (their mutexes). Prints the time per acquire (indicative only).

use std::hint::black_box;
use std::time::Instant;

const USAGE: &str = "usage: uncontended_tokio <mutex-anonymous|mutex-tracked|semaphore-anonymous|\
                     semaphore-tracked|futures-intrusive|maitake|tokio> <acquires>";

/// Bad arguments: the usage line, and exit status 2.
fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// The loop of `$n` acquires with `$acquire` (an expression giving a guard), dropped
/// at once.
macro_rules! relock {
    ($n:expr, $acquire:expr) => {
        async move {
            for _ in 0..$n {
                drop(black_box($acquire));
            }
        }
    };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [case, acquires] = args.as_slice() else { usage() };
    let Ok(n) = acquires.parse::<u64>() else { usage() };
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    // Leaked: a spawned task needs `'static` references.
    let mutex: &'static _ = Box::leak(Box::new(ownsync::Mutex::new(0u64)));
    let semaphore: &'static _ = Box::leak(Box::new(ownsync::Semaphore::new(4)));
    let start = Instant::now();
    runtime.block_on(async {
        // A spawned task, as a server's tasks are (block_on's future is not a task: with
        // the `tokio` feature it has no task id).
        let task = match case.as_str() {
            "mutex-anonymous" => tokio::spawn(relock!(n, mutex.lock().await.unwrap())),
            "mutex-tracked" => tokio::spawn(ownsync::tracked(relock!(n, mutex.lock().await.unwrap()))),
            "semaphore-anonymous" => tokio::spawn(relock!(n, semaphore.acquire().await.unwrap())),
            "semaphore-tracked" => {
                tokio::spawn(ownsync::tracked(relock!(n, semaphore.acquire().await.unwrap())))
            }
            "futures-intrusive" => {
                let m: &'static _ = Box::leak(Box::new(futures_intrusive::sync::Mutex::new(0u64, true)));
                tokio::spawn(relock!(n, m.lock().await))
            }
            "maitake" => {
                let m: &'static _ = Box::leak(Box::new(maitake_sync::Mutex::new(0u64)));
                tokio::spawn(relock!(n, m.lock().await))
            }
            "tokio" => {
                let m: &'static _ = Box::leak(Box::new(tokio::sync::Mutex::new(0u64)));
                tokio::spawn(relock!(n, m.lock().await))
            }
            _ => usage(),
        };
        task.await.unwrap();
    });
    let elapsed = start.elapsed();
    println!("{case}: {:.1} ns per acquire + release", elapsed.as_nanos() as f64 / n as f64);
}
