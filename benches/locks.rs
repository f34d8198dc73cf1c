//! ownsync against tokio::sync, async-lock, parking_lot and std, in one run.
//!
//! Uncontended cases poll each future once with a no-op waker (no executor in the
//! measurement); contended cases run 8 tasks on tokio's multi-thread runtime with 2
//! workers. `cargo bench --bench locks`; quick: `cargo bench --bench locks -- --quick`.

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
    group.bench_function("ownsync", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    *ours.lock().await.unwrap() += 1
                }
            })
        })
    });
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
    group.bench_function("tokio", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    *tokio_mutex.lock().await += 1
                }
            })
        })
    });
    let async_lock = &async_lock::Mutex::new(0u64);
    group.bench_function("async_lock", |b| {
        b.iter_custom(|n| {
            timed(n, |n| async move {
                for _ in 0..n {
                    *async_lock.lock().await += 1
                }
            })
        })
    });
    let pl = parking_lot::Mutex::new(0u64);
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
    group.finish();
}

/// 8 tasks on 2 workers, each taking the lock `per_task` times around a short section.
fn contended(c: &mut Criterion) {
    const TASKS: u64 = 8;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("contended_8_tasks");
    group.sample_size(20);
    macro_rules! case {
        ($name:literal, $make:expr, |$m:ident| $lock:expr) => {
            group.bench_function(BenchmarkId::new($name, TASKS), |b| {
                b.iter_custom(|n| {
                    let per_task = n.div_ceil(TASKS);
                    let shared = Arc::new($make);
                    let start = Instant::now();
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                let $m = shared.clone();
                                tokio::spawn(async move {
                                    for _ in 0..per_task {
                                        let mut guard = $lock;
                                        *guard = black_box(*guard + 1);
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    });
                    start.elapsed()
                })
            });
        };
    }
    case!("ownsync", ownsync::Mutex::new(0u64), |m| m.lock().await.unwrap());
    case!("tokio", tokio::sync::Mutex::new(0u64), |m| m.lock().await);
    case!("async_lock", async_lock::Mutex::new(0u64), |m| m.lock().await);
    group.finish();
}

/// From the owner's exit until every one of N parked waiters has its error.
fn break_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("break_all_waiters");
    group.sample_size(10);
    for waiters in [10usize, 1_000, 100_000] {
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

criterion_group!(benches, uncontended_mutex, uncontended_semaphore, contended, break_latency);
criterion_main!(benches);
