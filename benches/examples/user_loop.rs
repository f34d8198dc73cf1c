//! What a user's own loop sees: every peer measured in one process, the way tokio users
//! write it, so that the figures predict theirs.
//!
//! One multi-thread runtime with 2 workers is built once and kept; each measurement
//! spawns its tasks on it (`tokio::spawn`, or `ownsync::tokio::spawn` for the tracked
//! row), lets them start together (a barrier), and each task runs a plain loop,
//! `let mut guard = m.lock().await; *guard += 1;`, with nothing between locks. Only its
//! first lock is held across a yield, so that every other task queues behind it and the
//! loop runs contended from the start: without it, whether 2 workers ever contend
//! depends on where the scheduler put the tasks (a task that never yields can run its
//! whole loop alone), and the figures swing between a hand-off per lock and none. Build
//! it with the `tokio` feature, as tokio users build ownsync (its acquires then spend
//! tokio's cooperative budget, as tokio's own do). Each round runs every peer once, in a
//! different order each round, and the table gives each figure's median over the rounds
//! with its spread (min-max), and each ratio as the median of the rounds' own ratios
//! (a round's peers share that moment's machine).
//!
//! ```text
//! cargo run --release -p ownsync-benches --features tokio --example user_loop -- 9
//! ```
//!
//! Arguments: rounds (default 9), and a scale in percent of the default loop lengths
//! (default 100: 20,000 locks per task when contended, 200,000 uncontended). Prints a
//! Markdown table; `benches/user_loop.sh` puts it into `benches/RESULTS.md`.

use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Contended loops: tasks x locks per task.
const CONTENDED_LOCKS: u64 = 20_000;
/// Uncontended loops: locks in one task.
const UNCONTENDED_LOCKS: u64 = 200_000;

/// Spawns `tasks` tasks on `runtime`, each running `body(task index)` once all of them
/// have started (a barrier: otherwise the first task spawned often runs its whole loop
/// before the second worker picks up the next, and a contended loop measures an
/// uncontended one), and waits for all; returns the time from the first task's start
/// (after the barrier) to the last one's end.
fn time_tasks<F>(runtime: &tokio::runtime::Runtime, tasks: u64, body: impl Fn(u64) -> F) -> Duration
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(tasks as usize));
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let (barrier, body) = (barrier.clone(), body(task));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let start = Instant::now();
                    body.await;
                    (start, Instant::now())
                })
            })
            .collect();
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for handle in handles {
            let (start, end) = handle.await.expect("a benchmark task panicked");
            first = Some(first.map_or(start, |first| first.min(start)));
            last = Some(last.map_or(end, |last| last.max(end)));
        }
        last.expect("at least one task") - first.expect("at least one task")
    })
}

/// `tasks` tasks re-locking one mutex `locks` times each, in a plain loop.
macro_rules! relock {
    ($runtime:expr, $tasks:expr, $locks:expr, $mutex:expr, |$m:ident| $lock:expr) => {{
        let shared = Arc::new($mutex);
        time_tasks($runtime, $tasks, |_| {
            let $m = shared.clone();
            async move {
                for round in 0..$locks {
                    let mut guard = $lock;
                    *guard = black_box(*guard + 1);
                    if round == 0 {
                        // The first lock held across a yield: every other task queues
                        // behind it, so the loop runs contended from the start whatever
                        // the scheduler did (with one task, it only yields once).
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
    }};
}

/// 7 of every 8 tasks read, the 8th writes, each `ops` times, on one RwLock.
macro_rules! read_heavy {
    ($runtime:expr, $tasks:expr, $ops:expr, $lock:expr, |$l:ident| $read:expr, $write:expr) => {{
        let shared = Arc::new($lock);
        time_tasks($runtime, $tasks, |task| {
            let $l = shared.clone();
            async move {
                for round in 0..$ops {
                    if task % 8 == 7 {
                        let mut guard = $write;
                        *guard = black_box(*guard + 1);
                        if round == 0 {
                            // As in `relock!`: the readers queue behind the first write.
                            tokio::task::yield_now().await;
                        }
                    } else {
                        black_box(*$read);
                    }
                }
            }
        })
    }};
}

/// One measurement: its group, its peer, and how to run it once (ns per operation).
struct Case {
    group: String,
    peer: &'static str,
    run: Box<dyn Fn(&tokio::runtime::Runtime) -> f64>,
}

fn per_op(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

fn cases(scale: u64) -> Vec<Case> {
    let contended = CONTENDED_LOCKS * scale / 100;
    let uncontended = UNCONTENDED_LOCKS * scale / 100;
    let mut cases = Vec::new();
    for tasks in [2u64, 8, 64] {
        let group = format!("contended, {tasks} tasks");
        let ops = tasks * contended;
        let n = contended;
        cases.push(Case {
            group: group.clone(),
            peer: "ownsync",
            run: Box::new(move |rt| {
                per_op(relock!(rt, tasks, n, ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap()), ops)
            }),
        });
        cases.push(Case {
            group: group.clone(),
            peer: "tokio",
            run: Box::new(move |rt| {
                per_op(relock!(rt, tasks, n, tokio::sync::Mutex::new(0u64), |m| m.lock().await), ops)
            }),
        });
        cases.push(Case {
            group: group.clone(),
            peer: "futures-intrusive",
            run: Box::new(move |rt| {
                let fair = futures_intrusive::sync::Mutex::new(0u64, true);
                per_op(relock!(rt, tasks, n, fair, |m| m.lock().await), ops)
            }),
        });
        cases.push(Case {
            group: group.clone(),
            peer: "maitake-sync",
            run: Box::new(move |rt| {
                per_op(relock!(rt, tasks, n, maitake_sync::Mutex::new(0u64), |m| m.lock().await), ops)
            }),
        });
        cases.push(Case {
            group,
            peer: "async-lock",
            run: Box::new(move |rt| {
                per_op(relock!(rt, tasks, n, async_lock::Mutex::new(0u64), |m| m.lock().await), ops)
            }),
        });
    }
    let n = uncontended;
    let group = "uncontended".to_string();
    cases.push(Case {
        group: group.clone(),
        peer: "ownsync",
        run: Box::new(move |rt| {
            per_op(relock!(rt, 1, n, ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap()), n)
        }),
    });
    cases.push(Case {
        group: group.clone(),
        peer: "tokio",
        run: Box::new(move |rt| {
            per_op(relock!(rt, 1, n, tokio::sync::Mutex::new(0u64), |m| m.lock().await), n)
        }),
    });
    cases.push(Case {
        group: group.clone(),
        peer: "futures-intrusive",
        run: Box::new(move |rt| {
            let fair = futures_intrusive::sync::Mutex::new(0u64, true);
            per_op(relock!(rt, 1, n, fair, |m| m.lock().await), n)
        }),
    });
    cases.push(Case {
        group: group.clone(),
        peer: "maitake-sync",
        run: Box::new(move |rt| {
            per_op(relock!(rt, 1, n, maitake_sync::Mutex::new(0u64), |m| m.lock().await), n)
        }),
    });
    cases.push(Case {
        group,
        peer: "async-lock",
        run: Box::new(move |rt| {
            per_op(relock!(rt, 1, n, async_lock::Mutex::new(0u64), |m| m.lock().await), n)
        }),
    });
    cases.push(Case {
        group: "uncontended".to_string(),
        peer: "ownsync tracked",
        run: Box::new(move |rt| per_op(tracked_loop(rt, n), n)),
    });
    let (tasks, n) = (8u64, contended);
    let ops = tasks * n;
    let group = "RwLock read-heavy, 8 tasks".to_string();
    cases.push(Case {
        group: group.clone(),
        peer: "ownsync",
        run: Box::new(move |rt| {
            let lock = ownsync::RwLock::new(0u64);
            per_op(
                read_heavy!(rt, tasks, n, lock, |l| l.read().await.unwrap(), l.write().await.unwrap()),
                ops,
            )
        }),
    });
    cases.push(Case {
        group: group.clone(),
        peer: "tokio",
        run: Box::new(move |rt| {
            let lock = tokio::sync::RwLock::new(0u64);
            per_op(read_heavy!(rt, tasks, n, lock, |l| l.read().await, l.write().await), ops)
        }),
    });
    cases.push(Case {
        group: group.clone(),
        peer: "async-lock",
        run: Box::new(move |rt| {
            let lock = async_lock::RwLock::new(0u64);
            per_op(read_heavy!(rt, tasks, n, lock, |l| l.read().await, l.write().await), ops)
        }),
    });
    cases.push(Case {
        group,
        peer: "maitake-sync",
        run: Box::new(move |rt| {
            let lock = maitake_sync::RwLock::new(0u64);
            per_op(read_heavy!(rt, tasks, n, lock, |l| l.read().await, l.write().await), ops)
        }),
    });
    cases
}

/// The same uncontended loop in a tracked task (`ownsync::tokio::spawn`): every hold is
/// registered to the task, whose exit would break the mutex if it still held it.
#[cfg(feature = "tokio")]
fn tracked_loop(runtime: &tokio::runtime::Runtime, locks: u64) -> Duration {
    let mutex = Arc::new(ownsync::Mutex::new(0u64));
    runtime.block_on(async move {
        let start = Instant::now();
        ownsync::tokio::spawn(async move {
            for _ in 0..locks {
                let mut guard = mutex.lock().await.unwrap();
                *guard = black_box(*guard + 1);
            }
        })
        .await
        .expect("the tracked task panicked");
        start.elapsed()
    })
}

/// Without the `tokio` feature: a task tracked with `ownsync::tracked`, spawned with tokio.
#[cfg(not(feature = "tokio"))]
fn tracked_loop(runtime: &tokio::runtime::Runtime, locks: u64) -> Duration {
    let mutex = Arc::new(ownsync::Mutex::new(0u64));
    runtime.block_on(async move {
        let start = Instant::now();
        tokio::spawn(ownsync::tracked(async move {
            for _ in 0..locks {
                let mut guard = mutex.lock().await.unwrap();
                *guard = black_box(*guard + 1);
            }
        }))
        .await
        .expect("the tracked task panicked");
        start.elapsed()
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    (min, max)
}

/// A target: ownsync's figure in `group` against `peer`'s (or ownsync's own `peer` row),
/// at most `limit` times it.
struct Target {
    what: &'static str,
    group: &'static str,
    ours: &'static str,
    peer: &'static str,
    limit: f64,
}

const TARGETS: &[Target] = &[
    Target {
        what: "contended 2 tasks vs futures-intrusive (fair)",
        group: "contended, 2 tasks",
        ours: "ownsync",
        peer: "futures-intrusive",
        limit: 1.1,
    },
    Target {
        what: "contended 8 tasks vs futures-intrusive (fair)",
        group: "contended, 8 tasks",
        ours: "ownsync",
        peer: "futures-intrusive",
        limit: 1.1,
    },
    Target {
        what: "contended 64 tasks vs futures-intrusive (fair)",
        group: "contended, 64 tasks",
        ours: "ownsync",
        peer: "futures-intrusive",
        limit: 1.1,
    },
    Target {
        what: "contended 2 tasks vs maitake-sync",
        group: "contended, 2 tasks",
        ours: "ownsync",
        peer: "maitake-sync",
        limit: 1.0,
    },
    Target {
        what: "contended 8 tasks vs maitake-sync",
        group: "contended, 8 tasks",
        ours: "ownsync",
        peer: "maitake-sync",
        limit: 1.0,
    },
    Target {
        what: "contended 64 tasks vs maitake-sync",
        group: "contended, 64 tasks",
        ours: "ownsync",
        peer: "maitake-sync",
        limit: 1.0,
    },
    Target {
        what: "contended 2 tasks vs tokio",
        group: "contended, 2 tasks",
        ours: "ownsync",
        peer: "tokio",
        limit: 0.9,
    },
    Target {
        what: "contended 8 tasks vs tokio",
        group: "contended, 8 tasks",
        ours: "ownsync",
        peer: "tokio",
        limit: 0.9,
    },
    Target {
        what: "contended 64 tasks vs tokio",
        group: "contended, 64 tasks",
        ours: "ownsync",
        peer: "tokio",
        limit: 0.9,
    },
    Target {
        what: "uncontended vs futures-intrusive",
        group: "uncontended",
        ours: "ownsync",
        peer: "futures-intrusive",
        limit: 1.0,
    },
    Target {
        what: "uncontended, tracked vs anonymous",
        group: "uncontended",
        ours: "ownsync tracked",
        peer: "ownsync",
        limit: 1.15,
    },
    Target {
        what: "RwLock read-heavy vs async-lock",
        group: "RwLock read-heavy, 8 tasks",
        ours: "ownsync",
        peer: "async-lock",
        limit: 1.0,
    },
    Target {
        what: "RwLock read-heavy vs tokio",
        group: "RwLock read-heavy, 8 tasks",
        ours: "ownsync",
        peer: "tokio",
        limit: 1.0,
    },
];

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(9, |n| n.parse().expect("rounds: a number"));
    let scale: u64 = args.next().map_or(100, |n| n.parse().expect("scale: a percentage"));
    assert!(rounds > 0 && scale > 0, "rounds and scale must be positive");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("a tokio runtime");
    let cases = cases(scale);
    // Warm the runtime's workers and every peer's code once, unmeasured.
    for case in &cases {
        (case.run)(&runtime);
    }
    let mut figures: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        // A different order each round: no peer always runs first or after another.
        let start = round * 7 % cases.len();
        for index in (0..cases.len()).map(|i| (start + i) % cases.len()) {
            let case = &cases[index];
            let ns = (case.run)(&runtime);
            figures.entry((case.group.clone(), case.peer)).or_default().push(ns);
        }
    }
    println!("| group | peer | ns per op, median | spread (min-max) |");
    println!("|---|---|---|---|");
    let mut groups: Vec<&str> = Vec::new();
    for case in &cases {
        if !groups.contains(&case.group.as_str()) {
            groups.push(&case.group);
        }
    }
    for group in &groups {
        for case in cases.iter().filter(|case| case.group == *group) {
            let values = &figures[&(case.group.clone(), case.peer)];
            let (min, max) = spread(values);
            let mid = median(&mut values.clone());
            println!("| {group} | {} | {mid:.1} | {min:.1}-{max:.1} |", case.peer);
        }
    }
    println!();
    println!("| target | ratio (median of rounds) | rounds' spread | limit | met |");
    println!("|---|---|---|---|---|");
    for target in TARGETS {
        let ours = &figures[&(target.group.to_string(), target.ours)];
        let peer = &figures[&(target.group.to_string(), target.peer)];
        let mut ratios: Vec<f64> = ours.iter().zip(peer).map(|(a, b)| a / b).collect();
        let (min, max) = spread(&ratios);
        let ratio = median(&mut ratios);
        let met = if ratio <= target.limit {
            "yes".to_string()
        } else {
            format!("**no** (by {:.0}%)", (ratio / target.limit - 1.0) * 100.0)
        };
        println!("| {} | {ratio:.2} | {min:.2}-{max:.2} | {} | {met} |", target.what, target.limit);
    }
}
