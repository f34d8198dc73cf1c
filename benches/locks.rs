//! ownsync against tokio::sync, async-lock, futures-intrusive (fair mode), maitake-sync,
//! parking_lot and std, in one run.
//!
//! Uncontended cases poll each future once with a no-op waker (no executor in the
//! measurement); contended cases run 2, 8 or 64 tasks that re-lock at once (nothing
//! between locks) on tokio's multi-thread runtime with 2 workers and on its
//! current-thread runtime, or 2 plain threads for `blocking_lock`. `cargo bench -p ownsync-benches --bench locks`; quick: `cargo bench -p ownsync-benches --bench locks -- --quick`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Polls `future` once; it must complete (everything here is uncontended).
fn run_ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an uncontended benchmark future must not wait"),
    }
}

/// Times `iters` runs of `body` inside one future polled once.
fn timed<F: Future<Output = ()>>(iters: u64, body: impl FnOnce(u64) -> F) -> Duration {
    let start = Instant::now();
    run_ready(body(iters));
    start.elapsed()
}

fn uncontended_mutex(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_lock");
    let ours = &ownsync::Mutex::new(0u64);
    // `n` lock + unlock pairs in one future polled once.
    macro_rules! uncontended_async {
        ($name:literal, $lock:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    timed(n, |n| async move {
                        for _ in 0..n {
                            *$lock += 1
                        }
                    })
                })
            });
        };
    }
    uncontended_async!("ownsync", ours.lock().await.unwrap());
    group.bench_function("ownsync_tracked", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            run_ready(ownsync::tracked(async {
                for _ in 0..n {
                    *ours.lock().await.unwrap() += 1
                }
            }));
            start.elapsed()
        })
    });
    let tokio_mutex = &tokio::sync::Mutex::new(0u64);
    uncontended_async!("tokio", tokio_mutex.lock().await);
    let async_lock = &async_lock::Mutex::new(0u64);
    uncontended_async!("async_lock", async_lock.lock().await);
    let pl = parking_lot::Mutex::new(0u64);
    let intrusive = &futures_intrusive::sync::Mutex::new(0u64, true);
    uncontended_async!("futures_intrusive", intrusive.lock().await);
    let maitake = &maitake_sync::Mutex::new(0u64);
    uncontended_async!("maitake_sync", maitake.lock().await);
    group.bench_function("parking_lot", |b| b.iter(|| *pl.lock() += 1));
    let std_mutex = std::sync::Mutex::new(0u64);
    group.bench_function("std", |b| b.iter(|| *std_mutex.lock().unwrap() += 1));
    group.bench_function("ownsync_try_lock", |b| b.iter(|| *ours.try_lock().unwrap() += 1));
    group.bench_function("tokio_try_lock", |b| b.iter(|| *tokio_mutex.try_lock().unwrap() += 1));
    group.bench_function("ownsync_blocking_lock", |b| b.iter(|| *ours.blocking_lock().unwrap() += 1));
    group.bench_function("tokio_blocking_lock", |b| b.iter(|| *tokio_mutex.blocking_lock() += 1));
    group.finish();
}

fn uncontended_semaphore(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_semaphore");
    let ours = &ownsync::Semaphore::new(10);
    group.bench_function("ownsync", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(ours.acquire().await.unwrap()));
                }
            })
        })
    });
    let tokio_sem = &tokio::sync::Semaphore::new(10);
    group.bench_function("tokio", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(tokio_sem.acquire().await.unwrap()));
                }
            })
        })
    });
    let async_sem = &async_lock::Semaphore::new(10);
    group.bench_function("async_lock", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(async_sem.acquire().await));
                }
            })
        })
    });
    let intrusive_sem = &futures_intrusive::sync::Semaphore::new(true, 10);
    group.bench_function("futures_intrusive", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(intrusive_sem.acquire(1).await));
                }
            })
        })
    });
    let maitake_sem = &maitake_sync::Semaphore::new(10);
    group.bench_function("maitake_sync", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(maitake_sem.acquire(1).await.unwrap()));
                }
            })
        })
    });
    group.bench_function("ownsync_many_3", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(ours.acquire_many(3).await.unwrap()));
                }
            })
        })
    });
    group.bench_function("tokio_many_3", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    drop(black_box(tokio_sem.acquire_many(3).await.unwrap()));
                }
            })
        })
    });
    let limiter = ownsync::CapacityLimiter::new(10);
    group.bench_function("ownsync_limiter", |b| b.iter(|| drop(black_box(limiter.try_acquire().unwrap()))));
    let paired = ownsync::Semaphore::new(10);
    group
        .bench_function("ownsync_try_acquire", |b| b.iter(|| drop(black_box(paired.try_acquire().unwrap()))));
    group.finish();
}

/// Spawns `tasks` tasks made by `task` on `rt` and returns the wall time until all have
/// finished.
fn time_tasks<F>(rt: &tokio::runtime::Runtime, tasks: u64, task: impl Fn() -> F) -> Duration
where
    F: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(task())).collect();
        for handle in handles {
            handle.await.unwrap();
        }
    });
    start.elapsed()
}

/// A critical section of about 100 ns of work (a "medium" one) instead of one add.
fn medium_section(value: u64) -> u64 {
    (0..64).fold(value, |acc, i| black_box(acc.wrapping_mul(31).wrapping_add(i)))
}

/// Benches `tasks` tasks on `rt` sharing what `$make` builds, each re-locking it at
/// once around `$section` (which computes the new value from `guard`); time per
/// lock+unlock pair. Every task takes the lock at least once per batch, so a batch
/// smaller than the task count is scaled to the locks it took.
macro_rules! relock {
    ($group:ident, $id:expr, $rt:expr, $tasks:expr, $make:expr, |$m:ident| $lock:expr, |$guard:ident| $section:expr) => {
        $group.bench_function($id, |b| {
            b.iter_custom(|n| {
                let tasks: u64 = $tasks;
                let per_task = n.div_ceil(tasks);
                let shared = Arc::new($make);
                let elapsed = time_tasks($rt, tasks, || {
                    let $m = shared.clone();
                    async move {
                        for _ in 0..per_task {
                            let mut $guard = $lock;
                            *$guard = $section;
                        }
                    }
                });
                elapsed.mul_f64(n as f64 / (per_task * tasks) as f64)
            })
        });
    };
}

/// Not the targets' figures: a criterion batch is short, so spawning and joining its tasks
/// weighs in every figure alike and pulls ratios toward 1, and the peers are timed minutes
/// apart; the targets come from `examples/user_loop.rs` (see RESULTS.md).
///
/// `tasks` tasks, each taking the lock `n / tasks` times around a short (one add) or
/// medium section and re-locking at once; total time for `n` lock+unlock pairs. On 2
/// workers, and (groups named `..._current_thread`) on a current-thread runtime, where
/// every hand-off is a task switch and no time is spent waiting for another core.
fn contended(c: &mut Criterion) {
    let workers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cases = [(2u64, false, false), (8, false, false), (64, false, false), (8, true, false)]
        .into_iter()
        .chain([(2u64, false, true), (8, false, true), (64, false, true)]);
    for (tasks, medium, current_thread) in cases {
        let rt = if current_thread { &current } else { &workers };
        let name = format!(
            "contended_{tasks}_tasks{}{}",
            if medium { "_medium" } else { "" },
            if current_thread { "_current_thread" } else { "" }
        );
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        macro_rules! case {
            ($name:literal, $make:expr, |$m:ident| $lock:expr) => {
                relock!(group, BenchmarkId::new($name, tasks), rt, tasks, $make, |$m| $lock, |guard| {
                    if medium { medium_section(*guard) } else { black_box(*guard + 1) }
                });
            };
        }
        case!("ownsync", ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap());
        case!("tokio", tokio::sync::Mutex::new(0u64), |m| m.lock().await);
        case!("async_lock", async_lock::Mutex::new(0u64), |m| m.lock().await);
        case!("futures_intrusive", futures_intrusive::sync::Mutex::new(0u64, true), |m| m.lock().await);
        case!("maitake_sync", maitake_sync::Mutex::new(0u64), |m| m.lock().await);
        group.finish();
    }
}

/// 8 tasks on 2 workers sharing 1 permit (or 1 limiter token: with 2 on 2 workers a
/// hold that ends in the poll that took it would hardly ever meet another), each holding
/// it around a short section: the Semaphore against tokio's, and the CapacityLimiter (one
/// token per borrower, borrower bookkeeping) against the Semaphore doing the same work.
fn contended_counted(c: &mut Criterion) {
    const TASKS: u64 = 8;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("contended_semaphore");
    group.sample_size(20);
    macro_rules! case {
        ($name:literal, $make:expr, |$s:ident| $acquire:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let per_task = n.div_ceil(TASKS);
                    let shared = Arc::new($make);
                    time_tasks(&rt, TASKS, || {
                        let $s = shared.clone();
                        async move {
                            for _ in 0..per_task {
                                black_box(&$acquire);
                            }
                        }
                    })
                })
            });
        };
    }
    case!("ownsync", ownsync::Semaphore::new(1), |s| s.acquire().await.unwrap());
    case!("tokio", tokio::sync::Semaphore::new(1), |s| s.acquire().await.unwrap());
    case!("async_lock", async_lock::Semaphore::new(1), |s| s.acquire().await);
    case!("futures_intrusive", futures_intrusive::sync::Semaphore::new(true, 1), |s| s.acquire(1).await);
    case!("maitake_sync", maitake_sync::Semaphore::new(1), |s| s.acquire(1).await.unwrap());
    case!("ownsync_limiter", ownsync::CapacityLimiter::new(1), |s| s.acquire().await.unwrap());
    group.finish();
}

/// 2 threads each calling `blocking_lock` in a loop: the convoy DESIGN.md section 5
/// measures (a strict hand-off to a parked thread costs a context switch per lock).
fn contended_blocking(c: &mut Criterion) {
    const THREADS: u64 = 2;
    let mut group = c.benchmark_group("contended_blocking_2_threads");
    group.sample_size(10);
    macro_rules! case {
        ($name:literal, $make:expr, |$m:ident| $lock:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let per_thread = n.div_ceil(THREADS);
                    let shared = Arc::new($make);
                    // Both threads start together: with a short batch, one thread could
                    // otherwise finish before the other started, and nothing would contend.
                    let barrier = std::sync::Barrier::new(THREADS as usize);
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        for _ in 0..THREADS {
                            let ($m, barrier) = (shared.clone(), &barrier);
                            scope.spawn(move || {
                                barrier.wait();
                                for _ in 0..per_thread {
                                    let mut guard = $lock;
                                    *guard = black_box(*guard + 1);
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        };
    }
    case!("ownsync", ownsync::Mutex::new(0u64), |m| m.blocking_lock().unwrap());
    case!("ownsync_eventually_fair", ownsync::Mutex::new(0u64).eventually_fair(), |m| m
        .blocking_lock()
        .unwrap());
    case!("tokio", tokio::sync::Mutex::new(0u64), |m| m.blocking_lock());
    case!("parking_lot", parking_lot::Mutex::new(0u64), |m| m.lock());
    case!("std", std::sync::Mutex::new(0u64), |m| m.lock().unwrap());
    group.finish();
}

/// The scale curve's points: waiters parked on a break, tasks contending for a lock.
const SCALE: [usize; 5] = [1, 10, 100, 1_000, 10_000];

/// The scale curve of contended throughput: 1 to 10,000 tasks on 2 workers re-locking a
/// mutex around a short section (see [`relock!`]).
fn scale_contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("scale_contended");
    group.sample_size(10);
    for tasks in SCALE.map(|tasks| tasks as u64) {
        macro_rules! case {
            ($name:literal, $make:expr, |$m:ident| $lock:expr) => {
                relock!(group, BenchmarkId::new($name, tasks), &rt, tasks, $make, |$m| $lock, |guard| {
                    black_box(*guard + 1)
                });
            };
        }
        case!("ownsync", ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap());
        case!("tokio", tokio::sync::Mutex::new(0u64), |m| m.lock().await);
    }
    group.finish();
}

/// From the owner's exit until every one of N parked waiters has its error.
fn break_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("break_all_waiters");
    group.sample_size(10);
    for waiters in SCALE.into_iter().chain([100_000]) {
        group.bench_function(BenchmarkId::from_parameter(waiters), |b| {
            b.iter_custom(|n| {
                let cx = &mut Context::from_waker(Waker::noop());
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let mutex = Arc::new(ownsync::Mutex::new(()));
                    // A task that leaks its guard and then waits forever...
                    let mut leaker = Box::pin(ownsync::tracked({
                        let mutex = mutex.clone();
                        async move {
                            std::mem::forget(mutex.lock().await.unwrap());
                            std::future::pending::<()>().await;
                        }
                    }));
                    assert!(leaker.as_mut().poll(cx).is_pending());
                    let mut parked: Vec<_> = (0..waiters).map(|_| Box::pin(mutex.lock())).collect();
                    for waiter in &mut parked {
                        assert!(waiter.as_mut().poll(cx).is_pending());
                    }
                    // ...is cancelled: its exit breaks the mutex and wakes everyone.
                    let start = Instant::now();
                    drop(leaker);
                    for waiter in &mut parked {
                        assert!(matches!(waiter.as_mut().poll(cx), Poll::Ready(Err(_))));
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// RwLock against tokio's: a read and a write uncontended (one task), and 8 tasks on 2
/// workers with a 4:1 read/write mix around a short section (total time per lock).
fn rwlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_rwlock");
    let ours = &ownsync::RwLock::new(0u64);
    let theirs = &tokio::sync::RwLock::new(0u64);
    macro_rules! uncontended {
        ($name:literal, |$n:ident| $body:expr) => {
            group.bench_function($name, |b| b.iter_custom(|n| timed(n, |$n| async move { $body })));
        };
    }
    uncontended!("ownsync_read", |n| for _ in 0..n {
        black_box(*ours.read().await.unwrap());
    });
    uncontended!("tokio_read", |n| for _ in 0..n {
        black_box(*theirs.read().await);
    });
    uncontended!("ownsync_write", |n| for _ in 0..n {
        *ours.write().await.unwrap() += 1;
    });
    uncontended!("tokio_write", |n| for _ in 0..n {
        *theirs.write().await += 1;
    });
    group.finish();

    const TASKS: u64 = 8;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("contended_rwlock_8_tasks_4_to_1");
    group.sample_size(20);
    macro_rules! mixed {
        ($name:literal, $make:expr, |$l:ident| $read:expr, $write:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let per_task = n.div_ceil(TASKS);
                    let shared = Arc::new($make);
                    time_tasks(&rt, TASKS, || {
                        let $l = shared.clone();
                        async move {
                            for i in 0..per_task {
                                if i % 5 == 4 {
                                    let mut guard = $write;
                                    *guard = black_box(*guard + 1);
                                } else {
                                    black_box(*$read);
                                }
                            }
                        }
                    })
                })
            });
        };
    }
    mixed!("ownsync", ownsync::RwLock::new(0u64), |l| l.read().await.unwrap(), l.write().await.unwrap());
    mixed!("tokio", tokio::sync::RwLock::new(0u64), |l| l.read().await, l.write().await);
    group.finish();

    // The user loop's read-heavy mix (benches/examples/user_loop.rs): 8 tasks, the first
    // spawned writing, the 7 others reading; time per operation.
    let mut group = c.benchmark_group("contended_rwlock_7_readers_1_writer");
    group.sample_size(20);
    macro_rules! read_heavy {
        ($name:literal, $make:expr, |$l:ident| $read:expr, $write:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let per_task = n.div_ceil(TASKS);
                    let shared = Arc::new($make);
                    let spawned = std::cell::Cell::new(0u64);
                    let elapsed = time_tasks(&rt, TASKS, || {
                        let $l = shared.clone();
                        let writer = spawned.replace(spawned.get() + 1) == 0;
                        async move {
                            for _ in 0..per_task {
                                if writer {
                                    let mut guard = $write;
                                    *guard = black_box(*guard + 1);
                                } else {
                                    black_box(*$read);
                                }
                            }
                        }
                    });
                    elapsed.mul_f64(n as f64 / (per_task * TASKS) as f64)
                })
            });
        };
    }
    read_heavy!("ownsync", ownsync::RwLock::new(0u64), |l| l.read().await.unwrap(), l.write().await.unwrap());
    read_heavy!("tokio", tokio::sync::RwLock::new(0u64), |l| l.read().await, l.write().await);
    read_heavy!("async_lock", async_lock::RwLock::new(0u64), |l| l.read().await, l.write().await);
    read_heavy!("maitake_sync", maitake_sync::RwLock::new(0u64), |l| l.read().await, l.write().await);
    group.finish();
}

/// What a hand-over costs (DESIGN.md 2b): an owned guard taken and dropped, plainly and
/// handed to a live (published) task first, and an owned permit the same way.
fn hand_over(c: &mut Criterion) {
    let mut group = c.benchmark_group("hand_over");
    let mutex = Arc::new(ownsync::Mutex::new(0u64));
    let sem = Arc::new(ownsync::Semaphore::new(10));
    let worker = ownsync::tracked(std::future::pending::<()>());
    let worker_id = worker.owner();
    group.bench_function("owned_guard", |b| {
        b.iter(|| drop(black_box(mutex.clone().try_lock_owned().unwrap())))
    });
    group.bench_function("owned_guard_handed", |b| {
        b.iter(|| {
            let mut guard = mutex.clone().try_lock_owned().unwrap();
            ownsync::OwnedMutexGuard::hand_to(&mut guard, worker_id).unwrap();
            drop(black_box(guard))
        })
    });
    group.bench_function("owned_permit", |b| {
        b.iter(|| drop(black_box(sem.clone().try_acquire_owned().unwrap())))
    });
    group.bench_function("owned_permit_handed", |b| {
        b.iter(|| {
            let mut permit = sem.clone().try_acquire_owned().unwrap();
            permit.hand_to(worker_id).unwrap();
            drop(black_box(permit))
        })
    });
    group.finish();
    drop(worker);
}

/// `with_lock` against what it replaces, `lock().await` + the same async closure on the
/// guard, in one run: uncontended, tracked and anonymous, and on an RwLock's writer.
fn with_lock(c: &mut Criterion) {
    let mut group = c.benchmark_group("with_lock");
    let mutex = &ownsync::Mutex::new(0u64);
    let lock = &ownsync::RwLock::new(0u64);
    let section = async |n: &mut u64| *n += 1;
    macro_rules! both {
        ($name:literal, $wrap:path, $body:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|n| {
                    let start = Instant::now();
                    run_ready($wrap(async {
                        for _ in 0..n {
                            $body
                        }
                    }));
                    start.elapsed()
                })
            });
        };
    }
    both!("mutex_with_lock", std::convert::identity, mutex.with_lock(section).await.unwrap());
    both!(
        "mutex_lock_then_closure",
        std::convert::identity,
        section(&mut *mutex.lock().await.unwrap()).await
    );
    both!("mutex_with_lock_tracked", ownsync::tracked, mutex.with_lock(section).await.unwrap());
    both!(
        "mutex_lock_then_closure_tracked",
        ownsync::tracked,
        section(&mut *mutex.lock().await.unwrap()).await
    );
    both!("rwlock_with_write", std::convert::identity, lock.with_write(section).await.unwrap());
    both!(
        "rwlock_write_then_closure",
        std::convert::identity,
        section(&mut *lock.write().await.unwrap()).await
    );
    group.finish();
}

criterion_group!(
    benches,
    uncontended_mutex,
    with_lock,
    hand_over,
    rwlock,
    uncontended_semaphore,
    contended,
    contended_counted,
    contended_blocking,
    break_latency,
    scale_contended
);
criterion_main!(benches);
