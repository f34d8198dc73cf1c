//! The contended hand-off, alone: N tasks re-locking one mutex, for profiling.
//!
//! `benches/` measures this loop against every peer with criterion; this program runs
//! it once, with nothing else in the process, so that `perf` and `callgrind` see only
//! the hand-off. Each task yields once while holding its first lock, so the others queue
//! behind it; from then on every release hands the lock to the head waiter and every
//! re-lock queues again (on a current-thread runtime, a hand-off per lock) instead of a
//! task running its whole loop uncontended. `benches/handoff.sh` uses it to count the
//! instructions of one hand-off.
//!
//! ```text
//! cargo run --release -p ownsync-benches --example handoff --features tokio -- ownsync 8 400000
//! cargo run --release -p ownsync-benches --example handoff -- futures-intrusive 2 100000 current-thread
//! ```
//!
//! Arguments: the mutex (`ownsync`, `ownsync-tracked`: the same in tracked tasks,
//! `tokio` or `futures-intrusive`, fair), the number of tasks, the locks per task, and `current-thread` for a current-thread runtime instead
//! of 2 workers. Prints the time per lock.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `tasks` tasks on `runtime`, each taking the lock `locks` times through `lock`.
macro_rules! relock {
    ($runtime:expr, $tasks:expr, $locks:expr, $mutex:expr, |$m:ident| $lock:expr) => {
        relock!($runtime, $tasks, $locks, $mutex, |$m| $lock, |task| task)
    };
    ($runtime:expr, $tasks:expr, $locks:expr, $mutex:expr, |$m:ident| $lock:expr, |$task:ident| $wrap:expr) => {{
        let shared = Arc::new($mutex);
        let start = Instant::now();
        $runtime.block_on(async {
            let tasks: Vec<_> = (0..$tasks)
                .map(|_| {
                    let $m = shared.clone();
                    let $task = async move {
                        for round in 0..$locks {
                            let mut guard = $lock;
                            *guard = black_box(*guard + 1);
                            if round == 0 {
                                // Held across the yield: the other tasks queue behind it.
                                tokio::task::yield_now().await;
                            }
                            drop(guard);
                        }
                    };
                    tokio::spawn($wrap)
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        start.elapsed()
    }};
}

const USAGE: &str = "usage: handoff <ownsync|ownsync-tracked|tokio|futures-intrusive> <tasks> <locks per task> [current-thread]";

/// Bad arguments: the usage line, and exit status 2.
fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mutex, tasks, locks, rest @ ..] = args.as_slice() else { usage() };
    let (Ok(tasks), Ok(locks)) = (tasks.parse::<u64>(), locks.parse::<u64>()) else { usage() };
    if tasks == 0 || locks == 0 {
        usage();
    }
    let runtime = match rest {
        [] => tokio::runtime::Builder::new_multi_thread().worker_threads(2).build(),
        [flavor] if flavor == "current-thread" => tokio::runtime::Builder::new_current_thread().build(),
        _ => usage(),
    }
    .expect("a tokio runtime");
    let elapsed: Duration = match mutex.as_str() {
        "ownsync" => relock!(runtime, tasks, locks, ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap()),
        "ownsync-tracked" => {
            relock!(runtime, tasks, locks, ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap(), |task| {
                ownsync::tracked(task)
            })
        }
        "tokio" => relock!(runtime, tasks, locks, tokio::sync::Mutex::new(0u64), |m| m.lock().await),
        "futures-intrusive" => {
            let fair = futures_intrusive::sync::Mutex::new(0u64, true);
            relock!(runtime, tasks, locks, fair, |m| m.lock().await)
        }
        _ => usage(),
    };
    println!("{mutex}: {:.1} ns per lock", elapsed.as_nanos() as f64 / (tasks as f64 * locks as f64));
}
